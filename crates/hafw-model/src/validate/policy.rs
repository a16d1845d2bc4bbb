//! Policy and nodes (rules 9 and 15): every role the policy names is an
//! interface of every firewall, zones and rules refer to each other, and
//! each node is one the HA pair can run.

use std::collections::HashMap;

use super::context::{names, use_one_of, Context, Report};
use crate::spec::{EniRole, Instance, Protocol};

pub(super) fn check(cx: &Context, r: &mut Report) {
    roles(cx, r);
    zones(cx, r);
    rules(cx, r);
    gateways(cx, r);
    ha(cx, r);
    management(cx, r);
    fastpath(cx, r);
    nodes(cx, r);
    sessions(cx, r);
}

/// `policy.sessions.max` against the memory of each firewall whose type
/// hafw knows (the others are checked by the daemon against the host's).
fn sessions(cx: &Context, r: &mut Report) {
    let Some(max) = cx.dep.policy.sessions.max else {
        return;
    };
    for &i in &cx.firewalls {
        let inst = cx.instance_at(i);
        let Some(gib) = super::instance_type::memory_gib(&inst.instance_type) else {
            continue;
        };
        if let Err(e) = crate::sessions::check(max.get(), gib << 30) {
            r.error(
                "policy.sessions.max",
                format!(
                    "{} (instance `{}`, {}, {gib} GiB)",
                    e.message, inst.name, inst.instance_type
                ),
                e.fix,
            );
        }
    }
}

/// Reports, in one diagnostic, the firewalls that have no ENI of `role`,
/// which `what` uses.
fn role_on_firewalls(cx: &Context, r: &mut Report, path: &str, what: &str, role: EniRole) {
    let lacking: Vec<&Instance> = cx
        .firewalls
        .iter()
        .map(|&i| cx.instance_at(i))
        .filter(|inst| inst.eni_by_role(role).is_none())
        .collect();
    let Some(first) = lacking.first() else { return };
    // Roles every lacking firewall has: the ones `what` could use instead.
    let mut common: Vec<EniRole> = first.enis.iter().map(|e| e.role).collect();
    common.sort();
    common.dedup();
    common.retain(|c| lacking.iter().all(|inst| inst.eni_by_role(*c).is_some()));
    let common: Vec<&str> = common.iter().map(|c| c.as_str()).collect();
    let role = role.as_str();
    let lacking_names: Vec<&str> = lacking.iter().map(|i| i.name.as_str()).collect();
    let (who, to, theirs) = match lacking_names.as_slice() {
        [one] => (
            format!("firewall `{one}` has"),
            format!("`{one}`"),
            "one of its roles",
        ),
        many => (
            format!("firewalls {} have", names(many)),
            "each".to_string(),
            "a role they have",
        ),
    };
    r.error(
        path,
        format!("{what} uses role {role}, but {who} no {role} ENI"),
        if common.is_empty() {
            format!("add a {role} ENI to {to}")
        } else {
            format!(
                "add a {role} ENI to {to}, or use {theirs}: {}",
                common.join(", ")
            )
        },
    );
}

fn roles(cx: &Context, r: &mut Report) {
    let p = &cx.dep.policy;
    for (i, z) in p.zones.iter().enumerate() {
        for (k, role) in z.interfaces.iter().enumerate() {
            role_on_firewalls(
                cx,
                r,
                &format!("policy.zone.{i}.interfaces.{k}"),
                &format!("zone `{}`", z.name),
                *role,
            );
        }
    }
    for (i, route) in p.routes.iter().enumerate() {
        role_on_firewalls(
            cx,
            r,
            &format!("policy.route.{i}.via"),
            &format!("route {}", route.destination),
            route.via,
        );
    }
    for (k, role) in p.ha.paths.iter().enumerate() {
        role_on_firewalls(cx, r, &format!("policy.ha.paths.{k}"), "HA path", *role);
    }
    for (i, m) in p.ha.link_monitors.iter().enumerate() {
        for (k, role) in m.interfaces.iter().enumerate() {
            role_on_firewalls(
                cx,
                r,
                &format!("policy.ha.link_monitor.{i}.interfaces.{k}"),
                "link monitor",
                *role,
            );
        }
    }
    for (i, m) in p.ha.path_monitors.iter().enumerate() {
        role_on_firewalls(
            cx,
            r,
            &format!("policy.ha.path_monitor.{i}.via"),
            &format!("path monitor `{}`", m.name),
            m.via,
        );
    }
}

