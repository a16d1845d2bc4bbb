//! Link monitoring: the carrier of the interfaces named in
//! `policy.ha.link_monitor`, polled over netlink, combined per group (any
//! or all members down fails the group) and reported to the core when the
//! verdict changes.

use std::time::Duration;

use hafw_kernel::{link, Rtnl};
use hafw_model::spec::{Deployment, Failure};
use tokio::sync::mpsc;

use super::HaRequest;

pub async fn links(
    nl: Rtnl,
    dep: Deployment,
    every: Duration,
    to_core: mpsc::UnboundedSender<HaRequest>,
) {
    let groups = dep.policy.ha.link_monitors.clone();
    if groups.is_empty() {
        return;
    }
    let mut last: Option<(bool, String)> = None;
    loop {
        let mut failing = vec![];
        for g in &groups {
            let mut down = vec![];
            for role in &g.interfaces {
                let name = role.ifname();
                let up = matches!(link::show(&nl, name).await, Ok(l) if l.carrier && l.admin_up);
                if !up {
                    down.push(name);
                }
            }
            let fails = match g.failure {
                Failure::Any => !down.is_empty(),
                Failure::All => down.len() == g.interfaces.len(),
            };
            if fails {
                failing.push(format!("link down: {}", down.join(", ")));
            }
        }
        let verdict = (failing.is_empty(), failing.join("; "));
        if last.as_ref() != Some(&verdict) {
            let _ = to_core.send(HaRequest::Monitor {
                healthy: verdict.0,
                reason: verdict.1.clone(),
            });
            last = Some(verdict);
        }
        tokio::time::sleep(every).await;
    }
}
