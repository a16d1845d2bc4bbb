//! The nftables ruleset of one node: one table, `inet hafw`, rendered as
//! text for `nft -f`. `inet` so that IPv6 meets the same hooks as IPv4:
//! the file's addresses are IPv4 only, so it allows nothing over IPv6, and
//! nothing IPv6 reaches the node or crosses it (the old `ip` table left
//! IPv6 unfiltered: sshd answered on untrust's link-local address).
//!
//! # Atomic replace
//! The text declares the table empty, deletes it, then declares it with its
//! contents (linux-kernel-notes.md trap 2). `nft -f` sends the file as one
//! transaction, so the old table is replaced whole whether or not it
//! existed, and a refused file leaves the old one in place. The table
//! earlier versions installed, `ip hafw`, is deleted in the same
//! transaction, so an upgraded node never runs both.
//!
//! # Chains
//! - `input` (policy drop, `input.rs`): rate limits first (HA port per
//!   peer address, ICMP echo from outside), then established/related, IPv6
//!   neighbour discovery on-link, loopback; every other IPv6 packet is
//!   dropped and counted; then ICMP echo, HA traffic from the peer's
//!   addresses on the interfaces they belong to, SSH (and the API port)
//!   on the management interface from `policy.management.allow`;
//!   everything else is counted and dropped. `output` accepts, except
//!   the metadata service (100.100.100.200) to any user but root, counted
//!   as `metadata_refused`: it serves the user data, which holds the HA key.
//! - `forward` (policy drop): IPv6 dropped and counted first, then
//!   `ct state established,related accept`,
//!   `ct state invalid drop`, then one lookup of `iifname . oifname` in the
//!   verdict map `zone_pairs`. Zones are resolved by interface name: the map
//!   holds, for every pair of zones some rule connects, each (input
//!   interface, output interface) of those zones, and jumps (`goto`) to that
//!   pair's chain. A pair no rule connects, within one zone too, and an
//!   interface in no zone fall through to the counted default drop.
//! - One chain per zone pair holds that pair's rules in policy order and
//!   ends with a counted drop. Only IPv4 reaches these chains, so a rule
//!   with no address, such as `protocol = "any"` from anywhere, still
//!   means IPv4.
//! - `prerouting` (dstnat) holds the DNATs, `postrouting` (srcnat) the
//!   SNATs (`dnat ip to`, `snat ip to`: IPv4 NAT in the inet table); see
//!   `nat.rs` for why SNAT never rewrites DNAT'd traffic.
//! - Named counters ([`counters`]) count what the defences drop, so a test
//!   or an operator reads them with `nft list counter inet hafw NAME`.
//!
//! # Fast path (`policy.fastpath = true`)
//! A software flowtable `ft` on the zones' interfaces, and first in
//! `forward` (after the IPv6 drop) `flow add @ft` for established TCP and
//! UDP connections, counted in `fastpath_offered`. What conntrack then
//! sees of an offloaded flow: the entry carries the `OFFLOAD` status bit,
//! its timeout is held at a day by the kernel (the flowtable's own idle
//! timeout, 30 s, ends the offload and gives the entry its normal timeout
//! back), and its TCP state stops changing, so no update events come
//! while the flow is offloaded. Session sync still carries such entries:
//! the active sends each connection when it is established (before the
//! offload, an event), its close (FIN and RST tear the flow down to the
//! slow path first, events again) and, every 30 s, a bulk of the whole
//! table, which refreshes the passive's copies; and the sender never
//! passes `OFFLOAD` on (`hafw_kernel::conntrack` strips it): the passive's
//! copy is a plain entry its own flowtable can take after a takeover.
//! The price besides speed: an offloaded TCP flow's sequence numbers are
//! not window-checked (as with `be_liberal`), and replacing the table (a
//! config apply) empties the flowtable, so its flows take the slow path
//! until offloaded again.
//!
//! # How security rules compile
//! Rules are first-match. Inside a pair's chain, the rules are cut into
//! maximal runs of consecutive rules with the same action and the same
//! protocol shape (tcp, udp, icmp, any, or any-with-ports, which means tcp
//! or udp). Within a run every rule has the same verdict, so the order of
//! its rules cannot change any packet's fate; between runs the order is
//! kept, so an accept is never moved across a drop.
//! - A run of one rule is one nft rule with anonymous sets
//!   (`ip saddr { .. } ip daddr { .. } tcp dport { .. }`).
//! - A longer run becomes a named set of concatenations with
//!   `flags interval` (`ip saddr . ip daddr . th dport`, with `meta
//!   l4proto` in the key for any-with-ports), whose elements are the cross
//!   product of each rule's sources, destinations and ports, each element
//!   commented with its rule's name and counted (the set has `counter`), and
//!   one nft rule that looks the packet up in the set. A policy of 10,000
//!   rules thus costs a few set lookups per packet, not 10,000 comparisons.
//! - The kernel's concatenated-range set refuses an element whose first or
//!   last point lies inside an element already present. An element fully
//!   inside an earlier element of its run can never decide a packet (the
//!   earlier one matches first with the same verdict) and is left out; any
//!   other overlapping element goes to a further set of the run, looked up
//!   by the next rule, so no overlap reaches the kernel.

