//! Loads rendered rulesets into a real kernel: `nft -c -f` (the kernel
//! checks the whole transaction, then aborts it) for the seed, the one-arm
//! example and a 10,000-rule policy, and a real `nft -f`, twice, of the
//! seed's. Every run happens in a fresh network namespace, removed even when
//! the test fails; the host's own ruleset is never touched.
//!
//! Needs root and /usr/sbin/nft. Without them the tests fail and say so,
//! unless HAFW_SKIP_NS_TESTS=1, which makes them print that they skipped.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hafw_model::render::nft::synthetic_deployment;
use hafw_model::render::node;
use hafw_model::spec::{Action, Protocol};
use hafw_model::Deployment;

const NFT: &str = "/usr/sbin/nft";
const SEED: &str = include_str!("../../../examples/alicloud-havip.toml");
const ONE_ARM: &str = include_str!("../../../examples/alicloud-one-arm.toml");

/// A network namespace that exists as long as this value does.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "hafw-nftchk-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run `ip netns add`");
        assert!(
            out.status.success(),
            "`ip netns add {name}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Netns { name }
    }

    /// Runs `nft args..` inside the namespace with `stdin` as input.
    fn nft(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, NFT])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft through `ip netns exec`");
        let mut input = child.stdin.take().expect("nft's stdin");
        input
            .write_all(stdin.as_bytes())
            .expect("write the ruleset to nft");
        drop(input);
        child.wait_with_output().expect("wait for nft")
    }

    /// Feeds `text` to `nft <mode> -f /dev/stdin`; panics with nft's
    /// message (which names the offending line) when it is refused.
    fn load(&self, what: &str, mode: &[&str], text: &str) {
        let mut args = mode.to_vec();
        args.extend(["-f", "/dev/stdin"]);
        let out = self.nft(&args, text);
        assert!(
            out.status.success(),
            "nft refused the {what} ruleset:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn list(&self, args: &[&str]) -> String {
        let out = self.nft(args, "");
        assert!(
            out.status.success(),
            "nft {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let removed = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !removed {
            eprintln!(
                "could not remove network namespace {}; remove it with `ip netns del {}`",
                self.name, self.name
            );
        }
    }
}

