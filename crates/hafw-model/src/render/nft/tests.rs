use super::*;
use super::{compile, probe};
use crate::render::node;
use crate::spec::{Action, Protocol, Rule};

use crate::examples::ONE_ARM;
use crate::examples::SEED;

fn load(name: &str, text: &str) -> Deployment {
    crate::parse(name, text).unwrap_or_else(|d| panic!("{name} does not load: {d:?}"))
}

fn text(dep: &Deployment, node: &str) -> String {
    node::plan(dep, node).unwrap().ruleset.text
}

/// The trimmed lines of a chain, set or map block, without its braces.
fn block<'t>(text: &'t str, header: &str) -> Vec<&'t str> {
    let mut lines = text.lines().map(str::trim);
    assert!(
        lines.any(|l| l == format!("{header} {{")),
        "no `{header}` in:\n{text}"
    );
    let mut depth = 0;
    lines
        .take_while(|l| {
            if l.ends_with('{') {
                depth += 1;
            }
            if *l == "}" {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            true
        })
        .collect()
}

fn rule(name: &str, action: Action, protocol: Protocol, dst: &str, ports: &[u16]) -> Rule {
    Rule {
        name: name.into(),
        from: "untrust".into(),
        to: "trust".into(),
        source: Vec::new(),
        destination: vec![dst.parse().unwrap()],
        protocol,
        ports: ports
            .iter()
            .map(|&p| crate::spec::PortRange { first: p, last: p })
            .collect(),
        action,
        log: false,
    }
}

fn with_rules(rules: Vec<Rule>) -> Deployment {
    let mut dep = load("seed", SEED);
    dep.policy.rules = rules;
    dep
}

#[test]
fn seed_replaces_the_table_atomically() {
    let t = text(&load("seed", SEED), "fw-a");
    let statements: Vec<&str> = t.lines().filter(|l| !l.starts_with('#')).take(5).collect();
    // The table of earlier versions (`ip hafw`) goes in the same
    // transaction, so an upgraded node never runs both.
    assert_eq!(
        statements,
        [
            "table ip hafw {}",
            "delete table ip hafw",
            "table inet hafw {}",
            "delete table inet hafw",
            "table inet hafw {"
        ]
    );
    assert!(t.ends_with("}\n"));
}

#[test]
fn seed_dispatches_zone_pairs_through_a_verdict_map() {
    let t = text(&load("seed", SEED), "fw-a");
    assert_eq!(
        block(&t, "map zone_pairs"),
        [
            "type ifname . ifname : verdict",
            "elements = {",
            "\"untrust\" . \"trust\" : goto untrust_to_trust,",
            "\"trust\" . \"untrust\" : goto trust_to_untrust,",
            "}",
        ]
    );
    assert_eq!(
        block(&t, "chain forward"),
        [
            "type filter hook forward priority filter; policy drop;",
            "meta nfproto ipv6 counter name \"ipv6_forward_dropped\" drop comment \"ipv6 through the node\"",
            "ct state established,related counter accept",
            "ct state invalid counter drop",
            "iifname . oifname vmap @zone_pairs",
            "counter drop comment \"default deny: no rule connects these zones\"",
        ]
    );
    assert_eq!(
        block(&t, "chain untrust_to_trust"),
        [
            "ip daddr 10.0.10.10 tcp dport 80 counter accept comment \"rule web-in\"",
            "counter log prefix \"default deny untrust -> trust\" group 17 drop comment \"default deny untrust -> trust\"",
        ]
    );
    assert_eq!(
        block(&t, "chain trust_to_untrust"),
        [
            "ip saddr 10.0.10.0/24 counter accept comment \"rule servers-out\"",
            "counter log prefix \"default deny trust -> untrust\" group 17 drop comment \"default deny trust -> untrust\"",
        ]
    );
}

