//! `hafw bench dataplane`: how much the node's data plane costs a TCP bulk
//! stream (`--mode stream`) or 64-byte UDP packets over many flows
//! (`--mode pps`, `pps.rs`), against plain kernel forwarding between the
//! same namespaces in the same run, and how long committing a large
//! ruleset takes. The packet rate is also taken with `policy.fastpath`
//! (the nftables flowtable) when the kernel has flowtables.
//!
//! The firewall namespace runs the seed's fw-a plan, applied by the same
//! code as `hafw run` (node::apply), with its security rules replaced by
//! synthetic ones (hafw_model's generator) followed by the seed's `web-in`
//! rule. The stream goes client → external HAVIP 10.0.1.100:80, DNAT to
//! the server 10.0.10.10:80, so every packet crosses conntrack and NAT.
//! Synthetic rules that would decide this flow before `web-in` are left
//! out, so the first packet is looked up in every set of its zone pair.
//! Only a connection's first packet meets the rules; the figures show
//! what a big policy costs established traffic, which is the point.

mod pps;
mod stream;
mod topology;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hafw_kernel::{nft, Netns};
use hafw_model::addr::Ip;
use hafw_model::render::nft::synthetic_deployment;
use hafw_model::render::node::{self as node_plan, NodePlan};
use hafw_model::spec::{Protocol, Rule};
use hafw_model::Deployment;

use hafw_daemon::dataplane::apply;
use hafw_daemon::log::{ms, Log};
use topology::{Topology, CLIENT_IP, SERVER_IP};

/// The seed deployment, built in so the benchmark runs from anywhere.
use hafw_model::examples::SEED;
const NODE: &str = "fw-a";
const EXTERNAL_HAVIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);
const PORT: u16 = 80;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One TCP stream writing 64 KiB buffers (segmentation offload).
    Stream,
    /// 64-byte UDP frames over `--flows` flows, with the seed's ruleset,
    /// with the fast path, and plain.
    Pps,
}

#[derive(clap::Args)]
pub struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Stream)]
    mode: Mode,
    /// UDP flows (source ports) of `--mode pps`.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=40000))]
    flows: u16,
    /// Security rule counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,10000")]
    rules: Vec<usize>,
    /// Length of each stream.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Measurements per configuration.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub fn run(args: Args) -> ExitCode {
    if let Err(e) = hafw_daemon::dataplane::preflight::check() {
        eprintln!("error: hafw bench dataplane: {e}");
        return ExitCode::FAILURE;
    }
    if args.rules.contains(&0) || args.rules.is_empty() || args.runs == 0 || args.seconds == 0 {
        eprintln!("error: hafw bench dataplane: --rules needs counts of at least 1, --runs and --seconds at least 1");
        return ExitCode::FAILURE;
    }
    let result = match args.mode {
        Mode::Stream => bench(&args),
        Mode::Pps => bench_pps(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: hafw bench dataplane: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &Args) -> Result<(), String> {
    let base = hafw_model::parse("examples/alicloud-havip.toml (built in)", SEED)
        .map_err(|d| d.to_string())?;
    let mut plans: Vec<(usize, NodePlan)> = Vec::new();
    for &n in &args.rules {
        let t = Instant::now();
        let plan = plan_with_rules(&base, n)?;
        println!(
            "render {n:>6} rules: {} ({} lines of nft)",
            ms(t.elapsed()),
            plan.ruleset.text.lines().count()
        );
        plans.push((n, plan));
    }

    let topo = Topology::build()?;
    let fw = Netns::open(&topo.firewall).map_err(|e| e.to_string())?;
    let first = plans[0].1.clone();
    fw.run_blocking(
        move |nl| async move { Ok(apply::apply(&nl, &first, true, &Log::quiet()).await) },
    )
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("apply the firewall's plan: {e}"))?;

    let duration = Duration::from_secs(args.seconds);
    let listen = SocketAddr::from((SERVER_IP, PORT));
    let table = format!(
        "delete table {} {}\n",
        plans[0].1.ruleset.family, plans[0].1.ruleset.table
    );
    let mut plain = Vec::new();
    let mut rated: Vec<Vec<f64>> = vec![Vec::new(); plans.len()];
    for run in 1..=args.runs {
        // Plain forwarding: the same namespaces and routes, no table, so
        // no conntrack and no NAT; the client addresses the server itself.
        nft::apply(Some(&topo.firewall), &table).map_err(|e| e.to_string())?;
        let g = stream::measure(&topo.client, &topo.server, listen, listen, duration)?;
        eprintln!("run {run}: plain forwarding {g:.2} Gbit/s");
        plain.push(g);
        for (i, (n, plan)) in plans.iter().enumerate() {
            nft::apply(Some(&topo.firewall), &plan.ruleset.text).map_err(|e| e.to_string())?;
            let havip = SocketAddr::from((EXTERNAL_HAVIP, PORT));
            let g = stream::measure(&topo.client, &topo.server, listen, havip, duration)?;
            eprintln!("run {run}: {n} rules + NAT {g:.2} Gbit/s");
            rated[i].push(g);
        }
    }

    let (largest, plan) = plans
        .iter()
        .max_by_key(|(n, _)| *n)
        .ok_or("no rule counts")?;
    let mut commits = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        nft::apply(Some(&topo.firewall), &plan.ruleset.text).map_err(|e| e.to_string())?;
        commits.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    println!(
        "TCP bulk stream, 1 sender thread writing 64 KiB buffers, {} s each, {} runs; client {CLIENT_IP} -> firewall (seed fw-a plan) -> server {SERVER_IP}",
        args.seconds, args.runs
    );
    println!(
        "{:<28} {:>8} {:>8} {:>8}   ratio to plain (min/median/max, per run)",
        "Gbit/s", "min", "median", "max"
    );
    row("plain kernel forwarding", &plain, None);
    for (i, (n, _)) in plans.iter().enumerate() {
        let ratios: Vec<f64> = rated[i].iter().zip(&plain).map(|(r, p)| r / p).collect();
        row(
            &format!("{n} rules + DNAT/conntrack"),
            &rated[i],
            Some(&ratios),
        );
    }
    let c = stats(&commits);
    println!(
        "ruleset commit, {largest} rules (nft -f, whole table replaced): min {:.1} ms, median {:.1} ms, max {:.1} ms",
        c.0, c.1, c.2
    );
    Ok(())
}

