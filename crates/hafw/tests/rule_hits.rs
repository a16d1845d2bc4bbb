//! Rule hits across the pair (`hafw rules`, issue 17 item 2) in a lab
//! pair: K inbound connections through rule `web-in` show as a pair total
//! of K on either node; a planned failover and M more make K+M; an apply
//! that changes another rule replaces the table (its kernel counter reads
//! 0 again) but the total is carried; the zone pair's default deny counts
//! a denied packet; an unplanned failover (the active's daemon killed)
//! never takes the pair total backwards, and the survivor counts the new
//! connections; the restarted node carries its own totals from its state
//! file.
//!
//! What the ruleset counts: `ct state established,related accept` comes
//! before the zone-pair chains, so `web-in` counts each connection's
//! first packet (the SYN) only: one packet per fetch.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use hafw_lab::pair::{Fault, Pair};
use serde_json::Value;

const SEED: &str = "alicloud-havip.toml";
const SETTLE: Duration = Duration::from_secs(20);
/// Sampling (2 s), sending to the peer (at most 1 s after a change, 5 s
/// periodically) and some slack for a loaded machine.
const SEEN: Duration = Duration::from_secs(20);
const WEB_IN: &str = "rule web-in";
const DENY_OUT: &str = "default deny trust -> untrust";

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn exec(pair: &Pair, host: &str, args: &[&str]) -> Output {
    let mut all = vec!["lab", "exec", pair.lab.as_str(), host, "--", hafw()];
    all.extend_from_slice(args);
    run(&all)
}

fn logs(pair: &Pair) -> String {
    pair.nodes()
        .iter()
        .map(|n| format!("--- {n} daemon log\n{}", pair.daemon_log(n)))
        .collect()
}

/// `n` inbound connections through the EIP, the DNAT and `web-in`; each
/// must succeed at its first try, so the count is exact.
fn fetch(pair: &Pair, n: usize) {
    for i in 0..n {
        let out = exec(
            pair,
            "client",
            &["lab", "fetch", "203.0.113.10:80", "--timeout-ms", "3000"],
        );
        assert!(
            out.status.success() && text(&out).starts_with("200 "),
            "fetch {i}: {}\n{}",
            text(&out),
            logs(pair)
        );
    }
}

