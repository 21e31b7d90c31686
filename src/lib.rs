//! debstage: build versioned Debian packages of an application and carry them through
//! release stages (test, staging, production) in a signed apt repository.
//!
//! The data flow is visible in the modules: [`manifest`] -> [`env`] (a staged tree) ->
//! [`build`] (payload and stage packages, written by [`deb`]) -> [`repo`] (pool, indexes).

pub mod build;
pub mod cli;
pub mod deb;
pub mod debian;
pub mod fault;
pub mod naming;
pub mod repo;
pub mod report;
mod source_date;

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
