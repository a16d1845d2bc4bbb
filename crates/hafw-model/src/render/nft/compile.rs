//! Security rules to zone-pair chains: runs of same-verdict rules become
//! set lookups (the module doc of `nft.rs` explains the scheme).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

use super::shard::{elements, shard, Element};
use super::syntax::{line, quote};
use crate::logging::{default_deny_prefix, rule_prefix, Logging, MAX_PREFIX};
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

    pub(super) fn protocols(self) -> &'static [(u8, &'static str)] {
        match self {
            Shape::TcpUdp => &[(6, "tcp"), (17, "udp")],
            _ => &[(0, "")],
        }
    }

    pub(super) fn has_ports(self) -> bool {
        matches!(self, Shape::Tcp | Shape::Udp | Shape::TcpUdp)
    }

    fn verdict(self, action: Action) -> &'static str {
        match (action, self) {
            (Action::Accept, _) => "accept",
            (Action::Drop, _) => "drop",
            (Action::Reject, Shape::Tcp) => "reject with tcp reset",
            (Action::Reject, _) => "reject with icmpx type admin-prohibited",
        }
    }
}

/// A rule with its address and port lists reduced to the fewest disjoint
/// pieces (contained prefixes dropped, adjacent ones merged, port ranges
/// merged). Empty means any.
pub(super) struct Compiled<'d> {
    pub(super) rule: &'d Rule,
    pub(super) shape: Shape,
    pub(super) sources: Vec<Ipv4Net>,
    pub(super) destinations: Vec<Ipv4Net>,
    pub(super) ports: Vec<PortRange>,
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
        if rule.log && rule_prefix(&rule.name).len() > MAX_PREFIX {
            return Err(format!(
                "rule `{}` has `log = true` but its name is longer than the {} bytes a log prefix holds after `rule `; shorten the name",
                rule.name,
                MAX_PREFIX - rule_prefix("").len()
            ));
        }
        let deny = default_deny_prefix(&rule.from, &rule.to);
        if dep.policy.logging.default_deny && deny.len() > MAX_PREFIX {
            return Err(format!(
                "the log prefix `{deny}` is longer than {MAX_PREFIX} bytes; shorten the zone names or set [policy.logging] default_deny = false"
            ));
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
        // A logged rule stays a run of its own: a set lookup logs with one
        // prefix for the whole run, and the log must name the rule.
        let len = if pair.rules[start].rule.log {
            1
        } else {
            pair.rules[start..]
                .iter()
                .take_while(|r| r.run_key() == key && !r.rule.log)
                .count()
        };
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
pub(super) fn pair_chain(out: &mut String, pair: &Pair<'_>, logging: &Logging) {
    let steps = steps(pair);
    for step in &steps {
        if let Step::Lookup { set, run, elements } = step {
            set_declaration(out, set, run, elements);
        }
    }
    line(out, 1, format!("chain {} {{", pair.chain));
    for step in &steps {
        let text = match step {
            Step::Single(c) => single_rule(c, logging.group),
            Step::Lookup { set, run, .. } => lookup_rule(set, run),
        };
        line(out, 2, text);
    }
    let deny = default_deny_prefix(pair.from, pair.to);
    let log = match logging.default_deny {
        true => format!("{} ", log_statement(&deny, logging.group)),
        false => String::new(),
    };
    line(
        out,
        2,
        format!("counter {log}drop comment {}", quote(&deny)),
    );
    line(out, 1, "}");
}

/// `log prefix "..." group N`: the packet goes to the daemon over NFLOG
/// (the group's copy range, set by the daemon, keeps it to the headers).
pub(super) fn log_statement(prefix: &str, group: u16) -> String {
    format!("log prefix {} group {group}", quote(prefix))
}

fn single_rule(c: &Compiled<'_>, group: u16) -> String {
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
    if c.rule.log {
        parts.push(log_statement(&rule_prefix(&c.rule.name), group));
    }
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

pub(super) fn net(n: &Ipv4Net) -> String {
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
