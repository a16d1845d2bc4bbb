//! Three namespaces for the benchmark, removed on drop: a client on the
//! untrust side, the firewall with the seed's fw-a interfaces, and a
//! server on the trust side standing in for the web server 10.0.10.10.
//!
//! ```text
//! client eth0 10.0.1.253/24 ── untrust  [firewall]  trust ── eth0 10.0.2.253/24  server (lo 10.0.10.10)
//! ```
//! The client also holds 203.0.113.10 on `lo`, the packet-rate flows'
//! internet destination (through the firewall's default route and SNAT).
//! The client and server hold the vSwitch gateway addresses, as the VPC
//! router does, so the plan's routes (via x.x.x.253) work unchanged. The
//! firewall's management and HA2 interfaces are veth pairs kept inside it.

use std::net::Ipv4Addr;

use hafw_kernel::link::{self, VethEnd};
use hafw_kernel::route::{self, Route};
use hafw_kernel::{addr, netns, Netns};
use ipnet::Ipv4Net;

pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 253);
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 10, 10);
/// The firewall's untrust primary address, the plain-forwarding next hop.
const FW_UNTRUST: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 11);
/// The internal HAVIP: the server's next hop, as in the VPC's route table.
const INTERNAL_HAVIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);

pub struct Topology {
    pub client: String,
    pub firewall: String,
    pub server: String,
}

impl Topology {
    pub fn build() -> Result<Topology, String> {
        let tag = format!("hafwbench-{}", std::process::id());
        let topo = Topology {
            client: format!("{tag}-client"),
            firewall: format!("{tag}-fw"),
            server: format!("{tag}-server"),
        };
        for ns in [&topo.client, &topo.firewall, &topo.server] {
            netns::create(ns).map_err(|e| e.to_string())?;
        }
        // From here on, Drop removes whatever was made.
        topo.wire().map_err(|e| e.to_string())?;
        Ok(topo)
    }

    fn wire(&self) -> hafw_kernel::Result<()> {
        let (client, server) = (self.client.clone(), self.server.clone());
        Netns::open(&self.firewall)?.run_blocking(move |nl| async move {
            link::add_veth(
                &nl,
                &VethEnd::new("untrust", None),
                &VethEnd::new("eth0", None),
                Some(&client),
            )
            .await?;
            link::add_veth(
                &nl,
                &VethEnd::new("trust", None),
                &VethEnd::new("eth0", None),
                Some(&server),
            )
            .await?;
            link::add_veth(
                &nl,
                &VethEnd::new("mgmt", None),
                &VethEnd::new("mgmt-peer", None),
                None,
            )
            .await?;
            link::add_veth(
                &nl,
                &VethEnd::new("ha2", None),
                &VethEnd::new("ha2-peer", None),
                None,
            )
            .await?;
            for dev in [
                "lo",
                "untrust",
                "trust",
                "mgmt",
                "mgmt-peer",
                "ha2",
                "ha2-peer",
            ] {
                link::set_up(&nl, dev).await?;
            }
            Ok(())
        })?;
        Netns::open(&self.client)?.run_blocking(|nl| async move {
            for dev in ["lo", "eth0"] {
                link::set_up(&nl, dev).await?;
            }
            addr::add(&nl, "eth0", net(CLIENT_IP, 24)).await?;
            // The "internet" host the packet-rate flows go to (pps.rs).
            addr::add(&nl, "lo", net(super::pps::TARGET, 32)).await?;
            // Used by plain forwarding only; with the firewall the client
            // talks to the external HAVIP, which is on its link.
            route::add(
                &nl,
                &Route::new(net(SERVER_IP, 24).trunc())
                    .via(FW_UNTRUST)
                    .dev("eth0"),
            )
            .await
        })?;
        Netns::open(&self.server)?.run_blocking(|nl| async move {
            for dev in ["lo", "eth0"] {
                link::set_up(&nl, dev).await?;
            }
            addr::add(&nl, "eth0", net(Ipv4Addr::new(10, 0, 2, 253), 24)).await?;
            addr::add(&nl, "lo", net(SERVER_IP, 32)).await?;
            route::add(
                &nl,
                &Route::new(Ipv4Net::default())
                    .via(INTERNAL_HAVIP)
                    .dev("eth0"),
            )
            .await
        })
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and so the pairs.
        for ns in [&self.client, &self.firewall, &self.server] {
            let _ = netns::delete(ns);
        }
    }
}

fn net(ip: Ipv4Addr, len: u8) -> Ipv4Net {
    Ipv4Net::new(ip, len).unwrap_or_else(|_| Ipv4Net::from(ip))
}
