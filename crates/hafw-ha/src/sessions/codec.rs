//! The session-sync payload: what rides inside an HA2 envelope
//! (`Sealer::seal_bytes(Kind::Ha2Frame, ..)`), hand-encoded with a fixed
//! layout so that every byte string decodes to exactly one [`Frame`] or an
//! error, and decoding never panics (swept in `sweep.rs`).
//!
//! ```text
//! offset size field
//!      0    1 channel 'S' (config sync uses 'C': the daemon dispatches HA2
//!             payloads on this byte)
//!      1    1 version (1)
//!      2    1 type
//!      3    8 stream, u64 (the sender's run; 0 in a receiver's request
//!             before it knows one)
//!     11      body:
//! type 1 Update     seq u64 | count u16 | count × entry
//! type 2 Destroy    seq u64 | count u16 | count × key
//! type 3 BulkStart  seq u64 | gen u64
//! type 4 BulkChunk  seq u64 | gen u64 | count u16 | count × entry
//! type 5 BulkEnd    seq u64 | gen u64 | count u64
//! type 6 Ack        upto u64 | sack u64 (bit i: seq upto+2+i is held) |
//!                   receiver u64
//! type 7 Resync     gen u64 | reason u8 | receiver u64
//!
//! key   (13): src [4] | dst [4] | proto u8 | src_port u16 | dst_port u16
//! entry (39): key | reply src [4] | reply dst [4] | reply src_port u16 |
//!             reply dst_port u16 | status u32 | timeout_s u32 |
//!             flags u8 (bit 0: tcp_state present; others 0) |
//!             tcp_state u8 (0 when absent) | mark u32
//! ```
//! Integers big-endian. The body must end exactly where its counts say;
//! a format change is a new version byte, never a longer body.

use std::fmt;

use super::entry::{Session, SessionKey, Tuple};
use crate::codec::{put_u16_count, Reader};

pub const CHANNEL: u8 = b'S';
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 11;
pub const KEY_LEN: usize = 13;
pub const ENTRY_LEN: usize = 39;
/// Largest payload a sender builds: well under the envelope's plaintext
/// limit (`wire::MAX_PLAINTEXT_LEN`, 65,488), so one message is one
/// envelope and one stream frame.
pub const MAX_PAYLOAD: usize = 60 * 1024;

const T_UPDATE: u8 = 1;
const T_DESTROY: u8 = 2;
const T_BULK_START: u8 = 3;
const T_BULK_CHUNK: u8 = 4;
const T_BULK_END: u8 = 5;
const T_ACK: u8 = 6;
const T_RESYNC: u8 = 7;
const FLAG_TCP_STATE: u8 = 1;

/// How many entries an Update or BulkChunk of at most `max_payload` bytes
/// carries.
pub fn entries_per_message(max_payload: usize) -> usize {
    max_payload.saturating_sub(HEADER_LEN + 18) / ENTRY_LEN
}

/// How many keys a Destroy of at most `max_payload` bytes carries.
pub fn keys_per_message(max_payload: usize) -> usize {
    max_payload.saturating_sub(HEADER_LEN + 10) / KEY_LEN
}

/// One session-sync payload: the sender's stream and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Names one run of a sender: a receiver that sees a new stream knows
    /// the sequence numbers restarted (the active restarted or changed).
    pub stream: u64,
    pub msg: SyncMessage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// New or changed entries, newest state only (coalesced).
    Update {
        seq: u64,
        entries: Vec<Session>,
    },
    Destroy {
        seq: u64,
        keys: Vec<SessionKey>,
    },
    /// A full copy of the table follows; at its end, entries the
    /// generation did not mention are dropped.
    BulkStart {
        seq: u64,
        gen: u64,
    },
    BulkChunk {
        seq: u64,
        gen: u64,
        entries: Vec<Session>,
    },
    /// `count`: the entries the generation's chunks carried, a check.
    BulkEnd {
        seq: u64,
        gen: u64,
        count: u64,
    },
    /// Everything up to `upto` is applied; bit `i` of `sack` says seq
    /// `upto + 2 + i` is held out of order (`upto + 1` is missing).
    /// `receiver`: the receiver's run id (like a sender's stream).
    Ack {
        upto: u64,
        sack: u64,
        receiver: u64,
    },
    /// The receiver cannot continue from what it has: send a bulk. For
    /// `NotSynced`, the frame's stream is the one it cannot place and `gen`
    /// is 0; otherwise they are its stream and the last bulk generation it
    /// saw start there.
    ResyncRequest {
        gen: u64,
        reason: ResyncReason,
        receiver: u64,
    },
}

