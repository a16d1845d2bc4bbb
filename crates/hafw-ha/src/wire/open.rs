//! The receiving side: checks, decrypts and de-duplicates envelopes, and
//! counts every refusal by reason.
//!
//! Order of checks: framing (length, magic, version, kind), our own id,
//! epoch and replay window (cheap refusals, no state change), then the tag.
//! Only a verified tag may change state (a new epoch, a replay-window
//! bit), so a forgery can neither make the real epoch stale nor burn
//! counters the real peer will use.
//!
//! Epoch rule: a sender's new epoch is accepted only if its start time is
//! later than the newest accepted from that sender, so a recorded earlier
//! run cannot be replayed after the peer restarted. Residual risks, by
//! design of a protocol without a handshake:
//! - an opener that itself restarted accepts the first epoch it sees, so
//!   a recorded old run can be replayed to it until the peer's current run
//!   is heard (then the newer start wins, and the old run is stale again);
//! - a peer whose wall clock went back across its restart is refused as
//!   `stale_epoch` until this opener restarts or [`Opener::forget`] is
//!   called: watch that counter.

use std::collections::HashMap;
use std::fmt;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use super::codec::{self, DecodeError};
use super::envelope::{Header, HeaderError, Kind, HEADER_LEN};
use super::keys::{derive_cipher, Epoch, Psk};
use super::replay::{Replay, ReplayWindow};
use crate::msg::Message;

/// An accepted envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<T> {
    pub sender_id: u32,
    pub kind: Kind,
    pub epoch: Epoch,
    pub counter: u64,
    /// The first accepted envelope of this sender's epoch: the peer
    /// (re)started, so whatever it had from us (sessions, config) is gone.
    /// Set once per epoch across both kinds (and even if that envelope then
    /// failed to decode): a consumer of one kind should compare `epoch`
    /// with the last it saw instead.
    pub new_epoch: bool,
    pub body: T,
}

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
    /// From an epoch that is not newer than the sender's newest accepted.
    StaleEpoch {
        sender_id: u32,
        start_ns: u64,
        newest_start_ns: u64,
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
                "envelope version {v}, this build speaks {}: run the same release on both nodes",
                super::envelope::VERSION
            ),
            Reject::UnknownKind(k) => write!(f, "unknown envelope kind {k}"),
            Reject::OwnId(id) => write!(
                f,
                "envelope claims our own node id {id}: a loop, or both nodes configured with one id"
            ),
            Reject::StaleEpoch {
                sender_id,
                start_ns,
                newest_start_ns,
            } => write!(
                f,
                "node {sender_id}: run started at {start_ns} ns is not newer than the run \
                 started at {newest_start_ns} ns already heard (a replay, or the peer's clock went back)"
            ),
            Reject::AuthFailed { sender_id } => write!(
                f,
                "envelope from node {sender_id} fails authentication: altered, or sealed with \
                 another pre-shared key (compare the key files on both nodes)"
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
    pub stale_epoch: u64,
    pub auth_failed: u64,
    /// Duplicates and counters behind the window.
    pub replayed: u64,
    pub decode_error: u64,
    pub sender_mismatch: u64,
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

    fn count(&mut self, r: &Reject) {
        let slot = match r {
            Reject::TooShort(_) => &mut self.too_short,
            Reject::TooLong(_) => &mut self.too_long,
            Reject::BadMagic(_) => &mut self.bad_magic,
            Reject::BadVersion(_) => &mut self.bad_version,
            Reject::UnknownKind(_) => &mut self.unknown_kind,
            Reject::OwnId(_) => &mut self.own_id,
            Reject::StaleEpoch { .. } => &mut self.stale_epoch,
            Reject::AuthFailed { .. } => &mut self.auth_failed,
            Reject::Duplicate { .. } | Reject::TooOld { .. } => &mut self.replayed,
            Reject::Decode { .. } => &mut self.decode_error,
            Reject::SenderMismatch { .. } => &mut self.sender_mismatch,
        };
        *slot = slot.saturating_add(1);
    }

    fn record<T>(&mut self, r: &Result<T, Reject>) {
        match r {
            Ok(_) => self.accepted = self.accepted.saturating_add(1),
            Err(e) => self.count(e),
        }
    }
}

/// What we hold for one sender: its newest accepted epoch only (older ones
/// are stale by rule, so their keys are dropped).
struct Peer {
    epoch: Epoch,
    cipher: ChaCha20Poly1305,
    windows: [ReplayWindow; Kind::ALL.len()],
}

/// Opens envelopes for one node. Keeps per-sender state, which only an
/// authentic envelope (one sealed with the PSK) can create.
pub struct Opener {
    psk: Psk,
    own_id: u32,
    peers: HashMap<u32, Peer>,
    counters: Counters,
}

