//! The plaintext inside an envelope: one [`Message`], hand-encoded with a
//! fixed layout so that every byte string decodes to exactly one value or
//! an error (no serde, no optional fields, nothing defaulted).
//!
//! ```text
//! type u8 | body length u16 BE | body
//!
//! type 1, Heartbeat, body 87 bytes:
//!   node_id u32 | state u8 | term u64 | priority u8 | flags u8
//!   (bit 0 preempt, bit 1 healthy, others must be 0) | seq u64 | sent_ns u64
//!   | echo_ns u64 | echo_hold_ns u64 | config_version u64 | config_hash [32]
//! type 2, Takeover, body 12 bytes:
//!   node_id u32 | term u64
//! ```
//! All integers big-endian. The body length must equal the type's; a
//! format change is a new envelope version, not a longer body.

use std::fmt;

use crate::codec::Reader;
use crate::msg::{Heartbeat, Message, State};

const TYPE_HEARTBEAT: u8 = 1;
const TYPE_TAKEOVER: u8 = 2;
const HEARTBEAT_BODY: usize = 87;
const TAKEOVER_BODY: usize = 12;
const PREFIX: usize = 3;
const FLAG_PREEMPT: u8 = 1 << 0;
const FLAG_HEALTHY: u8 = 1 << 1;

/// Why a plaintext is not a [`Message`]. After authentication this means
/// the peer runs an incompatible build, not an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the field `what` needs.
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    UnknownType(u8),
    /// The length field disagrees with the message type's fixed body.
    BadLength {
        message: &'static str,
        expected: usize,
        got: usize,
    },
    /// Bytes after the message.
    TrailingBytes(usize),
    UnknownState(u8),
    /// Flag bits this version does not define.
    UnknownFlags(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what, need, have } => {
                write!(
                    f,
                    "message truncated in {what}: needs {need} more bytes, has {have}"
                )
            }
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t}"),
            DecodeError::BadLength {
                message,
                expected,
                got,
            } => write!(
                f,
                "{message} body is {expected} bytes, length field says {got}"
            ),
            DecodeError::TrailingBytes(n) => write!(f, "{n} bytes after the message"),
            DecodeError::UnknownState(s) => write!(f, "unknown node state {s}"),
            DecodeError::UnknownFlags(b) => write!(f, "unknown heartbeat flag bits {b:#04x}"),
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

pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX + HEARTBEAT_BODY);
    match msg {
        Message::Heartbeat(hb) => {
            out.push(TYPE_HEARTBEAT);
            out.extend_from_slice(&(HEARTBEAT_BODY as u16).to_be_bytes());
            out.extend_from_slice(&hb.node_id.to_be_bytes());
            out.push(hb.state as u8);
            out.extend_from_slice(&hb.term.to_be_bytes());
            out.push(hb.priority);
            let mut flags = 0;
            if hb.preempt {
                flags |= FLAG_PREEMPT;
            }
            if hb.healthy {
                flags |= FLAG_HEALTHY;
            }
            out.push(flags);
            for v in [
                hb.seq,
                hb.sent_ns,
                hb.echo_ns,
                hb.echo_hold_ns,
                hb.config_version,
            ] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(&hb.config_hash);
        }
        Message::Takeover { node_id, term } => {
            out.push(TYPE_TAKEOVER);
            out.extend_from_slice(&(TAKEOVER_BODY as u16).to_be_bytes());
            out.extend_from_slice(&node_id.to_be_bytes());
            out.extend_from_slice(&term.to_be_bytes());
        }
    }
    out
}

pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(bytes);
    let ty = r.u8("message type")?;
    let (name, expected) = match ty {
        TYPE_HEARTBEAT => ("heartbeat", HEARTBEAT_BODY),
        TYPE_TAKEOVER => ("takeover", TAKEOVER_BODY),
        other => return Err(DecodeError::UnknownType(other)),
    };
    let len = usize::from(r.u16("body length")?);
    if len != expected {
        return Err(DecodeError::BadLength {
            message: name,
            expected,
            got: len,
        });
    }
    let msg = match ty {
        TYPE_HEARTBEAT => Message::Heartbeat(heartbeat(&mut r)?),
        _ => Message::Takeover {
            node_id: r.u32("node_id")?,
            term: r.u64("term")?,
        },
    };
    r.finish()?;
    Ok(msg)
}

