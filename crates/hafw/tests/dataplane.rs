//! Namespace tests of the node's data plane (issue 4): `hafw run
//! --standalone` inside a lab firewall, carrying the seed's inbound and
//! outbound traffic, dropping and counting what the policy does not allow,
//! refusing a bad ruleset without touching the running one, and changing
//! nothing when applied again.

mod common;

use std::fs::File;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hafw_kernel::nft::{self, Family};
use hafw_kernel::route::{self, Route, MAIN_TABLE};
use hafw_kernel::{addr, sysctl, Netns};

const SEED: &str = "alicloud-havip.toml";
const ONE_ARM: &str = "alicloud-one-arm.toml";

/// `hafw run --standalone` in a firewall's namespace; SIGTERM on drop.
struct Node {
    child: Child,
    log: std::path::PathBuf,
    _config: TempFile,
}

impl Node {
    fn start(lab: &Lab, example_file: &str, node: &str) -> Node {
        let log = std::env::temp_dir().join(format!("hafw-dataplane-{}-{node}.log", lab.name));
        let out = File::create(&log).unwrap();
        let config_copy = example_copy(example_file);
        let config = config_copy.path().to_path_buf();
        let child = hafw_kernel::command(&lab.ns(node), hafw())
            .unwrap()
            .args([
                "run",
                "--config",
                config.to_str().unwrap(),
                "--node",
                node,
                "--standalone",
                "--audit-log",
            ])
            .arg(log.with_extension("audit.jsonl"))
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        Node {
            child,
            log,
            _config: config_copy,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "hafw run did not stop on SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(self.log.with_extension("audit.jsonl"));
    }
}

/// Starts the node and waits until the VPC has moved every HAVIP to it.
fn start_active(lab: &Lab, example_file: &str, havips: &[(&str, &str)]) -> Node {
    let node = Node::start(lab, example_file, "fw-a");
    for (havip, eni) in havips {
        let line = format!("move {havip} - {eni}");
        assert!(
            lab.wait_log(&line, Duration::from_secs(10)),
            "no `{line}` in the HAVIP log:\n{}\nnode log:\n{}",
            lab.log(),
            node.log()
        );
    }
    node
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn exec(lab: &Lab, host: &str, args: &[&str]) -> Output {
    let mut all = vec!["lab", "exec", lab.name.as_str(), host, "--", hafw()];
    all.extend_from_slice(args);
    // A node run here keeps its audit log out of the host's /var/log/hafw.
    let audit = audit_log("dataplane");
    let audit_path = audit.path().display().to_string();
    let traffic = format!("{audit_path}.traffic.jsonl");
    if args.first() == Some(&"run") {
        all.extend(["--audit-log", audit_path.as_str()]);
        if !args.contains(&"--standalone") {
            all.extend(["--traffic-log", traffic.as_str()]);
        }
    }
    run(&all)
}

fn fetch(lab: &Lab, target: &str) -> Output {
    exec(
        lab,
        "client",
        &["lab", "fetch", target, "--timeout-ms", "1500"],
    )
}

fn ask(lab: &Lab, from: &str, target: &str) -> Output {
    exec(lab, from, &["lab", "ask", target, "--timeout-ms", "1500"])
}

fn assert_inbound_and_outbound(lab: &Lab) {
    let inbound = fetch(lab, "203.0.113.10:80");
    assert!(
        inbound.status.success(),
        "inbound fetch failed: {}",
        text(&inbound)
    );
    let body = text(&inbound);
    assert!(body.starts_with("200 "), "{body}");
    assert!(
        body.contains("198.51.100.20"),
        "the server should see the client's public IP: {body}"
    );

    let outbound = ask(lab, "web", "198.51.100.30:7777");
    assert!(
        outbound.status.success(),
        "outbound ask failed: {}",
        text(&outbound)
    );
    assert!(
        text(&outbound).contains("seen 203.0.113.10:"),
        "the internet should see the EIP: {}",
        text(&outbound)
    );
}

fn table(lab: &Lab) -> String {
    nft::list_table(Some(&lab.ns("fw-a")), Family::Inet, "hafw").unwrap()
}

/// Packets counted by the rule with this comment in fw-a's table.
fn counter(lab: &Lab, comment: &str) -> u64 {
    let listing = table(lab);
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("comment \"{comment}\"")))
        .unwrap_or_else(|| panic!("no rule commented `{comment}` in:\n{listing}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "packets")
        .unwrap_or_else(|| panic!("no counter: {line}"));
    words[at + 1].parse().unwrap()
}

/// A listing without packet and byte counts.
fn without_counts(listing: &str) -> String {
    let mut out = Vec::new();
    for line in listing.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut kept = Vec::new();
        let mut i = 0;
        while i < words.len() {
            if words[i] == "packets" && words.get(i + 2) == Some(&"bytes") {
                i += 4;
            } else {
                kept.push(words[i]);
                i += 1;
            }
        }
        out.push(kept.join(" "));
    }
    out.join("\n")
}

fn check(lab: &Lab, example_file: &str) -> Output {
    let config_copy = example_copy(example_file);
    let config = config_copy.path().to_path_buf();
    exec(
        lab,
        "fw-a",
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--node",
            "fw-a",
            "--check",
            "--standalone",
        ],
    )
}

