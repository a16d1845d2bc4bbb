//! Network interfaces: veth pairs across namespaces, up/down, delete, index
//! by name, state, listing (`ip link`).

use std::os::fd::AsRawFd;

use futures_util::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage, State,
};
use rtnetlink::{LinkMessageBuilder, LinkUnspec};

use crate::{netns, Error, Mac, Result, Rtnl};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_NAME_LEN: usize = 15;

/// One end of a veth pair: its name and, if given, its MAC address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VethEnd {
    /// Interface name, at most 15 bytes.
    pub name: String,
    /// MAC address; the kernel picks a random one when `None`.
    pub mac: Option<Mac>,
}

impl VethEnd {
    /// An end named `name` with MAC `mac`.
    pub fn new(name: impl Into<String>, mac: Option<Mac>) -> Self {
        VethEnd {
            name: name.into(),
            mac,
        }
    }
}

/// Operational state (RFC 2863), as `ip link` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperState {
    /// Up and able to pass packets.
    Up,
    /// Down.
    Down,
    /// Down because the lower layer (the veth peer, the carrier) is down.
    LowerLayerDown,
    /// Waiting for an external event.
    Dormant,
    /// In a test mode.
    Testing,
    /// A component is missing.
    NotPresent,
    /// The driver does not report it (loopback, some virtual devices).
    Unknown,
}

/// What the kernel says about one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// MAC address, when the interface has a 6-byte one.
    pub mac: Option<Mac>,
    /// Administratively up (`ip link set up`).
    pub admin_up: bool,
    /// Carrier present (IFF_LOWER_UP): for a veth, the peer is up.
    pub carrier: bool,
    /// Operational state.
    pub oper: OperState,
}

/// Creates a veth pair: `end` in `rtnl`'s namespace and `peer` in namespace
/// `peer_ns` (or beside `end` when `None`). Both ends start down.
pub async fn add_veth(
    rtnl: &Rtnl,
    end: &VethEnd,
    peer: &VethEnd,
    peer_ns: Option<&str>,
) -> Result<()> {
    check_name(&end.name)?;
    check_name(&peer.name)?;
    let object = rtnl.object(format!("veth {} (peer {})", end.name, peer.name));
    // The peer is created directly in its namespace through IFLA_NET_NS_FD;
    // the file must stay open until the kernel has answered.
    let peer_ns_file = peer_ns.map(netns::open).transpose()?;
    let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new().name(peer.name.clone());
    if let Some(mac) = peer.mac {
        peer_msg = peer_msg.address(mac.0.to_vec());
    }
    if let Some(file) = &peer_ns_file {
        peer_msg = peer_msg.setns_by_fd(file.as_raw_fd());
    }
    let mut msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(end.name.clone())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())));
    if let Some(mac) = end.mac {
        msg = msg.address(mac.0.to_vec());
    }
    let result = rtnl.handle().link().add(msg.build()).execute().await;
    drop(peer_ns_file);
    result.map_err(|e| Error::netlink("add veth", object, e))
}

/// Sets interface `name` administratively up.
pub async fn set_up(rtnl: &Rtnl, name: &str) -> Result<()> {
    set_flags(rtnl, name, true).await
}

/// Sets interface `name` administratively down.
pub async fn set_down(rtnl: &Rtnl, name: &str) -> Result<()> {
    set_flags(rtnl, name, false).await
}

async fn set_flags(rtnl: &Rtnl, name: &str, up: bool) -> Result<()> {
    let op = if up { "set up" } else { "set down" };
    let index = index(rtnl, name).await?;
    let builder = LinkUnspec::new_with_index(index);
    let msg = if up { builder.up() } else { builder.down() }.build();
    rtnl.handle()
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(op, rtnl.object(format!("interface {name}")), e))
}

/// Sets the MAC address of interface `name`.
pub async fn set_mac(rtnl: &Rtnl, name: &str, mac: Mac) -> Result<()> {
    let index = index(rtnl, name).await?;
    let msg = LinkUnspec::new_with_index(index)
        .address(mac.0.to_vec())
        .build();
    rtnl.handle()
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink("set mac", rtnl.object(format!("interface {name}")), e))
}

/// Deletes interface `name` (a veth's peer goes with it). A missing
/// interface is not an error.
pub async fn delete(rtnl: &Rtnl, name: &str) -> Result<()> {
    let index = match index(rtnl, name).await {
        Ok(index) => index,
        Err(Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    match rtnl.handle().link().del(index).execute().await {
        Ok(()) => Ok(()),
        // Deleted meanwhile (its peer was removed, say).
        Err(e) => {
            match Error::netlink("delete link", rtnl.object(format!("interface {name}")), e) {
                err if err.errno() == Some(libc::ENODEV) => Ok(()),
                err => Err(err),
            }
        }
    }
}

/// The index of interface `name`.
pub async fn index(rtnl: &Rtnl, name: &str) -> Result<u32> {
    Ok(show(rtnl, name).await?.index)
}

/// State of interface `name`.
pub async fn show(rtnl: &Rtnl, name: &str) -> Result<Link> {
    check_name(name)?;
    let object = rtnl.object(format!("interface {name}"));
    let mut answers = rtnl
        .handle()
        .link()
        .get()
        .match_name(name.to_string())
        .execute();
    match answers.try_next().await {
        Ok(Some(msg)) => Ok(to_link(&msg)),
        Ok(None) => Err(Error::NotFound {
            op: "find link",
            object,
        }),
        Err(e) => match Error::netlink("find link", object.clone(), e) {
            err if err.errno() == Some(libc::ENODEV) => Err(Error::NotFound {
                op: "find link",
                object,
            }),
            err => Err(err),
        },
    }
}

/// All interfaces of `rtnl`'s namespace.
pub async fn list(rtnl: &Rtnl) -> Result<Vec<Link>> {
    let msgs: Vec<LinkMessage> = rtnl
        .handle()
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("list links", rtnl.object("links"), e))?;
    Ok(msgs.iter().map(to_link).collect())
}

fn to_link(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: None,
        admin_up: msg.header.flags.contains(LinkFlags::Up),
        carrier: msg.header.flags.contains(LinkFlags::LowerUp),
        oper: OperState::Unknown,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(bytes) => link.mac = Mac::from_slice(bytes),
            LinkAttribute::OperState(state) => {
                link.oper = match state {
                    State::Up => OperState::Up,
                    State::Down => OperState::Down,
                    State::LowerLayerDown => OperState::LowerLayerDown,
                    State::Dormant => OperState::Dormant,
                    State::Testing => OperState::Testing,
                    State::NotPresent => OperState::NotPresent,
                    _ => OperState::Unknown,
                }
            }
            _ => {}
        }
    }
    link
}

/// Refuses names the kernel would refuse, with a readable reason.
pub fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "longer than 15 bytes"
    } else if name == "."
        || name == ".."
        || name.contains(['/', ':', '\0'])
        || name.contains(char::is_whitespace)
    {
        "contains '/', ':', whitespace or NUL, or is '.' or '..'"
    } else {
        return Ok(());
    };
    Err(Error::invalid("interface name", name, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert!(check_name("eth0").is_ok());
        assert!(check_name("abcdefghijklmno").is_ok());
        for bad in ["", "abcdefghijklmnop", "a b", "a/b", "a:1", ".."] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