impl Opener {
    pub fn new(psk: &Psk, own_node_id: u32) -> Opener {
        Opener {
            psk: psk.clone(),
            own_id: own_node_id,
            peers: HashMap::new(),
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Opens an envelope holding a [`Message`]; the message's node id must
    /// be the envelope's sender.
    pub fn open(&mut self, envelope: &[u8]) -> Result<Opened<Message>, Reject> {
        let r = self.open_unrecorded(envelope).and_then(|o| {
            let msg = codec::decode(&o.body).map_err(|error| Reject::Decode {
                sender_id: o.sender_id,
                error,
            })?;
            let claimed = match &msg {
                Message::Heartbeat(hb) => hb.node_id,
                Message::Takeover { node_id, .. } => *node_id,
            };
            if claimed != o.sender_id {
                return Err(Reject::SenderMismatch {
                    sender_id: o.sender_id,
                    claimed,
                });
            }
            Ok(Opened {
                sender_id: o.sender_id,
                kind: o.kind,
                epoch: o.epoch,
                counter: o.counter,
                new_epoch: o.new_epoch,
                body: msg,
            })
        });
        self.counters.record(&r);
        r
    }

    /// Opens an envelope and returns its plaintext as is (HA2 payloads
    /// that define their own encoding).
    pub fn open_bytes(&mut self, envelope: &[u8]) -> Result<Opened<Vec<u8>>, Reject> {
        let r = self.open_unrecorded(envelope);
        self.counters.record(&r);
        r
    }

    /// Forgets everything about `sender_id`, so its next authentic epoch is
    /// accepted whatever its start time: the operator's way out when the
    /// peer's clock went back across a restart (`stale_epoch` rising).
    pub fn forget(&mut self, sender_id: u32) {
        self.peers.remove(&sender_id);
    }

    fn open_unrecorded(&mut self, envelope: &[u8]) -> Result<Opened<Vec<u8>>, Reject> {
        let h = Header::parse(envelope)?;
        if h.sender_id == self.own_id {
            return Err(Reject::OwnId(h.sender_id));
        }
        let replay = |r: Replay| match r {
            Replay::Duplicate => Reject::Duplicate {
                sender_id: h.sender_id,
                counter: h.counter,
            },
            Replay::TooOld => Reject::TooOld {
                sender_id: h.sender_id,
                counter: h.counter,
            },
        };
        let (aad, sealed) = envelope.split_at(HEADER_LEN);
        // Set only for an epoch we have not accepted yet from this sender.
        let mut derived = None;
        let cipher = match self.peers.get(&h.sender_id) {
            Some(p) if p.epoch == h.epoch => {
                p.windows[h.kind.index()].check(h.counter).map_err(replay)?;
                &p.cipher
            }
            Some(p) if h.epoch.start_ns <= p.epoch.start_ns => {
                return Err(Reject::StaleEpoch {
                    sender_id: h.sender_id,
                    start_ns: h.epoch.start_ns,
                    newest_start_ns: p.epoch.start_ns,
                });
            }
            _ => &*derived.insert(derive_cipher(&self.psk, h.sender_id, h.epoch)),
        };
        let body = decrypt(cipher, h, aad, sealed)?;
        // Authentic: only now may state change.
        let new_epoch = derived.is_some();
        let peer = match derived {
            Some(cipher) => {
                let fresh = Peer {
                    epoch: h.epoch,
                    cipher,
                    windows: Default::default(),
                };
                self.peers.entry(h.sender_id).insert_entry(fresh).into_mut()
            }
            None => match self.peers.get_mut(&h.sender_id) {
                Some(p) => p,
                // Unreachable: without a derived key the peer was found above.
                None => {
                    return Err(Reject::AuthFailed {
                        sender_id: h.sender_id,
                    })
                }
            },
        };
        peer.windows[h.kind.index()]
            .accept(h.counter)
            .map_err(replay)?;
        Ok(Opened {
            sender_id: h.sender_id,
            kind: h.kind,
            epoch: h.epoch,
            counter: h.counter,
            new_epoch,
            body,
        })
    }
}

fn decrypt(
    cipher: &ChaCha20Poly1305,
    h: Header,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, Reject> {
    cipher
        .decrypt(Nonce::from_slice(&h.nonce()), Payload { msg: sealed, aad })
        .map_err(|_| Reject::AuthFailed {
            sender_id: h.sender_id,
        })
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut epochs: Vec<(u32, Epoch)> =
            self.peers.iter().map(|(id, p)| (*id, p.epoch)).collect();
        epochs.sort_by_key(|(id, _)| *id);
        f.debug_struct("Opener")
            .field("own_id", &self.own_id)
            .field("epochs", &epochs)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}
