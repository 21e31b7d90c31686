//! End-to-end scenarios on throwaway Debian servers (debootstrap roots used with chroot, or
//! booted with systemd-nspawn when a scenario needs a real systemd): what dpkg and apt do
//! with the packages `debstage build` makes and the suites `debstage repo` serves. Needs
//! root, debootstrap and systemd-nspawn; fails under CI without them, skips loudly otherwise.

mod fixtures;
pub(crate) mod harness;

mod ansible;
mod apt;
mod distributions;
mod dpkg;
mod layers;
mod metrics;
mod native;
mod node_managers;
mod object_store;
pub(crate) mod piuparts;
mod python;
mod quick_publications;
mod rotation;
mod systemd;
