//! The firewalls' security group, as data: the one list of ingress rules
//! that `plan terraform` renders and the lab's emulated VPC enforces, so a
//! rule missing here fails in the lab before it fails on the cloud.
//!
//! One group holds every firewall ENI, with `inner_access_policy = Drop`:
//! only these rules reach a firewall. Groups are stateful (replies need no
//! rule) and egress is open.

use crate::spec::{Action, Deployment, EniRole, PortRange, Protocol, L4};

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

/// Ingress rules in a stable order: HA1 heartbeats (UDP; nodes, then
/// paths, as written), HA2 (TCP, same port), management (SSH and the API
/// port), then the policy's accept rules as written. Identical rules are
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
    // HA2 is TCP on the same port: session sync and config sync, between
    // the HA2 ENIs (the lower node id dials, so both ends need the rule).
    for node in &dep.nodes {
        let Some(eni) = dep
            .instance(&node.name)
            .and_then(|i| i.eni_by_role(EniRole::Ha2))
        else {
            continue;
        };
        let why = format!(
            "HA2 session and config sync (TCP {}) from {}",
            ha.port, node.name
        );
        add("tcp", format!("{}/32", eni.primary_ip), Some(port), why);
    }
    // SSH and the API port from the management sources, as the node's
    // own input chain allows them (left out: each node's management
    // vSwitch). The ruleset still limits them to the management ENI.
    let m = &dep.policy.management;
    let sources: Vec<(String, String)> = match &m.allow {
        Some(list) => list
            .iter()
            .map(|p| (p.0.to_string(), "policy.management.allow".to_string()))
            .collect(),
        None => dep
            .nodes
            .iter()
            .filter_map(|n| {
                let inst = dep.instance(&n.name)?;
                let eni = inst.eni_by_role(EniRole::Management)?;
                let cidr = crate::query::eni_cidr(dep, eni)?;
                Some((cidr.to_string(), format!("{}'s management vSwitch", n.name)))
            })
            .collect(),
    };
    let mut services = vec![(22u16, "SSH")];
    services.extend(m.api_port.filter(|p| *p != 22).map(|p| (p, "the hafw API")));
    for (cidr, from) in &sources {
        for (p, what) in &services {
            let why = format!("management: {what} (TCP {p}) from {from}");
            add(
                "tcp",
                cidr.clone(),
                Some(PortRange {
                    first: *p,
                    last: *p,
                }),
                why,
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(edit: impl FnOnce(&mut String)) -> Deployment {
        let mut text = crate::examples::SEED.to_string();
        edit(&mut text);
        crate::parse("seed.toml", &text).expect("the seed validates")
    }

    fn find<'a>(rules: &'a [Ingress], proto: &str, cidr: &str, port: u16) -> Option<&'a Ingress> {
        rules.iter().find(|r| {
            r.proto == proto
                && r.cidr == cidr
                && r.ports
                    == Some(PortRange {
                        first: port,
                        last: port,
                    })
        })
    }

    #[test]
    fn the_pair_reaches_itself_over_ha1_and_ha2() {
        let rules = ingress(&seed(|_| {}));
        for ip in ["10.0.0.11", "10.0.0.12", "10.0.3.11", "10.0.3.12"] {
            let r = find(&rules, "udp", &format!("{ip}/32"), 28_780);
            assert!(r.is_some(), "no HA1 rule from {ip}: {rules:#?}");
        }
        for ip in ["10.0.3.11", "10.0.3.12"] {
            let r = find(&rules, "tcp", &format!("{ip}/32"), 28_780)
                .unwrap_or_else(|| panic!("no HA2 rule from {ip}: {rules:#?}"));
            assert!(r.why[0].contains("HA2"), "{r:?}");
        }
        // Not from the management addresses: HA2 runs between the HA2 ENIs.
        assert!(find(&rules, "tcp", "10.0.0.11/32", 28_780).is_none());
    }

    #[test]
    fn management_is_open_to_the_allowed_sources_only() {
        let rules = ingress(&seed(|t| {
            *t = t.replace("# api_port = 9100", "api_port = 9100");
            *t = t.replace("allow = [\"10.0.0.0/24\"]", "allow = [\"192.0.2.0/28\"]");
        }));
        assert!(
            find(&rules, "tcp", "192.0.2.0/28", 22).is_some(),
            "{rules:#?}"
        );
        assert!(
            find(&rules, "tcp", "192.0.2.0/28", 9100).is_some(),
            "{rules:#?}"
        );
        let mgmt: Vec<_> = rules
            .iter()
            .filter(|r| r.why.iter().any(|w| w.starts_with("management")))
            .collect();
        assert_eq!(mgmt.len(), 2, "{mgmt:#?}");
        // No API rule unless the port is set.
        let rules = ingress(&seed(|_| {}));
        assert!(find(&rules, "tcp", "10.0.0.0/24", 22).is_some());
        assert!(!rules
            .iter()
            .any(|r| r.ports.is_some_and(|p| p.first == 9100)));
    }

    #[test]
    fn left_out_allow_means_each_management_vswitch_merged_once() {
        let rules = ingress(&seed(|t| {
            *t = t.replace("allow = [\"10.0.0.0/24\"]", "");
        }));
        let ssh: Vec<_> = rules
            .iter()
            .filter(|r| r.proto == "tcp" && r.ports.is_some_and(|p| p.first == 22))
            .collect();
        assert_eq!(ssh.len(), 1, "{ssh:#?}");
        assert_eq!(ssh[0].cidr, "10.0.0.0/24");
        assert_eq!(
            ssh[0].why.len(),
            2,
            "both nodes' reasons kept: {:?}",
            ssh[0].why
        );
    }
}
