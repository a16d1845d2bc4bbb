//! The running hafw node, as a library: `hafw run` is [`run::run`].
//!
//! - [`ha`]: the HA thread (the pure core `hafw_ha::node`, heartbeat
//!   sockets, one timer), the promotion executor, link and path monitors.
//! - [`sync`]: the sync thread: HA2, conntrack, the session-sync cores.
//! - [`config`]: the config task, the one place a policy is applied.
//! - [`dataplane`]: apply, check and withdraw the kernel state of a plan.
//! - [`control`]: the control socket, its server and its client.
//! - [`ops`]: metrics, the status API, systemd notifications, logging.
//!
//! The daemon depends on the cores and drivers only; the emulated cloud
//! (`hafw-lab`) and the benchmarks (`hafw-bench`) depend on it, never the
//! other way round.

use std::path::Path;
use std::process::ExitCode;

use hafw_model::Deployment;

pub mod config;
pub mod control;
pub mod dataplane;
pub mod error;
pub mod ha;
pub mod hits;
pub mod log;
pub mod ops;
pub mod run;
pub mod status;
pub mod sync;
pub mod threads;

pub use error::DaemonError;
pub use run::{run, RunOptions};

/// Exit status for a deployment file that does not validate.
pub const EXIT_INVALID: u8 = 2;

/// Exit status when the live state differs from the plan (`hafw run --check`).
pub const EXIT_DIFFERS: u8 = 1;

/// Loads and validates a deployment file, printing every error.
pub fn load(file: &Path) -> Result<Deployment, ExitCode> {
    hafw_model::load(file).map_err(|d| {
        eprintln!("{d}");
        ExitCode::from(EXIT_INVALID)
    })
}

/// The single-threaded runtime the commands run on; the HA core and session
/// sync start their own threads.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}
