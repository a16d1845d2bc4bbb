//! The kernel settings a forwarding firewall node needs, in the order they
//! should be written.

use super::Interface;
use crate::render::nft::HaPeer;
use crate::spec::{Deployment, EniRole};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

fn set(key: impl Into<String>, value: &str) -> Sysctl {
    Sysctl {
        key: key.into(),
        value: value.into(),
    }
}

/// Per-interface settings, written for `all`, `default` and each interface:
/// the kernel combines `all` with the interface's value (maximum for
/// rp_filter, arp_ignore and arp_announce; OR for send_redirects), so only
/// setting both gives the value on every kernel path.
/// rp_filter is written separately ([`rp_filter`]): strict or loose by
/// interface.
const PER_INTERFACE: &[(&str, &str)] = &[
    // Answer ARP only for addresses held on the asking interface, and
    // announce with the best local address of that interface: a passive node
    // must never answer for a floating address, or the VPC would move the
    // HAVIP to it (alicloud-havip.md: ownership follows announcements).
    ("arp_ignore", "1"),
    ("arp_announce", "2"),
    // One-arm mode forwards out the interface a packet came in on; a
    // redirect would tell the sender to bypass the firewall.
    ("send_redirects", "0"),
    // Nothing outside may rewrite the node's routes.
    ("accept_redirects", "0"),
];

pub(super) fn sysctls(
    dep: &Deployment,
    interfaces: &[Interface],
    ha_peers: &[HaPeer],
) -> Vec<Sysctl> {
    let mut out = vec![set("net.ipv4.ip_forward", "1")];
    let scopes = ["all", "default"]
        .into_iter()
        .chain(interfaces.iter().map(|i| i.ifname.as_str()));
    for scope in scopes {
        let rp = interfaces
            .iter()
            .find(|i| i.ifname == scope)
            .map_or(STRICT, |i| rp_filter(dep, i, ha_peers));
        out.push(set(format!("net.ipv4.conf.{scope}.rp_filter"), rp));
        for (name, value) in PER_INTERFACE {
            out.push(set(format!("net.ipv4.conf.{scope}.{name}"), value));
        }
    }
    // Not the global liberal mode: session sync marks each entry it
    // installs liberal (`sync/entries.rs`: IP_CT_TCP_FLAG_BE_LIBERAL both
    // ways), since it lacks the window the old active saw
    // (linux-kernel-notes.md trap 3); every other connection keeps strict
    // window tracking, so an out-of-window segment aimed at a live
    // connection is INVALID and dropped. Written as 0 rather than left to
    // the host, so what runs is what the session tests prove. Exists only
    // once nf_conntrack is loaded, which loading the ruleset does: written
    // after the ruleset.
    out.push(set("net.netfilter.nf_conntrack_tcp_be_liberal", "0"));
    // A connection this node has no entry for is not picked up mid-stream:
    // after a failover only connections session sync delivered go on, which
    // is what a stateful firewall promises (and what the session tests prove).
    out.push(set("net.netfilter.nf_conntrack_tcp_loose", "0"));
    // The traffic log's session-end records carry packets and bytes each
    // way and the session's start and end: the kernel keeps them only with
    // accounting and timestamps on (`docs/logs.md`).
    out.push(set("net.netfilter.nf_conntrack_acct", "1"));
    out.push(set("net.netfilter.nf_conntrack_timestamp", "1"));
    out
}

pub const STRICT: &str = "1";
pub const LOOSE: &str = "2";

/// Reverse-path filtering of one interface. The kernel applies the larger
/// of `all` and the interface's value, so `all` and `default` are strict
/// (an interface hafw does not know, added later, is strict) and an
/// interface that must be loose says 2.
///
/// - `untrust`, `trust`, `data`: loose. Forwarded traffic's sources are
///   not in the file: in one-arm mode inbound and outbound share the data
///   interface; a VPC host reaches a HAVIP of another vSwitch directly (a
///   vSwitch's system route cannot be overridden, alicloud-havip.md rule
///   5), so the packet arrives on an interface whose route back points
///   elsewhere; and a server subnet missing from `policy.route` is routed
///   back by the default route, asymmetric but working. Spoofing there is
///   the policy's to refuse (zones by interface, rules by source).
/// - `mgmt` and `ha2`: strict when every source the pair's paths and the
///   file expect there is on the link (inside the interface's vSwitch): the
///   peer's HA addresses on it, for mgmt the `policy.management.allow`
///   networks, and the targets of path monitors through it. Then the route
///   back is the connected one and a strict check never drops them, while a
///   forged peer address arriving from elsewhere is dropped before the
///   input chain. Loose otherwise: a peer in another vSwitch, or operators
///   from outside the management vSwitch, are reached by the default route
///   through another interface (asymmetric routes to the VPC gateway).
pub fn rp_filter(dep: &Deployment, i: &Interface, ha_peers: &[HaPeer]) -> &'static str {
    if !matches!(i.role, EniRole::Management | EniRole::Ha2) {
        return LOOSE;
    }
    let on_link = |net: ipnet::Ipv4Net| i.network.0.contains(&net);
    let peers = ha_peers
        .iter()
        .filter(|p| p.ifname == i.ifname)
        .all(|p| i.network.contains(p.address));
    let monitors = dep
        .policy
        .ha
        .path_monitors
        .iter()
        .filter(|m| m.via == i.role)
        .flat_map(|m| &m.targets)
        .all(|t| i.network.contains(*t));
    let operators = i.role != EniRole::Management
        || dep
            .policy
            .management
            .allow
            .as_ref()
            .is_none_or(|list| list.iter().all(|p| on_link(p.0)));
    if peers && monitors && operators {
        STRICT
    } else {
        LOOSE
    }
}