#[test]
fn seed_input_admits_only_the_peer_on_its_own_interfaces() {
    let t = text(&load("seed", SEED), "fw-a");
    let input = block(&t, "chain input");
    assert_eq!(
        input[0],
        "type filter hook input priority filter; policy drop;"
    );
    let established = input
        .iter()
        .position(|l| *l == "ct state established,related counter accept")
        .unwrap();
    // Only rate limits come before conntrack.
    assert!(input[1..established]
        .iter()
        .all(|l| l.contains(" limit rate over ")));
    assert!(input.contains(&"iifname \"lo\" counter accept"));
    assert!(input.contains(&"icmp type echo-request counter accept"));
    assert!(input.contains(
        &"ip saddr . iifname { 10.0.0.12 . \"mgmt\", 10.0.3.12 . \"ha2\" } meta l4proto { tcp, udp } th dport 28780 counter accept comment \"ha peer\""
    ));
    assert_eq!(
        input.last(),
        Some(&"counter drop comment \"input default deny\"")
    );
    // fw-b admits fw-a, not itself.
    let b = text(&load("seed", SEED), "fw-b");
    assert!(
        b.contains("{ 10.0.0.11 . \"mgmt\", 10.0.3.11 . \"ha2\" }"),
        "{b}"
    );
}

#[test]
fn seed_nat_chains() {
    let t = text(&load("seed", SEED), "fw-a");
    assert_eq!(
        block(&t, "chain prerouting"),
        [
            "type nat hook prerouting priority dstnat; policy accept;",
            "ip daddr 10.0.1.100 tcp dport 80 counter dnat ip to 10.0.10.10 comment \"dnat web\"",
        ]
    );
    assert_eq!(
        block(&t, "chain postrouting"),
        [
            "type nat hook postrouting priority srcnat; policy accept;",
            "oifname \"untrust\" ip saddr 10.0.10.0/24 ip daddr != 10.0.0.0/16 ct status & dnat == 0 counter snat ip to 10.0.1.100 comment \"snat servers\"",
        ]
    );
}

#[test]
fn one_arm_shares_the_data_interface() {
    let t = text(&load("one-arm", ONE_ARM), "fw-a");
    assert_eq!(
        block(&t, "map zone_pairs")[2],
        "\"data\" . \"data\" : goto data_to_data,"
    );
    let chain = block(&t, "chain data_to_data");
    // Both rules accept but differ in protocol: two runs, order kept.
    assert_eq!(
        chain,
        [
            "ip daddr 10.0.10.10 tcp dport 80 counter accept comment \"rule web-in\"",
            "ip saddr 10.0.10.0/24 counter accept comment \"rule servers-out\"",
            "counter log prefix \"default deny data -> data\" group 17 drop comment \"default deny data -> data\"",
        ]
    );
    // Inbound DNAT'd traffic leaves by the same interface with a server as
    // destination: inside the VPC, so the SNAT never applies to it.
    assert!(t.contains(
        "oifname \"data\" ip saddr 10.0.10.0/24 ip daddr != 10.0.0.0/16 ct status & dnat == 0 counter snat ip to 10.0.1.100 comment \"snat servers\""
    ));
    assert!(t.contains(
        "ip daddr 10.0.1.100 tcp dport 80 counter dnat ip to 10.0.10.10 comment \"dnat web\""
    ));
}

#[test]
fn runs_of_one_verdict_become_sets_and_keep_their_order() {
    let mut rules: Vec<Rule> = (0..5)
        .map(|i| {
            rule(
                &format!("a{i}"),
                Action::Accept,
                Protocol::Tcp,
                &format!("10.0.10.{i}"),
                &[80, 443],
            )
        })
        .collect();
    rules.push(rule(
        "block",
        Action::Drop,
        Protocol::Tcp,
        "10.0.10.0/24",
        &[],
    ));
    rules.extend((5..8).map(|i| {
        rule(
            &format!("a{i}"),
            Action::Accept,
            Protocol::Tcp,
            &format!("10.0.10.{i}"),
            &[22],
        )
    }));
    let t = text(&with_rules(rules), "fw-a");
    let chain = block(&t, "chain untrust_to_trust");
    assert_eq!(
        chain,
        [
            "meta l4proto tcp ip saddr . ip daddr . th dport @untrust_to_trust_g1 counter accept comment \"rules a0 .. a4 (5 rules)\"",
            "meta l4proto tcp ip daddr 10.0.10.0/24 counter drop comment \"rule block\"",
            "meta l4proto tcp ip saddr . ip daddr . th dport @untrust_to_trust_g3 counter accept comment \"rules a5 .. a7 (3 rules)\"",
            "counter log prefix \"default deny untrust -> trust\" group 17 drop comment \"default deny untrust -> trust\"",
        ]
    );
    let set = block(&t, "set untrust_to_trust_g1");
    assert_eq!(
        &set[..3],
        [
            "type ipv4_addr . ipv4_addr . inet_service",
            "flags interval",
            "counter"
        ]
    );
    assert_eq!(
        set.iter()
            .filter(|l| l.contains(" comment \"rule a"))
            .count(),
        10
    );
    assert!(set.contains(&"0.0.0.0/0 . 10.0.10.3 . 443 comment \"rule a3\","));
    let g3 = block(&t, "set untrust_to_trust_g3");
    assert!(g3.contains(&"0.0.0.0/0 . 10.0.10.7 . 22 comment \"rule a7\","));
}

