//! `hafw lab up | down | status`: applies a [`Topology`] to the kernel and
//! removes it. Up is all or nothing: on any failure everything created so far
//! is removed before the error is returned.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hafw_kernel::link::VethEnd;
use hafw_kernel::route::Route as KRoute;
use hafw_kernel::rule::Rule as KRule;
use hafw_kernel::{addr, link, netns, route, rule, sysctl, Mac, Netns};
use hafw_model::spec::{Deployment, HostKind};

use crate::topology::{self, Topology};

/// Where each lab keeps its state: a copy of the deployment, the HAVIP log,
/// process ids and logs of its background programs.
pub const STATE_ROOT: &str = "/run/hafw-lab";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    Refused(String),
    #[error("{context}: {source}")]
    Kernel {
        context: String,
        #[source]
        source: hafw_kernel::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn kern(context: impl Into<String>) -> impl FnOnce(hafw_kernel::Error) -> LabError {
    let context = context.into();
    move |source| LabError::Kernel { context, source }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let context = context.into();
    move |source| LabError::Io { context, source }
}

pub fn state_dir(lab: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(lab)
}

/// The pre-shared key the lab's firewalls use (`hafw run --key-file`).
pub fn key_file(lab: &str) -> PathBuf {
    state_dir(lab).join("ha.key")
}

/// 32 random bytes, readable by root only.
/// A fresh key for each lab, written as `hafw keygen --force` writes it
/// (mode 0600, 32 random bytes), so `hafw run` takes it.
fn write_key(path: &Path) -> Result<(), LabError> {
    hafw_daemon::ha::keyfile::generate(path, true)
        .map_err(|e| io(format!("write the HA key {}", path.display()))(std::io::Error::other(e)))
}

pub fn havip_log(lab: &str) -> PathBuf {
    state_dir(lab).join("havip.log")
}

/// The namespaces of lab `lab` that exist now.
pub fn namespaces(lab: &str) -> Result<Vec<String>, LabError> {
    let prefix = topology::ns_prefix(lab);
    Ok(netns::list()
        .map_err(kern("list namespaces"))?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect())
}

#[derive(Debug)]
pub struct UpReport {
    pub topology: Topology,
    pub elapsed: Duration,
}

/// Builds lab `lab` from a validated deployment. `exe` is the hafw binary,
/// started in the lab for the HAVIP controller and the test hosts.
pub async fn up(dep: &Deployment, text: &str, lab: &str, exe: &Path) -> Result<UpReport, LabError> {
    up_with(dep, text, lab, exe, &topology::Options::default()).await
}

/// As [`up`], with the lab's options (first boot, a changed security group).
pub async fn up_with(
    dep: &Deployment,
    text: &str,
    lab: &str,
    exe: &Path,
    opts: &topology::Options,
) -> Result<UpReport, LabError> {
    let started = Instant::now();
    let topo = topology::build_with(dep, lab, opts).map_err(LabError::Refused)?;
    if !namespaces(lab)?.is_empty() {
        return Err(LabError::Refused(format!(
            "lab `{lab}` is already up (namespaces {}*); run `hafw lab down --name {lab}` first",
            topology::ns_prefix(lab)
        )));
    }
    match build(&topo, text, exe, opts).await {
        Ok(()) => Ok(UpReport {
            topology: topo,
            elapsed: started.elapsed(),
        }),
        Err(e) => {
            // Nothing half-applied: remove whatever was created.
            let _ = down(lab);
            Err(e)
        }
    }
}

async fn build(
    t: &Topology,
    text: &str,
    exe: &Path,
    opts: &topology::Options,
) -> Result<(), LabError> {
    let dir = state_dir(&t.lab);
    fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    if opts.metadata_token_optional {
        fs::write(crate::metadata::optional_token_file(&t.lab), "")
            .map_err(io("write the metadata service's mode"))?;
    }
    fs::write(dir.join("deployment.toml"), text).map_err(io("save the deployment"))?;
    fs::write(havip_log(&t.lab), "").map_err(io("create the HAVIP log"))?;
    write_key(&key_file(&t.lab))?;
    serve_user_data(t, text)?;
    let sg: String = t
        .security_group
        .iter()
        .map(|(name, r)| format!("{name}\t{}\n", r.why.join("; ")))
        .collect();
    fs::write(dir.join(SG_FILE), sg).map_err(io("save the security group"))?;

    let mut workers = BTreeMap::new();
    for n in &t.namespaces {
        netns::create(&n.name).map_err(kern("create namespace"))?;
        workers.insert(
            n.name.clone(),
            Netns::open(&n.name).map_err(kern("open namespace"))?,
        );
    }
    let w = |ns: &str| {
        workers.get(ns).cloned().ok_or_else(|| {
            LabError::Refused(format!("internal: no namespace {ns} in the topology"))
        })
    };

    for v in &t.veths {
        let (a, b) = (
            VethEnd::new(&v.a_name, Some(Mac(v.a_mac))),
            VethEnd::new(&v.b_name, Some(Mac(v.b_mac))),
        );
        let b_ns = v.b_ns.clone();
        w(&v.a_ns)?
            .run(move |nl| async move { link::add_veth(&nl, &a, &b, Some(&b_ns)).await })
            .await
            .map_err(kern(format!(
                "create veth {} ({}) ↔ {} ({})",
                v.a_name, v.a_ns, v.b_name, v.b_ns
            )))?;
    }
    // Bring every interface up, lo included, one job per namespace.
    let mut ups = vec![];
    for (ns, worker) in &workers {
        let mut names: Vec<String> = vec!["lo".into()];
        names.extend(
            t.veths
                .iter()
                .filter(|v| &v.a_ns == ns)
                .map(|v| v.a_name.clone()),
        );
        names.extend(
            t.veths
                .iter()
                .filter(|v| &v.b_ns == ns)
                .map(|v| v.b_name.clone()),
        );
        let worker = worker.clone();
        ups.push(async move {
            worker
                .run(move |nl| async move {
                    for n in &names {
                        link::set_up(&nl, n).await?;
                    }
                    Ok(())
                })
                .await
        });
    }
    for r in futures_util::future::join_all(ups).await {
        r.map_err(kern("bring interfaces up"))?;
    }
    for (ns, key, value) in &t.sysctls {
        sysctl::set(Some(ns), key, value).map_err(kern(format!("set {key} in {ns}")))?;
    }
    for a in &t.addrs {
        let (dev, net) = (
            a.dev.clone(),
            ipnet::Ipv4Net::new(a.ip.0, a.prefix).map_err(|e| LabError::Refused(e.to_string()))?,
        );
        w(&a.ns)?
            .run(move |nl| async move { addr::add(&nl, &dev, net).await })
            .await
            .map_err(kern(format!(
                "add {}/{} on {} in {}",
                a.ip, a.prefix, a.dev, a.ns
            )))?;
    }
    for n in &t.neighbours {
        let (dev, ip, mac) = (n.dev.clone(), n.ip.0, n.mac);
        w(&n.ns)?
            .run(move |nl| async move { crate::neigh::add_permanent(&nl, &dev, ip, mac).await })
            .await
            .map_err(kern(format!(
                "add neighbour {} on {} in {}",
                n.ip, n.dev, n.ns
            )))?;
    }
    for r in &t.routes {
        let kr = kernel_route(r);
        w(&r.ns)?
            .run(move |nl| async move { route::add(&nl, &kr).await })
            .await
            .map_err(kern(format!(
                "add route {} in {} (table {})",
                r.dst, r.ns, r.table
            )))?;
    }
    for r in &t.rules {
        let kr = KRule::iif_lookup(r.iif.clone(), r.table, r.priority);
        w(&r.ns)?
            .run(move |nl| async move { rule::add(&nl, &kr).await })
            .await
            .map_err(kern(format!(
                "add rule iif {} lookup {} in {}",
                r.iif, r.table, r.ns
            )))?;
    }
    hafw_kernel::nft::apply(Some(&t.vpc_ns()), &t.vpc_nft).map_err(kern("load the VPC ruleset"))?;
    hafw_kernel::nft::apply(Some(&t.inet_ns()), &t.inet_nft)
        .map_err(kern("load the internet router's ruleset"))?;
    start(
        t,
        &t.vpc_ns(),
        "metadata",
        exe,
        &["lab", "metadata", "--name", &t.lab],
    )?;

    start(
        t,
        &t.vpc_ns(),
        "controller",
        exe,
        &["lab", "controller", "--name", &t.lab],
    )?;
    for h in &t.hosts {
        let port = h.port.unwrap_or(match h.kind {
            HostKind::WebServer => 80,
            _ => 7777,
        });
        let listen = format!("0.0.0.0:{port}");
        match h.kind {
            HostKind::WebServer => start(
                t,
                &h.ns,
                &h.name,
                exe,
                &["lab", "serve", "web", "--listen", &listen],
            )?,
            HostKind::Echo => start(
                t,
                &h.ns,
                &h.name,
                exe,
                &["lab", "serve", "echo", "--listen", &listen],
            )?,
            HostKind::Client => {}
        }
    }
    Ok(())
}

/// The route as the VPC installs it: a gateway that is an ENI address is
/// on-link, since the VPC end of a veth has no address in the vSwitch.
pub fn kernel_route(r: &topology::Route) -> KRoute {
    let mut k = KRoute::new(r.dst.0).dev(r.dev.clone()).table(r.table);
    match r.via {
        Some(via) => k = k.via(via.0).onlink(),
        None => k = k.scope_link(),
    }
    k
}

/// The security group as enforced: `<counter>\t<why>` lines.
const SG_FILE: &str = "security-group.txt";

/// Each firewall's user data, rendered from the deployment with the lab's
/// key (`render::bootstrap`, the script Terraform gives the instance), for
/// the metadata service to serve at /latest/user-data. The image has hafw
/// already (no package URL).
fn serve_user_data(t: &Topology, text: &str) -> Result<(), LabError> {
    use hafw_model::render::bootstrap::{user_data, Bootstrap, KeySource};
    let dep =
        hafw_model::parse("deployment.toml", text).map_err(|d| LabError::Refused(d.to_string()))?;
    let key = fs::read(key_file(&t.lab)).map_err(io("read the lab's HA key"))?;
    for node in &dep.nodes {
        let script = user_data(
            &dep,
            text,
            &node.name,
            KeySource::Bytes(&key),
            &Bootstrap::default(),
        )
        .map_err(|e| LabError::Refused(format!("render the user data of {}: {e}", node.name)))?;
        let path = crate::metadata::user_data_file(&t.lab, &node.name);
        if let Some(d) = path.parent() {
            fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
        }
        fs::write(&path, script).map_err(io(format!("write {}", path.display())))?;
    }
    Ok(())
}

/// Starts a background program in a namespace, detached from our process
/// group, and waits until it reports ready (it creates `<name>.ready`).
fn start(t: &Topology, ns: &str, name: &str, exe: &Path, args: &[&str]) -> Result<(), LabError> {
    let dir = state_dir(&t.lab);
    let ready = dir.join(format!("{name}.ready"));
    let _ = fs::remove_file(&ready);
    let log = fs::File::create(dir.join(format!("{name}.log"))).map_err(io("create a log file"))?;
    let err = log.try_clone().map_err(io("create a log file"))?;
    let mut cmd = hafw_kernel::command(ns, exe).map_err(kern(format!("start {name}")))?;
    cmd.args(args)
        .arg("--ready-file")
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().map_err(io(format!("start {name} in {ns}")))?;
    fs::write(dir.join(format!("{name}.pid")), child.id().to_string())
        .map_err(io("write a pid file"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ready.exists() {
        if Instant::now() > deadline {
            let log = fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            return Err(LabError::Refused(format!(
                "{name} did not become ready within 5 s: {}",
                log.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Removes lab `lab`: kills every process inside its namespaces, deletes the
/// namespaces (and with them every interface) and the state directory.
/// Idempotent, and works from the namespaces alone after a crash.
pub fn down(lab: &str) -> Result<usize, LabError> {
    topology::check_lab_name(lab).map_err(LabError::Refused)?;
    let names = namespaces(lab)?;
    for ns in &names {
        kill_processes_in(ns);
    }
    for ns in &names {
        netns::delete(ns).map_err(kern("delete namespace"))?;
    }
    let dir = state_dir(lab);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io(format!("remove {}", dir.display())))?;
    }
    Ok(names.len())
}

/// Kills every process whose network namespace is `ns`: a namespace with a
/// live process in it would outlive `down`.
fn kill_processes_in(ns: &str) {
    use std::os::unix::fs::MetadataExt;
    let Some(target) = netns::path(ns).ok().and_then(|p| fs::metadata(p).ok()) else {
        return;
    };
    let key = (target.dev(), target.ino());
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        if let Ok(m) = fs::metadata(p.path().join("ns/net")) {
            if (m.dev(), m.ino()) == key {
                // SAFETY: kill(2) with a pid read from /proc; a stale pid fails harmlessly.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// One line of the HAVIP log: `<monotonic ns> move <havip> <from|-> <to>`,
/// `<monotonic ns> ignored <havip> <eni>`, or, with a move delay,
/// `<monotonic ns> requested <havip> <eni>` when a member's announcement
/// starts a move that lands later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub at_ns: u64,
    pub kind: String,
    pub havip: String,
    pub from: Option<String>,
    pub to: String,
}

pub fn read_havip_log(lab: &str) -> Vec<LogLine> {
    let text = fs::read_to_string(havip_log(lab)).unwrap_or_default();
    text.lines().filter_map(parse_log_line).collect()
}

pub fn parse_log_line(line: &str) -> Option<LogLine> {
    let mut f = line.split_whitespace();
    let at_ns = f.next()?.parse().ok()?;
    let kind = f.next()?.to_string();
    let havip = f.next()?.to_string();
    match kind.as_str() {
        "move" => {
            let from = f.next()?;
            let to = f.next()?.to_string();
            Some(LogLine {
                at_ns,
                kind,
                havip,
                from: (from != "-").then(|| from.to_string()),
                to,
            })
        }
        "ignored" | "requested" => Some(LogLine {
            at_ns,
            kind,
            havip,
            from: None,
            to: f.next()?.to_string(),
        }),
        _ => None,
    }
}

pub fn format_log_line(l: &LogLine) -> String {
    match l.kind.as_str() {
        "move" => format!(
            "{} move {} {} {}",
            l.at_ns,
            l.havip,
            l.from.as_deref().unwrap_or("-"),
            l.to
        ),
        _ => format!("{} {} {} {}", l.at_ns, l.kind, l.havip, l.to),
    }
}

pub use hafw_kernel::clock::monotonic_ns;

/// `lab status` as text.
pub fn status(lab: &str) -> Result<String, LabError> {
    use std::fmt::Write as _;
    let names = namespaces(lab)?;
    let mut s = String::new();
    if names.is_empty() {
        return Ok(format!(
            "lab `{lab}` is down (no namespace {}*)\n",
            topology::ns_prefix(lab)
        ));
    }
    let text = fs::read_to_string(state_dir(lab).join("deployment.toml")).unwrap_or_default();
    let _ = writeln!(s, "lab `{lab}`: {} namespaces", names.len());
    for n in &names {
        let _ = writeln!(s, "  {n}");
    }
    let dep = hafw_model::parse("deployment.toml", &text).ok();
    let topo = dep.as_ref().and_then(|d| topology::build(d, lab).ok());
    if let Some(t) = &topo {
        let _ = writeln!(s, "ENIs:");
        for p in &t.ports {
            let _ = writeln!(
                s,
                "  {:<14} {:<15} {}:{:<8} vpc:{:<10} check {}",
                p.eni,
                p.ip.to_string(),
                p.ns,
                p.dev,
                p.vpc_dev,
                if p.source_dest_check { "on" } else { "off" }
            );
        }
    }
    let log = read_havip_log(lab);
    let now = monotonic_ns();
    let _ = writeln!(s, "HAVIPs:");
    if let Some(t) = &topo {
        for h in &t.havips {
            let last = log
                .iter()
                .rev()
                .find(|l| l.kind == "move" && l.havip == h.name);
            let ignored = log
                .iter()
                .filter(|l| l.kind == "ignored" && l.havip == h.name)
                .count();
            match last {
                Some(l) => {
                    let _ = writeln!(s, "  {:<10} {:<15} owner {:<14} moved {:.3} s ago (monotonic {} ns); non-member announcements {ignored}", h.name, h.ip.to_string(), l.to, now.saturating_sub(l.at_ns) as f64 / 1e9, l.at_ns);
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  {:<10} {:<15} no owner yet; non-member announcements {ignored}",
                        h.name,
                        h.ip.to_string()
                    );
                }
            }
        }
    }
    if let Ok(sg) = sg_status(lab) {
        s.push_str(&sg);
    }
    let counts = crate::metadata::read_counts(lab);
    if !counts.is_empty() {
        let _ = writeln!(
            s,
            "metadata service ({}:80), requests by answer:",
            crate::metadata::ADDR
        );
        for (n, m, c, p) in counts {
            let _ = writeln!(s, "  {n:>6} {m:<5} {c} {p}");
        }
    }
    Ok(s)
}

/// The security group's counters in the VPC: (counter, packets), each
/// rule's and [`topology::SG_DROPPED`], read from the kernel.
pub fn sg_counters(lab: &str) -> Result<Vec<(String, u64)>, LabError> {
    let ns = topology::ns_name(lab, "vpc");
    let out = hafw_kernel::command(&ns, "nft")
        .map_err(kern("enter the VPC namespace"))?
        .args(["list", "counters", "table", "ip", topology::VPC_TABLE])
        .output()
        .map_err(io("run nft list counters"))?;
    if !out.status.success() {
        return Err(LabError::Refused(format!(
            "nft list counters in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_counters(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .filter(|(n, _)| n.starts_with("sg"))
        .collect())
}

/// `counter NAME { packets N bytes M }` blocks of `nft list counters`.
pub fn parse_counters(text: &str) -> Vec<(String, u64)> {
    let mut out = vec![];
    let mut name: Option<String> = None;
    for word in text.split_whitespace().collect::<Vec<_>>().windows(2) {
        match word {
            ["counter", n] => name = Some(n.to_string()),
            ["packets", n] => {
                if let (Some(c), Ok(v)) = (name.take(), n.parse()) {
                    out.push((c, v));
                }
            }
            _ => {}
        }
    }
    out
}

/// `lab sg` as text: each rule's counter with what it accepts, and drops.
pub fn sg_status(lab: &str) -> Result<String, LabError> {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "security group of lab `{lab}` (enforced by the VPC on the firewalls' ENIs; stateful):"
    );
    let why: BTreeMap<String, String> = fs::read_to_string(state_dir(lab).join(SG_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let _ = writeln!(s, "  {:>10}  {:<32} why", "packets", "counter");
    for (name, packets) in sg_counters(lab)? {
        let reason = match why.get(&name) {
            Some(w) => w.as_str(),
            None if name == topology::SG_DROPPED => "no rule accepted it (dropped)",
            None => "",
        };
        let _ = writeln!(s, "  {packets:>10}  {name:<32} {reason}");
    }
    Ok(s)
}

/// The labs that are up now, by their VPC namespace.
pub fn labs_up() -> Result<Vec<String>, LabError> {
    Ok(netns::list()
        .map_err(kern("list namespaces"))?
        .into_iter()
        .filter_map(|n| {
            n.strip_prefix("hafw-")?
                .strip_suffix(".vpc")
                .map(str::to_string)
        })
        .collect())
}

/// The lab a command means: the one named, or the only one up.
pub fn resolve_name(name: Option<&str>) -> Result<String, LabError> {
    if let Some(n) = name {
        return Ok(n.to_string());
    }
    let up = labs_up()?;
    match up.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(LabError::Refused(
            "no lab is up; start one with `hafw lab up FILE`".into(),
        )),
        many => Err(LabError::Refused(format!(
            "{} labs are up ({}); say which with --name",
            many.len(),
            many.join(", ")
        ))),
    }
}
