//! The `debstage` command: parse the command line, run it, report how it ended.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = debstage::cli::Cli::parse();
    let reporter = debstage::report::Reporter::new(cli.quiet, cli.format);
    debstage::finish(debstage::run(cli, &reporter), &reporter)
}
