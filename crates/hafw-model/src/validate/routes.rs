//! Route tables (alicloud-havip.md, cloud rule 5) and the seed's rule 13:
//! servers route to the HAVIP the firewalls' inside ENIs are bound to.

use std::collections::HashMap;

use super::context::{names, plural, Context, Report};
use crate::addr::Cidr;
use crate::spec::{EniRole, NextHop, RouteTable, VSwitchRole};

pub(super) fn check(cx: &Context, r: &mut Report) {
    let mut attached: HashMap<&str, &str> = HashMap::new();
    for (i, t) in cx.dep.cloud.route_tables.iter().enumerate() {
        for (k, v) in t.vswitches.iter().enumerate() {
            match attached.get(v.as_str()) {
                Some(first) => r.error(
                    format!("cloud.route_table.{i}.vswitches.{k}"),
                    format!(
                        "vSwitch `{v}` is attached to route table `{}` and already to `{first}`",
                        t.name
                    ),
                    "attach each vSwitch to one route table",
                ),
                None => {
                    attached.insert(v, &t.name);
                }
            }
        }
        quotas(cx, r, i, t);
        destinations(cx, r, i, t);
        server_next_hops(cx, r, i, t);
    }
}

fn quotas(cx: &Context, r: &mut Report, i: usize, t: &RouteTable) {
    let limits = &cx.dep.cloud.limits;
    if t.entries.len() > limits.route_entries {
        r.error(
            format!("cloud.route_table.{i}.entry.{}", limits.route_entries),
            format!(
                "route table `{}` has {}; the cloud allows at most {} (cloud.limits.route_entries)",
                t.name,
                plural(t.entries.len(), "entry", "entries"),
                limits.route_entries
            ),
            format!(
                "keep at most {}, or summarise destinations",
                plural(limits.route_entries, "entry", "entries")
            ),
        );
    }
    let to_havip: Vec<usize> = (0..t.entries.len())
        .filter(|&k| matches!(t.entries[k].next_hop, NextHop::Havip(_)))
        .collect();
    if let Some(&k) = to_havip.get(limits.havip_route_entries) {
        r.error(
            format!("cloud.route_table.{i}.entry.{k}.next_hop"),
            format!(
                "route table `{}` has {} with a HAVIP next hop; the cloud allows at most {} (cloud.limits.havip_route_entries)",
                t.name,
                plural(to_havip.len(), "entry", "entries"),
                limits.havip_route_entries
            ),
            format!("point at most {} at HAVIPs", plural(limits.havip_route_entries, "entry", "entries")),
        );
    }
}

/// The cloud's own service range.
const CLOUD_SERVICES: Cidr = Cidr(ipnet::Ipv4Net::new_assert(
    std::net::Ipv4Addr::new(100, 64, 0, 0),
    10,
));

fn destinations(cx: &Context, r: &mut Report, i: usize, t: &RouteTable) {
    for (k, e) in t.entries.iter().enumerate() {
        let at = format!("cloud.route_table.{i}.entry.{k}.destination");
        let d = e.destination;
        if t.entries[..k].iter().any(|o| o.destination == d) {
            r.error(
                &at,
                format!("route table `{}` has destination {d} twice", t.name),
                "keep one entry per destination",
            );
        }
        // The VPC's system routes own each vSwitch block; the cloud refuses a
        // custom entry for the block or anything inside it.
        if let Some(v) = cx
            .dep
            .cloud
            .vswitches
            .iter()
            .find(|v| v.cidr.contains_net(&d))
        {
            let how = if v.cidr == d { "equals" } else { "lies inside" };
            r.error(
                &at,
                format!(
                    "route destination {d} in table `{}` {how} vSwitch `{}` ({})",
                    t.name, v.name, v.cidr
                ),
                "route only destinations outside the vSwitch CIDRs; the VPC routes those itself",
            );
        }
        if CLOUD_SERVICES.contains_net(&d) {
            r.error(
                &at,
                format!("route destination {d} in table `{}` lies inside 100.64.0.0/10", t.name),
                "choose a destination outside 100.64.0.0/10; the cloud keeps that range for its own services",
            );
        }
    }
}

