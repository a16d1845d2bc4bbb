//! Link and path monitoring, the driver: polls the carrier of every
//! interface of the node over netlink, reads the path monitors' verdicts
//! ([`super::probe`]), and hands both to the core
//! ([`hafw_ha::monitor::Monitors`]), which decides the groups' verdict
//! (`policy.ha.link_monitor`: any or all members down), when to tell the
//! HA node, and when an interface that came back needs its routes.

use std::time::Duration;

use hafw_ha::monitor::{Link, LinkGroup, MonitorAction, Monitors, Rule};
use hafw_kernel::{link, route, Rtnl};
use hafw_model::render::node::NodePlan;
use hafw_model::spec::Failure;
use tokio::sync::mpsc;

use super::HaRequest;
use crate::dataplane::apply::planned_route;
use crate::error::{DaemonError, KernelError};
use crate::log::Log;

pub async fn links(
    nl: Rtnl,
    plan: NodePlan,
    every: Duration,
    to_core: mpsc::UnboundedSender<HaRequest>,
    log: Log,
) {
    let groups = (plan.ha.link_monitors.iter())
        .map(|g| LinkGroup {
            // Validation refuses a role the node has no ENI of; the role's
            // name then names no link, and the link reads as unknown.
            interfaces: (g.interfaces.iter())
                .map(|r| plan.ifname_of(*r).unwrap_or(r.as_str()).to_owned())
                .collect(),
            rule: rule(g.failure),
        })
        .collect();
    let mut paths = vec![];
    for (i, m) in plan.ha.path_monitors.iter().enumerate() {
        let dev = plan.ifname_of(m.via).unwrap_or(m.via.as_str());
        match super::probe::start(m, dev, (std::process::id() as u16).wrapping_add(i as u16)) {
            Ok(v) => paths.push(v),
            Err(e) => {
                log.error(&DaemonError::from(e));
                log.warn(format!("path monitor {} is off", m.name));
            }
        }
    }
    let mut core = Monitors::new(groups, paths.len());
    let mut poll = Vec::with_capacity(plan.interfaces.len());
    loop {
        for (i, p) in paths.iter().enumerate() {
            if let Ok(v) = p.lock() {
                core.handle_path(i, v.as_deref());
            }
        }
        poll.clear();
        for i in &plan.interfaces {
            let seen = match link::show(&nl, &i.ifname).await {
                Ok(l) if l.carrier && l.admin_up => Link::Up,
                Ok(_) => Link::Down,
                Err(_) => Link::Unknown,
            };
            poll.push((i.ifname.as_str(), seen));
        }
        core.handle_links(poll.iter().copied());
        while let Some(a) = core.poll_action() {
            match a {
                MonitorAction::Report(v) => {
                    let _ = to_core.send(HaRequest::Monitor {
                        healthy: v.healthy,
                        reason: v.reason,
                    });
                }
                MonitorAction::RestoreRoutes { ifname } => {
                    restore_routes(&nl, &plan, &ifname, &log).await
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// The file's failure rule as the core's.
pub(super) fn rule(f: Failure) -> Rule {
    match f {
        Failure::Any => Rule::Any,
        Failure::All => Rule::All,
    }
}

async fn restore_routes(nl: &Rtnl, plan: &NodePlan, ifname: &str, log: &Log) {
    for r in plan.routes.iter().filter(|r| r.ifname == ifname) {
        match route::replace(nl, &planned_route(r)).await {
            Ok(()) => log.info(format!(
                "{ifname} is up again: restored route {} via {}",
                r.destination, r.gateway
            )),
            Err(source) => log.error(&DaemonError::from(KernelError::Driver {
                step: "restore a route on an interface up again",
                source,
            })),
        }
    }
}
