//! `policy.fastpath` in the lab: long-lived TCP sessions, inbound through
//! the DNAT and outbound through the SNAT, carried by the active's
//! flowtable, survive a planned handover, an instance crash and the
//! failback, with session sync carrying the entries (the flowtable's flows
//! send no conntrack update events).
//!
//! The flowtable is proved to carry them: the active's entries carry the
//! OFFLOAD status bit, and the forward chain's `fastpath_offered` counter
//! grows by far fewer packets than the sessions exchange (offloaded
//! packets skip the chain). The passive's synced copies carry no OFFLOAD
//! bit: they are plain entries its own flowtable takes after a takeover,
//! which is checked after each failover on the new active.
//!
//! A kernel without flowtables (CONFIG_NF_FLOW_TABLE not set) refuses the
//! ruleset: there the test checks that the node does not start and says
//! why (`policy.fastpath = false` as the fix), and prints that the
//! failover part did not run.

mod common;

use std::time::Duration;

use common::*;
use hafw_kernel::conntrack::{status, Conntrack};
use hafw_lab::pair::{Fault, Pair};
use hafw_lab::sessions::Sessions;

/// The sessions test's deployment (an `app` server behind a DNAT of port
/// 7777) with the fast path on.
fn deployment(test: &str) -> TempFile {
    let seed = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    assert!(seed.contains("\n[policy.interface]\n"));
    let seed = seed.replacen(
        "\n[policy.interface]\n",
        "\n[policy]\nfastpath = true\n\n[policy.interface]\n",
        1,
    );
    with_app(&format!("fastpath-{test}"), &seed)
}

const PER_DIRECTION: usize = 10;

/// Whether this kernel has nftables flowtables: a flowtable on a veth in
/// a namespace of the test's own, checked (`nft -c`) and never committed.
fn flowtable_supported() -> bool {
    let ns = unique("ftprobe");
    let sh = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("run ip")
    };
    assert!(sh(&["netns", "add", &ns]).status.success());
    let made = sh(&[
        "-n", &ns, "link", "add", "fta", "type", "veth", "peer", "name", "ftb",
    ]);
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run nft");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(
            b"table inet probe {\n flowtable f {\n  hook ingress priority filter;\n  devices = { fta, ftb };\n }\n}\n",
        );
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    sh(&["netns", "del", &ns]);
    assert!(made.status.success(), "{made:?}");
    ok
}

fn ns_of(pair: &Pair, node: &str) -> String {
    hafw_lab::topology::ns_name(&pair.lab, node)
}

/// The node's conntrack entries of the test's sessions (port 7777 on
/// either side of the NAT), with their status bits.
fn session_entries(pair: &Pair, node: &str) -> Vec<(String, u32)> {
    let mut ct = Conntrack::open(Some(&ns_of(pair, node))).unwrap();
    ct.dump()
        .unwrap()
        .into_iter()
        .filter(|e| e.orig.dst_port == 7777 && e.orig.proto == 6)
        .map(|e| (format!("{} -> {}", e.orig, e.reply), e.status))
        .collect()
}

/// Waits until the node's flowtable holds every session (each entry has
/// OFFLOAD), then checks that the forward chain no longer sees their
/// packets: over one second of exchanges (20 sessions, 100 echoes/s each,
/// 4,000 packets) `fastpath_offered` grows by less than 5% of that.
fn assert_offloaded(pair: &Pair, node: &str, when: &str) {
    let entries = wait_for(
        &format!("{when}: every session offloaded on {node}"),
        Duration::from_secs(10),
        || {
            let e = session_entries(pair, node);
            (e.len() >= 2 * PER_DIRECTION && e.iter().all(|(_, s)| s & status::OFFLOAD != 0))
                .then_some(e)
        },
        || format!("{:#?}", session_entries(pair, node)),
    );
    let ns = ns_of(pair, node);
    let before = nft_counter(&ns, "fastpath_offered");
    std::thread::sleep(Duration::from_secs(1));
    let grew = nft_counter(&ns, "fastpath_offered") - before;
    let exchanged = (2 * PER_DIRECTION * 100 * 2) as u64;
    assert!(
        grew * 20 < exchanged,
        "{when}: {grew} packets went through the forward chain on {node} in 1 s, of about {exchanged} exchanged: the flowtable does not carry them ({} entries offloaded)",
        entries.len()
    );
    eprintln!(
        "{when}: {} sessions offloaded on {node}; forward chain saw {grew} packets of ~{exchanged} in 1 s",
        entries.len()
    );
}

