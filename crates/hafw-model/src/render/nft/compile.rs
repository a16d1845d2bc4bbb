//! Security rules to zone-pair chains: runs of same-verdict rules become
//! set lookups (the module doc of `nft.rs` explains the scheme).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use super::syntax::{line, quote};
use crate::spec::{Action, Deployment, PortRange, Protocol, Rule};

/// One zone pair with its rules, in policy order.
pub(super) struct Pair<'d> {
    pub from: &'d str,
    pub to: &'d str,
    pub chain: String,
    pub rules: Vec<Compiled<'d>>,
}

/// What a rule matches on, the protocol decides which packet fields a set
/// key holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Shape {
    Any,
    Tcp,
    Udp,
    Icmp,
    /// Protocol `any` with ports: ports exist only for TCP and UDP.
    TcpUdp,
}

impl Shape {
    fn of(rule: &Rule) -> Result<Shape, String> {
        match (rule.protocol, rule.ports.is_empty()) {
            (Protocol::Any, true) => Ok(Shape::Any),
            (Protocol::Any, false) => Ok(Shape::TcpUdp),
            (Protocol::Tcp, _) => Ok(Shape::Tcp),
            (Protocol::Udp, _) => Ok(Shape::Udp),
            (Protocol::Icmp, true) => Ok(Shape::Icmp),
            (Protocol::Icmp, false) => Err(format!(
                "rule `{}` gives ports for protocol icmp, which has none; remove `ports` or use tcp or udp",
                rule.name
            )),
        }
    }

    fn set_type(self) -> &'static str {
        match self {
            Shape::Any | Shape::Icmp => "ipv4_addr . ipv4_addr",
            Shape::Tcp | Shape::Udp => "ipv4_addr . ipv4_addr . inet_service",
            Shape::TcpUdp => "ipv4_addr . ipv4_addr . inet_proto . inet_service",
        }
    }

    fn lookup(self) -> &'static str {
        match self {
            Shape::Any => "ip saddr . ip daddr",
            Shape::Icmp => "meta l4proto icmp ip saddr . ip daddr",
            Shape::Tcp => "meta l4proto tcp ip saddr . ip daddr . th dport",
            Shape::Udp => "meta l4proto udp ip saddr . ip daddr . th dport",
            Shape::TcpUdp => "ip saddr . ip daddr . meta l4proto . th dport",
        }
    }

    fn protocols(self) -> &'static [(u8, &'static str)] {
        match self {
            Shape::TcpUdp => &[(6, "tcp"), (17, "udp")],
            _ => &[(0, "")],
        }
    }

    fn has_ports(self) -> bool {
        matches!(self, Shape::Tcp | Shape::Udp | Shape::TcpUdp)
    }

    fn verdict(self, action: Action) -> &'static str {
        match (action, self) {
            (Action::Accept, _) => "accept",
            (Action::Drop, _) => "drop",
            (Action::Reject, Shape::Tcp) => "reject with tcp reset",
            (Action::Reject, _) => "reject with icmp type admin-prohibited",
        }
    }
}

/// A rule with its address and port lists reduced to the fewest disjoint
/// pieces (contained prefixes dropped, adjacent ones merged, port ranges
/// merged). Empty means any.
pub(super) struct Compiled<'d> {
    rule: &'d Rule,
    shape: Shape,
    sources: Vec<Ipv4Net>,
    destinations: Vec<Ipv4Net>,
    ports: Vec<PortRange>,
}

impl<'d> Compiled<'d> {
    fn new(rule: &'d Rule) -> Result<Self, String> {
        let nets = |list: &[crate::addr::Prefix]| {
            Ipv4Net::aggregate(&list.iter().map(|p| p.0).collect::<Vec<_>>())
        };
        Ok(Compiled {
            rule,
            shape: Shape::of(rule)?,
            sources: nets(&rule.source),
            destinations: nets(&rule.destination),
            ports: merge_ports(&rule.ports),
        })
    }

    fn run_key(&self) -> (Action, Shape) {
        (self.rule.action, self.shape)
    }
}

fn merge_ports(ports: &[PortRange]) -> Vec<PortRange> {
    let mut sorted = ports.to_vec();
    sorted.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(sorted.len());
    for p in sorted {
        match out.last_mut() {
            Some(last) if u32::from(p.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(p.last)
            }
            _ => out.push(p),
        }
    }
    out
}

