//! What the node asks of the daemon, and what the operator asks of the node.

use std::fmt;

use super::cause::Cause;
use crate::msg::State;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Promote: the daemon installs synced sessions, adds the floating
    /// addresses, announces them with gratuitous ARP, confirms, in that
    /// order (commit before announce; architecture.md, promotion order).
    BecomeActive {
        term: u64,
        cause: Cause,
    },
    /// Demote: remove the floating addresses (promotion in reverse).
    BecomePassive {
        cause: Cause,
    },
    BecomeSuspended {
        cause: Cause,
    },
    BecomeNonFunctional {
        cause: Cause,
    },
    /// One heartbeat path went silent while another still works: an alarm,
    /// never a failover.
    PathDown {
        path: usize,
    },
    /// A path reported down delivers again.
    PathUp {
        path: usize,
    },
    /// Every path is silent.
    PeerLost,
    PeerFound {
        node_id: u32,
    },
    /// Announce the floating addresses again: this node won a dual-active
    /// conflict (the peer, active with term `peer_term`, steps down), and the
    /// peer's announcements may have moved the HAVIPs to it.
    Reannounce {
        peer_term: u64,
    },
    /// A [`Command::Shutdown`] is done: the node handed over (or was not
    /// active), or the shutdown deadline passed. The daemon stops the HA
    /// thread and withdraws; `state` is the state it stopped in.
    ShutdownComplete {
        state: State,
    },
}

/// Operator commands (`hafw suspend`, `hafw resume`, SIGTERM → Shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Suspend,
    Resume,
    /// The daemon is stopping: suspend (handing over if active) and report
    /// [`Action::ShutdownComplete`] once no longer active, or at the
    /// shutdown deadline (`takeover_wait + 2 × heartbeat_interval` after the
    /// command) at the latest.
    Shutdown,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Suspend => "suspend",
            Command::Resume => "resume",
            Command::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::BecomeActive { term, cause } => {
                write!(f, "become active (term {term}): {cause}")
            }
            Action::BecomePassive { cause } => write!(f, "become passive: {cause}"),
            Action::BecomeSuspended { cause } => write!(f, "become suspended: {cause}"),
            Action::BecomeNonFunctional { cause } => write!(f, "become non-functional: {cause}"),
            Action::PathDown { path } => write!(f, "heartbeat path {path} down"),
            Action::PathUp { path } => write!(f, "heartbeat path {path} up"),
            Action::PeerLost => f.write_str("peer lost"),
            Action::PeerFound { node_id } => write!(f, "peer node {node_id} found"),
            Action::Reannounce { peer_term } => write!(
                f,
                "announce again: won a dual-active against a peer at term {peer_term}"
            ),
            Action::ShutdownComplete { state } => {
                write!(f, "shutdown complete as {}", state.as_str())
            }
        }
    }
}