/// Whether the namespace tests can run; panics, naming what is missing,
/// when they cannot and the skip was not asked for.
fn can_run(test: &str) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (creating network namespaces needs it)");
    }
    if !std::path::Path::new(NFT).exists() {
        missing.push("/usr/sbin/nft (Debian package `nftables`)");
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("HAFW_SKIP_NS_TESTS").as_deref() == Ok("1") {
        eprintln!(
            "{test}: skipped (HAFW_SKIP_NS_TESTS=1): missing {}",
            missing.join(", ")
        );
        return false;
    }
    panic!(
        "{test} needs {}; run it as root on a host with nft, or set HAFW_SKIP_NS_TESTS=1 to skip it",
        missing.join(" and ")
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn load(name: &str, text: &str) -> Deployment {
    hafw_model::parse(name, text).unwrap_or_else(|d| panic!("{name} does not load: {d:?}"))
}

fn ruleset(dep: &Deployment, node: &str) -> String {
    node::plan(dep, node)
        .unwrap_or_else(|e| panic!("no plan for {node}: {e}"))
        .ruleset
        .text
}

#[test]
fn seed_rulesets_pass_the_kernel_check() {
    if !can_run("seed_rulesets_pass_the_kernel_check") {
        return;
    }
    let dep = load("seed", SEED);
    let ns = Netns::new();
    for n in ["fw-a", "fw-b"] {
        ns.load(&format!("seed {n}"), &["-c"], &ruleset(&dep, n));
    }
}

#[test]
fn one_arm_rulesets_pass_the_kernel_check() {
    if !can_run("one_arm_rulesets_pass_the_kernel_check") {
        return;
    }
    let dep = load("one-arm", ONE_ARM);
    let ns = Netns::new();
    for n in ["fw-a", "fw-b"] {
        ns.load(&format!("one-arm {n}"), &["-c"], &ruleset(&dep, n));
    }
}

#[test]
fn ten_thousand_rules_pass_the_kernel_check() {
    if !can_run("ten_thousand_rules_pass_the_kernel_check") {
        return;
    }
    let started = Instant::now();
    let dep = synthetic_deployment(&load("seed", SEED), 10_000);
    let text = ruleset(&dep, "fw-a");
    let rendered = started.elapsed();
    let ns = Netns::new();
    let started = Instant::now();
    ns.load("10,000-rule", &["-c"], &text);
    eprintln!(
        "10,000 rules: rendered in {rendered:?} ({} kB, {} set elements), nft -c in {:?}",
        text.len() / 1024,
        text.matches(" comment \"rule syn-").count(),
        started.elapsed()
    );
    // The one-arm shape puts all 10,000 in a single zone pair.
    let one_arm = synthetic_deployment(&load("one-arm", ONE_ARM), 10_000);
    ns.load("one-arm 10,000-rule", &["-c"], &ruleset(&one_arm, "fw-a"));
    // The worst case for set placement: one run of 10,000 rules, all of one
    // verdict, whose elements overlap wherever the generator made them.
    let mut one_run = dep.clone();
    for r in &mut one_run.policy.rules {
        r.from = "untrust".into();
        r.to = "trust".into();
        r.action = Action::Accept;
        r.protocol = Protocol::Tcp;
    }
    let started = Instant::now();
    let text = ruleset(&one_run, "fw-a");
    let rendered = started.elapsed();
    let started = Instant::now();
    ns.load("single-run 10,000-rule", &["-c"], &text);
    eprintln!(
        "10,000 rules in one run: rendered in {rendered:?} ({} sets), nft -c in {:?}",
        text.matches("\tset ").count(),
        started.elapsed()
    );
}

#[test]
fn seed_ruleset_loads_and_replaces_itself_atomically() {
    if !can_run("seed_ruleset_loads_and_replaces_itself_atomically") {
        return;
    }
    let dep = load("seed", SEED);
    let text = ruleset(&dep, "fw-a");
    let ns = Netns::new();
    // First load: the table does not exist yet.
    ns.load("seed", &[], &text);
    let first = ns.list(&["list", "table", "inet", "hafw"]);
    for expected in [
        "chain forward",
        "iifname . oifname vmap @zone_pairs",
        "\"untrust\" . \"trust\" : goto untrust_to_trust",
        "dnat ip to 10.0.10.10",
        "snat ip to 10.0.1.100",
        "meta nfproto ipv6 counter name \"ipv6_input_dropped\" drop",
        "counter ipv6_forward_dropped {",
        "comment \"rule web-in\"",
    ] {
        assert!(
            first.contains(expected),
            "`{expected}` missing from the listing:\n{first}"
        );
    }
    // Second load: replaces the table instead of adding rules to it.
    ns.load("seed, again", &[], &text);
    let second = ns.list(&["list", "table", "inet", "hafw"]);
    assert_eq!(first, second, "loading twice changed the table");
    let tables = ns.list(&["list", "tables"]);
    assert_eq!(tables.trim(), "table inet hafw", "only hafw's table exists");
    // A different policy replaces the old one whole.
    let other = ruleset(&synthetic_deployment(&dep, 50), "fw-a");
    ns.load("50-rule", &[], &other);
    let third = ns.list(&["list", "table", "inet", "hafw"]);
    assert!(
        !third.contains("rule web-in") && third.contains("rule syn-00049"),
        "{third}"
    );
}

/// A node upgraded from a version that installed `table ip hafw`: the
/// first load removes it in the same transaction, so the old rules (and
/// their NAT) never run beside the new table.
#[test]
fn the_legacy_ip_table_is_replaced_not_kept_beside() {
    if !can_run("the_legacy_ip_table_is_replaced_not_kept_beside") {
        return;
    }
    let ns = Netns::new();
    ns.load(
        "legacy",
        &[],
        "table ip hafw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n",
    );
    ns.load("seed", &[], &ruleset(&load("seed", SEED), "fw-a"));
    let tables = ns.list(&["list", "tables"]);
    assert_eq!(tables.trim(), "table inet hafw", "{tables}");
}

/// The output chain's metadata rule in a real kernel: in a namespace where
/// 100.100.100.200 is a local address with nothing listening, root's
/// connection reaches the TCP stack (refused by it, not by the ruleset)
/// and `nobody`'s is dropped by the rule and counted.
#[test]
fn only_root_reaches_the_metadata_service() {
    let test = "only_root_reaches_the_metadata_service";
    if !can_run(test) {
        return;
    }
    for tool in ["/usr/bin/curl", "/usr/sbin/runuser"] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{test} needs {tool} (Debian packages curl, util-linux)"
        );
    }
    let dep = load("seed", SEED);
    let ns = Netns::new();
    for args in [
        &["link", "set", "lo", "up"][..],
        &["addr", "add", "100.100.100.200/32", "dev", "lo"][..],
    ] {
        let out = Command::new("ip")
            .args(["-n", &ns.name])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    }
    ns.load("seed", &[], &ruleset(&dep, "fw-a"));
    let refused = |ns: &Netns| -> u64 {
        let l = ns.list(&["list", "counter", "inet", "hafw", "metadata_refused"]);
        l.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packet count in {l}"))
    };
    let curl = |user: Option<&str>| -> Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &ns.name]);
        if let Some(u) = user {
            c.args(["/usr/sbin/runuser", "-u", u, "--"]);
        }
        c.args([
            "/usr/bin/curl",
            "-sS",
            "--max-time",
            "3",
            "http://100.100.100.200/latest/user-data",
        ])
        .output()
        .unwrap()
    };
    let root = curl(None);
    let root_err = String::from_utf8_lossy(&root.stderr);
    assert!(
        root_err.contains("Connection refused") || root_err.contains("Couldn't connect"),
        "root should reach the (empty) port: {root_err}"
    );
    assert_eq!(refused(&ns), 0, "root's packets were counted as refused");
    let nobody = curl(Some("nobody"));
    assert!(
        !nobody.status.success(),
        "nobody reached the metadata service"
    );
    let nobody_err = String::from_utf8_lossy(&nobody.stderr);
    assert!(
        !nobody_err.contains("Connection refused"),
        "nobody's SYN reached the TCP stack: {nobody_err}"
    );
    assert!(refused(&ns) >= 1, "nobody's packets were not counted");
}