/// Groups the rules by zone pair, pairs in order of their first rule.
pub(super) fn zone_pairs<'d>(
    dep: &'d Deployment,
    zones: &BTreeMap<&str, Vec<String>>,
) -> Result<Vec<Pair<'d>>, String> {
    let mut pairs: Vec<Pair<'d>> = Vec::new();
    let mut index: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut taken: BTreeSet<String> = ["input", "output", "forward", "prerouting", "postrouting"]
        .into_iter()
        .map(String::from)
        .collect();
    for rule in &dep.policy.rules {
        for zone in [&rule.from, &rule.to] {
            if !zones.contains_key(zone.as_str()) {
                return Err(format!(
                    "rule `{}` names zone `{zone}`, which is not a [[policy.zone]]; define the zone or correct the rule",
                    rule.name
                ));
            }
        }
        let key = (rule.from.as_str(), rule.to.as_str());
        let at = *index.entry(key).or_insert_with(|| {
            pairs.push(Pair {
                from: key.0,
                to: key.1,
                chain: super::pair_chain_name(key.0, key.1, &mut taken),
                rules: Vec::new(),
            });
            pairs.len() - 1
        });
        pairs[at].rules.push(Compiled::new(rule)?);
    }
    Ok(pairs)
}

/// The verdict map from (input interface, output interface) to the chain of
/// their zone pair.
pub(super) fn zone_pair_map(
    out: &mut String,
    pairs: &[Pair<'_>],
    zones: &BTreeMap<&str, Vec<String>>,
) -> Result<(), String> {
    let mut elements = Vec::new();
    for pair in pairs {
        let (Some(ins), Some(outs)) = (zones.get(pair.from), zones.get(pair.to)) else {
            return Err(format!(
                "zone pair {} -> {} lost its zones while rendering; this is a bug in hafw",
                pair.from, pair.to
            ));
        };
        for i in ins {
            for o in outs {
                elements.push(format!("{} . {} : goto {}", quote(i), quote(o), pair.chain));
            }
        }
    }
    line(out, 1, "map zone_pairs {");
    line(out, 2, "type ifname . ifname : verdict");
    if !elements.is_empty() {
        line(out, 2, "elements = {");
        for e in &elements {
            line(out, 3, format!("{e},"));
        }
        line(out, 2, "}");
    }
    line(out, 1, "}");
    Ok(())
}

/// One nft rule of a pair's chain, in order.
pub(super) enum Step<'a, 'd> {
    /// A run of one rule, rendered with anonymous sets.
    Single(&'a Compiled<'d>),
    /// One set of a grouped run and the rule that looks it up.
    Lookup {
        set: String,
        run: &'a [Compiled<'d>],
        elements: Vec<Element>,
    },
}

/// Cuts the pair's rules into runs and the runs into steps.
pub(super) fn steps<'a, 'd>(pair: &'a Pair<'d>) -> Vec<Step<'a, 'd>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut run_no = 0;
    while start < pair.rules.len() {
        let key = pair.rules[start].run_key();
        let len = pair.rules[start..]
            .iter()
            .take_while(|r| r.run_key() == key)
            .count();
        let run = &pair.rules[start..start + len];
        run_no += 1;
        if let [single] = run {
            out.push(Step::Single(single));
        } else {
            let shards = shard(run.iter().enumerate().flat_map(|(i, c)| elements(i, c)));
            for (k, elements) in shards.into_iter().enumerate() {
                let set = match k {
                    0 => format!("{}_g{run_no}", pair.chain),
                    k => format!("{}_g{run_no}_{}", pair.chain, k + 1),
                };
                out.push(Step::Lookup { set, run, elements });
            }
        }
        start += len;
    }
    out
}

/// The pair's chain, preceded by the sets its grouped runs look up.
pub(super) fn pair_chain(out: &mut String, pair: &Pair<'_>) {
    let steps = steps(pair);
    for step in &steps {
        if let Step::Lookup { set, run, elements } = step {
            set_declaration(out, set, run, elements);
        }
    }
    line(out, 1, format!("chain {} {{", pair.chain));
    for step in &steps {
        let text = match step {
            Step::Single(c) => single_rule(c),
            Step::Lookup { set, run, .. } => lookup_rule(set, run),
        };
        line(out, 2, text);
    }
    line(
        out,
        2,
        format!(
            "counter drop comment {}",
            quote(&format!("default deny {} -> {}", pair.from, pair.to))
        ),
    );
    line(out, 1, "}");
}

