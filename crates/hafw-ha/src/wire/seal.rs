//! The sending side: one [`Sealer`] per node run, shared by HA1 and HA2.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use super::codec;
use super::envelope::{Header, Kind, MAX_PLAINTEXT_LEN};
use super::keys::{derive_cipher, Epoch, PairKey};
use crate::msg::Message;
use crate::version::{Advert, POLICY_SCHEMA, PROTOCOL};

/// Seals messages from one node in one run (epoch).
///
/// Create exactly one per process run and use it for both kinds: a second
/// sealer with an older epoch start would be refused by the peer as stale.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    node_id: u32,
    epoch: Epoch,
    /// The peer's epoch, as this node's opener last vouched for it
    /// ([`crate::wire::Opener::echo`]): the peer accepts only envelopes that
    /// echo its current run.
    echo: Option<Epoch>,
    /// Next counter per kind. `u64::MAX` is never used, so "exhausted" is
    /// representable without a wider type.
    next: [u64; Kind::ALL.len()],
    /// The protocol version sealed with, shared by the sealers of one run
    /// ([`Sealer::split`]): HA1's negotiation sets it, HA2 follows.
    version: Arc<AtomicU8>,
    /// What heartbeats of version 3 and later say of this node.
    advert: Advert,
}

/// Why nothing was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// The kind's 2^64 - 1 counters are used up: start a new epoch (a new
    /// `Sealer`) rather than reuse a nonce.
    CounterExhausted(Kind),
    /// The plaintext does not fit in one envelope.
    TooLong { len: usize, max: usize },
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::CounterExhausted(kind) => write!(
                f,
                "{kind:?} message counter exhausted: restart HA with a new epoch (a new Sealer)"
            ),
            SealError::TooLong { len, max } => write!(
                f,
                "plaintext of {len} bytes exceeds the {max}-byte envelope limit: split it"
            ),
        }
    }
}

impl std::error::Error for SealError {}

impl Sealer {
    /// `epoch_start_ns`: wall clock at this run's start, nanoseconds since
    /// the UNIX epoch; `epoch_random`: 8 bytes from the OS's CSPRNG. Both
    /// come from the caller, as the cores read no clock and no entropy.
    pub fn new(key: &PairKey, node_id: u32, epoch_start_ns: u64, epoch_random: [u8; 8]) -> Sealer {
        let epoch = Epoch {
            start_ns: epoch_start_ns,
            random: epoch_random,
        };
        Sealer {
            cipher: derive_cipher(key, node_id, epoch),
            node_id,
            epoch,
            echo: None,
            next: [0; Kind::ALL.len()],
            version: Arc::new(AtomicU8::new(PROTOCOL)),
            advert: Advert::new(env!("CARGO_PKG_VERSION"), PROTOCOL, POLICY_SCHEMA),
        }
    }

    /// What this node advertises; it also starts speaking the advert's
    /// maximum (a negotiation starts at ours).
    pub fn set_advert(&mut self, advert: Advert) {
        self.version.store(advert.protocol_max, Ordering::Relaxed);
        self.advert = advert;
    }

    /// The protocol version the following envelopes are sealed with, by
    /// this sealer and the other one of its [`Sealer::split`].
    pub fn set_version(&self, version: u8) {
        self.version.store(version, Ordering::Relaxed);
    }

    pub fn version(&self) -> u8 {
        self.version.load(Ordering::Relaxed)
    }

    /// What the following envelopes echo: the caller copies its opener's
    /// [`crate::wire::Opener::echo`] here after each envelope it opens.
    pub fn set_echo(&mut self, echo: Option<Epoch>) {
        self.echo = echo;
    }