fn with_fw_a<T: Send + 'static, F, Fut>(lab: &Lab, f: F) -> T
where
    F: FnOnce(hafw_kernel::Rtnl) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = hafw_kernel::Result<T>> + 'static,
{
    Netns::open(&lab.ns("fw-a"))
        .unwrap()
        .run_blocking(f)
        .unwrap()
}

/// Addresses of fw-a's interfaces and its main routing table, as text.
fn addresses_and_routes(lab: &Lab) -> String {
    with_fw_a(lab, |nl| async move {
        let mut out = String::new();
        for dev in ["eth0", "eth1", "eth2", "eth3"] {
            out += &format!("{dev}: {:?}\n", addr::list(&nl, dev).await?);
        }
        let mut routes = route::list(&nl, MAIN_TABLE).await?;
        routes.sort_by_key(|r| r.dst);
        out += &format!("{routes:?}\n");
        Ok(out)
    })
}

/// Test 1: the seed's traffic through a standalone fw-a, drops counted,
/// `--check` clean while running and naming a route deleted by hand, and
/// a clean withdrawal on SIGTERM.
#[test]
fn seed_standalone_forwards_counts_drops_and_checks() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(SEED, "dps");
    let mut node = start_active(
        &lab,
        SEED,
        &[("external", "fw-a-untrust"), ("internal", "fw-a-trust")],
    );
    assert_inbound_and_outbound(&lab);

    // To the firewall itself on a port nothing opens: the input chain's
    // default deny drops it. From the server vSwitch, which the security
    // group lets reach the firewall on every port (from the internet the
    // VPC's security group drops it first: only TCP 80 is open there).
    let before = counter(&lab, "input default deny");
    let refused = exec(
        &lab,
        "web",
        &["lab", "fetch", "10.0.2.11:81", "--timeout-ms", "1500"],
    );
    assert!(
        !refused.status.success(),
        "port 81 must not answer: {}",
        text(&refused)
    );
    assert!(
        counter(&lab, "input default deny") > before,
        "{}",
        table(&lab)
    );

    // Forwarded traffic between interfaces no rule connects: the web
    // server's packets to the echo host, sent by fw-a out of its HA2
    // interface (a route the test adds), miss the zone-pair map and hit
    // the forward chain's default drop.
    const NO_PAIR: &str = "default deny: no rule connects these zones";
    let before = counter(&lab, NO_PAIR);
    let detour = Route::new("198.51.100.30/32".parse().unwrap())
        .via("10.0.3.253".parse().unwrap())
        .dev("eth3");
    let r = detour.clone();
    with_fw_a(&lab, move |nl| async move { route::add(&nl, &r).await });
    let dropped = ask(&lab, "web", "198.51.100.30:7777");
    assert!(
        !dropped.status.success(),
        "trust -> ha2 must be dropped: {}",
        text(&dropped)
    );
    assert!(counter(&lab, NO_PAIR) > before, "{}", table(&lab));
    with_fw_a(
        &lab,
        move |nl| async move { route::delete(&nl, &detour).await },
    );
    assert_inbound_and_outbound(&lab);

    let clean = check(&lab, SEED);
    assert!(
        clean.status.success(),
        "--check should find no differences: {}",
        text(&clean)
    );
    assert!(text(&clean).contains("no differences"), "{}", text(&clean));

    let servers = Route::new("10.0.10.0/24".parse().unwrap())
        .via("10.0.2.253".parse().unwrap())
        .dev("eth2");
    with_fw_a(
        &lab,
        move |nl| async move { route::delete(&nl, &servers).await },
    );
    let differs = check(&lab, SEED);
    assert_eq!(differs.status.code(), Some(1), "{}", text(&differs));
    assert!(
        text(&differs).contains("route 10.0.10.0/24 via 10.0.2.253 dev eth2: missing"),
        "{}",
        text(&differs)
    );

    let status = node.stop();
    assert!(
        status.success(),
        "hafw run should exit 0 on SIGTERM: {status}; log:\n{}",
        node.log()
    );
    let ns = lab.ns("fw-a");
    assert!(
        nft::list_table(Some(&ns), Family::Inet, "hafw").is_err(),
        "the table should be withdrawn"
    );
    let left = addresses_and_routes(&lab);
    assert!(
        !left.contains("10.0.1.100") && !left.contains("10.0.2.100"),
        "floating addresses left: {left}"
    );
    assert!(
        left.contains("10.0.1.11/24") && left.contains("10.0.2.11/24"),
        "ENI addresses must stay: {left}"
    );
    assert!(
        !left.contains("0.0.0.0/0"),
        "the default route it added should be gone: {left}"
    );
    assert_eq!(
        sysctl::get(Some(&ns), "net.ipv4.ip_forward").unwrap(),
        "0",
        "forwarding must not outlive the table"
    );
}