/// An interface belongs to one zone, or a packet's zone pair is ambiguous.
fn zones(cx: &Context, r: &mut Report) {
    let mut zone_of: HashMap<EniRole, &str> = HashMap::new();
    for (i, z) in cx.dep.policy.zones.iter().enumerate() {
        for (k, role) in z.interfaces.iter().enumerate() {
            match zone_of.get(role) {
                Some(first) => r.error(
                    format!("policy.zone.{i}.interfaces.{k}"),
                    format!(
                        "interface {} is in zone `{}` and already in zone `{first}`",
                        role.as_str(),
                        z.name
                    ),
                    "put each interface in one zone",
                ),
                None => {
                    zone_of.insert(*role, &z.name);
                }
            }
        }
    }
}

fn rules(cx: &Context, r: &mut Report) {
    let p = &cx.dep.policy;
    let zone_names: Vec<&str> = p.zones.iter().map(|z| z.name.as_str()).collect();
    for (i, rule) in p.rules.iter().enumerate() {
        for (key, zone) in [("from", &rule.from), ("to", &rule.to)] {
            if !zone_names.contains(&zone.as_str()) {
                r.error(
                    format!("policy.rule.{i}.{key}"),
                    format!(
                        "rule `{}` {key} zone `{zone}`, which is not declared",
                        rule.name
                    ),
                    if zone_names.is_empty() {
                        "declare the zone with a [[policy.zone]] first".to_string()
                    } else {
                        use_one_of(&zone_names)
                    },
                );
            }
        }
        if !rule.ports.is_empty() && !matches!(rule.protocol, Protocol::Tcp | Protocol::Udp) {
            r.error(
                format!("policy.rule.{i}.ports"),
                format!(
                    "rule `{}` lists ports but its protocol is {}",
                    rule.name,
                    rule.protocol.as_str()
                ),
                "set protocol = \"tcp\" or \"udp\", or remove ports",
            );
        }
    }
}

/// A route's gateway must be on the link it leaves by: inside the vSwitch
/// of the `via` ENI on each firewall.
fn gateways(cx: &Context, r: &mut Report) {
    for (i, route) in cx.dep.policy.routes.iter().enumerate() {
        let Some(gw) = route.gateway else { continue };
        let mut seen: Vec<&str> = Vec::new();
        for &f in &cx.firewalls {
            let Some(e) = cx.instance_at(f).eni_by_role(route.via) else {
                continue;
            };
            let Some(v) = cx.vswitch(&e.vswitch) else {
                continue;
            };
            if seen.contains(&v.name.as_str()) || v.cidr.contains(gw) {
                continue;
            }
            seen.push(&v.name);
            r.error(
                format!("policy.route.{i}.gateway"),
                format!(
                    "route {} via {} has gateway {gw}, outside vSwitch `{}` ({}) of the {} ENI `{}`",
                    route.destination,
                    route.via.as_str(),
                    v.name,
                    v.cidr,
                    route.via.as_str(),
                    e.name
                ),
                format!(
                    "choose a gateway inside {}, or leave gateway out to use the vSwitch gateway {}",
                    v.cidr,
                    v.gateway()
                ),
            );
        }
    }
}

