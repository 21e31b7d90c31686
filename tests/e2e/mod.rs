//! End-to-end scenarios on throwaway Debian servers (debootstrap roots used with chroot):
//! what dpkg and apt do with the packages `debstage build` makes and the suites
//! `debstage repo` serves. Needs root and debootstrap; skips loudly otherwise.

mod fixtures;
pub(crate) mod harness;

mod ansible;
mod apt;
mod dpkg;
mod python;
