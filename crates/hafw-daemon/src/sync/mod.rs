//! Session sync in the daemon: a thread of its own (so a dump of 100k
//! entries never delays a heartbeat or a promotion) that owns the HA2 link,
//! the conntrack sockets and the pure sync cores.
//!
//! While active it streams the kernel's conntrack events through a
//! [`SyncSender`] (bulk dumps on start, when the peer (re)connects, after an
//! event overrun and every `REFRESH`); while passive it feeds a
//! [`SyncReceiver`] and, in `mirror` mode, keeps its own kernel table warm,
//! so promotion has nothing to install; in `commit` mode promotion installs
//! the cache in one batch. Only the active sends and only the passive
//! applies, so the two nodes never echo each other's entries (and a stale
//! peer can never overwrite the active's live table).
//!
//! The same thread runs config sync ([`ConfigSync`]) over the same link: HA2
//! payloads starting with `'C'` are config sync's, the rest session sync's.
//! The daemon's config task ([`crate::config`]) applies what the peer
//! offers and tells this thread the result ([`SyncCmd`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hafw_ha::config_sync::{self, ConfigAction, ConfigStatus, ConfigSync, RetryConfig};
use hafw_ha::sessions::{
    Event as SyncEvent, Mode, ReceiverAction, ReceiverConfig, SenderAction, SenderConfig, Session,
    SessionKey, SyncReceiver, SyncSender, Tuple as SyncTuple,
};
use hafw_ha::wire::{KindSealer, Psk};
use hafw_kernel::conntrack::{self, Conntrack, Entry, Events, TcpInfo, Tuple};
use tokio::sync::{mpsc, oneshot, watch};

use self::ha2::Ha2Event;
use crate::log::Log;

/// The mark bit on entries this node installed from its peer.
pub mod ha2;

pub const INJECT_MARK: u32 = 0x4846_0000;
/// How often the active re-sends its whole table: keeps quiet flows (whose
/// kernel timers are refreshed without events) alive on the passive.
const REFRESH: Duration = Duration::from_secs(30);

/// How often the sync thread publishes its [`SyncStatus`] at most.
const STATUS_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Default)]
pub struct SyncStatus {
    pub mode: String,
    pub connected: bool,
    pub role_active: bool,
    /// The passive's sync cache (what a promotion would make ready); 0 on
    /// the active, whose table is the kernel's.
    pub sessions_known: usize,
    /// The active's session changes sent to the peer (cumulative).
    pub entries_sent: u64,
    pub synced_entries: u64,
    pub lag_ms: Option<f64>,
    pub resyncs: u64,
    pub dropped: u64,
    pub ready: bool,
    pub last_install: Option<(usize, Duration)>,
    pub config: ConfigStatus,
}

/// What the daemon asks of config sync.
pub enum SyncCmd {
    /// The peer's (version, hash) from its heartbeats.
    PeerConfig(u64, [u8; 32]),
    /// `hafw config apply` succeeded here: offer this policy to the peer.
    ApplyLocal {
        version: u64,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<[u8; 32], String>>,
    },
    /// The verdict on the last [`ConfigAction::ApplyConfig`].
    ApplyResult(Result<(), String>),
}

pub struct SyncHandle {
    role: watch::Sender<bool>,
    promote: mpsc::UnboundedSender<oneshot::Sender<(usize, Duration, Option<String>)>>,
    pub status: Arc<Mutex<SyncStatus>>,
    cmd: mpsc::UnboundedSender<SyncCmd>,
}

impl SyncHandle {
    pub fn set_active(&self, active: bool) {
        let _ = self.role.send(active);
    }

    pub fn config(&self, cmd: SyncCmd) -> Result<(), String> {
        self.cmd
            .send(cmd)
            .map_err(|_| "the sync thread has stopped".to_string())
    }

