//! Rule 1: names are unique within each kind and every reference resolves.
//! Other rules skip what does not resolve, so each broken name is reported
//! once, here, where it is written.

use std::collections::HashMap;

use super::context::{names, use_one_of, Context, Report};
use crate::spec::NextHop;

pub(super) fn check(cx: &Context, r: &mut Report) {
    unique(cx, r);
    references(cx, r);
}

/// Reports every repeat of a name after its first use.
fn unique_in<'a>(r: &mut Report, kind: &str, items: impl Iterator<Item = (String, &'a str)>) {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for (path, name) in items {
        if let Some(first) = seen.get(name) {
            r.error(
                &path,
                format!(
                    "{kind} name `{name}` is already used at {}",
                    crate::diag::Path::parse(first)
                ),
                format!("give each {kind} its own name"),
            );
        } else {
            seen.insert(name, path);
        }
    }
}

fn unique(cx: &Context, r: &mut Report) {
    let dep = cx.dep;
    let c = &dep.cloud;
    let p = &dep.policy;
    unique_in(
        r,
        "zone",
        c.zones
            .iter()
            .enumerate()
            .map(|(i, z)| (format!("cloud.zones.{i}"), z.as_str())),
    );
    unique_in(
        r,
        "vSwitch",
        c.vswitches
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("cloud.vswitch.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "instance",
        c.instances
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("cloud.instance.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "ENI",
        c.instances.iter().enumerate().flat_map(|(i, inst)| {
            inst.enis
                .iter()
                .enumerate()
                .map(move |(j, e)| (format!("cloud.instance.{i}.eni.{j}.name"), e.name.as_str()))
        }),
    );
    unique_in(
        r,
        "HAVIP",
        c.havips
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("cloud.havip.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "EIP",
        c.eips
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("cloud.eip.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "route table",
        c.route_tables
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("cloud.route_table.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "zone",
        p.zones
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("policy.zone.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "rule",
        p.rules
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("policy.rule.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "DNAT rule",
        p.nat
            .dnat
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("policy.nat.dnat.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "SNAT rule",
        p.nat
            .snat
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("policy.nat.snat.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "path monitor",
        p.ha.path_monitors
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("policy.ha.path_monitor.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "node",
        dep.nodes
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("node.{i}.name"), v.name.as_str())),
    );
    unique_in(
        r,
        "lab host",
        dep.lab
            .hosts
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("lab.host.{i}.name"), v.name.as_str())),
    );
}

/// The fix for a name that does not resolve: the names that would.
fn declared<S: AsRef<str>>(all: &[S], add: &str) -> String {
    if all.is_empty() {
        format!("none is declared; {add} first")
    } else {
        use_one_of(all)
    }
}

fn references(cx: &Context, r: &mut Report) {
    let c = &cx.dep.cloud;
    let vswitch_names: Vec<&str> = c.vswitches.iter().map(|v| v.name.as_str()).collect();
    let instance_names: Vec<&str> = c.instances.iter().map(|v| v.name.as_str()).collect();
    let havip_names: Vec<&str> = c.havips.iter().map(|v| v.name.as_str()).collect();
    let eni_names: Vec<&str> = cx.dep.enis().map(|(_, e)| e.name.as_str()).collect();
    let vswitch_ref = |r: &mut Report, path: String, owner: String, name: &str| {
        if cx.vswitch(name).is_none() {
            r.error(
                path,
                format!("{owner} names vSwitch `{name}`, which is not declared"),
                declared(&vswitch_names, "add a [[cloud.vswitch]]"),
            );
        }
    };

    for (i, v) in c.vswitches.iter().enumerate() {
        if !c.zones.contains(&v.zone) {
            r.error(
                format!("cloud.vswitch.{i}.zone"),
                format!(
                    "vSwitch `{}` is in zone `{}`, which cloud.zones does not list",
                    v.name, v.zone
                ),
                format!(
                    "add `{}` to cloud.zones, or {}",
                    v.zone,
                    use_one_of(&c.zones)
                ),
            );
        }
    }
    for (i, inst) in c.instances.iter().enumerate() {
        for (j, e) in inst.enis.iter().enumerate() {
            vswitch_ref(
                r,
                format!("cloud.instance.{i}.eni.{j}.vswitch"),
                format!("ENI `{}`", e.name),
                &e.vswitch,
            );
        }
    }
    for (i, h) in c.havips.iter().enumerate() {
        vswitch_ref(
            r,
            format!("cloud.havip.{i}.vswitch"),
            format!("HAVIP `{}`", h.name),
            &h.vswitch,
        );
        for (k, m) in h.members.iter().enumerate() {
            if cx.member(m).is_none() {
                r.error(
                    format!("cloud.havip.{i}.members.{k}"),
                    format!(
                        "HAVIP `{}` member `{m}` is neither an ENI nor an instance",
                        h.name
                    ),
                    format!(
                        "name an ENI ({}) or an instance ({})",
                        or_none(&eni_names),
                        or_none(&instance_names)
                    ),
                );
            }
        }
    }
    for (i, e) in c.eips.iter().enumerate() {
        if let Some(h) = &e.havip {
            if cx.havip(h).is_none() {
                r.error(
                    format!("cloud.eip.{i}.havip"),
                    format!(
                        "EIP `{}` is bound to HAVIP `{h}`, which is not declared",
                        e.name
                    ),
                    declared(&havip_names, "add a [[cloud.havip]]"),
                );
            }
        }
    }
    for (i, t) in c.route_tables.iter().enumerate() {
        for (k, v) in t.vswitches.iter().enumerate() {
            vswitch_ref(
                r,
                format!("cloud.route_table.{i}.vswitches.{k}"),
                format!("route table `{}`", t.name),
                v,
            );
        }
        for (k, e) in t.entries.iter().enumerate() {
            let at = format!("cloud.route_table.{i}.entry.{k}.next_hop");
            let owner = format!("route {} in table `{}`", e.destination, t.name);
            match &e.next_hop {
                NextHop::Havip(h) if cx.havip(h).is_none() => r.error(
                    format!("{at}.havip"),
                    format!("{owner} points at HAVIP `{h}`, which is not declared"),
                    declared(&havip_names, "add a [[cloud.havip]]"),
                ),
                NextHop::Eni(n) if cx.eni_at(n).is_none() => r.error(
                    format!("{at}.eni"),
                    format!("{owner} points at ENI `{n}`, which is not declared"),
                    declared(&eni_names, "add the ENI to a [[cloud.instance]]"),
                ),
                NextHop::Instance(n) if cx.instance_index(n).is_none() => r.error(
                    format!("{at}.instance"),
                    format!("{owner} points at instance `{n}`, which is not declared"),
                    declared(&instance_names, "add a [[cloud.instance]]"),
                ),
                _ => {}
            }
        }
    }
    for (i, n) in cx.dep.nodes.iter().enumerate() {
        if cx.instance_index(&n.name).is_none() {
            r.error(
                format!("node.{i}.name"),
                format!("node `{}` names no instance; a node runs on the cloud.instance of the same name", n.name),
                declared(&instance_names, "add a [[cloud.instance]]"),
            );
        }
    }
    for (i, h) in cx.dep.lab.hosts.iter().enumerate() {
        if let Some(v) = &h.vswitch {
            vswitch_ref(
                r,
                format!("lab.host.{i}.vswitch"),
                format!("lab host `{}`", h.name),
                v,
            );
        }
    }
}

fn or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none declared".into()
    } else {
        names(items)
    }
}
