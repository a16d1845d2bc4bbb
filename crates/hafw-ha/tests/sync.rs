//! Session sync and config sync over a simulated HA2 link that drops 20 %,
//! duplicates, reorders and delays. The active's conntrack table is a
//! model (the ground truth) that random events change; after the link
//! goes quiet the passive's cache (and, in mirror mode, its kernel table)
//! must equal it. Deterministic from the seeds; `SYNC_SEEDS=n` runs more.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hafw_ha::config_sync::{policy_hash, ConfigAction, ConfigSync, RetryConfig};
use hafw_ha::sessions::codec::{decode, encode, entries_per_message, Frame, MAX_PAYLOAD};
use hafw_ha::sessions::entry::max_timeout;
use hafw_ha::sessions::{
    Event, Mode, ReceiverAction, ReceiverConfig, SenderAction, SenderConfig, Session, SessionKey,
    SyncMessage, SyncReceiver, SyncSender, Tuple,
};
use hafw_ha::Time;
use hafw_testkit::link::{ms, Endpoint, Link, Net};
use hafw_testkit::Rng;

// ---- the two session endpoints, with their bit of daemon ----

/// The active: its kernel table (the model) and the sender.
struct Active {
    sender: SyncSender,
    table: BTreeMap<SessionKey, Session>,
    /// The daemon's dump is taken this long after it is asked for.
    dump_delay: Duration,
    dump_due: Option<Time>,
    dumps: u32,
    /// Crashed: no input, no output.
    dead: bool,
}

impl Active {
    fn new(stream: u64) -> Active {
        Active {
            sender: SyncSender::new(SenderConfig::new(stream)).unwrap(),
            table: BTreeMap::new(),
            dump_delay: ms(3),
            dump_due: None,
            dumps: 0,
            dead: false,
        }
    }

    /// A kernel change: the table changes and, unless the event is lost,
    /// the sender hears of it.
    fn change(&mut self, now: Time, ev: Event, heard: bool) {
        match ev {
            Event::New(s) | Event::Update(s) => {
                self.table.insert(s.key, s);
            }
            Event::Destroy(k) => {
                self.table.remove(&k);
            }
        }
        if heard && !self.dead {
            self.sender.handle_event(now, ev);
        }
    }
}

impl Endpoint for Active {
    type Msg = Vec<u8>;
    fn handle_message(&mut self, now: Time, bytes: &Vec<u8>) {
        if !self.dead {
            self.sender.handle_message(now, bytes).unwrap();
        }
    }
    fn handle_timeout(&mut self, now: Time) {
        if self.dead {
            return;
        }
        if self.dump_due.is_some_and(|t| t <= now) {
            self.dump_due = None;
            self.dumps += 1;
            let dump = self.table.values().copied().collect();
            self.sender.start_bulk(now, dump);
        }
        self.sender.handle_timeout(now);
    }
    fn poll_timeout(&self) -> Option<Time> {
        if self.dead {
            return None;
        }
        [self.sender.poll_timeout(), self.dump_due]
            .into_iter()
            .flatten()
            .min()
    }
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.dead {
            return None;
        }
        self.sender.poll_transmit()
    }
    fn run_actions(&mut self, now: Time) {
        while let Some(SenderAction::RequestDump { .. }) = self.sender.poll_action() {
            self.dump_due = Some(now + self.dump_delay);
        }
    }
}

/// The passive: the receiver and, in mirror mode, its own kernel table.
struct Passive {
    receiver: SyncReceiver,
    kernel: BTreeMap<SessionKey, Session>,
    actions: u64,
}

impl Passive {
    fn new(instance: u64, mode: Mode) -> Passive {
        let mut receiver = SyncReceiver::new(ReceiverConfig::new(instance, mode)).unwrap();
        receiver.set_peer_active(true);
        Passive {
            receiver,
            kernel: BTreeMap::new(),
            actions: 0,
        }
    }
    fn cache(&self) -> BTreeMap<SessionKey, Session> {
        self.receiver.cache().iter().map(|s| (s.key, *s)).collect()
    }
}