    pub fn node_id(&self) -> u32 {
        self.node_id
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    pub fn seal(&mut self, kind: Kind, msg: &Message) -> Result<Vec<u8>, SealError> {
        self.seal_at(kind, self.version(), msg)
    }

    /// Seals `msg` in protocol `version` rather than the current one (a
    /// probe of [`crate::version::Negotiation::speak_at`]).
    pub fn seal_at(
        &mut self,
        kind: Kind,
        version: u8,
        msg: &Message,
    ) -> Result<Vec<u8>, SealError> {
        let plaintext = codec::encode_v(version, msg, Some(&self.advert));
        self.seal_bytes_at(kind, version, &plaintext)
    }

    /// Seals an arbitrary payload (HA2 session and config sync define
    /// their own) in the current version.
    pub fn seal_bytes(&mut self, kind: Kind, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        self.seal_bytes_at(kind, self.version(), plaintext)
    }

    fn seal_bytes_at(
        &mut self,
        kind: Kind,
        version: u8,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(SealError::TooLong {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_LEN,
            });
        }
        let slot = &mut self.next[kind.index()];
        let counter = *slot;
        if counter == u64::MAX {
            return Err(SealError::CounterExhausted(kind));
        }
        let header = Header {
            version,
            kind,
            sender_id: self.node_id,
            epoch: self.epoch,
            echo: self.echo,
            counter,
        };
        let aad = header.to_bytes();
        let sealed = self.cipher.encrypt(
            Nonce::from_slice(&header.nonce()),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        );
        // ChaCha20-Poly1305 refuses only messages over 256 GiB; the length
        // check above keeps far below that. Still, report rather than panic,
        // and do not burn the counter.
        let Ok(body) = sealed else {
            return Err(SealError::TooLong {
                len: plaintext.len(),
                max: MAX_PLAINTEXT_LEN,
            });
        };
        // Advance only once the envelope exists; the counter is never
        // handed out twice either way.
        *slot = counter + 1;
        let mut out = Vec::with_capacity(aad.len() + body.len());
        out.extend_from_slice(&aad);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// One sealer per kind (HA1 datagrams, HA2 frames), same epoch: the
    /// nonce carries the kind, so the two never share a nonce, and each can
    /// be owned by the thread that uses it. A real-time HA thread that had
    /// to take a lock the sync thread holds would wait for that thread to
    /// be scheduled again: on a saturated host, for a hundred milliseconds
    /// and more (priority inversion).
    pub fn split(self) -> (KindSealer, KindSealer) {
        let ha1 = Sealer {
            cipher: self.cipher.clone(),
            node_id: self.node_id,
            epoch: self.epoch,
            echo: self.echo,
            next: self.next,
            version: Arc::clone(&self.version),
            advert: self.advert.clone(),
        };
        (
            KindSealer {
                inner: ha1,
                kind: Kind::Ha1Datagram,
            },
            KindSealer {
                inner: self,
                kind: Kind::Ha2Frame,
            },
        )
    }

    #[cfg(test)]
    pub(crate) fn set_next_counter(&mut self, kind: Kind, next: u64) {
        self.next[kind.index()] = next;
    }
}

/// A [`Sealer`] that seals one kind only (from [`Sealer::split`]).
pub struct KindSealer {
    inner: Sealer,
    kind: Kind,
}

impl KindSealer {
    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn epoch(&self) -> Epoch {
        self.inner.epoch
    }

    /// See [`Sealer::set_echo`].
    pub fn set_echo(&mut self, echo: Option<Epoch>) {
        self.inner.set_echo(echo);
    }

    pub fn seal(&mut self, msg: &Message) -> Result<Vec<u8>, SealError> {
        self.inner.seal(self.kind, msg)
    }

    /// See [`Sealer::seal_at`].
    pub fn seal_at(&mut self, version: u8, msg: &Message) -> Result<Vec<u8>, SealError> {
        self.inner.seal_at(self.kind, version, msg)
    }

    /// See [`Sealer::set_version`].
    pub fn set_version(&self, version: u8) {
        self.inner.set_version(version);
    }

    pub fn version(&self) -> u8 {
        self.inner.version()
    }

    pub fn seal_bytes(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        self.inner.seal_bytes(self.kind, plaintext)
    }
}

impl fmt::Debug for KindSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindSealer")
            .field("kind", &self.kind)
            .field("sealer", &self.inner)
            .finish()
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("node_id", &self.node_id)
            .field("epoch", &self.epoch)
            .field("echo", &self.echo)
            .field("next", &self.next)
            .field("version", &self.version())
            .field("advert", &self.advert)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::envelope::{HEADER_LEN, MAX_ENVELOPE_LEN, TAG_LEN};
    use std::collections::HashSet;

