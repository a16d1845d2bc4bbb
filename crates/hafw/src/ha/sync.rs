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

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hafw_ha::sessions::{
    Event as SyncEvent, Mode, ReceiverAction, ReceiverConfig, SenderAction, SenderConfig, Session,
    SessionKey, SyncReceiver, SyncSender, Tuple as SyncTuple,
};
use hafw_ha::wire::{Psk, Sealer};
use hafw_kernel::conntrack::{self, Conntrack, Entry, Events, TcpInfo, Tuple};
use tokio::sync::{mpsc, oneshot, watch};

use super::ha2::{self, Ha2Event};
use crate::node::log::Log;

/// The mark bit on entries this node installed from its peer.
pub const INJECT_MARK: u32 = 0x4846_0000;
/// How often the active re-sends its whole table: keeps quiet flows (whose
/// kernel timers are refreshed without events) alive on the passive.
const REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default)]
pub struct SyncStatus {
    pub mode: String,
    pub connected: bool,
    pub role_active: bool,
    pub sessions_known: usize,
    pub synced_entries: u64,
    pub lag_ms: Option<f64>,
    pub resyncs: u64,
    pub dropped: u64,
    pub ready: bool,
    pub last_install: Option<(usize, Duration)>,
}

pub struct SyncHandle {
    role: watch::Sender<bool>,
    promote: mpsc::UnboundedSender<oneshot::Sender<(usize, Duration, Option<String>)>>,
    pub status: Arc<Mutex<SyncStatus>>,
}

impl SyncHandle {
    pub fn set_active(&self, active: bool) {
        let _ = self.role.send(active);
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
}

pub fn start(
    setup: SyncSetup,
    sealer: Arc<Mutex<Sealer>>,
    psk: Psk,
    log: Log,
) -> Result<SyncHandle, String> {
    let (role_tx, role_rx) = watch::channel(false);
    let (promote_tx, promote_rx) = mpsc::unbounded_channel();
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
                setup, sealer, psk, ct, events, role_rx, promote_rx, st, log,
            ));
        })
        .map_err(|e| format!("start the sync thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(SyncHandle {
            role: role_tx,
            promote: promote_tx,
            status,
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
    sealer: Arc<Mutex<Sealer>>,
    psk: Psk,
    mut ct: Conntrack,
    mut events: Events,
    mut role: watch::Receiver<bool>,
    mut promote: mpsc::UnboundedReceiver<oneshot::Sender<(usize, Duration, Option<String>)>>,
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
    loop {
        // Outputs of the cores.
        if let Some(s) = sender.as_mut() {
            while let Some(a) = s.poll_action() {
                let SenderAction::RequestDump { .. } = a;
                match ct.dump() {
                    Ok(entries) => {
                        s.start_bulk(now(), entries.iter().filter_map(to_session).collect())
                    }
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
        if let Ok(mut st) = status.lock() {
            st.connected = connected;
            st.role_active = active;
            if let Some(s) = &sender {
                let stats = s.stats(now());
                st.sessions_known = stats.entries_sent as usize;
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
            st.ready = active || receiver.ready();
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
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| origin + t)
        .unwrap_or_else(|| Instant::now() + Duration::from_millis(500));
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
                        conntrack::Event::New(x) => { if let Some(v) = to_session(&x) { s.handle_event(now(), SyncEvent::New(v)) } }
                        conntrack::Event::Update(x) => { if let Some(v) = to_session(&x) { s.handle_event(now(), SyncEvent::Update(v)) } }
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

/// Entries of the default zone only: zones are not part of the policy.
fn to_session(e: &Entry) -> Option<Session> {
    if e.zone != 0 {
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