/// Waits until traffic passes again after a failover, without touching
/// `web-in`: the outbound echo goes through `servers-out`.
fn outbound_works(pair: &Pair) {
    let end = Instant::now() + SETTLE;
    loop {
        let out = exec(
            pair,
            "web",
            &["lab", "ask", "198.51.100.30:7777", "--timeout-ms", "1000"],
        );
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < end,
            "no outbound traffic: {}\n{}",
            text(&out),
            logs(pair)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rules(pair: &Pair, node: &str) -> Value {
    let out = Command::new(hafw())
        .args(["rules", "--json", "--control"])
        .arg(pair.control(node))
        .output()
        .expect("run hafw rules");
    assert!(out.status.success(), "hafw rules on {node}: {}", text(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("hafw rules --json on {node}: {e}: {}", text(&out)))
}

fn row(v: &Value, key: &str) -> Value {
    v["rules"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["key"] == key))
        .cloned()
        .unwrap_or_else(|| panic!("no row {key} in {v:#}"))
}

fn pair_packets(pair: &Pair, node: &str, key: &str) -> u64 {
    row(&rules(pair, node), key)["pair"]["packets"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until `node` shows a pair total of exactly `want` packets for
/// `key`; a total above it fails at once (counted twice).
fn wait_pair(pair: &Pair, node: &str, key: &str, want: u64) {
    let end = Instant::now() + SEEN;
    loop {
        // A restarted daemon's socket comes up a moment after it starts.
        let up = Command::new(hafw())
            .args(["rules", "--json", "--control"])
            .arg(pair.control(node))
            .output()
            .is_ok_and(|o| o.status.success());
        if !up && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(250));
            continue;
        }
        let got = pair_packets(pair, node, key);
        assert!(
            got <= want,
            "{node}: {key} pair total {got}, more than {want}\n{:#}",
            rules(pair, node)
        );
        if got == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "{node}: {key} pair total {got}, expected {want}\n{:#}\n{}",
            rules(pair, node),
            logs(pair)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn kernel_packets(pair: &Pair, node: &str, comment: &str) -> u64 {
    let ns = format!("hafw-{}.{node}", pair.lab);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "list", "table", "inet", "hafw"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let quoted = format!("comment \"{comment}\"");
    let line = listing
        .lines()
        .find(|l| l.contains(&quoted))
        .unwrap_or_else(|| panic!("{comment} not in {listing}"));
    line.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packets in {line}"))
}

/// The seed with `servers-out` limited to the echo host: another rule than
/// `web-in` changes, and the web server's traffic elsewhere meets the
/// trust -> untrust default deny.
fn narrowed(dir: &Path) -> PathBuf {
    let seed = std::fs::read_to_string(example(SEED)).unwrap();
    let at = "name = \"servers-out\"\nfrom = \"trust\"\nto = \"untrust\"\n";
    assert!(seed.contains(at), "the seed changed: update this test");
    let text = seed.replacen(at, &format!("{at}destination = [\"198.51.100.30\"]\n"), 1);
    let path = dir.join("narrowed.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn rule_hits_are_the_pairs_total_across_failovers_applies_and_restarts() {
    if !ns_tests_enabled() {
        return;
    }
    let mut pair = Pair::start(&example(SEED), &unique("hits"), Path::new(hafw()), "fast")
        .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let a = pair.wait_settled(SETTLE).unwrap();
    let b = pair.peer_of(&a).unwrap();
    pair.wait_ready(SETTLE).unwrap();

    // K connections through the active: pair total K on both nodes.
    const K: u64 = 3;
    fetch(&pair, K as usize);
    wait_pair(&pair, &a, WEB_IN, K);
    wait_pair(&pair, &b, WEB_IN, K);
    let on_b = row(&rules(&pair, &b), WEB_IN);
    assert_eq!(on_b["node"]["packets"], 0, "{on_b:#}");
    assert_eq!(on_b["peer"]["packets"], K, "{on_b:#}");
    assert!(on_b["pair"]["last_hit_ms"].as_u64().is_some(), "{on_b:#}");
    // The text table names the rule.
    let table = Command::new(hafw())
        .args(["rules", "--control"])
        .arg(pair.control(&a))
        .output()
        .unwrap();
    assert!(text(&table).contains("web-in"), "{}", text(&table));
    // Seen with --nocapture (the README's example).
    eprintln!("hafw rules on {a}:\n{}", text(&table));

    // Planned failover, then M more: K+M.
    const M: u64 = 2;
    let at = pair.inject(Fault::Suspend, &a).unwrap();
    pair.wait_moved_to(&b, at, SETTLE).unwrap();
    outbound_works(&pair);
    fetch(&pair, M as usize);
    wait_pair(&pair, &b, WEB_IN, K + M);
    wait_pair(&pair, &a, WEB_IN, K + M);
    pair.heal(Fault::Suspend, &a).unwrap();
    let active = pair.wait_settled(SETTLE).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    pair.wait_ready(SETTLE).unwrap();
    outbound_works(&pair);

    // An apply that changes another rule: the tables are replaced (the
    // kernel's counter of web-in reads 0 again) and the totals carried.
    let before_deny = pair_packets(&pair, &active, DENY_OUT);
    let dir = hafw_lab::lab::state_dir(&pair.lab);
    let file = narrowed(&dir);
    let out = Command::new(hafw())
        .args(["config", "apply"])
        .arg(&file)
        .arg("--control")
        .arg(pair.control(&active))
        .output()
        .unwrap();
    assert!(out.status.success(), "config apply: {}", text(&out));
    let end = Instant::now() + SEEN;
    while pair.status(&passive).map(|s| s.config.version) != Some(1) {
        assert!(Instant::now() < end, "the passive did not take version 1");
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in [&active, &passive] {
        assert_eq!(kernel_packets(&pair, n, WEB_IN), 0, "{n}: not replaced?");
    }
    std::thread::sleep(Duration::from_secs(3));
    for n in [&active, &passive] {
        wait_pair(&pair, n, WEB_IN, K + M);
    }

    // The default deny of trust -> untrust counts a denied packet.
    let denied = exec(
        &pair,
        "web",
        &["lab", "ask", "203.0.113.50:7777", "--timeout-ms", "500"],
    );
    assert!(!denied.status.success(), "{}", text(&denied));
    let end = Instant::now() + SEEN;
    while pair_packets(&pair, &active, DENY_OUT) <= before_deny {
        assert!(
            Instant::now() < end,
            "the default deny did not count: {:#}",
            rules(&pair, &active)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(kernel_packets(&pair, &active, DENY_OUT) >= 1);

    // Unplanned failover: the active's daemon killed. The survivor's pair
    // total never goes below what it showed, and counts the new ones.
    let shown = pair_packets(&pair, &passive, WEB_IN);
    assert_eq!(shown, K + M);
    let at = pair.inject(Fault::Kill, &active).unwrap();
    pair.wait_moved_to(&passive, at, SETTLE).unwrap();
    for _ in 0..8 {
        let now = pair_packets(&pair, &passive, WEB_IN);
        assert!(now >= shown, "went backwards: {now} < {shown}");
        std::thread::sleep(Duration::from_millis(250));
    }
    outbound_works(&pair);
    const N: u64 = 2;
    fetch(&pair, N as usize);
    wait_pair(&pair, &passive, WEB_IN, K + M + N);

    // The killed node comes back: its own totals from its state file and
    // the table it left, the pair's total the same on both.
    pair.heal(Fault::Kill, &active).unwrap();
    pair.wait_settled(SETTLE).unwrap();
    wait_pair(&pair, &active, WEB_IN, K + M + N);
    wait_pair(&pair, &passive, WEB_IN, K + M + N);
    assert!(pair.state_dir(&active).join("rule-hits.json").exists());
    pair.stop().unwrap();
}