impl Endpoint for Passive {
    type Msg = Vec<u8>;
    fn handle_message(&mut self, now: Time, bytes: &Vec<u8>) {
        self.receiver.handle_message(now, bytes).unwrap();
    }
    fn handle_timeout(&mut self, now: Time) {
        self.receiver.handle_timeout(now);
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.receiver.poll_timeout()
    }
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.receiver.poll_transmit()
    }
    fn run_actions(&mut self, _now: Time) {
        while let Some(a) = self.receiver.poll_action() {
            self.actions += 1;
            match a {
                ReceiverAction::Install(v) => {
                    for s in v {
                        self.kernel.insert(s.key, s);
                    }
                }
                ReceiverAction::Remove(v) => {
                    for k in v {
                        self.kernel.remove(&k);
                    }
                }
            }
        }
    }
}

type Pair = Net<Active, Passive>;

fn pair(seed: u64, mode: Mode, link: Link) -> Pair {
    let mut net = Net::new(
        seed,
        Active::new(1000 + seed),
        Passive::new(500 + seed, mode),
        link,
    );
    net.drain();
    net
}

fn key(n: u32) -> SessionKey {
    SessionKey {
        src: Ipv4Addr::from(0x0A00_0000 + n),
        dst: Ipv4Addr::new(203, 0, 113, 80),
        proto: if n & 3 == 0 { 17 } else { 6 },
        src_port: 1024 + (n % 60_000) as u16,
        dst_port: 443,
    }
}

fn session(rng: &mut Rng, n: u32, timeout_s: u32) -> Session {
    let k = key(n);
    Session {
        key: k,
        reply: Tuple {
            src: Ipv4Addr::new(10, 1, 0, 10),
            dst: Ipv4Addr::new(198, 51, 100, 20),
            src_port: 8443,
            dst_port: rng.below(65_536) as u16,
        },
        status: rng.next_u64() as u32,
        // Within the kernel's range, which the receiver clamps to.
        timeout_s: timeout_s.min(max_timeout(k.proto)),
        tcp_state: (k.proto == 6).then(|| rng.below(10) as u8),
        mark: rng.next_u64() as u32,
    }
}

/// A random conntrack event on a pool of `keys` keys: New for an absent
/// key, else an Update (70 %) or a Destroy.
fn random_event(rng: &mut Rng, table: &BTreeMap<SessionKey, Session>, keys: u32) -> Event {
    let n = rng.below(u64::from(keys)) as u32;
    let s = session(rng, n, 3600);
    if !table.contains_key(&s.key) {
        Event::New(s)
    } else if rng.chance(0.7) {
        Event::Update(s)
    } else {
        Event::Destroy(s.key)
    }
}

/// `count` random events spaced 0..`gap_us` apart, all heard.
fn stream(net: &mut Pair, count: usize, keys: u32, gap_us: u64) {
    for _ in 0..count {
        let dt = Duration::from_micros(net.rng.below(gap_us + 1));
        let at = net.now + dt;
        net.run_until(at);
        let ev = random_event(&mut net.rng, &net.a.table, keys);
        net.a.change(net.now, ev, true);
        net.drain();
    }
}

/// Runs until the sender has nothing pending or unacknowledged and the
/// passive is synced; panics with the stats if that takes longer than
/// `limit` from now.
fn settle(net: &mut Pair, limit: Duration) {
    let end = net.now + limit;
    let ok = net.run_until_true(end, |n| {
        let st = n.a.sender.stats(n.now);
        st.pending == 0 && st.in_flight == 0 && n.a.dump_due.is_none() && n.b.receiver.ready()
    });
    assert!(
        ok,
        "not settled by {end:?}: {:?}\n{:?}",
        net.a.sender.stats(net.now),
        net.b.receiver.stats(net.now)
    );
}

fn assert_synced(net: &Pair) {
    let cache = net.b.cache();
    assert_eq!(cache.len(), net.a.table.len(), "cache size");
    assert!(
        cache == net.a.table,
        "cache differs from the active's table"
    );
    if net.b.receiver.mode() == Mode::Mirror {
        assert!(net.b.kernel == net.a.table, "passive kernel differs");
    } else {
        assert!(net.b.kernel.is_empty(), "commit mode touched the kernel");
    }
}

