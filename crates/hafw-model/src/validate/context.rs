//! Name look-ups shared by the rules. Built once so that a large file does
//! not cost a linear search per reference, and so that every rule resolves
//! names the same way: the first declaration of a name wins (a duplicate is
//! reported by `names`), and a name that does not resolve yields `None`
//! (reported by `names` too), so the other rules simply skip it.

use std::collections::HashMap;

use crate::diag::{Diagnostic, Path};
use crate::spec::{Deployment, Eni, EniRole, Havip, Instance, VSwitch};

/// Where an ENI is declared: `cloud.instance[inst].eni[eni]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EniAt {
    pub inst: usize,
    pub eni: usize,
}

/// What a HAVIP member name resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Member {
    Eni(EniAt),
    Instance(usize),
}

pub(super) struct Context<'a> {
    pub dep: &'a Deployment,
    vswitches: HashMap<&'a str, usize>,
    instances: HashMap<&'a str, usize>,
    enis: HashMap<&'a str, EniAt>,
    havips: HashMap<&'a str, usize>,
    /// Instances named by a `[[node]]`, in node order, each once.
    pub firewalls: Vec<usize>,
}

fn first_wins<'a>(names: impl Iterator<Item = (&'a str, usize)>) -> HashMap<&'a str, usize> {
    let mut map = HashMap::new();
    for (name, i) in names {
        map.entry(name).or_insert(i);
    }
    map
}

impl<'a> Context<'a> {
    pub fn new(dep: &'a Deployment) -> Self {
        let cloud = &dep.cloud;
        let vswitches = first_wins(
            cloud
                .vswitches
                .iter()
                .enumerate()
                .map(|(i, v)| (v.name.as_str(), i)),
        );
        let instances = first_wins(
            cloud
                .instances
                .iter()
                .enumerate()
                .map(|(i, v)| (v.name.as_str(), i)),
        );
        let havips = first_wins(
            cloud
                .havips
                .iter()
                .enumerate()
                .map(|(i, v)| (v.name.as_str(), i)),
        );
        let mut enis = HashMap::new();
        for (inst, instance) in cloud.instances.iter().enumerate() {
            for (eni, e) in instance.enis.iter().enumerate() {
                enis.entry(e.name.as_str()).or_insert(EniAt { inst, eni });
            }
        }
        let mut firewalls = Vec::new();
        for node in &dep.nodes {
            if let Some(&i) = instances.get(node.name.as_str()) {
                if !firewalls.contains(&i) {
                    firewalls.push(i);
                }
            }
        }
        Context {
            dep,
            vswitches,
            instances,
            enis,
            havips,
            firewalls,
        }
    }

    pub fn vswitch(&self, name: &str) -> Option<&'a VSwitch> {
        self.vswitches
            .get(name)
            .map(|&i| &self.dep.cloud.vswitches[i])
    }
    pub fn instance_index(&self, name: &str) -> Option<usize> {
        self.instances.get(name).copied()
    }
    pub fn havip_index(&self, name: &str) -> Option<usize> {
        self.havips.get(name).copied()
    }
    pub fn havip(&self, name: &str) -> Option<&'a Havip> {
        self.havip_index(name).map(|i| &self.dep.cloud.havips[i])
    }
    pub fn eni_at(&self, name: &str) -> Option<EniAt> {
        self.enis.get(name).copied()
    }
    pub fn instance_at(&self, i: usize) -> &'a Instance {
        &self.dep.cloud.instances[i]
    }
    pub fn eni(&self, at: EniAt) -> &'a Eni {
        &self.dep.cloud.instances[at.inst].enis[at.eni]
    }

    /// ENI names win over instance names: a HAVIP that binds firewalls binds
    /// their data ENIs, so that is the reading that matches the design.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.eni_at(name)
            .map(Member::Eni)
            .or_else(|| self.instance_index(name).map(Member::Instance))
    }

    /// The ENI that stands for a member in its vSwitch: the ENI itself, or
    /// an instance's primary ENI (the cloud binds an instance by it).
    pub fn member_eni(&self, m: Member) -> Option<EniAt> {
        match m {
            Member::Eni(at) => Some(at),
            Member::Instance(i) => {
                (!self.instance_at(i).enis.is_empty()).then_some(EniAt { inst: i, eni: 0 })
            }
        }
    }

    /// The instance a member puts the HAVIP on.
    pub fn member_instance(&self, m: Member) -> usize {
        match m {
            Member::Eni(at) => at.inst,
            Member::Instance(i) => i,
        }
    }

    /// The zone an ENI sits in, through its vSwitch.
    pub fn eni_zone(&self, eni: &Eni) -> Option<&'a str> {
        self.vswitch(&eni.vswitch).map(|v| v.zone.as_str())
    }

    /// The role a HAVIP serves: set when every member resolves to an ENI and
    /// all those ENIs have one role.
    pub fn havip_role(&self, h: &Havip) -> Option<EniRole> {
        let mut role = None;
        for name in &h.members {
            let Some(Member::Eni(at)) = self.member(name) else {
                return None;
            };
            let r = self.eni(at).role;
            if role.is_some_and(|x| x != r) {
                return None;
            }
            role = Some(r);
        }
        role
    }

    /// HAVIPs with at least one member ENI of `role`, as (index, HAVIP).
    pub fn havips_binding(&self, role: EniRole) -> Vec<(usize, &'a Havip)> {
        self.dep
            .cloud
            .havips
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                h.members
                    .iter()
                    .any(|m| matches!(self.member(m), Some(Member::Eni(at)) if self.eni(at).role == role))
            })
            .collect()
    }

    /// Whether any firewall has an ENI of `role`.
    pub fn any_firewall_has(&self, role: EniRole) -> bool {
        self.firewalls
            .iter()
            .any(|&i| self.instance_at(i).eni_by_role(role).is_some())
    }
}

/// Collects diagnostics; paths are written in the dotted form
/// (`cloud.havip.0.members.1`) that `Path::parse` reads.
#[derive(Default)]
pub(super) struct Report(pub Vec<Diagnostic>);

impl Report {
    pub fn error(
        &mut self,
        path: impl AsRef<str>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0
            .push(Diagnostic::new(Path::parse(path.as_ref()), message, fix));
    }
}

/// Joins names as "`a`, `b` and `c`".
pub(super) fn names<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{}`", s.as_ref())).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// "1 entry", "2 entries".
pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "use `a`" or "use one of `a` and `b`".
pub(super) fn use_one_of<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [only] => format!("use `{}`", only.as_ref()),
        _ => format!("use one of {}", names(items)),
    }
}
