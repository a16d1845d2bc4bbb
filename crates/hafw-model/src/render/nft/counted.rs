//! The counted objects of the ruleset an operator asks about (`hafw
//! rules`): each security rule, each zone pair's default deny, the
//! forward chain's deny of unconnected zones, each DNAT and SNAT. Each is
//! known in the kernel by its comment, which is also its key: a single
//! rule's counter and each of a grouped rule's set elements carry
//! `comment "rule NAME"` (compile.rs), so a renamed rule is a new key.

use std::collections::BTreeSet;

use crate::spec::{Action, Deployment};

/// What kind of counted object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rule,
    DefaultDeny,
    Dnat,
    Snat,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rule => "rule",
            Kind::DefaultDeny => "default-deny",
            Kind::Dnat => "dnat",
            Kind::Snat => "snat",
        }
    }
}

/// One counted object, in the order `hafw rules` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// The comment the kernel's counters carry: the key.
    pub key: String,
    pub kind: Kind,
    /// The rule's (or NAT's) name; for a default deny, `FROM -> TO`.
    pub name: String,
    /// The zone pair (empty for NAT and the unconnected deny).
    pub from: String,
    pub to: String,
    /// accept, drop, reject, dnat or snat.
    pub action: &'static str,
}

/// The comment of the forward chain's drop for zones no rule connects.
pub const UNCONNECTED: &str = "default deny: no rule connects these zones";

/// The key of a security rule's counters.
pub fn rule_key(name: &str) -> String {
    format!("rule {name}")
}

/// Every counted object of `dep`'s ruleset: the rules in policy order,
/// then the zone pairs' default denies (pairs in order of their first
/// rule, as the chains are), the unconnected deny, the DNATs, the SNATs.
pub fn counted(dep: &Deployment) -> Vec<Counted> {
    let mut out = Vec::new();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &dep.policy.rules {
        out.push(Counted {
            key: rule_key(&r.name),
            kind: Kind::Rule,
            name: r.name.clone(),
            from: r.from.clone(),
            to: r.to.clone(),
            action: match r.action {
                Action::Accept => "accept",
                Action::Drop => "drop",
                Action::Reject => "reject",
            },
        });
        if seen.insert((r.from.as_str(), r.to.as_str())) {
            pairs.push((&r.from, &r.to));
        }
    }
    for (from, to) in pairs {
        out.push(Counted {
            key: format!("default deny {from} -> {to}"),
            kind: Kind::DefaultDeny,
            name: format!("{from} -> {to}"),
            from: from.into(),
            to: to.into(),
            action: "drop",
        });
    }
    out.push(Counted {
        key: UNCONNECTED.into(),
        kind: Kind::DefaultDeny,
        name: "unconnected zones".into(),
        from: String::new(),
        to: String::new(),
        action: "drop",
    });
    for d in &dep.policy.nat.dnat {
        out.push(nat(Kind::Dnat, "dnat", &d.name));
    }
    for s in &dep.policy.nat.snat {
        out.push(nat(Kind::Snat, "snat", &s.name));
    }
    out
}

fn nat(kind: Kind, action: &'static str, name: &str) -> Counted {
    Counted {
        key: format!("{action} {name}"),
        kind,
        name: name.into(),
        from: String::new(),
        to: String::new(),
        action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::node::plan;

    /// Every key is a comment of the rendered ruleset, on a counted rule or
    /// set element: a key the kernel never shows would read 0 for ever.
    #[test]
    fn every_key_is_a_counted_comment_of_the_ruleset() {
        let dep = crate::parse("seed", crate::examples::SEED).unwrap();
        let p = plan(&dep, "fw-a").unwrap();
        let list = counted(&dep);
        assert!(list.len() >= 6, "{list:?}");
        for c in &list {
            let quoted = format!("comment \"{}\"", c.key);
            let line = p
                .ruleset
                .text
                .lines()
                .find(|l| l.contains(&quoted))
                .unwrap_or_else(|| panic!("{} not in the ruleset", c.key));
            assert!(line.contains("counter"), "{line}");
        }
        let kinds: Vec<&str> = list.iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "rule",
                "rule",
                "default-deny",
                "default-deny",
                "default-deny",
                "dnat",
                "snat"
            ]
        );
        assert_eq!(list[0].key, "rule web-in");
        assert_eq!(list[2].key, "default deny untrust -> trust");
    }

    #[test]
    fn keys_are_unique() {
        let dep = crate::parse("seed", crate::examples::SEED).unwrap();
        let list = counted(&dep);
        let keys: BTreeSet<&str> = list.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys.len(), list.len());
    }
}