fn seeds() -> Vec<u64> {
    let n = std::env::var("SYNC_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    (1..=n).collect()
}

// ---- session sync ----

#[test]
fn ten_thousand_random_events_over_a_lossy_link_converge() {
    for seed in seeds() {
        for mode in [Mode::Mirror, Mode::Commit] {
            let mut net = pair(seed, mode, Link::lossy());
            stream(&mut net, 10_000, 2_000, 200);
            settle(&mut net, Duration::from_secs(30));
            assert_synced(&net);
            let st = net.a.sender.stats(net.now);
            assert!(st.retransmits > 0, "the link lost nothing? {st:?}");
            assert_eq!(st.events, 10_000);
            let rs = net.b.receiver.stats(net.now);
            assert!(rs.duplicates > 0, "the link duplicated nothing? {rs:?}");
            // A lost BulkStart may make the receiver ask; the sender knows
            // retransmission brings it, so loss alone never costs a bulk.
            assert_eq!(st.resyncs, 0, "loss alone needs no resync: {st:?}");
            assert_eq!(net.a.dumps, 1);
            assert_eq!(rs.bulks, 1);
        }
    }
}

#[test]
fn an_overrun_is_repaired_by_a_bulk() {
    for seed in seeds() {
        let mut net = pair(seed, Mode::Mirror, Link::lossy());
        stream(&mut net, 2_000, 500, 200);
        // The event socket overflows: 300 changes the sender never hears.
        for _ in 0..300 {
            let ev = random_event(&mut net.rng, &net.a.table, 500);
            net.a.change(net.now, ev, false);
        }
        settle(&mut net, Duration::from_secs(30));
        assert!(net.b.cache() != net.a.table, "lost events must show");
        // ENOBUFS reported: the daemon dumps, the sender sends a bulk,
        // and changes keep coming while it does.
        net.a.sender.handle_overrun(net.now);
        net.drain();
        stream(&mut net, 1_000, 500, 200);
        settle(&mut net, Duration::from_secs(30));
        assert_synced(&net);
        assert_eq!(net.b.receiver.stats(net.now).bulks, 2);
        assert!(net.a.sender.stats(net.now).superseded <= 500);
    }
}

#[test]
fn a_restarted_passive_gets_a_bulk_and_only_then_is_ready() {
    for (seed, daemon_notices) in [(1, true), (2, false)] {
        let mut net = pair(seed, Mode::Mirror, Link::lossy());
        stream(&mut net, 2_000, 1_000, 200);
        settle(&mut net, Duration::from_secs(30));
        // The passive restarts: empty cache, empty kernel table.
        net.b = Passive::new(77_777, Mode::Mirror);
        assert!(!net.b.receiver.ready());
        if daemon_notices {
            // The daemon saw the peer's new wire epoch.
            net.a.sender.handle_peer_joined(net.now);
            net.drain();
        }
        // Changes keep coming; without the daemon's notice, the passive's
        // resync request (on the first message it cannot place) does it.
        let start = net.now;
        stream(&mut net, 500, 1_000, 200);
        let mut ready_at = None;
        let end = net.now + Duration::from_secs(30);
        while net.now < end && !net.b.receiver.ready() {
            net.step();
        }
        if net.b.receiver.ready() {
            ready_at = Some(net.now - start);
        }
        settle(&mut net, Duration::from_secs(30));
        assert_synced(&net);
        assert!(ready_at.is_some());
        let resyncs = net.a.sender.stats(net.now).resyncs;
        if daemon_notices {
            assert_eq!(resyncs, 0, "the bulk came unasked");
        } else {
            assert!(resyncs >= 1);
        }
        println!(
            "passive restart (daemon notices: {daemon_notices}): ready after {:?}",
            ready_at.unwrap_or_default()
        );
    }
}

#[test]
fn a_restarted_active_is_adopted_at_its_bulk() {
    let mut net = pair(5, Mode::Commit, Link::lossy());
    stream(&mut net, 2_000, 800, 200);
    settle(&mut net, Duration::from_secs(30));
    // The active's daemon restarts: a new stream, seqs from 1 again.
    let table = std::mem::take(&mut net.a.table);
    net.a = Active::new(9_999);
    net.a.table = table;
    net.drain();
    stream(&mut net, 1_000, 800, 200);
    settle(&mut net, Duration::from_secs(30));
    assert_synced(&net);
    assert_eq!(net.b.receiver.stats(net.now).bulks, 2);
}

#[test]
fn coalescing_turns_a_burst_into_a_few_messages() {
    let mut net = pair(7, Mode::Commit, Link::perfect());
    settle(&mut net, Duration::from_secs(1));
    let before = net.a.sender.stats(net.now);
    // 10,000 updates on 100 connections within one flush interval.
    for i in 0..10_000u32 {
        let s = session(&mut net.rng, i % 100, 3600);
        let ev = if net.a.table.contains_key(&s.key) {
            Event::Update(s)
        } else {
            Event::New(s)
        };
        net.a.change(net.now, ev, true);
    }
    net.drain();
    settle(&mut net, Duration::from_secs(1));
    assert_synced(&net);
    let st = net.a.sender.stats(net.now);
    let messages = st.messages_sent - before.messages_sent;
    let entries = st.entries_sent - before.entries_sent;
    assert_eq!(messages, 1, "one Update for the whole burst");
    assert_eq!(entries, 100);
    assert_eq!(st.coalesced, 9_900);
}

/// While the link is cut, changes keep coming on more keys than any bound
/// of the sender. What it holds for retransmission stays within its window
/// (one message over: a flush may send an Update and a Destroy together),
/// each message at most `MAX_PAYLOAD`; everything else waits in the pending
/// set, one slot per key however often the key changes. The pending set
/// has no bound of its own: it is bounded by the keys that changed, which
/// the kernel's conntrack table bounds (the pool here is far larger than
/// what the window's messages can carry, so only the window holds them).
#[test]
fn memory_stays_bounded_while_the_link_is_cut() {
    let mut net = pair(11, Mode::Commit, Link::perfect());
    settle(&mut net, Duration::from_secs(1));
    net.partition();
    let window = SenderConfig::new(1).window;
    let pool: u32 = 250_000;
    let carried = (window + 1) * entries_per_message(MAX_PAYLOAD);
    assert!(
        pool as usize > carried,
        "the pool must outgrow what the window carries"
    );
    let mut changed = std::collections::HashSet::new();
    let (mut max_pending, mut max_in_flight) = (0, 0);
    let coalesced_before = net.a.sender.stats(net.now).coalesced;
    for round in 0..150_000u32 {
        if round % 1000 == 0 {
            net.run_until(net.now + ms(5));
        }
        let ev = random_event(&mut net.rng, &net.a.table, pool);
        changed.insert(match &ev {
            Event::New(s) | Event::Update(s) => s.key,
            Event::Destroy(k) => *k,
        });
        net.a.change(net.now, ev, true);
        let st = net.a.sender.stats(net.now);
        max_pending = max_pending.max(st.pending);
        max_in_flight = max_in_flight.max(st.in_flight);
        assert!(st.in_flight <= window + 1, "round {round}: {st:?}");
        assert!(
            st.pending <= changed.len(),
            "round {round}: {} pending for {} keys changed",
            st.pending,
            changed.len()
        );
    }
    let st = net.a.sender.stats(net.now);
    assert!(st.window_stalls > 0 && st.retransmits > 0, "{st:?}");
    // The bounds were reached, not merely unreached: the window filled,
    // the pending set outgrew the old test's 3,000 keys, and keys changed
    // again while pending were folded into their slot.
    assert!(
        max_in_flight >= window,
        "window never filled: {max_in_flight}"
    );
    assert!(max_pending > 3_000, "pending never grew: {max_pending}");
    assert!(st.coalesced > coalesced_before, "{st:?}");
    // The link heals: everything arrives.
    net.heal(Link::lossy());
    settle(&mut net, Duration::from_secs(60));
    assert_synced(&net);
}

/// A survivor whose peer is gone for five minutes while about 540
/// connections/s go through it (New, then Destroy 1 s later): its pending
/// set never passes its bound, and the peer, back, gets one bulk of the
/// table as it is then, never the backlog. Run twice: the daemon reports
/// the link down (a killed peer), or it does not (a frozen one, or a link
/// that stalls without breaking).
#[test]
fn a_peer_gone_for_minutes_costs_a_bounded_sender_and_one_bulk() {
    for reported in [true, false] {
        let mut net = pair(21, Mode::Mirror, Link::perfect());
        let max_pending = 4_000;
        net.a.sender = SyncSender::new(SenderConfig {
            max_pending,
            ..SenderConfig::new(2_021)
        })
        .unwrap();
        net.drain();
        settle(&mut net, Duration::from_secs(1));
        net.partition();
        if reported {
            net.a.sender.handle_disconnect(net.now);
        }
        let window = SenderConfig::new(1).window;
        let dumps_before = net.a.dumps;
        let rate = 540u64;
        let gone = Duration::from_secs(300);
        let start = net.now;
        let mut n = 0u32;
        let mut max_pending_seen = 0;
        while net.now < start + gone {
            let at = start + Duration::from_micros(1_000_000 * u64::from(n) / rate);
            net.run_until(at);
            let mut rng = Rng::new(u64::from(n));
            net.a
                .change(net.now, Event::New(session(&mut rng, n, 120)), true);
            if n >= rate as u32 {
                net.a
                    .change(net.now, Event::Destroy(key(n - rate as u32)), true);
            }
            n += 1;
            let st = net.a.sender.stats(net.now);
            max_pending_seen = max_pending_seen.max(st.pending);
            assert!(st.pending <= max_pending, "{st:?}");
            assert!(st.in_flight <= window + 1, "{st:?}");
        }
        let st = net.a.sender.stats(net.now);
        if reported {
            assert_eq!((max_pending_seen, st.in_flight), (0, 0), "{st:?}");
            assert_eq!(net.a.dumps, dumps_before, "no dump while the peer is gone");
        } else {
            assert!(st.backlogs >= 1, "{st:?}");
            assert!(max_pending_seen > max_pending / 2, "{max_pending_seen}");
        }
        assert!(st.discarded > 0, "{st:?}");
        // Back: one dump, and what reaches the peer is that dump (the
        // table, ~540 entries), plus the probe, not five minutes of changes.
        let dumps_at_heal = net.a.dumps;
        let sent_at_heal = net.a.sender.stats(net.now).entries_sent;
        net.heal(Link::perfect());
        if reported {
            net.a.sender.handle_peer_joined(net.now);
        }
        net.drain();
        settle(&mut net, Duration::from_secs(10));
        assert_synced(&net);
        let st = net.a.sender.stats(net.now);
        assert_eq!(net.a.dumps - dumps_at_heal, 1, "one bulk: {st:?}");
        let sent = st.entries_sent - sent_at_heal;
        assert!(
            sent <= net.a.table.len() as u64 + entries_per_message(MAX_PAYLOAD) as u64,
            "{sent} entries sent for a table of {}",
            net.a.table.len()
        );
        println!(
            "peer gone {gone:?} (reported: {reported}): {n} connections, \
             pending max {max_pending_seen}, {} events discarded, {} backlogs; \
             on return 1 bulk, {sent} entries for a table of {}",
            st.discarded,
            st.backlogs,
            net.a.table.len()
        );
    }
}

/// Just after a failover the new active's first messages can arrive
/// before its heartbeats told this node it is active: they are refused,
/// unacknowledged, and the retransmissions are taken once it is heard.
#[test]
fn a_new_active_is_refused_until_heard_and_then_synced() {
    let mut net = pair(23, Mode::Mirror, Link::lossy());
    net.b.receiver.set_peer_active(false);
    stream(&mut net, 500, 300, 200);
    let refused = net.b.receiver.stats(net.now).refused_peer_not_active;
    assert!(refused > 0);
    assert!(net.b.cache().is_empty());
    net.b.receiver.set_peer_active(true);
    settle(&mut net, Duration::from_secs(30));
    assert_synced(&net);
}

#[test]
fn entries_whose_destroy_was_lost_expire() {
    let mut net = pair(13, Mode::Mirror, Link::perfect());
    settle(&mut net, Duration::from_secs(1));
    let mut rng = Rng::new(3);
    let short: Vec<Session> = (0..10).map(|n| session(&mut rng, n, 60)).collect();
    let long: Vec<Session> = (10..20).map(|n| session(&mut rng, n, 3600)).collect();
    for s in short.iter().chain(&long) {
        net.a.change(net.now, Event::New(*s), true);
    }
    net.drain();
    settle(&mut net, Duration::from_secs(1));
    assert_eq!(net.b.receiver.cache().len(), 20);
    // The active destroys the short ones and dies before they leave.
    net.links = [Link::cut(); 2];
    for s in &short {
        net.a.change(net.now, Event::Destroy(s.key), true);
    }
    net.a.dead = true;
    let t0 = net.now;
    net.run_until(t0 + Duration::from_secs(60));
    assert_eq!(
        net.b.receiver.cache().len(),
        20,
        "not before timeout + grace"
    );
    net.run_until(t0 + Duration::from_secs(95));
    assert_eq!(net.b.receiver.cache().len(), 10);
    assert!(short.iter().all(|s| !net.b.kernel.contains_key(&s.key)));
    assert!(long.iter().all(|s| net.b.kernel.contains_key(&s.key)));
    assert_eq!(net.b.receiver.stats(net.now).expired, 10);
}

#[test]
fn promotion_commits_what_was_synced() {
    let mut net = pair(17, Mode::Commit, Link::lossy());
    stream(&mut net, 3_000, 1_000, 200);
    settle(&mut net, Duration::from_secs(30));
    let mut taken = net.b.receiver.take_for_promotion();
    taken.sort_by_key(|s| s.key);
    let want: Vec<Session> = net.a.table.values().copied().collect();
    assert_eq!(taken, want);
}

// ---- config sync ----

/// A node's config core and the daemon's apply (which may fail).
struct Node {
    sync: ConfigSync,
    fail_with: Option<String>,
    applies: Vec<u64>,
}

impl Node {
    fn new(current: Option<(u64, Vec<u8>)>) -> Node {
        Node {
            sync: ConfigSync::new(RetryConfig::default(), current),
            fail_with: None,
            applies: Vec::new(),
        }
    }

    /// The active node (its peer passive).
    fn active(current: Option<(u64, Vec<u8>)>) -> Node {
        let mut n = Node::new(current);
        n.sync.set_local_active(Duration::ZERO, true);
        n
    }

    /// The passive node, its peer heard as active.
    fn passive(current: Option<(u64, Vec<u8>)>) -> Node {
        let mut n = Node::new(current);
        n.sync.set_peer_active(true);
        n
    }
}

impl Endpoint for Node {
    type Msg = Vec<u8>;
    fn handle_message(&mut self, now: Time, bytes: &Vec<u8>) {
        self.sync.handle_message(now, bytes).unwrap();
    }
    fn handle_timeout(&mut self, now: Time) {
        self.sync.handle_timeout(now);
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.sync.poll_timeout()
    }
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.sync.poll_transmit()
    }
    fn run_actions(&mut self, now: Time) {
        while let Some(ConfigAction::ApplyConfig { version, .. }) = self.sync.poll_action() {
            self.applies.push(version);
            let result = match &self.fail_with {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            };
            self.sync.handle_apply_result(now, result);
        }
    }
}

