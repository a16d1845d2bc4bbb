//! Link and path monitoring: path monitors' verdicts ([`super::probe`])
//! are combined with the carrier of every interface of the node, polled over
//! netlink. The groups of `policy.ha.link_monitor` (any or all members down
//! fails the group) are reported to the core when the verdict changes. When
//! an interface comes back, the routes the plan puts on it are restored: the
//! kernel deletes a route whose link went down, and a node that takes over
//! again without its default route would black-hole traffic.

use std::collections::BTreeMap;
use std::time::Duration;

use hafw_kernel::{link, route, Rtnl};
use hafw_model::render::node::NodePlan;
use hafw_model::spec::{Deployment, Failure};
use tokio::sync::mpsc;

use super::HaRequest;
use crate::dataplane::apply::planned_route;
use crate::log::Log;

pub async fn links(
    nl: Rtnl,
    dep: Deployment,
    plan: NodePlan,
    every: Duration,
    to_core: mpsc::UnboundedSender<HaRequest>,
    log: Log,
) {
    let groups = dep.policy.ha.link_monitors.clone();
    let mut paths = vec![];
    for (i, m) in dep.policy.ha.path_monitors.iter().enumerate() {
        match super::probe::start(m, (std::process::id() as u16).wrapping_add(i as u16)) {
            Ok(v) => paths.push(v),
            Err(e) => log.info(format!("{e}; this path monitor is off")),
        }
    }
    let mut last: Option<(bool, String)> = None;
    let mut was_up: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        let mut up_now = BTreeMap::new();
        for i in &plan.interfaces {
            // A netlink error is not a link going down: on a loaded machine a
            // query can fail, and that must not make the node non-functional.
            let up = match link::show(&nl, &i.ifname).await {
                Ok(l) => l.carrier && l.admin_up,
                Err(_) => was_up.get(&i.ifname).copied().unwrap_or(true),
            };
            up_now.insert(i.ifname.clone(), up);
        }
        for (name, up) in &up_now {
            if *up && was_up.get(name) == Some(&false) {
                restore_routes(&nl, &plan, name, &log).await;
            }
        }
        let mut failing = vec![];
        for g in &groups {
            let down: Vec<&str> = g
                .interfaces
                .iter()
                .map(|r| r.ifname())
                .filter(|n| up_now.get(*n) != Some(&true))
                .collect();
            let fails = match g.failure {
                Failure::Any => !down.is_empty(),
                Failure::All => down.len() == g.interfaces.len(),
            };
            if fails {
                failing.push(format!("link down: {}", down.join(", ")));
            }
        }
        for p in &paths {
            if let Some(why) = p.lock().ok().and_then(|v| v.clone()) {
                failing.push(why);
            }
        }
        if !groups.is_empty() || !paths.is_empty() {
            let verdict = (failing.is_empty(), failing.join("; "));
            if last.as_ref() != Some(&verdict) {
                let _ = to_core.send(HaRequest::Monitor {
                    healthy: verdict.0,
                    reason: verdict.1.clone(),
                });
                last = Some(verdict);
            }
        }
        was_up = up_now;
        tokio::time::sleep(every).await;
    }
}

async fn restore_routes(nl: &Rtnl, plan: &NodePlan, ifname: &str, log: &Log) {
    for r in plan.routes.iter().filter(|r| r.ifname == ifname) {
        match route::replace(nl, &planned_route(r)).await {
            Ok(()) => log.info(format!(
                "{ifname} is up again: restored route {} via {}",
                r.destination, r.gateway
            )),
            Err(e) => log.info(format!(
                "{ifname} is up again but route {} did not come back: {e}",
                r.destination
            )),
        }
    }
}
