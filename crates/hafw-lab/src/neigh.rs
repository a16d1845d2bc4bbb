//! Permanent neighbour entries: the VPC knows every ENI's MAC, so it never
//! ARPs toward an instance.

use std::net::Ipv4Addr;

use hafw_kernel::{link, Rtnl};

pub async fn add_permanent(
    nl: &Rtnl,
    dev: &str,
    ip: Ipv4Addr,
    mac: [u8; 6],
) -> hafw_kernel::Result<()> {
    let index = link::index(nl, dev).await?;
    let req = nl
        .handle()
        .neighbours()
        .add(index, std::net::IpAddr::V4(ip))
        .link_layer_address(&mac)
        .state(netlink_packet_route::neighbour::NeighbourState::Permanent)
        .replace();
    req.execute()
        .await
        .map_err(|e| hafw_kernel::Error::Netlink {
            op: "add neighbour",
            object: format!("{ip} on {dev}"),
            errno: None,
            message: e.to_string(),
        })
}
