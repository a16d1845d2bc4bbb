//! Rule hits over HA2: each node's per-rule counter totals, so either node
//! shows the pair's total (`hafw rules`). Hand-encoded like the other
//! payloads: every byte string decodes to one [`HitsMessage`] or an error,
//! never a panic.
//!
//! ```text
//! 'H' | version (1) | type u8 (1 Counts) | part u16 | parts u16 |
//! count u16 | count x ( len u8 | len bytes of UTF-8 key |
//!                       packets u64 | bytes u64 | last_hit_ms u64 )
//! ```
//! A key is a counted object's comment (`rule NAME`, `dnat NAME`, ...;
//! `hafw_model::render::nft::counted`); `last_hit_ms` is Unix ms, 0 for
//! never. A node's totals go as `parts` messages of at most
//! [`MAX_ENTRIES`] entries each (each message stands alone: the receiver
//! takes each entry as it comes). A node of an older release reads the
//! `'H'` payload as a bad session-sync message, counts and drops it.

use std::fmt;

use crate::codec::{self, Reader};

pub const CHANNEL: u8 = b'H';
pub const VERSION: u8 = 1;
const T_COUNTS: u8 = 1;
/// Entries per message: 1,000 keys of 255 bytes stay inside one envelope
/// (`wire::MAX_PLAINTEXT_LEN`, 64 KiB less the header) with room to spare
/// only up to ~230 entries of the longest keys, so the encoder also cuts
/// by size ([`MAX_BYTES`]).
pub const MAX_ENTRIES: usize = 1000;
/// Payload bytes per message at most.
pub const MAX_BYTES: usize = 60_000;
/// Keys longer than this are not sent (a rule name is far shorter).
pub const MAX_KEY: usize = 255;

