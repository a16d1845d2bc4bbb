//! Session sync in the daemon: a thread of its own (so a dump of 100k
//! entries never delays a heartbeat or a promotion) that owns the HA2 link,
//! the conntrack sockets and the pure sync cores.
//!
//! While active it streams the kernel's conntrack events through a
//! [`hafw_ha::sessions::SyncSender`] (bulk dumps on start, when the peer (re)connects, after an
//! event overrun and every `REFRESH`); while passive it feeds a
//! [`hafw_ha::sessions::SyncReceiver`] and, in `mirror` mode, keeps its own kernel table warm,
//! so promotion has nothing to install; in `commit` mode promotion installs
//! the cache in one batch. Only the active sends and only the passive
//! applies, so the two nodes never echo each other's entries (and a stale
//! peer can never overwrite the active's live table).
//!
//! The same thread runs config sync ([`hafw_ha::config_sync::ConfigSync`])
//! over the same link: HA2 payloads starting with `'C'` are config sync's,
//! the rest session sync's. The daemon's config task ([`crate::config`])
//! applies what the peer offers and tells this thread the result
//! ([`SyncCmd`]).
//!
//! Rule hits ride it too (payloads starting with `'H'`,
//! [`hafw_ha::hits`]): this node's totals every [`instance::HITS_EVERY`],
//! at most once a second on change, and when the link connects; the
//! peer's go to [`crate::hits::Hits::peer_message`].
//!
//! The thread is one `SyncInstance` (`instance.rs`) and a loop that waits
//! for its next `Input` or deadline and calls `SyncInstance::process`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hafw_ha::config_sync::{ApplyError, ConfigAction, ConfigStatus};
use hafw_ha::sessions::Mode;
use hafw_ha::wire::{KindSealer, PairKey};
use hafw_kernel::conntrack::{self, Conntrack, Events};
use tokio::sync::{mpsc, oneshot, watch};

use self::ha2::{Ha2Event, Ha2Figures};
use self::instance::{Input, SyncInstance};
use crate::error::{DaemonError, KernelError, SetupError};
use crate::log::Log;

mod entries;
pub mod ha2;
mod instance;
mod listing;

pub use listing::listing;

/// The mark bit on entries this node installed from its peer.
pub const INJECT_MARK: u32 = 0x4846_0000;

#[derive(Debug, Clone, Default)]
pub struct SyncStatus {
    pub mode: String,
    pub connected: bool,
    pub role_active: bool,
    /// The passive's sync cache (what a promotion would make ready); 0 on
    /// the active, whose table is the kernel's.
    pub sessions_known: usize,
    /// The passive cache's bound ([`SyncSetup::max_sessions`]).
    pub max_sessions: usize,
    /// The heap the passive's cache holds (0 on the active).
    pub cache_bytes: u64,
    /// The active's session changes sent to the peer (cumulative).
    pub entries_sent: u64,
    pub synced_entries: u64,
    pub lag_ms: Option<f64>,
    pub resyncs: u64,
    /// Bulk generations the active queued (all senders of this run).
    pub bulks: u64,
    pub dropped: u64,
    /// Conntrack event overruns (the kernel's ENOBUFS, or [`EVENT_QUEUE`]
    /// full), each answered with a fresh bulk while the peer is up.
    pub overruns: u64,
    /// Conntrack events dropped because [`EVENT_QUEUE`] was full.
    pub events_dropped: u64,
    /// Conntrack requests the kernel did not answer within
    /// [`conntrack::REQUEST_TIMEOUT`].
    pub ct_timeouts: u64,
    /// The HA2 link's counters (drops, refused connections, timeouts).
    pub ha2: Ha2Figures,
    /// What the passive's receiver refused from the peer, by reason
    /// (`hafw_ha::sessions::ReceiverStats`), non-zero ones only.
    pub refused: Vec<(&'static str, u64)>,
    /// Why the receiver is not ready ([`hafw_ha::sessions::SyncReceiver::not_ready_reason`]).
    pub not_ready: Option<String>,
    /// [`hafw_ha::readiness::readiness`] of this node.
    pub ready: bool,
    pub last_install: Option<(usize, Duration)>,
    pub config: ConfigStatus,
}

/// What the daemon asks of config sync.
pub enum SyncCmd {
    /// The peer's (version, hash) from its heartbeats.
    PeerConfig(u64, [u8; 32]),
    /// Whether the peer is alive and active, from its heartbeats: only an
    /// active peer's sessions and policy are taken.
    PeerActive(bool),
    /// `hafw config apply` succeeded here: offer this policy to the peer.
    ApplyLocal {
        version: u64,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<[u8; 32], ApplyError>>,
    },
    /// Whether config sync is paused (the nodes' policy schemas differ):
    /// no offer is sent or taken meanwhile; session sync goes on.
    PauseConfig(bool),
    /// The verdict on the last [`ConfigAction::ApplyConfig`]: on failure
    /// the reason (already logged by its kind), for this node's status and
    /// the peer's Result.
    ApplyResult(Result<(), String>),
    /// The running local version waits for confirmation for
    /// `remaining_ms` (0: confirmed): tell the peer.
    Pending {
        version: u64,
        remaining_ms: u32,
        back_to: u64,
    },
}

/// What a promotion installed: entries, how long it took, what failed.
pub type Installed = (usize, Duration, Option<String>);

/// Conntrack events waiting for the sync thread. Beyond it events are
/// dropped, counted, and followed by an [`conntrack::Event::Overrun`]: the
/// sender then sends a fresh bulk, as after the kernel's own overrun.
pub const EVENT_QUEUE: usize = 8192;
/// Promotion requests waiting for the sync thread: the executor waits for
/// each answer, so more than one means the thread is stuck.
const PROMOTE_QUEUE: usize = 4;

pub struct SyncHandle {
    role: watch::Sender<bool>,
    promote: mpsc::Sender<oneshot::Sender<Installed>>,
    pub status: Arc<Mutex<SyncStatus>>,
    cmd: mpsc::UnboundedSender<SyncCmd>,
}

impl SyncHandle {
    pub fn set_active(&self, active: bool) {
        let _ = self.role.send(active);
    }