#[test]
fn verdicts_alternating_stay_single_rules_in_order() {
    let rules = vec![
        rule("r1", Action::Accept, Protocol::Udp, "10.0.10.1", &[53]),
        rule("r2", Action::Reject, Protocol::Tcp, "10.0.10.2", &[25]),
        rule("r3", Action::Reject, Protocol::Icmp, "10.0.10.3", &[]),
        rule("r4", Action::Accept, Protocol::Any, "10.0.10.4", &[53]),
    ];
    let t = text(&with_rules(rules), "fw-a");
    assert_eq!(
        block(&t, "chain untrust_to_trust"),
        [
            "ip daddr 10.0.10.1 udp dport 53 counter accept comment \"rule r1\"",
            "ip daddr 10.0.10.2 tcp dport 25 counter reject with tcp reset comment \"rule r2\"",
            "meta l4proto icmp ip daddr 10.0.10.3 counter reject with icmpx type admin-prohibited comment \"rule r3\"",
            "meta l4proto { tcp, udp } ip daddr 10.0.10.4 th dport 53 counter accept comment \"rule r4\"",
            "counter log prefix \"default deny untrust -> trust\" group 17 drop comment \"default deny untrust -> trust\"",
        ]
    );
}

#[test]
fn any_with_ports_keys_the_set_on_the_protocol() {
    let rules = vec![
        rule("d1", Action::Accept, Protocol::Any, "10.0.10.1", &[53]),
        rule("d2", Action::Accept, Protocol::Any, "10.0.10.2", &[53]),
    ];
    let t = text(&with_rules(rules), "fw-a");
    let set = block(&t, "set untrust_to_trust_g1");
    assert_eq!(
        set[0],
        "type ipv4_addr . ipv4_addr . inet_proto . inet_service"
    );
    assert!(set.contains(&"0.0.0.0/0 . 10.0.10.2 . udp . 53 comment \"rule d2\","));
    assert!(t.contains(
        "ip saddr . ip daddr . meta l4proto . th dport @untrust_to_trust_g1 counter accept"
    ));
}

#[test]
fn overlapping_elements_never_share_a_set() {
    // Inside an earlier element: dropped, the earlier one decides.
    assert_eq!(
        probe::shard_sizes(&[
            ("10.0.0.0/24", "10.1.0.1/32", 80, 80),
            ("10.0.0.64/26", "10.1.0.1/32", 80, 80)
        ]),
        [1]
    );
    // A later, wider element would swallow the earlier one's corners.
    assert_eq!(
        probe::shard_sizes(&[
            ("10.0.0.64/26", "10.1.0.1/32", 80, 80),
            ("10.0.0.0/24", "10.1.0.1/32", 80, 80)
        ]),
        [1, 1]
    );
    // Same start, different end: the kernel refuses it in one set.
    assert_eq!(
        probe::shard_sizes(&[
            ("10.0.0.0/24", "10.1.0.0/24", 80, 90),
            ("10.0.0.0/24", "10.1.0.0/24", 80, 95)
        ]),
        [1, 1]
    );
    // Crossing without a corner inside: the kernel accepts it.
    assert_eq!(
        probe::shard_sizes(&[
            ("10.0.0.0/24", "10.1.0.0/24", 80, 90),
            ("10.0.0.64/26", "10.1.0.128/25", 70, 95)
        ]),
        [2]
    );
    // Disjoint elements all fit, and a later one returns to the first set.
    assert_eq!(
        probe::shard_sizes(&[
            ("10.0.0.1/32", "0.0.0.0/0", 0, 65535),
            ("0.0.0.0/0", "0.0.0.0/0", 0, 65535),
            ("10.0.0.2/32", "10.1.0.1/32", 22, 22),
        ]),
        [1, 1]
    );
}

