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
) -> ExitCode {
    let log = Log::new(&plan.node);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: hafw run: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(dep, plan.clone(), key_file, control_path, api, log)) {
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
    let handles =
        match ha::core_thread::start(
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
        rx.blocking_recv()
            .map_err(|_| "the HA thread did not answer".to_string())
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
        log.clone(),
    ));
    let _api = match api {
        Some((addr, token)) => {
            let requests = handles.requests.clone();
            let status = move || {
                let (tx, rx) = oneshot::channel();
                if requests.send(HaRequest::Status { json: true, reply: tx }).is_err() {
                    return "{\"error\":\"the HA thread has stopped\"}".to_string();
                }
                rx.blocking_recv().unwrap_or_else(|_| "{\"error\":\"no answer\"}".into())
            };
            let server = ops::api::serve(addr, token, status, metrics.clone())?;
            log.info(format!("status API on http://{}/status and /metrics", server.local_addr()));
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
