//! The HA thread: the core, its sockets and its one timer, on a dedicated
//! OS thread with a current-thread runtime. It only ever waits on its own
//! sockets, its timer and its request channel.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hafw_ha::msg::State;
use hafw_ha::node::{Action, Command, Input, Node};
use hafw_ha::wire::{KindSealer, Opener, Sealer};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::record::{self, RecordFile};
use super::setup::Setup;
use super::{status, HaRequest, Timelines};
use crate::log::Log;
use crate::ops::metrics::Metrics;

/// Drop counters of the HA transport (on top of the opener's reasons).
#[derive(Default, Debug, Clone)]
pub struct Transport {
    pub send_errors: u64,
    pub sealed: u64,
}

pub struct Handles {
    pub requests: mpsc::UnboundedSender<HaRequest>,
    pub actions: mpsc::UnboundedReceiver<Action>,
    /// The peer's (version, hash) of the shared policy, from its heartbeats.
    pub peer_config: watch::Receiver<Option<(u64, [u8; 32])>>,
}

/// The peer's advertised policy version, as the core last heard it.
pub type PeerConfig = watch::Sender<Option<(u64, [u8; 32])>>;

/// Binds the heartbeat sockets and starts the HA thread. Binding happens
/// here, before the thread runs, so an address problem stops `hafw run`.
/// One epoch per run for HA1 and HA2 alike (the peer's opener accepts one
/// epoch per sender), split into one sealer per kind: the HA thread owns
/// HA1's outright, so it never waits on a lock the sync thread holds.
pub fn new_sealers(setup: &Setup) -> (KindSealer, Arc<Mutex<KindSealer>>) {
    let start_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let (ha1, ha2) =
        Sealer::new(&setup.psk, setup.config.node_id, start_ns, epoch_random()).split();
    (ha1, Arc::new(Mutex::new(ha2)))
}

pub fn start(
    setup: Setup,
    sealer: KindSealer,
    timelines: Timelines,
    metrics: Metrics,
    log: Log,
    record: Option<std::path::PathBuf>,
) -> Result<Handles, String> {
    let record = record.as_deref().map(record::create).transpose()?;
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (act_tx, act_rx) = mpsc::unbounded_channel();
    let (peer_tx, peer_rx) = watch::channel(None);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("ha".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("start the HA runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let mut sockets = vec![];
                for ((local, _), dev) in setup.paths.iter().zip(&setup.path_ifnames) {
                    match bind_path(*local, dev) {
                        Ok(s) => sockets.push(Arc::new(s)),
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!(
                                "bind the heartbeat socket {local} on {dev}: {e}; is the address on this node?"
                            )));
                            return;
                        }
                    }
                }
                realtime(&log);
                let _ = ready_tx.send(Ok(()));
                run(setup, sealer, sockets, req_rx, act_tx, timelines, metrics, peer_tx, log, record).await;
            });
        })
        .map_err(|e| format!("start the HA thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Handles {
            requests: req_tx,
            actions: act_rx,
            peer_config: peer_rx,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the HA thread stopped during start-up".into()),
    }
}

/// A heartbeat socket bound to its path's address and device.
fn bind_path(local: SocketAddr, dev: &str) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    s.bind_device(Some(dev.as_bytes()))?;
    s.bind(&local.into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Real-time scheduling for the HA thread: on a loaded machine a busy
/// process must not delay a heartbeat by more than the detection time
/// (keepalived's VRRP process does the same). Best effort: without the
/// privilege the thread runs as a normal one, and says so.
fn realtime(log: &Log) {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler on the calling thread (0) with a valid param.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        log.info(format!(
            "HA thread: no real-time priority ({}); heartbeats may be late under load",
            std::io::Error::last_os_error()
        ));
    }
}

fn cause_kind(cause: &hafw_ha::node::Cause) -> String {
    crate::ops::metrics::cause_kind(cause)
}