fn heartbeat(r: &mut Reader<'_>) -> Result<Heartbeat, DecodeError> {
    let node_id = r.u32("node_id")?;
    let state_byte = r.u8("state")?;
    let state = State::from_u8(state_byte).ok_or(DecodeError::UnknownState(state_byte))?;
    let term = r.u64("term")?;
    let priority = r.u8("priority")?;
    let flags = r.u8("flags")?;
    if flags & !(FLAG_PREEMPT | FLAG_HEALTHY) != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    Ok(Heartbeat {
        node_id,
        state,
        term,
        priority,
        preempt: flags & FLAG_PREEMPT != 0,
        healthy: flags & FLAG_HEALTHY != 0,
        seq: r.u64("seq")?,
        sent_ns: r.u64("sent_ns")?,
        echo_ns: r.u64("echo_ns")?,
        echo_hold_ns: r.u64("echo_hold_ns")?,
        config_version: r.u64("config_version")?,
        config_hash: r.array("config_hash")?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub const ALL_STATES: [State; 5] = [
        State::Initial,
        State::Passive,
        State::Active,
        State::Suspended,
        State::NonFunctional,
    ];

    pub fn heartbeat(node_id: u32, state: State) -> Heartbeat {
        Heartbeat {
            node_id,
            state,
            term: 0x0102_0304_0506_0708,
            priority: 200,
            preempt: true,
            healthy: false,
            seq: 42,
            sent_ns: 1_000_000_007,
            echo_ns: 999,
            echo_hold_ns: 12,
            config_version: 7,
            config_hash: [0xAB; 32],
        }
    }

    /// One of each variant, every state and every flag combination.
    pub fn samples() -> Vec<Message> {
        let mut v = Vec::new();
        for state in ALL_STATES {
            for (preempt, healthy) in [(false, false), (true, false), (false, true), (true, true)] {
                v.push(Message::Heartbeat(Heartbeat {
                    preempt,
                    healthy,
                    ..heartbeat(7, state)
                }));
            }
        }
        v.push(Message::Takeover {
            node_id: 7,
            term: u64::MAX,
        });
        v.push(Message::Takeover {
            node_id: 0,
            term: 0,
        });
        v
    }

    #[test]
    fn every_variant_and_state_round_trips() {
        for m in samples() {
            assert_eq!(decode(&encode(&m)), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn heartbeat_layout() {
        let b = encode(&Message::Heartbeat(heartbeat(0x0A0B_0C0D, State::Active)));
        assert_eq!(b.len(), PREFIX + HEARTBEAT_BODY);
        assert_eq!(&b[..3], &[1, 0, 87]);
        assert_eq!(&b[3..7], &[0x0A, 0x0B, 0x0C, 0x0D]);
        assert_eq!(b[7], 2, "state Active");
        assert_eq!(&b[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(b[16], 200, "priority");
        assert_eq!(b[17], FLAG_PREEMPT, "flags");
        assert_eq!(&b[b.len() - 32..], &[0xAB; 32]);
        let t = encode(&Message::Takeover {
            node_id: 1,
            term: 2,
        });
        assert_eq!(t, [2, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn rejects_malformed() {
        let hb = encode(&Message::Heartbeat(heartbeat(1, State::Passive)));
        assert!(matches!(
            decode(&[]),
            Err(DecodeError::Truncated {
                what: "message type",
                ..
            })
        ));
        assert_eq!(decode(&[9, 0, 0]), Err(DecodeError::UnknownType(9)));
        assert_eq!(decode(&[0]), Err(DecodeError::UnknownType(0)));
        assert!(matches!(
            decode(&[2, 0]),
            Err(DecodeError::Truncated {
                what: "body length",
                need: 2,
                have: 1
            })
        ));
        for cut in 0..hb.len() {
            assert!(
                matches!(decode(&hb[..cut]), Err(DecodeError::Truncated { .. })),
                "cut at {cut}: {:?}",
                decode(&hb[..cut])
            );
        }
        let mut long = hb.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(DecodeError::TrailingBytes(1)));
        let mut bad_len = hb.clone();
        bad_len[2] = 88;
        assert_eq!(
            decode(&bad_len),
            Err(DecodeError::BadLength {
                message: "heartbeat",
                expected: 87,
                got: 88
            })
        );
        for s in 5..=255u8 {
            let mut bad = hb.clone();
            bad[7] = s;
            assert_eq!(decode(&bad), Err(DecodeError::UnknownState(s)));
        }
        let mut flags = hb.clone();
        flags[17] = 0x04;
        assert_eq!(decode(&flags), Err(DecodeError::UnknownFlags(0x04)));
    }

    fn any_state() -> impl Strategy<Value = State> {
        prop::sample::select(ALL_STATES.to_vec())
    }

    fn any_message() -> impl Strategy<Value = Message> {
        let hb = (
            (any::<u32>(), any_state(), any::<u64>(), any::<u8>()),
            (any::<bool>(), any::<bool>()),
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
            ),
            any::<[u8; 32]>(),
        )
            .prop_map(
                |(
                    (node_id, state, term, priority),
                    (preempt, healthy),
                    (seq, sent_ns, echo_ns, echo_hold_ns, config_version),
                    config_hash,
                )| {
                    Message::Heartbeat(Heartbeat {
                        node_id,
                        state,
                        term,
                        priority,
                        preempt,
                        healthy,
                        seq,
                        sent_ns,
                        echo_ns,
                        echo_hold_ns,
                        config_version,
                        config_hash,
                    })
                },
            );
        let takeover = (any::<u32>(), any::<u64>())
            .prop_map(|(node_id, term)| Message::Takeover { node_id, term });
        prop_oneof![hb, takeover]
    }

    proptest! {
        #[test]
        fn any_message_round_trips(m in any_message()) {
            prop_assert_eq!(decode(&encode(&m)), Ok(m));
        }

        #[test]
        fn any_bytes_decode_without_panic_and_reencode_identically(
            bytes in prop::collection::vec(any::<u8>(), 0..200)
        ) {
            // Decoding is injective: whatever decodes must encode back to
            // the very same bytes (no two encodings of one message).
            if let Ok(m) = decode(&bytes) {
                prop_assert_eq!(encode(&m), bytes);
            }
        }
    }
}