impl SyncMessage {
    /// The sequence number of messages that are delivered in order.
    pub fn seq(&self) -> Option<u64> {
        match self {
            SyncMessage::Update { seq, .. }
            | SyncMessage::Destroy { seq, .. }
            | SyncMessage::BulkStart { seq, .. }
            | SyncMessage::BulkChunk { seq, .. }
            | SyncMessage::BulkEnd { seq, .. } => Some(*seq),
            SyncMessage::Ack { .. } | SyncMessage::ResyncRequest { .. } => None,
        }
    }
}

/// Why a receiver asks for a bulk. Numbering is part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResyncReason {
    /// Messages from a stream whose bulk start it never saw (it or the
    /// sender restarted).
    NotSynced = 1,
    /// A sequence gap that retransmission did not fill in time.
    Gap = 2,
    /// A bulk generation ended with another count than it received.
    BulkMismatch = 3,
}

impl ResyncReason {
    pub fn from_u8(v: u8) -> Option<ResyncReason> {
        match v {
            1 => Some(ResyncReason::NotSynced),
            2 => Some(ResyncReason::Gap),
            3 => Some(ResyncReason::BulkMismatch),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::NotSynced => "not synced",
            ResyncReason::Gap => "unfilled gap",
            ResyncReason::BulkMismatch => "bulk count mismatch",
        }
    }
}

/// Why a payload is not a session-sync [`Frame`]. After authentication
/// this means the peer runs an incompatible build (or a bug), not an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// Not a session-sync payload (config sync's, or garbage).
    WrongChannel(u8),
    UnknownVersion(u8),
    UnknownType(u8),
    UnknownReason(u8),
    UnknownFlags(u8),
    /// The flags say "no TCP state" but the state byte is not 0.
    StrayTcpState(u8),
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what, need, have } => write!(
                f,
                "session-sync payload truncated in {what}: needs {need} bytes, has {have}"
            ),
            DecodeError::WrongChannel(c) => {
                write!(f, "not a session-sync payload (channel byte {c:#04x})")
            }
            DecodeError::UnknownVersion(v) => write!(
                f,
                "session-sync version {v} is not supported (this build speaks {VERSION}): \
                 run the same hafw release on both nodes"
            ),
            DecodeError::UnknownType(t) => write!(f, "unknown session-sync message type {t}"),
            DecodeError::UnknownReason(r) => write!(f, "unknown resync reason {r}"),
            DecodeError::UnknownFlags(b) => write!(f, "unknown session flag bits {b:#04x}"),
            DecodeError::StrayTcpState(s) => {
                write!(f, "session without TCP state carries state byte {s}")
            }
            DecodeError::TrailingBytes(n) => write!(f, "{n} bytes after the session-sync message"),
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

