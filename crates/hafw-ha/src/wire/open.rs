//! The receiving side: checks, decrypts and de-duplicates envelopes, and
//! counts every refusal by reason.
//!
//! Order of checks: framing (length, magic, version, kind); the sender id
//! (our own, or not our configured peer's); an epoch implausibly far in
//! the future; then, for the peer's current epoch, the echo and the
//! replay window. All of these are refusals without any key derivation
//! and without any change of state. Only then the tag, and only a
//! verified tag may change state (a new epoch, a replay-window bit), so a
//! forgery can neither make the real epoch stale nor burn counters the
//! real peer will use.
//!
//! Epoch rules (time is an argument, [`Now`]):
//! - **Echo.** Every envelope carries the receiver's epoch as the sender
//!   last heard it. An envelope is accepted only if it echoes our current
//!   epoch, which is new at each of our starts (8 random bytes from the
//!   OS): nothing recorded before this run of ours can carry it, so a
//!   restarted node cannot be fed its peer's earlier traffic. The cost is
//!   one message at each start: the first envelopes of either side do not
//!   echo yet; the peer learns our epoch from our own envelopes (an
//!   authentic one, whatever it echoes), and what we echo is
//!   [`Opener::echo`].
//! - **Future.** An epoch starting more than [`MAX_EPOCH_LEAD`] after our
//!   clock is refused outright (a peer whose clock is that far ahead must
//!   fix it), so no start time, `u64::MAX` included, can make the peer's
//!   real epoch look old.
//! - **Order.** A new epoch from the peer replaces the current one if it
//!   starts later (the peer restarted), or if the current one has been
//!   silent for [`RECOVER_AFTER`] (the peer restarted with its clock
//!   behind: counted in [`Counters::recoveries`]; meanwhile its envelopes
//!   are refused as [`Reject::StaleEpoch`], and [`Opener::last_refusal`]
//!   says so). An epoch left behind is *retired* and never accepted again
//!   (the last [`RETIRED_MAX`] of them are kept; older ones are refused by
//!   the order rule while the current epoch is heard).
//!
//! Residual risks, by design of a protocol without a handshake of its own:
//! - retired epochs beyond [`RETIRED_MAX`] that were heard during this run
//!   could be replayed once the current epoch has been silent for
//!   [`RECOVER_AFTER`] (it takes that many restarts of the peer in one run
//!   of ours);
//! - before this node has accepted any epoch of the peer, what it echoes
//!   follows the latest-starting authentic epoch it heard, so recordings
//!   of a peer run that started later (by the peer's clock) than its
//!   current one can delay the pair's forming; the peer's own envelopes
//!   still confirm this node, after which its echo follows the accepted
//!   epoch.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use super::codec;
use super::envelope::{Header, Kind, HEADER_LEN};
use super::keys::{derive_cipher, Epoch, PairKey};
pub use super::reject::{Counters, Reject};
use super::replay::{Replay, ReplayWindow};
use crate::msg::Message;
use crate::version::{Advert, PROTOCOL};

/// How far ahead of our wall clock a peer's epoch may start. The nodes'
/// clocks are meant to be synchronised (NTP in every cloud image): a minute
/// covers a clock that is off, not one that is broken.
pub const MAX_EPOCH_LEAD: Duration = Duration::from_secs(60);

/// How long the peer's current epoch must be silent before an epoch that
/// starts earlier is accepted (a peer restarted with its clock behind).
/// Longer than any silence of a live run that merely lost a few
/// heartbeats, short enough that the pair forms again in seconds.
pub const RECOVER_AFTER: Duration = Duration::from_secs(5);

/// How many epochs left behind are remembered (16 bytes each).
pub const RETIRED_MAX: usize = 64;

/// The time of one `open`: the wall clock (to judge an epoch's start, which
/// is the peer's wall clock) and the monotonic one (to measure silences).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Nanoseconds since the UNIX epoch.
    pub unix_ns: u64,
    /// Any monotonic clock, the same for every call.
    pub mono: Duration,
}

impl Now {
    pub fn new(unix_ns: u64, mono: Duration) -> Now {
        Now { unix_ns, mono }
    }
}

