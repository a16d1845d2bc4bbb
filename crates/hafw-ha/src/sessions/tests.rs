//! Unit tests of the codec, the sender and the receiver, each driven by
//! hand; the lossy-link simulation is in `tests/sync.rs`.

use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::prelude::*;

use super::codec::*;
use super::*;
use crate::wire::{Epoch, Kind, Now, Opener, PairKey, Psk, Sealer, MAX_PLAINTEXT_LEN};

pub(crate) const STREAM: u64 = 0x5EED;
pub(crate) const RX: u64 = 0xAC4;

pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub(crate) fn key(n: u32) -> SessionKey {
    SessionKey {
        src: Ipv4Addr::from(0x0A00_0000 | (n >> 16)),
        dst: Ipv4Addr::new(203, 0, 113, 10),
        proto: [17, 6, 6][(n % 3) as usize],
        src_port: n as u16,
        dst_port: 443,
    }
}

pub(crate) fn session(n: u32, version: u32) -> Session {
    let k = key(n);
    Session {
        key: k,
        reply: Tuple {
            src: k.dst,
            dst: Ipv4Addr::new(198, 51, 100, 7),
            src_port: k.dst_port,
            dst_port: 40_000u16.wrapping_add(n as u16),
        },
        status: 0x19e ^ version,
        timeout_s: 300,
        tcp_state: (k.proto == 6).then_some((version % 10) as u8),
        mark: version,
    }
}

pub(crate) fn samples() -> Vec<Frame> {
    let msgs = vec![
        SyncMessage::Update {
            seq: 1,
            entries: vec![session(1, 1), session(3, 2)],
        },
        SyncMessage::Update {
            seq: u64::MAX,
            entries: vec![],
        },
        SyncMessage::Destroy {
            seq: 2,
            keys: vec![key(1), key(2)],
        },
        SyncMessage::BulkStart { seq: 3, gen: 7 },
        SyncMessage::BulkChunk {
            seq: 4,
            gen: 7,
            entries: (0..10).map(|n| session(n, n)).collect(),
        },
        SyncMessage::BulkEnd {
            seq: 5,
            gen: 7,
            count: 10,
        },
        SyncMessage::Ack {
            upto: 5,
            sack: 0b1011,
            receiver: RX,
        },
        SyncMessage::ResyncRequest {
            gen: 7,
            reason: ResyncReason::NotSynced,
            receiver: RX,
        },
        SyncMessage::ResyncRequest {
            gen: 0,
            reason: ResyncReason::Gap,
            receiver: RX,
        },
        SyncMessage::ResyncRequest {
            gen: 1,
            reason: ResyncReason::BulkMismatch,
            receiver: RX,
        },
    ];
    msgs.into_iter()
        .map(|msg| Frame {
            stream: STREAM,
            msg,
        })
        .collect()
}

#[test]
fn every_variant_round_trips() {
    for f in samples() {
        assert_eq!(decode(&encode(&f)), Ok(f.clone()), "{f:?}");
    }
}

#[test]
fn entry_layout_is_the_documented_one() {
    let s = Session {
        key: SessionKey {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(203, 0, 113, 5),
            proto: 6,
            src_port: 0x1234,
            dst_port: 80,
        },
        reply: Tuple {
            src: Ipv4Addr::new(10, 1, 0, 9),
            dst: Ipv4Addr::new(198, 51, 100, 1),
            src_port: 8080,
            dst_port: 0x5678,
        },
        status: 0x0102_0304,
        timeout_s: 432_000,
        tcp_state: Some(3),
        mark: 0xAA55,
    };
    let b = encode(&Frame {
        stream: 1,
        msg: SyncMessage::Update {
            seq: 9,
            entries: vec![s],
        },
    });
    assert_eq!(b.len(), HEADER_LEN + 8 + 2 + ENTRY_LEN);
    assert_eq!(&b[..3], b"S\x01\x01");
    let e = &b[HEADER_LEN + 10..];
    assert_eq!(
        &e[..13],
        &[10, 0, 0, 1, 203, 0, 113, 5, 6, 0x12, 0x34, 0, 80]
    );
    assert_eq!(
        &e[13..25],
        &[10, 1, 0, 9, 198, 51, 100, 1, 0x1F, 0x90, 0x56, 0x78]
    );
    assert_eq!(&e[25..29], &[1, 2, 3, 4]);
    assert_eq!(&e[33..35], &[1, 3], "flags, tcp_state");
    assert_eq!(&e[35..39], &[0, 0, 0xAA, 0x55]);
}