#[test]
fn compiled_chains_decide_every_packet_as_the_rules_do() {
    let dep = synthetic_deployment(&load("seed", SEED), 3_000);
    let plan = node::plan(&dep, "fw-a").unwrap();
    let zones = zone_interfaces(&dep, &plan.interfaces).unwrap();
    let pairs = compile::zone_pairs(&dep, &zones).unwrap();
    let mut seen = [0usize; 4];
    for pair in &pairs {
        let rules: Vec<&Rule> = dep
            .policy
            .rules
            .iter()
            .filter(|r| r.from == pair.from && r.to == pair.to)
            .collect();
        let steps = compile::steps(pair);
        for k in 0..4_000u64 {
            let p = packet(&rules, k);
            let want = probe::linear(&rules, &p);
            assert_eq!(
                probe::compiled(&steps, &p),
                want,
                "{p:?} in {} -> {}",
                pair.from,
                pair.to
            );
            seen[match want {
                None => 0,
                Some(Action::Accept) => 1,
                Some(Action::Drop) => 2,
                Some(Action::Reject) => 3,
            }] += 1;
        }
    }
    // The packets exercised every outcome, or the comparison proves little.
    assert!(seen.iter().all(|&n| n > 100), "{seen:?}");
}

/// A packet aimed near one of the rules, so most packets hit something and
/// many hit overlapping rules.
fn packet(rules: &[&Rule], k: u64) -> probe::Packet {
    let h = synthetic::mix(k ^ 0xabcdef);
    let r = rules[(h % rules.len() as u64) as usize];
    let inside = |list: &[crate::addr::Prefix], salt: u64, fallback: u32| {
        let base = list.first().map_or(fallback, |p| u32::from(p.0.network()));
        let size = list
            .first()
            .map_or(1 << 16, |p| 1u64 << (32 - p.0.prefix_len()));
        std::net::Ipv4Addr::from(base.wrapping_add((synthetic::mix(k ^ salt) % size) as u32))
    };
    let proto = match (r.protocol, (h >> 40) % 8) {
        (_, 0) => 1,
        (_, 1) => 17,
        (Protocol::Tcp, _) => 6,
        (Protocol::Udp, _) => 17,
        (Protocol::Icmp, _) => 1,
        (Protocol::Any, n) => [6, 17, 1][(n % 3) as usize],
    };
    let dport = match r.ports.first() {
        Some(p) if (h >> 50) & 3 != 0 => p.first,
        _ => [22, 53, 80, 443, 3306, 8080][((h >> 52) % 6) as usize],
    };
    probe::Packet {
        src: inside(
            &r.source,
            1,
            u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)),
        ),
        dst: inside(
            &r.destination,
            2,
            u32::from(std::net::Ipv4Addr::new(10, 0, 10, 0)),
        ),
        proto,
        dport,
    }
}

#[test]
fn ten_thousand_rules_compile_to_few_chain_rules() {
    let dep = synthetic_deployment(&load("seed", SEED), 10_000);
    let t = text(&dep, "fw-a");
    let chain_rules: usize = ["chain untrust_to_trust", "chain trust_to_untrust"]
        .iter()
        .map(|c| block(&t, c).len())
        .sum();
    assert!(
        chain_rules < 2_000,
        "{chain_rules} chain rules for 10,000 policy rules"
    );
    assert!(t.matches(" @").count() > 100, "grouped runs use sets");
}

