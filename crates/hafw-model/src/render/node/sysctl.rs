//! The kernel settings a forwarding firewall node needs, in the order they
//! should be written.

use super::Interface;

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
const PER_INTERFACE: &[(&str, &str)] = &[
    // Loose: one-arm mode and a HAVIP route make the reverse path of a
    // forwarded packet legitimately leave by another interface than a strict
    // check expects.
    ("rp_filter", "2"),
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

pub(super) fn sysctls(interfaces: &[Interface]) -> Vec<Sysctl> {
    let mut out = vec![set("net.ipv4.ip_forward", "1")];
    let scopes = ["all", "default"]
        .into_iter()
        .chain(interfaces.iter().map(|i| i.ifname.as_str()));
    for scope in scopes {
        for (name, value) in PER_INTERFACE {
            out.push(set(format!("net.ipv4.conf.{scope}.{name}"), value));
        }
    }
    // Session sync installs conntrack entries without the TCP window the
    // old active saw (linux-kernel-notes.md trap 3); strict window tracking
    // would mark the first packets after a failover INVALID and the forward
    // chain drops INVALID. Exists only once nf_conntrack is loaded, which
    // loading the ruleset does: write it after the ruleset.
    out.push(set("net.netfilter.nf_conntrack_tcp_be_liberal", "1"));
    // A connection this node has no entry for is not picked up mid-stream:
    // after a failover only connections session sync delivered go on, which
    // is what a stateful firewall promises (and what the session tests prove).
    out.push(set("net.netfilter.nf_conntrack_tcp_loose", "0"));
    out
}
