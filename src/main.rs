//! The `debstage` command: parse the command line, run it, report one error.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = debstage::cli::Cli::parse();
    let reporter = debstage::report::Reporter::new(cli.quiet, cli.format);
    match debstage::run(cli, &reporter) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if debstage::report::is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            reporter.error(&error);
            ExitCode::from(debstage::report::exit_code(&error))
        }
    }
}
