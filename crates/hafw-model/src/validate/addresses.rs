//! Addresses: ENI, HAVIP and lab server IPs sit inside their vSwitch on an
//! address the cloud does not keep for itself (rules 2, 6, 16); each address
//! is used once (rule 14); internet-side lab addresses come from the
//! documentation ranges (rule 16).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::context::{Context, Report};
use crate::addr::{Cidr, Ip};
use crate::spec::VSwitch;

/// The blocks RFC 5737 sets aside for documentation: the lab's "internet"
/// uses them so that it can never be confused with a real one.
const DOCUMENTATION: [(Ipv4Addr, u8); 3] = [
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
];
const DOCUMENTATION_TEXT: &str = "192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24";

pub(super) fn is_documentation(ip: Ip) -> bool {
    DOCUMENTATION
        .iter()
        .any(|&(net, len)| ipnet::Ipv4Net::new(net, len).is_ok_and(|n| n.contains(&ip.0)))
}

/// What the cloud keeps for itself in a vSwitch: the first address and the
/// last three (gateway, one more reserved, broadcast).
fn reserved(cidr: Cidr, ip: Ip) -> Option<&'static str> {
    let net = u32::from(cidr.0.network());
    let top = u32::from(cidr.0.broadcast());
    let ip = u32::from(ip.0);
    if ip == net {
        Some("the network address")
    } else if ip == top {
        Some("the broadcast address")
    } else if ip == top.wrapping_sub(2) {
        Some("the gateway")
    } else if ip == top.wrapping_sub(1) {
        Some("an address the cloud reserves")
    } else {
        None
    }
}

fn reserved_list(cidr: Cidr) -> String {
    let net = u32::from(cidr.0.network());
    let top = u32::from(cidr.0.broadcast());
    let ip = |n: u32| Ipv4Addr::from(n).to_string();
    format!(
        "{}, {}, {} and {}",
        ip(net),
        ip(top.wrapping_sub(2)),
        ip(top.wrapping_sub(1)),
        ip(top)
    )
}

/// Checks that `ip`, the address of `what` (e.g. "HAVIP `external`"), is a
/// usable host address of vSwitch `v`.
pub(super) fn host_in_vswitch(r: &mut Report, path: &str, what: &str, ip: Ip, v: &VSwitch) {
    if !v.cidr.contains(ip) {
        r.error(
            path,
            format!(
                "{what} IP {ip} is outside its vSwitch `{}` ({})",
                v.name, v.cidr
            ),
            format!("choose a free address inside {}", v.cidr),
        );
    } else if let Some(kind) = reserved(v.cidr, ip) {
        r.error(
            path,
            format!(
                "{what} IP {ip} is {kind} of vSwitch `{}` ({})",
                v.name, v.cidr
            ),
            format!(
                "choose another address inside {}; the cloud keeps {} for itself",
                v.cidr,
                reserved_list(v.cidr)
            ),
        );
    }
}

pub(super) fn check(cx: &Context, r: &mut Report) {
    hosts(cx, r);
    unique(cx, r);
}

fn hosts(cx: &Context, r: &mut Report) {
    let dep = cx.dep;
    for (i, inst) in dep.cloud.instances.iter().enumerate() {
        for (j, e) in inst.enis.iter().enumerate() {
            if let Some(v) = cx.vswitch(&e.vswitch) {
                let what = format!("ENI `{}`", e.name);
                host_in_vswitch(
                    r,
                    &format!("cloud.instance.{i}.eni.{j}.primary_ip"),
                    &what,
                    e.primary_ip,
                    v,
                );
            }
        }
    }
    for (i, h) in dep.cloud.havips.iter().enumerate() {
        if let Some(v) = cx.vswitch(&h.vswitch) {
            host_in_vswitch(
                r,
                &format!("cloud.havip.{i}.ip"),
                &format!("HAVIP `{}`", h.name),
                h.ip,
                v,
            );
        }
    }
    for (i, e) in dep.cloud.eips.iter().enumerate() {
        if !is_documentation(e.ip) {
            r.error(
                format!("cloud.eip.{i}.ip"),
                format!(
                    "EIP `{}` IP {} is not a documentation address; the lab emulates the EIP with it (the cloud allocates the real one)",
                    e.name, e.ip
                ),
                format!("use an address from {DOCUMENTATION_TEXT}"),
            );
        }
    }
    for (i, h) in dep.lab.hosts.iter().enumerate() {
        let at = format!("lab.host.{i}.ip");
        match &h.vswitch {
            Some(name) => {
                if let Some(v) = cx.vswitch(name) {
                    host_in_vswitch(r, &at, &format!("lab host `{}`", h.name), h.ip, v);
                }
            }
            None if !is_documentation(h.ip) => r.error(
                at,
                format!(
                    "lab host `{}` has no vSwitch, so it is on the lab's internet, but its IP {} is not a documentation address",
                    h.name, h.ip
                ),
                format!("use an address from {DOCUMENTATION_TEXT}, or give the host a vswitch"),
            ),
            None => {}
        }
    }
}

