//! Namespace tests of "Never forwarding without the ruleset"
//! (architecture.md): a failure at every step of an apply, before and
//! after the step's kernel change, leaves the kernel exactly as it was
//! (ruleset, addresses, routes of every table, sysctls); a start never
//! forwards before the ruleset; a stop turns forwarding off, also when it
//! was on before hafw; a daemon killed at any moment leaves no forwarding
//! without the table; a config commit that fails late keeps the old ruleset.
//!
//! Each test makes its own namespace, holding the seed fw-a's interfaces
//! as veth pairs kept inside it, and removes it on drop.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hafw_daemon::config::{self, ConfigEnv, ConfigInput, ConfigTask, ConfigView, Startup};
use hafw_daemon::dataplane::apply::{self, Applied, Fault, Step};
use hafw_daemon::dataplane::withdraw;
use hafw_daemon::ha::HaRequest;
use hafw_daemon::log::Log;
use hafw_kernel::{netns, sysctl, Netns};
use hafw_model::render::node::{self as node_plan, NodePlan};

const SEED: &str = hafw_model::examples::SEED;
const NODE: &str = "fw-a";
const ABSENT: &str = "<absent>";

/// A namespace with the plan's interfaces, removed on drop when `owned`.
struct NodeNs {
    name: String,
    owned: bool,
}

impl NodeNs {
    fn new(plan: &NodePlan) -> NodeNs {
        let name = unique("hafw-safe");
        netns::create(&name).unwrap_or_else(|e| panic!("create {name}: {e}"));
        let ns = NodeNs { name, owned: true };
        ns.ip(&["link", "set", "lo", "up"]);
        for i in &plan.interfaces {
            let peer = format!("{}-p", i.ifname);
            ns.ip(&[
                "link", "add", &i.ifname, "type", "veth", "peer", "name", &peer,
            ]);
            ns.ip(&["link", "set", &i.ifname, "up"]);
            ns.ip(&["link", "set", &peer, "up"]);
        }
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip {args:?} in {}: {out:?}",
            self.name
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn nft(&self, args: &[&str]) -> Option<String> {
        let out = hafw_kernel::command(&self.name, "nft")
            .unwrap()
            .args(args)
            .output()
            .expect("run nft");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    fn table_present(&self) -> bool {
        self.nft(&["list", "table", "inet", "hafw"]).is_some()
    }

    fn get(&self, key: &str) -> String {
        sysctl::get(Some(&self.name), key).unwrap_or_else(|_| ABSENT.into())
    }

    fn set(&self, key: &str, value: &str) {
        sysctl::set(Some(&self.name), key, value)
            .unwrap_or_else(|e| panic!("set {key} in {}: {e}", self.name));
    }

    fn forwarding(&self) -> bool {
        self.get("net.ipv4.ip_forward") == "1"
    }

    /// ip_forward and every interface's forwarding switch, with values.
    fn forwarding_switches(&self) -> Vec<(String, String)> {
        let links = self.ip(&["-o", "link", "show"]);
        let mut keys = vec!["net.ipv4.ip_forward".to_string()];
        let names = links.lines().filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next()?.to_string())
        });
        for s in ["all".to_string(), "default".to_string()]
            .into_iter()
            .chain(names)
        {
            keys.push(format!("net/ipv4/conf/{s}/forwarding"));
        }
        keys.into_iter()
            .map(|k| {
                let v = self.get(&k);
                (k, v)
            })
            .collect()
    }

    fn apply(
        &self,
        plan: &NodePlan,
        active: bool,
        fault: Option<Fault>,
    ) -> Result<Applied, String> {
        let plan = plan.clone();
        Netns::open(&self.name)
            .unwrap()
            .run_blocking(move |nl| async move {
                Ok(apply::apply_with(&nl, &plan, active, &Log::quiet(), fault)
                    .await
                    .map_err(|e| e.to_string()))
            })
            .unwrap()
    }

    fn withdraw(&self, applied: Applied) -> Vec<String> {
        Netns::open(&self.name)
            .unwrap()
            .run_blocking(move |nl| async move {
                Ok(withdraw::withdraw(&nl, applied, &Log::quiet()).await)
            })
            .unwrap()
    }
}

impl Drop for NodeNs {
    fn drop(&mut self) {
        if self.owned {
            let _ = netns::delete(&self.name);
        }
    }
}

