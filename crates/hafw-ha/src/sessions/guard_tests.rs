//! Attacks on the passive's receiver (entries from the wrong role, onto
//! the nodes' own addresses, with absurd timeouts, floods past the cap) and
//! the sender's bounds while its peer is gone; each counts what it refused.

use std::net::Ipv4Addr;

use super::codec::*;
use super::entry::{MAX_TIMEOUT_GENERIC, MAX_TIMEOUT_ICMP, MAX_TIMEOUT_TCP, MAX_TIMEOUT_UDP};
use super::tests::{ack, acks, bulk, drain, feed, ms, receiver, session, streaming_sender, RX};
use super::*;

fn update(seq: u64, entries: Vec<Session>) -> SyncMessage {
    SyncMessage::Update { seq, entries }
}

#[test]
fn entries_from_a_peer_that_is_not_active_are_refused_and_counted() {
    let mut r = SyncReceiver::new(ReceiverConfig::new(RX, Mode::Mirror)).unwrap();
    // A new receiver has not heard its peer is active: nothing is taken.
    bulk(&mut r, ms(0), 1, 1, vec![session(1, 1), session(2, 1)]);
    feed(&mut r, ms(1), update(4, vec![session(3, 1)]));
    let st = r.stats(ms(1));
    assert_eq!(st.refused_peer_not_active, 4, "{st:?}");
    assert_eq!((st.sessions, st.synced, st.bulks), (0, 0, 0));
    assert!(!r.ready());
    assert!(acks(&mut r).is_empty(), "refused, so not acknowledged");
    assert_eq!(r.poll_action(), None, "nothing for the kernel");
    // Its heartbeats say active: the retransmissions are taken.
    r.set_peer_active(true);
    bulk(&mut r, ms(300), 1, 1, vec![session(1, 1), session(2, 1)]);
    assert!(r.ready());
    assert_eq!(r.cache().len(), 2);
    // Demoted (or lost) again: refused again.
    r.set_peer_active(false);
    feed(&mut r, ms(400), update(4, vec![session(3, 1)]));
    assert_eq!(r.stats(ms(400)).refused_peer_not_active, 5);
    assert_eq!(r.cache().len(), 2);
}

#[test]
fn entries_arriving_while_this_node_is_active_are_not_applied() {
    let mut r = receiver(Mode::Mirror);
    bulk(&mut r, ms(0), 1, 1, vec![session(1, 1)]);
    while r.poll_action().is_some() {}
    acks(&mut r);
    r.set_local_active(true);
    // The peer (confused, or in a split brain) still sends.
    feed(&mut r, ms(1), update(4, vec![session(2, 1)]));
    feed(
        &mut r,
        ms(1),
        SyncMessage::Destroy {
            seq: 5,
            keys: vec![session(1, 1).key],
        },
    );
    let st = r.stats(ms(1));
    assert_eq!(st.refused_local_active, 2, "{st:?}");
    assert_eq!(r.cache().len(), 1, "neither the update nor the destroy");
    assert_eq!(r.poll_action(), None, "nothing reaches the active's kernel");
    assert!(acks(&mut r).is_empty());
}

