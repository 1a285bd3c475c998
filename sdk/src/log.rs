//! Logging into the host's structured log.
//!
//! In Wasm each call goes to the host's `log` import, which tags the record with the
//! plugin's name and version and rate-limits it. Natively (unit tests) records go to
//! stderr and are kept per thread for [`crate::testing::take_logs`].
//!
//! ```
//! klaxon_sdk::log::warn(&format!("ignoring {} NaN samples", 3));
//! ```

use std::fmt;

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something is odd but the plugin copes.
    Warn,
    /// Something failed.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Trace => "TRACE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        })
    }
}

/// Logs `message` at `level`.
pub fn log(level: Level, message: &str) {
    imp::log(level, message);
}

/// Logs at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::bindings::wit_log;

    pub(super) fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit_log::Level::Trace,
            Level::Debug => wit_log::Level::Debug,
            Level::Info => wit_log::Level::Info,
            Level::Warn => wit_log::Level::Warn,
            Level::Error => wit_log::Level::Error,
        };
        wit_log::log(level, message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imp {
    use std::cell::RefCell;

    use super::Level;

    thread_local! {
        /// Records of this thread since the last `take`; tests run one per thread.
        static RECORDS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn log(level: Level, message: &str) {
        eprintln!("[klaxon plugin {level}] {message}");
        RECORDS.with(|r| r.borrow_mut().push((level, message.to_owned())));
    }

    pub(crate) fn take() -> Vec<(Level, String)> {
        RECORDS.with(|r| std::mem::take(&mut *r.borrow_mut()))
    }
}