/// An accepted envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<T> {
    pub sender_id: u32,
    pub kind: Kind,
    pub epoch: Epoch,
    pub counter: u64,
    /// The envelope's protocol version.
    pub version: u8,
    /// The advert of a heartbeat of version 3 and later ([`Opener::open`]).
    pub advert: Option<Advert>,
    /// The first accepted envelope of this sender's epoch: the peer
    /// (re)started, so whatever it had from us (sessions, config) is gone.
    /// Set once per epoch across both kinds (and even if that envelope then
    /// failed to decode): a consumer of one kind should compare `epoch`
    /// with the last it saw instead.
    pub new_epoch: bool,
    pub body: T,
}

/// The peer's current epoch.
struct Current {
    epoch: Epoch,
    cipher: ChaCha20Poly1305,
    windows: [ReplayWindow; Kind::ALL.len()],
    /// When an envelope of it was last accepted.
    last_heard: Duration,
}

/// The last authentic epoch of the peer that was not accepted (it did not
/// echo us yet, or it was stale), with its key, so that its next envelopes
/// cost no derivation.
struct Candidate {
    epoch: Epoch,
    cipher: ChaCha20Poly1305,
    /// The newest counter refused per kind while a candidate: none up to
    /// it may be accepted later, when the epoch becomes current.
    refused: [Option<u64>; Kind::ALL.len()],
}

/// Opens the envelopes of one peer for one node. Keeps the peer's current
/// epoch, the epochs it left behind and one candidate key, all of which
/// only an authentic envelope can create; none grows with what arrives.
pub struct Opener {
    key: PairKey,
    own_id: u32,
    peer_id: u32,
    /// Ours: what the peer must echo.
    own_epoch: Epoch,
    current: Option<Current>,
    retired: VecDeque<Epoch>,
    candidate: Option<Candidate>,
    /// What our envelopes echo; see [`Opener::echo`].
    echo: Option<Epoch>,
    counters: Counters,
    last_refusal: Option<(Reject, Duration)>,
    derivations: u64,
    /// The highest protocol version accepted (see [`crate::version`]).
    max_version: u8,
    /// The last authentic envelope refused as unconfirmed, with its
    /// plaintext ([`Opener::take_unconfirmed`]).
    unconfirmed: Option<(Epoch, u8, Vec<u8>)>,
}

/// What an authentic envelope that did not echo us yet said of its
/// sender's versions: its epoch, its version and a heartbeat's advert.
pub type Unconfirmed = (Epoch, u8, Option<Advert>);

impl Opener {
    /// `own_epoch` is this node's sealer's epoch ([`super::Sealer::epoch`]).
    pub fn new(key: &PairKey, own_node_id: u32, peer_id: u32, own_epoch: Epoch) -> Opener {
        Opener {
            key: key.clone(),
            own_id: own_node_id,
            peer_id,
            own_epoch,
            current: None,
            retired: VecDeque::new(),
            candidate: None,
            echo: None,
            counters: Counters::default(),
            last_refusal: None,
            derivations: 0,
            max_version: PROTOCOL,
            unconfirmed: None,
        }
    }

    /// The versions of the last [`Reject::Unconfirmed`] that was authentic
    /// (the tag verified; freshness unproven), taken once. A peer that
    /// speaks a version we do not read learns our run only from envelopes
    /// it can read: such a one tells the negotiation (see
    /// [`crate::version`]) to step down before the pair has formed. A
    /// replayed one can only select a version both nodes accept, and the
    /// peer's next advert corrects it.
    pub fn take_unconfirmed(&mut self) -> Option<Unconfirmed> {
        let (epoch, version, body) = self.unconfirmed.take()?;
        let advert = codec::decode_v(version, &body).ok().and_then(|(_, a)| a);
        Some((epoch, version, advert))
    }