    fn psk() -> PairKey {
        let psk =
            crate::wire::Psk::from_file_bytes(b"0123456789abcdef0123456789abcdef", "test.key");
        PairKey::for_tests(&psk.unwrap())
    }

    #[test]
    fn split_sealers_never_share_a_nonce_and_both_open() {
        let psk = psk();
        let (mut ha1, mut ha2) = Sealer::new(&psk, 1, 5, [3; 8]).split();
        assert_eq!(
            (ha1.kind(), ha2.kind()),
            (Kind::Ha1Datagram, Kind::Ha2Frame)
        );
        let me = Epoch {
            start_ns: 6,
            random: [4; 8],
        };
        let mut opener = crate::wire::Opener::new(&psk, 2, 1, me);
        ha1.set_echo(Some(me));
        ha2.set_echo(Some(me));
        let now = crate::wire::Now::new(1_000, std::time::Duration::ZERO);
        let mut nonces = HashSet::new();
        for i in 0..1000u32 {
            for s in [&mut ha1, &mut ha2] {
                let env = s.seal_bytes(&i.to_be_bytes()).unwrap();
                let h = Header::parse(&env, PROTOCOL).unwrap();
                assert_eq!(h.kind, s.kind());
                assert!(nonces.insert(h.nonce()), "nonce reused at {i}");
                assert_eq!(opener.open_bytes(now, &env).unwrap().body, i.to_be_bytes());
            }
        }
    }

    #[test]
    fn nonces_never_repeat() {
        let mut s = Sealer::new(&psk(), 1, 1_700_000_000_000_000_000, [1; 8]);
        let msg = Message::Takeover {
            node_id: 1,
            term: 1,
        };
        let mut nonces = HashSet::new();
        for i in 0..10_000 {
            let kind = if i % 3 == 0 {
                Kind::Ha2Frame
            } else {
                Kind::Ha1Datagram
            };
            let env = s.seal(kind, &msg).unwrap();
            let h = Header::parse(&env, PROTOCOL).unwrap();
            assert!(nonces.insert(h.nonce()), "nonce reused at message {i}");
        }
        assert_eq!(nonces.len(), 10_000);
    }

    #[test]
    fn counter_refuses_to_wrap() {
        let mut s = Sealer::new(&psk(), 1, 5, [0; 8]);
        s.set_next_counter(Kind::Ha1Datagram, u64::MAX - 1);
        let env = s.seal_bytes(Kind::Ha1Datagram, b"last").unwrap();
        assert_eq!(Header::parse(&env, PROTOCOL).unwrap().counter, u64::MAX - 1);
        for _ in 0..3 {
            assert_eq!(
                s.seal_bytes(Kind::Ha1Datagram, b"x"),
                Err(SealError::CounterExhausted(Kind::Ha1Datagram))
            );
        }
        // The other kind's sequence is independent.
        let env = s.seal_bytes(Kind::Ha2Frame, b"y").unwrap();
        assert_eq!(Header::parse(&env, PROTOCOL).unwrap().counter, 0);
    }

    #[test]
    fn plaintext_size_limit() {
        let mut s = Sealer::new(&psk(), 1, 5, [0; 8]);
        let max = vec![0u8; MAX_PLAINTEXT_LEN];
        let env = s.seal_bytes(Kind::Ha2Frame, &max).unwrap();
        assert_eq!(env.len(), MAX_ENVELOPE_LEN);
        assert_eq!(env.len(), HEADER_LEN + MAX_PLAINTEXT_LEN + TAG_LEN);
        let over = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        assert_eq!(
            s.seal_bytes(Kind::Ha2Frame, &over),
            Err(SealError::TooLong {
                len: MAX_PLAINTEXT_LEN + 1,
                max: MAX_PLAINTEXT_LEN
            })
        );
        // A refused seal does not consume a counter.
        let env = s.seal_bytes(Kind::Ha2Frame, b"").unwrap();
        assert_eq!(Header::parse(&env, PROTOCOL).unwrap().counter, 1);
    }
}
