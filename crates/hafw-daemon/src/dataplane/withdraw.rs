//! Taking back what an apply changed: [`restore`] after a failed apply
//! (the kernel exactly as it was, the previous ruleset recommitted) and
//! [`withdraw`] when the node stops (forwarding off first, then the table).

use std::time::Instant;

use hafw_kernel::{addr, link, nft, route, sysctl, Rtnl};

use super::apply::Applied;
use crate::log::Log;

/// Every forwarding switch of IPv4 in `nl`'s namespace: `ip_forward`
/// first, then `conf/{all,default,<each link>}/forwarding`. Slash keys, so
/// a link name with a dot stays one path component.
pub async fn forwarding_keys(nl: &Rtnl) -> hafw_kernel::Result<Vec<String>> {
    let mut keys = vec!["net.ipv4.ip_forward".to_string()];
    let links = link::list(nl).await?;
    let scopes = ["all".to_string(), "default".to_string()]
        .into_iter()
        .chain(links.into_iter().map(|l| l.name));
    keys.extend(scopes.map(|s| format!("net/ipv4/conf/{s}/forwarding")));
    Ok(keys)
}

/// Puts the kernel back as it was before the apply that returned `applied`
/// failed: forwarding first (so nothing is routed while the rest moves),
/// the floating addresses, the previous ruleset recommitted in one nft
/// transaction (or the table deleted when there was none), routes, the ENI
/// addresses it added, then the other sysctls. Carries on past failures
/// and returns them.
pub async fn restore(nl: &Rtnl, applied: Applied, log: &Log) -> Vec<String> {
    let ns = nl.netns();
    let mut problems = Vec::new();
    // ip_forward first: writing it sets every interface's switch, which
    // the later entries then put back one by one where they differ.
    for (key, old) in &applied.forwarding {
        if sysctl::get(ns, key).is_ok_and(|now| now == *old) {
            continue;
        }
        if let Err(e) = sysctl::set(ns, key, old) {
            problems.push(e.to_string());
        }
    }
    remove_floating(nl, &applied, log, &mut problems).await;
    if let Some((family, table)) = &applied.table {
        let t = Instant::now();
        let fam = family.keyword();
        let (text, what) = match &applied.table_before {
            // Add-delete-add in one transaction: the kernel swaps the
            // tables atomically and a failure leaves the new one running.
            Some(listed) => (
                format!("add table {fam} {table}\ndelete table {fam} {table}\n{listed}"),
                "previous ruleset recommitted",
            ),
            None => (
                format!("delete table {fam} {table}\n"),
                "deleted: there was none before",
            ),
        };
        match nft::apply(ns, &text) {
            Ok(()) => log.step("restore ruleset", t, format!("table {fam} {table}: {what}")),
            Err(e) => problems.push(e.to_string()),
        }
    }
    restore_routes(nl, &applied, log, &mut problems).await;
    for (ifname, net) in applied.addresses_added.iter().rev() {
        if let Err(e) = addr::delete(nl, ifname, *net).await {
            problems.push(e.to_string());
        }
    }
    for ifname in applied.links_raised.iter().rev() {
        if let Err(e) = link::set_down(nl, ifname).await {
            problems.push(e.to_string());
        }
    }
    restore_sysctls(ns, &applied, log, &mut problems);
    problems
}

/// Takes back what `applied` records when the node stops, in the reverse
/// order of apply, forwarding first: a firewall that stops must not route
/// unfiltered, so forwarding goes off with hafw's table even when it was on
/// before hafw started. Carries on past failures and returns them, so one
/// stuck object does not leave the rest in place.
pub async fn withdraw(nl: &Rtnl, applied: Applied, log: &Log) -> Vec<String> {
    let ns = nl.netns();
    let mut problems = Vec::new();
    let table = applied.table.as_ref().or(applied.table_found.as_ref());
    if table.is_some() || !applied.forwarding.is_empty() {
        let t = Instant::now();
        // No record: this run found forwarding on and left it alone.
        let was_on = applied.forwarding.is_empty();
        match forwarding_off(nl).await {
            // Said as a warning: whoever turned it on before hafw may
            // expect it on still.
            Ok(n) if was_on && table.is_some() => log.warn(format!(
                "forwarding off: {n} switches set to 0; forwarding was on before hafw started and \
                 is turned off with hafw's table: a stopped firewall must not route unfiltered \
                 ({})",
                crate::log::ms(t.elapsed())
            )),
            Ok(n) => log.step("forwarding off", t, format!("{n} switches set to 0")),
            Err(e) => problems.push(e),
        }
    }
    remove_floating(nl, &applied, log, &mut problems).await;
    if let Some((family, table)) = table {
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
    restore_routes(nl, &applied, log, &mut problems).await;
    // ENI addresses and links stay (up): they are the instance's own (its
    // management path among them), which hafw only makes sure of.
    restore_sysctls(ns, &applied, log, &mut problems);
    problems
}

/// Every forwarding switch to 0, IPv4's and IPv6's (hafw never turns IPv6
/// forwarding on, but its table is what drops IPv6 in forward, so IPv6
/// forwarding found on must not outlive it either); how many were not 0.
async fn forwarding_off(nl: &Rtnl) -> Result<usize, String> {
    let ns = nl.netns();
    let v4 = forwarding_keys(nl).await.map_err(|e| e.to_string())?;
    // The same switches under net/ipv6/conf, all, default and each link;
    // ip_forward has no IPv6 twin.
    let v6: Vec<String> = v4
        .iter()
        .filter_map(|k| k.strip_prefix("net/ipv4/conf/"))
        .map(|rest| format!("net/ipv6/conf/{rest}"))
        .collect();
    let mut n = 0;
    for key in v4.into_iter().chain(v6) {
        // A link that went away meanwhile, or IPv6 disabled, leaves no
        // switch to turn off.
        let Ok(v) = sysctl::get(ns, &key) else {
            continue;
        };
        if v != "0" {
            sysctl::set(ns, &key, "0").map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    Ok(n)
}

async fn remove_floating(nl: &Rtnl, applied: &Applied, log: &Log, problems: &mut Vec<String>) {
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
}

async fn restore_routes(nl: &Rtnl, applied: &Applied, log: &Log, problems: &mut Vec<String>) {
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
}

/// Writes back each recorded value the key no longer has (a record made
/// by a step that failed half-way holds keys it never got to).
fn restore_sysctls(ns: Option<&str>, applied: &Applied, log: &Log, problems: &mut Vec<String>) {
    let t = Instant::now();
    let mut n = 0;
    for (key, old) in applied.sysctls.iter().rev() {
        if sysctl::get(ns, key).is_ok_and(|now| now == *old) {
            continue;
        }
        match sysctl::set(ns, key, old) {
            Ok(()) => n += 1,
            Err(e) => problems.push(e.to_string()),
        }
    }
    if n > 0 {
        log.step("restore sysctls", t, format!("{n} restored"));
    }
}
