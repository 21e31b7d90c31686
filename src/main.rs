//! The `debstage` command: parse the command line, run it, report how it ended.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match debstage::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return debstage::usage_error(error),
    };
    let reporter = debstage::report::Reporter::new(cli.quiet, cli.format);
    debstage::finish(debstage::run(cli, &reporter), &reporter)
}
