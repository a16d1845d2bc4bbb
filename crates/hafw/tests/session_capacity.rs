//! `policy.sessions.max` on a running pair: each node sets its namespace's
//! `nf_conntrack_max` to it (or, where the kernel keeps it read-only in a
//! child namespace, as 6.18 does here, says so in its log), and the
//! passive's sync cache holds at most that many sessions, counting what it
//! refused. Only the lab's own namespaces are changed: the hash table
//! (global) is never written from one (`dataplane::sessions`), and the
//! host's values are compared before and after.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::*;
use hafw_kernel::conntrack::{self, status, tcp_state, Conntrack, Entry, TcpInfo, Tuple};
use hafw_lab::pair::Pair;
use hafw_lab::topology::ns_name;

/// Far below the host's default (262,144), so the child namespaces may
/// take it; above what the pair's own flows (heartbeats, HA2) use.
const MAX: usize = 300;
/// More than MAX, injected on the active once its own table is raised.
const INJECT: usize = 450;

fn deployment(test: &str) -> TempFile {
    let seed = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    let at = "[policy.management]\n";
    assert!(seed.contains(at), "the seed has no [policy.management]");
    let text = seed.replacen(at, &format!("[policy.sessions]\nmax = {MAX}\n\n{at}"), 1);
    TempFile::new(&format!("capacity-{test}"), "deployment.toml", &text)
}

fn sysctl(ns: &str, key: &str) -> String {
    hafw_kernel::sysctl::get(Some(ns), key).unwrap_or_else(|e| panic!("{ns} {key}: {e}"))
}

fn entries(n: usize, snat: Ipv4Addr) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let port = 2000 + i as u16;
            let src = Ipv4Addr::new(10, 0, 10, 150);
            let dst = Ipv4Addr::new(198, 51, 100, 250);
            Entry {
                orig: Tuple::tcp(src, port, dst, 443),
                reply: Tuple::tcp(dst, 443, snat, port),
                status: status::SEEN_REPLY | status::ASSURED | status::CONFIRMED,
                timeout: 600,
                mark: 0,
                zone: 0,
                id: None,
                tcp: Some(TcpInfo {
                    state: tcp_state::ESTABLISHED,
                    flags_orig: conntrack::tcp_flags::BE_LIBERAL,
                    flags_reply: conntrack::tcp_flags::BE_LIBERAL,
                    ..Default::default()
                }),
            }
        })
        .collect()
}

#[test]
fn sessions_max_sizes_the_namespace_table_and_bounds_the_sync_cache() {
    if !ns_tests_enabled() {
        return;
    }
    let host_max: usize = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .map(|t| t.trim().parse().unwrap_or(0))
        .unwrap_or(0);
    let host_buckets =
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_buckets").unwrap_or_default();
    assert!(
        host_max > INJECT,
        "the host's nf_conntrack_max ({host_max}) is below the test's"
    );
    let name = unique("cap");
    let file = deployment(&name);
    let pair = Pair::start_opts(
        file.path(),
        &name,
        std::path::Path::new(hafw()),
        "fast",
        false,
        &[],
    )
    .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let active = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    pair.wait_ready(Duration::from_secs(20)).unwrap();
    // Whether this kernel lets a child namespace write nf_conntrack_max at
    // all (6.18 here makes it read-only there): rewriting the value it
    // holds tells, and changes nothing.
    let key = "net.netfilter.nf_conntrack_max";
    for node in [&active, &passive] {
        let ns = ns_name(&pair.lab, node);
        let held = sysctl(&ns, key);
        let log = pair.daemon_log(node);
        if held == MAX.to_string() {
            continue;
        }
        let writable = hafw_kernel::sysctl::set(Some(&ns), key, &held).is_ok();
        assert!(!writable, "{node}'s namespace holds {held}, not {MAX}, though the kernel allows the write; its log:\n{log}");
        assert!(
            log.contains(&format!("{key} stays {held} in this namespace, not {MAX}")),
            "{node} does not say what it could not apply; its log:\n{log}"
        );
    }
    let ss = pair.status(&passive).and_then(|s| s.session_sync).unwrap();
    assert_eq!(ss.max_sessions, MAX as u64, "the passive's cache bound");

    // More sessions than the passive may hold. The active's own table is
    // larger here (the host's value, where the kernel keeps the child's
    // read-only; else raised in its namespace only, as a bigger node would
    // have it).
    let active_ns = ns_name(&pair.lab, &active);
    if sysctl(&active_ns, key) == MAX.to_string() {
        hafw_kernel::sysctl::set(Some(&active_ns), key, "2000").unwrap();
    }
    let snat = pair.dep.external_havip().map(|h| h.ip.0).unwrap();
    let mut ct = Conntrack::open(Some(&active_ns)).unwrap();
    let report = ct.create_batch(&entries(INJECT, snat)).unwrap();
    assert!(
        report.failed.is_empty(),
        "inject: {:?}",
        report.failed.first()
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let (held, full) = loop {
        let ss = pair.status(&passive).and_then(|s| s.session_sync);
        let held = ss.as_ref().map_or(0, |s| s.sessions);
        let full = ss
            .as_ref()
            .and_then(|s| s.drops.get("cache full").copied())
            .unwrap_or(0);
        if full > 0 && held == MAX as u64 || Instant::now() > deadline {
            break (held, full);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        held, MAX as u64,
        "the passive's cache holds at most sessions.max"
    );
    assert!(
        full > 0,
        "refusals past the bound are counted (cache full = {full})"
    );
    drop(pair);
    // Nothing global was touched.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
            .map(|t| t.trim().parse().unwrap_or(0))
            .unwrap_or(0),
        host_max
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_buckets").unwrap_or_default(),
        host_buckets
    );
}
