//! Step logging on standard error: each step of bringing the data plane up
//! or down, with how long it took, so a slow start is visible at a glance.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::error::{DaemonError, Level};

#[derive(Clone, Debug)]
pub struct Log {
    prefix: String,
    quiet: bool,
}

impl Log {
    pub fn new(node: &str) -> Log {
        Log {
            prefix: format!("hafw[{node}]"),
            quiet: false,
        }
    }

    /// A log that prints nothing (benchmarks print their own figures).
    pub fn quiet() -> Log {
        Log {
            prefix: String::new(),
            quiet: true,
        }
    }

    pub fn step(&self, what: &str, started: Instant, detail: impl Display) {
        self.info(format!("{what}: {detail} ({})", ms(started.elapsed())));
    }

    /// Through tracing, so `--log-json` turns every step and transition into
    /// one JSON object; before the subscriber is set (other commands) it
    /// falls back to plain standard error.
    pub fn info(&self, message: impl Display) {
        if self.quiet {
            return;
        }
        if tracing::dispatcher::has_been_set() {
            tracing::info!(node = %self.prefix, "{message}");
        } else {
            eprintln!("{} {message}", self.prefix);
        }
    }
}

impl Log {
    /// Logs an error at the level its kind calls for ([`DaemonError::level`]):
    /// the one place that decides it.
    pub fn error(&self, e: &DaemonError) {
        self.at(e.level(), format_args!("{e}"));
    }

    pub fn warn(&self, message: impl Display) {
        self.at(Level::Warn, message);
    }

    pub fn debug(&self, message: impl Display) {
        self.at(Level::Debug, message);
    }

    fn at(&self, level: Level, message: impl Display) {
        if self.quiet {
            return;
        }
        if tracing::dispatcher::has_been_set() {
            match level {
                Level::Debug => tracing::debug!(node = %self.prefix, "{message}"),
                Level::Warn => tracing::warn!(node = %self.prefix, "{message}"),
                Level::Error => tracing::error!(node = %self.prefix, "{message}"),
            }
        } else if level > Level::Debug {
            eprintln!("{} {message}", self.prefix);
        }
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
