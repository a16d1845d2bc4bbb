//! The config-sync payload inside an HA2 envelope, hand-encoded so that
//! every byte string decodes to exactly one [`ConfigMessage`] or an error,
//! without panicking.
//!
//! ```text
//! 'C' | version (1) | type u8 | body
//! type 1 Offer   version u64 | hash [32] | total u32 | offset u32 |
//!                len u32 | len bytes (one chunk of the policy text)
//! type 2 Result  version u64 | hash [32] | flags u8 (bit 0 applied,
//!                bit 1 error present, others 0) | len u16 | len bytes
//!                of UTF-8 error text (len 0 without bit 1)
//! type 3 Pending version u64 | hash [32] | remaining_ms u32 | back_to u64
//! ```
//! Pending (from the active) says its version waits for `hafw config
//! confirm` for `remaining_ms` more (0: confirmed), then goes back to
//! version `back_to`'s policy; a passive that is active by then does it.
//! A node without it counts it as a bad message and drops it: the pair
//! then works as before, without the failover case of a pending version.
//! A policy longer than [`CHUNK`] bytes goes as several Offers (one
//! envelope each); the receiver assembles them and checks the hash.

use std::fmt;

use crate::codec::Reader;

pub const CHANNEL: u8 = b'C';
pub const VERSION: u8 = 1;
/// Policy bytes per Offer: with the 60-byte header it stays well inside
/// one envelope's plaintext (`wire::MAX_PLAINTEXT_LEN`).
pub const CHUNK: usize = 60_000;
/// The largest policy config sync carries (a deployment file is KBs).
pub const MAX_POLICY_LEN: usize = 16 * 1024 * 1024;
/// Error texts are cut (at a character boundary) to this many bytes.
pub const MAX_ERROR_LEN: usize = 4096;

const T_OFFER: u8 = 1;
const T_RESULT: u8 = 2;
const T_PENDING: u8 = 3;
const F_APPLIED: u8 = 1;
const F_ERROR: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigMessage {
    /// One chunk of a policy: bytes `offset..offset + bytes.len()` of
    /// `total`.
    Offer {
        version: u64,
        hash: [u8; 32],
        total: u32,
        offset: u32,
        bytes: Vec<u8>,
    },
    /// The active's version waits for confirmation (see the module doc).
    Pending {
        version: u64,
        hash: [u8; 32],
        remaining_ms: u32,
        back_to: u64,
    },
    /// The receiving node's verdict on an offered version.
    Result {
        version: u64,
        hash: [u8; 32],
        applied: bool,
        error: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    WrongChannel(u8),
    UnknownVersion(u8),
    UnknownType(u8),
    UnknownFlags(u8),
    /// An error text without the error flag.
    StrayError,
    BadUtf8,
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what, need, have } => write!(
                f,
                "config-sync payload truncated in {what}: needs {need} bytes, has {have}"
            ),
            DecodeError::WrongChannel(c) => {
                write!(f, "not a config-sync payload (channel byte {c:#04x})")
            }
            DecodeError::UnknownVersion(v) => write!(
                f,
                "config-sync version {v} is not supported (this build speaks {VERSION}): \
                 run the same hafw release on both nodes"
            ),
            DecodeError::UnknownType(t) => write!(f, "unknown config-sync message type {t}"),
            DecodeError::UnknownFlags(b) => write!(f, "unknown config result flags {b:#04x}"),
            DecodeError::StrayError => {
                write!(f, "config result carries error text without its flag")
            }
            DecodeError::BadUtf8 => write!(f, "config result error text is not UTF-8"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} bytes after the config-sync message"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<crate::codec::Error> for DecodeError {
    fn from(e: crate::codec::Error) -> DecodeError {
        match e {
            crate::codec::Error::Truncated { what, need, have } => {
                DecodeError::Truncated { what, need, have }
            }
            crate::codec::Error::TrailingBytes(n) => DecodeError::TrailingBytes(n),
        }
    }
}

/// `s` cut to at most `max` bytes without splitting a character.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub fn encode(msg: &ConfigMessage) -> Vec<u8> {
    let mut out = vec![CHANNEL, VERSION];
    match msg {
        ConfigMessage::Offer {
            version,
            hash,
            total,
            offset,
            bytes,
        } => {
            // Callers chunk by `CHUNK`; a longer slice is cut, not wrapped.
            let chunk = &bytes[..bytes.len().min(u32::MAX as usize)];
            out.reserve(57 + chunk.len());
            out.push(T_OFFER);
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(hash);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        ConfigMessage::Result {
            version,
            hash,
            applied,
            error,
        } => {
            out.push(T_RESULT);
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(hash);
            let mut flags = 0;
            if *applied {
                flags |= F_APPLIED;
            }
            if error.is_some() {
                flags |= F_ERROR;
            }
            out.push(flags);
            let text = truncate_utf8(error.as_deref().unwrap_or(""), usize::from(u16::MAX));
            out.extend_from_slice(&(text.len() as u16).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        ConfigMessage::Pending {
            version,
            hash,
            remaining_ms,
            back_to,
        } => {
            out.push(T_PENDING);
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(hash);
            out.extend_from_slice(&remaining_ms.to_be_bytes());
            out.extend_from_slice(&back_to.to_be_bytes());
        }
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<ConfigMessage, DecodeError> {
    let mut r = Reader::new(bytes);
    let channel = r.u8("channel")?;
    if channel != CHANNEL {
        return Err(DecodeError::WrongChannel(channel));
    }
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let msg = match r.u8("type")? {
        T_OFFER => {
            let version = r.u64("version")?;
            let hash = r.array("hash")?;
            let total = r.u32("total")?;
            let offset = r.u32("offset")?;
            let len = r.u32("len")? as usize;
            let bytes = r.bytes(len, "policy bytes")?.to_vec();
            ConfigMessage::Offer {
                version,
                hash,
                total,
                offset,
                bytes,
            }
        }
        T_RESULT => {
            let version = r.u64("version")?;
            let hash = r.array("hash")?;
            let flags = r.u8("flags")?;
            if flags & !(F_APPLIED | F_ERROR) != 0 {
                return Err(DecodeError::UnknownFlags(flags));
            }
            let len = usize::from(r.u16("error length")?);
            let text = r.bytes(len, "error text")?;
            let error = if flags & F_ERROR != 0 {
                let s = std::str::from_utf8(text).map_err(|_| DecodeError::BadUtf8)?;
                Some(s.to_owned())
            } else if len != 0 {
                return Err(DecodeError::StrayError);
            } else {
                None
            };
            ConfigMessage::Result {
                version,
                hash,
                applied: flags & F_APPLIED != 0,
                error,
            }
        }
        T_PENDING => ConfigMessage::Pending {
            version: r.u64("version")?,
            hash: r.array("hash")?,
            remaining_ms: r.u32("remaining_ms")?,
            back_to: r.u64("back_to")?,
        },
        other => return Err(DecodeError::UnknownType(other)),
    };
    r.finish()?;
    Ok(msg)
}