/// `--mode pps`: per run, plain forwarding, the seed's ruleset, and the
/// seed's ruleset with `policy.fastpath`, in turn on the same namespaces.
fn bench_pps(args: &Args) -> Result<(), String> {
    let base = hafw_model::parse("examples/alicloud-havip.toml (built in)", SEED)
        .map_err(|d| d.to_string())?;
    let plan = node_plan::plan(&base, NODE)?;
    let mut fast = base.clone();
    fast.policy.fastpath = true;
    let fast_plan = node_plan::plan(&fast, NODE)?;

    let topo = Topology::build()?;
    let fw = Netns::open(&topo.firewall).map_err(|e| e.to_string())?;
    let first = plan.clone();
    fw.run_blocking(
        move |nl| async move { Ok(apply::apply(&nl, &first, true, &Log::quiet()).await) },
    )
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("apply the firewall's plan: {e}"))?;
    let delete = format!(
        "delete table {} {}\n",
        plan.ruleset.family, plan.ruleset.table
    );
    let duration = Duration::from_secs(args.seconds);
    // Between plain and the ruleset: conntrack alone (one forward rule
    // accepting established flows, no NAT), so the figures split the
    // ruleset's cost into conntrack's and the rest (NAT, the chains).
    let (family, table) = (plan.ruleset.family, plan.ruleset.table.as_str());
    let conntrack_only = format!(
        "table {family} {table} {{}}\ndelete table {family} {table}\ntable {family} {table} {{\n\tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established accept\n\t}}\n}}\n"
    );
    // And conntrack with the seed's SNAT alone (no other chain), for NAT's
    // share.
    let conntrack_snat = conntrack_only.replacen(
        "\t}\n}\n",
        "\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr 10.0.10.0/24 oifname \"untrust\" snat ip to 10.0.1.100\n\t}\n}\n",
        1,
    );
    let configs: [(&str, &str); 5] = [
        ("plain kernel forwarding", delete.as_str()),
        ("conntrack only, no NAT", conntrack_only.as_str()),
        ("conntrack + SNAT only", conntrack_snat.as_str()),
        ("seed ruleset + SNAT", plan.ruleset.text.as_str()),
        ("seed ruleset + fastpath", fast_plan.ruleset.text.as_str()),
    ];
    const FASTPATH: usize = 4;
    let mut rates: Vec<Vec<pps::Rate>> = vec![Vec::new(); configs.len()];
    let mut fastpath_refused = None;
    for run in 1..=args.runs {
        for (i, (label, ruleset)) in configs.iter().enumerate() {
            if let Err(e) = nft::apply(Some(&topo.firewall), ruleset) {
                if i == FASTPATH {
                    // A kernel without CONFIG_NF_FLOW_TABLE refuses the
                    // flowtable: said once, the other figures still count.
                    fastpath_refused.get_or_insert(e.to_string());
                    continue;
                }
                return Err(format!("{label}: {e}"));
            }
            // A fresh conntrack table for every configuration.
            flush_conntrack(&topo.firewall)?;
            let r = pps::measure(
                &topo.server,
                &topo.client,
                "eth0",
                SERVER_IP,
                args.flows,
                duration,
            )
            .map_err(|e| format!("{label}: {e}"))?;
            eprintln!(
                "run {run}: {label}: {:.0} pps forwarded ({:.0} sent); busy cpu0 {:.0}% cpu1 {:.0}%; softirq cpu0 {:.0}% cpu1 {:.0}%, system cpu0 {:.0}% cpu1 {:.0}%",
                r.pps,
                r.sent_pps,
                r.busy[0] * 100.0,
                r.busy[1] * 100.0,
                r.softirq[0] * 100.0,
                r.softirq[1] * 100.0,
                r.system[0] * 100.0,
                r.system[1] * 100.0
            );
            rates[i].push(r);
        }
    }
    println!(
        "UDP, 64-byte frames ({} bytes of payload), {} flows, sender pinned to cpu0 (sendmmsg, {} per call), receiver on cpu1, {} s each, {} runs; server {SERVER_IP} -> firewall (seed fw-a plan, SNAT) -> {}:{}",
        pps::PAYLOAD,
        args.flows,
        32,
        args.seconds,
        args.runs,
        pps::TARGET,
        pps::TARGET_PORT
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10}   ratio to plain (min/median/max)   busy/softirq/system cpu0, cpu1 (medians)",
        "packets/s forwarded", "min", "median", "max"
    );
    let plain: Vec<f64> = rates[0].iter().map(|r| r.pps).collect();
    for (i, (label, _)) in configs.iter().enumerate() {
        if rates[i].is_empty() {
            println!(
                "{label:<28} not measured: {}",
                fastpath_refused
                    .as_deref()
                    .map(first_line)
                    .unwrap_or("no run")
            );
            continue;
        }
        let pps: Vec<f64> = rates[i].iter().map(|r| r.pps).collect();
        let (min, median, max) = stats(&pps);
        let ratio = if i == 0 {
            String::new()
        } else {
            let r: Vec<f64> = pps.iter().zip(&plain).map(|(a, b)| a / b).collect();
            let (a, b, c) = stats(&r);
            format!("{a:.2} / {b:.2} / {c:.2}")
        };
        let med = |f: fn(&pps::Rate) -> f64| {
            let v: Vec<f64> = rates[i].iter().map(f).collect();
            stats(&v).1 * 100.0
        };
        println!(
            "{label:<28} {min:>10.0} {median:>10.0} {max:>10.0}   {ratio:<32}   {:.0}/{:.0}/{:.0}%, {:.0}/{:.0}/{:.0}%",
            med(|r| r.busy[0]),
            med(|r| r.softirq[0]),
            med(|r| r.system[0]),
            med(|r| r.busy[1]),
            med(|r| r.softirq[1]),
            med(|r| r.system[1]),
        );
    }
    if fastpath_refused.is_some() {
        println!("fastpath: this kernel refused the flowtable (it needs CONFIG_NF_FLOW_TABLE and CONFIG_NF_FLOW_TABLE_INET, or the module nf_flow_table_inet)");
    }
    println!("goal: the ruleset's packet rate >= 0.85 of plain forwarding's");
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| l.contains("Error")).unwrap_or(s)
}