#[test]
fn decode_names_what_is_wrong() {
    let good = encode(&samples()[0]);
    let mut b = good.clone();
    b[0] = b'C';
    assert_eq!(decode(&b), Err(DecodeError::WrongChannel(b'C')));
    let mut b = good.clone();
    b[1] = 2;
    assert_eq!(decode(&b), Err(DecodeError::UnknownVersion(2)));
    let mut b = good.clone();
    b[2] = 99;
    assert_eq!(decode(&b), Err(DecodeError::UnknownType(99)));
    let mut b = good.clone();
    b.push(0);
    assert_eq!(decode(&b), Err(DecodeError::TrailingBytes(1)));
    assert!(matches!(
        decode(&good[..good.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    // A count that promises more than there is: refused before allocating.
    let mut b = good[..HEADER_LEN + 8].to_vec();
    b.extend_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(decode(&b), Err(DecodeError::Truncated { .. })));
    // Flags: unknown bits, and a state byte without its flag.
    let flags_at = HEADER_LEN + 10 + 33;
    let mut b = good.clone();
    b[flags_at] = 0x81;
    assert_eq!(decode(&b), Err(DecodeError::UnknownFlags(0x81)));
    let mut b = good.clone();
    b[flags_at] = 0;
    assert!(matches!(decode(&b), Err(DecodeError::StrayTcpState(_))));
    assert!(!DecodeError::UnknownVersion(2).to_string().is_empty());
}

#[test]
fn a_full_message_fits_one_envelope() {
    let n = entries_per_message(MAX_PAYLOAD);
    assert!(n > 1500, "{n}");
    let f = Frame {
        stream: STREAM,
        msg: SyncMessage::BulkChunk {
            seq: 1,
            gen: 1,
            entries: (0..n as u32).map(|i| session(i, 1)).collect(),
        },
    };
    let b = encode(&f);
    assert!(b.len() <= MAX_PAYLOAD && MAX_PAYLOAD <= MAX_PLAINTEXT_LEN);
    let keys = keys_per_message(MAX_PAYLOAD);
    let d = encode(&Frame {
        stream: STREAM,
        msg: SyncMessage::Destroy {
            seq: 1,
            keys: (0..keys as u32).map(key).collect(),
        },
    });
    assert!(d.len() <= MAX_PAYLOAD);
    // And through the real sealer and opener.
    let psk = Psk::from_file_bytes(b"sessions: 32 bytes or more of secret", "t.key").unwrap();
    let key = PairKey::for_tests(&psk);
    let mut sealer = Sealer::new(&key, 1, 1, [1; 8]);
    let me = Epoch {
        start_ns: 2,
        random: [2; 8],
    };
    sealer.set_echo(Some(me));
    let mut opener = Opener::new(&key, 2, 1, me);
    let env = sealer.seal_bytes(Kind::Ha2Frame, &b).unwrap();
    let opened = opener
        .open_bytes(Now::new(3, Duration::ZERO), &env)
        .unwrap();
    assert_eq!(decode(&opened.body), Ok(f));
}

fn any_session() -> impl Strategy<Value = Session> {
    (
        (
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
        ),
        (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()),
        (
            any::<u32>(),
            any::<u32>(),
            any::<Option<u8>>(),
            any::<u32>(),
        ),
    )
        .prop_map(|(k, r, (status, timeout_s, tcp_state, mark))| Session {
            key: SessionKey {
                src: Ipv4Addr::from(k.0),
                dst: Ipv4Addr::from(k.1),
                proto: k.2,
                src_port: k.3,
                dst_port: k.4,
            },
            reply: Tuple {
                src: Ipv4Addr::from(r.0),
                dst: Ipv4Addr::from(r.1),
                src_port: r.2,
                dst_port: r.3,
            },
            status,
            timeout_s,
            tcp_state,
            mark,
        })
}

fn any_frame() -> impl Strategy<Value = Frame> {
    let entries = || prop::collection::vec(any_session(), 0..20);
    let msg = prop_oneof![
        (any::<u64>(), entries()).prop_map(|(seq, entries)| SyncMessage::Update { seq, entries }),
        (any::<u64>(), prop::collection::vec(any_session(), 0..20)).prop_map(|(seq, v)| {
            SyncMessage::Destroy {
                seq,
                keys: v.into_iter().map(|s| s.key).collect(),
            }
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(seq, gen)| SyncMessage::BulkStart { seq, gen }),
        (any::<u64>(), any::<u64>(), entries())
            .prop_map(|(seq, gen, entries)| SyncMessage::BulkChunk { seq, gen, entries }),
        (any::<u64>(), any::<u64>(), any::<u64>())
            .prop_map(|(seq, gen, count)| SyncMessage::BulkEnd { seq, gen, count }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(upto, sack, receiver)| {
            SyncMessage::Ack {
                upto,
                sack,
                receiver,
            }
        }),
        (any::<u64>(), 1u8..=3, any::<u64>()).prop_map(|(gen, r, receiver)| {
            SyncMessage::ResyncRequest {
                gen,
                reason: ResyncReason::from_u8(r).unwrap(),
                receiver,
            }
        }),
    ];
    (any::<u64>(), msg).prop_map(|(stream, msg)| Frame { stream, msg })
}

proptest! {
    #[test]
    fn any_frame_round_trips(f in any_frame()) {
        prop_assert_eq!(decode(&encode(&f)), Ok(f));
    }
}

// ---- sender ----

fn sender() -> SyncSender {
    SyncSender::new(SenderConfig::new(STREAM)).unwrap()
}

/// A sender past its first (empty) bulk, with its messages drained and
/// acknowledged.
pub(crate) fn streaming_sender() -> SyncSender {
    let mut s = sender();
    assert_eq!(
        s.poll_action(),
        Some(SenderAction::RequestDump {
            reason: BulkReason::Start
        })
    );
    s.start_bulk(ms(0), vec![]);
    let sent = drain(&mut s);
    assert_eq!(sent.len(), 2, "BulkStart, BulkEnd");
    ack(&mut s, ms(1), 2, 0);
    s
}

pub(crate) fn drain(s: &mut SyncSender) -> Vec<SyncMessage> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|b| decode(&b).unwrap().msg)
        .collect()
}

pub(crate) fn ack(s: &mut SyncSender, now: Duration, upto: u64, sack: u64) {
    let b = encode(&Frame {
        stream: STREAM,
        msg: SyncMessage::Ack {
            upto,
            sack,
            receiver: RX,
        },
    });
    s.handle_message(now, &b).unwrap();
}

#[test]
fn sender_holds_events_until_its_first_bulk_is_queued() {
    let mut s = sender();
    s.handle_event(ms(0), Event::New(session(1, 1)));
    s.handle_timeout(ms(50));
    assert!(drain(&mut s).is_empty(), "nothing before the dump");
    assert_eq!(s.poll_timeout(), None);
    s.start_bulk(ms(60), vec![session(2, 1)]);
    s.handle_timeout(ms(62));
    let sent = drain(&mut s);
    assert_eq!(
        sent,
        vec![
            SyncMessage::BulkStart { seq: 1, gen: 1 },
            SyncMessage::BulkChunk {
                seq: 2,
                gen: 1,
                entries: vec![session(2, 1)]
            },
            SyncMessage::BulkEnd {
                seq: 3,
                gen: 1,
                count: 1
            },
            SyncMessage::Update {
                seq: 4,
                entries: vec![session(1, 1)]
            },
        ]
    );
}

#[test]
fn sender_coalesces_and_flushes_after_the_interval() {
    let mut s = streaming_sender();
    s.handle_event(ms(10), Event::New(session(1, 1)));
    s.handle_event(ms(10), Event::Update(session(1, 2)));
    s.handle_event(ms(11), Event::New(session(2, 1)));
    s.handle_event(ms(11), Event::Destroy(key(2)));
    assert!(drain(&mut s).is_empty(), "waits for company");
    assert_eq!(s.poll_timeout(), Some(ms(12)));
    s.handle_timeout(ms(12));
    let sent = drain(&mut s);
    assert_eq!(
        sent,
        vec![
            SyncMessage::Update {
                seq: 3,
                entries: vec![session(1, 2)]
            },
            SyncMessage::Destroy {
                seq: 4,
                keys: vec![key(2)]
            },
        ]
    );
    let st = s.stats(ms(12));
    assert_eq!((st.events, st.coalesced), (4, 2));
}

#[test]
fn sender_flushes_a_full_message_at_once() {
    let mut s = streaming_sender();
    let n = entries_per_message(MAX_PAYLOAD) as u32;
    for i in 0..n {
        s.handle_event(ms(10), Event::New(session(i, 1)));
    }
    let sent = drain(&mut s);
    assert_eq!(sent.len(), 1);
    assert!(matches!(&sent[0], SyncMessage::Update { entries, .. } if entries.len() == n as usize));
}

#[test]
fn sender_window_full_coalesces_instead_of_queueing() {
    let cfg = SenderConfig {
        window: 4,
        ..SenderConfig::new(STREAM)
    };
    let mut s = SyncSender::new(cfg).unwrap();
    s.poll_action();
    s.start_bulk(ms(0), vec![]);
    drain(&mut s);
    ack(&mut s, ms(1), 2, 0);
    // Four flushes fill the window (one Update each)...
    for round in 0..4u64 {
        s.handle_event(ms(10 + round * 3), Event::New(session(round as u32, 1)));
        s.handle_timeout(ms(12 + round * 3));
    }
    assert_eq!(drain(&mut s).len(), 4);
    // RTT 1 ms measured on the bulk: RTO at its 20 ms floor.
    assert_eq!(s.poll_timeout(), Some(ms(32)), "only retransmissions");
    // ...then a burst on 10 keys, 100 times each: 10 pending slots.
    for round in 0..100 {
        for k in 100..110 {
            s.handle_event(ms(30), Event::Update(session(k, round)));
        }
    }
    assert!(drain(&mut s).is_empty());
    // At the flush interval the window is still full: only the due
    // retransmission goes, the changes wait.
    s.handle_timeout(ms(32));
    let seqs: Vec<_> = drain(&mut s).iter().filter_map(|m| m.seq()).collect();
    assert_eq!(seqs, vec![3]);
    let st = s.stats(ms(32));
    assert_eq!((st.pending, st.in_flight), (10, 4));
    assert!(st.window_stalls > 0);
    assert_eq!(st.lag, ms(22), "oldest unacked change is from 10 ms");
    // The ack opens the window: the newest state of each key goes, in one
    // message.
    ack(&mut s, ms(33), 6, 0);
    let sent = drain(&mut s);
    assert_eq!(sent.len(), 1);
    let SyncMessage::Update { entries, .. } = &sent[0] else {
        panic!("{sent:?}")
    };
    assert_eq!(entries.len(), 10);
    assert!(entries.iter().all(|e| e.mark == 99));
}

#[test]
fn sender_retransmits_with_backoff_and_honours_sacks() {
    let mut s = streaming_sender();
    for (i, t) in [(1, 10), (2, 20), (3, 30)] {
        s.handle_event(ms(t), Event::New(session(i, 1)));
        s.handle_timeout(ms(t + 2));
    }
    assert_eq!(drain(&mut s).len(), 3); // seqs 3, 4, 5
                                        // The receiver holds 5 but misses 3 and 4... then gets 4 by sack.
    ack(&mut s, ms(33), 2, 0b10); // bit 1: seq 2+2+1 = 5
    let rto = s.stats(ms(33)).rto;
    assert_eq!(s.poll_timeout(), Some(ms(12) + rto));
    s.handle_timeout(ms(12) + rto);
    let again = drain(&mut s);
    assert_eq!(again.len(), 1, "only seq 3 is due: {again:?}");
    assert_eq!(again[0].seq(), Some(3));
    s.handle_timeout(ms(22) + rto);
    assert_eq!(drain(&mut s)[0].seq(), Some(4));
    // Seq 5 is held by the receiver: never resent. Seq 3 again after 2×RTO.
    s.handle_timeout(ms(12) + rto * 3);
    let third: Vec<_> = drain(&mut s).iter().filter_map(|m| m.seq()).collect();
    assert_eq!(third, vec![3]);
    assert_eq!(s.stats(ms(100)).retransmits, 3);
    ack(&mut s, ms(500), 5, 0);
    assert_eq!(s.stats(ms(500)).in_flight, 0);
    // No retransmission is left: only the refresh of the first bulk (at 0).
    assert_eq!(
        s.poll_timeout(),
        Some(SenderConfig::new(STREAM).refresh_interval)
    );
}

#[test]
fn sender_ignores_foreign_acks_and_stale_resync_requests() {
    let mut s = streaming_sender();
    let foreign = encode(&Frame {
        stream: STREAM + 1,
        msg: SyncMessage::Ack {
            upto: 1,
            sack: 0,
            receiver: RX,
        },
    });
    s.handle_message(ms(5), &foreign).unwrap();
    let beyond = encode(&Frame {
        stream: STREAM,
        msg: SyncMessage::Ack {
            upto: 99,
            sack: 0,
            receiver: RX,
        },
    });
    s.handle_message(ms(5), &beyond).unwrap();
    assert_eq!(s.stats(ms(5)).stale_acks, 2);
    // Names our generation 1: stale, ignored.
    let stale = encode(&Frame {
        stream: STREAM,
        msg: SyncMessage::ResyncRequest {
            gen: 1,
            reason: ResyncReason::NotSynced,
            receiver: RX,
        },
    });
    s.handle_message(ms(6), &stale).unwrap();
    assert_eq!(s.poll_action(), None);
    // A receiver that never saw it: a new bulk.
    let fresh = encode(&Frame {
        stream: 0,
        msg: SyncMessage::ResyncRequest {
            gen: 0,
            reason: ResyncReason::NotSynced,
            receiver: RX,
        },
    });
    s.handle_message(ms(7), &fresh).unwrap();
    assert_eq!(
        s.poll_action(),
        Some(SenderAction::RequestDump {
            reason: BulkReason::Resync(ResyncReason::NotSynced)
        })
    );
    // While the dump is coming, more requests change nothing.
    s.handle_message(ms(8), &fresh).unwrap();
    assert_eq!(s.poll_action(), None);
    s.start_bulk(ms(9), vec![]);
    drain(&mut s);
    // "I see your stream but not its start" while the start is unacked:
    // retransmission brings it.
    let unplaced = |receiver| {
        encode(&Frame {
            stream: STREAM,
            msg: SyncMessage::ResyncRequest {
                gen: 0,
                reason: ResyncReason::NotSynced,
                receiver,
            },
        })
    };
    s.handle_message(ms(10), &unplaced(RX)).unwrap();
    assert_eq!(s.poll_action(), None);
    // Acked by RX: the same request from RX crossed the ack (ignored);
    // from another receiver run it means that one restarted.
    ack(&mut s, ms(11), 4, 0);
    s.handle_message(ms(12), &unplaced(RX)).unwrap();
    assert_eq!(s.poll_action(), None);
    s.handle_message(ms(12), &unplaced(RX + 1)).unwrap();
    assert!(s.poll_action().is_some());
    assert!(s.handle_message(ms(8), b"garbage").is_err());
    assert_eq!(s.stats(ms(8)).bad_messages, 1);
}

#[test]
fn the_sender_refreshes_its_whole_table_on_its_own_timer() {
    let mut s = streaming_sender();
    let every = SenderConfig::new(STREAM).refresh_interval;
    // The first generation started at 0: the refresh is the next deadline.
    assert_eq!(s.poll_timeout(), Some(every));
    s.handle_timeout(every - ms(1));
    assert_eq!(s.poll_action(), None, "not before its time");
    s.handle_timeout(every);
    assert_eq!(
        s.poll_action(),
        Some(SenderAction::RequestDump {
            reason: BulkReason::Refresh
        })
    );
    // Awaiting the dump: no second refresh is armed, however late.
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(every * 3);
    assert_eq!(s.poll_action(), None);
    // The refresh bulk re-arms it from its own start.
    let t = every + ms(5);
    s.start_bulk(t, vec![session(1, 1)]);
    let sent = drain(&mut s);
    assert_eq!(sent.len(), 3, "BulkStart, BulkChunk, BulkEnd");
    ack(&mut s, t + ms(1), 5, 0);
    assert_eq!(s.poll_timeout(), Some(t + every));
}

#[test]
fn any_bulk_postpones_the_refresh() {
    let mut s = streaming_sender();
    let every = SenderConfig::new(STREAM).refresh_interval;
    // The peer rejoins 10 s in: its bulk sends the whole table, so the
    // refresh counts from there.
    let joined = Duration::from_secs(10);
    s.handle_peer_joined(joined);
    assert_eq!(
        s.poll_action(),
        Some(SenderAction::RequestDump {
            reason: BulkReason::PeerJoined
        })
    );
    s.start_bulk(joined, vec![]);
    drain(&mut s);
    ack(&mut s, joined + ms(1), 4, 0);
    s.handle_timeout(every);
    assert_eq!(s.poll_action(), None, "the old deadline is gone");
    assert_eq!(s.poll_timeout(), Some(joined + every));
}

#[test]
fn a_failed_dump_is_asked_for_again() {
    let mut s = sender();
    assert!(s.poll_action().is_some(), "the start's dump");
    s.handle_event(ms(1), Event::New(session(1, 1)));
    s.handle_dump_failed(ms(2));
    assert_eq!(s.poll_timeout(), Some(ms(2) + sender::DUMP_RETRY));
    s.handle_timeout(ms(2) + sender::DUMP_RETRY - ms(1));
    assert_eq!(s.poll_action(), None, "not before its time");
    s.handle_timeout(ms(2) + sender::DUMP_RETRY);
    assert_eq!(
        s.poll_action(),
        Some(SenderAction::RequestDump {
            reason: BulkReason::Start
        }),
        "the same dump, for the same reason"
    );
    assert_eq!(s.poll_timeout(), None, "asked once");
    // The held change follows the bulk when the dump comes.
    let t = ms(2) + sender::DUMP_RETRY + ms(1);
    s.start_bulk(t, vec![]);
    s.handle_timeout(t + ms(5));
    let sent = drain(&mut s);
    assert!(
        matches!(sent.last(), Some(SyncMessage::Update { entries, .. }) if entries.len() == 1),
        "{sent:?}"
    );
}

#[test]
fn a_zero_refresh_interval_is_refused() {
    let bad = SenderConfig {
        refresh_interval: Duration::ZERO,
        ..SenderConfig::new(1)
    };
    assert_eq!(SyncSender::new(bad).unwrap_err().field, "refresh_interval");
}

#[test]
fn overrun_supersedes_pending_changes_and_holds_new_ones() {
    let mut s = streaming_sender();
    s.handle_event(ms(10), Event::New(session(1, 1)));
    s.handle_overrun(ms(11));
    assert_eq!(
        s.poll_action(),
        Some(SenderAction::RequestDump {
            reason: BulkReason::Overrun
        })
    );
    s.handle_event(ms(12), Event::New(session(2, 1)));
    s.handle_timeout(ms(30));
    assert!(drain(&mut s).is_empty());
    s.start_bulk(ms(31), vec![session(1, 5)]);
    s.handle_timeout(ms(40));
    let sent = drain(&mut s);
    let kinds: Vec<_> = sent
        .iter()
        .map(|m| match m {
            SyncMessage::BulkStart { .. } => "start",
            SyncMessage::BulkChunk { .. } => "chunk",
            SyncMessage::BulkEnd { .. } => "end",
            SyncMessage::Update { .. } => "update",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["start", "chunk", "end", "update"]);
    assert_eq!(s.stats(ms(40)).superseded, 1);
}

// ---- receiver ----

/// A passive's receiver whose peer is heard as active.
pub(crate) fn receiver(mode: Mode) -> SyncReceiver {
    let mut r = SyncReceiver::new(ReceiverConfig::new(RX, mode)).unwrap();
    r.set_peer_active(true);
    r
}

pub(crate) fn feed(r: &mut SyncReceiver, now: Duration, msg: SyncMessage) {
    r.handle_frame(
        now,
        Frame {
            stream: STREAM,
            msg,
        },
    );
}

pub(crate) fn acks(r: &mut SyncReceiver) -> Vec<SyncMessage> {
    std::iter::from_fn(|| r.poll_transmit())
        .map(|b| decode(&b).unwrap().msg)
        .collect()
}

pub(crate) fn bulk(
    r: &mut SyncReceiver,
    now: Duration,
    first_seq: u64,
    gen: u64,
    entries: Vec<Session>,
) {
    let n = entries.len() as u64;
    feed(
        r,
        now,
        SyncMessage::BulkStart {
            seq: first_seq,
            gen,
        },
    );
    feed(
        r,
        now,
        SyncMessage::BulkChunk {
            seq: first_seq + 1,
            gen,
            entries,
        },
    );
    feed(
        r,
        now,
        SyncMessage::BulkEnd {
            seq: first_seq + 2,
            gen,
            count: n,
        },
    );
}

#[test]
fn receiver_is_ready_after_a_bulk_and_applies_in_order() {
    let mut r = receiver(Mode::Commit);
    assert!(!r.ready());
    bulk(&mut r, ms(0), 1, 1, vec![session(1, 1), session(2, 1)]);
    assert!(r.ready());
    assert_eq!(
        acks(&mut r),
        vec![SyncMessage::Ack {
            upto: 3,
            sack: 0,
            receiver: RX
        }]
    );
    // 5 before 4: held, acked selectively, applied when 4 arrives.
    feed(
        &mut r,
        ms(1),
        SyncMessage::Destroy {
            seq: 5,
            keys: vec![key(3)],
        },
    );
    assert_eq!(
        acks(&mut r),
        vec![SyncMessage::Ack {
            upto: 3,
            sack: 1,
            receiver: RX
        }]
    );
    assert_eq!(r.stats(ms(1)).buffered, 1);
    feed(
        &mut r,
        ms(2),
        SyncMessage::Update {
            seq: 4,
            entries: vec![session(3, 1)],
        },
    );
    assert!(
        r.cache().get(&key(3)).is_none(),
        "destroyed after its update"
    );
    assert_eq!(r.cache().len(), 2);
    feed(
        &mut r,
        ms(3),
        SyncMessage::Update {
            seq: 4,
            entries: vec![session(9, 9)],
        },
    );
    assert_eq!(r.stats(ms(3)).duplicates, 1);
    assert_eq!(
        acks(&mut r),
        vec![SyncMessage::Ack {
            upto: 5,
            sack: 0,
            receiver: RX
        }]
    );
    assert_eq!(r.poll_action(), None, "commit mode touches no kernel");
}

#[test]
fn a_bulk_replaces_the_generation_but_keeps_what_it_touched() {
    let mut r = receiver(Mode::Mirror);
    bulk(&mut r, ms(0), 1, 1, vec![session(1, 1), session(2, 1)]);
    while r.poll_action().is_some() {}
    feed(&mut r, ms(1), SyncMessage::BulkStart { seq: 4, gen: 2 });
    // An update inside the bulk survives it; key 2 (not in gen 2) goes.
    feed(
        &mut r,
        ms(1),
        SyncMessage::Update {
            seq: 5,
            entries: vec![session(7, 1)],
        },
    );
    feed(
        &mut r,
        ms(1),
        SyncMessage::BulkChunk {
            seq: 6,
            gen: 2,
            entries: vec![session(1, 2)],
        },
    );
    assert_eq!(r.cache().len(), 3, "nothing dropped before the end");
    feed(
        &mut r,
        ms(1),
        SyncMessage::BulkEnd {
            seq: 7,
            gen: 2,
            count: 1,
        },
    );
    let mut keys: Vec<_> = r.cache().iter().map(|s| s.key).collect();
    keys.sort();
    let mut want = vec![key(1), key(7)];
    want.sort();
    assert_eq!(keys, want);
    let actions: Vec<_> = std::iter::from_fn(|| r.poll_action()).collect();
    assert!(
        actions.contains(&ReceiverAction::Remove(vec![key(2)])),
        "{actions:?}"
    );
    let installed: usize = actions
        .iter()
        .map(|a| match a {
            ReceiverAction::Install(v) => v.len(),
            ReceiverAction::Remove(_) => 0,
        })
        .sum();
    assert_eq!(installed, 2, "key 1 (newer) and key 7, once each");
}

#[test]
fn a_bulk_start_jumps_over_a_gap_the_sender_gave_up() {
    let mut r = receiver(Mode::Commit);
    bulk(&mut r, ms(0), 1, 1, vec![session(1, 1)]);
    feed(
        &mut r,
        ms(1),
        SyncMessage::Update {
            seq: 6,
            entries: vec![session(2, 1)],
        },
    );
    feed(&mut r, ms(1), SyncMessage::BulkStart { seq: 8, gen: 2 });
    feed(
        &mut r,
        ms(1),
        SyncMessage::BulkEnd {
            seq: 9,
            gen: 2,
            count: 0,
        },
    );
    assert!(r.cache().is_empty());
    assert_eq!(r.stats(ms(1)).buffered, 0);
    acks(&mut r);
    feed(
        &mut r,
        ms(2),
        SyncMessage::Update {
            seq: 6,
            entries: vec![session(2, 1)],
        },
    );
    assert!(r.cache().is_empty(), "before the bulk: a duplicate now");
}

#[test]
fn unknown_stream_asks_for_resync_after_the_interval() {
    let mut r = receiver(Mode::Commit);
    feed(
        &mut r,
        ms(0),
        SyncMessage::Update {
            seq: 40,
            entries: vec![session(1, 1)],
        },
    );
    assert!(acks(&mut r).is_empty(), "no ack, no request yet");
    assert_eq!(r.poll_timeout(), Some(ms(200)));
    r.handle_timeout(ms(200));
    assert_eq!(
        acks(&mut r),
        vec![SyncMessage::ResyncRequest {
            gen: 0,
            reason: ResyncReason::NotSynced,
            receiver: RX,
        }]
    );
    assert_eq!(r.stats(ms(200)).resyncs, 1);
    // The bulk start arrives: the stream is adopted, nothing more asked.
    bulk(&mut r, ms(250), 41, 3, vec![session(1, 1)]);
    r.handle_timeout(ms(1000));
    assert_eq!(
        acks(&mut r),
        vec![SyncMessage::Ack {
            upto: 43,
            sack: 0,
            receiver: RX
        }]
    );
    assert!(r.ready());
}

#[test]
fn a_count_mismatch_asks_for_resync_and_is_not_ready() {
    let mut r = receiver(Mode::Commit);
    feed(&mut r, ms(0), SyncMessage::BulkStart { seq: 1, gen: 1 });
    feed(
        &mut r,
        ms(0),
        SyncMessage::BulkEnd {
            seq: 2,
            gen: 1,
            count: 5,
        },
    );
    assert!(!r.ready());
    let out = acks(&mut r);
    assert!(out.contains(&SyncMessage::ResyncRequest {
        gen: 1,
        reason: ResyncReason::BulkMismatch,
        receiver: RX,
    }));
}

#[test]
fn a_gap_that_is_never_filled_asks_for_resync() {
    let mut r = receiver(Mode::Commit);
    bulk(&mut r, ms(0), 1, 1, vec![]);
    feed(
        &mut r,
        ms(10),
        SyncMessage::Update {
            seq: 9,
            entries: vec![session(1, 1)],
        },
    );
    acks(&mut r);
    assert_eq!(r.poll_timeout(), Some(ms(10) + Duration::from_secs(5)));
    r.handle_timeout(ms(10) + Duration::from_secs(5));
    assert_eq!(
        acks(&mut r),
        vec![SyncMessage::ResyncRequest {
            gen: 1,
            reason: ResyncReason::Gap,
            receiver: RX,
        }]
    );
}

#[test]
fn expiry_drops_entries_past_their_timeout_and_grace() {
    let mut r = receiver(Mode::Mirror);
    let mut short = session(1, 1);
    short.timeout_s = 10;
    bulk(&mut r, ms(0), 1, 1, vec![short, session(2, 1)]);
    while r.poll_action().is_some() {}
    let grace = Duration::from_secs(30);
    assert_eq!(r.poll_timeout(), Some(Duration::from_secs(10) + grace));
    r.handle_timeout(Duration::from_secs(39));
    assert_eq!(r.cache().len(), 2);
    r.handle_timeout(Duration::from_secs(40));
    assert_eq!(r.cache().len(), 1);
    assert_eq!(r.poll_action(), Some(ReceiverAction::Remove(vec![key(1)])));
    assert_eq!(r.stats(Duration::from_secs(40)).expired, 1);
    // An update restarts the clock.
    feed(
        &mut r,
        Duration::from_secs(300),
        SyncMessage::Update {
            seq: 4,
            entries: vec![session(2, 2)],
        },
    );
    assert_eq!(r.expire(Duration::from_secs(330) + grace), 0);
    assert_eq!(r.expire(Duration::from_secs(600) + grace), 1);
}

#[test]
fn promotion_takes_the_cache_and_leaves_the_receiver_unsynced() {
    let mut r = receiver(Mode::Commit);
    bulk(
        &mut r,
        ms(0),
        1,
        1,
        (0..100).map(|n| session(n, 1)).collect(),
    );
    let taken = r.take_for_promotion();
    assert_eq!(taken.len(), 100);
    assert!(!r.ready() && r.cache().is_empty());
    assert_eq!(r.stats(ms(0)).bulks, 1, "counters survive");
}

#[test]
fn configs_are_checked() {
    let bad = SenderConfig {
        window: 1,
        ..SenderConfig::new(1)
    };
    let e = SyncSender::new(bad).unwrap_err();
    assert_eq!(e.field, "window");
    assert!(e.to_string().contains("2..="), "{e}");
    assert_eq!(
        SyncSender::new(SenderConfig::new(0)).unwrap_err().field,
        "stream"
    );
    let bad = SenderConfig {
        max_payload: MAX_PAYLOAD + 1,
        ..SenderConfig::new(1)
    };
    assert_eq!(SyncSender::new(bad).unwrap_err().field, "max_payload");
    let bad = ReceiverConfig {
        gap_timeout: Duration::ZERO,
        ..ReceiverConfig::new(RX, Mode::Mirror)
    };
    assert_eq!(SyncReceiver::new(bad).unwrap_err().field, "gap_timeout");
}