mod compile;
pub mod counted;
mod input;
mod nat;
#[cfg(test)]
mod probe;
mod shard;
mod syntax;
mod synthetic;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::addr::Ip;
use crate::render::node::Interface;
use crate::spec::{Deployment, Zone};

pub use synthetic::{synthetic_deployment, synthetic_rules};

use syntax::{ident, line, quote};

/// The nft family and name of the one table hafw owns.
pub const FAMILY: &str = "inet";
pub const TABLE: &str = "hafw";
/// The family of the table versions before IPv6 filtering installed
/// (`ip hafw`): deleted by every ruleset and by a withdrawal.
pub const LEGACY_FAMILY: &str = "ip";

/// The named counters of the table: `nft list counter inet hafw NAME`.
pub mod counters {
    /// IPv6 to the node, other than neighbour discovery.
    pub const IPV6_INPUT: &str = "ipv6_input_dropped";
    /// IPv6 through the node.
    pub const IPV6_FORWARD: &str = "ipv6_forward_dropped";
    /// Datagrams and connection attempts to the HA port above the
    /// per-peer-address limit.
    pub const HA_RATE: &str = "ha_rate_dropped";
    /// ICMP echo requests from outside above the limit.
    pub const ECHO: &str = "icmp_echo_dropped";
    /// SSH or API connections on the management interface from a source
    /// outside `policy.management.allow`.
    pub const MANAGEMENT: &str = "management_refused";
    /// Packets to the metadata service from a process not running as root.
    pub const METADATA: &str = "metadata_refused";
    pub const ALL: [&str; 6] = [
        IPV6_INPUT,
        IPV6_FORWARD,
        HA_RATE,
        ECHO,
        MANAGEMENT,
        METADATA,
    ];
    /// With `policy.fastpath`: packets of established connections the
    /// forward chain handed to the flowtable. Not a drop: once a flow is
    /// offloaded its packets skip the chain, so this stays small while the
    /// flow's own counters grow (the proof that the fast path carries it).
    pub const FASTPATH_OFFERED: &str = "fastpath_offered";
}

/// The flowtable of `policy.fastpath`: `nft list flowtable inet hafw ft`.
pub const FLOWTABLE: &str = "ft";

/// A rendered ruleset: `text` is fed whole to `nft -f`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub family: &'static str,
    pub table: String,
    pub text: String,
}

/// An address the peer sends HA traffic from, and the interface it
/// arrives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaPeer {
    pub ifname: String,
    pub address: Ip,
}

/// Renders the ruleset of `node`, whose interfaces are `interfaces` and
/// whose peer sends HA traffic from `ha_peers`. A reference the deployment
/// leaves dangling is an error, never a silently missing rule.
pub fn ruleset(
    dep: &Deployment,
    node: &str,
    interfaces: &[Interface],
    ha_peers: &[HaPeer],
) -> Result<Ruleset, String> {
    let zones = zone_interfaces(dep, interfaces)?;
    let pairs = compile::zone_pairs(dep, &zones)?;
    let mut out = String::new();
    line(
        &mut out,
        0,
        format!(
            "# hafw ruleset for node {} of deployment {}; generated, do not edit:",
            quote(node),
            quote(&dep.name)
        ),
    );
    line(
        &mut out,
        0,
        "# the whole table is replaced in one transaction.",
    );
    for family in [LEGACY_FAMILY, FAMILY] {
        line(&mut out, 0, format!("table {family} {TABLE} {{}}"));
        line(&mut out, 0, format!("delete table {family} {TABLE}"));
    }
    line(&mut out, 0, format!("table {FAMILY} {TABLE} {{"));
    zone_comment(&mut out, dep, &zones);
    for name in counters::ALL {
        line(&mut out, 1, format!("counter {name} {{}}"));
    }
    let fastpath = fastpath_devices(dep, &zones);
    if let Some(devices) = &fastpath {
        flowtable(&mut out, devices);
    }
    compile::zone_pair_map(&mut out, &pairs, &zones)?;
    input::chain(
        &mut out,
        &input::Input {
            dep,
            interfaces,
            ha_peers,
        },
    );
    output_chain(&mut out);
    forward_chain(&mut out, fastpath.is_some());
    for pair in &pairs {
        compile::pair_chain(&mut out, pair, &dep.policy.logging);
    }
    nat::prerouting(&mut out, dep);
    nat::postrouting(&mut out, dep, interfaces)?;
    line(&mut out, 0, "}");
    Ok(Ruleset {
        family: FAMILY,
        table: TABLE.to_string(),
        text: out,
    })
}

