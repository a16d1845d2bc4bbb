//! Taking back what an apply changed, and nothing else.

use std::time::Instant;

use hafw_kernel::{addr, nft, route, sysctl, Rtnl};

use super::apply::Applied;
use crate::log::Log;

/// Takes back what `applied` records, in the reverse order of apply.
/// Carries on past failures and returns them, so one stuck object does not
/// leave the rest in place.
pub async fn withdraw(nl: &Rtnl, applied: Applied, log: &Log) -> Vec<String> {
    let ns = nl.netns();
    let mut problems = Vec::new();
    let t = Instant::now();
    for (ifname, net) in applied.floating_added.iter().rev() {
        if let Err(e) = addr::delete(nl, ifname, *net).await {
            problems.push(e.to_string());
        }
    }
    if !applied.floating_added.is_empty() {
        log.step(
            "withdraw floating addresses",
            t,
            format!("{} removed", applied.floating_added.len()),
        );
    }
    if let Some((family, table)) = applied.table.as_ref().or(applied.table_found.as_ref()) {
        let t = Instant::now();
        match nft::apply(ns, &format!("delete table {} {table}\n", family.keyword())) {
            Ok(()) => log.step(
                "withdraw ruleset",
                t,
                format!("table {} {table} deleted", family.keyword()),
            ),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let t = Instant::now();
    for r in applied.routes_added.iter().rev() {
        if let Err(e) = route::delete(nl, r).await {
            problems.push(e.to_string());
        }
    }
    for r in applied.routes_replaced.iter().rev() {
        if let Err(e) = route::replace(nl, r).await {
            problems.push(e.to_string());
        }
    }
    if !(applied.routes_added.is_empty() && applied.routes_replaced.is_empty()) {
        log.step(
            "withdraw routes",
            t,
            format!(
                "{} removed, {} restored",
                applied.routes_added.len(),
                applied.routes_replaced.len()
            ),
        );
    }
    // ENI addresses stay: they are the instance's own (its management path
    // among them), which hafw only makes sure of.
    let t = Instant::now();
    for (key, old) in applied.sysctls.iter().rev() {
        if let Err(e) = sysctl::set(ns, key, old) {
            problems.push(e.to_string());
        }
    }
    if !applied.sysctls.is_empty() {
        // Forwarding, above all, must not outlive the table that filtered it.
        log.step(
            "restore sysctls",
            t,
            format!("{} restored", applied.sysctls.len()),
        );
    }
    problems
}