#[test]
fn config_reaches_the_passive_once_under_loss() {
    for seed in seeds() {
        let v1 = b"[policy]\nversion = 1\n".to_vec();
        let mut net = Net::new(
            seed,
            Node::active(Some((1, v1.clone()))),
            Node::passive(Some((1, v1))),
            Link {
                drop: 0.5,
                ..Link::lossy()
            },
        );
        let text = b"[policy]\nversion = 2\n".to_vec();
        let hash = net.a.sync.apply_local(net.now, 2, text).unwrap();
        net.drain();
        let ok = net.run_until_true(Duration::from_secs(20), |n| {
            n.a.sync.status().offering.is_none()
        });
        assert!(ok, "seed {seed}: {:?}", net.a.sync.status());
        assert_eq!(net.b.applies, vec![2], "seed {seed}: applied exactly once");
        assert_eq!(net.b.sync.advertised(), (2, hash));
        // Heartbeats now agree: no mismatch, no further offers.
        net.a.sync.note_peer_version(net.now, 2, hash);
        net.b.sync.note_peer_version(net.now, 2, hash);
        assert!(!net.a.sync.status().mismatch && !net.b.sync.status().mismatch);
        net.drain();
        net.run_until(net.now + Duration::from_secs(5));
        assert_eq!(net.b.applies, vec![2]);
    }
}

