//! The standalone node: brings the data plane up as active, announces the
//! floating addresses, holds until SIGTERM or SIGINT, then withdraws what
//! it added. No HA peer: this node is forced active. `Mode::ApplyOnly`
//! applies (as active or passive) and exits, leaving it in place.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use hafw_kernel::Rtnl;
use hafw_model::render::node::NodePlan;
use hafw_model::spec::Garp;
use tokio::signal::unix::{signal, SignalKind};

use crate::dataplane::{apply, garp, withdraw};
use crate::log::Log;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Apply as active, announce, hold, withdraw on a signal.
    Hold,
    /// Apply (with the floating addresses and announcements when
    /// `active`) and exit.
    ApplyOnly { active: bool },
}

pub fn run_standalone(plan: NodePlan, garp: Garp, mode: Mode) -> ExitCode {
    let log = Log::new(&plan.node);
    let runtime = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(standalone(&plan, &garp, mode, &log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: hafw run: node {}: {e}", plan.node);
            ExitCode::FAILURE
        }
    }
}

async fn standalone(plan: &NodePlan, garp: &Garp, mode: Mode, log: &Log) -> Result<(), String> {
    // Handlers first: a signal that arrives while applying is then seen
    // once the apply is done, and the node withdraws instead of dying with
    // its addresses and table left behind.
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let capacity = crate::dataplane::sessions::capacity(plan)?;
    let nl = Rtnl::connect().map_err(|e| e.to_string())?;

    let started = Instant::now();
    let active = mode != Mode::ApplyOnly { active: false };
    log.info(format!(
        "starting standalone ({}, no HA peer), deployment {}",
        if active {
            "forced active"
        } else {
            "passive: no floating addresses"
        },
        plan.deployment
    ));
    let applied = apply::apply(&nl, plan, active, log)
        .await
        .map_err(|e| e.to_string())?;
    crate::dataplane::sessions::apply(capacity, log);
    if active {
        if let Err(e) = announce(plan, garp, log).await {
            let problems = withdraw::withdraw(&nl, applied, log).await;
            return Err(with_problems(e, &problems));
        }
    }
    log.step(
        if active { "active" } else { "passive" },
        started,
        "data plane up",
    );
    if let Mode::ApplyOnly { .. } = mode {
        log.info(if applied.changed_nothing() {
            "apply only: everything was already in place; nothing changed"
        } else {
            "apply only: left in place; exiting"
        });
        return Ok(());
    }
    log.info(
        "holding; SIGTERM or SIGINT withdraws the floating addresses, routes and table it added",
    );
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    let t = Instant::now();
    log.info(format!("{which}: withdrawing"));
    let problems = withdraw::withdraw(&nl, applied, log).await;
    if !problems.is_empty() {
        return Err(with_problems(
            "withdraw left something behind".into(),
            &problems,
        ));
    }
    log.step("stopped", t, "withdrawn");
    Ok(())
}

/// Gratuitous ARP for every floating address (policy.ha.garp), on a
/// blocking thread: the sends sleep between repeats.
async fn announce(plan: &NodePlan, garp: &Garp, log: &Log) -> Result<(), String> {
    let (count, interval) = (
        garp.count,
        Duration::from_millis(u64::from(garp.interval_ms)),
    );
    let floating = plan.floating.clone();
    let t = Instant::now();
    tokio::task::spawn_blocking(move || garp::announce(None, &floating, count, interval))
        .await
        .map_err(|e| format!("gratuitous ARP task failed: {e}"))??;
    log.step(
        "gratuitous ARP",
        t,
        format!(
            "{} addresses x {count}, {} ms apart",
            plan.floating.len(),
            garp.interval_ms
        ),
    );
    Ok(())
}

fn with_problems(head: String, problems: &[String]) -> String {
    let mut out = head;
    for p in problems {
        out.push_str(&format!("\n  also: {p}"));
    }
    out
}
