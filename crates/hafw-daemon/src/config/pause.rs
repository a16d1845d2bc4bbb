//! Test-only pause points for the crash-injection test: with
//! `HAFW_TEST_PAUSE_AT=<step>` in its environment (read once, at the first
//! apply), the daemon logs "paused at STEP" when an apply reaches that
//! step and its config task waits there forever, so a test can kill -9 it
//! at a known point. Not for production: a paused node takes no policy.

use std::sync::OnceLock;

use crate::log::Log;

/// The environment variable naming the step.
pub const ENV: &str = "HAFW_TEST_PAUSE_AT";

/// The named steps of an apply, in order.
pub const STEPS: [&str; 5] = [
    // The version's text and record are in the history (state prepared).
    "history-written",
    // The kernel runs the new plan; the files are still the old ones.
    "kernel-applied",
    // The deployment file is the new one; the version file the old one.
    "file-renamed",
    // On the active only: the peer was offered the version and answered
    // (or did not within the bound); the version file is the old one.
    "offered",
    // The version file names the new version: committed; on the passive,
    // the active not yet answered.
    "version-renamed",
];

fn wanted() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| std::env::var(ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// Waits forever if `step` is the one asked for.
pub async fn at(step: &'static str, log: &Log) {
    if wanted() == Some(step) {
        log.warn(format!("paused at {step} ({ENV}, test only)"));
        std::future::pending::<()>().await;
    }
}