#[test]
fn a_restarted_passive_gets_the_policy_from_heartbeats() {
    let text = b"policy v7".to_vec();
    let mut net = Net::new(
        3,
        Node::active(Some((7, text.clone()))),
        Node::passive(None),
        Link::lossy(),
    );
    // The fresh passive advertises version 0 in its heartbeats.
    let (v, h) = net.b.sync.advertised();
    net.a.sync.note_peer_version(net.now, v, h);
    net.drain();
    let ok = net.run_until_true(Duration::from_secs(10), |n| n.b.sync.advertised().0 == 7);
    assert!(ok);
    assert_eq!(net.b.sync.advertised(), (7, policy_hash(&text)));
    assert!(net.now < Duration::from_secs(1), "took {:?}", net.now);
}

#[test]
fn a_policy_the_passive_cannot_apply_leaves_it_on_its_version() {
    let old = b"old".to_vec();
    let mut net = Net::new(
        4,
        Node::active(Some((3, old.clone()))),
        Node::passive(Some((3, old.clone()))),
        Link::lossy(),
    );
    net.b.fail_with = Some("interface role \"dmz\" does not exist on this node".into());
    net.a.sync.apply_local(net.now, 4, b"new".to_vec()).unwrap();
    net.drain();
    let ok = net.run_until_true(Duration::from_secs(10), |n| {
        n.a.sync.status().peer_result.is_some()
    });
    assert!(ok);
    net.run_until(net.now + Duration::from_secs(5));
    assert_eq!(net.b.applies, vec![4], "tried once, never again");
    assert_eq!(net.b.sync.advertised(), (3, policy_hash(&old)));
    let a = net.a.sync.status();
    assert!(
        a.last_error.as_deref().unwrap_or("").contains("dmz"),
        "{a:?}"
    );
    net.a.sync.note_peer_version(net.now, 3, policy_hash(&old));
    assert!(net.a.sync.status().mismatch);
    assert_eq!(net.a.sync.status().offering, None, "no retry storm");
}

