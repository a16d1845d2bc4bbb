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
//!
//! That layout is protocol version 2, byte for byte the format before
//! version negotiation ([`encode`], [`decode`]). From version 3 on
//! ([`encode_v`], [`decode_v`]) a heartbeat's body is followed by the
//! sender's [`Advert`]:
//! ```text
//! version 3, heartbeat body 115 bytes: the 87 above, then
//!   protocol_max u8 | policy_schema u16 | software length u8 (<= 24)
//!   | software [24] (UTF-8, zero-padded; the padding must be zero)
//! version 4 (the test-only next release), 116 bytes: version 3's, then
//!   a reserved byte that must be 0 (a format version 3 cannot read)
//! ```
//! Takeovers are the same in every version.

use std::fmt;

use crate::codec::Reader;
use crate::msg::{Heartbeat, Message, State};
use crate::version::{Advert, PROTOCOL_MIN, PROTOCOL_TEST_MAX, SOFTWARE_MAX};

const TYPE_HEARTBEAT: u8 = 1;
const TYPE_TAKEOVER: u8 = 2;
const HEARTBEAT_BODY: usize = 87;
const TAKEOVER_BODY: usize = 12;
const PREFIX: usize = 3;
/// protocol_max, policy_schema, software length, software.
const ADVERT_LEN: usize = 1 + 2 + 1 + SOFTWARE_MAX;
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
    /// A protocol version this build has no format for.
    UnknownVersion(u8),
    /// The advert's software field: over its length, padding not zero,
    /// or not UTF-8.
    BadSoftware,
    /// Version 4's reserved byte is not zero.
    Reserved(u8),
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
            DecodeError::UnknownVersion(v) => write!(f, "no message format for protocol {v}"),
            DecodeError::BadSoftware => write!(
                f,
                "heartbeat advert: software version over {SOFTWARE_MAX} bytes, \
                 not zero-padded or not UTF-8"
            ),
            DecodeError::Reserved(b) => write!(f, "reserved heartbeat byte is {b}, not 0"),
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

/// A message in protocol version 2, the format before negotiation.
pub fn encode(msg: &Message) -> Vec<u8> {
    encode_v(PROTOCOL_MIN, msg, None)
}

/// The heartbeat body's length in protocol `version`.
fn heartbeat_body(version: u8) -> usize {
    match version {
        v if v <= PROTOCOL_MIN => HEARTBEAT_BODY,
        v if v < PROTOCOL_TEST_MAX => HEARTBEAT_BODY + ADVERT_LEN,
        _ => HEARTBEAT_BODY + ADVERT_LEN + 1,
    }
}

