//! Path monitoring (issue 5): in-process probes from each firewall to the
//! trust vSwitch's gateway through its trust interface. A failing active
//! hands over to a healthy passive; a failing passive becomes
//! non-functional. (A server behind the firewall is not a target a passive
//! can use: the server's replies follow the route table to the active.)

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use hafw_lab::pair::Pair;

fn deployment() -> PathBuf {
    let seed = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    let extra = r#"
[[policy.ha.path_monitor]]
name = "servers"
via = "trust"
targets = ["10.0.2.253"]
failure = "any"
interval_ms = 50
misses = 3
"#;
    let path = std::env::temp_dir().join(format!(
        "hafw-monitors-{}-{}.toml",
        std::process::id(),
        unique("f")
    ));
    std::fs::write(&path, format!("{seed}\n{extra}")).unwrap();
    path
}

/// The VPC stops answering one firewall's probes (its trust address).
fn break_path_of(pair: &Pair, node: &str) {
    let src = pair
        .dep
        .instance(node)
        .unwrap()
        .enis
        .iter()
        .find(|e| e.vswitch == "trust")
        .unwrap()
        .primary_ip;
    let rules = format!(
        "table ip hafw_test_path {{\n  chain probes {{\n    type filter hook input priority 0;\n    ip saddr {src} icmp type echo-request drop\n  }}\n}}\n"
    );
    hafw_kernel::nft::apply(Some(&format!("hafw-{}.vpc", pair.lab)), &rules).unwrap();
}

fn wait_state(pair: &Pair, node: &str, want: &str, timeout: Duration) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if pair.state(node).as_deref() == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{node} is {:?}, expected {want}\n{}",
        pair.state(node),
        pair.status_text(node)
    );
}

#[test]
fn a_failing_path_on_the_active_hands_over_to_the_healthy_passive() {
    if !ns_tests_enabled() {
        return;
    }
    let file = deployment();
    let pair = Pair::start(&file, &unique("pm"), std::path::Path::new(hafw()), "fast").unwrap();
    let active = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    // Healthy probes keep both nodes as they are.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pair.state(&active).as_deref(), Some("active"));
    break_path_of(&pair, &active);
    wait_state(&pair, &active, "non-functional", Duration::from_secs(5));
    assert_eq!(pair.wait_settled(Duration::from_secs(5)).unwrap(), passive);
    let status = pair.status_text(&active);
    // The path's interface as the node found it (the trust ENI's NIC).
    let via = pair.nic(&active, "trust");
    assert!(
        status.contains(&format!("path servers via {via} failed")),
        "{status}"
    );
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_failing_path_on_the_passive_makes_it_non_functional() {
    if !ns_tests_enabled() {
        return;
    }
    let file = deployment();
    let pair = Pair::start(&file, &unique("pp"), std::path::Path::new(hafw()), "fast").unwrap();
    let active = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    break_path_of(&pair, &passive);
    wait_state(&pair, &passive, "non-functional", Duration::from_secs(5));
    // The active is untouched: no HAVIP moved.
    assert_eq!(pair.wait_settled(Duration::from_secs(5)).unwrap(), active);
    let _ = std::fs::remove_file(file);
}
