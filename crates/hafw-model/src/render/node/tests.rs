use super::*;

use crate::examples::ONE_ARM;
use crate::examples::SEED;

fn load(name: &str, text: &str) -> Deployment {
    crate::parse(name, text).unwrap_or_else(|d| panic!("{name} does not load: {d:?}"))
}

fn ip(s: &str) -> Ip {
    s.parse().unwrap()
}

#[test]
fn unknown_node_lists_the_known_ones() {
    let e = plan(&load("seed", SEED), "fw-c").unwrap_err();
    assert!(e.contains("fw-c") && e.contains("fw-a, fw-b"), "{e}");
}

#[test]
fn seed_node_identity_and_ha_endpoints() {
    let p = plan(&load("seed", SEED), "fw-a").unwrap();
    assert_eq!((p.node.as_str(), p.priority), ("fw-a", 200));
    assert_eq!(p.key_file, "/etc/hafw/ha.key");
    assert_eq!(p.peer.as_deref(), Some("fw-b"));
    assert_eq!(p.ha.port, 28_780);
    assert_eq!(
        p.ha.paths,
        [
            HaPath {
                role: EniRole::Management,
                ifname: "mgmt".into(),
                local: ip("10.0.0.11"),
                peer: Some(ip("10.0.0.12")),
            },
            HaPath {
                role: EniRole::Ha2,
                ifname: "ha2".into(),
                local: ip("10.0.3.11"),
                peer: Some(ip("10.0.3.12")),
            },
        ]
    );
    let b = plan(&load("seed", SEED), "fw-b").unwrap();
    assert_eq!(b.peer.as_deref(), Some("fw-a"));
    assert_eq!(b.ha.paths[0].local, ip("10.0.0.12"));
    assert_eq!(b.ha.paths[0].peer, Some(ip("10.0.0.11")));
}

#[test]
fn timers_follow_the_profile_and_explicit_settings_win() {
    let mut dep = load("seed", SEED);
    let t = plan(&dep, "fw-a").unwrap().ha.timers;
    assert_eq!(
        (t.heartbeat_interval_ms, t.miss_count, t.detection_ms()),
        (200, 5, 1000)
    );
    dep.policy.ha.profile = HaProfile::Fast;
    let t = plan(&dep, "fw-a").unwrap().ha.timers;
    assert_eq!(
        (t.heartbeat_interval_ms, t.miss_count, t.detection_ms()),
        (5, 3, 15)
    );
    dep.policy.ha.heartbeat_interval_ms = Some(50);
    let t = plan(&dep, "fw-a").unwrap().ha.timers;
    assert_eq!((t.heartbeat_interval_ms, t.miss_count), (50, 3));
    dep.policy.ha.miss_count = Some(10);
    assert_eq!(plan(&dep, "fw-a").unwrap().ha.timers.detection_ms(), 500);
}

#[test]
fn seed_interfaces_floating_and_routes() {
    let p = plan(&load("seed", SEED), "fw-a").unwrap();
    let names: Vec<&str> = p.interfaces.iter().map(|i| i.ifname.as_str()).collect();
    assert_eq!(names, ["mgmt", "untrust", "trust", "ha2"]);
    let untrust = &p.interfaces[1];
    assert_eq!(untrust.eni, "fw-a-untrust");
    assert_eq!(
        (untrust.address, untrust.prefix_len()),
        (ip("10.0.1.11"), 24)
    );
    assert_eq!(untrust.gateway, ip("10.0.1.253"));
    assert!(!untrust.source_dest_check);
    assert!(p.interfaces[0].source_dest_check);
    assert_eq!(
        p.floating,
        [
            FloatingAddress {
                role: EniRole::Untrust,
                ifname: "untrust".into(),
                address: ip("10.0.1.100"),
            },
            FloatingAddress {
                role: EniRole::Trust,
                ifname: "trust".into(),
                address: ip("10.0.2.100"),
            },
        ]
    );
    assert_eq!(
        p.routes,
        [
            RoutePlan {
                destination: "0.0.0.0/0".parse().unwrap(),
                gateway: ip("10.0.1.253"),
                ifname: "untrust".into(),
            },
            RoutePlan {
                destination: "10.0.10.0/24".parse().unwrap(),
                gateway: ip("10.0.2.253"),
                ifname: "trust".into(),
            },
        ]
    );
}