fn ha(cx: &Context, r: &mut Report) {
    let ha = &cx.dep.policy.ha;
    if ha.paths.is_empty() {
        r.error(
            "policy.ha.paths",
            "policy.ha.paths is empty; heartbeats need at least one path",
            "list the interface roles heartbeats run over, e.g. paths = [\"management\", \"ha2\"]",
        );
    }
    for (k, role) in ha.paths.iter().enumerate() {
        if ha.paths[..k].contains(role) {
            r.error(
                format!("policy.ha.paths.{k}"),
                format!("HA path {} is listed twice", role.as_str()),
                "list each path once",
            );
        }
    }
    // A 0 interval or miss count cannot reach here: their types refuse it
    // when the file is parsed (spec::IntervalMs, spec::Count).
    if ha.port == 0 {
        r.error(
            "policy.ha.port",
            "HA port 0 is not a port",
            "choose a port from 1 to 65535",
        );
    }
}

/// A bad CIDR in `allow` is refused when the file is parsed (`Prefix`),
/// located; what is left is the list as a whole and the API port.
fn management(cx: &Context, r: &mut Report) {
    let m = &cx.dep.policy.management;
    // Refused rather than warned: the policy is the pair's, so config sync
    // would carry an empty list to both nodes and shut every operator out
    // of both at once, with only the cloud console left to undo it.
    if m.allow.as_ref().is_some_and(Vec::is_empty) {
        r.error(
            "policy.management.allow",
            "policy.management.allow is empty: nobody could reach SSH or the API on either node",
            "list the operators' networks, e.g. allow = [\"10.0.0.0/24\"], or leave allow out to admit the management vSwitch",
        );
    }
    match m.api_port {
        Some(0) => r.error(
            "policy.management.api_port",
            "API port 0 is not a port",
            "set the port `hafw run --api` listens on, from 1 to 65535",
        ),
        Some(p) if p == cx.dep.policy.ha.port => r.error(
            "policy.management.api_port",
            format!("API port {p} is the HA port"),
            "choose another port for `hafw run --api`; the HA port carries heartbeats and session sync",
        ),
        _ => {}
    }
}

/// The flowtable's devices are the zones' interfaces; with none there is
/// nothing to offload, and nft refuses a flowtable with no device.
fn fastpath(cx: &Context, r: &mut Report) {
    let p = &cx.dep.policy;
    if p.fastpath && p.zones.iter().all(|z| z.interfaces.is_empty()) {
        r.error(
            "policy.fastpath",
            "policy.fastpath is on, but no zone has an interface: the flowtable would have no device",
            "put the data interfaces in zones (policy.zone.N.interfaces), or set fastpath = false",
        );
    }
}