    pub fn config(&self, cmd: SyncCmd) -> Result<(), SetupError> {
        self.cmd.send(cmd).map_err(|_| SetupError::Stopped("sync"))
    }

    /// Commit before announce: makes every synced session present in this
    /// node's kernel; returns how many were installed now and how long it took.
    pub async fn install_for_promotion(&self) -> Installed {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.promote.try_send(tx) {
            let why = match e {
                mpsc::error::TrySendError::Full(_) => {
                    "the sync thread has not answered the last promotions"
                }
                mpsc::error::TrySendError::Closed(_) => "the sync thread has stopped",
            };
            return (0, Duration::ZERO, Some(why.into()));
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
    /// The receiver's cache bound: `nf_conntrack_max` as applied for
    /// `policy.sessions` (`dataplane::sessions`).
    pub max_sessions: usize,
    /// Rule hits: this node's totals go to the peer, the peer's come back.
    pub hits: Option<crate::hits::Hits>,
}

/// The inputs the loop waits on.
struct Ports {
    ha2: mpsc::Receiver<Ha2Event>,
    conntrack: mpsc::Receiver<conntrack::Event>,
    role: watch::Receiver<bool>,
    /// Unbounded by construction: the config task has one policy in
    /// flight at a time, and `PeerConfig` comes from a watch of the peer's
    /// authenticated heartbeats, once per change.
    cmds: mpsc::UnboundedReceiver<SyncCmd>,
    promote: mpsc::Receiver<oneshot::Sender<Installed>>,
    /// This node's rule-hit totals changed (latest value only).
    hits: watch::Receiver<u64>,
}

impl Ports {
    /// The next input, or None when the daemon let go of the thread.
    async fn next(&mut self, deadline: std::time::Instant) -> Option<Input> {
        tokio::select! {
            ev = self.ha2.recv() => ev.map(Input::Ha2),
            Some(ev) = self.conntrack.recv() => Some(Input::Conntrack(ev)),
            changed = self.role.changed() => changed.ok().map(|()| Input::Role(*self.role.borrow())),
            Some(cmd) = self.cmds.recv() => Some(Input::Cmd(cmd)),
            Some(reply) = self.promote.recv() => Some(Input::Promote(reply)),
            Ok(()) = self.hits.changed() => Some(Input::HitsChanged),
            _ = tokio::time::sleep_until(deadline.into()) => Some(Input::Timeout),
        }
    }
}

pub fn start(
    setup: SyncSetup,
    sealer: Arc<Mutex<KindSealer>>,
    key: PairKey,
    log: Log,
) -> Result<SyncHandle, DaemonError> {
    let (role_tx, role) = watch::channel(false);
    let (promote_tx, promote) = mpsc::channel(PROMOTE_QUEUE);
    let (cmd_tx, cmds) = mpsc::unbounded_channel();
    let status = Arc::new(Mutex::new(SyncStatus {
        mode: format!("{:?}", setup.mode).to_lowercase(),
        ..Default::default()
    }));
    let st = status.clone();
    crate::threads::spawn(
        "sync",
        move |started: crate::threads::Started<DaemonError>| async move {
            let opened = Conntrack::open(None)
                .map(|mut c| {
                    c.set_inject_mark(INJECT_MARK);
                    c
                })
                .map_err(|source| KernelError::Driver {
                    step: "open conntrack",
                    source,
                })
                .and_then(|ct| {
                    Events::open(None)
                        .map(|ev| (ct, ev))
                        .map_err(|source| KernelError::Driver {
                            step: "subscribe to conntrack events",
                            source,
                        })
                });
            let (ct, events) = match opened {
                Ok(x) => x,
                Err(e) => return started.fail(e.into()),
            };
            let link = ha2::start(
                setup.local,
                setup.peer,
                setup.node_id < setup.peer_id,
                sealer,
                &key,
                setup.node_id,
                setup.peer_id,
            );
            let dropped = Arc::new(AtomicU64::new(0));
            // Without rule hits the watch never changes.
            let hits_changed = match &setup.hits {
                Some(h) => h.subscribe(),
                None => watch::channel(0).1,
            };
            let inst = SyncInstance::new(setup, ct, link.to_peer.clone(), st, dropped.clone(), log);
            let inst = match inst {
                Ok(i) => i,
                Err(e) => return started.fail(e),
            };
            let ports = Ports {
                ha2: link.events,
                conntrack: conntrack_events(events, EVENT_QUEUE, dropped),
                role,
                cmds,
                promote,
                hits: hits_changed,
            };
            started.ok();
            run(inst, ports).await;
        },
    )?;
    Ok(SyncHandle {
        role: role_tx,
        promote: promote_tx,
        status,
        cmd: cmd_tx,
    })
}

/// The loop: waits, and hands each input to the instance.
async fn run(mut inst: SyncInstance, mut ports: Ports) {
    while let Some(input) = ports.next(inst.deadline()).await {
        inst.process(input);
    }
}

/// Conntrack events arrive on a blocking socket: a thread of their own,
/// reading into a queue of `bound` events. When the queue is full the
/// event is dropped and counted in `dropped`, and an
/// [`conntrack::Event::Overrun`] is owed: it goes as soon as there is room,
/// so the sender replaces what was lost with a dump. The thread keeps
/// reading meanwhile, so the kernel's buffer does not overflow as well.
fn conntrack_events(
    mut events: Events,
    bound: usize,
    dropped: Arc<AtomicU64>,
) -> mpsc::Receiver<conntrack::Event> {
    let (tx, rx) = mpsc::channel(bound);
    std::thread::Builder::new()
        .name("ct-events".into())
        .spawn(move || {
            let mut owed = false;
            loop {
                let ev = match events.recv(Some(Duration::from_millis(200))) {
                    Ok(Some(e)) => Some(e),
                    Ok(None) => None,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        None
                    }
                };
                if !forward(&tx, ev, &mut owed, &dropped) {
                    return;
                }
            }
        })
        .ok();
    rx
}

/// One read of the event socket into the queue: first the overrun owed
/// since the queue was last full, then the event (None: the read timed
/// out). False when the sync thread is gone.
fn forward(
    tx: &mpsc::Sender<conntrack::Event>,
    ev: Option<conntrack::Event>,
    owed: &mut bool,
    dropped: &AtomicU64,
) -> bool {
    use mpsc::error::TrySendError;
    if *owed {
        match tx.try_send(conntrack::Event::Overrun) {
            Ok(()) => *owed = false,
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Closed(_)) => return false,
        }
    }
    let Some(ev) = ev else {
        return !tx.is_closed();
    };
    match tx.try_send(ev) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            dropped.fetch_add(1, Ordering::Relaxed);
            *owed = true;
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood beyond the queue: the excess is dropped and counted, and
    /// once there is room an Overrun follows, so the sender re-dumps.
    #[test]
    fn a_full_event_queue_drops_counts_and_owes_an_overrun() {
        let (tx, mut rx) = mpsc::channel(4);
        let dropped = AtomicU64::new(0);
        let mut owed = false;
        for _ in 0..10 {
            assert!(forward(
                &tx,
                Some(conntrack::Event::Overrun),
                &mut owed,
                &dropped
            ));
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 6);
        assert!(owed);
        while rx.try_recv().is_ok() {}
        assert!(forward(&tx, None, &mut owed, &dropped));
        assert!(!owed);
        assert_eq!(rx.try_recv().ok(), Some(conntrack::Event::Overrun));
        drop(rx);
        assert!(!forward(&tx, None, &mut owed, &dropped));
    }
}
