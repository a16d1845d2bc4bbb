//! Operating a node: Prometheus metrics, the read-only HTTP status API,
//! systemd readiness and watchdog notifications, log setup, and the audit
//! log.
//!
//! Nothing here reaches into the daemon: the daemon hands in what it knows
//! (a status callback, metric values), so every piece is testable on its own
//! (`tests/ops.rs`).

pub mod alarms;
pub mod api;
pub mod audit;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod text;
