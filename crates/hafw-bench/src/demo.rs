//! `hafw lab demo`: the seed's test plan, end to end, on one machine. Builds
//! the emulated VPC, starts both firewalls, checks inbound and outbound
//! traffic the way the seed does, fails over twice (planned: the seed's own
//! suspend test; unplanned: the active instance crashes) with a probe stream
//! and live TCP sessions running, checks failback, prints a report and tears
//! everything down. Exits non-zero, naming the step and the reason, when a
//! check fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hafw_lab::hosts::ProbeReport;
use hafw_lab::lab;
use hafw_lab::pair::{Fault, Pair};
use hafw_lab::sessions::Sessions;
use serde_json::{json, Value};

/// The seed example, built in: `hafw lab demo` works from any directory.
use hafw_model::examples::SEED;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Deployment file (default: the built-in seed example).
    pub file: Option<PathBuf>,
    /// Lab name (default: demo-<pid>).
    #[arg(long)]
    pub name: Option<String>,
    /// HA timer profile for the run (default: the file's).
    #[arg(long, value_enum)]
    pub profile: Option<hafw_model::spec::HaProfile>,
    /// Established TCP sessions kept open across each failover.
    #[arg(long, default_value_t = 20)]
    pub sessions: usize,
    /// Print the report as JSON too.
    #[arg(long)]
    pub json: bool,
    /// A slow cloud: how long the emulated VPC takes to move a HAVIP after
    /// the new owner announces it (`2s`, `500ms`), set on every HAVIP of
    /// the lab. The probes and the TCP sessions' patience grow with it.
    #[arg(long, value_parser = crate::cloud_delay::parse_delay)]
    pub move_delay: Option<Duration>,
    /// Test hook: make the passive unable to take over (its untrust link
    /// down) before the planned failover, to prove the report names the step.
    #[arg(long, hide = true)]
    pub break_passive: bool,
}

struct Step {
    title: String,
    ok: bool,
    detail: String,
    figures: Value,
}

struct Demo {
    steps: Vec<Step>,
    total: usize,
}

impl Demo {
    fn record(&mut self, title: &str, result: Result<(String, Value), String>) -> bool {
        let n = self.steps.len() + 1;
        let (ok, detail, figures) = match result {
            Ok((d, f)) => (true, d, f),
            Err(e) => (false, e, Value::Null),
        };
        println!(
            "[{n}/{}] {title}: {} {detail}",
            self.total,
            if ok { "ok" } else { "FAILED:" }
        );
        self.steps.push(Step {
            title: title.into(),
            ok,
            detail,
            figures,
        });
        ok
    }
}