/// One counted object's totals on the sending node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub key: String,
    pub packets: u64,
    pub bytes: u64,
    /// Unix ms of the last sample that saw the counter grow; 0: never.
    pub last_hit_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitsMessage {
    /// This message is part `part` (from 0) of `parts`.
    pub part: u16,
    pub parts: u16,
    pub hits: Vec<Hit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    WrongChannel(u8),
    Version(u8),
    Type(u8),
    /// More entries than [`MAX_ENTRIES`].
    TooMany(usize),
    /// `part` is not below `parts`.
    Part(u16, u16),
    KeyNotUtf8,
    EmptyKey,
    Codec(codec::Error),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::WrongChannel(c) => write!(f, "not a rule-hits message (channel {c:#x})"),
            DecodeError::Version(v) => write!(f, "rule-hits version {v}, this node reads 1"),
            DecodeError::Type(t) => write!(f, "unknown rule-hits message type {t}"),
            DecodeError::TooMany(n) => {
                write!(f, "{n} rule-hits entries, more than {MAX_ENTRIES}")
            }
            DecodeError::Part(p, n) => write!(f, "rule-hits part {p} of {n}"),
            DecodeError::KeyNotUtf8 => write!(f, "a rule-hits key is not UTF-8"),
            DecodeError::EmptyKey => write!(f, "a rule-hits key is empty"),
            DecodeError::Codec(e) => write!(f, "rule hits: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<codec::Error> for DecodeError {
    fn from(e: codec::Error) -> Self {
        DecodeError::Codec(e)
    }
}

/// One entry's encoded size.
fn entry_len(h: &Hit) -> usize {
    1 + h.key.len() + 24
}

const HEADER: usize = 1 + 1 + 1 + 2 + 2 + 2;

/// Encodes `hits` as messages of at most [`MAX_ENTRIES`] entries and
/// [`MAX_BYTES`] bytes. Keys empty or over [`MAX_KEY`] bytes are left out
/// (the policy refuses such names; the receiver would drop them). Nothing
/// to send is one empty message, so the peer hears "no counters".
pub fn encode(hits: &[Hit]) -> Vec<Vec<u8>> {
    let mut groups: Vec<Vec<&Hit>> = vec![Vec::new()];
    let mut size = HEADER;
    for h in hits
        .iter()
        .filter(|h| !h.key.is_empty() && h.key.len() <= MAX_KEY)
    {
        let n = entry_len(h);
        let full = groups.last().is_some_and(|g| g.len() >= MAX_ENTRIES);
        if full || size + n > MAX_BYTES {
            groups.push(Vec::new());
            size = HEADER;
        }
        size += n;
        if let Some(g) = groups.last_mut() {
            g.push(h);
        }
    }
    // At most 10,000 rules' worth of messages: far below u16.
    let parts = u16::try_from(groups.len()).unwrap_or(u16::MAX);
    groups
        .iter()
        .enumerate()
        .take(usize::from(parts))
        .map(|(i, g)| {
            let mut out = Vec::with_capacity(MAX_BYTES.min(HEADER + g.len() * 40));
            out.extend_from_slice(&[CHANNEL, VERSION, T_COUNTS]);
            out.extend_from_slice(&(i as u16).to_be_bytes());
            out.extend_from_slice(&parts.to_be_bytes());
            codec::put_u16_count(&mut out, g.len());
            for h in g {
                out.push(h.key.len() as u8);
                out.extend_from_slice(h.key.as_bytes());
                out.extend_from_slice(&h.packets.to_be_bytes());
                out.extend_from_slice(&h.bytes.to_be_bytes());
                out.extend_from_slice(&h.last_hit_ms.to_be_bytes());
            }
            out
        })
        .collect()
}

pub fn decode(bytes: &[u8]) -> Result<HitsMessage, DecodeError> {
    let mut r = Reader::new(bytes);
    let channel = r.u8("channel")?;
    if channel != CHANNEL {
        return Err(DecodeError::WrongChannel(channel));
    }
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let t = r.u8("type")?;
    if t != T_COUNTS {
        return Err(DecodeError::Type(t));
    }
    let part = r.u16("part")?;
    let parts = r.u16("parts")?;
    if part >= parts {
        return Err(DecodeError::Part(part, parts));
    }
    let count = usize::from(r.u16("count")?);
    if count > MAX_ENTRIES {
        return Err(DecodeError::TooMany(count));
    }
    // Each entry is at least 26 bytes: a count the payload cannot hold is
    // refused before anything is allocated for it.
    if r.remaining() < count * 26 {
        return Err(DecodeError::Codec(codec::Error::Truncated {
            what: "entries",
            need: count * 26,
            have: r.remaining(),
        }));
    }
    let mut hits = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(r.u8("key length")?);
        if len == 0 {
            return Err(DecodeError::EmptyKey);
        }
        let key = std::str::from_utf8(r.bytes(len, "key")?)
            .map_err(|_| DecodeError::KeyNotUtf8)?
            .to_string();
        hits.push(Hit {
            key,
            packets: r.u64("packets")?,
            bytes: r.u64("bytes")?,
            last_hit_ms: r.u64("last hit")?,
        });
    }
    r.finish()?;
    Ok(HitsMessage { part, parts, hits })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(key: &str, n: u64) -> Hit {
        Hit {
            key: key.into(),
            packets: n,
            bytes: n * 60,
            last_hit_ms: 1_700_000_000_000 + n,
        }
    }

    #[test]
    fn round_trip_in_one_message() {
        let hits = vec![hit("rule web-in", 5), hit("default deny a -> b", 0)];
        let msgs = encode(&hits);
        assert_eq!(msgs.len(), 1);
        let m = decode(&msgs[0]).unwrap();
        assert_eq!((m.part, m.parts), (0, 1));
        assert_eq!(m.hits, hits);
    }

    #[test]
    fn nothing_is_one_empty_message() {
        let msgs = encode(&[]);
        assert_eq!(msgs.len(), 1);
        assert_eq!(decode(&msgs[0]).unwrap().hits, vec![]);
    }

    #[test]
    fn many_rules_split_within_both_bounds() {
        let hits: Vec<Hit> = (0..2500)
            .map(|i| hit(&format!("rule {i:0>200}"), i))
            .collect();
        let msgs = encode(&hits);
        assert!(msgs.len() > 2, "{}", msgs.len());
        let mut back = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            assert!(m.len() <= MAX_BYTES, "{}", m.len());
            let d = decode(m).unwrap();
            assert_eq!((usize::from(d.part), usize::from(d.parts)), (i, msgs.len()));
            assert!(d.hits.len() <= MAX_ENTRIES);
            back.extend(d.hits);
        }
        assert_eq!(back, hits);
    }

    #[test]
    fn overlong_and_empty_keys_are_not_sent() {
        let long = "x".repeat(MAX_KEY + 1);
        let msgs = encode(&[hit(&long, 1), hit("", 2), hit("rule a", 3)]);
        assert_eq!(decode(&msgs[0]).unwrap().hits, vec![hit("rule a", 3)]);
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let good = encode(&[hit("rule a", 1), hit("rule b", 2)]).remove(0);
        // Every truncation.
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "prefix {n}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        let mut b = good.clone();
        b[0] = b'C';
        assert_eq!(decode(&b), Err(DecodeError::WrongChannel(b'C')));
        let mut b = good.clone();
        b[1] = 2;
        assert_eq!(decode(&b), Err(DecodeError::Version(2)));
        let mut b = good.clone();
        b[2] = 9;
        assert_eq!(decode(&b), Err(DecodeError::Type(9)));
        let mut b = good.clone();
        b[3..5].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Part(1, 1)));
        let mut b = good.clone();
        b[7..9].copy_from_slice(&(MAX_ENTRIES as u16 + 1).to_be_bytes());
        assert_eq!(decode(&b), Err(DecodeError::TooMany(MAX_ENTRIES + 1)));
        // A count the payload cannot hold.
        let mut b = good.clone();
        b[7..9].copy_from_slice(&500u16.to_be_bytes());
        assert!(matches!(decode(&b), Err(DecodeError::Codec(_))));
        let mut b = good.clone();
        b[9] = 0;
        assert!(decode(&b).is_err());
        let mut b = good.clone();
        b[10] = 0xff;
        assert_eq!(decode(&b), Err(DecodeError::KeyNotUtf8));
        // Random mutations: a value or an error.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut b = good.clone();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let at = (rng as usize) % b.len();
            b[at] = (rng >> 32) as u8;
            let _ = decode(&b);
        }
    }
}
