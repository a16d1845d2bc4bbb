//! The node with a peer: the data plane comes up passive, the HA thread
//! decides, the executor promotes and demotes. On SIGTERM an active node
//! hands over first (the planned outage, not the unplanned one), then
//! withdraws what it added.

use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hafw_ha::node::Command;
use hafw_kernel::{addr, Rtnl};
use hafw_model::render::node::NodePlan;
use hafw_model::Deployment;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

use super::log::Log;
use super::{apply, withdraw};
use crate::control::{self, Request};
use crate::ha::{self, HaRequest};
use crate::ops::{self, metrics::Metrics};

pub fn run(
    dep: Deployment,
    plan: NodePlan,
    key_file: &Path,
    control_path: &Path,
    api: Option<(std::net::SocketAddr, String)>,
    session_sync: &str,
) -> ExitCode {
    let log = Log::new(&plan.node);
    let runtime = match crate::cli::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(serve(
        dep,
        plan.clone(),
        key_file,
        control_path,
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
    key_file: &Path,
    control_path: &Path,
    api: Option<(std::net::SocketAddr, String)>,
    session_sync: &str,
    log: Log,
) -> Result<(), String> {
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
    let sealer = ha::core_thread::new_sealer(&setup);
    let sync = start_sync(&dep, &plan, &setup, &sealer, session_sync, &log)?;
    let handles = match ha::core_thread::start(
        setup,
        sealer.clone(),
        timelines.clone(),
        metrics.clone(),
        log.clone(),
    ) {
        Ok(h) => h,
        Err(e) => {
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
    let requests = handles.requests.clone();
    let sync_status = sync.as_ref().map(|s| s.status.clone());
    let sync_for_control = sync_status.clone();
    control::serve(listener, move |req| {
        let (tx, rx) = oneshot::channel();
        let msg = match req {
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
        Ok(with_sync(req, body, sync_for_control.as_ref()))
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
    let executor = tokio::spawn(ha::promote::execute(
        nl.clone(),
        plan.clone(),
        garp,
        handles.actions,
        timelines,
        metrics.clone(),
        sync.clone(),
        log.clone(),
    ));
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
                with_sync(Request::StatusJson, body, sync_status.as_ref())
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
    let _ = ops::notify::ready();
    let _ = ops::notify::status("serving");

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

/// Session sync: over the HA2 interface, on the HA port, TCP.
fn start_sync(
    dep: &Deployment,
    plan: &NodePlan,
    setup: &ha::setup::Setup,
    sealer: &std::sync::Arc<std::sync::Mutex<hafw_ha::wire::Sealer>>,
    mode: &str,
    log: &Log,
) -> Result<Option<std::sync::Arc<ha::sync::SyncHandle>>, String> {
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
    let sync_setup = ha::sync::SyncSetup {
        local: std::net::SocketAddr::new(local.0.into(), plan.ha.port),
        peer: std::net::SocketAddr::new(peer.0.into(), plan.ha.port),
        node_id: setup.config.node_id,
        peer_id,
        mode,
    };
    let handle = ha::sync::start(sync_setup, sealer.clone(), setup.psk.clone(), log.clone())?;
    log.info(format!(
        "session sync ({mode:?}) over HA2 {local} <-> {peer}"
    ));
    Ok(Some(std::sync::Arc::new(handle)))
}

/// Adds session sync's state to a status reply.
fn with_sync(
    req: Request,
    body: String,
    sync: Option<&std::sync::Arc<std::sync::Mutex<ha::sync::SyncStatus>>>,
) -> String {
    let Some(st) = sync.and_then(|s| s.lock().ok().map(|g| g.clone())) else {
        return body;
    };
    match req {
        Request::StatusJson => {
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&body) else { return body };
            v["session_sync"] = serde_json::json!({
                "mode": st.mode, "connected": st.connected, "sending": st.role_active,
                "sessions": st.sessions_known, "installed": st.synced_entries,
                "lag_ms": st.lag_ms, "resyncs": st.resyncs, "dropped_messages": st.dropped,
                "ready": st.ready,
                "last_install": st.last_install.map(|(n, d)| serde_json::json!({"sessions": n, "ms": d.as_secs_f64() * 1000.0})),
            });
            format!("{v}\n")
        }
        Request::Status => format!(
            "{body}sessions  {} mode, HA2 {}, {} {} sessions, {} installed here, lag {}, resyncs {}, dropped {}, {}\n",
            st.mode,
            if st.connected { "connected" } else { "DISCONNECTED" },
            if st.role_active { "sending" } else { "holding" },
            st.sessions_known,
            st.synced_entries,
            st.lag_ms.map(|l| format!("{l:.1} ms")).unwrap_or_else(|| "-".into()),
            st.resyncs,
            st.dropped,
            if st.ready { "ready" } else { "NOT READY (no full table yet)" }
        ),
        _ => body,
    }
}