    /// Commit before announce: makes every synced session present in this
    /// node's kernel; returns how many were installed now and how long it took.
    pub async fn install_for_promotion(&self) -> (usize, Duration, Option<String>) {
        let (tx, rx) = oneshot::channel();
        if self.promote.send(tx).is_err() {
            return (
                0,
                Duration::ZERO,
                Some("the sync thread has stopped".into()),
            );
        }
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(r)) => r,
            _ => (
                0,
                Duration::ZERO,
                Some("the sync thread did not answer in 5 s".into()),
            ),
        }
    }
}

pub struct SyncSetup {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub node_id: u32,
    pub peer_id: u32,
    pub mode: Mode,
    /// The persisted policy (version, bytes), if any.
    pub config: Option<(u64, Vec<u8>)>,
    /// Where policies offered by the peer go to be applied.
    pub config_actions: mpsc::UnboundedSender<ConfigAction>,
    /// Both nodes' own (not floating) addresses: flows to or from them are
    /// the nodes' own traffic (heartbeats, HA2, management), never synced.
    pub node_addresses: Vec<std::net::Ipv4Addr>,
}

pub fn start(
    setup: SyncSetup,
    sealer: Arc<Mutex<KindSealer>>,
    psk: Psk,
    log: Log,
) -> Result<SyncHandle, String> {
    let (role_tx, role_rx) = watch::channel(false);
    let (promote_tx, promote_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let status = Arc::new(Mutex::new(SyncStatus {
        mode: format!("{:?}", setup.mode).to_lowercase(),
        ..Default::default()
    }));
    let st = status.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("start the sync runtime: {e}")));
                    return;
                }
            };
            let ct = match Conntrack::open(None) {
                Ok(mut c) => {
                    c.set_inject_mark(INJECT_MARK);
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("open conntrack: {e}")));
                    return;
                }
            };
            let events = match Events::open(None) {
                Ok(e) => e,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("subscribe to conntrack events: {e}")));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            rt.block_on(run(
                setup, sealer, psk, ct, events, role_rx, promote_rx, cmd_rx, st, log,
            ));
        })
        .map_err(|e| format!("start the sync thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(SyncHandle {
            role: role_tx,
            promote: promote_tx,
            status,
            cmd: cmd_tx,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the sync thread stopped during start-up".into()),
    }
}

enum CtIn {
    Event(conntrack::Event),
}