pub fn encode(frame: &Frame) -> Vec<u8> {
    let body = match &frame.msg {
        SyncMessage::Update { entries, .. } | SyncMessage::BulkChunk { entries, .. } => {
            18 + entries.len() * ENTRY_LEN
        }
        SyncMessage::Destroy { keys, .. } => 10 + keys.len() * KEY_LEN,
        _ => 25,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body);
    out.push(CHANNEL);
    out.push(VERSION);
    let ty = match &frame.msg {
        SyncMessage::Update { .. } => T_UPDATE,
        SyncMessage::Destroy { .. } => T_DESTROY,
        SyncMessage::BulkStart { .. } => T_BULK_START,
        SyncMessage::BulkChunk { .. } => T_BULK_CHUNK,
        SyncMessage::BulkEnd { .. } => T_BULK_END,
        SyncMessage::Ack { .. } => T_ACK,
        SyncMessage::ResyncRequest { .. } => T_RESYNC,
    };
    out.push(ty);
    out.extend_from_slice(&frame.stream.to_be_bytes());
    match &frame.msg {
        SyncMessage::Update { seq, entries } => {
            out.extend_from_slice(&seq.to_be_bytes());
            put_entries(&mut out, entries);
        }
        SyncMessage::Destroy { seq, keys } => {
            out.extend_from_slice(&seq.to_be_bytes());
            put_u16_count(&mut out, keys.len());
            for k in keys {
                put_key(&mut out, k);
            }
        }
        SyncMessage::BulkStart { seq, gen } => {
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(&gen.to_be_bytes());
        }
        SyncMessage::BulkChunk { seq, gen, entries } => {
            out.extend_from_slice(&seq.to_be_bytes());
            out.extend_from_slice(&gen.to_be_bytes());
            put_entries(&mut out, entries);
        }
        SyncMessage::BulkEnd { seq, gen, count } => {
            for v in [seq, gen, count] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        SyncMessage::Ack {
            upto,
            sack,
            receiver,
        } => {
            for v in [upto, sack, receiver] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        SyncMessage::ResyncRequest {
            gen,
            reason,
            receiver,
        } => {
            out.extend_from_slice(&gen.to_be_bytes());
            out.push(*reason as u8);
            out.extend_from_slice(&receiver.to_be_bytes());
        }
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
    let mut r = Reader::new(bytes);
    let channel = r.u8("channel")?;
    if channel != CHANNEL {
        return Err(DecodeError::WrongChannel(channel));
    }
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let ty = r.u8("type")?;
    let stream = r.u64("stream")?;
    let msg = match ty {
        T_UPDATE => SyncMessage::Update {
            seq: r.u64("seq")?,
            entries: entries(&mut r)?,
        },
        T_DESTROY => {
            let seq = r.u64("seq")?;
            let count = usize::from(r.u16("count")?);
            r.expect_remaining(count * KEY_LEN, "keys")?;
            let mut keys = Vec::with_capacity(count);
            for _ in 0..count {
                keys.push(key(&mut r)?);
            }
            SyncMessage::Destroy { seq, keys }
        }
        T_BULK_START => SyncMessage::BulkStart {
            seq: r.u64("seq")?,
            gen: r.u64("gen")?,
        },
        T_BULK_CHUNK => SyncMessage::BulkChunk {
            seq: r.u64("seq")?,
            gen: r.u64("gen")?,
            entries: entries(&mut r)?,
        },
        T_BULK_END => SyncMessage::BulkEnd {
            seq: r.u64("seq")?,
            gen: r.u64("gen")?,
            count: r.u64("count")?,
        },
        T_ACK => SyncMessage::Ack {
            upto: r.u64("upto")?,
            sack: r.u64("sack")?,
            receiver: r.u64("receiver")?,
        },
        T_RESYNC => {
            let gen = r.u64("gen")?;
            let b = r.u8("reason")?;
            let reason = ResyncReason::from_u8(b).ok_or(DecodeError::UnknownReason(b))?;
            SyncMessage::ResyncRequest {
                gen,
                reason,
                receiver: r.u64("receiver")?,
            }
        }
        other => return Err(DecodeError::UnknownType(other)),
    };
    r.finish()?;
    Ok(Frame { stream, msg })
}

fn put_entries(out: &mut Vec<u8>, entries: &[Session]) {
    put_u16_count(out, entries.len());
    for e in entries.iter().take(usize::from(u16::MAX)) {
        put_entry(out, e);
    }
}

fn put_key(out: &mut Vec<u8>, k: &SessionKey) {
    out.extend_from_slice(&k.src.octets());
    out.extend_from_slice(&k.dst.octets());
    out.push(k.proto);
    out.extend_from_slice(&k.src_port.to_be_bytes());
    out.extend_from_slice(&k.dst_port.to_be_bytes());
}

fn put_entry(out: &mut Vec<u8>, s: &Session) {
    put_key(out, &s.key);
    out.extend_from_slice(&s.reply.src.octets());
    out.extend_from_slice(&s.reply.dst.octets());
    out.extend_from_slice(&s.reply.src_port.to_be_bytes());
    out.extend_from_slice(&s.reply.dst_port.to_be_bytes());
    out.extend_from_slice(&s.status.to_be_bytes());
    out.extend_from_slice(&s.timeout_s.to_be_bytes());
    match s.tcp_state {
        Some(st) => out.extend_from_slice(&[FLAG_TCP_STATE, st]),
        None => out.extend_from_slice(&[0, 0]),
    }
    out.extend_from_slice(&s.mark.to_be_bytes());
}

fn key(r: &mut Reader<'_>) -> Result<SessionKey, DecodeError> {
    Ok(SessionKey {
        src: r.ipv4("key src")?,
        dst: r.ipv4("key dst")?,
        proto: r.u8("key proto")?,
        src_port: r.u16("key src_port")?,
        dst_port: r.u16("key dst_port")?,
    })
}

fn entries(r: &mut Reader<'_>) -> Result<Vec<Session>, DecodeError> {
    let count = usize::from(r.u16("count")?);
    r.expect_remaining(count * ENTRY_LEN, "entries")?;
    let mut v = Vec::with_capacity(count);
    for _ in 0..count {
        v.push(entry(r)?);
    }
    Ok(v)
}

fn entry(r: &mut Reader<'_>) -> Result<Session, DecodeError> {
    let key = key(r)?;
    let reply = Tuple {
        src: r.ipv4("reply src")?,
        dst: r.ipv4("reply dst")?,
        src_port: r.u16("reply src_port")?,
        dst_port: r.u16("reply dst_port")?,
    };
    let status = r.u32("status")?;
    let timeout_s = r.u32("timeout")?;
    let flags = r.u8("flags")?;
    let state = r.u8("tcp_state")?;
    if flags & !FLAG_TCP_STATE != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let tcp_state = if flags & FLAG_TCP_STATE != 0 {
        Some(state)
    } else if state != 0 {
        return Err(DecodeError::StrayTcpState(state));
    } else {
        None
    };
    Ok(Session {
        key,
        reply,
        status,
        timeout_s,
        tcp_state,
        mark: r.u32("mark")?,
    })
}