/// What an apply may touch, as the kernel shows it.
#[derive(Debug, PartialEq, Clone)]
struct Snapshot {
    ruleset: String,
    addresses: String,
    routes: String,
    sysctls: Vec<(String, String)>,
}

fn snapshot(ns: &NodeNs, plans: &[&NodePlan]) -> Snapshot {
    let mut sysctls = ns.forwarding_switches();
    for p in plans {
        for s in &p.sysctls {
            if !sysctls.iter().any(|(k, _)| *k == s.key) {
                sysctls.push((s.key.clone(), ns.get(&s.key)));
            }
        }
    }
    Snapshot {
        ruleset: ns.nft(&["list", "ruleset"]).expect("nft list ruleset"),
        addresses: ns.ip(&["-4", "addr", "show"]),
        routes: ns.ip(&["-4", "route", "show", "table", "all"]),
        sysctls,
    }
}

/// What differs, field by field, for the failure message.
fn differences(want: &Snapshot, got: &Snapshot) -> Vec<String> {
    let mut out = vec![];
    let mut text = |what: &str, a: &str, b: &str| {
        if a != b {
            out.push(format!("{what}:\n--- before\n{a}\n+++ after\n{b}"));
        }
    };
    text("ruleset", &want.ruleset, &got.ruleset);
    text("addresses", &want.addresses, &got.addresses);
    text("routes", &want.routes, &got.routes);
    for ((k, a), (_, b)) in want.sysctls.iter().zip(&got.sysctls) {
        // Committing a ruleset loads nf_conntrack, whose sysctls then exist
        // in every namespace: a module load, not a setting to take back.
        let loaded = a == ABSENT && k.starts_with("net.netfilter.");
        if a != b && !loaded {
            out.push(format!("sysctl {k}: {a} before, {b} after"));
        }
    }
    if want.sysctls.len() != got.sysctls.len() {
        out.push("the set of sysctls changed".into());
    }
    out
}

fn plan_of(text: &str) -> NodePlan {
    let dep = hafw_model::parse("seed", text).unwrap_or_else(|d| panic!("{d}"));
    node_plan::plan(&dep, NODE).unwrap()
}

/// The seed with another rule set (web-in on 80 and 443) and one more route.
fn v2_text() -> String {
    let text = SEED
        .replace(
            "protocol = \"tcp\"\nports = [80]\naction = \"accept\"",
            "protocol = \"tcp\"\nports = [80, 443]\naction = \"accept\"",
        )
        .replace(
            "[[policy.route]]\ndestination = \"10.0.10.0/24\"\nvia = \"trust\"\n",
            "[[policy.route]]\ndestination = \"10.0.10.0/24\"\nvia = \"trust\"\n\n\
             [[policy.route]]\ndestination = \"10.0.20.0/24\"\nvia = \"trust\"\n",
        );
    assert!(text.contains("[80, 443]") && text.contains("10.0.20.0/24"));
    text
}

/// v2's plan, with the route to the servers moved to another gateway: one
/// route added, one replaced, different rules.
fn v2() -> NodePlan {
    let mut plan = plan_of(&v2_text());
    let servers = plan
        .routes
        .iter_mut()
        .find(|r| r.destination.0.to_string() == "10.0.10.0/24")
        .expect("the servers' route");
    servers.gateway = hafw_model::addr::Ip("10.0.2.254".parse().unwrap());
    plan
}

fn faults() -> Vec<Fault> {
    Step::ALL
        .iter()
        .flat_map(|&step| [false, true].map(|after| Fault { step, after }))
        .collect()
}

fn label(f: Fault) -> String {
    format!(
        "{} ({} its change)",
        f.step.name(),
        if f.after { "after" } else { "before" }
    )
}

