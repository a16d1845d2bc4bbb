//! What the node asks of the daemon, and what the operator asks of the node.

use std::fmt;

use super::cause::Cause;

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
}

/// Operator commands (`hafw suspend`, `hafw resume`, SIGTERM → Suspend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Suspend,
    Resume,
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
        }
    }
}