#[test]
fn entries_naming_a_nodes_own_address_are_refused() {
    let own = Ipv4Addr::new(10, 0, 0, 5);
    let peer = Ipv4Addr::new(10, 0, 0, 6);
    let mut r = SyncReceiver::new(ReceiverConfig {
        own_addresses: vec![own, peer],
        ..ReceiverConfig::new(RX, Mode::Mirror)
    })
    .unwrap();
    r.set_peer_active(true);
    let fine = session(1, 1);
    let mut to_node = session(2, 1);
    to_node.key.dst = own;
    let mut from_peer = session(3, 1);
    from_peer.key.src = peer;
    // A DNAT onto the node (reply from its address) and an SNAT to it.
    let mut dnat = session(4, 1);
    dnat.reply.src = own;
    let mut snat = session(5, 1);
    snat.reply.dst = peer;
    bulk(
        &mut r,
        ms(0),
        1,
        1,
        vec![fine, to_node, from_peer, dnat, snat],
    );
    let st = r.stats(ms(0));
    assert_eq!(st.refused_own_address, 4, "{st:?}");
    assert_eq!(r.cache().sorted(), vec![fine]);
    // The bulk still completes (the sender counted what it sent).
    assert!(r.ready());
    match r.poll_action() {
        Some(ReceiverAction::Install(v)) => assert_eq!(v, vec![fine]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn entries_with_addresses_no_routed_flow_has_are_refused() {
    let mut r = receiver(Mode::Commit);
    let fine = session(1, 1);
    let with = |n: u32, f: &dyn Fn(&mut Session)| {
        let mut s = session(n, 1);
        f(&mut s);
        s
    };
    let bad = vec![
        with(2, &|s| s.key.src = Ipv4Addr::UNSPECIFIED),
        with(3, &|s| s.key.dst = Ipv4Addr::LOCALHOST),
        with(4, &|s| s.reply.src = Ipv4Addr::new(224, 0, 0, 18)),
        with(5, &|s| s.reply.dst = Ipv4Addr::BROADCAST),
    ];
    let mut all = bad.clone();
    all.push(fine);
    bulk(&mut r, ms(0), 1, 1, all);
    assert_eq!(r.stats(ms(0)).refused_bogus, 4);
    assert_eq!(r.cache().sorted(), vec![fine]);
}

#[test]
fn timeouts_are_clamped_per_protocol_to_the_kernels_defaults() {
    let mut r = receiver(Mode::Commit);
    let with = |n: u32, proto: u8| {
        let mut s = session(n, 1);
        s.key.proto = proto;
        s.timeout_s = u32::MAX;
        s
    };
    let entries = vec![with(1, 6), with(2, 17), with(3, 1), with(4, 47)];
    let mut fine = session(5, 1);
    fine.timeout_s = 100;
    let mut all = entries.clone();
    all.push(fine);
    bulk(&mut r, ms(0), 1, 1, all);
    let st = r.stats(ms(0));
    assert_eq!(st.clamped, 4, "{st:?}");
    let t = |i: usize| r.cache().get(&entries[i].key).map(|c| c.session.timeout_s);
    assert_eq!(t(0), Some(MAX_TIMEOUT_TCP));
    assert_eq!(t(1), Some(MAX_TIMEOUT_UDP));
    assert_eq!(t(2), Some(MAX_TIMEOUT_ICMP));
    assert_eq!(t(3), Some(MAX_TIMEOUT_GENERIC));
    assert_eq!(
        r.cache().get(&fine.key).map(|c| c.session.timeout_s),
        Some(100)
    );
    // And they expire: 136 years would have kept them for good.
    let grace = ReceiverConfig::new(RX, Mode::Commit).expiry_grace;
    let after = std::time::Duration::from_secs(u64::from(MAX_TIMEOUT_TCP)) + grace + ms(1);
    r.expire(after);
    assert!(r.cache().is_empty(), "{:?}", r.cache().sorted());
}

#[test]
fn a_flood_of_twice_the_cap_leaves_the_cache_at_the_cap() {
    let cap = 1_000;
    let mut r = SyncReceiver::new(ReceiverConfig {
        max_sessions: cap,
        ..ReceiverConfig::new(RX, Mode::Mirror)
    })
    .unwrap();
    r.set_peer_active(true);
    let per = entries_per_message(MAX_PAYLOAD);
    feed(&mut r, ms(0), SyncMessage::BulkStart { seq: 1, gen: 1 });
    let flood: Vec<Session> = (0..2 * cap as u32).map(|n| session(n, 1)).collect();
    let mut seq = 2;
    for chunk in flood.chunks(per) {
        feed(
            &mut r,
            ms(1),
            SyncMessage::BulkChunk {
                seq,
                gen: 1,
                entries: chunk.to_vec(),
            },
        );
        seq += 1;
    }
    feed(
        &mut r,
        ms(2),
        SyncMessage::BulkEnd {
            seq,
            gen: 1,
            count: flood.len() as u64,
        },
    );
    let st = r.stats(ms(2));
    assert_eq!(r.cache().len(), cap);
    assert_eq!(st.cache_full, cap as u64, "{st:?}");
    assert!(!r.ready(), "a cache that dropped entries is no full copy");
    let why = r.not_ready_reason().unwrap();
    assert!(why.contains("full") && why.contains("1000"), "{why}");
    // Entries already cached still update.
    let mut newer = flood[0];
    newer.mark = 77;
    feed(&mut r, ms(3), update(seq + 1, vec![newer]));
    assert_eq!(r.cache().get(&newer.key).map(|c| c.session.mark), Some(77));
    // The active's table shrank below the cap: the next bulk fits.
    bulk(&mut r, ms(4), seq + 2, 2, flood[..cap / 2].to_vec());
    assert!(r.ready(), "{:?}", r.not_ready_reason());
    assert_eq!(r.cache().len(), cap / 2);
}

#[test]
fn a_disconnected_sender_keeps_nothing_and_sends_one_bulk_on_reconnect() {
    let mut s = streaming_sender();
    s.handle_event(ms(2), Event::New(session(1, 1)));
    s.handle_timeout(ms(10));
    assert_eq!(drain(&mut s).len(), 1);
    s.handle_disconnect(ms(11));
    // An hour of churn with the peer gone, a refresh timer and overruns.
    let mut now = ms(12);
    for n in 0..200_000u32 {
        now = ms(12 + u64::from(n) * 18);
        s.handle_event(now, Event::New(session(n + 2, 1)));
        if n % 997 == 0 {
            s.handle_timeout(now);
            s.handle_overrun(now);
        }
        let st = s.stats(now);
        assert_eq!((st.pending, st.in_flight), (0, 0), "{st:?}");
    }
    assert_eq!(s.poll_action(), None, "no dump while the peer is gone");
    assert!(drain(&mut s).is_empty(), "nothing queued for the link");
    let st = s.stats(now);
    assert_eq!(st.discarded, 200_000);
    assert_eq!(st.disconnects, 1);
    // Back: exactly one bulk, and only the dump's entries go.
    s.handle_peer_joined(now);
    assert_eq!(
        s.poll_action(),
        Some(SenderAction::RequestDump {
            reason: BulkReason::PeerJoined
        })
    );
    assert_eq!(s.poll_action(), None);
    let sent_before = s.stats(now).entries_sent;
    s.start_bulk(now, (0..10).map(|n| session(n, 2)).collect());
    let kinds: Vec<&str> = drain(&mut s)
        .iter()
        .map(|m| match m {
            SyncMessage::BulkStart { .. } => "start",
            SyncMessage::BulkChunk { .. } => "chunk",
            SyncMessage::BulkEnd { .. } => "end",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["start", "chunk", "end"]);
    assert_eq!(s.stats(now).entries_sent - sent_before, 10);
}

#[test]
fn a_dump_asked_for_before_the_link_went_down_is_not_sent() {
    // Not yet taken: not asked for any more.
    let mut s = streaming_sender();
    s.handle_overrun(ms(2));
    s.handle_disconnect(ms(3));
    assert_eq!(s.poll_action(), None);
    // Taken, and arriving after the link went down: dropped.
    let mut s = streaming_sender();
    s.handle_overrun(ms(2));
    assert!(s.poll_action().is_some());
    s.handle_disconnect(ms(3));
    s.start_bulk(ms(4), vec![session(1, 1)]);
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), None, "no timer while the peer is gone");
    s.handle_reconnect(ms(5));
    assert!(matches!(
        s.poll_action(),
        Some(SenderAction::RequestDump {
            reason: BulkReason::PeerJoined
        })
    ));
}

#[test]
fn a_stalled_peer_costs_a_bounded_pending_set_and_one_bulk() {
    let max_pending = 5_000;
    let mut s = SyncSender::new(SenderConfig {
        max_pending,
        ..SenderConfig::new(super::tests::STREAM)
    })
    .unwrap();
    s.poll_action();
    s.start_bulk(ms(0), vec![]);
    drain(&mut s);
    ack(&mut s, ms(1), 2, 0);
    let window = SenderConfig::new(1).window;
    // The peer is frozen with the link up: nothing is acknowledged.
    let mut now = ms(2);
    let mut max_seen = 0;
    for n in 0..100_000u32 {
        now = ms(2) + std::time::Duration::from_micros(u64::from(n) * 500);
        s.handle_event(now, Event::New(session(n, 1)));
        if n % 100 == 0 {
            s.handle_timeout(now);
            drain(&mut s);
        }
        let st = s.stats(now);
        max_seen = max_seen.max(st.pending);
        assert!(st.pending <= max_pending, "{st:?}");
        assert!(st.in_flight <= window + 1, "{st:?}");
    }
    let st = s.stats(now);
    assert!(st.backlogs >= 1 && st.discarded > 0, "{st:?}");
    assert_eq!(st.in_flight, 1, "only the probe is kept: {st:?}");
    assert_eq!(s.poll_action(), None, "no dump until the peer is back");
    // The peer thaws and acknowledges everything it has: one bulk.
    let upto = match drain_or_retransmit(&mut s, now) {
        Some(seq) => seq,
        None => panic!("the probe is retransmitted"),
    };
    ack(&mut s, now, upto, 0);
    assert_eq!(
        s.poll_action(),
        Some(SenderAction::RequestDump {
            reason: BulkReason::Backlog
        })
    );
    assert_eq!(s.poll_action(), None, "one bulk, not one per backlog");
    assert!(
        max_seen > max_pending / 2,
        "the bound was reached: {max_seen}"
    );
}

/// Runs the retransmission timer until the probe goes again; its seq.
fn drain_or_retransmit(s: &mut SyncSender, now: std::time::Duration) -> Option<u64> {
    let at = s.poll_timeout()?.max(now);
    s.handle_timeout(at);
    drain(s).into_iter().filter_map(|m| m.seq()).max()
}
