//! When a node is ready to take over: the one rule the daemon's status,
//! its metrics and the `ready` log line all ask.
//!
//! The active is ready by definition (its tables are the kernel's). A
//! passive is ready once it holds a complete generation of the active's
//! sessions (a promotion would keep every connection) *and* runs a policy
//! at least as new as its peer's: a node behind its peer's policy would
//! run, and once promoted enforce, an old rule set. The peer's version must
//! be known, not assumed: a bulk can complete before the first heartbeat
//! carrying the peer's version has been read.

use std::fmt;

/// What a node knows when it is asked whether it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// This node is the active.
    pub active: bool,
    /// The session-sync receiver completed a generation
    /// ([`crate::sessions::SyncReceiver::ready`]).
    pub sessions_synced: bool,
    /// The policy version this node runs.
    pub policy: u64,
    /// The peer's policy version from its heartbeats, once heard.
    pub peer_policy: Option<u64>,
}

/// Why a node is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// No complete generation of the active's sessions yet.
    SessionsNotSynced,
    /// The peer's policy version has not been heard yet.
    PeerPolicyUnknown,
    /// The peer runs a newer policy than this node.
    BehindPeerPolicy { ours: u64, peer: u64 },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::SessionsNotSynced => write!(f, "the sessions are not synced yet"),
            NotReady::PeerPolicyUnknown => write!(f, "the peer's policy version is not known yet"),
            NotReady::BehindPeerPolicy { ours, peer } => write!(
                f,
                "this node runs policy version {ours}, behind the peer's {peer}"
            ),
        }
    }
}

/// The readiness rule (see the module docs).
pub fn readiness(i: Inputs) -> Result<(), NotReady> {
    if i.active {
        return Ok(());
    }
    if !i.sessions_synced {
        return Err(NotReady::SessionsNotSynced);
    }
    match i.peer_policy {
        None => Err(NotReady::PeerPolicyUnknown),
        Some(peer) if peer > i.policy => Err(NotReady::BehindPeerPolicy {
            ours: i.policy,
            peer,
        }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passive(sessions_synced: bool, policy: u64, peer_policy: Option<u64>) -> Inputs {
        Inputs {
            active: false,
            sessions_synced,
            policy,
            peer_policy,
        }
    }

    #[test]
    fn the_active_is_always_ready() {
        let i = Inputs {
            active: true,
            ..passive(false, 0, Some(9))
        };
        assert_eq!(readiness(i), Ok(()));
    }

    #[test]
    fn a_synced_passive_on_the_peers_policy_or_newer_is_ready() {
        assert_eq!(readiness(passive(true, 3, Some(3))), Ok(()));
        assert_eq!(readiness(passive(true, 4, Some(3))), Ok(()));
        assert_eq!(readiness(passive(true, 0, Some(0))), Ok(()));
    }

    #[test]
    fn a_passive_without_a_complete_generation_is_not_ready() {
        assert_eq!(
            readiness(passive(false, 3, Some(3))),
            Err(NotReady::SessionsNotSynced)
        );
    }

    #[test]
    fn a_passive_behind_its_peers_policy_is_not_ready() {
        assert_eq!(
            readiness(passive(true, 2, Some(3))),
            Err(NotReady::BehindPeerPolicy { ours: 2, peer: 3 })
        );
    }

    #[test]
    fn the_peers_policy_must_be_heard_not_assumed() {
        assert_eq!(
            readiness(passive(true, 5, None)),
            Err(NotReady::PeerPolicyUnknown)
        );
    }
}
