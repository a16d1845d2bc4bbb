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
    assert_eq!((p.node.as_str(), p.ha.priority), ("fw-a", 200));
    assert_eq!((p.ha.node_id, p.ha.peer_id), (1, Some(2)));
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
    assert_eq!((b.ha.node_id, b.ha.peer_id), (2, Some(1)));
    assert_eq!(b.ha.paths[0].local, ip("10.0.0.12"));
    assert_eq!(b.ha.paths[0].peer, Some(ip("10.0.0.11")));
}

fn timers(t: HaTimers) -> (u32, u32, u64) {
    (
        t.heartbeat_interval_ms.get(),
        t.miss_count.get(),
        t.detection_ms(),
    )
}

#[test]
fn timers_follow_the_profile_and_explicit_settings_win() {
    let mut dep = load("seed", SEED);
    let t = plan(&dep, "fw-a").unwrap().ha.timers;
    assert_eq!(timers(t), (200, 5, 1000));
    dep.policy.ha.profile = HaProfile::Fast;
    let t = plan(&dep, "fw-a").unwrap().ha.timers;
    assert_eq!(timers(t), (5, 3, 15));
    dep.policy.ha.profile = HaProfile::Tight;
    let t = plan(&dep, "fw-a").unwrap().ha.timers;
    assert_eq!(timers(t), (2, 3, 6));
    dep.policy.ha.profile = HaProfile::Fast;
    dep.policy.ha.heartbeat_interval_ms = IntervalMs::new(50);
    let t = plan(&dep, "fw-a").unwrap().ha.timers;
    assert_eq!(timers(t).0, 50);
    assert_eq!(timers(t).1, 3);
    dep.policy.ha.miss_count = Count::new(10);
    assert_eq!(plan(&dep, "fw-a").unwrap().ha.timers.detection_ms(), 500);
}

#[test]
fn the_profile_override_replaces_the_files_but_not_explicit_timers() {
    let mut dep = load("seed", SEED);
    let t = plan_with(&dep, "fw-a", Some(HaProfile::Fast), &IfNames::aliases())
        .unwrap()
        .ha
        .timers;
    assert_eq!((t.profile, timers(t)), (HaProfile::Fast, (5, 3, 15)));
    dep.policy.ha.profile = HaProfile::Fast;
    let t = plan_with(&dep, "fw-a", Some(HaProfile::Default), &IfNames::aliases())
        .unwrap()
        .ha;
    assert_eq!(timers(t.timers), (200, 5, 1000));
    // The derived waits follow the timers that run, not the file's.
    assert_eq!(t.takeover_wait, Duration::from_millis(800));
    dep.policy.ha.heartbeat_interval_ms = IntervalMs::new(50);
    let t = plan_with(&dep, "fw-a", Some(HaProfile::Default), &IfNames::aliases())
        .unwrap()
        .ha
        .timers;
    assert_eq!(timers(t), (50, 5, 250));
}

/// A file that sets nothing about HA runs the core's own defaults: one set.
#[test]
fn the_core_config_of_an_unset_file_is_the_cores_default() {
    let mut dep = load("seed", SEED);
    dep.policy.ha = Ha {
        paths: dep.policy.ha.paths.clone(),
        ..Ha::default()
    };
    let p = plan(&dep, "fw-a").unwrap();
    assert_eq!(Config::from(&p.ha), Config::new(1, 200));
    let b = plan(&dep, "fw-b").unwrap();
    assert_eq!(Config::from(&b.ha), Config::new(2, 100));
}

#[test]
fn every_ha_setting_reaches_the_core_config() {
    let text = SEED.replace(
        "[policy.ha]\nprofile = \"default\"",
        "[policy.ha]\nprofile = \"fast\"\nheartbeat_interval_ms = 20\nmiss_count = 4\npreempt = true\npreempt_hold_ms = 1500\npromotion_hold_ms = 250\nflap_limit = { transitions = 2, window_s = 30 }\ngarp = { count = 5, interval_ms = 40 }",
    );
    assert_ne!(text, SEED);
    let p = plan(&load("seed", &text), "fw-b").unwrap();
    let c = Config::from(&p.ha);
    let ms = Duration::from_millis;
    assert_eq!(
        (c.node_id, c.priority, c.preempt, c.paths),
        (2, 100, true, 2)
    );
    assert_eq!((c.heartbeat_interval, c.miss_count), (ms(20), 4));
    assert_eq!((c.preempt_hold, c.promotion_hold), (ms(1500), ms(250)));
    assert_eq!(
        c.flap_limit,
        FlapLimit {
            transitions: 2,
            window: Duration::from_secs(30)
        }
    );
    // The derived waits: 4 intervals with a 500 ms floor; 500 ms; twice
    // the 80 ms detection with a 500 ms floor.
    assert_eq!(
        (c.takeover_wait, c.initial_listen, c.max_detection),
        (ms(500), ms(500), ms(500))
    );
    assert_eq!(c.validate(), Ok(()));
    assert_eq!((p.ha.garp.count, p.ha.garp.interval_ms), (5, 40));
    assert_eq!(p.ha.link_monitors, dep_link_monitors(&text));
}

fn dep_link_monitors(text: &str) -> Vec<crate::spec::LinkMonitor> {
    load("seed", text).policy.ha.link_monitors
}

#[test]
fn slow_timers_stretch_the_derived_waits() {
    let mut dep = load("seed", SEED);
    dep.policy.ha.heartbeat_interval_ms = IntervalMs::new(1000);
    let ha = plan(&dep, "fw-a").unwrap().ha;
    assert_eq!(ha.takeover_wait, Duration::from_secs(4));
    assert_eq!(ha.max_detection, Duration::from_secs(10));
}