#[test]
fn an_older_offer_is_not_a_downgrade() {
    let mut net = Net::new(
        6,
        Node::active(Some((2, b"two".to_vec()))),
        Node::passive(Some((5, b"five".to_vec()))),
        Link::lossy(),
    );
    // The node with version 2 thinks its peer is behind (stale heartbeat).
    net.a.sync.note_peer_version(net.now, 1, [0; 32]);
    net.drain();
    net.run_until(Duration::from_secs(5));
    assert!(net.b.applies.is_empty());
    assert_eq!(net.b.sync.advertised().0, 5);
    assert_eq!(net.a.sync.status().offering, None, "the refusal was heard");
    assert!(net.b.sync.status().stale_offers > 0);
}

// ---- throughput (figures, not assertions on time) ----

/// `cargo test --release -p hafw-ha --test sync -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: run in release with --nocapture to see the figures"]
fn bench_codec_and_pipeline_throughput() {
    let mut rng = Rng::new(42);
    let n = 100_000u32;
    let dump: Vec<Session> = (0..n).map(|i| session(&mut rng, i, 3600)).collect();
    let per = entries_per_message(MAX_PAYLOAD);

    let t = Instant::now();
    let payloads: Vec<Vec<u8>> = dump
        .chunks(per)
        .enumerate()
        .map(|(i, c)| {
            encode(&Frame {
                stream: 1,
                msg: SyncMessage::BulkChunk {
                    seq: i as u64 + 2,
                    gen: 1,
                    entries: c.to_vec(),
                },
            })
        })
        .collect();
    let encode_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut decoded = 0usize;
    for p in &payloads {
        if let Ok(Frame {
            msg: SyncMessage::BulkChunk { entries, .. },
            ..
        }) = decode(p)
        {
            decoded += entries.len();
        }
    }
    let decode_s = t.elapsed().as_secs_f64();
    assert_eq!(decoded, n as usize);
    println!(
        "codec: {n} entries in {} payloads: encode {:.0} entries/s, decode {:.0} entries/s",
        payloads.len(),
        f64::from(n) / encode_s,
        f64::from(n) / decode_s
    );

    // The whole pipeline: events → sender → bytes → receiver → acks, on a
    // perfect zero-delay link, in both modes.
    for mode in [Mode::Mirror, Mode::Commit] {
        let mut sender = SyncSender::new(SenderConfig::new(7)).unwrap();
        let mut receiver = SyncReceiver::new(ReceiverConfig::new(3, mode)).unwrap();
        receiver.set_peer_active(true);
        sender.poll_action();
        let mut now = Duration::ZERO;
        sender.start_bulk(now, vec![]);
        let events = 1_000_000u32;
        let mut table_keys = 0u32;
        let t = Instant::now();
        let mut kernel_ops = 0usize;
        for i in 0..events {
            // 10 µs of simulated time per event: 100k events/s offered.
            now += Duration::from_micros(10);
            let ev = match i % 3 {
                0 => {
                    table_keys += 1;
                    Event::New(session(&mut rng, table_keys, 3600))
                }
                1 => Event::Update(session(&mut rng, table_keys, 3600)),
                _ => Event::Destroy(key(table_keys.saturating_sub(50))),
            };
            sender.handle_event(now, ev);
            if i % 64 == 0 {
                sender.handle_timeout(now);
            }
            while let Some(b) = sender.poll_transmit() {
                receiver.handle_message(now, &b).unwrap();
            }
            while let Some(a) = receiver.poll_action() {
                kernel_ops += match a {
                    ReceiverAction::Install(v) => v.len(),
                    ReceiverAction::Remove(v) => v.len(),
                };
            }
            while let Some(b) = receiver.poll_transmit() {
                sender.handle_message(now, &b).unwrap();
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let st = sender.stats(now);
        println!(
            "pipeline {mode:?}: {events} events in {secs:.3} s = {:.0} events/s \
             ({} messages, {} entries sent, {} kernel ops, lag p50 ≤ {:?} p99 ≤ {:?} \
             in simulated time)",
            f64::from(events) / secs,
            st.messages_sent,
            st.entries_sent,
            kernel_ops,
            st.lag_histogram.quantile(0.5).unwrap_or_default(),
            st.lag_histogram.quantile(0.99).unwrap_or_default(),
        );
    }

    // Promotion in commit mode: taking a 100k-entry cache.
    let mut receiver = SyncReceiver::new(ReceiverConfig::new(3, Mode::Commit)).unwrap();
    receiver.set_peer_active(true);
    receiver
        .handle_message(
            Duration::ZERO,
            &encode(&Frame {
                stream: 1,
                msg: SyncMessage::BulkStart { seq: 1, gen: 1 },
            }),
        )
        .unwrap();
    for p in &payloads {
        receiver.handle_message(Duration::ZERO, p).unwrap();
    }
    let t = Instant::now();
    let taken = receiver.take_for_promotion();
    println!(
        "take_for_promotion: {} sessions in {:?}",
        taken.len(),
        t.elapsed()
    );
}