pub fn run(args: DemoArgs) -> ExitCode {
    if let Err(e) = hafw_daemon::dataplane::preflight::check() {
        eprintln!("error: hafw lab demo: {e}");
        return ExitCode::FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find the hafw binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lab_name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("demo-{}", std::process::id() % 100_000));
    let (file, temp) = match &args.file {
        Some(f) => (f.clone(), None),
        None => {
            let p = std::env::temp_dir().join(format!("hafw-demo-{}.toml", std::process::id()));
            if let Err(e) = std::fs::write(&p, SEED) {
                eprintln!("error: cannot write {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
            (p.clone(), Some(p))
        }
    };
    let delayed = match args.move_delay.map(|d| delayed_file(&file, d)).transpose() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let file = delayed.as_ref().map_or(file, |d| d.path().to_path_buf());
    let dep = match hafw_daemon::load(&file) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let profile = args.profile.unwrap_or(dep.policy.ha.profile);
    println!(
        "hafw lab demo: deployment `{}` ({}), lab `{lab_name}`, HA timers `{profile}`{}",
        dep.name,
        file.display(),
        show_move_delay(&dep)
    );
    let started = Instant::now();
    let mut demo = Demo {
        steps: vec![],
        total: 9,
    };
    let pair = plan(
        &mut demo,
        &file,
        &lab_name,
        &exe,
        profile,
        args.sessions,
        args.break_passive,
    );
    drop(pair); // tears the lab down, whatever happened
    drop(delayed);
    if let Some(t) = temp {
        let _ = std::fs::remove_file(t);
    }
    let left = lab::namespaces(&lab_name).map(|n| n.len()).unwrap_or(0);
    report(&demo, started.elapsed(), left, &lab_name);
    if args.json {
        let steps: Vec<Value> = demo
            .steps
            .iter()
            .map(|s| json!({"step": s.title, "ok": s.ok, "detail": s.detail, "figures": s.figures}))
            .collect();
        println!(
            "{}",
            json!({"deployment": dep.name, "lab": lab_name, "profile": profile.as_str(), "steps": steps,
            "passed": demo.steps.iter().all(|s| s.ok) && demo.steps.len() == demo.total, "seconds": started.elapsed().as_secs_f64()})
        );
    }
    if demo.steps.iter().all(|s| s.ok) && demo.steps.len() == demo.total && left == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The pair as on the cloud: each instance boots from its rendered user
/// data (served by the lab's metadata service in hardened mode) behind the
/// security group rendered from the model.
fn start_from_first_boot(
    file: &Path,
    lab_name: &str,
    exe: &Path,
    profile: hafw_model::spec::HaProfile,
) -> Result<Pair, hafw_lab::lab::LabError> {
    Pair::start_first_boot(file, lab_name, exe, profile.as_str(), &[])
}

/// What first boot did: the metadata service's answers and the security
/// group the VPC enforces.
fn first_boot_summary(pair: &Pair) -> String {
    let counts = hafw_lab::metadata::read_counts(&pair.lab);
    let total: u64 = counts.iter().map(|c| c.0).sum();
    let refused: u64 = counts.iter().filter(|c| c.2 != 200).map(|c| c.0).sum();
    let tokens: u64 = counts
        .iter()
        .filter(|c| c.1 == "PUT" && c.2 == 200)
        .map(|c| c.0)
        .sum();
    format!(
        "from first boot (user data run on each instance; metadata service: {total} requests, {tokens} tokens, {refused} refused; security group of {} rules enforced by the VPC)",
        pair.topology.security_group.len()
    )
}

fn plan(
    demo: &mut Demo,
    file: &Path,
    lab_name: &str,
    exe: &Path,
    profile: hafw_model::spec::HaProfile,
    n_sessions: usize,
    break_passive: bool,
) -> Option<Pair> {
    let t = Instant::now();
    let pair = match start_from_first_boot(file, lab_name, exe, profile) {
        Ok(p) => p,
        Err(e) => {
            demo.record("build the VPC and start both firewalls", Err(e.to_string()));
            return None;
        }
    };
    let first = pair.owner().unwrap_or_default();
    let others: Vec<String> = pair.nodes().into_iter().filter(|n| *n != first).collect();
    demo.record(
        "build the VPC and start both firewalls",
        Ok((
            format!(
                "{first} active, {} passive, both HAVIPs on {first} ({} ms); {}",
                others.join(", "),
                t.elapsed().as_millis(),
                first_boot_summary(&pair)
            ),
            json!({"active": first, "ms": t.elapsed().as_millis()}),
        )),
    );
    let mut pair = pair;
    if !demo.record("inbound: client -> EIP -> web server", inbound(&pair)) {
        return Some(pair);
    }
    if !demo.record("outbound: web server -> internet", outbound(&pair)) {
        return Some(pair);
    }
    let passive = others.first().cloned().unwrap_or_default();
    if break_passive {
        if let Err(e) = pair.inject(Fault::UntrustDown, &passive) {
            demo.record("break the passive (test hook)", Err(e.to_string()));
            return Some(pair);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if !demo.record(
        &format!("failover, planned (the seed's test: suspend {first})"),
        failover(&mut pair, Fault::Suspend, &first, &passive, n_sessions),
    ) {
        return Some(pair);
    }
    // The suspended node comes back passive: the unplanned failover needs it.
    let _ = pair.heal(Fault::Suspend, &first);
    // ... and ready: holding the new active's sessions and policy.
    let back = wait_state(&pair, &first, "passive", Duration::from_secs(5)).and_then(|()| {
        pair.wait_ready(Duration::from_secs(10))
            .map_err(|e| e.to_string())
    });
    if let Err(e) = back {
        demo.record(
            &format!("failover, unplanned (instance {passive} crashes)"),
            Err(e),
        );
        return Some(pair);
    }
    if !demo.record(
        &format!("failover, unplanned (instance {passive} crashes)"),
        failover(&mut pair, Fault::Crash, &passive, &first, n_sessions),
    ) {
        return Some(pair);
    }
    if !demo.record(
        "traffic after both failovers",
        inbound(&pair).and_then(|a| {
            outbound(&pair).map(|b| (format!("{}; {}", a.0, b.0), json!([a.1, b.1])))
        }),
    ) {
        return Some(pair);
    }
    if !demo.record("failback", failback(&mut pair, &passive, &first)) {
        return Some(pair);
    }
    if !demo.record(
        &format!(
            "config change, --confirm-within {} s, left to roll back",
            CONFIRM_WINDOW.as_secs()
        ),
        confirm_step(&pair, false),
    ) {
        return Some(pair);
    }
    demo.record(
        &format!(
            "config change, --confirm-within {} s, confirmed",
            CONFIRM_WINDOW.as_secs()
        ),
        confirm_step(&pair, true),
    );
    Some(pair)
}

/// The demo's confirmation window: long enough for the pair to take the
/// change, short enough to watch it roll back.
const CONFIRM_WINDOW: Duration = Duration::from_secs(3);

/// Each node's (version, hash) from its status.
fn versions(pair: &Pair) -> Vec<(String, u64, String)> {
    pair.nodes()
        .into_iter()
        .map(|n| {
            let (v, h) = pair
                .status(&n)
                .map(|s| (s.config.version, s.config.hash))
                .unwrap_or_default();
            (n, v, h)
        })
        .collect()
}

/// "fw-a v3 1a2b3c4d, fw-b v3 1a2b3c4d" and its JSON.
fn show_versions(vs: &[(String, u64, String)]) -> (String, Value) {
    let text = vs
        .iter()
        .map(|(n, v, h)| format!("{n} v{v} {}", h.get(..8).unwrap_or(h)))
        .collect::<Vec<_>>()
        .join(", ");
    let json = vs
        .iter()
        .map(|(n, v, h)| json!({"node": n, "version": v, "hash": h}))
        .collect::<Vec<_>>();
    (text, Value::Array(json))
}

/// Waits until every node runs one version whose hash `want` accepts.
fn wait_versions(
    pair: &Pair,
    timeout: Duration,
    want: impl Fn(u64, &str) -> bool,
) -> Result<Vec<(String, u64, String)>, String> {
    let until = Instant::now() + timeout;
    loop {
        let vs = versions(pair);
        let one = vs
            .windows(2)
            .all(|w| (w[0].1, &w[0].2) == (w[1].1, &w[1].2));
        if one && vs.iter().all(|(_, v, h)| want(*v, h)) {
            return Ok(vs);
        }
        if Instant::now() >= until {
            return Err(format!(
                "after {} s the nodes run {}",
                timeout.as_secs(),
                show_versions(&vs).0
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A policy change on the active with `--confirm-within`: a drop rule for
/// a documentation address nothing uses, so traffic is not disturbed.
/// Unconfirmed, both nodes must come back to the previous policy (as a new
/// version) by themselves; confirmed, they must keep it past the window.
fn confirm_step(pair: &Pair, confirm: bool) -> Result<(String, Value), String> {
    let active = pair.owner().ok_or("no node holds the HAVIPs")?;
    let before = wait_versions(pair, Duration::from_secs(5), |_, _| true)?;
    let (v0, h0) = (before[0].1, before[0].2.clone());
    let zones = pair
        .dep
        .policy
        .rules
        .first()
        .map(|r| (r.from.clone(), r.to.clone()))
        .ok_or("the policy has no rule to copy zones from")?;
    let name = if confirm {
        "demo-confirmed"
    } else {
        "demo-unconfirmed"
    };
    let own = pair.node_config(&active);
    let text = std::fs::read_to_string(&own).map_err(|e| format!("{}: {e}", own.display()))?;
    let changed = format!(
        "{}\n\n[[policy.rule]]\nname = \"{name}\"\nfrom = \"{}\"\nto = \"{}\"\n\
         destination = [\"198.51.100.99\"]\nprotocol = \"tcp\"\nports = [9]\naction = \"drop\"\n",
        text.trim_end(),
        zones.0,
        zones.1
    );
    let file = own.with_extension(format!("{name}.toml"));
    std::fs::write(&file, changed).map_err(|e| format!("{}: {e}", file.display()))?;
    let control = pair.control(&active);
    let applied = hafw_daemon::control::apply_within(
        &control,
        &file,
        Some(CONFIRM_WINDOW),
        &format!("lab demo: {name}"),
    );
    let _ = std::fs::remove_file(&file);
    applied.map_err(|e| format!("hafw config apply on {active}: {e}"))?;
    let t = Instant::now();
    let after = wait_versions(pair, Duration::from_secs(5), |v, h| v > v0 && h != h0)?;
    let (v1, h1) = (after[0].1, after[0].2.clone());
    if confirm {
        hafw_daemon::control::request(&control, &hafw_daemon::control::Request::ConfigConfirm)
            .map_err(|e| format!("hafw config confirm on {active}: {e}"))?;
        // Past the window: still the confirmed version on both.
        std::thread::sleep(CONFIRM_WINDOW.saturating_sub(t.elapsed()) + Duration::from_secs(1));
        let kept = versions(pair);
        if kept.iter().any(|(_, v, h)| (*v, h) != (v1, &h1)) {
            return Err(format!(
                "confirmed v{v1}, but after the window the nodes run {}",
                show_versions(&kept).0
            ));
        }
        let (a, aj) = show_versions(&after);
        let (k, kj) = show_versions(&kept);
        return Ok((
            format!("applied: {a}; confirmed, still after the window: {k}"),
            json!({"applied": aj, "after_window": kj}),
        ));
    }
    let back = wait_versions(pair, CONFIRM_WINDOW + Duration::from_secs(8), |v, h| {
        v > v1 && h == h0
    })?;
    let took = t.elapsed();
    let (a, aj) = show_versions(&after);
    let (b, bj) = show_versions(&back);
    Ok((
        format!(
            "applied: {a}; not confirmed, both back on the previous policy {:.1} s after the apply returned: {b}",
            took.as_secs_f64()
        ),
        json!({"applied": aj, "rolled_back": bj, "rollback_s": took.as_secs_f64()}),
    ))
}

fn exec(pair: &Pair, host: &str, args: &[&str]) -> Result<String, String> {
    let ns = hafw_lab::topology::ns_name(&pair.lab, host);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = hafw_kernel::command(&ns, &exe)
        .map_err(|e| e.to_string())?
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{text} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn client_and_eip(pair: &Pair) -> Result<(String, String, u16), String> {
    let client = pair
        .dep
        .lab
        .hosts
        .iter()
        .find(|h| h.kind == hafw_model::spec::HostKind::Client)
        .ok_or("the deployment has no lab client host")?;
    let eip = pair
        .dep
        .cloud
        .eips
        .iter()
        .find(|e| e.havip.is_some())
        .ok_or("the deployment has no EIP on a HAVIP")?;
    let port = pair
        .dep
        .policy
        .nat
        .dnat
        .first()
        .map(|d| d.port)
        .ok_or("the deployment has no DNAT rule")?;
    Ok((client.name.clone(), eip.ip.to_string(), port))
}

fn inbound(pair: &Pair) -> Result<(String, Value), String> {
    let (client, eip, port) = client_and_eip(pair)?;
    let client_ip = pair
        .dep
        .lab
        .hosts
        .iter()
        .find(|h| h.name == client)
        .map(|h| h.ip.to_string())
        .unwrap_or_default();
    let got = exec(
        pair,
        &client,
        &[
            "lab",
            "fetch",
            &format!("{eip}:{port}"),
            "--timeout-ms",
            "3000",
        ],
    )?;
    if got.contains(&format!("client {client_ip}:")) {
        Ok((
            format!("HTTP 200 via {eip}:{port}; the server saw the client's public IP {client_ip}"),
            json!({"reply": got}),
        ))
    } else {
        Err(format!(
            "the server did not see the client's public IP {client_ip}: {got}"
        ))
    }
}

fn echo_target(pair: &Pair) -> Result<(String, SocketAddr), String> {
    let echo = pair
        .dep
        .lab
        .hosts
        .iter()
        .find(|h| h.kind == hafw_model::spec::HostKind::Echo)
        .ok_or("the deployment has no lab echo host")?;
    let server = pair
        .dep
        .lab
        .hosts
        .iter()
        .find(|h| h.vswitch.is_some())
        .ok_or("the deployment has no server lab host")?;
    Ok((
        server.name.clone(),
        SocketAddr::new(echo.ip.0.into(), echo.port.unwrap_or(7777)),
    ))
}

fn outbound(pair: &Pair) -> Result<(String, Value), String> {
    let (server, target) = echo_target(pair)?;
    let eip = pair
        .dep
        .cloud
        .eips
        .iter()
        .find(|e| e.havip.is_some())
        .map(|e| e.ip.to_string())
        .unwrap_or_default();
    let got = exec(
        pair,
        &server,
        &["lab", "ask", &target.to_string(), "--timeout-ms", "3000"],
    )?;
    if got.contains(&format!("seen {eip}:")) {
        Ok((
            format!("the internet host saw the EIP {eip}"),
            json!({"reply": got}),
        ))
    } else {
        Err(format!(
            "the internet host did not see the EIP {eip}: {got}"
        ))
    }
}

fn wait_state(pair: &Pair, node: &str, want: &str, timeout: Duration) -> Result<(), String> {
    let end = Instant::now() + timeout;
    loop {
        let st = pair.state(node);
        if st.as_deref() == Some(want) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!(
                "{node} is {} after {timeout:?}, expected {want}",
                st.unwrap_or_else(|| "not answering".into())
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

fn failover(
    pair: &mut Pair,
    fault: Fault,
    victim: &str,
    survivor: &str,
    n: usize,
) -> Result<(String, Value), String> {
    let (server, target) = echo_target(pair)?;
    let server_ns = hafw_lab::topology::ns_name(&pair.lab, &server);
    let outage = expected_outage(pair);
    let sessions = Sessions::open_patient(
        &server_ns,
        target,
        n,
        Duration::from_millis(10),
        hafw_lab::sessions::patience_for(outage),
    );
    if sessions.opened < n {
        return Err(format!(
            "opened only {}/{n} TCP sessions: {:?}",
            sessions.opened,
            sessions.open_errors.first()
        ));
    }
    let mut fault_at = 0u64;
    let (report, probe_start, injected): (ProbeReport, u64, Result<u64, String>) = pair
        .probe_around(
            &server,
            target,
            probe_length(outage),
            Duration::from_millis(500),
            |p| p.inject(fault, victim).map_err(|e| e.to_string()),
        )
        .map_err(|e| e.to_string())?;
    match injected {
        Ok(at) => fault_at = at.max(fault_at),
        Err(e) => return Err(format!("cannot inject {}: {e}", fault.as_str())),
    }
    let results = sessions.finish();
    pair.wait_settled(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let owner = pair.owner().unwrap_or_default();
    if owner != survivor {
        return Err(format!("the HAVIPs are on {owner}, expected {survivor}"));
    }
    let survived = results.iter().filter(|r| r.failure.is_none()).count();
    let first_failure = results.iter().find_map(|r| r.failure.clone());
    // Timeline, all from CLOCK_MONOTONIC, relative to the fault.
    let (moved_text, moved) =
        crate::cloud_delay::havip_timeline(&lab::read_havip_log(&pair.lab), fault_at);
    let status = pair.status(survivor).unwrap_or_default();
    let tl = status
        .timeline("become active", 0)
        .cloned()
        .unwrap_or_default();
    let detected =
        (tl.started_mono_ns > 0).then(|| ms(tl.started_mono_ns as i128 - fault_at as i128));
    let phases: Vec<String> = tl
        .phases
        .iter()
        .map(|p| format!("{} {:.2} ms", p.phase, p.ms))
        .collect();
    let through = report.longest_loss_run_start.as_ref().map(|m| {
        let end = probe_start as i128 + (m.sent_at + report.longest_loss_span).as_nanos() as i128;
        ms(end - fault_at as i128)
    });
    let detail = format!(
        "{} of {} probes lost at {} Hz, longest gap {:.1} ms; {survived}/{n} TCP sessions survived{}\n      timeline from the fault: promotion started {}, {}; HAVIP {}; first probe through {}",
        report.lost,
        report.sent,
        report.rate_hz,
        report.longest_arrival_gap.as_secs_f64() * 1000.0,
        first_failure.map(|f| format!(" (first failure: {f})")).unwrap_or_default(),
        detected.map(|d| format!("+{d:.1} ms")).unwrap_or_else(|| "?".into()),
        if phases.is_empty() { "no phases".into() } else { phases.join(", ") },
        moved_text,
        through.map(|t| format!("+{t:.1} ms")).unwrap_or_else(|| "no loss".into()),
    );
    let figures = json!({
        "fault": fault.as_str(), "victim": victim, "new_active": survivor,
        "probes_sent": report.sent, "probes_lost": report.lost, "longest_gap_ms": report.longest_arrival_gap.as_secs_f64() * 1000.0,
        "longest_loss_span_ms": report.longest_loss_span.as_secs_f64() * 1000.0,
        "promotion_started_ms": detected, "phases": serde_json::to_value(&tl.phases).unwrap_or(Value::Null), "havip_moved_ms": moved, "first_probe_through_ms": through,
        "tcp_sessions": n, "tcp_survived": survived,
    });
    if survived < n {
        return Err(detail);
    }
    Ok((detail, figures))
}

/// The longest outage a failover may cause: the peer's detection, then
/// the cloud's move delay (the move is asked for by the first gratuitous
/// ARP after promotion, which takes microseconds).
fn expected_outage(pair: &Pair) -> Duration {
    pair.detection() + crate::cloud_delay::longest_delay(&pair.dep)
}

/// Probing long enough to see the outage end and a steady state after it.
fn probe_length(outage: Duration) -> Duration {
    Duration::from_millis(3000).max(outage + Duration::from_millis(2500))
}

/// The seed's file with `--move-delay` on every HAVIP.
fn delayed_file(file: &Path, delay: Duration) -> Result<crate::cloud_delay::DelayedFile, ExitCode> {
    crate::cloud_delay::with_move_delay(file, delay).map_err(|e| {
        eprintln!("error: hafw lab demo --move-delay: {e}");
        ExitCode::FAILURE
    })
}

fn show_move_delay(dep: &hafw_model::spec::Deployment) -> String {
    let d = crate::cloud_delay::longest_delay(dep);
    if d.is_zero() {
        String::new()
    } else {
        format!(", HAVIP move delay {:.1} s", d.as_secs_f64())
    }
}

fn failback(pair: &mut Pair, crashed: &str, active: &str) -> Result<(String, Value), String> {
    pair.heal(Fault::Crash, crashed)
        .map_err(|e| e.to_string())?;
    let preempt = pair.dep.policy.ha.preempt;
    let want_active = if preempt { crashed } else { active };
    let want_other = if preempt { active } else { crashed };
    let wait = Duration::from_millis(u64::from(pair.dep.policy.ha.preempt_hold_ms))
        + Duration::from_secs(8);
    wait_state(pair, want_other, "passive", wait)?;
    wait_state(pair, want_active, "active", Duration::from_secs(2))?;
    let owner = pair.owner().unwrap_or_default();
    if owner != want_active {
        return Err(format!("the HAVIPs are on {owner}, expected {want_active}"));
    }
    Ok((
        format!(
            "{crashed} restarted and is passive; {want_active} stays active ({})",
            if preempt {
                "preemption on: the higher priority took over"
            } else {
                "preemption off: no failback"
            }
        ),
        json!({"active": want_active, "preempt": preempt}),
    ))
}

fn report(demo: &Demo, took: Duration, left: usize, lab_name: &str) {
    println!();
    println!("{:<56} result", "step");
    for s in &demo.steps {
        println!("{:<56} {}", s.title, if s.ok { "pass" } else { "FAIL" });
    }
    for s in demo.steps.len()..demo.total {
        println!("{:<56} not run", format!("(step {})", s + 1));
    }
    let failed = demo.steps.iter().find(|s| !s.ok);
    println!(
        "\n{} in {:.1} s; lab `{lab_name}` {}",
        match failed {
            None if demo.steps.len() == demo.total => "all checks passed".to_string(),
            None => "stopped early".to_string(),
            Some(s) => format!("FAILED at `{}`: {}", s.title, s.detail),
        },
        took.as_secs_f64(),
        if left == 0 {
            "torn down".to_string()
        } else {
            format!("NOT torn down: {left} namespaces left")
        }
    );
}