/// `policy.fastpath`: the flowtable's devices must exist, so the
/// namespace gets a veth pair named as the plan's interfaces; the ruleset
/// is committed for real and listed back with its flowtable, and the same
/// text in a namespace without the links is refused (the apply order,
/// links before the ruleset, is what makes it load). On a kernel without
/// flowtables (CONFIG_NF_FLOW_TABLE) the test checks instead that the
/// refusal is the flowtable's, and says the load was not tried.
#[test]
fn fastpath_ruleset_loads_with_its_flowtable() {
    if !can_run("fastpath_ruleset_loads_with_its_flowtable") {
        return;
    }
    let mut dep = load("seed", SEED);
    dep.policy.fastpath = true;
    let text = ruleset(&dep, "fw-a");
    let ns = Netns::new();
    let out = Command::new("ip")
        .args(["-n", &ns.name, "link", "add", "untrust", "type", "veth"])
        .args(["peer", "name", "trust"])
        .output()
        .expect("run `ip link add`");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minimal = "table inet probe {\n flowtable f {\n  hook ingress priority filter;\n  devices = { untrust };\n }\n}\n";
    if !ns
        .nft(&["-c", "-f", "/dev/stdin"], minimal)
        .status
        .success()
    {
        let out = ns.nft(&["-f", "/dev/stdin"], &text);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "a kernel that refuses a bare flowtable took the ruleset"
        );
        let first = stderr.lines().next().unwrap_or_default();
        let line: usize = first
            .split(':')
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let at = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
        assert!(
            at.trim_start().starts_with("flowtable "),
            "refused elsewhere than the flowtable: {stderr}"
        );
        eprintln!("this kernel has no nftables flowtable (CONFIG_NF_FLOW_TABLE): the refusal is the flowtable's; the load itself was NOT tried");
        return;
    }
    ns.load("seed fw-a with fastpath", &[], &text);
    let listed = ns.list(&["list", "flowtable", "inet", "hafw", "ft"]);
    assert!(listed.contains("hook ingress"), "{listed}");
    assert!(
        listed.contains("untrust") && listed.contains("trust"),
        "{listed}"
    );
    // Replaced whole again, as every apply does.
    ns.load("seed fw-a with fastpath, again", &[], &text);
    let bare = Netns::new();
    let out = bare.nft(&["-c", "-f", "/dev/stdin"], &text);
    assert!(
        !out.status.success(),
        "a flowtable on missing devices was accepted"
    );
}
