//! Operating a node: Prometheus metrics, the read-only HTTP status API,
//! systemd readiness and watchdog notifications, log setup, the audit
//! log and the HA event hooks.
//!
//! Nothing here reaches into the daemon: the daemon hands in what it knows
//! (a status callback, metric values), so every piece is testable on its own
//! (`tests/ops.rs`).

pub mod alarms;
pub mod api;
pub mod audit;
pub mod hooks;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod text;
pub mod traffic;
pub mod watch;