fn single_rule(c: &Compiled<'_>) -> String {
    let mut parts: Vec<String> = Vec::new();
    match c.shape {
        Shape::Icmp => parts.push("meta l4proto icmp".into()),
        Shape::TcpUdp => parts.push("meta l4proto { tcp, udp }".into()),
        Shape::Tcp | Shape::Udp if c.ports.is_empty() => {
            parts.push(format!("meta l4proto {}", protocol_name(c.shape)))
        }
        _ => {}
    }
    if !c.sources.is_empty() {
        parts.push(format!("ip saddr {}", anon_set(c.sources.iter().map(net))));
    }
    if !c.destinations.is_empty() {
        parts.push(format!(
            "ip daddr {}",
            anon_set(c.destinations.iter().map(net))
        ));
    }
    if !c.ports.is_empty() {
        let field = match c.shape {
            Shape::TcpUdp => "th",
            _ => protocol_name(c.shape),
        };
        parts.push(format!(
            "{field} dport {}",
            anon_set(c.ports.iter().map(|p| p.to_string()))
        ));
    }
    parts.push("counter".into());
    parts.push(c.shape.verdict(c.rule.action).into());
    parts.push(format!(
        "comment {}",
        quote(&format!("rule {}", c.rule.name))
    ));
    parts.join(" ")
}

fn protocol_name(shape: Shape) -> &'static str {
    match shape {
        Shape::Udp => "udp",
        _ => "tcp",
    }
}

fn anon_set(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.as_slice() {
        [one] => one.clone(),
        _ => format!("{{ {} }}", items.join(", ")),
    }
}

fn net(n: &Ipv4Net) -> String {
    crate::addr::Prefix(*n).to_string()
}

fn set_declaration(out: &mut String, name: &str, run: &[Compiled<'_>], elements: &[Element]) {
    let shape = run[0].shape;
    line(out, 1, format!("set {name} {{"));
    line(out, 2, format!("type {}", shape.set_type()));
    line(out, 2, "flags interval");
    line(out, 2, "counter");
    line(out, 2, "elements = {");
    for e in elements {
        let comment = quote(&format!("rule {}", run[e.rule].rule.name));
        line(out, 3, format!("{} comment {comment},", e.text(shape)));
    }
    line(out, 2, "}");
    line(out, 1, "}");
}

fn lookup_rule(set: &str, run: &[Compiled<'_>]) -> String {
    let shape = run[0].shape;
    let (first, last) = (&run[0].rule.name, &run[run.len() - 1].rule.name);
    let comment = format!("rules {first} .. {last} ({} rules)", run.len());
    format!(
        "{} @{set} counter {} comment {}",
        shape.lookup(),
        shape.verdict(run[0].rule.action),
        quote(&comment)
    )
}

/// One box of the rule's cross product: the key's range in each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Element {
    src: Ipv4Net,
    dst: Ipv4Net,
    proto: (u8, &'static str),
    ports: PortRange,
    /// Index of the rule in its run.
    rule: usize,
    lo: [u32; 4],
    hi: [u32; 4],
}

const ANY_NET: Ipv4Net = match Ipv4Net::new(std::net::Ipv4Addr::UNSPECIFIED, 0) {
    Ok(n) => n,
    Err(_) => panic!("0.0.0.0/0 is a valid network"),
};
const ANY_PORT: PortRange = PortRange {
    first: 0,
    last: u16::MAX,
};

fn elements(rule: usize, c: &Compiled<'_>) -> Vec<Element> {
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
    fn holds(&self, p: &[u32; 4]) -> bool {
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

    fn text(&self, shape: Shape) -> String {
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
fn shard(elements: impl Iterator<Item = Element>) -> Vec<Vec<Element>> {
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

#[cfg(test)]
pub(super) mod probe {
    //! Test access: element placement, and first-match evaluation of a
    //! pair's compiled steps against the policy as written.
    use super::*;
    use crate::addr::Ip;
    use std::net::Ipv4Addr;

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
}
