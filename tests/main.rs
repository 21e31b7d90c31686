//! The integration tests, linked into one binary (faster to build on small machines).

mod support;

mod build;
mod command;
mod e2e;
mod elf;
mod faults;
mod hostile;
mod publish;
mod python;
mod repo;
mod serve;
mod version;