/// The passive's synced copies exist and are plain entries.
fn assert_synced_plain(pair: &Pair, node: &str, when: &str) {
    let entries = wait_for(
        &format!("{when}: every session synced to {node}"),
        Duration::from_secs(10),
        || {
            let e = session_entries(pair, node);
            (e.len() >= 2 * PER_DIRECTION).then_some(e)
        },
        || format!("{:#?}", session_entries(pair, node)),
    );
    let offloaded: Vec<_> = entries
        .iter()
        .filter(|(_, s)| s & status::OFFLOAD != 0)
        .collect();
    assert!(
        offloaded.is_empty(),
        "{when}: the passive {node} holds entries marked OFFLOAD: {offloaded:#?}"
    );
}

#[test]
fn sessions_on_the_fast_path_survive_handover_crash_and_failback() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("fp");
    let file = deployment(&name);
    let start = Pair::start_opts(
        file.path(),
        &name,
        std::path::Path::new(hafw()),
        "fast",
        false,
        &[],
    );
    if !flowtable_supported() {
        let e = match start {
            Ok(_) => panic!("a kernel without flowtables started a fastpath node"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("policy.fastpath = false") && e.contains("CONFIG_NF_FLOW_TABLE"),
            "the refusal does not say what to do: {e}"
        );
        eprintln!(
            "this kernel has no nftables flowtable (CONFIG_NF_FLOW_TABLE): the node refused policy.fastpath and said why; the failover part of this test did NOT run"
        );
        return;
    }
    let mut pair = start.unwrap_or_else(|e| panic!("start the pair: {e}"));
    let first = pair.wait_settled(Duration::from_secs(20)).unwrap();
    pair.wait_ready(Duration::from_secs(20)).unwrap();
    let second = pair.peer_of(&first).unwrap();
    let inbound = Sessions::open(
        &ns_of(&pair, "client"),
        "203.0.113.10:7777".parse().unwrap(),
        PER_DIRECTION,
        Duration::from_millis(10),
    );
    let outbound = Sessions::open(
        &ns_of(&pair, "web"),
        "198.51.100.30:7777".parse().unwrap(),
        PER_DIRECTION,
        Duration::from_millis(10),
    );
    assert_eq!(inbound.opened, PER_DIRECTION, "{:?}", inbound.open_errors);
    assert_eq!(outbound.opened, PER_DIRECTION, "{:?}", outbound.open_errors);
    assert_offloaded(&pair, &first, "at start");
    assert_synced_plain(&pair, &second, "at start");

    // Planned handover: first -> second.
    pair.inject(Fault::Suspend, &first).unwrap();
    assert_eq!(pair.wait_settled(Duration::from_secs(10)).unwrap(), second);
    pair.heal(Fault::Suspend, &first).unwrap();
    pair.wait_ready(Duration::from_secs(20)).unwrap();
    assert_offloaded(&pair, &second, "after the handover");

    // Unplanned: the second instance crashes; first takes over.
    pair.inject(Fault::Crash, &second).unwrap();
    assert_eq!(pair.wait_settled(Duration::from_secs(10)).unwrap(), first);
    assert_offloaded(&pair, &first, "after the crash");
    pair.heal(Fault::Crash, &second).unwrap();
    pair.wait_ready(Duration::from_secs(30)).unwrap();
    // The restarted node got the table by bulk: plain entries.
    assert_synced_plain(&pair, &second, "after the restart");

    // Failback to the restarted node.
    pair.inject(Fault::Suspend, &first).unwrap();
    assert_eq!(pair.wait_settled(Duration::from_secs(10)).unwrap(), second);
    assert_offloaded(&pair, &second, "after the failback");
    pair.heal(Fault::Suspend, &first).unwrap();

    std::thread::sleep(Duration::from_millis(500));
    let results: Vec<_> = inbound
        .finish()
        .into_iter()
        .chain(outbound.finish())
        .collect();
    let failed: Vec<_> = results.iter().filter(|r| r.failure.is_some()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} sessions failed across handover, crash and failback: {:?}",
        failed.len(),
        results.len(),
        failed
            .iter()
            .take(5)
            .map(|r| (&r.local, &r.failure))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "{} sessions (DNAT and SNAT) kept across handover, crash and failback on the fast path",
        results.len()
    );
}
