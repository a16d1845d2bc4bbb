//! The data-plane executor: carries out the core's actions on the main
//! runtime and times each phase.
//!
//! Promotion, always in this order (architecture.md): install synced
//! sessions, add the floating addresses, announce them (the first
//! gratuitous ARP for every address at once, repeats in the background),
//! confirm the addresses are in place. Demotion removes the addresses; for a
//! planned handover the core only demotes once the peer reports active, so
//! traffic keeps flowing here until the cloud has moved the HAVIPs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hafw_ha::node::Action;
use hafw_kernel::{addr, arp, Rtnl};
use hafw_model::render::node::NodePlan;
use hafw_model::spec::Garp;
use tokio::sync::mpsc;

use super::Timelines;
use crate::dataplane::apply::floating_net;
use crate::error::{DaemonError, KernelError};
use crate::log::Log;
use crate::ops::audit::{Audit, Who};
use crate::ops::hooks::{Event, EventKind, Hooks};
use crate::ops::metrics::Metrics;
use crate::sync::SyncHandle;

#[derive(Debug, Clone)]
pub struct Timeline {
    /// What happened ("become active (term 3): peer lost: …").
    pub what: String,
    /// CLOCK_MONOTONIC when the executor started on it, so it lines up with
    /// the lab's HAVIP log and the prober.
    pub started_mono_ns: u64,
    pub phases: Vec<(&'static str, Duration)>,
    pub error: Option<String>,
    /// Sessions installed at promotion (commit mode), if session sync runs.
    pub sessions: Option<usize>,
}

impl Timeline {
    /// A timeline for `a`, started now on CLOCK_MONOTONIC.
    fn begin(a: &Action) -> Timeline {
        Timeline {
            what: a.to_string(),
            started_mono_ns: monotonic_ns(),
            phases: vec![],
            error: None,
            sessions: None,
        }
    }

    pub fn total(&self) -> Duration {
        self.phases.iter().map(|p| p.1).sum()
    }
}

/// What the executor works with: the kernel, the plan it promotes to, and
/// where its results go.
pub struct Executor {
    pub nl: Rtnl,
    pub plan: NodePlan,
    pub garp: Garp,
    pub timelines: Timelines,
    pub metrics: Metrics,
    pub sync: Option<Arc<SyncHandle>>,
    pub log: Log,
    /// Each transition, with its cause, once carried out.
    pub audit: Audit,
    /// `policy.hooks`, told of each event after it is carried out.
    pub hooks: Hooks,
}

impl Executor {
    /// Carries out the core's actions, one at a time, until the HA thread
    /// stops.
    pub async fn run(self, actions: mpsc::UnboundedReceiver<Action>) {
        execute(self, actions).await
    }
}

async fn execute(ex: Executor, mut actions: mpsc::UnboundedReceiver<Action>) {
    let Executor {
        nl,
        plan,
        garp,
        timelines,
        metrics,
        sync,
        log,
        audit,
        hooks,
    } = ex;
    let mut told = Told::default();
    // Opened once: the failover path only sends.
    let mut announcers = vec![];
    for f in &plan.floating {
        match arp::Announcer::open(None, &f.ifname) {
            Ok(a) => announcers.push((f.address.0, a)),
            Err(source) => {
                log.error(&DaemonError::from(KernelError::Driver {
                    step: "open the ARP socket",
                    source,
                }));
                log.warn(format!(
                    "promotions will not announce {} on {}",
                    f.address, f.ifname
                ));
            }
        }
    }
    let announcers = Arc::new(announcers);
    // The pending gratuitous ARP repeats of the last promotion. A demoted
    // node must stop announcing: a late repeat would move the HAVIPs back
    // to it (the cloud follows the latest announcement) and leave them on
    // a passive node.
    let mut repeats: Option<tokio::task::JoinHandle<()>> = None;
    while let Some(a) = actions.recv().await {
        let tl = match &a {
            Action::BecomeActive { .. } => {
                let tl = promote(
                    &nl,
                    &plan,
                    &garp,
                    &announcers,
                    sync.as_deref(),
                    &a,
                    &mut repeats,
                )
                .await;
                if let Some(s) = &sync {
                    s.set_active(true);
                }
                Some(tl)
            }
            Action::BecomePassive { .. }
            | Action::BecomeSuspended { .. }
            | Action::BecomeNonFunctional { .. } => {
                if let Some(r) = repeats.take() {
                    r.abort();
                }
                if let Some(s) = &sync {
                    s.set_active(false);
                }
                Some(demote(&nl, &plan, &a).await)
            }
            Action::Reannounce { .. } => {
                // The first burst at once, as at a promotion.
                for (ip, an) in announcers.iter() {
                    let _ = an.announce(*ip);
                }
                log.info(format!("{a}"));
                None
            }
            Action::PeerLost | Action::PeerFound { .. } => {
                told.peer(&hooks, &a);
                None
            }
            _ => None,
        };
        if let Some(tl) = tl {
            let phases: Vec<String> = tl
                .phases
                .iter()
                .map(|(n, d)| format!("{n} {}", crate::log::ms(*d)))
                .collect();
            let line = format!(
                "{}: {} (total {}){}",
                tl.what,
                phases.join(", "),
                crate::log::ms(tl.total()),
                tl.error
                    .as_deref()
                    .map(|e| format!("; error: {e}"))
                    .unwrap_or_default()
            );
            // A phase the kernel refused is for the operator to see.
            if tl.error.is_some() {
                log.warn(line);
            } else {
                log.info(line);
            }
            // After the phases: the record never delays a promotion.
            audit.record(
                "ha-transition",
                Who::Ha,
                tl.what.clone(),
                tl.error.clone().map_or(Ok(()), Err),
            );
            for (phase, d) in &tl.phases {
                metrics.phase(phase, d.as_secs_f64());
            }
            if a_is_promotion(&tl) {
                metrics.garp_sent(plan.floating.len() as u64 * u64::from(garp.count.max(1)));
            }
            told.transition(&hooks, &a);
            if let Ok(mut all) = timelines.lock() {
                all.push(tl);
                let excess = all.len().saturating_sub(16);
                all.drain(..excess);
            }
        }
    }
}

/// What the hooks are told besides the event: the state before it and the
/// term, as the executor has seen them (it gets every action in order).
struct Told {
    state: &'static str,
    term: u64,
}

impl Default for Told {
    fn default() -> Told {
        Told {
            state: "initial",
            term: 0,
        }
    }
}

impl Told {
    /// A state change, once its phases are done.
    fn transition(&mut self, hooks: &Hooks, a: &Action) {
        let (kind, state, cause) = match a {
            Action::BecomeActive { term, cause } => {
                self.term = *term;
                (EventKind::Active, "active", cause)
            }
            Action::BecomePassive { cause } => (EventKind::Passive, "passive", cause),
            Action::BecomeSuspended { cause } => (EventKind::Suspended, "suspended", cause),
            Action::BecomeNonFunctional { cause } => {
                (EventKind::NonFunctional, "non-functional", cause)
            }
            _ => return,
        };
        hooks.emit(Event {
            kind,
            state: state.into(),
            previous: self.state.into(),
            cause: cause.to_string(),
            term: self.term,
        });
        self.state = state;
    }

