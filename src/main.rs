//! The `hpfriends` binary: parses the command line and runs it; every failure is one line
//! on stderr and a non-zero exit.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use hpfriends::cli::{Cli, Command, LogFormat};

/// Clap's usage errors folded into one line (help and version are printed as they are).
fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let text = e.render().to_string();
        let line = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!("hpfriends: {} (see --help)", line.trim_start_matches("error: "));
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    // The broker logs at info; one-shot commands only warn, so their output stays clean.
    // The NATS client says why a connection attempt failed (a refused certificate, a reset)
    // only at debug, beside its event that says "IO error": a cluster node logs both.
    let default = if matches!(cli.command, Command::Serve(_)) {
        "info,async_nats::connector=debug"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    match cli.log_format {
        // One JSON object per line, fields flattened: for log shippers.
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            // Colours only on a terminal: log files and journald get plain text.
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
    }
    match hpfriends::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An error may quote a file or a database (an import): no escape sequences.
            eprintln!(
                "hpfriends: {}",
                hpfriends::cli::output::terminal_safe(&hpfriends::cli::output::one_message(&e))
            );
            if e.downcast_ref::<hpfriends::cli::NotLive>().is_some() {
                ExitCode::from(hpfriends::cli::NotLive::EXIT_CODE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
