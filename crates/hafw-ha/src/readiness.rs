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
//!
//! A passive whose HA2 link is down is not ready either: it no longer hears
//! the active's session changes, so a takeover would lose the connections
//! opened since ([`now`]).
//!
//! The active asks the converse ([`standby`], [`handover`]): is there a
//! peer that could take over at all (if not, the pair has no standby: an
//! alarm), and would a planned handover to it keep the sessions (not while
//! HA2 is down: the passive's table is going stale).

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
    /// The HA2 link is down: session changes are not arriving (on a
    /// passive), or not leaving (on the active).
    Ha2Disconnected,
    /// On the active: no peer could take over.
    NoStandby(NoStandby),
}

/// Why the active has no standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoStandby {
    /// The peer has not been heard since this node started.
    NeverHeard,
    /// The peer was heard, then fell silent on every path.
    Lost,
    /// The peer is heard but is not passive (starting, suspended,
    /// non-functional, or active too).
    NotPassive,
    /// The peer is passive but its own monitors fail.
    Unhealthy,
}

impl fmt::Display for NoStandby {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoStandby::NeverHeard => "never heard",
            NoStandby::Lost => "lost",
            NoStandby::NotPassive => "not passive",
            NoStandby::Unhealthy => "unhealthy",
        })
    }
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
            NotReady::Ha2Disconnected => write!(f, "HA2 disconnected"),
            NotReady::NoStandby(why) => write!(f, "no standby: the peer is {why}"),
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

/// What a status reader knows at one moment: the sync thread's verdict
/// ([`readiness`], computed as it applies messages) and the facts it is
/// checked against now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub active: bool,
    /// [`readiness`] as the sync thread last computed it.
    pub verdict: bool,
    pub ha2_connected: bool,
    pub policy: u64,
    pub peer_policy: Option<u64>,
}

/// This node's readiness now, with its reason: a passive cut off from HA2
/// is not ready whatever it held before; otherwise the verdict stands, and
/// when it is "not ready" the reason is recovered (the policy's if the
/// policy is behind or unknown, else the sessions').
pub fn now(n: Now) -> Result<(), NotReady> {
    if n.active {
        return Ok(());
    }
    if !n.ha2_connected {
        return Err(NotReady::Ha2Disconnected);
    }
    if n.verdict {
        return Ok(());
    }
    readiness(Inputs {
        active: false,
        sessions_synced: true,
        policy: n.policy,
        peer_policy: n.peer_policy,
    })
    .and(Err(NotReady::SessionsNotSynced))
}

/// What the active knows of its peer from heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Heard at least once since this node started.
    pub heard: bool,
    /// Heard within the detection time on some path.
    pub alive: bool,
    pub passive: bool,
    pub healthy: bool,
}

/// Whether a peer could take over from this node at all.
pub fn standby(p: Peer) -> Result<(), NoStandby> {
    match p {
        Peer { heard: false, .. } => Err(NoStandby::NeverHeard),
        Peer { alive: false, .. } => Err(NoStandby::Lost),
        Peer { passive: false, .. } => Err(NoStandby::NotPassive),
        Peer { healthy: false, .. } => Err(NoStandby::Unhealthy),
        _ => Ok(()),
    }
}

/// On the active: whether a planned handover now would keep the sessions.
/// `ha2_connected` is `None` when session sync is off (nothing to keep).
pub fn handover(p: Peer, ha2_connected: Option<bool>) -> Result<(), NotReady> {
    standby(p).map_err(NotReady::NoStandby)?;
    match ha2_connected {
        Some(false) => Err(NotReady::Ha2Disconnected),
        _ => Ok(()),
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

    fn now_passive(verdict: bool, ha2_connected: bool, peer_policy: Option<u64>) -> Now {
        Now {
            active: false,
            verdict,
            ha2_connected,
            policy: 3,
            peer_policy,
        }
    }

    #[test]
    fn a_passive_without_ha2_is_not_ready_whatever_it_held() {
        assert_eq!(
            now(now_passive(true, false, Some(3))),
            Err(NotReady::Ha2Disconnected)
        );
        assert_eq!(now(now_passive(true, true, Some(3))), Ok(()));
        assert_eq!(
            now(Now {
                active: true,
                ..now_passive(false, false, None)
            }),
            Ok(())
        );
        assert_eq!(NotReady::Ha2Disconnected.to_string(), "HA2 disconnected");
    }

    #[test]
    fn the_reason_of_a_verdict_is_recovered() {
        assert_eq!(
            now(now_passive(false, true, Some(3))),
            Err(NotReady::SessionsNotSynced)
        );
        assert_eq!(
            now(now_passive(false, true, Some(4))),
            Err(NotReady::BehindPeerPolicy { ours: 3, peer: 4 })
        );
        assert_eq!(
            now(now_passive(false, true, None)),
            Err(NotReady::PeerPolicyUnknown)
        );
    }

    const GOOD: Peer = Peer {
        heard: true,
        alive: true,
        passive: true,
        healthy: true,
    };

    #[test]
    fn a_lost_or_unfit_peer_is_no_standby() {
        assert_eq!(standby(GOOD), Ok(()));
        let never = Peer {
            heard: false,
            alive: false,
            ..GOOD
        };
        assert_eq!(standby(never), Err(NoStandby::NeverHeard));
        let lost = Peer {
            alive: false,
            ..GOOD
        };
        assert_eq!(standby(lost), Err(NoStandby::Lost));
        // A silent peer is lost whatever it said last.
        assert_eq!(
            standby(Peer {
                passive: false,
                ..lost
            }),
            Err(NoStandby::Lost)
        );
        assert_eq!(
            standby(Peer {
                passive: false,
                ..GOOD
            }),
            Err(NoStandby::NotPassive)
        );
        assert_eq!(
            standby(Peer {
                healthy: false,
                ..GOOD
            }),
            Err(NoStandby::Unhealthy)
        );
    }

    #[test]
    fn a_handover_needs_a_standby_and_ha2() {
        assert_eq!(handover(GOOD, Some(true)), Ok(()));
        assert_eq!(handover(GOOD, None), Ok(()));
        assert_eq!(handover(GOOD, Some(false)), Err(NotReady::Ha2Disconnected));
        let lost = Peer {
            alive: false,
            ..GOOD
        };
        assert_eq!(
            handover(lost, Some(false)),
            Err(NotReady::NoStandby(NoStandby::Lost))
        );
        assert_eq!(
            NotReady::NoStandby(NoStandby::Lost).to_string(),
            "no standby: the peer is lost"
        );
    }
}
