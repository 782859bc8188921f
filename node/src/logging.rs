//! Logs to stderr through `tracing`, with a filter the console can switch
//! to `debug` and back while the node runs.

use std::io::IsTerminal;

use tracing_subscriber::filter::{EnvFilter, ParseError};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, fmt, reload};

/// The filter when neither `--log-level` nor `RUST_LOG` says otherwise:
/// stdout is the console, so only trouble is logged.
const DEFAULT_FILTER: &str = "warn";

/// Controls the log filter of the running program.
pub(crate) struct LogControl {
    reload: reload::Handle<EnvFilter, Registry>,
    /// The filter chosen at start, restored when debug logs are turned off.
    base: String,
    debug: bool,
}

/// Installs the global subscriber. `level` (from `--log-level`) wins over
/// `RUST_LOG`, which wins over [`DEFAULT_FILTER`].
pub(crate) fn init(level: Option<&str>) -> Result<LogControl, ParseError> {
    let base = match level {
        Some(level) => level.to_owned(),
        None => std::env::var("RUST_LOG")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_FILTER.to_owned()),
    };
    let (filter, reload) = reload::Layer::new(EnvFilter::try_new(&base)?);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    Ok(LogControl {
        reload,
        base,
        debug: false,
    })
}

impl LogControl {
    /// Switches between `debug` for everything and the filter chosen at
    /// start; returns whether debug logs are now on.
    pub(crate) fn toggle_debug(&mut self) -> Result<bool, String> {
        let next = if self.debug { &self.base } else { "debug" };
        // `base` parsed at start, and "debug" always parses.
        let filter = EnvFilter::try_new(next).map_err(|e| e.to_string())?;
        self.reload.reload(filter).map_err(|e| e.to_string())?;
        self.debug = !self.debug;
        Ok(self.debug)
    }
}
