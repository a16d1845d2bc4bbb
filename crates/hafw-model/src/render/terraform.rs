//! Terraform for the `aliyun/alicloud` provider, rendered from a validated
//! deployment (`hafw plan terraform`).
//!
//! [`render`] returns three files, in this order:
//! - `main.tf`: the provider, then the resources in the deployment file's
//!   order: VPC and vSwitches, the firewalls' security group and its rules,
//!   each firewall instance with its secondary ENIs and their attachments,
//!   HAVIPs with one attachment per member, EIPs with their HAVIP
//!   associations, route tables with their vSwitch attachments and entries;
//! - `variables.tf`: what the file does not say and must not hard-code:
//!   the region (defaulting to the file's), the image, the key pair, the
//!   system disk category. Credentials come from the provider's usual
//!   environment variables and never appear here;
//! - `outputs.tf`: the EIP addresses, HAVIP ids and instance ids, as maps
//!   keyed by the names in the file.
//!
//! The output is a plain string build: the same deployment gives the same
//! bytes. Resource labels come from the file's names (see [`label`] for the
//! injective encoding); string values are quoted with [`hcl::string`], so
//! nothing from the file is ever evaluated as a template.
//!
//! What is deliberately not rendered: the EIP's `ip` (the lab's stand-in;
//! the cloud allocates the real address), the HA key file (a secret that
//! does not belong in Terraform state), and the primary ENI's
//! source/destination check, which `alicloud_instance` cannot set (a comment
//! says so where the file asks for it off).
//!
//! Provider version: `alicloud_havip_attachment.ha_vip_id` needs 1.211.0;
//! `source_dest_check` on `alicloud_ecs_network_interface` is newer still
//! (the ENI check itself arrived in 2025), so use a current provider.

mod cloud;
mod firewall;
pub mod hcl;
pub mod label;

use crate::spec::Deployment;
use hcl::{Block, Expr, File};

/// The Terraform files for `dep`, as (file name, contents), in a fixed order.
pub fn render(dep: &Deployment) -> Vec<(String, String)> {
    vec![
        ("main.tf".into(), main_tf(dep)),
        ("variables.tf".into(), variables_tf(dep)),
        ("outputs.tf".into(), outputs_tf(dep)),
    ]
}

/// `type.label.attr`: labels never need quoting (see [`label`]).
fn reference(ty: &str, label: &str, attr: &str) -> String {
    format!("{ty}.{label}.{attr}")
}

fn main_tf(dep: &Deployment) -> String {
    let mut f = File::default();
    f.comment(&format!(
        "Rendered by `hafw plan terraform` from deployment {}. Edit the deployment\n\
         file and render again rather than editing this file.",
        dep.name
    ));
    f.block(
        Block::new("terraform", &[]).block(Block::new("required_providers", &[]).attr(
            "alicloud",
            Expr::Object(vec![
                ("source".into(), Expr::Raw(hcl::string("aliyun/alicloud"))),
                ("version".into(), Expr::Raw(hcl::string(">= 1.211.0"))),
            ]),
        )),
    );
    f.comment(
        "Credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET\n\
         (or use a profile); they are never written here.",
    );
    f.block(Block::new("provider", &["alicloud"]).raw("region", "var.region"));
    cloud::network(dep, &mut f);
    firewall::security_group(dep, &cloud::vpc_id(dep), &mut f);
    for inst in &dep.cloud.instances {
        firewall::instance(inst, &mut f);
    }
    cloud::havips(dep, &mut f);
    cloud::eips(dep, &mut f);
    cloud::route_tables(dep, &mut f);
    f.render()
}

fn variables_tf(dep: &Deployment) -> String {
    let mut f = File::default();
    f.block(
        Block::new("variable", &["region"])
            .str(
                "description",
                "Alibaba Cloud region; the deployment file says this one.",
            )
            .raw("type", "string")
            .str("default", &dep.cloud.region),
    );
    f.block(
        Block::new("variable", &["image_id"])
            .str(
                "description",
                "Image for the firewall instances (region- and account-specific).",
            )
            .raw("type", "string"),
    );
    f.block(
        Block::new("variable", &["key_pair_name"])
            .str(
                "description",
                "Existing ECS key pair for logging in to the firewalls; no password is set.",
            )
            .raw("type", "string")
            .raw("sensitive", "true"),
    );
    f.block(
        Block::new("variable", &["system_disk_category"])
            .str(
                "description",
                "System disk category; g7 and newer families need ESSD.",
            )
            .raw("type", "string")
            .str("default", "cloud_essd"),
    );
    f.render()
}

fn outputs_tf(dep: &Deployment) -> String {
    let map = |pairs: Vec<(String, String)>| {
        Expr::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (hcl::string(&k), Expr::Raw(v)))
                .collect(),
        )
    };
    let eips = dep
        .cloud
        .eips
        .iter()
        .map(|e| {
            let r = reference("alicloud_eip_address", &label::name(&e.name), "ip_address");
            (e.name.clone(), r)
        })
        .collect();
    let havips = dep
        .cloud
        .havips
        .iter()
        .map(|h| (h.name.clone(), cloud::havip_id(&h.name)))
        .collect();
    let instances = dep
        .cloud
        .instances
        .iter()
        .filter(|i| !i.enis.is_empty())
        .map(|i| {
            let r = reference("alicloud_instance", &label::name(&i.name), "id");
            (i.name.clone(), r)
        })
        .collect();
    let mut f = File::default();
    f.block(
        Block::new("output", &["eip_addresses"])
            .str(
                "description",
                "Public address of each EIP, by its name in the deployment file.",
            )
            .attr("value", map(eips)),
    );
    f.block(
        Block::new("output", &["havip_ids"])
            .str("description", "HAVIP ids, by name.")
            .attr("value", map(havips)),
    );
    f.block(
        Block::new("output", &["instance_ids"])
            .str("description", "Firewall instance ids, by name.")
            .attr("value", map(instances)),
    );
    f.render()
}