#[allow(clippy::too_many_arguments)]
async fn run(
    setup: SyncSetup,
    sealer: Arc<Mutex<KindSealer>>,
    psk: Psk,
    mut ct: Conntrack,
    mut events: Events,
    mut role: watch::Receiver<bool>,
    mut promote: mpsc::UnboundedReceiver<oneshot::Sender<(usize, Duration, Option<String>)>>,
    mut cmds: mpsc::UnboundedReceiver<SyncCmd>,
    status: Arc<Mutex<SyncStatus>>,
    log: Log,
) {
    let origin = Instant::now();
    let now = || origin.elapsed();
    let mut link = ha2::start(
        setup.local,
        setup.peer,
        setup.node_id < setup.peer_id,
        sealer,
        &psk,
        setup.node_id,
    );
    // Conntrack events arrive on a blocking socket: a thread of their own.
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<CtIn>();
    std::thread::Builder::new()
        .name("ct-events".into())
        .spawn(move || loop {
            match events.recv(None) {
                Ok(Some(e)) => {
                    if ev_tx.send(CtIn::Event(e)).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        })
        .ok();
    let stream =
        (std::process::id() as u64) << 32 | (origin.elapsed().as_nanos() as u64 & 0xffff_ffff);
    let mut sender: Option<SyncSender> = None;
    let mut instances = stream;
    let mut receiver = match new_receiver(instances, setup.mode) {
        Ok(r) => r,
        Err(e) => {
            log.info(format!(
                "session sync: receiver refused its settings: {e}; sync is off"
            ));
            return;
        }
    };
    let mut active = false;
    let mut connected = false;
    let mut last_refresh = Instant::now();
    let mut synced: u64 = 0;
    let mut dropped: u64 = 0;
    let mut config = ConfigSync::new(RetryConfig::default(), setup.config.clone());
    let mut last_status: Option<Instant> = None;
    loop {
        while let Some(bytes) = config.poll_transmit() {
            let _ = link.to_peer.send(bytes);
        }
        while let Some(a) = config.poll_action() {
            if setup.config_actions.send(a).is_err() {
                config
                    .handle_apply_result(now(), Err("the daemon's config task has stopped".into()));
            }
        }
        // Outputs of the cores.
        if let Some(s) = sender.as_mut() {
            while let Some(a) = s.poll_action() {
                let SenderAction::RequestDump { .. } = a;
                match ct.dump() {
                    Ok(entries) => s.start_bulk(
                        now(),
                        entries
                            .iter()
                            .filter_map(|e| to_session(e, &setup.node_addresses))
                            .collect(),
                    ),
                    Err(e) => log.info(format!("session sync: conntrack dump failed: {e}")),
                }
            }
            while let Some(bytes) = s.poll_transmit() {
                let _ = link.to_peer.send(bytes);
            }
        }
        while let Some(bytes) = receiver.poll_transmit() {
            let _ = link.to_peer.send(bytes);
        }
        while let Some(a) = receiver.poll_action() {
            apply(&mut ct, a, &mut synced, &log);
        }
        // The status is for readers (control socket, metrics, readiness):
        // published at most every STATUS_EVERY, not per conntrack event,
        // and never left stale (the wait below ends when it is due).
        let status_due = last_status.map(|t| t + STATUS_EVERY);
        let publish = status_due.is_none_or(|d| Instant::now() >= d);
        let lock = if publish { status.lock().ok() } else { None };
        if let Some(mut st) = lock {
            last_status = Some(Instant::now());
            st.connected = connected;
            st.role_active = active;
            if let Some(s) = &sender {
                let stats = s.stats(now());
                st.sessions_known = 0;
                st.entries_sent = stats.entries_sent;
                st.lag_ms = Some(stats.lag.as_secs_f64() * 1000.0);
                st.resyncs = stats.resyncs + stats.bulks;
            } else {
                let r = receiver.stats(now());
                st.sessions_known = receiver.cache().len();
                st.resyncs = r.resyncs;
                st.lag_ms = None;
            }
            st.synced_entries = synced;
            st.dropped = dropped;
            let cs = config.status();
            // A node behind its peer's policy is not ready: it would run
            // (and, promoted, enforce) an old rule set.
            // The peer's version must be known: a bulk can finish before
            // the first heartbeat carrying it has been read.
            let behind = cs.peer.is_none_or(|(v, _)| v > cs.version);
            st.ready = active || (receiver.ready() && !behind);
            st.config = cs;
        }
        if active && last_refresh.elapsed() >= REFRESH {
            if let Some(s) = sender.as_mut() {
                s.request_bulk(now());
            }
            last_refresh = Instant::now();
        }
        let deadline = [
            sender.as_ref().and_then(|s| s.poll_timeout()),
            receiver.poll_timeout(),
            config.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| origin + t)
        .unwrap_or_else(|| Instant::now() + Duration::from_millis(500));
        let deadline = match status_due.filter(|_| !publish) {
            Some(due) => deadline.min(due),
            None => deadline,
        };
        tokio::select! {
            ev = link.events.recv() => match ev {
                None => return,
                Some(Ha2Event::Connected) => {
                    connected = true;
                    if let Some(s) = sender.as_mut() {
                        // A (re)connected peer may have restarted: send it everything.
                        s.handle_peer_joined(now());
                    }
                }
                Some(Ha2Event::Disconnected(_)) => connected = false,
                Some(Ha2Event::Payload(bytes)) if bytes.first() == Some(&config_sync::codec::CHANNEL) => {
                    if config.handle_message(now(), &bytes).is_err() {
                        dropped += 1;
                    }
                }
                Some(Ha2Event::Payload(bytes)) => {
                    if let Some(s) = sender.as_mut() {
                        if s.handle_message(now(), &bytes).is_err() {
                            dropped += 1;
                        }
                    } else if receiver.handle_message(now(), &bytes).is_err() {
                        dropped += 1;
                    }
                }
            },
            Some(CtIn::Event(e)) = ev_rx.recv() => {
                if let Some(s) = sender.as_mut() {
                    match e {
                        conntrack::Event::New(x) => { if let Some(v) = to_session(&x, &setup.node_addresses) { s.handle_event(now(), SyncEvent::New(v)) } }
                        conntrack::Event::Update(x) => { if let Some(v) = to_session(&x, &setup.node_addresses) { s.handle_event(now(), SyncEvent::Update(v)) } }
                        conntrack::Event::Destroy(x) => s.handle_event(now(), SyncEvent::Destroy(key_of(&x.orig))),
                        conntrack::Event::Overrun => s.handle_overrun(now()),
                    }
                }
            }
            changed = role.changed() => {
                if changed.is_err() {
                    return;
                }
                let now_active = *role.borrow();
                if now_active && !active {
                    match SyncSender::new(SenderConfig::new(stream ^ synced)) {
                        Ok(s) => sender = Some(s),
                        Err(e) => log.info(format!("session sync: sender refused its settings: {e}")),
                    }
                    last_refresh = Instant::now();
                } else if !now_active && active {
                    sender = None;
                    instances = instances.wrapping_add(1);
                    if let Ok(r) = new_receiver(instances, setup.mode) {
                        receiver = r;
                    }
                }
                active = now_active;
            }
            Some(cmd) = cmds.recv() => match cmd {
                SyncCmd::PeerConfig(v, h) => config.note_peer_version(now(), v, h),
                SyncCmd::ApplyLocal { version, bytes, reply } => {
                    let _ = reply.send(config.apply_local(now(), version, bytes).map_err(|e| e.to_string()));
                }
                SyncCmd::ApplyResult(r) => config.handle_apply_result(now(), r),
            },
            Some(reply) = promote.recv() => {
                let t = Instant::now();
                // Whatever the receiver still holds goes in now.
                let mut err = None;
                let mut n = 0;
                while let Some(a) = receiver.poll_action() {
                    n += apply(&mut ct, a, &mut synced, &log);
                }
                if setup.mode == Mode::Commit {
                    let sessions = receiver.take_for_promotion();
                    let entries: Vec<Entry> = sessions.iter().map(to_entry).collect();
                    match ct.create_batch(&entries) {
                        Ok(r) => n += r.created + r.updated,
                        Err(e) => err = Some(e.to_string()),
                    }
                }
                if let Ok(mut st) = status.lock() {
                    st.last_install = Some((n, t.elapsed()));
                }
                let _ = reply.send((n, t.elapsed(), err));
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                if let Some(s) = sender.as_mut() {
                    s.handle_timeout(now());
                }
                receiver.handle_timeout(now());
                config.handle_timeout(now());
            }
        }
    }
}

/// A receiver for a new passive period. `instance` tells the sender a
/// restarted receiver from a late message of the previous one.
fn new_receiver(instance: u64, mode: Mode) -> Result<SyncReceiver, String> {
    let mut cfg = ReceiverConfig::new(instance.max(1), mode);
    // HA2 is one TCP stream: a stream whose bulk start we missed (we were
    // active, or frozen, when it was sent) will not see it arrive late, so
    // ask for a bulk almost at once; connections opened just before the
    // next failover depend on it.
    cfg.resync_interval = Duration::from_millis(20);
    SyncReceiver::new(cfg).map_err(|e| e.to_string())
}

fn apply(ct: &mut Conntrack, a: ReceiverAction, synced: &mut u64, log: &Log) -> usize {
    match a {
        ReceiverAction::Install(sessions) => {
            let entries: Vec<Entry> = sessions.iter().map(to_entry).collect();
            match ct.create_batch(&entries) {
                Ok(r) => {
                    *synced += (r.created + r.updated) as u64;
                    r.created + r.updated
                }
                Err(e) => {
                    log.info(format!(
                        "session sync: install of {} entries failed: {e}",
                        entries.len()
                    ));
                    0
                }
            }
        }
        ReceiverAction::Remove(keys) => {
            for k in &keys {
                let _ = ct.delete(&tuple_of(k), 0);
            }
            keys.len()
        }
    }
}

fn key_of(t: &Tuple) -> SessionKey {
    SessionKey {
        src: t.src,
        dst: t.dst,
        proto: t.proto,
        src_port: t.src_port,
        dst_port: t.dst_port,
    }
}

fn tuple_of(k: &SessionKey) -> Tuple {
    Tuple {
        src: k.src,
        dst: k.dst,
        proto: k.proto,
        src_port: k.src_port,
        dst_port: k.dst_port,
    }
}

/// Entries of the default zone only (zones are not part of the policy),
/// and not the nodes' own traffic: a passive that mirrored its peer's
/// heartbeat and HA2 flows would overwrite the entries of flows it
/// terminates itself (conntrackd's `IgnoreTrafficFor`, for the same reason).
fn to_session(e: &Entry, node_addresses: &[std::net::Ipv4Addr]) -> Option<Session> {
    if e.zone != 0 || is_node_traffic(e, node_addresses) {
        return None;
    }
    Some(Session {
        key: key_of(&e.orig),
        reply: SyncTuple {
            src: e.reply.src,
            dst: e.reply.dst,
            src_port: e.reply.src_port,
            dst_port: e.reply.dst_port,
        },
        status: e.status,
        timeout_s: e.timeout,
        tcp_state: e.tcp.map(|t| t.state),
        mark: e.mark,
    })
}

fn is_node_traffic(e: &Entry, node_addresses: &[std::net::Ipv4Addr]) -> bool {
    [e.orig.src, e.orig.dst, e.reply.src, e.reply.dst]
        .iter()
        .any(|a| node_addresses.contains(a))
}

fn to_entry(s: &Session) -> Entry {
    Entry {
        orig: tuple_of(&s.key),
        reply: Tuple {
            src: s.reply.src,
            dst: s.reply.dst,
            proto: s.key.proto,
            src_port: s.reply.src_port,
            dst_port: s.reply.dst_port,
        },
        status: s.status,
        timeout: s.timeout_s.max(1),
        mark: s.mark,
        zone: 0,
        id: None,
        tcp: s.tcp_state.map(|state| TcpInfo {
            state,
            flags_orig: conntrack::tcp_flags::BE_LIBERAL,
            flags_reply: conntrack::tcp_flags::BE_LIBERAL,
            ..Default::default()
        }),
    }
}

/// `hafw sessions`: the kernel's conntrack table of this node, filtered by
/// a substring of each line, at most `cap` lines. `cache`: the passive's
/// sync cache size, shown beside the kernel's count.
pub fn listing(
    filter: Option<&str>,
    json: bool,
    cache: Option<usize>,
    cap: usize,
) -> Result<String, String> {
    let mut ct = Conntrack::open(None).map_err(|e| format!("open conntrack: {e}"))?;
    let entries = ct.dump().map_err(|e| format!("dump conntrack: {e}"))?;
    let lines: Vec<(String, &Entry)> = entries
        .iter()
        .map(|e| (session_line(e), e))
        .filter(|(l, _)| filter.is_none_or(|f| l.contains(f)))
        .collect();
    let shown = lines.len().min(cap);
    if json {
        let v = serde_json::json!({
            "kernel_sessions": entries.len(),
            "sync_cache_sessions": cache,
            "matching": lines.len(),
            "sessions": lines[..shown].iter().map(|(l, e)| serde_json::json!({
                "line": l,
                "orig": e.orig.to_string(),
                "reply": e.reply.to_string(),
                "proto": e.orig.proto,
                "tcp_state": e.tcp.map(|t| tcp_state_name(t.state)),
                "nat": e.nat().map(|n| nat_text(&n)),
            })).collect::<Vec<_>>(),
        });
        return Ok(format!("{v}\n"));
    }
    let mut out = format!(
        "sessions  {} in the kernel{}{}\n",
        entries.len(),
        cache
            .map(|n| format!(", {n} in the sync cache"))
            .unwrap_or_default(),
        filter
            .map(|f| format!(", {} matching {f:?}", lines.len()))
            .unwrap_or_default()
    );
    for (l, _) in &lines[..shown] {
        out.push_str(l);
        out.push('\n');
    }
    if lines.len() > shown {
        out.push_str(&format!("... {} more\n", lines.len() - shown));
    }
    Ok(out)
}

fn session_line(e: &Entry) -> String {
    let proto = match e.orig.proto {
        conntrack::proto::TCP => "tcp".to_string(),
        conntrack::proto::UDP => "udp".to_string(),
        conntrack::proto::ICMP => "icmp".to_string(),
        p => format!("proto-{p}"),
    };
    let ends = |t: &Tuple| {
        if conntrack::proto::has_ports(t.proto) {
            format!("{}:{} -> {}:{}", t.src, t.src_port, t.dst, t.dst_port)
        } else {
            format!("{} -> {}", t.src, t.dst)
        }
    };
    format!(
        "{proto:<5} {}  reply {}{}{}",
        ends(&e.orig),
        ends(&e.reply),
        e.tcp
            .map(|t| format!("  {}", tcp_state_name(t.state)))
            .unwrap_or_default(),
        e.nat()
            .map(|n| format!("  {}", nat_text(&n)))
            .unwrap_or_default()
    )
}

fn nat_text(n: &conntrack::Nat) -> String {
    let mut parts = vec![];
    if let Some(b) = n.snat {
        parts.push(format!("snat {}:{}", b.addr, b.port));
    }
    if let Some(b) = n.dnat {
        parts.push(format!("dnat {}:{}", b.addr, b.port));
    }
    parts.join(" ")
}

fn tcp_state_name(s: u8) -> &'static str {
    use conntrack::tcp_state::*;
    match s {
        NONE => "NONE",
        SYN_SENT => "SYN_SENT",
        SYN_RECV => "SYN_RECV",
        ESTABLISHED => "ESTABLISHED",
        FIN_WAIT => "FIN_WAIT",
        CLOSE_WAIT => "CLOSE_WAIT",
        LAST_ACK => "LAST_ACK",
        TIME_WAIT => "TIME_WAIT",
        CLOSE => "CLOSE",
        SYN_SENT2 => "SYN_SENT2",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn entry(src: [u8; 4], dst: [u8; 4], reply_src: [u8; 4], reply_dst: [u8; 4]) -> Entry {
        Entry {
            orig: Tuple::tcp(Ipv4Addr::from(src), 40000, Ipv4Addr::from(dst), 80),
            reply: Tuple::tcp(
                Ipv4Addr::from(reply_src),
                80,
                Ipv4Addr::from(reply_dst),
                40000,
            ),
            status: 0,
            timeout: 100,
            mark: 0,
            zone: 0,
            id: None,
            tcp: None,
        }
    }

    #[test]
    fn the_nodes_own_flows_are_not_synced_but_nat_through_floating_addresses_is() {
        let own = [Ipv4Addr::new(10, 0, 3, 11), Ipv4Addr::new(10, 0, 3, 12)];
        // HA2 between the nodes.
        let ha2 = entry(
            [10, 0, 3, 11],
            [10, 0, 3, 12],
            [10, 0, 3, 12],
            [10, 0, 3, 11],
        );
        assert!(to_session(&ha2, &own).is_none());
        // Inbound DNAT to the floating address: synced.
        let dnat = entry(
            [198, 51, 100, 20],
            [10, 0, 1, 100],
            [10, 0, 10, 10],
            [198, 51, 100, 20],
        );
        assert!(to_session(&dnat, &own).is_some());
        // Another zone: not synced.
        let mut zoned = dnat;
        zoned.zone = 3;
        assert!(to_session(&zoned, &own).is_none());
    }
}