/// A message in protocol `version` (2 and below: version 2's format;
/// over [`PROTOCOL_TEST_MAX`]: that one's). A heartbeat of version 3 and
/// later carries `advert`; without one it says nothing of itself (an
/// empty software version, its maximum `version`, schema 0), which only
/// tests do.
pub fn encode_v(version: u8, msg: &Message, advert: Option<&Advert>) -> Vec<u8> {
    let body_len = heartbeat_body(version);
    let mut out = Vec::with_capacity(PREFIX + body_len);
    match msg {
        Message::Heartbeat(hb) => {
            out.push(TYPE_HEARTBEAT);
            out.extend_from_slice(&(body_len as u16).to_be_bytes());
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
            if body_len > HEARTBEAT_BODY {
                let fallback = Advert::new("", version, 0);
                let a = advert.unwrap_or(&fallback);
                out.push(a.protocol_max);
                out.extend_from_slice(&a.policy_schema.to_be_bytes());
                let sw = Advert::new(&a.software, a.protocol_max, a.policy_schema).software;
                out.push(sw.len() as u8);
                let mut field = [0u8; SOFTWARE_MAX];
                field[..sw.len()].copy_from_slice(sw.as_bytes());
                out.extend_from_slice(&field);
            }
            if body_len > HEARTBEAT_BODY + ADVERT_LEN {
                out.push(0);
            }
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

/// A message in protocol version 2, the format before negotiation.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    decode_v(PROTOCOL_MIN, bytes).map(|(m, _)| m)
}

/// A message in protocol `version` ([`PROTOCOL_MIN`] to
/// [`PROTOCOL_TEST_MAX`]), with the advert of a heartbeat of version 3 and
/// later.
pub fn decode_v(version: u8, bytes: &[u8]) -> Result<(Message, Option<Advert>), DecodeError> {
    if !(PROTOCOL_MIN..=PROTOCOL_TEST_MAX).contains(&version) {
        return Err(DecodeError::UnknownVersion(version));
    }
    let hb_len = heartbeat_body(version);
    let mut r = Reader::new(bytes);
    let ty = r.u8("message type")?;
    let (name, expected) = match ty {
        TYPE_HEARTBEAT => ("heartbeat", hb_len),
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
    let (msg, advert) = match ty {
        TYPE_HEARTBEAT => {
            let hb = heartbeat(&mut r)?;
            let advert = (hb_len > HEARTBEAT_BODY)
                .then(|| read_advert(&mut r))
                .transpose()?;
            if hb_len > HEARTBEAT_BODY + ADVERT_LEN {
                match r.u8("reserved")? {
                    0 => {}
                    b => return Err(DecodeError::Reserved(b)),
                }
            }
            (Message::Heartbeat(hb), advert)
        }
        _ => (
            Message::Takeover {
                node_id: r.u32("node_id")?,
                term: r.u64("term")?,
            },
            None,
        ),
    };
    r.finish()?;
    Ok((msg, advert))
}

fn read_advert(r: &mut Reader<'_>) -> Result<Advert, DecodeError> {
    let protocol_max = r.u8("protocol_max")?;
    let policy_schema = r.u16("policy_schema")?;
    let len = usize::from(r.u8("software length")?);
    let field: [u8; SOFTWARE_MAX] = r.array("software")?;
    if len > SOFTWARE_MAX || field[len..].iter().any(|b| *b != 0) {
        return Err(DecodeError::BadSoftware);
    }
    let software = std::str::from_utf8(&field[..len]).map_err(|_| DecodeError::BadSoftware)?;
    Ok(Advert {
        software: software.to_string(),
        protocol_max,
        policy_schema,
    })
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

    #[test]
    fn version_2_is_the_format_before_negotiation() {
        for m in samples() {
            let v2 = encode_v(2, &m, Some(&Advert::new("9.9.9", 3, 1)));
            assert_eq!(v2, encode(&m), "version 2 carries no advert: {m:?}");
            assert_eq!(decode_v(2, &v2), Ok((m.clone(), None)));
        }
        let hb = encode(&Message::Heartbeat(heartbeat(1, State::Active)));
        assert_eq!(hb.len(), PREFIX + 87);
    }

    #[test]
    fn versions_3_and_4_carry_the_advert_and_differ() {
        let a = Advert::new("0.1.0", 4, 2);
        let m = Message::Heartbeat(heartbeat(3, State::Passive));
        let v3 = encode_v(3, &m, Some(&a));
        let v4 = encode_v(4, &m, Some(&a));
        assert_eq!(v3.len(), PREFIX + 115);
        assert_eq!(&v3[..3], &[1, 0, 115]);
        assert_eq!(&v3[90..94], &[4, 0, 2, 5]);
        assert_eq!(&v3[94..99], b"0.1.0");
        assert_eq!(v4.len(), v3.len() + 1);
        assert_eq!(decode_v(3, &v3), Ok((m.clone(), Some(a.clone()))));
        assert_eq!(decode_v(4, &v4), Ok((m.clone(), Some(a.clone()))));
        // Each version reads only its own format.
        assert!(decode_v(3, &v4).is_err());
        assert!(decode_v(4, &v3).is_err());
        assert!(decode_v(2, &v3).is_err());
        assert_eq!(decode_v(5, &v3), Err(DecodeError::UnknownVersion(5)));
        assert_eq!(decode_v(1, &v3), Err(DecodeError::UnknownVersion(1)));
        let mut bad = v4.clone();
        *bad.last_mut().unwrap() = 1;
        assert_eq!(decode_v(4, &bad), Err(DecodeError::Reserved(1)));
        let mut bad = v3.clone();
        bad[93] = 25;
        assert_eq!(decode_v(3, &bad), Err(DecodeError::BadSoftware));
        let mut bad = v3.clone();
        bad[110] = b'x';
        assert_eq!(decode_v(3, &bad), Err(DecodeError::BadSoftware));
        let mut bad = v3.clone();
        bad[94] = 0xff;
        assert_eq!(decode_v(3, &bad), Err(DecodeError::BadSoftware));
        // Takeovers are the same in every version.
        let t = Message::Takeover {
            node_id: 1,
            term: 2,
        };
        assert_eq!(encode_v(4, &t, Some(&a)), encode(&t));
        assert_eq!(decode_v(4, &encode(&t)), Ok((t, None)));
    }

    proptest! {
        #[test]
        fn any_message_round_trips(m in any_message()) {
            prop_assert_eq!(decode(&encode(&m)), Ok(m));
        }

        #[test]
        fn any_message_round_trips_in_every_version(
            m in any_message(), v in 2u8..=4, sw in "[a-z0-9.-]{0,24}", max in any::<u8>(), schema in any::<u16>()
        ) {
            let a = Advert::new(&sw, max, schema);
            let bytes = encode_v(v, &m, Some(&a));
            let advert = (v > 2 && matches!(m, Message::Heartbeat(_))).then_some(a);
            prop_assert_eq!(decode_v(v, &bytes), Ok((m, advert)));
        }

        #[test]
        fn any_bytes_decode_in_every_version_without_panic_and_reencode_identically(
            v in 2u8..=4, bytes in prop::collection::vec(any::<u8>(), 0..200)
        ) {
            if let Ok((m, a)) = decode_v(v, &bytes) {
                prop_assert_eq!(encode_v(v, &m, a.as_ref()), bytes);
            }
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
