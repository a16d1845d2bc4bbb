//! Test access: element placement, and first-match evaluation of a pair's
//! compiled steps against the policy as written.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::compile::{Shape, Step};
use super::shard::{shard, Element};
use crate::addr::Ip;
use crate::spec::{Action, PortRange, Protocol, Rule};

/// Shards of a run given as (source, destination, first port, last port).
pub fn shard_sizes(boxes: &[(&str, &str, u16, u16)]) -> Vec<usize> {
    let els = boxes.iter().enumerate().map(|(i, (s, d, a, b))| {
        let src: Ipv4Net = s.parse().unwrap();
        let dst: Ipv4Net = d.parse().unwrap();
        Element {
            src,
            dst,
            proto: (0, ""),
            ports: PortRange {
                first: *a,
                last: *b,
            },
            rule: i,
            lo: [src.network().into(), dst.network().into(), 0, u32::from(*a)],
            hi: [
                src.broadcast().into(),
                dst.broadcast().into(),
                0,
                u32::from(*b),
            ],
        }
    });
    shard(els).iter().map(Vec::len).collect()
}

#[derive(Clone, Copy, Debug)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol number: 1 icmp, 6 tcp, 17 udp.
    pub proto: u8,
    pub dport: u16,
}

/// First match over the rules as written, one by one.
pub fn linear(rules: &[&Rule], p: &Packet) -> Option<Action> {
    let addr = |list: &[crate::addr::Prefix], a: Ipv4Addr| {
        list.is_empty() || list.iter().any(|x| x.contains(Ip(a)))
    };
    let port = |ports: &[PortRange]| {
        ports
            .iter()
            .any(|r| r.first <= p.dport && p.dport <= r.last)
    };
    rules
        .iter()
        .find(|r| {
            let l4 = match (r.protocol, r.ports.is_empty()) {
                (Protocol::Any, true) => true,
                (Protocol::Any, false) => matches!(p.proto, 6 | 17) && port(&r.ports),
                (Protocol::Tcp, e) => p.proto == 6 && (e || port(&r.ports)),
                (Protocol::Udp, e) => p.proto == 17 && (e || port(&r.ports)),
                (Protocol::Icmp, _) => p.proto == 1,
            };
            l4 && addr(&r.source, p.src) && addr(&r.destination, p.dst)
        })
        .map(|r| r.action)
}

/// First match over the steps the chain is rendered from.
pub fn compiled(steps: &[Step<'_, '_>], p: &Packet) -> Option<Action> {
    let proto_ok = |shape: Shape| match shape {
        Shape::Tcp => p.proto == 6,
        Shape::Udp => p.proto == 17,
        Shape::Icmp => p.proto == 1,
        Shape::TcpUdp => matches!(p.proto, 6 | 17),
        Shape::Any => true,
    };
    for step in steps {
        let (hit, action) = match step {
            Step::Single(c) => {
                let addr = |nets: &[Ipv4Net], a: Ipv4Addr| {
                    nets.is_empty() || nets.iter().any(|n| n.contains(&a))
                };
                let ports = !c.shape.has_ports()
                    || c.ports.is_empty()
                    || c.ports
                        .iter()
                        .any(|r| r.first <= p.dport && p.dport <= r.last);
                (
                    proto_ok(c.shape)
                        && ports
                        && addr(&c.sources, p.src)
                        && addr(&c.destinations, p.dst),
                    c.rule.action,
                )
            }
            Step::Lookup { run, elements, .. } => {
                let shape = run[0].shape;
                let elements = elements.as_slice();
                let point = [
                    u32::from(p.src),
                    u32::from(p.dst),
                    if shape == Shape::TcpUdp {
                        u32::from(p.proto)
                    } else {
                        0
                    },
                    if shape.has_ports() {
                        u32::from(p.dport)
                    } else {
                        0
                    },
                ];
                (
                    proto_ok(shape) && elements.iter().any(|e| e.holds(&point)),
                    run[0].rule.action,
                )
            }
        };
        if hit {
            return Some(action);
        }
    }
    None
}
