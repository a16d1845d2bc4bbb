use super::*;
use crate::spec::EniRole;

use crate::examples::SEED;

fn seed() -> Deployment {
    crate::parse("seed", SEED).unwrap()
}

fn with_macs(text: &str) -> Deployment {
    crate::parse("seed", text).unwrap()
}

fn mac(n: u8) -> Mac {
    Mac([0x00, 0x16, 0x3e, 0, 0, n])
}

fn ip(s: &str) -> Ip {
    s.parse().unwrap()
}

fn link(name: &str, m: Option<Mac>, addrs: &[&str]) -> SeenLink {
    SeenLink {
        name: name.into(),
        mac: m,
        addresses: addrs.iter().map(|a| ip(a)).collect(),
    }
}

/// An ECS guest: eth0..eth3 in an order unlike the file's, MACs 1..4,
/// only eth0 up with the management address (DHCP).
fn ecs_links() -> Vec<SeenLink> {
    vec![
        link("lo", None, &["127.0.0.1"]),
        link("eth0", Some(mac(1)), &["10.0.0.11"]),
        link("eth1", Some(mac(2)), &[]),
        link("eth2", Some(mac(3)), &[]),
        link("eth3", Some(mac(4)), &[]),
    ]
}

/// The metadata answers for [`ecs_links`]: eth1 is trust, eth2 ha2,
/// eth3 untrust.
fn ecs_metadata() -> Metadata {
    let mut md = Metadata::default();
    for (m, a) in [
        (1, "10.0.0.11"),
        (2, "10.0.2.11"),
        (3, "10.0.3.11"),
        (4, "10.0.1.11"),
    ] {
        md.primary_ips.insert(mac(m), ip(a));
    }
    md
}

fn names(found: &[Found]) -> Vec<(&str, &str, How)> {
    found
        .iter()
        .map(|f| (f.eni.as_str(), f.ifname.as_str(), f.how))
        .collect()
}

#[test]
fn role_names_win_and_need_no_metadata() {
    let dep = seed();
    let inst = dep.instance("fw-a").unwrap();
    let links: Vec<SeenLink> = ["mgmt", "untrust", "trust", "ha2"]
        .iter()
        .enumerate()
        .map(|(i, n)| link(n, Some(mac(i as u8 + 1)), &[]))
        .collect();
    assert!(!needs_metadata(inst, &links));
    let seen = Seen {
        links,
        metadata: None,
    };
    let found = resolve(inst, &seen).unwrap();
    assert_eq!(
        names(&found),
        [
            ("fw-a-mgmt", "mgmt", How::Alias),
            ("fw-a-untrust", "untrust", How::Alias),
            ("fw-a-trust", "trust", How::Alias),
            ("fw-a-ha2", "ha2", How::Alias),
        ]
    );
}

#[test]
fn file_macs_find_shuffled_links() {
    let text = SEED
        .replace(
            r#"primary_ip = "10.0.1.11", role = "untrust""#,
            r#"primary_ip = "10.0.1.11", mac = "00:16:3e:00:00:04", role = "untrust""#,
        )
        .replace(
            r#"primary_ip = "10.0.2.11", role = "trust""#,
            r#"primary_ip = "10.0.2.11", mac = "00:16:3E:00:00:02", role = "trust""#,
        );
    let dep = with_macs(&text);
    let inst = dep.instance("fw-a").unwrap();
    let links = ecs_links();
    // ha2 has no MAC in the file and no address: the metadata service is
    // needed (mgmt is found by the address DHCP gave eth0).
    assert!(needs_metadata(inst, &links));
    let seen = Seen {
        links,
        metadata: Some(ecs_metadata()),
    };
    let found = resolve(inst, &seen).unwrap();
    assert_eq!(
        names(&found),
        [
            ("fw-a-mgmt", "eth0", How::Address),
            ("fw-a-untrust", "eth3", How::Mac),
            ("fw-a-trust", "eth1", How::Mac),
            ("fw-a-ha2", "eth2", How::Metadata),
        ]
    );
}

