//! At `hafw run`'s start, before anything is applied: which kernel link is
//! which ENI of this node, and (`--node auto`) which node this is. This
//! gathers what the machine shows (links, their MACs and addresses, over
//! netlink) and, only when that is not enough, what the metadata service
//! says ([`super::metadata`]); the decisions are `hafw_model::resolve`'s.

use hafw_kernel::{addr, link, Rtnl};
use hafw_model::addr::{Ip, Mac};
use hafw_model::render::node::IfNames;
use hafw_model::resolve::{self, Metadata, Seen, SeenLink};
use hafw_model::Deployment;

use super::metadata::{Client, MetadataError};

/// The most links whose MACs are asked about: an ECS instance has at most
/// a few dozen ENIs; anything past this is not asked (and so not found).
pub const MAX_ASKED: usize = 32;

/// This machine's links with their MACs and IPv4 addresses.
pub fn observe() -> Result<Vec<SeenLink>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to list the links: {e}"))?;
    rt.block_on(async {
        let nl = Rtnl::connect().map_err(|e| e.to_string())?;
        let links = link::list(&nl).await.map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(links.len());
        for l in links {
            let addresses = addr::list(&nl, &l.name)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(|a| Ip(a.addr()))
                .collect();
            out.push(SeenLink {
                mac: l
                    .mac
                    .map(|m| Mac(m.0))
                    .filter(|m| m.0 != [0; 6] && m.0[0] & 1 == 0),
                name: l.name,
                addresses,
            });
        }
        Ok(out)
    })
}

/// The metadata service's primary IP for each local MAC. Never fails: what
/// could not be asked is in `problems`, said if an ENI is then not found.
pub fn ask_metadata(links: &[SeenLink]) -> Metadata {
    let mut md = Metadata::default();
    let mut client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => {
            md.problems.push(e.to_string());
            return md;
        }
    };
    for l in links.iter().filter(|l| l.mac.is_some()).take(MAX_ASKED) {
        let Some(mac) = l.mac else { continue };
        match client.primary_ip(&mac.to_string()) {
            Ok(ip) => {
                md.primary_ips.insert(mac, Ip(ip));
            }
            // Not an ENI of this instance (a bridge, a tunnel): normal.
            Err(MetadataError::Status(404)) => {
                md.problems.push(format!(
                    "{} ({mac}): not an ENI of this instance (404)",
                    l.name
                ));
            }
            Err(e @ (MetadataError::Exhausted(_) | MetadataError::Url(_))) => {
                md.problems
                    .push(format!("metadata service: {e} (asking for {})", l.name));
                break;
            }
            Err(e) => md.problems.push(format!("{} ({mac}): {e}", l.name)),
        }
    }
    let s = client.stats;
    tracing::info!(
        requests = s.requests,
        retries = s.retries,
        timeouts = s.timeouts,
        oversize = s.oversize,
        malformed = s.malformed,
        "metadata service asked for {} MACs",
        md.primary_ips.len()
    );
    md
}

/// `--node auto`: the node whose instance has one of this machine's
/// addresses (as the links carry them, else as the metadata service gives
/// them).
pub fn auto_node(dep: &Deployment, links: &[SeenLink]) -> Result<String, String> {
    let local = Seen {
        links: links.to_vec(),
        metadata: None,
    };
    if let Ok(node) = resolve::which_node(dep, &local) {
        return Ok(node);
    }
    let asked = Seen {
        links: links.to_vec(),
        metadata: Some(ask_metadata(links)),
    };
    resolve::which_node(dep, &asked)
}

/// The link of each ENI of `node`'s instance, every problem in one error.
pub fn names(dep: &Deployment, node: &str, links: &[SeenLink]) -> Result<IfNames, String> {
    // An unknown node is the plan's error to give, with the known names.
    let Some(instance) = dep.instance(node) else {
        return Ok(IfNames::aliases());
    };
    let metadata = resolve::needs_metadata(instance, links).then(|| ask_metadata(links));
    let seen = Seen {
        links: links.to_vec(),
        metadata,
    };
    match resolve::resolve(instance, &seen) {
        Ok(found) => {
            for f in &found {
                tracing::info!(
                    "node {node}: ENI {} is link {}, found {}",
                    f.eni,
                    f.ifname,
                    f.how
                );
            }
            Ok(resolve::if_names(&found))
        }
        Err(problems) => Err(format!(
            "cannot find this node's ENIs:\n  {}",
            problems.join("\n  ")
        )),
    }
}
