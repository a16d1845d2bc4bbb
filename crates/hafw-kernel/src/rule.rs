//! IPv4 policy routing rules (`ip rule add from all iif X lookup T priority P`).

use std::net::IpAddr;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
use netlink_packet_route::AddressFamily;
use rtnetlink::IpVersion;

use crate::{link, Error, Result, Rtnl};

/// A `lookup` rule: packets matching `iif` and `from` use `table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Rule priority (`priority`/`pref`); lower is tried first.
    pub priority: u32,
    /// Input interface name (`iif`); `None` matches every interface.
    pub iif: Option<String>,
    /// Source network (`from`); `None` is `from all`.
    pub from: Option<Ipv4Net>,
    /// Table to look up.
    pub table: u32,
}

impl Rule {
    /// `from all iif IIF lookup TABLE priority PRIORITY`.
    pub fn iif_lookup(iif: impl Into<String>, table: u32, priority: u32) -> Rule {
        Rule {
            priority,
            iif: Some(iif.into()),
            from: None,
            table,
        }
    }
}

/// Adds `rule`. An identical rule already there is not an error.
pub async fn add(rtnl: &Rtnl, rule: &Rule) -> Result<()> {
    if let Some(iif) = &rule.iif {
        link::check_name(iif)?;
    }
    let mut req = rtnl
        .handle()
        .rule()
        .add()
        .v4()
        .action(RuleAction::ToTable)
        .table_id(rule.table)
        .priority(rule.priority);
    if let Some(iif) = &rule.iif {
        req = req.input_interface(iif.clone());
    }
    if let Some(from) = rule.from {
        req = req.source_prefix(from.addr(), from.prefix_len());
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) => match Error::netlink("add rule", object(rtnl, rule), e) {
            err if err.errno() == Some(libc::EEXIST) => Ok(()),
            err => Err(err),
        },
    }
}

/// Deletes `rule`. A rule that is not there is not an error.
pub async fn delete(rtnl: &Rtnl, rule: &Rule) -> Result<()> {
    for msg in messages(rtnl).await? {
        if parse(&msg).as_ref() == Some(rule) {
            return match rtnl.handle().rule().del(msg).execute().await {
                Ok(()) => Ok(()),
                Err(e) => match Error::netlink("delete rule", object(rtnl, rule), e) {
                    err if err.errno() == Some(libc::ENOENT) => Ok(()),
                    err => Err(err),
                },
            };
        }
    }
    Ok(())
}

/// The IPv4 `lookup` rules, in priority order (the kernel's defaults
/// included: 0 local, 32766 main, 32767 default).
pub async fn list(rtnl: &Rtnl) -> Result<Vec<Rule>> {
    Ok(messages(rtnl).await?.iter().filter_map(parse).collect())
}

async fn messages(rtnl: &Rtnl) -> Result<Vec<RuleMessage>> {
    rtnl.handle()
        .rule()
        .get(IpVersion::V4)
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("list rules", rtnl.object("rules"), e))
}

/// Reads back a rule this module could have written; other rules (fwmark,
/// `to`, `not`, ...) are skipped rather than shown half-understood.
fn parse(msg: &RuleMessage) -> Option<Rule> {
    if msg.header.family != AddressFamily::Inet || msg.header.action != RuleAction::ToTable {
        return None;
    }
    if msg.header.dst_len != 0 || msg.header.flags.contains(RuleFlags::Invert) {
        return None;
    }
    let mut rule = Rule {
        priority: 0,
        iif: None,
        from: None,
        table: u32::from(msg.header.table),
    };
    let mut src = None;
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Priority(p) => rule.priority = *p,
            RuleAttribute::Iifname(name) => rule.iif = Some(name.clone()),
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Source(IpAddr::V4(ip)) => src = Some(*ip),
            RuleAttribute::Oifname(_)
            | RuleAttribute::FwMark(_)
            | RuleAttribute::Destination(_) => return None,
            _ => {}
        }
    }
    if let Some(ip) = src {
        rule.from = Some(Ipv4Net::new(ip, msg.header.src_len).ok()?);
    }
    Some(rule)
}

fn object(rtnl: &Rtnl, rule: &Rule) -> String {
    let from = rule.from.map_or("all".to_string(), |n| n.to_string());
    let iif = rule
        .iif
        .as_deref()
        .map_or(String::new(), |i| format!(" iif {i}"));
    rtnl.object(format!(
        "rule from {from}{iif} lookup {} priority {}",
        rule.table, rule.priority
    ))
}
