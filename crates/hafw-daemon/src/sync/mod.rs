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
//! The thread is one `SyncInstance` (`instance.rs`) and a loop that waits
//! for its next `Input` or deadline and calls `SyncInstance::process`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hafw_ha::config_sync::{ApplyError, ConfigAction, ConfigStatus};
use hafw_ha::sessions::Mode;
use hafw_ha::wire::{KindSealer, Psk};
use hafw_kernel::conntrack::{self, Conntrack, Events};
use tokio::sync::{mpsc, oneshot, watch};

use self::ha2::Ha2Event;
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
    /// The active's session changes sent to the peer (cumulative).
    pub entries_sent: u64,
    pub synced_entries: u64,
    pub lag_ms: Option<f64>,
    pub resyncs: u64,
    pub dropped: u64,
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
    /// The verdict on the last [`ConfigAction::ApplyConfig`]: on failure
    /// the reason (already logged by its kind), for this node's status and
    /// the peer's Result.
    ApplyResult(Result<(), String>),
}

/// What a promotion installed: entries, how long it took, what failed.
pub type Installed = (usize, Duration, Option<String>);

pub struct SyncHandle {
    role: watch::Sender<bool>,
    promote: mpsc::UnboundedSender<oneshot::Sender<Installed>>,
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

/// The inputs the loop waits on.
struct Ports {
    ha2: mpsc::UnboundedReceiver<Ha2Event>,
    conntrack: mpsc::UnboundedReceiver<conntrack::Event>,
    role: watch::Receiver<bool>,
    cmds: mpsc::UnboundedReceiver<SyncCmd>,
    promote: mpsc::UnboundedReceiver<oneshot::Sender<Installed>>,
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
            _ = tokio::time::sleep_until(deadline.into()) => Some(Input::Timeout),
        }
    }
}

pub fn start(
    setup: SyncSetup,
    sealer: Arc<Mutex<KindSealer>>,
    psk: Psk,
    log: Log,
) -> Result<SyncHandle, DaemonError> {
    let (role_tx, role) = watch::channel(false);
    let (promote_tx, promote) = mpsc::unbounded_channel();
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
                &psk,
                setup.node_id,
            );
            let inst = match SyncInstance::new(setup, ct, link.to_peer.clone(), st, log) {
                Ok(i) => i,
                Err(e) => return started.fail(e),
            };
            let ports = Ports {
                ha2: link.events,
                conntrack: conntrack_events(events),
                role,
                cmds,
                promote,
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

/// Conntrack events arrive on a blocking socket: a thread of their own.
fn conntrack_events(mut events: Events) -> mpsc::UnboundedReceiver<conntrack::Event> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("ct-events".into())
        .spawn(move || loop {
            match events.recv(None) {
                Ok(Some(e)) => {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        })
        .ok();
    rx
}