#[test]
fn an_explicit_gateway_wins() {
    let mut dep = load("seed", SEED);
    dep.policy.routes[1].gateway = Some(ip("10.0.2.1"));
    assert_eq!(
        plan(&dep, "fw-a").unwrap().routes[1].gateway,
        ip("10.0.2.1")
    );
}

#[test]
fn sysctls_cover_forwarding_arp_and_redirects_everywhere() {
    let p = plan(&load("one-arm", ONE_ARM), "fw-b").unwrap();
    let has = |k: &str, v: &str| p.sysctls.iter().any(|s| s.key == k && s.value == v);
    assert!(has("net.ipv4.ip_forward", "1"));
    for scope in ["all", "default", "mgmt", "data", "ha2"] {
        assert!(
            has(&format!("net.ipv4.conf.{scope}.rp_filter"), "2"),
            "{scope}"
        );
        assert!(
            has(&format!("net.ipv4.conf.{scope}.arp_ignore"), "1"),
            "{scope}"
        );
        assert!(
            has(&format!("net.ipv4.conf.{scope}.arp_announce"), "2"),
            "{scope}"
        );
        assert!(
            has(&format!("net.ipv4.conf.{scope}.send_redirects"), "0"),
            "{scope}"
        );
    }
    // The conntrack sysctls come last (they exist once the ruleset loaded
    // nf_conntrack): liberal windows, and no mid-stream pickup.
    let tail: Vec<(&str, &str)> = p.sysctls[p.sysctls.len() - 2..]
        .iter()
        .map(|s| (s.key.as_str(), s.value.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            ("net.netfilter.nf_conntrack_tcp_be_liberal", "1"),
            ("net.netfilter.nf_conntrack_tcp_loose", "0")
        ]
    );
}

#[test]
fn one_arm_has_one_data_interface_and_floating_address() {
    let p = plan(&load("one-arm", ONE_ARM), "fw-a").unwrap();
    let names: Vec<&str> = p.interfaces.iter().map(|i| i.ifname.as_str()).collect();
    assert_eq!(names, ["mgmt", "data", "ha2"]);
    assert_eq!(p.floating.len(), 1);
    assert_eq!(
        (p.floating[0].ifname.as_str(), p.floating[0].address),
        ("data", ip("10.0.1.100"))
    );
    assert!(p
        .routes
        .iter()
        .all(|r| r.ifname == "data" && r.gateway == ip("10.0.1.253")));
}

#[test]
fn a_second_eni_of_a_role_gets_a_numbered_name() {
    let mut dep = load("seed", SEED);
    let mut extra = dep.cloud.instances[0].enis[2].clone();
    extra.name = "fw-a-trust-2".into();
    extra.primary_ip = ip("10.0.2.21");
    dep.cloud.instances[0].enis.push(extra);
    let p = plan(&dep, "fw-a").unwrap();
    assert_eq!(p.interfaces[4].ifname, "trust1");
    assert!(p.interfaces.iter().all(|i| i.ifname.len() <= 15));
    // Both trust interfaces are in the trust zone.
    assert!(p
        .ruleset
        .text
        .contains("\"trust1\" . \"untrust\" : goto trust_to_untrust"));
}

#[test]
fn display_prints_every_section_then_the_ruleset() {
    let p = plan(&load("seed", SEED), "fw-a").unwrap();
    let text = p.to_string();
    let mut at = 0;
    for section in [
        "node fw-a (deployment seed)",
        "high availability",
        "  timers    heartbeat every 200 ms, peer lost after 5 missed (1000 ms); profile default",
        "  path management  mgmt  10.0.0.11  -> 10.0.0.12",
        "interfaces",
        "  untrust  untrust     fw-a-untrust  10.0.1.11/24  gateway 10.0.1.253  source/dest check off",
        "floating addresses (held while active)",
        "  untrust  10.0.1.100/32",
        "routes",
        "  0.0.0.0/0     via 10.0.1.253  dev untrust",
        "sysctls",
        "  net.ipv4.ip_forward = 1",
        "nftables ruleset (table ip hafw)",
    ] {
        let found = text[at..]
            .find(section)
            .unwrap_or_else(|| panic!("`{section}` missing or out of order in:\n{text}"));
        at += found + section.len();
    }
    assert!(text.ends_with(&p.ruleset.text));
    assert_eq!(text, plan(&load("seed", SEED), "fw-a").unwrap().to_string());
}
