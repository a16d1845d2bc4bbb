//! The NAT chains. NAT rules see only a connection's first packet; later
//! packets, replies, and after a failover the synced conntrack entry, carry
//! the binding (linux-kernel-notes.md trap 2), so the same chains stay
//! installed on the active and the passive node.

use ipnet::Ipv4Net;

use super::syntax::{line, quote};
use crate::render::node::Interface;
use crate::spec::{Deployment, EniRole};

/// Inbound: the external HAVIP's private IP and a port go to a server.
pub(super) fn prerouting(out: &mut String, dep: &Deployment) {
    line(out, 1, "chain prerouting {");
    line(
        out,
        2,
        "type nat hook prerouting priority dstnat; policy accept;",
    );
    for d in &dep.policy.nat.dnat {
        let to = match d.to_port {
            Some(p) => format!("{}:{p}", d.to_address),
            None => d.to_address.to_string(),
        };
        line(
            out,
            2,
            format!(
                "ip daddr {} {} dport {} counter dnat ip to {to} comment {}",
                d.match_address,
                d.protocol.as_str(),
                d.port,
                quote(&format!("dnat {}", d.name))
            ),
        );
    }
    line(out, 1, "}");
}

/// Outbound: server subnets leave as the external HAVIP's private IP, the
/// only source the cloud maps to the EIP (alicloud-havip.md).
///
/// Each SNAT is limited to traffic that leaves the VPC:
/// `ip daddr != <VPC CIDR>`. DNAT targets are servers inside the VPC, so a
/// DNAT'd inbound connection, whose destination postrouting sees already
/// rewritten to the server, never matches, whatever its source; in one-arm
/// mode, where inbound and outbound share the data interface and the
/// servers' subnet may appear on both sides, that is what keeps an inbound
/// client's connection from being rewritten a second time. It also keeps
/// east-west traffic inside the VPC with its real source. `ct status & dnat
/// == 0` says the same from conntrack's side and guards a DNAT target that
/// validation might some day allow outside the VPC.
pub(super) fn postrouting(
    out: &mut String,
    dep: &Deployment,
    interfaces: &[Interface],
) -> Result<(), String> {
    line(out, 1, "chain postrouting {");
    line(
        out,
        2,
        "type nat hook postrouting priority srcnat; policy accept;",
    );
    for s in &dep.policy.nat.snat {
        if s.sources.is_empty() {
            return Err(format!(
                "snat `{}` has no sources; list the server subnets it rewrites",
                s.name
            ));
        }
        let iface = egress(interfaces, s.to_address).ok_or_else(|| {
            format!(
                "snat `{}` rewrites to {}, but this node has no interface in that address's vSwitch and no untrust or data interface; add the ENI or correct `to_address`",
                s.name, s.to_address
            )
        })?;
        let sources: Vec<String> =
            Ipv4Net::aggregate(&s.sources.iter().map(|p| p.0).collect::<Vec<_>>())
                .iter()
                .map(|n| crate::addr::Prefix(*n).to_string())
                .collect();
        let sources = match sources.as_slice() {
            [one] => one.clone(),
            many => format!("{{ {} }}", many.join(", ")),
        };
        line(
            out,
            2,
            format!(
                "oifname {} ip saddr {sources} ip daddr != {} ct status & dnat == 0 counter snat ip to {} comment {}",
                quote(&iface.ifname),
                dep.cloud.vpc.cidr,
                s.to_address,
                quote(&format!("snat {}", s.name))
            ),
        );
    }
    line(out, 1, "}");
    Ok(())
}

/// The interface whose vSwitch holds the SNAT address (it is a HAVIP of
/// that vSwitch), else the first untrust, else the first data interface.
fn egress(interfaces: &[Interface], to: crate::addr::Ip) -> Option<&Interface> {
    interfaces
        .iter()
        .find(|i| i.network.contains(to))
        .or_else(|| interfaces.iter().find(|i| i.role == EniRole::Untrust))
        .or_else(|| interfaces.iter().find(|i| i.role == EniRole::Data))
}
