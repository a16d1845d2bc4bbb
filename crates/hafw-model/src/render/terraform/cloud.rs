//! The network around the firewalls: VPC, vSwitches, HAVIPs, EIPs and route
//! tables.

use super::hcl::{Block, File};
use super::{label, reference};
use crate::spec::{Deployment, NextHop};

pub fn vpc_id(dep: &Deployment) -> String {
    reference("alicloud_vpc", &label::name(&dep.cloud.vpc.name), "id")
}

fn vswitch_id(name: &str) -> String {
    reference("alicloud_vswitch", &label::name(name), "id")
}

/// `alicloud_vpc_ha_vip`: `alicloud_havip` is its deprecated name (1.205.0).
pub const HAVIP: &str = "alicloud_vpc_ha_vip";

pub fn havip_id(name: &str) -> String {
    reference(HAVIP, &label::name(name), "id")
}

pub fn network(dep: &Deployment, f: &mut File) {
    let vpc = &dep.cloud.vpc;
    f.block(
        Block::new("resource", &["alicloud_vpc", &label::name(&vpc.name)])
            .str("vpc_name", &vpc.name)
            .str("cidr_block", &vpc.cidr.to_string()),
    );
    for vs in &dep.cloud.vswitches {
        f.block(
            Block::new("resource", &["alicloud_vswitch", &label::name(&vs.name)])
                .str("vswitch_name", &vs.name)
                .raw("vpc_id", vpc_id(dep))
                .str("cidr_block", &vs.cidr.to_string())
                .str("zone_id", &vs.zone),
        );
    }
}

/// What a HAVIP member or a route's next hop names, resolved to the
/// resource Terraform manages for it.
enum Target {
    /// A secondary ENI: its own resource, usable once attached.
    Eni { label: String },
    /// An instance, or an instance's primary ENI, which has no resource of
    /// its own: the cloud reaches the primary ENI through the instance.
    Instance { label: String },
}

fn resolve(dep: &Deployment, name: &str) -> Option<Target> {
    if let Some((inst, eni)) = dep.eni(name) {
        let primary = inst.enis.first().is_some_and(|p| p.name == eni.name);
        return Some(if primary {
            Target::Instance {
                label: label::name(&inst.name),
            }
        } else {
            Target::Eni {
                label: label::name(&eni.name),
            }
        });
    }
    dep.instance(name).map(|i| Target::Instance {
        label: label::name(&i.name),
    })
}

fn attachment_label(havip: &str, member: &str) -> String {
    label::label(&[havip, member])
}

/// HAVIPs and one attachment per member (alicloud-havip.md rules 1-3),
/// one after the other: AssociateHaVip does not support concurrent
/// associations of one HAVIP, so each waits for the one before.
pub fn havips(dep: &Deployment, f: &mut File) {
    for h in &dep.cloud.havips {
        f.block(
            Block::new("resource", &[HAVIP, &label::name(&h.name)])
                .str("ha_vip_name", &h.name)
                .raw("vswitch_id", vswitch_id(&h.vswitch))
                .str("ip_address", &h.ip.to_string()),
        );
        let mut previous: Option<String> = None;
        for m in &h.members {
            let l = attachment_label(&h.name, m);
            let block = Block::new("resource", &["alicloud_havip_attachment", &l])
                .raw("ha_vip_id", havip_id(&h.name));
            let mut after: Vec<String> = previous
                .iter()
                .map(|p| format!("alicloud_havip_attachment.{p}"))
                .collect();
            let block = match resolve(dep, m) {
                Some(Target::Eni { label }) => {
                    // Rule 2: an ENI joins a HAVIP only once it is attached.
                    after.insert(
                        0,
                        format!("alicloud_ecs_network_interface_attachment.{label}"),
                    );
                    block
                        .raw(
                            "instance_id",
                            reference("alicloud_ecs_network_interface", &label, "id"),
                        )
                        .str("instance_type", "NetworkInterface")
                }
                Some(Target::Instance { label }) => block
                    .raw("instance_id", reference("alicloud_instance", &label, "id"))
                    .str("instance_type", "EcsInstance"),
                None => {
                    f.comment(&format!(
                        "HAVIP {} member {} names no ENI or instance; fix it (hafw validate)",
                        h.name, m
                    ));
                    continue;
                }
            };
            f.block(block.depends_on(after));
            previous = Some(l);
        }
    }
}

/// Whether the firewalls' management ENIs get EIPs: when
/// `policy.management.allow` names a source outside the VPC, which can
/// reach the management ENI only through one.
pub fn management_eip_wanted(dep: &Deployment) -> bool {
    let vpc = dep.cloud.vpc.cidr.0;
    dep.policy
        .management
        .allow
        .as_ref()
        .is_some_and(|list| list.iter().any(|p| !vpc.contains(&p.0)))
}

pub fn management_eip_label(node: &str) -> String {
    label::label(&["management", node])
}