/// Metrics from the core's snapshot, a few times a second; returns the
/// peer's policy (version, hash) from the same snapshot.
fn export(
    node: &Node,
    opener: &Opener,
    setup: &Setup,
    metrics: &Metrics,
) -> Option<(u64, [u8; 32])> {
    let s = node.status();
    metrics.state(s.state.as_str());
    metrics.term(s.term);
    for (i, p) in s.paths.iter().enumerate() {
        let name = setup.path_ifnames.get(i).map(String::as_str).unwrap_or("?");
        metrics.path_up(name, p.up);
        metrics.heartbeat_misses_total(name, p.lost);
        if let Some(rtt) = p.rtt {
            metrics.heartbeat_rtt(name, rtt.as_secs_f64());
        }
    }
    metrics.ha_counters(opener.counters().iter());
    if let Some(peer) = &s.peer {
        metrics.peer_config_version(peer.config_version);
    }
    s.peer.map(|p| (p.config_version, p.config_hash))
}

fn epoch_random() -> [u8; 8] {
    let mut r = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut r))
        .is_err()
    {
        // The epoch's start time already differs per start; the random half
        // only guards against a clock stepped back to the same nanosecond.
        r = (std::process::id() as u64).to_be_bytes();
    }
    r
}

// The loop's parts are passed apart so each is visibly owned by it.
#[allow(clippy::too_many_arguments)]
async fn run(
    setup: Setup,
    mut sealer: KindSealer,
    sockets: Vec<Arc<UdpSocket>>,
    mut requests: mpsc::UnboundedReceiver<HaRequest>,
    actions: mpsc::UnboundedSender<Action>,
    timelines: Timelines,
    metrics: Metrics,
    peer_config: PeerConfig,
    log: Log,
    record: Option<(std::path::PathBuf, std::fs::File)>,
) {
    let origin = Instant::now();
    // The watchdog is fed from this loop: it proves heartbeats are served,
    // not merely that some runtime is alive.
    let watchdog_every = crate::ops::notify::watchdog_interval();
    let mut last_watchdog = Instant::now();
    let mut last_metrics = Instant::now();
    let now = || origin.elapsed();
    let mut opener = Opener::new(&setup.psk, setup.config.node_id);
    let start = now();
    let mut node = match Node::new(setup.config.clone(), start) {
        Ok(n) => n,
        Err(e) => {
            log.info(format!("HA core refused its settings: {e}"));
            return;
        }
    };
    let mut rec = record.map(|f| RecordFile::new(f, &setup.config, start, log.clone()));
    let peers: Vec<SocketAddr> = setup.paths.iter().map(|p| p.1).collect();
    let mut transport = Transport::default();

    // One receive task per path feeds a single queue, so the loop below
    // waits on one channel, the timer and requests.
    let (rx_tx, mut rx) = mpsc::unbounded_channel::<(usize, Vec<u8>)>();
    for (i, s) in sockets.iter().enumerate() {
        let (s, tx) = (s.clone(), rx_tx.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                match s.recv_from(&mut buf).await {
                    Ok((n, _)) => {
                        if tx.send((i, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    // ICMP errors from a peer that is down surface here; keep listening.
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        });
    }
    // Read at every timeout (every interval): allocated once.
    let mut drain_buf = vec![0u8; 65_536];
    let mut shutdown: Option<oneshot::Sender<String>> = None;
    let mut shutdown_deadline: Option<Instant> = None;

    loop {
        if watchdog_every.is_some_and(|w| last_watchdog.elapsed() >= w) {
            let _ = crate::ops::notify::watchdog();
            last_watchdog = Instant::now();
        }
        if last_metrics.elapsed() >= Duration::from_millis(100) {
            // Config sync offers its policy to a peer that is behind.
            let peer = export(&node, &opener, &setup, &metrics);
            peer_config.send_if_modified(|old| {
                let changed = *old != peer;
                *old = peer;
                changed
            });
            last_metrics = Instant::now();
        }
        flush(
            &mut node,
            &mut sealer,
            &sockets,
            &peers,
            &actions,
            &mut transport,
            &metrics,
            &log,
        );
        // After the actions went to the executor: recording waits, they don't.
        if let Some(r) = &mut rec {
            r.tick();
        }
        if let Some(reply) = shutdown.take() {
            let st = node.state();
            let done =
                st != State::Active || shutdown_deadline.is_some_and(|d| Instant::now() >= d);
            if done {
                let _ = reply.send(st.as_str().to_string());
                // Keep answering heartbeats no more: the daemon withdraws next.
                return;
            }
            shutdown = Some(reply);
        }
        let wake = node.poll_timeout().map(|t| origin + t);
        let sleep_until = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            biased;
            Some((path, bytes)) = rx.recv() => {
                // A refused envelope is counted by the opener and shown in status.
                if let Ok(opened) = opener.open(&bytes) {
                    record::feed(&mut node, &mut rec, now(), Input::Message { path, msg: opened.body });
                }
            }
            _ = tokio::time::sleep_until(sleep_until.into()) => {
                // A heartbeat may sit in a socket whose receive task has not
                // run yet in this turn of the runtime: read it before the
                // timer can call the peer lost.
                drain(&sockets, &mut drain_buf, &mut opener, &mut node, &mut rec, now());
                record::feed(&mut node, &mut rec, now(), Input::Timeout)
            }
            req = requests.recv() => match req {
                None => return,
                Some(HaRequest::Status { reply }) => {
                    let tl = timelines.lock().map(|t| t.clone()).unwrap_or_default();
                    let _ = reply.send(status::build(&node.status(), &setup, &tl, &opener.counters(), &transport, origin));
                }
                Some(HaRequest::Command { cmd, reply }) => {
                    record::feed(&mut node, &mut rec, now(), Input::Command(cmd));
                    let _ = reply.send(format!("{}: now {}\n", match cmd { Command::Suspend => "suspend", Command::Resume => "resume" }, node.state().as_str()));
                }
                Some(HaRequest::Monitor { healthy, reason }) => record::feed(&mut node, &mut rec, now(), Input::Monitor { healthy, reason }),
                Some(HaRequest::SetConfigVersion { version, hash }) => record::feed(&mut node, &mut rec, now(), Input::ConfigVersion { version, hash }),
                Some(HaRequest::State { reply }) => { let _ = reply.send(node.state()); }
                Some(HaRequest::Shutdown { reply }) => {
                    record::feed(&mut node, &mut rec, now(), Input::Command(Command::Suspend));
                    shutdown_deadline = Some(Instant::now() + setup.config.takeover_wait + setup.config.heartbeat_interval * 2);
                    shutdown = Some(reply);
                }
            },
        }
    }
}

/// Reads every datagram already queued on the heartbeat sockets.
fn drain(
    sockets: &[Arc<UdpSocket>],
    buf: &mut [u8],
    opener: &mut Opener,
    node: &mut Node,
    rec: &mut Option<RecordFile>,
    now: Duration,
) {
    for (path, s) in sockets.iter().enumerate() {
        while let Ok((n, _)) = s.try_recv_from(buf) {
            if let Ok(opened) = opener.open(&buf[..n]) {
                record::feed(
                    node,
                    rec,
                    now,
                    Input::Message {
                        path,
                        msg: opened.body,
                    },
                );
            }
        }
    }
}

// The loop's parts are passed apart so each is visibly owned by it.
#[allow(clippy::too_many_arguments)]
fn flush(
    node: &mut Node,
    sealer: &mut KindSealer,
    sockets: &[Arc<UdpSocket>],
    peers: &[SocketAddr],
    actions: &mpsc::UnboundedSender<Action>,
    transport: &mut Transport,
    metrics: &Metrics,
    log: &Log,
) {
    // Actions first: a promotion must not wait behind a round of sends.
    // The executor gets each action before the log line is written and the
    // metrics are counted: those are bookkeeping, the promotion is not.
    while let Some(a) = node.poll_action() {
        let line = format!("HA: {a}");
        let transition = match &a {
            Action::BecomeActive { cause, .. }
            | Action::BecomePassive { cause }
            | Action::BecomeSuspended { cause }
            | Action::BecomeNonFunctional { cause } => Some(cause_kind(cause)),
            _ => None,
        };
        let _ = actions.send(a);
        log.info(line);
        if let Some(kind) = transition {
            let s = node.status();
            if let Some(t) = s.transitions.last() {
                metrics.transition(t.from.as_str(), t.to.as_str(), &kind);
            }
            metrics.state(s.state.as_str());
            metrics.term(s.term);
        }
    }
    while let Some((path, msg)) = node.poll_transmit() {
        let (Some(sock), Some(peer)) = (sockets.get(path), peers.get(path)) else {
            continue;
        };
        match sealer.seal(&msg) {
            Ok(bytes) => {
                transport.sealed += 1;
                // Non-blocking: a full socket buffer drops a heartbeat
                // rather than stalling the core.
                if sock.try_send_to(&bytes, *peer).is_err() {
                    transport.send_errors += 1;
                }
            }
            Err(e) => log.info(format!("HA: cannot seal a message: {e}")),
        }
    }
}