#[test]
fn rendering_is_deterministic() {
    let dep = synthetic_deployment(&load("seed", SEED), 500);
    assert_eq!(text(&dep, "fw-a"), text(&dep, "fw-a"));
}

#[test]
fn dangling_references_are_errors_not_missing_rules() {
    let mut bad = rule(
        "to-nowhere",
        Action::Accept,
        Protocol::Tcp,
        "10.0.10.1",
        &[80],
    );
    bad.to = "dmz".into();
    let e = node::plan(&with_rules(vec![bad]), "fw-a").unwrap_err();
    assert!(
        e.contains("rule `to-nowhere`") && e.contains("zone `dmz`"),
        "{e}"
    );

    let icmp = rule("ping", Action::Accept, Protocol::Icmp, "10.0.10.1", &[7]);
    let e = node::plan(&with_rules(vec![icmp]), "fw-a").unwrap_err();
    assert!(e.contains("rule `ping`") && e.contains("icmp"), "{e}");
}

#[test]
fn ipv6_reaches_only_neighbour_discovery_and_is_counted() {
    let t = text(&load("seed", SEED), "fw-a");
    for name in counters::ALL {
        assert!(t.contains(&format!("\tcounter {name} {{}}\n")), "{name}");
    }
    let input = block(&t, "chain input");
    let at = |needle: &str| {
        input
            .iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {input:#?}"))
    };
    let nd = at(
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 counter accept",
    );
    let v6 = at("meta nfproto ipv6 counter name \"ipv6_input_dropped\" drop");
    // ND before the invalid drop and the IPv6 drop; the IPv6 drop before
    // anything that would accept by port or interface alone (SSH on mgmt,
    // loopback excepted).
    assert!(at("ct state established") < nd && nd < at("ct state invalid"));
    assert!(at("iifname \"lo\"") < v6);
    assert!(v6 < at("icmp type echo-request counter accept"));
    assert!(v6 < at("iifname \"mgmt\" ip saddr"));
    assert!(v6 < at("ip saddr . iifname"));
    // Forwarded IPv6 is dropped before conntrack can accept it.
    assert_eq!(
        block(&t, "chain forward")[1],
        "meta nfproto ipv6 counter name \"ipv6_forward_dropped\" drop comment \"ipv6 through the node\""
    );
}

#[test]
fn echo_from_outside_is_rate_limited_before_conntrack() {
    let t = text(&load("seed", SEED), "fw-a");
    let input = block(&t, "chain input");
    let limit = input
        .iter()
        .position(|l| {
            *l == "iifname { \"untrust\" } icmp type echo-request limit rate over 10/second burst 20 packets counter name \"icmp_echo_dropped\" drop comment \"echo rate limit\""
        })
        .unwrap_or_else(|| panic!("{input:#?}"));
    let established = input
        .iter()
        .position(|l| l.starts_with("ct state established"))
        .unwrap();
    assert!(limit < established);
    // One-arm: the data interface faces the internet.
    let one_arm = text(&load("one-arm", ONE_ARM), "fw-a");
    assert!(
        one_arm.contains("iifname { \"data\" } icmp type echo-request limit rate over 10/second")
    );
}

#[test]
fn the_ha_port_is_rate_limited_per_peer_address_above_the_fastest_heartbeats() {
    let dep = load("seed", SEED);
    // The default profile, the fast one and an explicit 5 ms all give the
    // fast profile's budget: 200/s × 2 messages × 10.
    assert_eq!(input::ha_rate(&dep), 4_000);
    let mut explicit = dep.clone();
    explicit.policy.ha.heartbeat_interval_ms = crate::spec::IntervalMs::new(50);
    assert_eq!(input::ha_rate(&explicit), 4_000, "never below fast's");
    explicit.policy.ha.heartbeat_interval_ms = crate::spec::IntervalMs::new(1);
    assert_eq!(input::ha_rate(&explicit), 20_000);
    explicit.policy.ha.heartbeat_interval_ms = crate::spec::IntervalMs::new(3);
    assert_eq!(input::ha_rate(&explicit), 6_680);
    // Real heartbeats: at most 2 messages per interval per path.
    let fastest_real = 1000 / u64::from(crate::render::node::FAST_HEARTBEAT_MS) * 2;
    assert!(input::ha_rate(&dep) >= 10 * fastest_real);

    let t = text(&dep, "fw-a");
    let input = block(&t, "chain input");
    for (addr, ifname) in [("10.0.0.12", "mgmt"), ("10.0.3.12", "ha2")] {
        let udp = format!("ip saddr {addr} iifname \"{ifname}\" udp dport 28780 limit rate over 4000/second burst 4000 packets counter name \"ha_rate_dropped\" drop comment \"ha rate limit\"");
        let tcp = format!("ip saddr {addr} iifname \"{ifname}\" tcp dport 28780 tcp flags & (syn | ack) == syn limit rate over 10/second burst 20 packets counter name \"ha_rate_dropped\" drop comment \"ha2 connection rate limit\"");
        let (u, c) = (
            input
                .iter()
                .position(|l| *l == udp)
                .unwrap_or_else(|| panic!("{udp}\n{input:#?}")),
            input
                .iter()
                .position(|l| *l == tcp)
                .unwrap_or_else(|| panic!("{tcp}\n{input:#?}")),
        );
        assert!(u < 5 && c < 5, "the limits open the chain");
    }
}

#[test]
fn management_access_only_from_allow() {
    // Left out: the management vSwitch (the example writes it out).
    let mut default = load("seed", SEED);
    assert_eq!(
        default.policy.management.allow,
        Some(vec!["10.0.0.0/24".parse().unwrap()])
    );
    default.policy.management.allow = None;
    let t = text(&default, "fw-a");
    let input = block(&t, "chain input");
    assert!(input.contains(
        &"iifname \"mgmt\" ip saddr 10.0.0.0/24 tcp dport 22 counter accept comment \"management access\""
    ));
    assert!(input.contains(
        &"iifname \"mgmt\" tcp dport 22 counter name \"management_refused\" drop comment \"management from elsewhere\""
    ));
    assert!(!t.contains("iifname \"mgmt\" tcp dport 22 counter accept"));
    // Explicit list (aggregated) and the API port.
    let mut dep = load("seed", SEED);
    dep.policy.management.allow = Some(vec![
        "192.168.1.0/25".parse().unwrap(),
        "192.168.1.128/25".parse().unwrap(),
        "10.9.9.9".parse().unwrap(),
    ]);
    dep.policy.management.api_port = Some(9100);
    let t = text(&dep, "fw-b");
    assert!(
        t.contains("iifname \"mgmt\" ip saddr { 10.9.9.9, 192.168.1.0/24 } tcp dport { 22, 9100 } counter accept comment \"management access\""),
        "{t}"
    );
    assert!(t.contains(
        "iifname \"mgmt\" tcp dport { 22, 9100 } counter name \"management_refused\" drop"
    ));
}

#[test]
fn only_root_reaches_the_metadata_service() {
    for (name, file) in [("seed", SEED), ("one-arm", ONE_ARM)] {
        let dep = load(name, file);
        for node in ["fw-a", "fw-b"] {
            let t = text(&dep, node);
            let output = block(&t, "chain output");
            assert_eq!(
                output,
                [
                    "type filter hook output priority filter; policy accept;",
                    "ip daddr 100.100.100.200 meta skuid != 0 counter name \"metadata_refused\" drop comment \"metadata service: root only\"",
                ],
                "{name} {node}"
            );
            assert!(
                t.contains("\tcounter metadata_refused {}\n"),
                "{name} {node}"
            );
        }
    }
}

fn seed_fastpath() -> Deployment {
    let mut dep = load("seed", SEED);
    dep.policy.fastpath = true;
    dep
}

#[test]
fn fastpath_off_renders_no_flowtable() {
    let t = text(&load("seed", SEED), "fw-a");
    assert!(!t.contains("flowtable"), "{t}");
    assert!(!t.contains("flow add"), "{t}");
    assert!(!t.contains(counters::FASTPATH_OFFERED), "{t}");
}

#[test]
fn fastpath_offloads_established_flows_on_the_zone_interfaces() {
    let t = text(&seed_fastpath(), "fw-a");
    // The zones' interfaces only: not management, not HA2.
    assert_eq!(
        block(&t, &format!("flowtable {FLOWTABLE}")),
        vec![
            "hook ingress priority filter;",
            "devices = { \"trust\", \"untrust\" };",
            "counter",
        ]
    );
    let forward = block(&t, "chain forward");
    let offload = forward
        .iter()
        .position(|l| l.contains("flow add @ft"))
        .expect("a flow add rule");
    let accept = forward
        .iter()
        .position(|l| l.starts_with("ct state established,related"))
        .unwrap();
    let ipv6 = forward
        .iter()
        .position(|l| l.starts_with("meta nfproto ipv6"))
        .unwrap();
    // IPv6 is dropped before anything is offloaded, and a flow is offered
    // before the established accept ends its walk through the chain.
    assert!(ipv6 < offload && offload < accept, "{forward:#?}");
    let rule = forward[offload];
    assert!(rule.contains("ct state established"), "{rule}");
    assert!(rule.contains("meta l4proto { tcp, udp }"), "{rule}");
    assert!(rule.contains("fastpath_offered"), "{rule}");
}

#[test]
fn fastpath_on_the_one_arm_node_uses_its_one_data_interface() {
    let mut dep = load("one-arm", ONE_ARM);
    dep.policy.fastpath = true;
    let node = dep.nodes[0].name.clone();
    let t = text(&dep, &node);
    let ft = block(&t, &format!("flowtable {FLOWTABLE}"));
    assert_eq!(ft.len(), 3, "{ft:?}");
    assert!(ft[1].starts_with("devices = { \"data\""), "{ft:?}");
}

/// A logged rule keeps its name in the log: it is never folded into a set
/// run (whose one lookup rule would log every member with one prefix),
/// while the unlogged rules around it still group.
#[test]
fn a_logged_rule_stays_out_of_set_runs_and_logs_with_its_name() {
    let mut rules: Vec<Rule> = (0..4)
        .map(|i| {
            rule(
                &format!("r{i}"),
                Action::Accept,
                Protocol::Tcp,
                &format!("10.0.10.{}", 10 + i),
                &[80],
            )
        })
        .collect();
    rules[1].log = true;
    let t = text(&with_rules(rules), "fw-a");
    let chain = block(&t, "chain untrust_to_trust");
    assert_eq!(
        chain[0],
        "ip daddr 10.0.10.10 tcp dport 80 counter accept comment \"rule r0\""
    );
    assert_eq!(
        chain[1],
        "ip daddr 10.0.10.11 tcp dport 80 counter log prefix \"rule r1\" group 17 accept comment \"rule r1\""
    );
    assert!(
        chain[2].contains("@untrust_to_trust_g3") && chain[2].contains("r2 .. r3"),
        "{chain:?}"
    );
    assert_eq!(
        chain[3],
        "counter log prefix \"default deny untrust -> trust\" group 17 drop comment \"default deny untrust -> trust\""
    );
}

/// `default_deny = false` leaves every drop silent, the input chain's too.
#[test]
fn default_deny_logging_can_be_turned_off() {
    let mut dep = load("seed", SEED);
    dep.policy.logging.default_deny = false;
    let t = text(&dep, "fw-a");
    assert!(!t.contains(" log "), "{t}");
    let on = text(&load("seed", SEED), "fw-a");
    assert!(
        on.contains("iifname { \"untrust\" } log prefix \"default deny untrust -> node\" group 17")
    );
}

/// A prefix the kernel cannot hold is refused with the rule and the fix,
/// never truncated into another rule's name.
#[test]
fn a_logged_rule_with_a_name_too_long_for_a_prefix_is_refused() {
    let mut r = rule(
        &"x".repeat(130),
        Action::Accept,
        Protocol::Tcp,
        "10.0.10.10",
        &[80],
    );
    r.log = true;
    let dep = with_rules(vec![r]);
    let e = node::plan(&dep, "fw-a").unwrap_err();
    assert!(
        e.contains("log = true") && e.contains("shorten the name"),
        "{e}"
    );
}