/// An EIP per firewall's management ENI, when [`management_eip_wanted`].
/// The security group and the node's ruleset admit SSH and the API from
/// `policy.management.allow` only; the EIP is only the way in.
pub fn management_eips(dep: &Deployment, f: &mut File) {
    if !management_eip_wanted(dep) {
        f.note(
            "No management EIPs: policy.management.allow names no source outside the VPC, so\n\
             operators reach the nodes from inside it (a bastion or VPN in the management\n\
             vSwitch). Add your public prefix to allow and render again for one EIP per node.",
        );
        return;
    }
    for node in &dep.nodes {
        let Some(inst) = dep.instance(&node.name) else {
            continue;
        };
        let Some(eni) = inst.eni_by_role(crate::spec::EniRole::Management) else {
            continue;
        };
        let l = management_eip_label(&node.name);
        f.comment(&format!(
            "Management EIP of {}: SSH and the API from policy.management.allow only.",
            node.name
        ));
        f.block(
            Block::new("resource", &["alicloud_eip_address", &l])
                .str("address_name", &format!("{}-management", node.name))
                .str("bandwidth", "5")
                .str("internet_charge_type", "PayByTraffic")
                .str("payment_type", "PayAsYouGo"),
        );
        let assoc = Block::new("resource", &["alicloud_eip_association", &l])
            .raw("allocation_id", reference("alicloud_eip_address", &l, "id"));
        let assoc = match resolve(dep, &eni.name) {
            Some(Target::Eni { label }) => assoc
                .raw(
                    "instance_id",
                    reference("alicloud_ecs_network_interface", &label, "id"),
                )
                .str("instance_type", "NetworkInterface")
                .depends_on(vec![format!(
                    "alicloud_ecs_network_interface_attachment.{label}"
                )]),
            // The primary ENI: an EIP bound to the instance is bound to it.
            _ => assoc
                .raw(
                    "instance_id",
                    reference("alicloud_instance", &label::name(&inst.name), "id"),
                )
                .str("instance_type", "EcsInstance"),
        };
        f.block(assoc);
    }
}

/// EIPs, each bound to its HAVIP (rule 4: at most one EIP per HAVIP).
pub fn eips(dep: &Deployment, f: &mut File) {
    for e in &dep.cloud.eips {
        let l = label::name(&e.name);
        f.comment(&format!(
            "EIP {}. The file's {} is the lab's stand-in: the cloud allocates the real\n\
             address (output eip_addresses).",
            e.name, e.ip
        ));
        f.block(
            Block::new("resource", &["alicloud_eip_address", &l])
                .str("address_name", &e.name)
                .str("bandwidth", &e.bandwidth_mbps.to_string())
                .str("internet_charge_type", "PayByTraffic")
                .str("payment_type", "PayAsYouGo"),
        );
        if let Some(h) = &e.havip {
            f.block(
                Block::new("resource", &["alicloud_eip_association", &l])
                    .raw("allocation_id", reference("alicloud_eip_address", &l, "id"))
                    .raw("instance_id", havip_id(h))
                    .str("instance_type", "HaVip"),
            );
        }
    }
}

/// Custom route tables, their vSwitches and entries (rule 5).
pub fn route_tables(dep: &Deployment, f: &mut File) {
    for rt in &dep.cloud.route_tables {
        let l = label::name(&rt.name);
        let table_id = reference("alicloud_route_table", &l, "id");
        f.block(
            Block::new("resource", &["alicloud_route_table", &l])
                .str("route_table_name", &rt.name)
                .raw("vpc_id", vpc_id(dep))
                .str("associate_type", "VSwitch"),
        );
        for vs in &rt.vswitches {
            f.block(
                Block::new(
                    "resource",
                    &[
                        "alicloud_route_table_attachment",
                        &label::label(&[&rt.name, vs]),
                    ],
                )
                .raw("route_table_id", &table_id)
                .raw("vswitch_id", vswitch_id(vs)),
            );
        }
        for entry in &rt.entries {
            let el = label::label(&[&rt.name, &label::cidr(&entry.destination)]);
            let block = Block::new("resource", &["alicloud_route_entry", &el])
                .raw("route_table_id", &table_id)
                .str("destination_cidrblock", &entry.destination.to_string());
            let block = match &entry.next_hop {
                NextHop::Havip(h) => {
                    // A HAVIP forwards only once a member owns it, and the
                    // API wants it associated before it is a next hop.
                    let members = dep.havip(h).map(|x| x.members.as_slice()).unwrap_or(&[]);
                    block
                        .str("nexthop_type", "HaVip")
                        .raw("nexthop_id", havip_id(h))
                        .depends_on(
                            members
                                .iter()
                                .map(|m| {
                                    format!("alicloud_havip_attachment.{}", attachment_label(h, m))
                                })
                                .collect(),
                        )
                }
                NextHop::Eni(n) => match resolve(dep, n) {
                    Some(Target::Eni { label }) => block
                        .str("nexthop_type", "NetworkInterface")
                        .raw(
                            "nexthop_id",
                            reference("alicloud_ecs_network_interface", &label, "id"),
                        )
                        .depends_on(vec![format!(
                            "alicloud_ecs_network_interface_attachment.{label}"
                        )]),
                    Some(Target::Instance { label }) => block
                        .comment(&format!(
                            "{} is a primary ENI: routing to its instance reaches it",
                            n
                        ))
                        .str("nexthop_type", "Instance")
                        .raw("nexthop_id", reference("alicloud_instance", &label, "id")),
                    None => {
                        f.comment(&format!(
                            "route next hop {n} names no ENI; fix it (hafw validate)"
                        ));
                        continue;
                    }
                },
                NextHop::Instance(n) => block.str("nexthop_type", "Instance").raw(
                    "nexthop_id",
                    reference("alicloud_instance", &label::name(n), "id"),
                ),
            };
            f.block(block);
        }
    }
}
