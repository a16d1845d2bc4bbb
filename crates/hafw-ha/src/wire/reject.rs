//! Why an envelope was refused, and the counts by reason.

use std::fmt;

use super::codec::DecodeError;
use super::envelope::HeaderError;

/// Why an envelope was dropped. Every one is the sender's fault (or an
/// attacker's); none is a reason to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    TooShort(usize),
    TooLong(usize),
    BadMagic([u8; 2]),
    BadVersion(u8),
    UnknownKind(u8),
    /// Claims to come from us: a loop, a misconfigured peer with our node
    /// id, or a reflection.
    OwnId(u32),
    /// Claims a node id that is not our configured peer's: refused before
    /// any key is derived for it.
    UnknownSender {
        sender_id: u32,
        peer_id: u32,
    },
    /// An epoch that starts implausibly far ahead of our clock
    /// ([`super::open::MAX_EPOCH_LEAD`]): refused before any key is derived,
    /// and it never becomes the sender's epoch.
    FutureEpoch {
        sender_id: u32,
        start_ns: u64,
        now_ns: u64,
    },
    /// Does not echo our current run: sealed before the peer heard this run
    /// of ours (the first envelopes after either side starts), or recorded
    /// earlier and replayed.
    Unconfirmed {
        sender_id: u32,
    },
    /// From an epoch that is not newer than the sender's current one, while
    /// the current one is still heard (a replay, or the peer's clock went
    /// back: then it is accepted once the current epoch has been silent for
    /// [`super::open::RECOVER_AFTER`]).
    StaleEpoch {
        sender_id: u32,
        start_ns: u64,
        newest_start_ns: u64,
    },
    /// From an earlier run of the peer that this node already heard and
    /// left behind: never accepted again.
    RetiredEpoch {
        sender_id: u32,
        start_ns: u64,
    },
    /// The tag does not verify: another key (a different PSK, sender id or
    /// epoch than claimed) or altered bytes.
    AuthFailed {
        sender_id: u32,
    },
    Duplicate {
        sender_id: u32,
        counter: u64,
    },
    TooOld {
        sender_id: u32,
        counter: u64,
    },
    /// Authentic, but the plaintext is not a message this build knows.
    Decode {
        sender_id: u32,
        error: DecodeError,
    },
    /// Authentic, but the message names another node than its envelope.
    SenderMismatch {
        sender_id: u32,
        claimed: u32,
    },
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::TooShort(n) => write!(f, "envelope of {n} bytes is shorter than header and tag"),
            Reject::TooLong(n) => write!(f, "envelope of {n} bytes exceeds the 64 KiB limit"),
            Reject::BadMagic(m) => write!(f, "not an hafw HA envelope (magic {m:02x?})"),
            Reject::BadVersion(v) => write!(
                f,
                "envelope version {v}, this build accepts {} to its maximum ({} unless a test \
                 knob raised it): upgrade this node, the peer runs a newer protocol",
                super::envelope::VERSION,
                crate::version::PROTOCOL
            ),
            Reject::UnknownKind(k) => write!(f, "unknown envelope kind {k}"),
            Reject::OwnId(id) => write!(
                f,
                "envelope claims our own node id {id}: a loop, or both nodes configured with one id"
            ),
            Reject::UnknownSender { sender_id, peer_id } => write!(
                f,
                "envelope claims node id {sender_id}, but the peer is node {peer_id}: \
                 another pair on this segment, or a forgery"
            ),
            Reject::FutureEpoch {
                sender_id,
                start_ns,
                now_ns,
            } => write!(
                f,
                "node {sender_id}: run started at {start_ns} ns, {} s ahead of this node's clock \
                 ({now_ns} ns): synchronise both nodes' clocks (chrony, NTP)",
                start_ns.saturating_sub(*now_ns) / 1_000_000_000
            ),
            Reject::Unconfirmed { sender_id } => write!(
                f,
                "node {sender_id}: envelope does not echo this node's current run \
                 (sent before the peer heard us, or a replay)"
            ),
            Reject::StaleEpoch {
                sender_id,
                start_ns,
                newest_start_ns,
            } => write!(
                f,
                "node {sender_id}: run started at {start_ns} ns is not newer than the run \
                 started at {newest_start_ns} ns still heard (a replay, or the peer's clock \
                 went back: accepted once the old run is silent for {} s)",
                super::open::RECOVER_AFTER.as_secs()
            ),
            Reject::RetiredEpoch {
                sender_id,
                start_ns,
            } => write!(
                f,
                "node {sender_id}: run started at {start_ns} ns was left behind for a later run (a replay)"
            ),
            Reject::AuthFailed { sender_id } => write!(
                f,
                "envelope from node {sender_id} fails authentication: altered, or sealed with \
                 another key (compare the key files on both nodes, and the deployment and \
                 node names in both deployment files)"
            ),
            Reject::Duplicate { sender_id, counter } => {
                write!(f, "node {sender_id}: counter {counter} already received (replay)")
            }
            Reject::TooOld { sender_id, counter } => write!(
                f,
                "node {sender_id}: counter {counter} is behind the replay window"
            ),
            Reject::Decode { sender_id, error } => write!(
                f,
                "node {sender_id} sent an undecodable message ({error}): run the same release on both nodes"
            ),
            Reject::SenderMismatch { sender_id, claimed } => write!(
                f,
                "envelope from node {sender_id} carries a message from node {claimed}"
            ),
        }
    }
}