#[test]
fn a_lone_node_has_no_peer_id() {
    let mut dep = load("seed", SEED);
    dep.nodes.truncate(1);
    let ha = plan(&dep, "fw-a").unwrap().ha;
    assert_eq!((ha.node_id, ha.peer_id), (1, None));
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
            // The metadata service stays on the management ENI.
            RoutePlan {
                destination: "100.100.100.200/32".parse().unwrap(),
                gateway: ip("10.0.0.253"),
                ifname: "mgmt".into(),
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
    // nf_conntrack): strict windows (synced entries carry their own
    // liberal flag), no mid-stream pickup, and accounting with timestamps
    // for the traffic log.
    let tail: Vec<(&str, &str)> = p.sysctls[p.sysctls.len() - 4..]
        .iter()
        .map(|s| (s.key.as_str(), s.value.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            ("net.netfilter.nf_conntrack_tcp_be_liberal", "0"),
            ("net.netfilter.nf_conntrack_tcp_loose", "0"),
            ("net.netfilter.nf_conntrack_acct", "1"),
            ("net.netfilter.nf_conntrack_timestamp", "1")
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
    let (metadata, policy) = p.routes.split_last().unwrap();
    assert!(policy
        .iter()
        .all(|r| r.ifname == "data" && r.gateway == ip("10.0.1.253")));
    assert_eq!(
        (metadata.destination.to_string(), metadata.ifname.as_str()),
        ("100.100.100.200/32".to_string(), "mgmt")
    );
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
        "  holds     preempt off (hold 60000 ms), promotion hold 0 ms; flap limit 6 promotions in 60 s",
        "  waits     takeover 800 ms, initial listen 500 ms, detection adapts up to 2000 ms",
        "  ids       this node 1, peer 2",
        "  path management  mgmt  10.0.0.11  -> 10.0.0.12",
        "interfaces",
        "  untrust  untrust     fw-a-untrust  10.0.1.11/24  gateway 10.0.1.253  source/dest check off",
        "floating addresses (held while active)",
        "  untrust  10.0.1.100/32",
        "routes",
        "  0.0.0.0/0           via 10.0.1.253  dev untrust",
        "  100.100.100.200/32  via 10.0.0.253  dev mgmt",
        "sysctls",
        "  net.ipv4.ip_forward = 1",
        "nftables ruleset (table inet hafw)",
    ] {
        let found = text[at..]
            .find(section)
            .unwrap_or_else(|| panic!("`{section}` missing or out of order in:\n{text}"));
        at += found + section.len();
    }
    assert!(text.ends_with(&p.ruleset.text));
    assert_eq!(text, plan(&load("seed", SEED), "fw-a").unwrap().to_string());
}

#[test]
fn the_profile_parses_from_its_name_and_nothing_else() {
    for p in HaProfile::ALL {
        assert_eq!(p.as_str().parse::<HaProfile>(), Ok(p));
        assert_eq!(p.to_string(), p.as_str());
    }
    assert_eq!(format!("[{:<8}]", HaProfile::Fast), "[fast    ]");
    let e = "Fast".parse::<HaProfile>().unwrap_err();
    assert_eq!(
        e,
        "unknown HA profile `Fast`: use `default`, `fast` or `tight`"
    );
    assert!("".parse::<HaProfile>().is_err());
}

#[test]
fn non_zero_types_refuse_zero() {
    assert_eq!(IntervalMs::new(0), None);
    assert_eq!(Count::try_from(0).map(u32::from).ok(), None);
    assert_eq!(IntervalMs::try_from(7).map(u32::from), Ok(7));
    assert_eq!(IntervalMs::of(250).duration(), Duration::from_millis(250));
}

#[test]
fn rp_filter_is_strict_where_every_expected_source_is_on_the_link() {
    let rp = |dep: &crate::spec::Deployment, node: &str| -> Vec<(String, String)> {
        plan(dep, node)
            .unwrap()
            .sysctls
            .iter()
            .filter_map(|s| {
                let scope = s.key.strip_prefix("net.ipv4.conf.")?;
                let scope = scope.strip_suffix(".rp_filter")?;
                Some((scope.to_string(), s.value.clone()))
            })
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let dep = load("seed", SEED);
    // The peer's mgmt and HA2 addresses and the default operators (the
    // management vSwitch) are on the link: strict; data interfaces loose.
    assert_eq!(
        rp(&dep, "fw-a"),
        pairs(&[
            ("all", "1"),
            ("default", "1"),
            ("mgmt", "1"),
            ("untrust", "2"),
            ("trust", "2"),
            ("ha2", "1"),
        ])
    );
    // Operators from another network reach mgmt by a route through
    // another interface: loose.
    let mut far = dep.clone();
    far.policy.management.allow = Some(vec!["192.168.50.0/24".parse().unwrap()]);
    assert_eq!(rp(&far, "fw-a")[2], ("mgmt".to_string(), "2".to_string()));
    // A peer whose HA2 ENI is in another vSwitch: loose.
    let mut split = dep.clone();
    split.cloud.instances[1].enis[3].primary_ip = ip("10.0.2.99");
    assert_eq!(rp(&split, "fw-a")[5], ("ha2".to_string(), "2".to_string()));
    // A path monitor through HA2 to an address off the link: loose.
    let mut probe = dep.clone();
    probe
        .policy
        .ha
        .path_monitors
        .push(crate::spec::PathMonitor {
            name: "far".into(),
            via: EniRole::Ha2,
            targets: vec![ip("10.0.10.10")],
            failure: Default::default(),
            interval_ms: crate::spec::IntervalMs::of(100),
            misses: crate::spec::Count::of(3),
        });
    assert_eq!(rp(&probe, "fw-a")[5], ("ha2".to_string(), "2".to_string()));
}
