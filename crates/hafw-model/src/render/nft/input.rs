//! The input chain: what may reach the node itself. Rate limits first
//! (a flood meets them before anything else, the conntrack lookup
//! included), then conntrack, IPv6, and the few services the node offers.

use super::syntax::{line, quote};
use super::{counters, HaPeer};
use crate::addr::Prefix;
use crate::render::node::{Interface, FAST_HEARTBEAT_MS};
use crate::spec::{Deployment, EniRole};

/// What the input chain needs besides the interfaces.
pub(super) struct Input<'a> {
    pub dep: &'a Deployment,
    pub interfaces: &'a [Interface],
    pub ha_peers: &'a [HaPeer],
}

/// Messages a node sends per heartbeat path per interval, at most, in
/// steady state: a heartbeat, and a takeover while it hands over (a state
/// change adds one more heartbeat, and the flap limit bounds those).
const HA_MESSAGES_PER_INTERVAL: u64 = 2;
/// How far above that the per-source limit sits.
const HA_MARGIN: u64 = 10;
/// New TCP connections (HA2 session sync) per second from one peer
/// address: the lower node dials once, and again after a drop.
const HA2_SYN_RATE: u32 = 10;
const HA2_SYN_BURST: u32 = 20;
/// ICMP echo requests per second from the outside (untrust and data
/// interfaces together): enough for monitoring, too few to be an
/// amplifier or to cost the node a core.
pub(super) const ECHO_RATE: u32 = 10;
pub(super) const ECHO_BURST: u32 = 20;

/// UDP datagrams per second one peer address may send to the HA port on
/// one interface before the excess is dropped, with the burst the same.
///
/// From the fastest interval the peer may run: the file's explicit
/// `heartbeat_interval_ms` when it is faster than the `fast` profile,
/// else the `fast` profile's (a node may be started with `--ha-profile
/// fast` whatever the file says, and the peer's ruleset must not drop its
/// heartbeats). With `fast` (5 ms): 200 intervals/s × 2 messages × 10 =
/// **4,000/s per source, burst 4,000**; a heartbeat path carries at most
/// 400/s, and heartbeats that waited in a queue for the whole adaptive
/// detection ceiling (500 ms) arrive as a burst of 200. The `tight`
/// profile (2 ms) stays under the same limit with a margin of 4 rather than
/// 10: 1,000/s per path, a burst of 500 after such a wait; a faster
/// explicit interval raises the limit as above. A real heartbeat is
/// never dropped by this limit; what it bounds is the work a flood of forged
/// datagrams from the peer's address costs the HA thread (each one a failed
/// decryption), 4,000/s instead of the flood's rate. It cannot tell a
/// forged datagram from a real one: under such a flood that path's
/// heartbeats compete with the forgeries for the budget, and the pair
/// relies on its other heartbeat paths.
pub(super) fn ha_rate(dep: &Deployment) -> u64 {
    let fast = u64::from(FAST_HEARTBEAT_MS);
    let floor_ms = dep
        .policy
        .ha
        .heartbeat_interval_ms
        .map_or(fast, u64::from)
        .min(fast)
        .max(1);
    let per_second = 1000u64.div_ceil(floor_ms);
    per_second * HA_MESSAGES_PER_INTERVAL * HA_MARGIN
}

