//! `hafw run` with a peer: the HA pair. The pure core (`hafw_ha::node`)
//! and its heartbeat sockets run on their own thread with their own runtime
//! ([`thread`]), so a slow netlink reply, an API call or session sync
//! can never delay a heartbeat. The core's actions go to the data-plane
//! executor ([`executor`]) on the main runtime, which times each phase of a
//! promotion and reports the timeline back for `hafw status`.

mod epochs;
pub mod executor;
pub mod keyfile;
pub mod monitor;
pub mod probe;
pub mod record;
pub mod setup;
pub mod status;
pub mod thread;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hafw_ha::node::Command;
use tokio::sync::oneshot;

/// The time an opener judges an envelope by: the wall clock (the peer's
/// epoch start is its wall clock) and the caller's monotonic `mono`. A wall
/// clock before 1970 reads as 0, which refuses nothing the peer sends as
/// "future" beyond the usual lead.
pub fn wire_now(mono: Duration) -> hafw_ha::wire::Now {
    hafw_ha::wire::Now::new(unix_ns(), mono)
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the rest of the daemon asks of the HA thread.
pub enum HaRequest {
    /// The HA part of the node's status.
    Status {
        reply: oneshot::Sender<crate::status::Status>,
    },
    Command {
        cmd: Command,
        reply: oneshot::Sender<String>,
    },
    Monitor {
        healthy: bool,
        reason: String,
    },
    /// The shared policy's (version, hash) this node runs: carried in its
    /// heartbeats, so the peer can flag a mismatch.
    SetConfigVersion {
        version: u64,
        hash: [u8; 32],
    },
    /// The node's HA state (config apply is allowed on the active only).
    State {
        reply: oneshot::Sender<hafw_ha::msg::State>,
    },
    /// SIGTERM: hand over if active, then report the final state (the
    /// core decides when the shutdown is done).
    Shutdown {
        reply: oneshot::Sender<hafw_ha::msg::State>,
    },
}

/// The phases of the last promotions and demotions, newest last.
pub type Timelines = Arc<Mutex<Vec<executor::Timeline>>>;