#[test]
fn metadata_finds_every_eni_of_a_first_boot() {
    let dep = seed();
    let inst = dep.instance("fw-a").unwrap();
    let seen = Seen {
        links: ecs_links(),
        metadata: Some(ecs_metadata()),
    };
    let found = resolve(inst, &seen).unwrap();
    assert_eq!(
        names(&found),
        [
            ("fw-a-mgmt", "eth0", How::Address),
            ("fw-a-untrust", "eth3", How::Metadata),
            ("fw-a-trust", "eth1", How::Metadata),
            ("fw-a-ha2", "eth2", How::Metadata),
        ]
    );
    let n = if_names(&found);
    assert_eq!(n.get("fw-a-untrust"), Some("eth3"));
    // The node plan then uses the links everywhere.
    let plan = crate::render::node::plan_with(&dep, "fw-a", None, &n).unwrap();
    let ifs: Vec<&str> = plan.interfaces.iter().map(|i| i.ifname.as_str()).collect();
    assert_eq!(ifs, ["eth0", "eth3", "eth1", "eth2"]);
    assert!(
        plan.ruleset.text.contains("\"eth3\""),
        "{}",
        plan.ruleset.text
    );
    assert!(!plan.ruleset.text.contains("iifname \"untrust\""));
    assert_eq!(plan.ifname_of(EniRole::Ha2), Some("eth2"));
    assert!(plan.ha.paths.iter().all(|p| p.ifname.starts_with("eth")));
    assert!(plan.routes.iter().all(|r| r.ifname.starts_with("eth")));
    assert!(plan.floating.iter().all(|f| f.ifname.starts_with("eth")));
}

#[test]
fn addresses_on_links_are_the_last_resort() {
    let dep = seed();
    let inst = dep.instance("fw-a").unwrap();
    let seen = Seen {
        links: vec![
            link("eth0", Some(mac(1)), &["10.0.0.11"]),
            link("eth1", Some(mac(2)), &["10.0.3.11"]),
            link("eth2", Some(mac(3)), &["10.0.1.11"]),
            link("eth3", Some(mac(4)), &["10.0.2.11"]),
        ],
        metadata: Some(Metadata {
            primary_ips: Default::default(),
            problems: vec!["http://100.100.100.200: connection refused".into()],
        }),
    };
    let found = resolve(inst, &seen).unwrap();
    assert_eq!(
        names(&found),
        [
            ("fw-a-mgmt", "eth0", How::Address),
            ("fw-a-untrust", "eth2", How::Address),
            ("fw-a-trust", "eth3", How::Address),
            ("fw-a-ha2", "eth1", How::Address),
        ]
    );
}

#[test]
fn a_missing_eni_names_itself_and_everything_tried() {
    let text = SEED.replace(
        r#"primary_ip = "10.0.3.11", role = "ha2""#,
        r#"primary_ip = "10.0.3.11", mac = "00:16:3e:00:00:09", role = "ha2""#,
    );
    let dep = with_macs(&text);
    let inst = dep.instance("fw-a").unwrap();
    let mut links = ecs_links();
    links.pop(); // eth3 (untrust) is not attached
    let mut md = ecs_metadata();
    md.primary_ips.remove(&mac(3));
    md.problems.push("eth2: 404 Not Found".into());
    let e = resolve(
        inst,
        &Seen {
            links,
            metadata: Some(md),
        },
    )
    .unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    let untrust = &e[0];
    for want in [
        "`fw-a-untrust`",
        "10.0.1.11",
        "no link named `untrust`",
        "no `mac` in the deployment file",
        "eth1 (00:16:3e:00:00:02) -> 10.0.2.11",
        "no local MAC 10.0.1.11",
        "404 Not Found",
        "no link carries 10.0.1.11",
        "set `mac",
    ] {
        assert!(untrust.contains(want), "missing {want:?} in {untrust}");
    }
    let ha2 = &e[1];
    for want in [
        "`fw-a-ha2`",
        "MAC 00:16:3e:00:00:09",
        "no link has MAC 00:16:3e:00:00:09",
    ] {
        assert!(ha2.contains(want), "missing {want:?} in {ha2}");
    }
}