/// Empties the firewall's conntrack table, so each configuration starts
/// from the same state (entries left by plain forwarding are none; those
/// of a previous ruleset would make its flows established for free).
fn flush_conntrack(ns: &str) -> Result<(), String> {
    hafw_kernel::conntrack::Conntrack::open(Some(ns))
        .and_then(|mut ct| ct.flush())
        .map_err(|e| format!("flush the firewall's conntrack table: {e}"))
}

fn row(label: &str, values: &[f64], ratios: Option<&[f64]>) {
    let (min, median, max) = stats(values);
    let ratio = ratios.map_or(String::new(), |r| {
        let (a, b, c) = stats(r);
        format!("   {a:.2} / {b:.2} / {c:.2}")
    });
    println!("{label:<28} {min:>8.2} {median:>8.2} {max:>8.2}{ratio}");
}

fn stats(values: &[f64]) -> (f64, f64, f64) {
    super::min_med_max(values).unwrap_or((f64::NAN, f64::NAN, f64::NAN))
}

/// The seed with `n` security rules: `n - 1` synthetic ones, then the
/// seed's `web-in`, which lets the benchmark's stream through.
fn plan_with_rules(base: &Deployment, n: usize) -> Result<NodePlan, String> {
    let web_in = base
        .policy
        .rules
        .iter()
        .find(|r| r.name == "web-in")
        .cloned()
        .ok_or("the seed deployment has no rule `web-in`")?;
    // Extra rules to make up for those left out below.
    let mut dep = synthetic_deployment(base, n + n / 4 + 16);
    dep.policy.rules.retain(|r| !decides_stream(r));
    dep.policy.rules.truncate(n - 1);
    dep.policy.rules.push(web_in);
    node_plan::plan(&dep, NODE)
}

/// Whether `rule` matches the benchmark's stream (untrust to trust, TCP
/// from the client to the server's port 80).
fn decides_stream(rule: &Rule) -> bool {
    let any_or = |prefixes: &[hafw_model::addr::Prefix], ip: Ipv4Addr| {
        prefixes.is_empty() || prefixes.iter().any(|p| p.contains(Ip(ip)))
    };
    rule.from == "untrust"
        && rule.to == "trust"
        && any_or(&rule.source, CLIENT_IP)
        && any_or(&rule.destination, SERVER_IP)
        && matches!(rule.protocol, Protocol::Tcp | Protocol::Any)
        && (rule.ports.is_empty() || rule.ports.iter().any(|p| p.first <= PORT && PORT <= p.last))
}
