//! Structured logs on standard output: JSON lines (default) or text.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat, LogLevel};

pub fn init(config: &LogConfig) {
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
    let result = match config.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stdout),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stdout))
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("mogothrow77: cannot initialise logging: {e}");
    }
}
