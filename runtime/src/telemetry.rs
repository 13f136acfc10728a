//! Logging set-up.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::cli::{CommonArgs, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `--log-level` (or `RUST_LOG`) is not a valid filter; clap validates the flag, so this only
    /// happens when `CommonArgs` was built by hand.
    #[error("--log-level {directive:?} is not a log filter directive ({source}); the process stops")]
    Filter {
        /// The directive given.
        directive: String,
        /// The parse error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed (init called twice).
    #[error("logging is already initialised: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the global tracing subscriber: text or JSON lines on stderr, filtered by `--log-level`.
pub fn init(args: &CommonArgs) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&args.log_level).map_err(|source| TelemetryError::Filter {
        directive: args.log_level.clone(),
        source,
    })?;
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()?,
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()?,
    }
    Ok(())
}