#[test]
fn every_failed_apply_leaves_the_kernel_exactly_as_it_was() {
    if !ns_tests_enabled() {
        return;
    }
    let (v1, v2) = (plan_of(SEED), v2());
    let ns = NodeNs::new(&v1);
    ns.apply(&v1, true, None).expect("v1 applies");
    // Give every step of v2 something to change: a sysctl, an ENI
    // address, a conntrack sysctl, forwarding and a floating address that
    // v2 puts back, beside its new rules and routes.
    ns.set("net.ipv4.conf.all.send_redirects", "1");
    ns.set("net.netfilter.nf_conntrack_tcp_loose", "1");
    ns.set("net.ipv4.ip_forward", "0");
    // One interface forwarding on its own: writing ip_forward overwrites
    // it, so the undo must put it back by itself.
    ns.set("net/ipv4/conf/mgmt/forwarding", "1");
    ns.ip(&["addr", "del", "10.0.3.11/24", "dev", "ha2"]);
    ns.ip(&["addr", "del", "10.0.1.100/32", "dev", "untrust"]);
    let before = snapshot(&ns, &[&v1, &v2]);

    let mut failed = vec![];
    let cases = faults();
    for &f in &cases {
        let err = match ns.apply(&v2, true, Some(f)) {
            Ok(_) => panic!("{}: the apply succeeded despite the fault", label(f)),
            Err(e) => e,
        };
        assert!(err.contains("failure injected"), "{}: {err}", label(f));
        let diff = differences(&before, &snapshot(&ns, &[&v1, &v2]));
        println!(
            "{:<40} {}",
            label(f),
            if diff.is_empty() {
                "restored exactly"
            } else {
                "DIFFERS"
            }
        );
        if !diff.is_empty() {
            failed.push(format!("{}:\n{}", label(f), diff.join("\n")));
        }
    }
    println!(
        "failed apply matrix: {} steps x 2 (before, after the change) = {} cases, {} restored exactly",
        Step::ALL.len(),
        cases.len(),
        cases.len() - failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));

    // The control: v2 without a fault changes every part of the snapshot,
    // so the matrix above compared states that an apply does change.
    ns.apply(&v2, true, None).expect("v2 applies");
    let after = snapshot(&ns, &[&v1, &v2]);
    assert_ne!(before.ruleset, after.ruleset);
    assert_ne!(before.addresses, after.addresses);
    assert_ne!(before.routes, after.routes);
    for key in [
        "net.ipv4.ip_forward",
        "net.ipv4.conf.all.send_redirects",
        "net.netfilter.nf_conntrack_tcp_loose",
    ] {
        let value = |s: &Snapshot| s.sysctls.iter().find(|(k, _)| k == key).cloned();
        assert_ne!(value(&before), value(&after), "{key}");
    }
    assert!(after.routes.contains("10.0.20.0/24 via 10.0.2.253"));
    assert!(after.routes.contains("10.0.10.0/24 via 10.0.2.254"));
}

/// Samples (table, ip_forward, table) in a loop until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(bool, bool, bool)>>,
}

impl Sampler {
    fn start(ns: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, name) = (stop.clone(), ns.to_string());
        let thread = std::thread::spawn(move || {
            let ns = NodeNs { name, owned: false };
            let mut samples = vec![];
            while !flag.load(Ordering::SeqCst) {
                let t1 = ns.table_present();
                let f = ns.forwarding();
                let t2 = ns.table_present();
                samples.push((t1, f, t2));
            }
            samples
        });
        Sampler { stop, thread }
    }

    fn stop(self) -> Vec<(bool, bool, bool)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("sampler")
    }
}

