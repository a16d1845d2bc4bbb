//! The envelope around every sealed message: a clear header (also the
//! AEAD's associated data, so none of it can be altered) followed by the
//! ciphertext and the Poly1305 tag.
//!
//! ```text
//! offset size field
//!      0    2 magic "HF"
//!      2    1 version: the message's protocol version (2 to 4, see
//!             [`crate::version`]); the layout is the same in all
//!      3    1 kind (1 = HA1 datagram, 2 = HA2 stream frame)
//!      4    4 sender node id, u32 BE
//!      8   16 epoch: start ns u64 BE, then 8 random bytes
//!     24   16 echo: the receiver's epoch as the sender last heard it
//!             (all zero: none heard yet)
//!     40    8 counter, u64 BE
//!     48    n ciphertext (n = plaintext length)
//!   48+n   16 Poly1305 tag
//! ```
//!
//! The echo is the receiver's proof of freshness: its epoch is new at
//! each of its starts (8 random bytes from the OS), so nothing recorded
//! before that start can carry it (see [`super::open`]).

use super::keys::Epoch;

pub const MAGIC: [u8; 2] = *b"HF";
/// The version the header layout was introduced with: version 2 envelopes
/// are byte for byte those of the releases before negotiation.
pub const VERSION: u8 = crate::version::PROTOCOL_MIN;
pub const HEADER_LEN: usize = 48;
pub const TAG_LEN: usize = 16;
/// Longest envelope, so a receiver's buffer is bounded and a stream
/// framing of u16-ish lengths is enough.
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;
/// Longest plaintext that fits in one envelope.
pub const MAX_PLAINTEXT_LEN: usize = MAX_ENVELOPE_LEN - HEADER_LEN - TAG_LEN;

/// Which channel an envelope belongs to. Each kind has its own counter and
/// replay window: HA2 frames queued behind a bulk sync must not be judged
/// too old because HA1 heartbeats moved on meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// HA1: heartbeats and takeover requests, one per datagram.
    Ha1Datagram = 1,
    /// HA2: session sync and config sync, framed on a stream.
    Ha2Frame = 2,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Ha1Datagram, Kind::Ha2Frame];

    pub fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Ha1Datagram),
            2 => Some(Kind::Ha2Frame),
            _ => None,
        }
    }

    /// Dense index for per-kind tables.
    pub(crate) fn index(self) -> usize {
        self as usize - 1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The protocol version of the message (its plaintext's format).
    pub version: u8,
    pub kind: Kind,
    pub sender_id: u32,
    pub epoch: Epoch,
    /// The receiver's epoch as the sender knew it; `None` is sent as zeros.
    pub echo: Option<Epoch>,
    pub counter: u64,
}

/// What is wrong with an envelope's framing, before any crypto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    TooShort(usize),
    TooLong(usize),
    BadMagic([u8; 2]),
    BadVersion(u8),
    UnknownKind(u8),
}