/// Each zone's interface names on this node, sorted. A zone whose roles
/// this node lacks has none: its rules then match nothing here.
fn zone_interfaces<'d>(
    dep: &'d Deployment,
    interfaces: &[Interface],
) -> Result<BTreeMap<&'d str, Vec<String>>, String> {
    let mut out: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for Zone {
        name,
        interfaces: roles,
    } in &dep.policy.zones
    {
        let mut names = BTreeSet::new();
        for i in interfaces.iter().filter(|i| roles.contains(&i.role)) {
            if let Some(other) = owner.insert(&i.ifname, name) {
                if other != name {
                    return Err(format!(
                        "interface `{}` is in zone `{other}` and in zone `{name}`; an interface belongs to one zone",
                        i.ifname
                    ));
                }
            }
            names.insert(i.ifname.clone());
        }
        out.entry(name).or_default().extend(names);
    }
    Ok(out)
}

fn zone_comment(out: &mut String, dep: &Deployment, zones: &BTreeMap<&str, Vec<String>>) {
    line(out, 1, "# zones by interface name:");
    for zone in &dep.policy.zones {
        let names = zones
            .get(zone.name.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let list: Vec<String> = names.iter().map(|n| quote(n)).collect();
        line(
            out,
            1,
            format!("#   {} = {{ {} }}", quote(&zone.name), list.join(", ")),
        );
    }
}

/// The cloud's metadata service, which serves the instance's user data
/// (and so the HA key of the first boot, see `render::bootstrap`) and its
/// RAM role's credentials to anyone who asks from the instance.
pub const METADATA_SERVICE: &str = "100.100.100.200";

/// `output`: everything goes, except the metadata service to any user but
/// root. hafw runs as root; a compromised unprivileged process must not
/// read the key from the user data.
fn output_chain(out: &mut String) {
    line(out, 1, "chain output {");
    line(
        out,
        2,
        "type filter hook output priority filter; policy accept;",
    );
    line(
        out,
        2,
        format!(
            "ip daddr {METADATA_SERVICE} meta skuid != 0 counter name {} drop comment \"metadata service: root only\"",
            quote(counters::METADATA)
        ),
    );
    line(out, 1, "}");
}

/// The flowtable's devices with `policy.fastpath`: every interface of a
/// zone on this node (the ones forwarded traffic enters and leaves by),
/// sorted; None without the fast path, or when this node has no zone
/// interface (nft refuses a flowtable with no device).
fn fastpath_devices(dep: &Deployment, zones: &BTreeMap<&str, Vec<String>>) -> Option<Vec<String>> {
    if !dep.policy.fastpath {
        return None;
    }
    let devices: BTreeSet<&String> = zones.values().flatten().collect();
    (!devices.is_empty()).then(|| devices.into_iter().cloned().collect())
}

/// A software flowtable (no `flags offload`: veth and most cloud NICs have
/// no hardware flow offload). Its ingress hook catches a flow's packets
/// before prerouting, so an offloaded flow skips conntrack, NAT and the
/// forward chain; the flowtable does the NAT itself from the entry.
/// `counter` keeps the conntrack entry's packet and byte counts growing
/// while offloaded. The devices must exist when the ruleset is committed:
/// the apply order commits the ruleset after the links are found and up.
fn flowtable(out: &mut String, devices: &[String]) {
    line(
        out,
        1,
        format!("counter {} {{}}", counters::FASTPATH_OFFERED),
    );
    line(out, 1, format!("flowtable {FLOWTABLE} {{"));
    line(out, 2, "hook ingress priority filter;");
    let list: Vec<String> = devices.iter().map(|d| quote(d)).collect();
    line(out, 2, format!("devices = {{ {} }};", list.join(", ")));
    line(out, 2, "counter");
    line(out, 1, "}");
}

fn forward_chain(out: &mut String, fastpath: bool) {
    line(out, 1, "chain forward {");
    line(
        out,
        2,
        "type filter hook forward priority filter; policy drop;",
    );
    // First, established or not: the policy allows no IPv6 flow, so no
    // IPv6 entry is legitimately established through the node.
    line(
        out,
        2,
        format!(
            "meta nfproto ipv6 counter name {} drop comment \"ipv6 through the node\"",
            quote(counters::IPV6_FORWARD)
        ),
    );
    if fastpath {
        // Only connections the policy already admitted (established: a
        // reply was seen) are offloaded, so the rules still decide every
        // first packet. The kernel itself refuses entries with a helper,
        // unconfirmed ones and TCP segments carrying FIN or RST; once
        // offloaded, FIN or RST tears the flow down back to this chain,
        // so conntrack sees every close.
        line(
            out,
            2,
            format!(
                "meta l4proto {{ tcp, udp }} ct state established counter name {} flow add @{FLOWTABLE} comment \"fastpath\"",
                quote(counters::FASTPATH_OFFERED)
            ),
        );
    }
    line(out, 2, "ct state established,related counter accept");
    line(out, 2, "ct state invalid counter drop");
    line(out, 2, "iifname . oifname vmap @zone_pairs");
    line(
        out,
        2,
        format!("counter drop comment {}", quote(counted::UNCONNECTED)),
    );
    line(out, 1, "}");
}

/// The chain name for a zone pair, unique among `taken`.
fn pair_chain_name(from: &str, to: &str, taken: &mut BTreeSet<String>) -> String {
    let base = format!("{}_to_{}", ident(from), ident(to));
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}