fn nodes(cx: &Context, r: &mut Report) {
    let nodes = &cx.dep.nodes;
    if nodes.is_empty() {
        r.error(
            "node",
            "no [[node]] is declared",
            "declare a [[node]] for each firewall instance, one or two",
        );
    }
    if nodes.len() > 2 {
        r.error(
            "node.2",
            format!(
                "{} nodes are declared; an HA pair has at most two",
                nodes.len()
            ),
            "keep one [[node]] per firewall, two at most",
        );
    }
    for (i, n) in nodes.iter().enumerate() {
        if n.priority == 0 {
            r.error(
                format!("node.{i}.priority"),
                format!(
                    "node `{}` has priority 0; priorities run from 1 to 255",
                    n.name
                ),
                "set a priority from 1 to 255 (the higher wins the election)",
            );
        }
        if n.key_file.trim().is_empty() {
            r.error(
                format!("node.{i}.key_file"),
                format!("node `{}` has an empty key_file", n.name),
                "set key_file to the absolute path of the pair's pre-shared key, e.g. /etc/hafw/ha.key",
            );
        } else if !n.key_file.starts_with('/') {
            r.error(
                format!("node.{i}.key_file"),
                format!("node `{}` key_file `{}` is not an absolute path", n.name, n.key_file),
                "write the absolute path, e.g. /etc/hafw/ha.key; the daemon's working directory is not the file's",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{messages, seed_edits, seed_with};

    const FASTPATH_ON: (&str, &str) = (
        "[policy.interface]",
        "[policy]\nfastpath = true\n\n[policy.interface]",
    );

    #[test]
    fn fastpath_is_valid_on_the_seed() {
        let dep = seed_edits(&[FASTPATH_ON]);
        assert!(dep.policy.fastpath);
        assert_eq!(messages(&dep), Vec::<String>::new());
    }

    #[test]
    fn fastpath_needs_a_zone_interface() {
        let no_zone = [
            FASTPATH_ON,
            (r#"interfaces = ["untrust"]"#, "interfaces = []"),
            (r#"interfaces = ["trust"]"#, "interfaces = []"),
        ];
        let m = messages(&seed_edits(&no_zone));
        assert!(
            m.iter()
                .any(|m| m.starts_with("policy.fastpath is on, but no zone")),
            "{m:?}"
        );
        // The same zones without the fast path: not this error.
        let m = messages(&seed_edits(&no_zone[1..]));
        assert!(!m.iter().any(|m| m.contains("fastpath")), "{m:?}");
    }

    /// The seed's firewalls are ecs.g7.xlarge: 16 GiB, so half of it
    /// holds 8,388,608 sessions at 1 KiB each.
    #[test]
    fn sessions_max_is_checked_against_the_instance_memory() {
        let at = |max: u32| {
            super::super::validate(&seed_with(
                "[policy.management]\n",
                &format!("[policy.sessions]\nmax = {max}\n\n[policy.management]\n"),
            ))
        };
        assert!(at(8_388_608).is_empty());
        let d = at(8_388_609);
        assert_eq!(d.len(), 2, "one per firewall: {d:?}");
        assert_eq!(d[0].path.to_string(), "policy.sessions.max");
        assert_eq!(
            d[0].message,
            "policy.sessions.max = 8388609 needs 8192 MiB at 1024 bytes a session, more than 1/2 of the node's 16384 MiB (instance `fw-a`, ecs.g7.xlarge, 16 GiB)"
        );
        assert!(
            d[0].fix
                .contains("lower policy.sessions.max to 8388608 or less"),
            "{}",
            d[0].fix
        );
    }

    #[test]
    fn sessions_max_of_zero_is_refused_when_parsed() {
        let text = crate::examples::SEED.replacen(
            "[policy.management]\n",
            "[policy.sessions]\nmax = 0\n\n[policy.management]\n",
            1,
        );
        let e = crate::parse("x.toml", &text).unwrap_err();
        let d = &e.items[0];
        assert_eq!(d.path.to_string(), "policy.sessions.max");
        assert!(d.message.contains("a session count of 0"), "{}", d.message);
    }

    #[test]
    fn rules_name_declared_zones() {
        let m = messages(&seed_with(r#"from = "untrust""#, r#"from = "dmz""#));
        assert_eq!(
            m,
            vec!["rule `web-in` from zone `dmz`, which is not declared"]
        );
    }

    #[test]
    fn ports_need_tcp_or_udp() {
        let m = messages(&seed_with(
            r#"protocol = "tcp"
ports"#,
            r#"protocol = "icmp"
ports"#,
        ));
        assert_eq!(
            m,
            vec!["rule `web-in` lists ports but its protocol is icmp"]
        );
    }

    #[test]
    fn an_interface_in_two_zones() {
        let m = messages(&seed_with(
            r#"interfaces = ["trust"]"#,
            r#"interfaces = ["trust", "untrust"]"#,
        ));
        assert_eq!(
            m,
            vec!["interface untrust is in zone `trust` and already in zone `untrust`"]
        );
    }

    #[test]
    fn ha_paths_exist_on_every_firewall() {
        let m = messages(&seed_with(
            r#"paths = ["management", "ha2"]"#,
            r#"paths = ["management", "data"]"#,
        ));
        assert_eq!(
            m,
            vec!["HA path uses role data, but firewalls `fw-a` and `fw-b` have no data ENI"]
        );
    }

    #[test]
    fn priority_zero_and_relative_key_file() {
        let m = messages(&seed_with(
            "priority = 100\nkey_file = \"/etc/hafw/ha.key\"",
            "priority = 0\nkey_file = \"ha.key\"",
        ));
        assert_eq!(
            m,
            vec![
                "node `fw-b` has priority 0; priorities run from 1 to 255",
                "node `fw-b` key_file `ha.key` is not an absolute path"
            ]
        );
    }

    #[test]
    fn equal_priorities_are_allowed() {
        let m = messages(&seed_with("priority = 100", "priority = 200"));
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn gateway_outside_the_via_vswitch() {
        let m = messages(&seed_with(
            "destination = \"0.0.0.0/0\"\nvia = \"untrust\"",
            "destination = \"0.0.0.0/0\"\nvia = \"untrust\"\ngateway = \"10.0.2.1\"",
        ));
        assert_eq!(
            m,
            vec!["route 0.0.0.0/0 via untrust has gateway 10.0.2.1, outside vSwitch `untrust` (10.0.1.0/24) of the untrust ENI `fw-a-untrust`"]
        );
    }

    #[test]
    fn no_nodes() {
        let mut dep = seed_with("", "");
        dep.nodes.clear();
        assert_eq!(messages(&dep), vec!["no [[node]] is declared"]);
    }

    #[test]
    fn zero_timers_are_refused() {
        // A 0 interval or count is refused by its type when the file is
        // parsed, located and naming the field; port 0 by validation.
        let at = |edit: &str| {
            let text = crate::examples::SEED.replacen("[policy.ha]\n", edit, 1);
            let d = crate::parse("d.toml", &text).expect_err("0 must be refused");
            assert_eq!(d.items.len(), 1, "{d}");
            let i = &d.items[0];
            (i.path.to_string(), i.message.clone(), i.fix.clone())
        };
        assert_eq!(
            at("[policy.ha]\nheartbeat_interval_ms = 0\n"),
            (
                "policy.ha.heartbeat_interval_ms".into(),
                "an interval of 0 is not allowed: it must be 1 or more".into(),
                "set heartbeat_interval_ms to 1 or more, or leave it out to use the profile's"
                    .into()
            )
        );
        assert_eq!(
            at("[policy.ha]\nmiss_count = 0\n"),
            (
                "policy.ha.miss_count".into(),
                "a count of 0 is not allowed: it must be 1 or more".into(),
                "set miss_count to 1 or more, or leave it out to use the profile's".into()
            )
        );
        let m = messages(&seed_with("[policy.ha]\n", "[policy.ha]\nport = 0\n"));
        assert_eq!(m, vec!["HA port 0 is not a port"]);
    }

    #[test]
    fn management_allow_empty_or_bad_and_api_port() {
        let m = messages(&seed_with(
            "allow = [\"10.0.0.0/24\"]",
            "allow = []\napi_port = 28780",
        ));
        assert_eq!(
            m,
            vec![
                "policy.management.allow is empty: nobody could reach SSH or the API on either node",
                "API port 28780 is the HA port",
            ]
        );
        let m = messages(&seed_with(
            "allow = [\"10.0.0.0/24\"]",
            "allow = [\"192.168.7.0/24\", \"10.9.9.9\"]\napi_port = 9100",
        ));
        assert!(m.is_empty(), "{m:?}");
        // A bad CIDR is refused at parse time, located at the element.
        let text = crate::examples::SEED.replacen(
            "allow = [\"10.0.0.0/24\"]",
            "allow = [\"10.0.0.0/24\", \"10.0.0.1/24\"]",
            1,
        );
        let d = crate::parse("d.toml", &text).expect_err("a CIDR with host bits is refused");
        assert_eq!(d.items.len(), 1, "{d}");
        assert_eq!(d.items[0].path.to_string(), "policy.management.allow[1]");
        assert!(
            d.items[0]
                .message
                .contains("`10.0.0.1/24` has host bits set"),
            "{d}"
        );
    }

    #[test]
    fn empty_and_repeated_ha_paths() {
        let m = messages(&seed_with(r#"paths = ["management", "ha2"]"#, "paths = []"));
        assert_eq!(
            m,
            vec!["policy.ha.paths is empty; heartbeats need at least one path"]
        );
        let m = messages(&seed_with(
            r#"paths = ["management", "ha2"]"#,
            r#"paths = ["ha2", "ha2"]"#,
        ));
        assert_eq!(m, vec!["HA path ha2 is listed twice"]);
    }
}
