//! What `hafw status` shows of the HA core: a snapshot, plain data.

use std::fmt;
use std::time::Duration;

use super::cause::Cause;
use crate::msg::State;
use crate::Time;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub node_id: u32,
    pub state: State,
    /// The term this node advertises: its promotion term while active, the
    /// highest term it knows otherwise.
    pub term: u64,
    pub healthy: bool,
    /// The monitors' last reason (empty when they never failed).
    pub monitor_reason: String,
    /// Since when an active has been handing over, if it is.
    pub handing_over_since: Option<Time>,
    pub peer: Option<PeerStatus>,
    pub paths: Vec<PathStatus>,
    pub alarms: Vec<Alarm>,
    /// The last transitions, oldest first.
    pub transitions: Vec<Transition>,
    pub counters: Counters,
}

/// What the peer said in its newest heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub node_id: u32,
    pub state: State,
    pub term: u64,
    pub priority: u8,
    pub preempt: bool,
    pub healthy: bool,
    pub config_version: u64,
    pub config_hash: [u8; 32],
    /// Some path delivered within the detection time.
    pub alive: bool,
    pub last_heard: Option<Time>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStatus {
    pub up: bool,
    pub last_heard: Option<Time>,
    /// Smoothed round trip from the heartbeat echo fields.
    pub rtt: Option<Duration>,
    pub sent: u64,
    pub received: u64,
    /// Heartbeats the peer sent on this path that never came.
    pub lost: u64,
    /// Duplicated or reordered heartbeats, ignored.
    pub stale: u64,
    /// Silence after which this path counts as down (adaptive detection).
    pub detection: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// A heartbeat path is silent while another works.
    PathDown { path: usize },
    /// Active with a failing monitor because no healthy peer can take over:
    /// forwarding badly beats not forwarding.
    ActiveWhileUnhealthy { reason: String },
    /// The peer runs another policy version (config sync pending or failed).
    ConfigMismatch { ours: u64, peer: u64 },
    /// The two nodes disagree on preemption.
    PreemptMismatch { ours: bool, peer: bool },
    /// Promoted past the flap limit because no peer could serve: an
    /// outage would be worse than flapping.
    FlapLimitOverridden { transitions: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub at: Time,
    pub from: State,
    pub to: State,
    pub term: u64,
    pub cause: Cause,
}

/// Messages the node ignored, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages carrying our own node id (a loop, or a misconfigured peer).
    pub own_id: u64,
    /// Messages on a path index this node does not have.
    pub bad_path: u64,
    /// Takeover requests with a term older than one already seen.
    pub stale_takeovers: u64,
    /// Takeover requests that came while this node could not take over.
    pub refused_takeovers: u64,
    /// Outgoing messages dropped because the daemon did not drain them.
    pub transmit_overflow: u64,
}

impl fmt::Display for Alarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alarm::PathDown { path } => write!(
                f,
                "heartbeat path {path} is down (peer still heard on another path)"
            ),
            Alarm::ActiveWhileUnhealthy { reason } => write!(
                f,
                "monitor failed ({reason}) but staying active: no healthy peer can take over"
            ),
            Alarm::ConfigMismatch { ours, peer } => {
                write!(f, "policy version differs: ours {ours}, peer {peer}")
            }
            Alarm::PreemptMismatch { ours, peer } => {
                write!(
                    f,
                    "preempt setting differs: ours {ours}, peer {peer}: set it alike on both nodes"
                )
            }
            Alarm::FlapLimitOverridden { transitions } => write!(
                f,
                "flap limit passed ({transitions} promotions in the window) but active: no peer could serve; find why the nodes keep failing over"
            ),
        }
    }
}