/// Rule 14: ENI primary IPs, HAVIP IPs, EIP IPs and lab host IPs are each
/// used once; the cloud would refuse the second, and the lab could not route
/// both.
fn unique(cx: &Context, r: &mut Report) {
    let c = &cx.dep.cloud;
    let mut users: Vec<(String, String, Ip)> = Vec::new();
    for (i, inst) in c.instances.iter().enumerate() {
        for (j, e) in inst.enis.iter().enumerate() {
            users.push((
                format!("cloud.instance.{i}.eni.{j}.primary_ip"),
                format!("ENI `{}`", e.name),
                e.primary_ip,
            ));
        }
    }
    for (i, h) in c.havips.iter().enumerate() {
        users.push((
            format!("cloud.havip.{i}.ip"),
            format!("HAVIP `{}`", h.name),
            h.ip,
        ));
    }
    for (i, e) in c.eips.iter().enumerate() {
        users.push((
            format!("cloud.eip.{i}.ip"),
            format!("EIP `{}`", e.name),
            e.ip,
        ));
    }
    for (i, h) in cx.dep.lab.hosts.iter().enumerate() {
        users.push((
            format!("lab.host.{i}.ip"),
            format!("lab host `{}`", h.name),
            h.ip,
        ));
    }
    let mut first: HashMap<Ip, &str> = HashMap::new();
    for (path, who, ip) in &users {
        match first.get(ip) {
            Some(owner) => r.error(
                path,
                format!("{who} IP {ip} is already used by {owner}"),
                "give each ENI, HAVIP, EIP and lab host its own address",
            ),
            None => {
                first.insert(*ip, who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::{messages, seed_with};

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ip {
        s.parse().unwrap()
    }

    #[test]
    fn reserved_addresses_of_a_slash_24() {
        let c = cidr("10.0.1.0/24");
        assert_eq!(reserved(c, ip("10.0.1.0")), Some("the network address"));
        assert_eq!(reserved(c, ip("10.0.1.253")), Some("the gateway"));
        assert_eq!(
            reserved(c, ip("10.0.1.254")),
            Some("an address the cloud reserves")
        );
        assert_eq!(reserved(c, ip("10.0.1.255")), Some("the broadcast address"));
        assert_eq!(reserved(c, ip("10.0.1.1")), None);
        assert_eq!(reserved(c, ip("10.0.1.252")), None);
    }

    #[test]
    fn reserved_addresses_of_a_slash_29() {
        let c = cidr("10.0.1.8/29");
        assert_eq!(reserved(c, ip("10.0.1.13")), Some("the gateway"));
        assert_eq!(
            reserved_list(c),
            "10.0.1.8, 10.0.1.13, 10.0.1.14 and 10.0.1.15"
        );
    }

    #[test]
    fn documentation_ranges() {
        assert!(is_documentation(ip("192.0.2.1")));
        assert!(is_documentation(ip("198.51.100.255")));
        assert!(is_documentation(ip("203.0.113.10")));
        assert!(!is_documentation(ip("203.0.114.10")));
        assert!(!is_documentation(ip("8.8.8.8")));
    }

    #[test]
    fn an_address_used_twice_names_the_first_user() {
        let m = messages(&seed_with(r#"ip = "10.0.2.100""#, r#"ip = "10.0.2.11""#));
        assert!(
            m.contains(
                &"HAVIP `internal` IP 10.0.2.11 is already used by ENI `fw-a-trust`".to_string()
            ),
            "{m:?}"
        );
    }

    #[test]
    fn a_server_on_the_gateway_is_refused() {
        let m = messages(&seed_with(r#"ip = "10.0.10.10""#, r#"ip = "10.0.10.253""#));
        assert!(
            m.contains(
                &"lab host `web` IP 10.0.10.253 is the gateway of vSwitch `servers` (10.0.10.0/24)"
                    .to_string()
            ),
            "{m:?}"
        );
    }
}