impl Header {
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&MAGIC);
        b[2] = self.version;
        b[3] = self.kind as u8;
        b[4..8].copy_from_slice(&self.sender_id.to_be_bytes());
        b[8..24].copy_from_slice(&self.epoch.to_bytes());
        if let Some(echo) = self.echo {
            b[24..40].copy_from_slice(&echo.to_bytes());
        }
        b[40..48].copy_from_slice(&self.counter.to_be_bytes());
        b
    }

    /// Checks the envelope's length and parses its header. Order matters
    /// for the counters: length first (nothing else can be read safely),
    /// then magic (not ours at all), then version (ours, another release:
    /// accepted from [`VERSION`] up to `max`, this node's maximum).
    pub fn parse(envelope: &[u8], max: u8) -> Result<Header, HeaderError> {
        if envelope.len() < HEADER_LEN + TAG_LEN {
            return Err(HeaderError::TooShort(envelope.len()));
        }
        if envelope.len() > MAX_ENVELOPE_LEN {
            return Err(HeaderError::TooLong(envelope.len()));
        }
        let h: &[u8; HEADER_LEN] = match envelope[..HEADER_LEN].try_into() {
            Ok(h) => h,
            Err(_) => return Err(HeaderError::TooShort(envelope.len())),
        };
        if h[0..2] != MAGIC {
            return Err(HeaderError::BadMagic([h[0], h[1]]));
        }
        if !(VERSION..=max).contains(&h[2]) {
            return Err(HeaderError::BadVersion(h[2]));
        }
        let kind = Kind::from_u8(h[3]).ok_or(HeaderError::UnknownKind(h[3]))?;
        let mut id = [0u8; 4];
        id.copy_from_slice(&h[4..8]);
        let mut epoch = [0u8; Epoch::LEN];
        epoch.copy_from_slice(&h[8..24]);
        let mut echo = [0u8; Epoch::LEN];
        echo.copy_from_slice(&h[24..40]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&h[40..48]);
        Ok(Header {
            version: h[2],
            kind,
            sender_id: u32::from_be_bytes(id),
            epoch: Epoch::from_bytes(epoch),
            echo: (echo != [0u8; Epoch::LEN]).then(|| Epoch::from_bytes(echo)),
            counter: u64::from_be_bytes(counter),
        })
    }

    /// 96-bit nonce: 3 zero bytes, the kind, the counter (u64 BE). The key
    /// is unique per (sender, epoch) and the sealer never reuses a counter
    /// within a kind, so no nonce repeats under one key.
    pub fn nonce(self) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[3] = self.kind as u8;
        n[4..].copy_from_slice(&self.counter.to_be_bytes());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            version: VERSION,
            kind: Kind::Ha2Frame,
            sender_id: 0xA1B2_C3D4,
            epoch: Epoch {
                start_ns: 0x1122_3344_5566_7788,
                random: [1, 2, 3, 4, 5, 6, 7, 8],
            },
            echo: Some(Epoch {
                start_ns: 0x99,
                random: [0xEE; 8],
            }),
            counter: 0x0102_0304_0506_0708,
        }
    }

    fn envelope(h: Header) -> Vec<u8> {
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(&[0u8; TAG_LEN]);
        v
    }

    #[test]
    fn header_layout_is_the_documented_one() {
        let b = header().to_bytes();
        assert_eq!(&b[0..4], b"HF\x02\x02");
        assert_eq!(&b[4..8], &[0xA1, 0xB2, 0xC3, 0xD4]);
        assert_eq!(&b[8..16], &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        assert_eq!(&b[16..24], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[24..32], &0x99u64.to_be_bytes());
        assert_eq!(&b[32..40], &[0xEE; 8]);
        assert_eq!(&b[40..48], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Header::parse(&envelope(header()), VERSION), Ok(header()));
        // No echo yet: sixteen zeros, read back as none.
        let none = Header {
            echo: None,
            ..header()
        };
        assert_eq!(&none.to_bytes()[24..40], &[0u8; 16]);
        assert_eq!(Header::parse(&envelope(none), VERSION), Ok(none));
    }

    #[test]
    fn nonce_carries_kind_and_counter() {
        assert_eq!(header().nonce(), [0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
        let ha1 = Header {
            kind: Kind::Ha1Datagram,
            ..header()
        };
        assert_ne!(ha1.nonce(), header().nonce());
    }

    #[test]
    fn framing_errors_in_order() {
        let good = envelope(header());
        assert_eq!(
            Header::parse(&good[..63], 3),
            Err(HeaderError::TooShort(63))
        );
        let long = vec![0u8; MAX_ENVELOPE_LEN + 1];
        assert_eq!(
            Header::parse(&long, 3),
            Err(HeaderError::TooLong(MAX_ENVELOPE_LEN + 1))
        );
        let mut b = good.clone();
        b[1] = b'G';
        assert_eq!(Header::parse(&b, 3), Err(HeaderError::BadMagic(*b"HG")));
        let mut b = good.clone();
        b[2] = 1;
        assert_eq!(Header::parse(&b, 3), Err(HeaderError::BadVersion(1)));
        for k in [0u8, 3, 255] {
            let mut b = good.clone();
            b[3] = k;
            assert_eq!(Header::parse(&b, 3), Err(HeaderError::UnknownKind(k)));
        }
        // Versions from 2 up to the receiver's maximum, no other.
        for (v, max, ok) in [
            (2, 2, true),
            (3, 2, false),
            (3, 3, true),
            (4, 3, false),
            (4, 4, true),
        ] {
            let mut b = good.clone();
            b[2] = v;
            let r = Header::parse(&b, max);
            assert_eq!(r.is_ok(), ok, "version {v} at max {max}: {r:?}");
            if ok {
                assert_eq!(r.map(|h| h.version), Ok(v));
            } else {
                assert_eq!(r, Err(HeaderError::BadVersion(v)));
            }
        }
        let max = vec![0u8; MAX_ENVELOPE_LEN];
        assert_eq!(Header::parse(&max, 3), Err(HeaderError::BadMagic([0, 0])));
    }
}