#[test]
fn two_enis_on_one_link_is_refused() {
    // Two ENIs given the same MAC (validation refuses that in a file; a
    // stale metadata answer can do the same).
    let dep = seed();
    let inst = dep.instance("fw-a").unwrap();
    let mut md = ecs_metadata();
    md.primary_ips.insert(mac(3), ip("10.0.3.11"));
    let seen = Seen {
        links: vec![
            link("eth0", Some(mac(1)), &["10.0.0.11"]),
            link("eth1", Some(mac(2)), &["10.0.1.11", "10.0.2.11"]),
            link("eth2", Some(mac(3)), &[]),
        ],
        metadata: Some(Metadata {
            primary_ips: [(mac(1), ip("10.0.0.11")), (mac(3), ip("10.0.3.11"))].into(),
            problems: vec![],
        }),
    };
    let e = resolve(inst, &seen).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("`fw-a-untrust`") && e[0].contains("`fw-a-trust`") && e[0].contains("`eth1`"),
        "{}",
        e[0]
    );
}

#[test]
fn a_role_named_link_with_another_mac_is_a_contradiction() {
    let text = SEED.replace(
        r#"primary_ip = "10.0.1.11", role = "untrust""#,
        r#"primary_ip = "10.0.1.11", mac = "00:16:3e:00:00:04", role = "untrust""#,
    );
    let dep = with_macs(&text);
    let inst = dep.instance("fw-a").unwrap();
    let seen = Seen {
        links: vec![
            link("mgmt", Some(mac(1)), &[]),
            link("untrust", Some(mac(2)), &[]),
            link("trust", Some(mac(3)), &[]),
            link("ha2", Some(mac(5)), &[]),
        ],
        metadata: None,
    };
    let e = resolve(inst, &seen).unwrap_err();
    assert!(
        e[0].contains("link `untrust` has its role name but MAC 00:16:3e:00:00:02"),
        "{e:?}"
    );
}

#[test]
fn which_node_by_metadata_or_address() {
    let dep = seed();
    let by_md = Seen {
        links: ecs_links(),
        metadata: Some(ecs_metadata()),
    };
    assert_eq!(which_node(&dep, &by_md).unwrap(), "fw-a");
    let by_addr = Seen {
        links: vec![link("eth0", Some(mac(1)), &["10.0.0.12"])],
        metadata: None,
    };
    assert_eq!(which_node(&dep, &by_addr).unwrap(), "fw-b");
}

#[test]
fn which_node_refuses_none_and_two() {
    let dep = seed();
    let none = Seen {
        links: vec![link("eth0", Some(mac(1)), &["192.168.9.9"])],
        metadata: Some(Metadata {
            primary_ips: Default::default(),
            problems: vec!["timed out".into()],
        }),
    };
    let e = which_node(&dep, &none).unwrap_err();
    assert!(
        e.contains("192.168.9.9 on eth0") && e.contains("timed out") && e.contains("--node NAME"),
        "{e}"
    );
    let both = Seen {
        links: vec![link("eth0", Some(mac(1)), &["10.0.0.11", "10.0.0.12"])],
        metadata: None,
    };
    let e = which_node(&dep, &both).unwrap_err();
    assert!(e.contains("fw-a and fw-b"), "{e}");
}

#[test]
fn a_second_eni_of_a_role_keeps_its_numbered_alias() {
    let dep = seed();
    let mut inst = dep.instance("fw-a").unwrap().clone();
    let mut extra = inst.enis[2].clone();
    extra.name = "fw-a-trust2".into();
    inst.enis.push(extra);
    assert_eq!(alias(&inst, 2), "trust");
    assert_eq!(alias(&inst, 4), "trust1");
}

/// A restart (after a crash, an upgrade): every ENI already carries its
/// address, so the metadata service is not needed, and not asked.
#[test]
fn a_restart_needs_no_metadata_service() {
    let dep = seed();
    let inst = dep.instance("fw-a").unwrap();
    let mut links = ecs_links();
    for (l, ip) in links.iter_mut().filter(|l| l.name != "lo").zip([
        "10.0.0.11",
        "10.0.2.11",
        "10.0.3.11",
        "10.0.1.11",
    ]) {
        l.addresses = vec![ip.parse().unwrap()];
    }
    assert!(!needs_metadata(inst, &links));
    let found = resolve(
        inst,
        &Seen {
            links,
            metadata: None,
        },
    )
    .unwrap();
    assert!(found.iter().all(|f| f.how == How::Address), "{found:?}");
}
