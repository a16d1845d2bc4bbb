//! The firewall pair: its security group, the instances and their secondary
//! ENIs.

use super::hcl::{Block, Expr, File};
use super::{label, reference};
use crate::spec::{Deployment, Instance, PortRange};

/// Each firewall's primary ENI is created with its instance and has no
/// resource of its own: a data source reads its id and MAC for the
/// outputs (hafw tells interfaces apart by MAC).
pub fn primary_enis(dep: &Deployment, f: &mut File) {
    for inst in dep.cloud.instances.iter().filter(|i| !i.enis.is_empty()) {
        let l = label::name(&inst.name);
        f.block(
            Block::new("data", &["alicloud_ecs_network_interfaces", &l])
                .raw("instance_id", reference("alicloud_instance", &l, "id"))
                .str("type", "Primary"),
        );
    }
}

pub const SECURITY_GROUP: &str = "firewall";

pub fn security_group_id() -> String {
    reference("alicloud_security_group", SECURITY_GROUP, "id")
}

/// One security group holds every firewall ENI. Intra-group traffic is
/// dropped so that only the flows listed below reach a firewall: the HA
/// heartbeats and what the policy accepts.
pub fn security_group(dep: &Deployment, vpc_id: &str, f: &mut File) {
    f.comment(
        "One security group for every firewall ENI. Members of a group may talk\n\
         freely unless inner_access_policy is Drop; it is, so only the rules below\n\
         reach a firewall. The firewall's own policy still decides; these rules only\n\
         keep out what the policy could never accept. Security groups are stateful,\n\
         so replies need no rule; egress is open by default.",
    );
    f.block(
        Block::new("resource", &["alicloud_security_group", SECURITY_GROUP])
            .str("security_group_name", &format!("{}-firewall", dep.name))
            .raw("vpc_id", vpc_id)
            .str("inner_access_policy", "Drop"),
    );
    for rule in crate::render::security_group::ingress(dep) {
        let ports = rule.ports.map_or("any".to_string(), |p| p.to_string());
        let l = label::label(&["allow", rule.proto, &label::cidr(&rule.cidr), &ports]);
        f.comment(&rule.why.join("; "));
        f.block(
            Block::new("resource", &["alicloud_security_group_rule", &l])
                .str("type", "ingress")
                .str("ip_protocol", rule.proto)
                .str("nic_type", "intranet")
                .str("policy", "accept")
                .str("port_range", &port_range(rule.ports))
                .raw("priority", "1")
                .raw("security_group_id", security_group_id())
                .str("cidr_ip", &rule.cidr),
        );
    }
}

fn port_range(p: Option<PortRange>) -> String {
    match p {
        Some(p) => format!("{}/{}", p.first, p.last),
        None => "-1/-1".into(),
    }
}

/// The instance with its primary ENI (the first one written), then each
/// further ENI and its attachment.
pub fn instance(dep: &Deployment, inst: &Instance, f: &mut File) {
    let inst_label = label::name(&inst.name);
    let Some((primary, rest)) = inst.enis.split_first() else {
        f.comment(&format!(
            "instance {} has no ENI and is not rendered; give it one (hafw validate)",
            inst.name
        ));
        return;
    };
    let mut note = format!(
        "Firewall {}. Its primary ENI {} ({}) is created with the instance.",
        inst.name,
        primary.name,
        primary.role.as_str()
    );
    if !primary.source_dest_check {
        note.push_str(
            "\nThe file turns this ENI's source/destination check off, but alicloud_instance\n\
             has no argument for the primary ENI's check: after apply, turn it off with\n\
             ModifyNetworkInterfaceAttribute (SourceDestCheck=false) or in the console.",
        );
    }
    let node = dep.node(&inst.name);
    if node.is_some() {
        note.push_str(
            "\nIts host name is the node name (hafw.service falls back to it), and its user\n\
             data is the node's first boot (the template beside this file).",
        );
    }
    f.comment(&note);
    let mut block = Block::new("resource", &["alicloud_instance", &inst_label])
        .str("instance_name", &inst.name)
        .str("host_name", &inst.name)
        .str("instance_type", &inst.instance_type)
        .raw("image_id", "var.image_id")
        .raw("key_name", "var.key_pair_name")
        .raw("system_disk_category", "var.system_disk_category")
        .raw(
            "vswitch_id",
            reference("alicloud_vswitch", &label::name(&primary.vswitch), "id"),
        )
        .str("private_ip", &primary.primary_ip.to_string())
        .attr(
            "security_groups",
            Expr::List(vec![Expr::Raw(security_group_id())]),
        );
    if let Some(n) = node {
        block = block
            .raw(
                "user_data",
                format!(
                    "base64encode(templatefile(join(\"/\", [path.module, {}]), local.user_data_vars))",
                    super::hcl::string(&super::user_data_file(&n.name))
                ),
            )
            // The provider updates user_data in place by rebooting the
            // instance: a policy edit would reboot both firewalls at once.
            // User data is the first boot only; later changes go through
            // `hafw config apply`.
            .blank()
            .comment(
                "First boot only: a changed user_data would reboot the instance (both at once).\n\
                 Change the policy with hafw config apply.",
            )
            .block(Block::new("lifecycle", &[]).raw("ignore_changes", "[user_data]"));
    }
    f.block(block);
    let mut previous: Option<String> = None;
    for eni in rest {
        let l = label::name(&eni.name);
        f.block(
            Block::new("resource", &["alicloud_ecs_network_interface", &l])
                .str("network_interface_name", &eni.name)
                .raw(
                    "vswitch_id",
                    reference("alicloud_vswitch", &label::name(&eni.vswitch), "id"),
                )
                .str("primary_ip_address", &eni.primary_ip.to_string())
                .attr(
                    "security_group_ids",
                    Expr::List(vec![Expr::Raw(security_group_id())]),
                )
                .raw("source_dest_check", eni.source_dest_check.to_string()),
        );
        let attachment = Block::new(
            "resource",
            &["alicloud_ecs_network_interface_attachment", &l],
        )
        .raw(
            "network_interface_id",
            reference("alicloud_ecs_network_interface", &l, "id"),
        )
        .raw(
            "instance_id",
            reference("alicloud_instance", &inst_label, "id"),
        );
        let attachment = match &previous {
            // Attaching one at a time, in the file's order, gives the guest
            // its interfaces in that order and avoids the ECS
            // OperationConflict error on parallel attachments.
            Some(prev) => attachment.depends_on(vec![format!(
                "alicloud_ecs_network_interface_attachment.{prev}"
            )]),
            None => attachment,
        };
        f.block(attachment);
        previous = Some(l);
    }
}
