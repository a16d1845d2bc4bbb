//! Which kernel link is which ENI, on the machine `hafw run` starts on.
//!
//! The cloud attaches an instance's ENIs as `eth0`, `eth1`, ... in an order
//! it does not guarantee, so the node plan's interface names are found, not
//! assumed. Pure: the daemon gathers what it sees (each link's name, MAC and
//! IPv4 addresses, and what the metadata service says each MAC's primary IP
//! is) and this decides, for each ENI of the node's instance, in order:
//! 1. a link named after the ENI's role (`mgmt`, `untrust`, ...: the role
//!    names are aliases, which is how the lab and a hand-named host work);
//! 2. the link with the ENI's `mac` from the deployment file;
//! 3. the link that already carries the ENI's primary IP (a restart after
//!    a crash or an upgrade, eth0 from DHCP: no need to ask anyone);
//! 4. the link whose MAC the metadata service gives the ENI's primary IP
//!    (`network/interfaces/macs/<mac>/primary-ip-address`), asked only when
//!    the first three leave an ENI unfound (a first boot, where only eth0
//!    has its address): a metadata service that is slow or unreachable
//!    must not hold up a restart that needs nothing from it.
//!
//! An ENI found nowhere, or two ENIs on one link, is an error naming the
//! ENI, its addresses and each thing tried: the node never applies a plan
//! onto a guessed interface.

use std::collections::BTreeMap;
use std::fmt;

use crate::addr::{Ip, Mac};
use crate::spec::{Deployment, Instance};

/// ENI name -> the kernel link it is on. An ENI missing from the map is
/// named by its role alias ([`alias`]), as before resolution existed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfNames(BTreeMap<String, String>);

impl IfNames {
    /// Every ENI under its role alias.
    pub fn aliases() -> IfNames {
        IfNames::default()
    }
    pub fn insert(&mut self, eni: &str, ifname: &str) {
        self.0.insert(eni.to_owned(), ifname.to_owned());
    }
    pub fn get(&self, eni: &str) -> Option<&str> {
        self.0.get(eni).map(String::as_str)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(a, b)| (a.as_str(), b.as_str()))
    }
}

/// The role alias of the ENI at `at` in `instance`: the role's name, with
/// a number appended for a second ENI of the same role (role names are at
/// most 7 bytes, far below the kernel's 15-byte limit).
pub fn alias(instance: &Instance, at: usize) -> String {
    let role = instance.enis[at].role;
    let same_role = instance.enis[..at]
        .iter()
        .filter(|e| e.role == role)
        .count();
    match same_role {
        0 => role.ifname().to_string(),
        n => format!("{}{n}", role.ifname()),
    }
}

/// One kernel link as the daemon saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenLink {
    pub name: String,
    /// `None` for links without one (loopback, tunnels).
    pub mac: Option<Mac>,
    pub addresses: Vec<Ip>,
}

/// What the metadata service said, MAC by MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// MAC -> its `primary-ip-address` answer.
    pub primary_ips: BTreeMap<Mac, Ip>,
    /// Why it could not be asked at all, or which MACs failed; said in
    /// the error when an ENI is not found.
    pub problems: Vec<String>,
}

/// Everything resolution looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub links: Vec<SeenLink>,
    /// `None`: the metadata service was not asked (every ENI found before
    /// it was needed).
    pub metadata: Option<Metadata>,
}

/// How an ENI's link was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Alias,
    Mac,
    Metadata,
    Address,
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            How::Alias => "by its role name",
            How::Mac => "by the MAC in the deployment file",
            How::Metadata => "by the metadata service's primary IP for its MAC",
            How::Address => "by its primary IP already on the link",
        })
    }
}

/// One ENI's link and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub eni: String,
    pub ifname: String,
    pub how: How,
}