impl std::error::Error for Reject {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Reject::Decode { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<HeaderError> for Reject {
    fn from(e: HeaderError) -> Reject {
        match e {
            HeaderError::TooShort(n) => Reject::TooShort(n),
            HeaderError::TooLong(n) => Reject::TooLong(n),
            HeaderError::BadMagic(m) => Reject::BadMagic(m),
            HeaderError::BadVersion(v) => Reject::BadVersion(v),
            HeaderError::UnknownKind(k) => Reject::UnknownKind(k),
        }
    }
}

/// Envelopes accepted and dropped, by reason, since the opener started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub accepted: u64,
    pub too_short: u64,
    pub too_long: u64,
    pub bad_magic: u64,
    pub bad_version: u64,
    pub unknown_kind: u64,
    pub own_id: u64,
    pub unknown_sender: u64,
    pub future_epoch: u64,
    pub unconfirmed: u64,
    /// Stale and retired epochs.
    pub stale_epoch: u64,
    pub auth_failed: u64,
    /// Duplicates and counters behind the window.
    pub replayed: u64,
    pub decode_error: u64,
    pub sender_mismatch: u64,
    /// Not a refusal: the times a peer's epoch with an earlier start was
    /// accepted after its current one fell silent (its clock went back).
    /// Not in [`Counters::iter`], which lists outcomes of `open`.
    pub recoveries: u64,
}

impl Counters {
    /// Name and value of each counter, for metrics.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("accepted", self.accepted),
            ("too_short", self.too_short),
            ("too_long", self.too_long),
            ("bad_magic", self.bad_magic),
            ("bad_version", self.bad_version),
            ("unknown_kind", self.unknown_kind),
            ("own_id", self.own_id),
            ("unknown_sender", self.unknown_sender),
            ("future_epoch", self.future_epoch),
            ("unconfirmed", self.unconfirmed),
            ("stale_epoch", self.stale_epoch),
            ("auth_failed", self.auth_failed),
            ("replayed", self.replayed),
            ("decode_error", self.decode_error),
            ("sender_mismatch", self.sender_mismatch),
        ]
        .into_iter()
    }

    /// All refusals, whatever the reason.
    pub fn rejected(&self) -> u64 {
        self.iter()
            .filter(|(name, _)| *name != "accepted")
            .map(|(_, v)| v)
            .sum()
    }

    pub(crate) fn count(&mut self, r: &Reject) {
        let slot = match r {
            Reject::TooShort(_) => &mut self.too_short,
            Reject::TooLong(_) => &mut self.too_long,
            Reject::BadMagic(_) => &mut self.bad_magic,
            Reject::BadVersion(_) => &mut self.bad_version,
            Reject::UnknownKind(_) => &mut self.unknown_kind,
            Reject::OwnId(_) => &mut self.own_id,
            Reject::UnknownSender { .. } => &mut self.unknown_sender,
            Reject::FutureEpoch { .. } => &mut self.future_epoch,
            Reject::Unconfirmed { .. } => &mut self.unconfirmed,
            Reject::StaleEpoch { .. } | Reject::RetiredEpoch { .. } => &mut self.stale_epoch,
            Reject::AuthFailed { .. } => &mut self.auth_failed,
            Reject::Duplicate { .. } | Reject::TooOld { .. } => &mut self.replayed,
            Reject::Decode { .. } => &mut self.decode_error,
            Reject::SenderMismatch { .. } => &mut self.sender_mismatch,
        };
        *slot = slot.saturating_add(1);
    }

    pub(crate) fn record<T>(&mut self, r: &Result<T, Reject>) {
        match r {
            Ok(_) => self.accepted = self.accepted.saturating_add(1),
            Err(e) => self.count(e),
        }
    }
}