#[test]
fn a_start_forwards_only_after_the_ruleset_and_a_failed_start_not_at_all() {
    if !ns_tests_enabled() {
        return;
    }
    let v1 = plan_of(SEED);
    let ns = NodeNs::new(&v1);
    assert!(!ns.forwarding() && !ns.table_present());
    let empty = snapshot(&ns, &[&v1]);
    let mut failed = vec![];
    let cases = faults();
    for &f in &cases {
        let err = ns.apply(&v1, true, Some(f)).err();
        assert!(err.is_some(), "{}: applied despite the fault", label(f));
        let diff = differences(&empty, &snapshot(&ns, &[&v1]));
        let ok = diff.is_empty() && !ns.forwarding() && !ns.table_present();
        println!(
            "{:<40} {}",
            label(f),
            if ok {
                "ip_forward 0, no table, as before"
            } else {
                "DIFFERS"
            }
        );
        if !ok {
            failed.push(format!("{}:\n{}", label(f), diff.join("\n")));
        }
    }
    println!(
        "failed start matrix: {} cases, {} left the namespace as it was (ip_forward 0)",
        cases.len(),
        cases.len() - failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));

    // A start that succeeds: forwarding is never seen on while the table
    // is absent. The table only appears during an apply, so a sample whose
    // last look finds no table while forwarding was on is a violation.
    let sampler = Sampler::start(&ns.name);
    std::thread::sleep(Duration::from_millis(30));
    let applied = ns.apply(&v1, true, None).expect("v1 applies");
    std::thread::sleep(Duration::from_millis(30));
    let samples = sampler.stop();
    let bad = samples.iter().filter(|(_, f, t2)| *f && !*t2).count();
    let on = samples.iter().filter(|(_, f, _)| *f).count();
    println!(
        "start: {} samples, {on} with forwarding on, {bad} with forwarding on and no table",
        samples.len()
    );
    assert!(ns.forwarding() && ns.table_present());
    assert!(on > 0 && samples.len() > on, "the sampler saw both states");
    assert_eq!(bad, 0, "forwarding was on before the ruleset");

    // And the stop: forwarding goes off before the table goes (the table
    // only disappears now, so the first look decides).
    let sampler = Sampler::start(&ns.name);
    std::thread::sleep(Duration::from_millis(30));
    let problems = ns.withdraw(applied);
    std::thread::sleep(Duration::from_millis(30));
    let samples = sampler.stop();
    assert!(problems.is_empty(), "{problems:?}");
    let bad = samples.iter().filter(|(t1, f, _)| *f && !*t1).count();
    println!(
        "stop: {} samples, {bad} with forwarding on and no table",
        samples.len()
    );
    assert_eq!(bad, 0, "forwarding outlived the table");
    assert!(!ns.forwarding() && !ns.table_present());
    assert!(
        ns.forwarding_switches().iter().all(|(_, v)| v == "0"),
        "{:?}",
        ns.forwarding_switches()
    );
}

/// `hafw run --standalone` in `ns`, its standard error to `log`.
fn daemon(ns: &NodeNs, log: &TempFile, config: &TempFile) -> Child {
    // Beside the log, removed with it.
    let audit = format!("{}.audit.jsonl", log.path().display());
    hafw_kernel::command(&ns.name, hafw())
        .unwrap()
        .args([
            "run",
            "--config",
            config.path().to_str().unwrap(),
            "--node",
            NODE,
            "--standalone",
            "--audit-log",
            &audit,
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log.path()).unwrap())
        .spawn()
        .expect("start hafw run")
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("hafw run did not exit in {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_stop_turns_forwarding_off_also_when_it_was_on_before_hafw() {
    if !ns_tests_enabled() {
        return;
    }
    let v1 = plan_of(SEED);
    let ns = NodeNs::new(&v1);
    ns.set("net.ipv4.ip_forward", "1");
    ns.set("net.ipv6.conf.all.forwarding", "1");
    let log = TempFile::new("apply-safety", "stop.log", "");
    let config = example_copy("alicloud-havip.toml");
    let mut child = daemon(&ns, &log, &config);
    let end = Instant::now() + Duration::from_secs(10);
    let text = || std::fs::read_to_string(log.path()).unwrap_or_default();
    while !text().contains("data plane up") {
        assert!(Instant::now() < end, "not up in 10 s:\n{}", text());
        assert!(child.try_wait().unwrap().is_none(), "exited:\n{}", text());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ns.forwarding() && ns.table_present());
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}\n{}", text());
    assert!(!ns.table_present(), "the table outlived the stop");
    assert!(
        ns.forwarding_switches().iter().all(|(_, v)| v == "0"),
        "forwarding on after the stop: {:?}",
        ns.forwarding_switches()
    );
    for line in text().lines().filter(|l| l.contains("forwarding")) {
        println!("{line}");
    }
    assert_eq!(
        ns.get("net.ipv6.conf.all.forwarding"),
        "0",
        "IPv6 forwarding outlived the table"
    );
    assert_eq!(ns.get("net/ipv6/conf/trust/forwarding"), "0");
    assert!(
        text().contains("forwarding was on before hafw started"),
        "the log does not say forwarding was turned off:\n{}",
        text()
    );
}

