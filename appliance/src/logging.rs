//! Structured logs: JSON lines (default) or text, on standard output for
//! `serve` (the journal or the container runtime collects them) and on
//! standard error for every other command, whose standard output is its
//! result (a report, a link, JSON for a script).

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::writer::EitherWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat, LogLevel};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

pub fn init(config: &LogConfig, output: Output) {
    let level = match config.level {
        LogLevel::Error => Level::ERROR,
        LogLevel::Warn => Level::WARN,
        LogLevel::Info => Level::INFO,
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Trace => Level::TRACE,
    };
    // Dependencies log at warn and above, unless debug or trace is asked for.
    let dependencies = if level >= Level::DEBUG {
        level
    } else {
        level.min(Level::WARN)
    };
    let filter = Targets::new()
        .with_default(dependencies)
        .with_target("mogothrow77", level)
        .with_target("access", level)
        .with_target("postgres", level);
    let registry = tracing_subscriber::registry().with(filter);
    // Colour codes only for a person at a terminal, never into the journal,
    // a file or a pipe.
    let ansi = {
        use std::io::IsTerminal;
        match output {
            Output::Stdout => std::io::stdout().is_terminal(),
            Output::Stderr => std::io::stderr().is_terminal(),
        }
    };
    let result = match config.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(move || writer(output)),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(move || writer(output)),
            )
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("mogothrow77: cannot initialise logging: {e}");
    }
}

fn writer(output: Output) -> EitherWriter<std::io::Stdout, std::io::Stderr> {
    match output {
        Output::Stdout => EitherWriter::A(std::io::stdout()),
        Output::Stderr => EitherWriter::B(std::io::stderr()),
    }
}
