//! debstage: build versioned Debian packages of an application and carry them through
//! release stages (test, staging, production) in a signed apt repository.
//!
//! The data flow is visible in the modules: `build` (manifest, environment, staged tree,
//! packages written by `deb`) -> `repo` (pool, indexes); both sit on `naming` (the
//! contract between them) and `debian` (the formats). Only the command line, the reporter
//! and [`run`] are public.

mod build;
pub mod cli;
mod deb;
mod debian;
mod naming;
mod repo;
pub mod report;
mod source_date;

#[cfg(test)]
mod fuzz_tests;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::report::Reporter;

/// Runs one parsed command line.
pub fn run(cli: Cli, reporter: &Reporter) -> Result<()> {
    match cli.command {
        Command::Build(options) => build::run(&options, reporter).map(|_| ()),
        Command::Init(options) => build::init::run(&options, reporter),
        Command::Repo(options) => repo::run(options, reporter),
    }
}