/// Test 2: the same traffic in one-arm mode (one data interface).
#[test]
fn one_arm_standalone_forwards_inbound_and_outbound() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(ONE_ARM, "dp1");
    let mut node = start_active(&lab, ONE_ARM, &[("data", "fw-a-data")]);
    assert_inbound_and_outbound(&lab);
    let clean = check(&lab, ONE_ARM);
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(node.stop().success(), "{}", node.log());
}

/// The seed's rendered ruleset with rule `web-in`'s verdict replaced.
fn broken_ruleset(dir: &std::path::Path, name: &str, verdict: &str) -> (std::path::PathBuf, usize) {
    let plan = run(&[
        "plan",
        "node",
        example(SEED).to_str().unwrap(),
        "--node",
        "fw-a",
    ]);
    assert!(plan.status.success());
    let plan = String::from_utf8(plan.stdout).unwrap();
    let (_, ruleset) = plan
        .split_once("nftables ruleset (table inet hafw)\n")
        .unwrap();
    let broken = ruleset.replace(
        "counter accept comment \"rule web-in\"",
        &format!("counter {verdict} comment \"rule web-in\""),
    );
    assert_ne!(broken, ruleset);
    let line = broken
        .lines()
        .position(|l| l.contains("rule web-in"))
        .unwrap()
        + 1;
    let path = dir.join(name);
    std::fs::write(&path, broken).unwrap();
    (path, line)
}

/// Test 3: a ruleset the kernel refuses changes nothing; the error names
/// the rule, and the running ruleset keeps forwarding.
#[test]
fn refused_ruleset_applies_nothing_and_names_the_rule() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(SEED, "dpr");
    let _node = start_active(
        &lab,
        SEED,
        &[("external", "fw-a-untrust"), ("internal", "fw-a-trust")],
    );
    assert_inbound_and_outbound(&lab);
    let before = without_counts(&table(&lab));
    let state = addresses_and_routes(&lab);
    let dir = std::env::temp_dir().join(format!("hafw-dataplane-{}", lab.name));
    std::fs::create_dir_all(&dir).unwrap();
    let config_copy = example_copy(SEED);
    let config = config_copy.path().to_path_buf();

    // A NAT statement in a filter chain passes `nft --check` and is refused
    // by the kernel at commit; a jump to a missing chain fails the check.
    for (name, verdict) in [
        ("snat.nft", "snat ip to 10.0.1.100"),
        ("goto.nft", "goto no_such_chain"),
    ] {
        let (file, line) = broken_ruleset(&dir, name, verdict);
        let out = exec(
            &lab,
            "fw-a",
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--node",
                "fw-a",
                "--standalone",
                "--apply-only",
                "--ruleset",
                file.to_str().unwrap(),
            ],
        );
        let said = text(&out);
        assert!(
            !out.status.success(),
            "{name}: a refused ruleset must fail: {said}"
        );
        assert!(
            said.contains(&format!("refused the ruleset at line {line} (rule web-in)")),
            "{name}: {said}"
        );
        assert!(
            said.contains("the running ruleset is unchanged"),
            "{name}: {said}"
        );
        assert_eq!(
            without_counts(&table(&lab)),
            before,
            "{name}: the live table changed"
        );
        assert_eq!(
            addresses_and_routes(&lab),
            state,
            "{name}: addresses or routes changed"
        );
        assert_inbound_and_outbound(&lab);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Test 4: applying the same config again changes nothing.