    fn peer(&self, hooks: &Hooks, a: &Action) {
        let kind = match a {
            Action::PeerLost => EventKind::PeerLost,
            Action::PeerFound { .. } => EventKind::PeerBack,
            _ => return,
        };
        hooks.emit(Event {
            kind,
            state: self.state.into(),
            previous: self.state.into(),
            cause: a.to_string(),
            term: self.term,
        });
    }
}

fn a_is_promotion(tl: &Timeline) -> bool {
    tl.phases.iter().any(|(p, _)| *p == "announce")
}

type Announcers = Arc<Vec<(std::net::Ipv4Addr, arp::Announcer)>>;

async fn promote(
    nl: &Rtnl,
    plan: &NodePlan,
    garp: &Garp,
    announcers: &Announcers,
    sync: Option<&SyncHandle>,
    a: &Action,
    repeats: &mut Option<tokio::task::JoinHandle<()>>,
) -> Timeline {
    let mut tl = Timeline::begin(a);
    // Phase 1: sessions, committed before any address is announced, so the
    // first packet the cloud sends here finds its connection and NAT.
    let t = Instant::now();
    if let Some(s) = sync {
        let (n, _, err) = s.install_for_promotion().await;
        tl.sessions = Some(n);
        if let Some(e) = err {
            tl.error = Some(format!("sessions: {e}"));
        }
    }
    tl.phases.push(("sessions", t.elapsed()));

    let t = Instant::now();
    let adds = plan.floating.iter().map(|f| {
        let (nl, dev, net) = (nl.clone(), f.ifname.clone(), floating_net(f));
        async move { addr::add(&nl, &dev, net).await }
    });
    for r in futures_util::future::join_all(adds).await {
        if let Err(e) = r {
            tl.error = Some(e.to_string());
        }
    }
    tl.phases.push(("addresses", t.elapsed()));

    // The first announcement of every address goes out now; the cloud
    // moves the HAVIP on it. Repeats cover a lost frame.
    let t = Instant::now();
    let errs: Vec<String> = announcers
        .iter()
        .filter_map(|(ip, a)| a.announce(*ip).err().map(|e| e.to_string()))
        .collect();
    if !errs.is_empty() {
        tl.error = Some(errs.join("; "));
    }
    tl.phases.push(("announce", t.elapsed()));
    if garp.count > 1 {
        let (announcers, count, interval) = (
            announcers.clone(),
            garp.count - 1,
            Duration::from_millis(u64::from(garp.interval_ms)),
        );
        if let Some(r) = repeats.take() {
            r.abort();
        }
        *repeats = Some(tokio::spawn(async move {
            for _ in 0..count {
                tokio::time::sleep(interval).await;
                for (ip, a) in announcers.iter() {
                    let _ = a.announce(*ip);
                }
            }
        }));
    }

    let t = Instant::now();
    for f in &plan.floating {
        match addr::list(nl, &f.ifname).await {
            Ok(list) if list.contains(&floating_net(f)) => {}
            Ok(_) => {
                tl.error = Some(format!(
                    "{} is missing on {} after the add",
                    f.address, f.ifname
                ))
            }
            Err(e) => tl.error = Some(e.to_string()),
        }
    }
    tl.phases.push(("confirm", t.elapsed()));
    tl
}

async fn demote(nl: &Rtnl, plan: &NodePlan, a: &Action) -> Timeline {
    let mut tl = Timeline::begin(a);
    let t = Instant::now();
    for f in &plan.floating {
        if let Err(e) = addr::delete(nl, &f.ifname, floating_net(f)).await {
            tl.error = Some(e.to_string());
        }
    }
    tl.phases.push(("remove addresses", t.elapsed()));
    tl
}

pub use hafw_kernel::clock::monotonic_ns;