/// Rule 13: a server vSwitch sends its traffic to the HAVIP the firewalls'
/// inside ENIs (trust, or data in one-arm) are bound to; any other HAVIP
/// would hand it to an interface that is not the way in.
fn server_next_hops(cx: &Context, r: &mut Report, i: usize, t: &RouteTable) {
    let Some(server) = t
        .vswitches
        .iter()
        .find(|v| cx.vswitch(v).is_some_and(|v| v.role == VSwitchRole::Server))
    else {
        return;
    };
    let inside = |role: Option<EniRole>| matches!(role, Some(EniRole::Trust | EniRole::Data));
    for (k, e) in t.entries.iter().enumerate() {
        let NextHop::Havip(name) = &e.next_hop else {
            continue;
        };
        let Some(h) = cx.havip(name) else { continue };
        if inside(cx.havip_role(h)) {
            continue;
        }
        let good: Vec<&str> = cx
            .dep
            .cloud
            .havips
            .iter()
            .filter(|h| inside(cx.havip_role(h)))
            .map(|h| h.name.as_str())
            .collect();
        let bound = match cx.havip_role(h) {
            Some(role) => format!("whose members are {} ENIs", role.as_str()),
            None => "whose members are not all trust (or data) ENIs".to_string(),
        };
        let fix = if good.is_empty() {
            "point it at a HAVIP whose members are the firewalls' trust ENIs (data ENIs in one-arm)"
                .to_string()
        } else {
            format!(
                "point it at {}, whose members are the firewalls' inside ENIs",
                names(&good)
            )
        };
        r.error(
            format!("cloud.route_table.{i}.entry.{k}.next_hop.havip"),
            format!(
                "route {} in table `{}` (attached to server vSwitch `{server}`) points at HAVIP `{name}`, {bound}",
                e.destination, t.name
            ),
            fix,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{messages, seed_with};

    fn entries(extra: &str) -> Vec<String> {
        messages(&seed_with(
            r#"  { destination = "0.0.0.0/0", next_hop = { havip = "internal" } },"#,
            &format!("  {{ destination = \"0.0.0.0/0\", next_hop = {{ havip = \"internal\" }} }},\n{extra}"),
        ))
    }

    #[test]
    fn destinations_inside_a_vswitch_are_refused() {
        let m = entries(r#"  { destination = "10.0.2.0/25", next_hop = { havip = "internal" } },"#);
        assert_eq!(
            m,
            vec!["route destination 10.0.2.0/25 in table `servers-via-firewall` lies inside vSwitch `trust` (10.0.2.0/24)"]
        );
    }

    #[test]
    fn a_covering_destination_is_fine() {
        let m = entries(r#"  { destination = "10.0.0.0/8", next_hop = { havip = "internal" } },"#);
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn cloud_service_range_is_refused() {
        let m =
            entries(r#"  { destination = "100.100.0.0/16", next_hop = { havip = "internal" } },"#);
        assert_eq!(m, vec!["route destination 100.100.0.0/16 in table `servers-via-firewall` lies inside 100.64.0.0/10"]);
    }

    #[test]
    fn duplicate_destinations_are_refused() {
        let m = entries(r#"  { destination = "0.0.0.0/0", next_hop = { havip = "internal" } },"#);
        assert_eq!(
            m,
            vec!["route table `servers-via-firewall` has destination 0.0.0.0/0 twice"]
        );
    }

    #[test]
    fn havip_entry_quota() {
        let m = messages(&seed_with(
            "[[cloud.route_table]]\n",
            "[cloud.limits]\nhavip_route_entries = 0\n\n[[cloud.route_table]]\n",
        ));
        assert_eq!(
            m,
            vec!["route table `servers-via-firewall` has 1 entry with a HAVIP next hop; the cloud allows at most 0 (cloud.limits.havip_route_entries)"]
        );
    }

    #[test]
    fn servers_must_route_to_the_inside_havip() {
        let m = messages(&seed_with(
            r#"next_hop = { havip = "internal" }"#,
            r#"next_hop = { havip = "external" }"#,
        ));
        assert_eq!(
            m,
            vec!["route 0.0.0.0/0 in table `servers-via-firewall` (attached to server vSwitch `servers`) points at HAVIP `external`, whose members are untrust ENIs"]
        );
    }
}