#[test]
fn reapplying_the_same_config_changes_nothing() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(SEED, "dpi");
    let config_copy = example_copy(SEED);
    let config = config_copy.path().to_path_buf();
    let apply = || {
        exec(
            &lab,
            "fw-a",
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--node",
                "fw-a",
                "--standalone",
                "--apply-only",
            ],
        )
    };

    let first = apply();
    assert!(first.status.success(), "{}", text(&first));
    // The policy's two routes, and the metadata service's /32 via mgmt,
    // which the lab's instances have from the start (they reach the
    // service by eth0, as an ECS instance does by its DHCP route).
    assert!(
        text(&first).contains("routes: 2 added, 0 replaced, 1 already in place"),
        "{}",
        text(&first)
    );
    let table_before = table(&lab);
    let state_before = addresses_and_routes(&lab);

    let second = apply();
    let said = text(&second);
    assert!(second.status.success(), "{said}");
    for step in [
        "sysctls: 0 of",
        "addresses: 0 of 4 added",
        // The vSwitch routes and the metadata service's /32.
        "routes: 0 added, 0 replaced, 3 already in place",
        "already in place (same listing), not recommitted",
        "floating addresses: 0 of 2 added",
        "nothing changed",
    ] {
        assert!(said.contains(step), "missing `{step}` in:\n{said}");
    }
    assert_eq!(without_counts(&table(&lab)), without_counts(&table_before));
    assert_eq!(addresses_and_routes(&lab), state_before);
    let clean = check(&lab, SEED);
    assert!(clean.status.success(), "{}", text(&clean));
    assert_inbound_and_outbound(&lab);
}

/// A paired start that fails after the data plane was applied (here the
/// status API cannot bind an address the node does not have) hands back
/// everything it applied: no ruleset, the addresses and routes as before,
/// and the error names the step.
#[test]
fn a_start_refused_after_the_apply_leaves_the_kernel_as_it_was() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(SEED, "dpu");
    let before = addresses_and_routes(&lab);
    assert!(
        nft::list_table(Some(&lab.ns("fw-a")), Family::Inet, "hafw").is_err(),
        "a fresh lab instance has no hafw table"
    );
    let key = TempFile::new("dpu", "ha.key", "0123456789abcdef0123456789ABCDEF");
    let token = TempFile::new("dpu", "api.token", "s3cret-token-0123456789");
    for f in [&key, &token] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let control = std::env::temp_dir().join(format!("hafw-{}-dpu.sock", lab.name));
    let config_copy = example_copy(SEED);
    let config = config_copy.path().to_path_buf();
    let out = exec(
        &lab,
        "fw-a",
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--node",
            "fw-a",
            "--ha-profile",
            "fast",
            "--key-file",
            key.path().to_str().unwrap(),
            "--control",
            control.to_str().unwrap(),
            // Documentation range: never an address of the node.
            "--api",
            "192.0.2.1:9000",
            "--api-token-file",
            token.path().to_str().unwrap(),
        ],
    );
    let said = text(&out);
    assert!(!out.status.success(), "the start must fail: {said}");
    assert!(said.contains("data plane up as passive"), "{said}");
    assert!(
        said.contains("192.0.2.1:9000"),
        "the error names the API: {said}"
    );
    assert!(
        nft::list_table(Some(&lab.ns("fw-a")), Family::Inet, "hafw").is_err(),
        "the ruleset was left behind: {said}"
    );
    assert_eq!(addresses_and_routes(&lab), before, "{said}");
    assert!(!control.exists(), "the control socket was left behind");
}

/// `hafw run` refuses a key file that group or others may read, or one too
/// short, before it changes anything, naming the file and the fix; a key
/// from `hafw keygen` (0600, 32 bytes) passes that check.
#[test]
fn a_key_file_others_can_read_or_too_short_is_refused_before_anything_is_applied() {
    use std::os::unix::fs::PermissionsExt;
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(SEED, "dpk");
    let before = addresses_and_routes(&lab);
    let key = TempFile::new("dpk", "ha.key", "");
    std::fs::remove_file(key.path()).unwrap();
    let path = key.path().to_str().unwrap();
    let made = run(&["keygen", path]);
    assert!(made.status.success(), "{}", text(&made));
    let meta = std::fs::metadata(key.path()).unwrap();
    assert_eq!((meta.permissions().mode() & 0o777, meta.len()), (0o600, 32));
    let again = run(&["keygen", path]);
    assert!(!again.status.success(), "keygen overwrote {path}");
    assert!(text(&again).contains("--force"), "{}", text(&again));

    let config_copy = example_copy(SEED);
    let config = config_copy.path().to_path_buf();
    let start = || {
        exec(
            &lab,
            "fw-a",
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--node",
                "fw-a",
                "--key-file",
                path,
            ],
        )
    };
    std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = start();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains(&format!("chmod 600 {path}")), "{said}");
    std::fs::write(key.path(), b"sixteen byte key").unwrap();
    std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = start();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("holds 16 bytes"), "{said}");
    assert!(
        said.contains(&format!("hafw keygen --force {path}")),
        "{said}"
    );
    assert!(
        !said.contains("data plane up"),
        "applied before the key check: {said}"
    );
    assert!(
        nft::list_table(Some(&lab.ns("fw-a")), Family::Ip, "hafw").is_err(),
        "a ruleset was applied: {said}"
    );
    assert_eq!(addresses_and_routes(&lab), before, "{said}");
}
