//! The lab rehearses first boot (issue 15, item 4): instances with cloud
//! NIC names and MACs, a metadata service in hardened mode, each node
//! bootstrapped from its rendered user data inside its own file system, and
//! the VPC enforcing the security group rendered from the model.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use hafw_lab::metadata;
use hafw_lab::pair::Pair;
use hafw_lab::topology::{self, Options};

/// (b) A pair boots from first boot and forms: one active, one passive,
/// both ready; the nodes read the metadata service with tokens only.
#[test]
fn a_pair_boots_from_user_data_with_eth_names_and_the_metadata_service() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("fb");
    let pair = Pair::start_first_boot(
        &example("alicloud-havip.toml"),
        &name,
        Path::new(hafw()),
        "fast",
        &[],
    )
    .expect("the pair starts from first boot");
    pair.wait_ready(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", pair.status_text("fw-b")));
    let mut states: Vec<String> = pair
        .nodes()
        .iter()
        .map(|n| pair.state(n).unwrap_or_default())
        .collect();
    states.sort();
    assert_eq!(states, ["active", "passive"]);

    // The instances' NICs carry cloud names and their ENIs' MACs; the
    // secondary ones were configured by hafw, not by the lab.
    for n in pair.nodes() {
        let ns = topology::ns_name(&name, &n);
        let links = hafw_kernel::command(&ns, "ip")
            .unwrap()
            .args(["-o", "link", "show"])
            .output()
            .unwrap();
        let links = String::from_utf8_lossy(&links.stdout).to_string();
        for p in pair.topology.ports.iter().filter(|p| p.instance == n) {
            let mac = p
                .mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":");
            let line = links
                .lines()
                .find(|l| l.contains(&format!(" {}@", p.dev)))
                .unwrap_or_else(|| panic!("no {} on {n}: {links}", p.dev));
            assert!(line.contains(&mac), "{} on {n} lacks {mac}: {line}", p.dev);
        }
        assert!(
            !links.contains(" mgmt@") && !links.contains(" untrust@"),
            "{links}"
        );
        // Each node's files are in its own instance directory, not the host's.
        let conf = pair.node_config(&n);
        assert!(
            conf.starts_with(hafw_lab::lab::state_dir(&name)),
            "{}",
            conf.display()
        );
        assert!(std::fs::read_to_string(&conf).unwrap().contains("[[node]]"));
        assert!(pair.control(&n).exists());
        let boot = std::fs::read_to_string(
            hafw_lab::lab::state_dir(&name).join(format!("{n}.bootstrap.log")),
        )
        .unwrap();
        assert!(boot.contains("HAFW_BOOTSTRAP_NO_START=1"), "{boot}");
    }
    assert!(
        !Path::new("/etc/hafw/deployment.toml").exists()
            || std::env::var("HAFW_HOST_HAS_HAFW").is_ok()
    );

    // The metadata service: hardened mode was on, nothing was refused for
    // lack of a token, and the nodes read their ENIs' addresses from it.
    let counts = metadata::read_counts(&name);
    let sum = |f: &dyn Fn(&str, u16, &str) -> bool| -> u64 {
        counts
            .iter()
            .filter(|(_, m, c, p)| f(m, *c, p))
            .map(|(n, ..)| n)
            .sum()
    };
    assert!(
        sum(&|m, c, p| m == "PUT" && c == 200 && p == "/latest/api/token") >= 4,
        "{counts:?}"
    );
    assert!(
        sum(&|m, c, p| m == "GET" && c == 200 && p.ends_with("/primary-ip-address")) >= 2,
        "the nodes did not find their ENIs through the metadata service: {counts:?}"
    );
    assert!(sum(&|m, c, p| m == "GET" && c == 200 && p == "/latest/user-data") >= 2);
    assert_eq!(
        sum(&|_, c, _| c == 401),
        0,
        "a read without a token: {counts:?}"
    );
    pair.stop().unwrap();
}

/// (a) Without the security group's TCP rule for the HA port (HA2: session
/// and config sync), the passive never becomes ready, status says why, and
/// the VPC counts the drops.
#[test]
fn without_the_ha2_tcp_rule_the_passive_never_becomes_ready() {
    if !ns_tests_enabled() {
        return;
    }
    let file = example("alicloud-havip.toml");
    let dep = hafw_model::parse("seed", &std::fs::read_to_string(&file).unwrap()).unwrap();
    let port = dep.policy.ha.port;
    let mut rules = hafw_model::render::security_group::ingress(&dep);
    let before = rules.len();
    rules.retain(|r| !(r.proto == "tcp" && r.ports.is_some_and(|p| p.first == port)));
    assert!(
        rules.len() < before,
        "the rendered group has no TCP rule for HA port {port}"
    );
    let opts = Options {
        first_boot: true,
        security_group: Some(rules),
        ..Options::default()
    };
    let name = unique("sg");
    let pair = Pair::start_lab(
        &file,
        &name,
        Path::new(hafw()),
        "fast",
        false,
        &[],
        &[],
        &opts,
    )
    .expect("one node still becomes active");
    let err = pair
        .wait_ready(Duration::from_secs(8))
        .expect_err("a passive became ready without HA2");
    let active = pair.owner().expect("an owner");
    let passive = pair.peer_of(&active).unwrap();
    assert!(err.to_string().contains(&passive), "{err}");
    let st = pair.status(&passive).expect("the passive answers");
    assert_eq!(st.state, "passive");
    assert!(!st.ready());
    let text = pair.status_text(&passive);
    assert!(
        text.contains("NOT READY"),
        "status does not say it is not ready: {text}"
    );
    let dropped: u64 = hafw_lab::lab::sg_counters(&name)
        .unwrap()
        .into_iter()
        .filter(|(n, _)| n == topology::SG_DROPPED)
        .map(|(_, v)| v)
        .sum();
    assert!(dropped > 0, "the VPC counted no drop");
    eprintln!("not ready as expected: {err}\n{text}\nsecurity group drops: {dropped}");
    pair.stop().unwrap();
}