/// The outcome for the whole instance: every ENI found, or every problem.
pub fn resolve(instance: &Instance, seen: &Seen) -> Result<Vec<Found>, Vec<String>> {
    let mut found = Vec::with_capacity(instance.enis.len());
    let mut problems = Vec::new();
    for at in 0..instance.enis.len() {
        match resolve_one(instance, at, seen) {
            Ok(f) => found.push(f),
            Err(e) => problems.push(e),
        }
    }
    for (i, a) in found.iter().enumerate() {
        if let Some(b) = found[..i].iter().find(|b| b.ifname == a.ifname) {
            problems.push(format!(
                "ENIs `{}` ({}) and `{}` ({}) were both found on link `{}`; one link carries one ENI, so correct the `mac` or `primary_ip` of one of them",
                b.eni, b.how, a.eni, a.how, a.ifname
            ));
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// Whether the metadata service is needed: some ENI has neither its alias,
/// nor its file MAC, nor its primary IP among the links.
pub fn needs_metadata(instance: &Instance, links: &[SeenLink]) -> bool {
    (0..instance.enis.len()).any(|at| {
        let eni = &instance.enis[at];
        let name = alias(instance, at);
        !links.iter().any(|l| l.name == name)
            && !eni
                .mac
                .is_some_and(|m| links.iter().any(|l| l.mac == Some(m)))
            && !links.iter().any(|l| l.addresses.contains(&eni.primary_ip))
    })
}

/// The resolved names, for the node plan.
pub fn if_names(found: &[Found]) -> IfNames {
    let mut out = IfNames::default();
    for f in found {
        out.insert(&f.eni, &f.ifname);
    }
    out
}

fn resolve_one(instance: &Instance, at: usize, seen: &Seen) -> Result<Found, String> {
    let eni = &instance.enis[at];
    let ip = eni.primary_ip;
    let name = alias(instance, at);
    let ok = |link: &SeenLink, how| Found {
        eni: eni.name.clone(),
        ifname: link.name.clone(),
        how,
    };
    let mut tried = Vec::with_capacity(4);
    if let Some(link) = seen.links.iter().find(|l| l.name == name) {
        // A link named after the role but with another MAC than the file
        // gives is a contradiction, not a match.
        match (eni.mac, link.mac) {
            (Some(want), Some(has)) if want != has => {
                return Err(format!(
                    "ENI `{}` (primary IP {ip}, MAC {want}): link `{name}` has its role name but MAC {has}; correct `mac` or rename the link",
                    eni.name
                ))
            }
            _ => return Ok(ok(link, How::Alias)),
        }
    }
    tried.push(format!("no link named `{name}`"));
    match eni.mac {
        Some(mac) => match seen.links.iter().find(|l| l.mac == Some(mac)) {
            Some(link) => return Ok(ok(link, How::Mac)),
            None => tried.push(format!("no link has MAC {mac}")),
        },
        None => tried.push("no `mac` in the deployment file".into()),
    }
    if let Some(link) = seen.links.iter().find(|l| l.addresses.contains(&ip)) {
        return Ok(ok(link, How::Address));
    }
    tried.push(format!("no link carries {ip}"));
    match &seen.metadata {
        None => tried.push("the metadata service was not asked".into()),
        Some(md) => {
            let hit = seen.links.iter().find(|l| {
                l.mac
                    .and_then(|m| md.primary_ips.get(&m))
                    .is_some_and(|a| *a == ip)
            });
            if let Some(link) = hit {
                return Ok(ok(link, How::Metadata));
            }
            let answers: Vec<String> = (seen.links.iter())
                .filter_map(|l| {
                    let mac = l.mac?;
                    md.primary_ips
                        .get(&mac)
                        .map(|a| format!("{} ({mac}) -> {a}", l.name))
                })
                .collect();
            let mut said = if answers.is_empty() {
                "no answer for any local MAC".to_string()
            } else {
                answers.join(", ")
            };
            for p in &md.problems {
                said.push_str("; ");
                said.push_str(p);
            }
            tried.push(format!(
                "the metadata service gives no local MAC {ip} ({said})"
            ));
        }
    }
    let links: Vec<String> = (seen.links.iter())
        .map(|l| match l.mac {
            Some(m) => format!("{} ({m})", l.name),
            None => l.name.clone(),
        })
        .collect();
    Err(format!(
        "ENI `{}` (role {}, primary IP {ip}{}) is on no link of this machine: {}; the links are {}; set `mac = \"...\"` on the ENI (the ECS console or Terraform's output shows it), or check that the ENI is attached to this instance",
        eni.name,
        eni.role.as_str(),
        eni.mac.map(|m| format!(", MAC {m}")).unwrap_or_default(),
        tried.join("; "),
        if links.is_empty() { "none".into() } else { links.join(", ") }
    ))
}

/// Which `[[node]]` runs here (`hafw run --node auto`): the node whose
/// instance has an ENI with a primary IP the metadata service gives one of
/// this machine's MACs, or that a local link carries.
pub fn which_node(dep: &Deployment, seen: &Seen) -> Result<String, String> {
    let mine = |ip: Ip| {
        seen.links.iter().any(|l| {
            l.addresses.contains(&ip)
                || seen.metadata.as_ref().is_some_and(|md| {
                    l.mac
                        .and_then(|m| md.primary_ips.get(&m))
                        .is_some_and(|a| *a == ip)
                })
        })
    };
    let hits: Vec<&str> = (dep.nodes.iter())
        .filter(|n| {
            dep.instance(&n.name)
                .is_some_and(|i| i.enis.iter().any(|e| mine(e.primary_ip)))
        })
        .map(|n| n.name.as_str())
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).to_string()),
        _ => {
            let mut seen_ips: Vec<String> = (seen.links.iter())
                .flat_map(|l| {
                    l.addresses
                        .iter()
                        .map(move |a| format!("{a} on {}", l.name))
                })
                .collect();
            if let Some(md) = &seen.metadata {
                seen_ips.extend(
                    md.primary_ips
                        .iter()
                        .map(|(m, a)| format!("{a} from the metadata service for {m}")),
                );
                seen_ips.extend(md.problems.iter().cloned());
            }
            let seen_ips = if seen_ips.is_empty() {
                "nothing".to_string()
            } else {
                seen_ips.join(", ")
            };
            if hits.is_empty() {
                Err(format!(
                    "--node auto: no [[node]]'s instance has an ENI with an address of this machine (seen: {seen_ips}); give --node NAME, or check that this is the deployment file of this pair"
                ))
            } else {
                Err(format!(
                    "--node auto: nodes {} all match this machine (seen: {seen_ips}); give --node NAME",
                    hits.join(" and ")
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