#[test]
fn a_daemon_killed_at_any_moment_never_forwards_without_the_table() {
    if !ns_tests_enabled() {
        return;
    }
    let v1 = plan_of(SEED);
    let delays = [0u64, 10, 20, 40, 60, 80, 100, 130, 160, 200, 300, 500, 900];
    let (mut killed_forwarding, mut violations) = (0, vec![]);
    for &ms in &delays {
        let ns = NodeNs::new(&v1);
        let log = TempFile::new("apply-safety", "kill.log", "");
        let config = example_copy("alicloud-havip.toml");
        let sampler = Sampler::start(&ns.name);
        let mut child = daemon(&ns, &log, &config);
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        // The kernel keeps what the dead daemon left; sample it a while.
        std::thread::sleep(Duration::from_millis(30));
        let samples = sampler.stop();
        let bad = samples.iter().filter(|(_, f, t2)| *f && !*t2).count();
        let (forwarding, table) = (ns.forwarding(), ns.table_present());
        println!(
            "kill -9 after {ms:>4} ms: {} samples, ip_forward {}, table {}, {bad} samples forwarding without it",
            samples.len(),
            u8::from(forwarding),
            if table { "present" } else { "absent" }
        );
        killed_forwarding += usize::from(forwarding);
        if bad > 0 || (forwarding && !table) {
            violations.push(ms);
        }
    }
    println!(
        "kill -9 matrix: {} kills, {killed_forwarding} left forwarding on, {} forwarding without the table",
        delays.len(),
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "forwarding without the table after kills at {violations:?} ms"
    );
    assert!(
        killed_forwarding > 0,
        "no kill came after forwarding went on"
    );
}

/// Removes a directory tree on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_config_commit_that_fails_late_keeps_the_old_ruleset() {
    if !ns_tests_enabled() {
        return;
    }
    let v1 = plan_of(SEED);
    let ns = NodeNs::new(&v1);
    let dir = TempDir(std::env::temp_dir().join(unique("hafw-apply-safety-")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let config_path = dir.0.join("dep.toml");
    std::fs::write(&config_path, SEED).unwrap();
    // The version file's place is taken by a directory: the new policy is
    // applied to the kernel, then cannot be persisted, so the commit must
    // roll the kernel back.
    let vpath = config::version_path(&config_path, NODE);
    std::fs::create_dir_all(vpath.join("blocker")).unwrap();

    let applied = ns.apply(&v1, false, None).expect("v1 applies as passive");
    let before = snapshot(&ns, &[&v1]);
    let offer = |applied: Applied| {
        let (nsname, path) = (ns.name.clone(), config_path.clone());
        let v1 = v1.clone();
        Netns::open(&nsname)
            .unwrap()
            .run_blocking(move |nl| async move {
                let (ha, mut requests) = tokio::sync::mpsc::unbounded_channel();
                tokio::task::spawn_local(async move {
                    while let Some(r) = requests.recv().await {
                        if let HaRequest::State { reply } = r {
                            let _ = reply.send(hafw_ha::msg::State::Passive);
                        }
                    }
                });
                let view = Arc::new(Mutex::new(ConfigView::default()));
                let env = ConfigEnv {
                    config_path: path,
                    node: NODE.into(),
                    ha_profile: None,
                    names: Default::default(),
                    nl,
                    log: Log::quiet(),
                    ha,
                    sync: None,
                    applied: Arc::new(Mutex::new(applied)),
                    view: view.clone(),
                    audit: hafw_daemon::ops::audit::Audit::off(NODE),
                    hits: None,
                };
                let start = Startup {
                    version: 1,
                    hash: [1; 32],
                    policy: config::policy_text(SEED).unwrap(),
                    text: SEED.into(),
                };
                let mut task = ConfigTask::new(env, start, v1);
                let bytes = config::policy_text(&v2_text()).unwrap().into_bytes();
                task.process(ConfigInput::PeerOffer {
                    version: 2,
                    hash: [2; 32],
                    bytes,
                })
                .await;
                let v = view.lock().unwrap().clone();
                Ok(v)
            })
            .unwrap()
    };
    let view = offer(applied);
    let error = view.error.unwrap_or_default();
    println!("the offer's result: {error}");
    assert_eq!(view.version, 1, "the node left version 1");
    assert!(error.contains("version 2"), "{error}");
    let diff = differences(&before, &snapshot(&ns, &[&v1]));
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    assert!(ns.table_present() && ns.forwarding());

    // The control: with the version file's place free the same offer is
    // applied and the ruleset changes, so the check above could fail.
    std::fs::remove_dir_all(&vpath).unwrap();
    let view = offer(Applied::default());
    assert_eq!(view.version, 2, "{:?}", view.error);
    assert_ne!(before.ruleset, snapshot(&ns, &[&v1]).ruleset);
}
