//! `hafw run --check`: the kernel's live state against the plan. Only what
//! the plan sets is compared; anything else on the host is not hafw's.

use std::process::ExitCode;

use hafw_kernel::route::{self, MAIN_TABLE};
use hafw_kernel::{addr, nft, sysctl, Rtnl};
use hafw_model::render::node::NodePlan;
use ipnet::Ipv4Net;

use super::apply::{floating_net, planned_route, same_route};
use super::nft_view;
use crate::EXIT_DIFFERS;

pub fn run(plan: &NodePlan, expect_floating: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: hafw run --check: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let nl = Rtnl::connect().map_err(|e| e.to_string())?;
        Ok::<_, String>(differences(&nl, plan, expect_floating).await)
    });
    match result {
        Err(e) => {
            eprintln!("error: hafw run --check: {e}");
            ExitCode::FAILURE
        }
        Ok(diffs) if diffs.is_empty() => {
            println!(
                "node {}: no differences: {} interfaces, {} floating addresses{}, {} routes, {} sysctls, table {} {}",
                plan.node,
                plan.interfaces.len(),
                plan.floating.len(),
                if expect_floating { "" } else { " (not compared: held only while active; add --standalone)" },
                plan.routes.len(),
                plan.sysctls.len(),
                plan.ruleset.family,
                plan.ruleset.table
            );
            ExitCode::SUCCESS
        }
        Ok(diffs) => {
            println!(
                "node {}: {} differences from the plan:",
                plan.node,
                diffs.len()
            );
            for d in diffs {
                println!("  - {d}");
            }
            ExitCode::from(EXIT_DIFFERS)
        }
    }
}

/// Every way the live state differs from `plan`, one line each.
pub async fn differences(nl: &Rtnl, plan: &NodePlan, expect_floating: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut wanted: Vec<(String, Ipv4Net, &str)> = plan
        .interfaces
        .iter()
        .map(|i| {
            (
                i.ifname.clone(),
                Ipv4Net::new(i.address.0, i.prefix_len()).unwrap_or_default(),
                "ENI address",
            )
        })
        .collect();
    if expect_floating {
        wanted.extend(
            plan.floating
                .iter()
                .map(|f| (f.ifname.clone(), floating_net(f), "floating address")),
        );
    }
    for (ifname, net, what) in wanted {
        match addr::list(nl, &ifname).await {
            Ok(live) if live.contains(&net) => {}
            Ok(_) => out.push(format!("{what} {net} on {ifname}: missing")),
            Err(e) => out.push(format!("{what} {net} on {ifname}: {e}")),
        }
    }
    match route::list(nl, MAIN_TABLE).await {
        Ok(live) => {
            for r in &plan.routes {
                let want = planned_route(r);
                let text = format!("route {} via {} dev {}", r.destination, r.gateway, r.ifname);
                if live.iter().any(|l| same_route(l, &want)) {
                    continue;
                }
                match live.iter().find(|l| l.dst == want.dst) {
                    Some(l) => out.push(format!(
                        "{text}: the kernel has it via {} dev {}",
                        l.gateway.map_or("(none)".into(), |g| g.to_string()),
                        l.dev.as_deref().unwrap_or("(none)")
                    )),
                    None => out.push(format!("{text}: missing")),
                }
            }
        }
        Err(e) => out.push(format!("routes: {e}")),
    }
    let ns = nl.netns();
    for s in &plan.sysctls {
        match sysctl::get(ns, &s.key) {
            Ok(v) if v == s.value => {}
            Ok(v) => out.push(format!("sysctl {} is {v}, plan says {}", s.key, s.value)),
            Err(e) => out.push(format!("sysctl {}: {e}", s.key)),
        }
    }
    let rs = &plan.ruleset;
    let name = format!("nft table {} {}", rs.family, rs.table);
    match (nft_view::live(ns, rs), nft_view::expected(rs)) {
        (Ok(Some(live)), Ok(planned)) if live == planned => {}
        (Ok(Some(live)), Ok(planned)) => out.push(format!(
            "{name} differs from the plan: {}",
            nft_view::first_difference(&live, &planned)
        )),
        (Ok(None), _) => out.push(format!("{name}: missing")),
        (Err(e), _) => out.push(format!("{name}: cannot list it: {e}")),
        (_, Err(e)) => out.push(format!("{name}: cannot render the plan's listing: {e}")),
    }
    // Earlier versions filtered IPv4 only, in `ip hafw`; every commit of
    // the ruleset deletes it, so one still there is a leftover whose rules
    // (and NAT) run beside the plan's.
    let legacy = hafw_model::render::nft::LEGACY_FAMILY;
    if nft::list_table(ns, nft::Family::Ip, &rs.table).is_ok() && rs.family != legacy {
        out.push(format!(
            "nft table {legacy} {} is left from an earlier version and runs beside the plan's; `hafw run` (or `--apply-only`) replaces it",
            rs.table
        ));
    }
    out
}
