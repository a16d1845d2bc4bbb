//! The firewalls' security group, as data: the one list of ingress rules
//! that `plan terraform` renders and the lab's emulated VPC enforces, so a
//! rule missing here fails in the lab before it fails on the cloud.
//!
//! One group holds every firewall ENI, with `inner_access_policy = Drop`:
//! only these rules reach a firewall. Groups are stateful (replies need no
//! rule) and egress is open.

use crate::spec::{Action, Deployment, PortRange, Protocol, L4};

/// One ingress rule: accept `proto` on `ports` from `cidr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    /// `tcp`, `udp`, `icmp` or `all`, as the cloud spells them.
    pub proto: &'static str,
    pub cidr: String,
    /// `None`: every port (ICMP and `all`).
    pub ports: Option<PortRange>,
    /// Why the rule exists, one reason per merged source.
    pub why: Vec<String>,
}

/// Ingress rules in a stable order: heartbeats (nodes, then paths, as
/// written), then the policy's accept rules as written. Identical rules are
/// merged, because the cloud refuses a duplicate rule in one group.
pub fn ingress(dep: &Deployment) -> Vec<Ingress> {
    let mut out: Vec<Ingress> = Vec::new();
    let mut add =
        |proto: &'static str, cidr: String, ports: Option<PortRange>, why: String| match out
            .iter_mut()
            .find(|r| r.proto == proto && r.cidr == cidr && r.ports == ports)
        {
            Some(r) => r.why.push(why),
            None => out.push(Ingress {
                proto,
                cidr,
                ports,
                why: vec![why],
            }),
        };
    let ha = &dep.policy.ha;
    let port = PortRange {
        first: ha.port,
        last: ha.port,
    };
    for node in &dep.nodes {
        let Some(inst) = dep.instance(&node.name) else {
            continue;
        };
        for role in &ha.paths {
            if let Some(eni) = inst.eni_by_role(*role) {
                let why = format!(
                    "HA heartbeats (UDP {}) from {} over its {} path",
                    ha.port,
                    node.name,
                    role.as_str()
                );
                add("udp", format!("{}/32", eni.primary_ip), Some(port), why);
            }
        }
    }
    for rule in dep
        .policy
        .rules
        .iter()
        .filter(|r| r.action == Action::Accept)
    {
        let sources: Vec<String> = if rule.source.is_empty() {
            vec!["0.0.0.0/0".into()]
        } else {
            rule.source.iter().map(|p| p.0.to_string()).collect()
        };
        let (proto, ports) = match rule.protocol {
            Protocol::Any => ("all", vec![None]),
            Protocol::Icmp => ("icmp", vec![None]),
            Protocol::Tcp => ("tcp", arrival_ports(dep, rule, L4::Tcp)),
            Protocol::Udp => ("udp", arrival_ports(dep, rule, L4::Udp)),
        };
        for src in &sources {
            for p in &ports {
                add(proto, src.clone(), *p, format!("policy rule {}", rule.name));
            }
        }
    }
    out
}

/// The ports a rule's traffic has when it reaches the ENI. A rule names the
/// port after DNAT; the security group sees the one before it, so a DNAT
/// that translates into the rule adds its outside port.
fn arrival_ports(dep: &Deployment, rule: &crate::spec::Rule, proto: L4) -> Vec<Option<PortRange>> {
    if rule.ports.is_empty() {
        return vec![Some(PortRange {
            first: 1,
            last: 65535,
        })];
    }
    let mut out: Vec<Option<PortRange>> = rule.ports.iter().map(|p| Some(*p)).collect();
    for d in dep.policy.nat.dnat.iter().filter(|d| d.protocol == proto) {
        let inside = d.to_port.unwrap_or(d.port);
        let to_rule_port = rule
            .ports
            .iter()
            .any(|p| p.first <= inside && inside <= p.last);
        let to_rule_dest = rule.destination.is_empty()
            || rule.destination.iter().any(|p| p.contains(d.to_address));
        let outside = Some(PortRange {
            first: d.port,
            last: d.port,
        });
        if to_rule_port && to_rule_dest && !out.contains(&outside) {
            out.push(outside);
        }
    }
    out
}
