//! IPv4 addresses on interfaces (`ip addr add/del/show`).

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use crate::{link, Error, Result, Rtnl};

/// Adds `addr` (address and prefix length, e.g. 10.0.1.5/24) to interface
/// `ifname`. Adding an address that is already there is not an error.
pub async fn add(rtnl: &Rtnl, ifname: &str, addr: Ipv4Net) -> Result<()> {
    let index = link::index(rtnl, ifname).await?;
    let result = rtnl
        .handle()
        .address()
        .add(index, IpAddr::V4(addr.addr()), addr.prefix_len())
        .execute()
        .await;
    match result {
        Ok(()) => Ok(()),
        Err(e) => match Error::netlink("add address", object(rtnl, ifname, addr), e) {
            err if err.errno() == Some(libc::EEXIST) => Ok(()),
            err => Err(err),
        },
    }
}

/// Removes `addr` from interface `ifname`. An address that is not there is
/// not an error.
pub async fn delete(rtnl: &Rtnl, ifname: &str, addr: Ipv4Net) -> Result<()> {
    let index = link::index(rtnl, ifname).await?;
    for msg in messages(rtnl, ifname, index).await? {
        if to_net(&msg) == Some(addr) {
            let result = rtnl.handle().address().del(msg).execute().await;
            return match result {
                Ok(()) => Ok(()),
                Err(e) => match Error::netlink("delete address", object(rtnl, ifname, addr), e) {
                    err if err.errno() == Some(libc::EADDRNOTAVAIL) => Ok(()),
                    err => Err(err),
                },
            };
        }
    }
    Ok(())
}

/// The IPv4 addresses of interface `ifname`, in the kernel's order
/// (primary addresses first).
pub async fn list(rtnl: &Rtnl, ifname: &str) -> Result<Vec<Ipv4Net>> {
    let index = link::index(rtnl, ifname).await?;
    Ok(messages(rtnl, ifname, index)
        .await?
        .iter()
        .filter_map(to_net)
        .collect())
}

async fn messages(rtnl: &Rtnl, ifname: &str, index: u32) -> Result<Vec<AddressMessage>> {
    let all: Vec<AddressMessage> = rtnl
        .handle()
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| {
            Error::netlink(
                "list addresses",
                rtnl.object(format!("interface {ifname}")),
                e,
            )
        })?;
    // The filter is applied in user space by rtnetlink; check again anyway.
    Ok(all
        .into_iter()
        .filter(|m| m.header.index == index)
        .collect())
}

fn to_net(msg: &AddressMessage) -> Option<Ipv4Net> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on
    // point-to-point links, so prefer LOCAL.
    let mut local: Option<Ipv4Addr> = None;
    let mut address: Option<Ipv4Addr> = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(IpAddr::V4(ip)) => local = Some(*ip),
            AddressAttribute::Address(IpAddr::V4(ip)) => address = Some(*ip),
            _ => {}
        }
    }
    Ipv4Net::new(local.or(address)?, msg.header.prefix_len).ok()
}

fn object(rtnl: &Rtnl, ifname: &str, addr: Ipv4Net) -> String {
    rtnl.object(format!("{addr} on interface {ifname}"))
}