pub(super) fn chain(out: &mut String, input: &Input<'_>) {
    let port = input.dep.policy.ha.port;
    line(out, 1, "chain input {");
    line(
        out,
        2,
        "type filter hook input priority filter; policy drop;",
    );
    // Before `ct state established`: heartbeats and their forgeries share
    // one conntrack entry (both nodes send from and to the HA port), and a
    // ping flood reuses one echo id, so a limit after it sees neither.
    let rate = ha_rate(input.dep);
    for p in input.ha_peers {
        line(
            out,
            2,
            format!(
                "ip saddr {} iifname {} udp dport {port} limit rate over {rate}/second burst {rate} packets counter name {} drop comment \"ha rate limit\"",
                p.address,
                quote(&p.ifname),
                quote(counters::HA_RATE),
            ),
        );
        line(
            out,
            2,
            format!(
                "ip saddr {} iifname {} tcp dport {port} tcp flags & (syn | ack) == syn limit rate over {HA2_SYN_RATE}/second burst {HA2_SYN_BURST} packets counter name {} drop comment \"ha2 connection rate limit\"",
                p.address,
                quote(&p.ifname),
                quote(counters::HA_RATE),
            ),
        );
    }
    let outside: Vec<String> = input
        .interfaces
        .iter()
        .filter(|i| matches!(i.role, EniRole::Untrust | EniRole::Data))
        .map(|i| quote(&i.ifname))
        .collect();
    if !outside.is_empty() {
        line(
            out,
            2,
            format!(
                "iifname {{ {} }} icmp type echo-request limit rate over {ECHO_RATE}/second burst {ECHO_BURST} packets counter name {} drop comment \"echo rate limit\"",
                outside.join(", "),
                quote(counters::ECHO),
            ),
        );
    }
    line(out, 2, "ct state established,related counter accept");
    // Neighbour discovery keeps on-link IPv6 working (the kernel answers
    // solicitations for its link-local addresses whatever the policy):
    // solicitations and advertisements only, and only with hop limit 255,
    // which a router never forwards (RFC 4861 7.1.1), so they come from
    // the link. Router advertisements and redirects are dropped: the
    // policy gives the node no IPv6 routes, and accepting them would let
    // anyone on a segment hand it some.
    line(
        out,
        2,
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 counter accept comment \"ipv6 neighbour discovery\"",
    );
    line(out, 2, "ct state invalid counter drop");
    line(out, 2, "iifname \"lo\" counter accept");
    // The file's addresses are IPv4 only, so it allows nothing over IPv6:
    // everything else IPv6 stops here, counted.
    line(
        out,
        2,
        format!(
            "meta nfproto ipv6 counter name {} drop comment \"ipv6 to the node\"",
            quote(counters::IPV6_INPUT)
        ),
    );
    line(out, 2, "icmp type echo-request counter accept");
    if !input.ha_peers.is_empty() {
        // Keyed by address and interface together: on an interface with
        // loose rp_filter the interface check is what stops a spoofed peer
        // address arriving on a data interface.
        let elems: Vec<String> = input
            .ha_peers
            .iter()
            .map(|p| format!("{} . {}", p.address, quote(&p.ifname)))
            .collect();
        line(
            out,
            2,
            format!(
                "ip saddr . iifname {{ {} }} meta l4proto {{ tcp, udp }} th dport {port} counter accept comment \"ha peer\"",
                elems.join(", ")
            ),
        );
    }
    management(out, input);
    log_denied(out, input);
    line(out, 2, "counter drop comment \"input default deny\"");
    line(out, 1, "}");
}

/// With `[policy.logging] default_deny`, what the final drop is about to
/// drop from a zone's data interfaces is logged with the zone's name (the
/// management interface is in no zone: its scans are not traffic).
fn log_denied(out: &mut String, input: &Input<'_>) {
    let logging = &input.dep.policy.logging;
    if !logging.default_deny {
        return;
    }
    for zone in &input.dep.policy.zones {
        let names: Vec<String> = input
            .interfaces
            .iter()
            .filter(|i| i.role.is_data() && zone.interfaces.contains(&i.role))
            .map(|i| quote(&i.ifname))
            .collect();
        if names.is_empty() {
            continue;
        }
        let prefix = crate::logging::input_deny_prefix(&zone.name);
        if prefix.len() > crate::logging::MAX_PREFIX {
            continue;
        }
        line(
            out,
            2,
            format!(
                "iifname {{ {} }} {}",
                names.join(", "),
                super::compile::log_statement(&prefix, logging.group)
            ),
        );
    }
}

/// SSH and the API on the management interface, from `allow` only. Not
/// left to the policy's rules: without it the first apply would lock the
/// operator out of the node.
fn management(out: &mut String, input: &Input<'_>) {
    let m = &input.dep.policy.management;
    let mut ports = vec![22u16];
    ports.extend(m.api_port.filter(|p| *p != 22));
    let ports = match ports.as_slice() {
        [one] => one.to_string(),
        many => format!(
            "{{ {} }}",
            many.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    for i in input
        .interfaces
        .iter()
        .filter(|i| i.role == EniRole::Management)
    {
        let allow: Vec<Prefix> = match &m.allow {
            Some(list) => list.clone(),
            None => vec![Prefix(i.network.0)],
        };
        let nets = ipnet::Ipv4Net::aggregate(&allow.iter().map(|p| p.0).collect::<Vec<_>>());
        let nets: Vec<String> = nets.iter().map(super::compile::net).collect();
        let sources = match nets.as_slice() {
            [one] => one.clone(),
            many => format!("{{ {} }}", many.join(", ")),
        };
        if !nets.is_empty() {
            line(
                out,
                2,
                format!(
                    "iifname {} ip saddr {sources} tcp dport {ports} counter accept comment \"management access\"",
                    quote(&i.ifname)
                ),
            );
        }
        line(
            out,
            2,
            format!(
                "iifname {} tcp dport {ports} counter name {} drop comment \"management from elsewhere\"",
                quote(&i.ifname),
                quote(counters::MANAGEMENT)
            ),
        );
    }
}