    /// The highest protocol version accepted (from
    /// [`crate::version::PROTOCOL_MIN`] on); [`PROTOCOL`] unless set.
    pub fn set_max_version(&mut self, max: u8) {
        self.max_version = max;
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The last refusal of an envelope that claimed to be from the peer,
    /// and when (the `mono` of its [`Now`]): what status shows while the
    /// peer is refused.
    pub fn last_refusal(&self) -> Option<(Reject, Duration)> {
        self.last_refusal
    }

    /// Keys derived so far: one per epoch of the peer, plus one per forged
    /// epoch that reached the tag check.
    pub fn derivations(&self) -> u64 {
        self.derivations
    }

    /// The peer's epoch our envelopes should echo (hand it to
    /// [`super::Sealer::set_echo`] after each `open`): the accepted epoch;
    /// before one is, or while a peer restarted with its clock behind is
    /// refused as stale, the authentic epoch that asks to be heard, so that
    /// the peer can hear us meanwhile.
    pub fn echo(&self) -> Option<Epoch> {
        self.echo
    }

    /// Opens an envelope holding a [`Message`]; the message's node id must
    /// be the envelope's sender.
    pub fn open(&mut self, now: Now, envelope: &[u8]) -> Result<Opened<Message>, Reject> {
        let r = self.open_unrecorded(now, envelope).and_then(|o| {
            let (msg, advert) =
                codec::decode_v(o.version, &o.body).map_err(|error| Reject::Decode {
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
                version: o.version,
                advert,
                new_epoch: o.new_epoch,
                body: msg,
            })
        });
        self.record(now, &r);
        r
    }

    /// Opens an envelope and returns its plaintext as is (HA2 payloads
    /// that define their own encoding).
    pub fn open_bytes(&mut self, now: Now, envelope: &[u8]) -> Result<Opened<Vec<u8>>, Reject> {
        let r = self.open_unrecorded(now, envelope);
        self.record(now, &r);
        r
    }

    fn record<T>(&mut self, now: Now, r: &Result<T, Reject>) {
        self.counters.record(r);
        if let Err(e) = r {
            let from_peer = !matches!(
                e,
                Reject::TooShort(_)
                    | Reject::TooLong(_)
                    | Reject::BadMagic(_)
                    | Reject::BadVersion(_)
                    | Reject::UnknownKind(_)
                    | Reject::OwnId(_)
                    | Reject::UnknownSender { .. }
            );
            if from_peer {
                self.last_refusal = Some((*e, now.mono));
            }
        }
    }

    fn open_unrecorded(&mut self, now: Now, envelope: &[u8]) -> Result<Opened<Vec<u8>>, Reject> {
        let h = Header::parse(envelope, self.max_version)?;
        if h.sender_id == self.own_id {
            return Err(Reject::OwnId(h.sender_id));
        }
        if h.sender_id != self.peer_id {
            return Err(Reject::UnknownSender {
                sender_id: h.sender_id,
                peer_id: self.peer_id,
            });
        }
        let sender_id = h.sender_id;
        if h.epoch.start_ns > now.unix_ns.saturating_add(MAX_EPOCH_LEAD.as_nanos() as u64) {
            return Err(Reject::FutureEpoch {
                sender_id,
                start_ns: h.epoch.start_ns,
                now_ns: now.unix_ns,
            });
        }
        let echoes_us = h.echo == Some(self.own_epoch);
        let replay = |r: Replay| match r {
            Replay::Duplicate => Reject::Duplicate {
                sender_id,
                counter: h.counter,
            },
            Replay::TooOld => Reject::TooOld {
                sender_id,
                counter: h.counter,
            },
        };
        let (aad, sealed) = envelope.split_at(HEADER_LEN);

        if let Some(cur) = self.current.as_mut().filter(|c| c.epoch == h.epoch) {
            if !echoes_us {
                return Err(Reject::Unconfirmed { sender_id });
            }
            let window = &mut cur.windows[h.kind.index()];
            window.check(h.counter).map_err(replay)?;
            let body = decrypt(&cur.cipher, h, aad, sealed)?;
            window.accept(h.counter).map_err(replay)?;
            cur.last_heard = now.mono;
            return Ok(opened(h, false, body));
        }
        if self.retired.contains(&h.epoch) {
            return Err(Reject::RetiredEpoch {
                sender_id,
                start_ns: h.epoch.start_ns,
            });
        }
        // With an accepted epoch, an envelope that does not echo us can
        // teach nothing: refuse it before any key work.
        if self.current.is_some() && !echoes_us {
            return Err(Reject::Unconfirmed { sender_id });
        }

        let known = (self.candidate.as_ref()).is_some_and(|c| c.epoch == h.epoch);
        let (body, cand) = if known {
            // Known just above; the fallback only keeps this panic-free.
            let Some(c) = self.candidate.as_mut() else {
                return Err(Reject::AuthFailed { sender_id });
            };
            (decrypt(&c.cipher, h, aad, sealed)?, c)
        } else {
            self.derivations += 1;
            let cipher = derive_cipher(&self.key, sender_id, h.epoch);
            // A forgery under a (claimed) new epoch changes nothing.
            let body = decrypt(&cipher, h, aad, sealed)?;
            let fresh = Candidate {
                epoch: h.epoch,
                cipher,
                refused: [None; Kind::ALL.len()],
            };
            (body, self.candidate.insert(fresh))
        };
        // Authentic: only now may state change.
        let refuse = |cand: &mut Candidate| {
            let newest = &mut cand.refused[h.kind.index()];
            *newest = (*newest).max(Some(h.counter));
        };
        if !echoes_us {
            refuse(cand);
            self.unconfirmed = Some((h.epoch, h.version, body));
            // No epoch accepted yet: follow the latest-starting one heard,
            // so a replayed earlier run does not displace the live one.
            if self.echo.is_none_or(|e| h.epoch.start_ns >= e.start_ns) {
                self.echo = Some(h.epoch);
            }
            return Err(Reject::Unconfirmed { sender_id });
        }
        let mut recovery = false;
        if let Some(cur) = &self.current {
            let newer = h.epoch.start_ns > cur.epoch.start_ns;
            let silent = now.mono.saturating_sub(cur.last_heard) >= RECOVER_AFTER;
            if !newer && !silent {
                refuse(cand);
                // Sealed during this run of ours by a run of the peer we
                // never accepted: the peer restarted with its clock behind.
                // Let it hear us while its old run falls silent.
                self.echo = Some(h.epoch);
                return Err(Reject::StaleEpoch {
                    sender_id,
                    start_ns: h.epoch.start_ns,
                    newest_start_ns: cur.epoch.start_ns,
                });
            }
            recovery = !newer;
        }
        // What was refused while the epoch was a candidate stays refused:
        // those envelopes must not be replayed into the new window.
        let mut windows: [ReplayWindow; Kind::ALL.len()] = Default::default();
        for (w, refused) in windows.iter_mut().zip(cand.refused) {
            if let Some(n) = refused {
                w.refuse_up_to(n);
            }
        }
        windows[h.kind.index()].accept(h.counter).map_err(replay)?;
        let Some(cand) = self.candidate.take() else {
            return Err(Reject::AuthFailed { sender_id });
        };
        if recovery {
            self.counters.recoveries = self.counters.recoveries.saturating_add(1);
        }
        let fresh = Current {
            epoch: h.epoch,
            cipher: cand.cipher,
            windows,
            last_heard: now.mono,
        };
        if let Some(old) = self.current.replace(fresh) {
            if self.retired.len() == RETIRED_MAX {
                self.retired.pop_front();
            }
            self.retired.push_back(old.epoch);
        }
        self.echo = Some(h.epoch);
        Ok(opened(h, true, body))
    }
}

fn opened(h: Header, new_epoch: bool, body: Vec<u8>) -> Opened<Vec<u8>> {
    Opened {
        sender_id: h.sender_id,
        kind: h.kind,
        epoch: h.epoch,
        counter: h.counter,
        version: h.version,
        advert: None,
        new_epoch,
        body,
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
        f.debug_struct("Opener")
            .field("own_id", &self.own_id)
            .field("peer_id", &self.peer_id)
            .field("own_epoch", &self.own_epoch)
            .field("current", &self.current.as_ref().map(|c| c.epoch))
            .field("retired", &self.retired.len())
            .field("echo", &self.echo)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}
