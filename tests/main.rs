//! The integration tests, linked into one binary (faster to build on small machines).
// `unreachable_pub` guards the library's surface; in this binary `pub` only shares
// helpers between its modules.
#![allow(unreachable_pub)]

mod support;

mod build;
pub(crate) mod build_target;
mod command;
mod dashboard;
mod e2e;
mod faults;
pub(crate) mod fleet;
mod hostile;
mod hostile_http;
mod init;
mod json_contract;
mod keys;
pub(crate) mod layers;
mod module_graph;
pub(crate) mod node;
pub(crate) mod node_managers;
mod publish;
pub(crate) mod publish_targets;
mod python;
mod python_layouts;
mod repo;
mod snapshots;
pub(crate) mod strip;
