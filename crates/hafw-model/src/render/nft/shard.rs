//! Placing a grouped run's elements into sets the kernel accepts.

use ipnet::Ipv4Net;

use super::compile::{net, Compiled, Shape};
use crate::spec::PortRange;

/// One box of the rule's cross product: the key's range in each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Element {
    pub(super) src: Ipv4Net,
    pub(super) dst: Ipv4Net,
    pub(super) proto: (u8, &'static str),
    pub(super) ports: PortRange,
    /// Index of the rule in its run.
    pub(super) rule: usize,
    pub(super) lo: [u32; 4],
    pub(super) hi: [u32; 4],
}

const ANY_NET: Ipv4Net = match Ipv4Net::new(std::net::Ipv4Addr::UNSPECIFIED, 0) {
    Ok(n) => n,
    Err(_) => panic!("0.0.0.0/0 is a valid network"),
};
const ANY_PORT: PortRange = PortRange {
    first: 0,
    last: u16::MAX,
};

pub(super) fn elements(rule: usize, c: &Compiled<'_>) -> Vec<Element> {
    let or_any = |v: &[Ipv4Net]| {
        if v.is_empty() {
            vec![ANY_NET]
        } else {
            v.to_vec()
        }
    };
    let ports = match (c.shape.has_ports(), c.ports.is_empty()) {
        (true, false) => c.ports.clone(),
        (true, true) => vec![ANY_PORT],
        // Keys without a port field: one placeholder range that never
        // reaches the text.
        (false, _) => vec![PortRange { first: 0, last: 0 }],
    };
    let mut out = Vec::new();
    for src in or_any(&c.sources) {
        for dst in or_any(&c.destinations) {
            for &proto in c.shape.protocols() {
                for &p in &ports {
                    out.push(Element {
                        src,
                        dst,
                        proto,
                        ports: p,
                        rule,
                        lo: [
                            u32::from(src.network()),
                            u32::from(dst.network()),
                            u32::from(proto.0),
                            u32::from(p.first),
                        ],
                        hi: [
                            u32::from(src.broadcast()),
                            u32::from(dst.broadcast()),
                            u32::from(proto.0),
                            u32::from(p.last),
                        ],
                    });
                }
            }
        }
    }
    out
}

// Written out by hand rather than with iterators: these run E x E times
// for a run of E elements, and unoptimised test builds do not inline
// closures.
impl Element {
    pub(super) fn holds(&self, p: &[u32; 4]) -> bool {
        let (lo, hi) = (&self.lo, &self.hi);
        lo[0] <= p[0]
            && p[0] <= hi[0]
            && lo[1] <= p[1]
            && p[1] <= hi[1]
            && lo[2] <= p[2]
            && p[2] <= hi[2]
            && lo[3] <= p[3]
            && p[3] <= hi[3]
    }

    fn covers(&self, other: &Element) -> bool {
        self.holds(&other.lo) && self.holds(&other.hi)
    }

    /// Whether the kernel could refuse the two in one set: a corner of
    /// either inside the other (checked both ways, because nft may send
    /// elements in another order than they are written).
    fn conflicts(&self, other: &Element) -> bool {
        let (a, b) = (self, other);
        let overlap = a.lo[0] <= b.hi[0]
            && b.lo[0] <= a.hi[0]
            && a.lo[1] <= b.hi[1]
            && b.lo[1] <= a.hi[1]
            && a.lo[3] <= b.hi[3]
            && b.lo[3] <= a.hi[3]
            && a.lo[2] == b.lo[2];
        overlap && (a.holds(&b.lo) || a.holds(&b.hi) || b.holds(&a.lo) || b.holds(&a.hi))
    }

    pub(super) fn text(&self, shape: Shape) -> String {
        let mut s = format!("{} . {}", net(&self.src), net(&self.dst));
        if shape == Shape::TcpUdp {
            s.push_str(" . ");
            s.push_str(self.proto.1);
        }
        if shape.has_ports() {
            s.push_str(" . ");
            s.push_str(&self.ports.to_string());
        }
        s
    }
}

/// Places each element, in rule order, in the first set where it conflicts
/// with nothing. An element inside an earlier one of the run is dropped: the
/// earlier one decides every packet it would.
pub(super) fn shard(elements: impl Iterator<Item = Element>) -> Vec<Vec<Element>> {
    let mut shards: Vec<Vec<Element>> = Vec::new();
    'next: for e in elements {
        let mut target = None;
        for (k, shard) in shards.iter().enumerate() {
            let mut clash = false;
            for x in shard {
                if x.covers(&e) {
                    continue 'next;
                }
                clash = clash || x.conflicts(&e);
            }
            if !clash && target.is_none() {
                target = Some(k);
            }
        }
        match target {
            Some(k) => shards[k].push(e),
            None => shards.push(vec![e]),
        }
    }
    shards
}
