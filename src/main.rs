//! The `hpfriends` binary: parses the command line and runs it; every failure is one line
//! on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use hpfriends::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The broker logs at info; one-shot commands only warn, so their output stays clean.
    let default = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .init();
    match hpfriends::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hpfriends: {e:#}");
            ExitCode::FAILURE
        }
    }
}
