//! The node with a peer: the data plane comes up passive, the HA thread
//! decides, the executor promotes and demotes. On SIGTERM an active node
//! hands over first (the planned outage, not the unplanned one), then
//! withdraws what it added.
//!
//! Config sync: the policy's version is loaded at start and carried in
//! heartbeats; `hafw config apply` and policies from the peer go to the
//! config task ([`ha::config`]), which applies them one at a time.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hafw_ha::node::Command;
use hafw_kernel::{addr, Rtnl};
use hafw_model::render::node::NodePlan;
use hafw_model::Deployment;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

use crate::config::{self as config, ConfigEnv, ConfigInput, ConfigTask, ConfigView};
use crate::control::{self, Request};
use crate::dataplane::{apply, withdraw};
use crate::ha::{self, HaRequest};
use crate::log::Log;
use crate::ops::{self, metrics::Metrics};

/// The files a node runs from.
pub struct Paths<'a> {
    pub config: &'a Path,
    pub key_file: &'a Path,
    pub control: &'a Path,
}

/// `hafw sessions` lists at most this many entries.
const SESSIONS_CAP: usize = 1000;

pub fn run(
    dep: Deployment,
    plan: NodePlan,
    paths: Paths<'_>,
    ha_profile: Option<String>,
    api: Option<(std::net::SocketAddr, String)>,
    session_sync: &str,
) -> ExitCode {
    let log = Log::new(&plan.node);
    let runtime = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(serve(
        dep,
        plan.clone(),
        paths,
        ha_profile,
        api,
        session_sync,
        log,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: hafw run: node {}: {e}", plan.node);
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    dep: Deployment,
    plan: NodePlan,
    paths: Paths<'_>,
    ha_profile: Option<String>,
    api: Option<(std::net::SocketAddr, String)>,
    session_sync: &str,
    log: Log,
) -> Result<(), String> {
    let (key_file, control_path) = (paths.key_file, paths.control);
    let config_path = std::path::absolute(paths.config)
        .map_err(|e| format!("cannot resolve {}: {e}", paths.config.display()))?;
    let start = config::startup(&config_path, &plan.node, &log).map_err(|e| e.to_string())?;
    let metrics = Metrics::new();
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    // Everything that can be refused is checked before the kernel changes.
    let setup = ha::setup::resolve(&dep, &plan, key_file)?;
    let listener = control::bind(control_path)?;
    let nl = Rtnl::connect().map_err(|e| e.to_string())?;
    let applied = apply::apply(&nl, &plan, false, &log)
        .await
        .map_err(|e| e.to_string())?;
    let applied = Arc::new(Mutex::new(applied));
    // A node restarted after a crash may still hold the floating addresses
    // from its last life; a passive must not answer for them.
    for f in &plan.floating {
        let _ = addr::delete(&nl, &f.ifname, apply::floating_net(f)).await;
    }
    log.info(format!(
        "data plane up as passive; HA with {} over {} path(s), heartbeat {} ms x {}",
        setup.peer_name,
        setup.paths.len(),
        plan.ha.timers.heartbeat_interval_ms,
        plan.ha.timers.miss_count
    ));

    let timelines: ha::Timelines = Arc::new(Mutex::new(Vec::new()));
    let (ha1_sealer, sealer) = ha::thread::new_sealers(&setup);
    let (peer_cfg_tx, peer_cfg_rx) = mpsc::unbounded_channel();
    let initial = Some((start.version, start.policy.clone().into_bytes()));
    let sync = start_sync(
        &dep,
        &plan,
        &setup,
        &sealer,
        session_sync,
        initial,
        peer_cfg_tx,
        &log,
    )?;
    let handles = match ha::thread::start(
        setup,
        ha1_sealer,
        timelines.clone(),
        metrics.clone(),
        log.clone(),
    ) {
        Ok(h) => h,
        Err(e) => {
            let applied = std::mem::take(&mut *applied.lock().map_err(|_| "internal: lock")?);
            let problems = withdraw::withdraw(&nl, applied, &log).await;
            return Err(format!(
                "{e}{}",
                problems
                    .iter()
                    .map(|p| format!("\n  also: {p}"))
                    .collect::<String>()
            ));
        }
    };
    let _ = handles.requests.send(HaRequest::SetConfigVersion {
        version: start.version,
        hash: start.hash,
    });
    log.info(format!(
        "policy version {} ({}) from {}",
        start.version,
        &config::hex(&start.hash)[..8],
        config_path.display()
    ));
    // The peer's policy version, from the HA thread's heartbeats, to config
    // sync, which offers ours when the peer is behind.
    if let Some(s) = sync.clone() {
        let mut peer_config = handles.peer_config.clone();
        tokio::spawn(async move {
            while peer_config.changed().await.is_ok() {
                let seen = *peer_config.borrow_and_update();
                if let Some((v, h)) = seen {
                    if s.config(crate::sync::SyncCmd::PeerConfig(v, h)).is_err() {
                        return;
                    }
                }
            }
        });
    }
    let view = Arc::new(Mutex::new(ConfigView::default()));
    let (config_tx, config_rx) = mpsc::unbounded_channel();
    let env = ConfigEnv {
        config_path: config_path.clone(),
        node: plan.node.clone(),
        ha_profile,
        nl: nl.clone(),
        log: log.clone(),
        ha: handles.requests.clone(),
        sync: sync.clone(),
        applied: applied.clone(),
        view: view.clone(),
    };
    let task = ConfigTask::new(env, start, plan.clone());
    tokio::spawn(task.run(config_rx, peer_cfg_rx));

    let requests = handles.requests.clone();
    let sync_status = sync.as_ref().map(|s| s.status.clone());
    let ready_status = sync_status.clone();
    let sync_for_control = sync_status.clone();
    let view_for_control = view.clone();
    control::serve(listener, move |req| {
        let (tx, rx) = oneshot::channel();
        let msg = match &req {
            Request::ConfigApply(path) => {
                let (tx, rx) = oneshot::channel();
                config_tx
                    .send(ConfigInput::Apply {
                        path: path.clone(),
                        reply: tx,
                    })
                    .map_err(|_| "the config task has stopped".to_string())?;
                return rx
                    .blocking_recv()
                    .map_err(|_| "the config task did not answer".to_string())?;
            }
            Request::ConfigShow => {
                let (tx, rx) = oneshot::channel();
                config_tx
                    .send(ConfigInput::Show { reply: tx })
                    .map_err(|_| "the config task has stopped".to_string())?;
                return rx
                    .blocking_recv()
                    .map_err(|_| "the config task did not answer".to_string());
            }
            Request::Sessions { json, filter } => {
                // The passive's sync cache is what a promotion would install.
                let cache = sync_for_control
                    .as_ref()
                    .and_then(|s| s.lock().ok().map(|st| (st.role_active, st.sessions_known)))
                    .and_then(|(active, n)| (!active).then_some(n));
                return crate::sync::listing(filter.as_deref(), *json, cache, SESSIONS_CAP)
                    .map_err(|e| e.to_string());
            }
            Request::Status => HaRequest::Status {
                json: false,
                reply: tx,
            },
            Request::StatusJson => HaRequest::Status {
                json: true,
                reply: tx,
            },
            Request::Suspend => HaRequest::Command {
                cmd: Command::Suspend,
                reply: tx,
            },
            Request::Resume => HaRequest::Command {
                cmd: Command::Resume,
                reply: tx,
            },
        };
        requests
            .send(msg)
            .map_err(|_| "the HA thread has stopped".to_string())?;
        let body = rx
            .blocking_recv()
            .map_err(|_| "the HA thread did not answer".to_string())?;
        Ok(with_sync(
            &req,
            body,
            sync_for_control.as_ref(),
            &view_for_control,
        ))
    });
    let monitor_every =
        Duration::from_millis(u64::from(plan.ha.timers.heartbeat_interval_ms).clamp(5, 50));
    tokio::spawn(ha::monitor::links(
        nl.clone(),
        dep.clone(),
        plan.clone(),
        monitor_every,
        handles.requests.clone(),
        log.clone(),
    ));
    let garp = dep.policy.ha.garp.clone();
    let executor = tokio::spawn(ha::executor::execute(
        nl.clone(),
        plan.clone(),
        garp,
        handles.actions,
        timelines,
        metrics.clone(),
        sync.clone(),
        log.clone(),
    ));
    // Session sync's figures and this node's policy version into the
    // metrics, twice a second (the peer's version comes from the HA
    // thread's heartbeats).
    {
        let (metrics, sync_status, view) = (metrics.clone(), sync_status.clone(), view.clone());
        tokio::spawn(async move {
            loop {
                if let Some(st) = sync_status
                    .as_ref()
                    .and_then(|s| s.lock().ok().map(|g| g.clone()))
                {
                    metrics.sessions(sessions(&st) as u64, st.synced_entries);
                    metrics.sync_lag(st.lag_ms.unwrap_or(0.0) / 1000.0);
                    metrics.resyncs_total(st.resyncs);
                }
                if let Ok(v) = view.lock() {
                    metrics.config_version(v.version);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    let _api = match api {
        Some((addr, token)) => {
            let requests = handles.requests.clone();
            let status = move || {
                let (tx, rx) = oneshot::channel();
                if requests
                    .send(HaRequest::Status {
                        json: true,
                        reply: tx,
                    })
                    .is_err()
                {
                    return "{\"error\":\"the HA thread has stopped\"}".to_string();
                }
                let body = rx
                    .blocking_recv()
                    .unwrap_or_else(|_| "{\"error\":\"no answer\"}".into());
                with_sync(&Request::StatusJson, body, sync_status.as_ref(), &view)
            };
            let server = ops::api::serve(addr, token, status, metrics.clone())?;
            log.info(format!(
                "status API on http://{}/status and /metrics",
                server.local_addr()
            ));
            Some(server)
        }
        None => None,
    };
    // Ready (systemd's READY=1) only once this node could take over with
    // nothing lost: active, or holding the peer's full session table and
    // its policy version. A restarted passive says so only then.
    let started = std::time::Instant::now();
    let ready_log = log.clone();
    if ready_status.is_some() {
        let _ = ops::notify::status("waiting for the peer's session table and policy version");
    }
    tokio::spawn(async move {
        loop {
            let ready = ready_status
                .as_ref()
                .is_none_or(|s| s.lock().map(|g| g.ready).unwrap_or(false));
            if ready {
                let _ = ops::notify::ready();
                let _ = ops::notify::status("serving");
                ready_log.info(format!(
                    "ready {} ms after start",
                    started.elapsed().as_millis()
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });

    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    log.info(format!("{which}: handing over if active, then withdrawing"));
    let _ = ops::notify::stopping();
    let (tx, rx) = oneshot::channel();
    let _ = handles.requests.send(HaRequest::Shutdown { reply: tx });
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(state)) => log.info(format!("HA stopped as {state}")),
        _ => log.info("HA did not confirm the handover in time; withdrawing anyway"),
    }
    // Let the executor finish a demotion already queued.
    tokio::time::sleep(Duration::from_millis(20)).await;
    executor.abort();
    for f in &plan.floating {
        let _ = addr::delete(&nl, &f.ifname, apply::floating_net(f)).await;
    }
    let applied = applied
        .lock()
        .map(|mut a| std::mem::take(&mut *a))
        .unwrap_or_default();
    let problems = withdraw::withdraw(&nl, applied, &log).await;
    let _ = std::fs::remove_file(control_path);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "withdraw left something behind:{}",
            problems
                .iter()
                .map(|p| format!("\n  {p}"))
                .collect::<String>()
        ))
    }
}

/// Session and config sync: over the HA2 interface, on the HA port, TCP.
#[allow(clippy::too_many_arguments)]
fn start_sync(
    dep: &Deployment,
    plan: &NodePlan,
    setup: &ha::setup::Setup,
    sealer: &std::sync::Arc<std::sync::Mutex<hafw_ha::wire::KindSealer>>,
    mode: &str,
    config: Option<(u64, Vec<u8>)>,
    config_actions: mpsc::UnboundedSender<hafw_ha::config_sync::ConfigAction>,
    log: &Log,
) -> Result<Option<std::sync::Arc<crate::sync::SyncHandle>>, String> {
    use hafw_ha::sessions::Mode;
    let mode = match mode {
        "off" => return Ok(None),
        "commit" => Mode::Commit,
        _ => Mode::Mirror,
    };
    let ha2 = plan
        .ha
        .paths
        .iter()
        .find(|p| p.role == hafw_model::spec::EniRole::Ha2);
    let Some((local, Some(peer))) = ha2.map(|p| (p.local, p.peer)) else {
        log.info("session sync off: no HA2 path in policy.ha.paths");
        return Ok(None);
    };
    let peer_id = dep
        .nodes
        .iter()
        .position(|n| Some(&n.name) == plan.peer.as_ref())
        .map(|i| i as u32 + 1)
        .unwrap_or(0);
    let sync_setup = crate::sync::SyncSetup {
        local: std::net::SocketAddr::new(local.0.into(), plan.ha.port),
        peer: std::net::SocketAddr::new(peer.0.into(), plan.ha.port),
        node_id: setup.config.node_id,
        peer_id,
        mode,
        config,
        config_actions,
        node_addresses: node_addresses(dep, plan),
    };
    let handle = crate::sync::start(sync_setup, sealer.clone(), setup.psk.clone(), log.clone())
        .map_err(|e| e.to_string())?;
    log.info(format!(
        "session sync ({mode:?}) over HA2 {local} <-> {peer}"
    ));
    Ok(Some(std::sync::Arc::new(handle)))
}

/// Every interface address of this node and its peer (not the floating
/// ones, which carry the sessions that must be synced).
fn node_addresses(dep: &Deployment, plan: &NodePlan) -> Vec<std::net::Ipv4Addr> {
    let peer = plan
        .peer
        .as_ref()
        .and_then(|p| hafw_model::render::node::plan(dep, p).ok());
    std::iter::once(plan)
        .chain(peer.as_ref())
        .flat_map(|p| p.interfaces.iter().map(|i| i.address.0))
        .collect()
}

/// Adds session and config sync's state to a status reply.
fn with_sync(
    req: &Request,
    body: String,
    sync: Option<&std::sync::Arc<std::sync::Mutex<crate::sync::SyncStatus>>>,
    view: &Mutex<ConfigView>,
) -> String {
    let st = sync.and_then(|s| s.lock().ok().map(|g| g.clone()));
    let cfg = config_state(view, st.as_ref());
    match req {
        Request::StatusJson => {
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&body) else {
                return body;
            };
            if let Some(st) = &st {
                v["session_sync"] = serde_json::json!({
                    "mode": st.mode, "connected": st.connected, "sending": st.role_active,
                    "sessions": sessions(st), "entries_sent": st.entries_sent, "installed": st.synced_entries,
                    "lag_ms": st.lag_ms, "resyncs": st.resyncs, "dropped_messages": st.dropped,
                    "ready": st.ready,
                    "last_install": st.last_install.map(|(n, d)| serde_json::json!({"sessions": n, "ms": d.as_secs_f64() * 1000.0})),
                });
            }
            v["config"] = serde_json::json!({
                "version": cfg.version, "hash": config::hex(&cfg.hash),
                "peer_version": cfg.peer.map(|p| p.0), "peer_hash": cfg.peer.map(|p| config::hex(&p.1)),
                "mismatch": cfg.mismatch, "error": cfg.error, "peer_error": cfg.peer_error,
                "restart_needed": cfg.restart, "sync": st.is_some(),
            });
            if let Some(alarms) = v["alarms"].as_array_mut() {
                for e in cfg.error.iter().chain(&cfg.peer_error) {
                    alarms.push(serde_json::json!(format!("config sync: {e}")));
                }
            }
            format!("{v}\n")
        }
        Request::Status => {
            let mut out = body;
            if let Some(st) = &st {
                out.push_str(&format!(
                    "sessions  {} mode, HA2 {}, {} {} sessions{}, {} installed here, lag {}, resyncs {}, dropped {}, {}\n",
                    st.mode,
                    if st.connected { "connected" } else { "DISCONNECTED" },
                    if st.role_active { "sending" } else { "holding" },
                    sessions(st),
                    if st.role_active { format!(" ({} changes sent)", st.entries_sent) } else { String::new() },
                    st.synced_entries,
                    st.lag_ms.map(|l| format!("{l:.1} ms")).unwrap_or_else(|| "-".into()),
                    st.resyncs,
                    st.dropped,
                    if st.ready { "ready" } else { "NOT READY (no full table or policy yet)" }
                ));
            }
            let short = |h: &[u8; 32]| config::hex(h)[..8].to_string();
            out.push_str(&format!(
                "config    version {} ({}){}{}\n",
                cfg.version,
                short(&cfg.hash),
                match cfg.peer {
                    Some((v, h)) => format!("  peer version {v} ({})", short(&h)),
                    None if st.is_none() => "  (config sync off)".into(),
                    None => "  peer version unknown".into(),
                },
                if cfg.mismatch { "  [MISMATCH]" } else { "" }
            ));
            for e in cfg.error.iter().chain(&cfg.peer_error) {
                out.push_str(&format!("alarm     config sync: {e}\n"));
            }
            if let Some(r) = &cfg.restart {
                out.push_str(&format!("          restart needed: {r}\n"));
            }
            out
        }
        _ => body,
    }
}

/// The sessions a node answers for: the passive's sync cache; on the
/// active, the kernel's conntrack count (this process's namespace), read
/// when asked rather than tracked per event.
fn sessions(st: &crate::sync::SyncStatus) -> usize {
    if !st.role_active {
        return st.sessions_known;
    }
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// This node's and its peer's policy, as status shows them.
struct ConfigState {
    version: u64,
    hash: [u8; 32],
    peer: Option<(u64, [u8; 32])>,
    mismatch: bool,
    /// A failure to apply here.
    error: Option<String>,
    /// The peer's refusal of our last offer.
    peer_error: Option<String>,
    restart: Option<String>,
}

fn config_state(view: &Mutex<ConfigView>, st: Option<&crate::sync::SyncStatus>) -> ConfigState {
    let v = view.lock().map(|v| v.clone()).unwrap_or_default();
    let cs = st.map(|s| &s.config);
    let peer = cs.and_then(|c| c.peer);
    let peer_error = cs.and_then(|c| match &c.peer_result {
        Some((version, false, e)) => Some(format!(
            "the peer did not apply policy version {version}: {}",
            e.as_deref().unwrap_or("no reason given")
        )),
        _ => None,
    });
    ConfigState {
        version: v.version,
        hash: v.hash,
        peer,
        mismatch: peer.is_some_and(|p| p != (v.version, v.hash)),
        // Cleared by the next policy applied here.
        error: v.error,
        peer_error,
        restart: v.restart,
    }
}
