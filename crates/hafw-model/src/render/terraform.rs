//! Terraform for the `aliyun/alicloud` provider, rendered from a validated
//! deployment (`hafw plan terraform`).
//!
//! [`render`] returns these files, in this order:
//! - `main.tf`: the providers, then the resources in the deployment file's
//!   order: VPC and vSwitches, the firewalls' security group and its rules,
//!   the pair's HA key (`random_id`), each firewall instance (host name =
//!   node name, first-boot user data) with its secondary ENIs and their
//!   attachments, HAVIPs (`alicloud_vpc_ha_vip`) with one attachment per
//!   member, one after the other, EIPs with their HAVIP associations, the
//!   management EIPs, route tables with their vSwitch attachments and
//!   entries, and a data source per firewall for its primary ENI (id, MAC);
//! - `variables.tf`: what the file does not say and must not hard-code:
//!   the region (defaulting to the file's), the image, the key pair, the
//!   system disk category, where the instances get hafw (`package_url`,
//!   `package_sha256`). Credentials come from the provider's usual
//!   environment variables and never appear here;
//! - `outputs.tf`: EIP addresses, management addresses, HAVIP, instance
//!   and ENI ids, ENI MACs, as maps keyed by the names in the file, and
//!   the HA key (sensitive);
//! - `user-data-<node>.sh.tftpl` per node: its first-boot script as a
//!   `templatefile()` template (see [`crate::render::bootstrap`], which
//!   also says why Terraform generates the key).
//!
//! The provider constraint is derived: [`schema::required_version`] walks
//! the rendered resources and arguments and returns the newest `since` of
//! the schema table (`>= that, < 2.0.0`); a resource or argument not in
//! the table is an error, so nothing unchecked is rendered.
//!
//! **Management access**: SSH and the API port are open to
//! `policy.management.allow` (security group and the node's ruleset). When
//! that list names a source outside the VPC, each firewall's management
//! ENI gets an EIP (output `management_addresses`); otherwise the way in
//! is from inside the VPC (a bastion or VPN in the management vSwitch),
//! and the outputs give the private addresses.
//!
//! The output is a plain string build: the same deployment gives the same
//! bytes. Resource labels come from the file's names (see [`label`] for the
//! injective encoding); string values are quoted with [`hcl::string`], so
//! nothing from the file is ever evaluated as a template.
//!
//! What is deliberately not rendered: the EIP's `ip` (the lab's stand-in;
//! the cloud allocates the real address), and the primary ENI's
//! source/destination check, which `alicloud_instance` sets only from
//! provider 1.284.0 (`network_interfaces`); a comment says so where the
//! file asks for it off.

mod cloud;
mod firewall;
pub mod hcl;
pub mod label;
pub mod schema;

use crate::render::bootstrap::{self, Bootstrap, KeySource};
use crate::spec::Deployment;
use hcl::{Block, Expr, File};

/// The Terraform files for `dep`, as (file name, contents), in a fixed
/// order; `file_text` is the deployment file as written, which each node's
/// user data carries byte for byte.
pub fn render(dep: &Deployment, file_text: &str) -> Result<Vec<(String, String)>, String> {
    let mut files = vec![
        ("main.tf".into(), main_tf(dep)?),
        ("variables.tf".into(), variables_tf(dep)),
        ("outputs.tf".into(), outputs_tf(dep)),
    ];
    for node in &dep.nodes {
        let script = bootstrap::user_data(
            dep,
            file_text,
            &node.name,
            KeySource::Terraform,
            &Bootstrap::default(),
        )?;
        files.push((user_data_file(&node.name), script));
    }
    Ok(files)
}

/// The template file of `node`'s user data, beside main.tf. Node names
/// are host names ([`bootstrap::check_host_name`]), so safe in a path.
pub fn user_data_file(node: &str) -> String {
    format!("user-data-{node}.sh.tftpl")
}

/// The pair's HA key: `random_id.ha_key`.
pub const HA_KEY: &str = "ha_key";

/// `type.label.attr`: labels never need quoting (see [`label`]).
fn reference(ty: &str, label: &str, attr: &str) -> String {
    format!("{ty}.{label}.{attr}")
}

fn main_tf(dep: &Deployment) -> Result<String, String> {
    let mut body = File::default();
    body.comment(
        "Credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET\n\
         (or use a profile); they are never written here.",
    );
    body.block(Block::new("provider", &["alicloud"]).raw("region", "var.region"));
    cloud::network(dep, &mut body);
    firewall::security_group(dep, &cloud::vpc_id(dep), &mut body);
    ha_key(&mut body);
    for inst in &dep.cloud.instances {
        firewall::instance(dep, inst, &mut body);
    }
    cloud::havips(dep, &mut body);
    cloud::eips(dep, &mut body);
    cloud::management_eips(dep, &mut body);
    cloud::route_tables(dep, &mut body);
    firewall::primary_enis(dep, &mut body);
    let min = schema::required_version(&body)?;

    let mut f = File::default();
    f.comment(&format!(
        "Rendered by `hafw plan terraform` from deployment {}. Edit the deployment\n\
         file and render again rather than editing this file.\n\
         aliyun/alicloud: the newest argument used appeared in {min} (schema table\n\
         checked against the provider at {}, {}).",
        dep.name,
        schema::ALICLOUD_DESCRIBE,
        &schema::ALICLOUD_COMMIT[..9],
    ));
    f.block(
        Block::new("terraform", &[]).block(
            Block::new("required_providers", &[])
                .attr(
                    "alicloud",
                    Expr::Object(vec![
                        ("source".into(), Expr::Raw(hcl::string("aliyun/alicloud"))),
                        (
                            "version".into(),
                            Expr::Raw(hcl::string(&schema::alicloud_constraint(min))),
                        ),
                    ]),
                )
                .attr(
                    "random",
                    Expr::Object(vec![
                        ("source".into(), Expr::Raw(hcl::string("hashicorp/random"))),
                        (
                            "version".into(),
                            Expr::Raw(hcl::string(schema::RANDOM_CONSTRAINT)),
                        ),
                    ]),
                ),
        ),
    );
    f.append(body);
    Ok(f.render())
}

/// The pair's pre-shared key, and what each node's template gets.
fn ha_key(f: &mut File) {
    f.comment(
        "The pair's HA key: 32 random bytes, given to both nodes in their user data.\n\
         It is in the Terraform state (keep the state secret) and in the instances'\n\
         user data, which each node's ruleset lets only root read from the metadata\n\
         service. User data is read at first boot only (changes are ignored), so a new\n\
         key reaches running nodes only by hand: hafw keygen, the same file on both.",
    );
    f.block(Block::new("resource", &["random_id", HA_KEY]).raw("byte_length", "32"));
    f.block(Block::new("locals", &[]).attr(
        "user_data_vars",
        Expr::Object(vec![
            (
                "ha_key_b64".into(),
                Expr::Raw(format!("random_id.{HA_KEY}.b64_std")),
            ),
            ("package_url".into(), Expr::Raw("var.package_url".into())),
            (
                "package_sha256".into(),
                Expr::Raw("var.package_sha256".into()),
            ),
        ]),
    ));
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
    f.block(
        Block::new("variable", &["package_url"])
            .str(
                "description",
                "Where each firewall downloads hafw at first boot: a .deb, or the hafw binary\n\
                 itself (installed at /usr/bin/hafw). Empty: the image already has hafw.",
            )
            .raw("type", "string")
            .str("default", "")
            .block(
                Block::new("validation", &[])
                    .raw(
                        "condition",
                        format!(
                            "can(regex({}, var.package_url))",
                            hcl::string(r"^((https?|file)://[^'\s]+)?$")
                        ),
                    )
                    .str(
                        "error_message",
                        "package_url must be empty or an http, https or file URL without spaces or quotes.",
                    ),
            ),
    );
    f.block(
        Block::new("variable", &["package_sha256"])
            .str(
                "description",
                "SHA-256 (hex) the package_url download must have; empty: not checked.",
            )
            .raw("type", "string")
            .str("default", "")
            .block(
                Block::new("validation", &[])
                    .raw(
                        "condition",
                        format!(
                            "can(regex({}, var.package_sha256))",
                            hcl::string("^([0-9a-f]{64})?$")
                        ),
                    )
                    .str(
                        "error_message",
                        "package_sha256 must be empty or 64 lowercase hex digits (sha256sum FILE).",
                    ),
            ),
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
    let management = dep
        .nodes
        .iter()
        .filter_map(|n| {
            let inst = dep.instance(&n.name)?;
            let eni = inst.eni_by_role(crate::spec::EniRole::Management)?;
            let addr = if cloud::management_eip_wanted(dep) {
                reference(
                    "alicloud_eip_address",
                    &cloud::management_eip_label(&n.name),
                    "ip_address",
                )
            } else {
                hcl::string(&eni.primary_ip.to_string())
            };
            Some((n.name.clone(), addr))
        })
        .collect();
    f.block(
        Block::new("output", &["management_addresses"])
            .str(
                "description",
                if cloud::management_eip_wanted(dep) {
                    "Where to reach each node's SSH (and API): its management EIP."
                } else {
                    "Where to reach each node's SSH (and API): its management ENI's private\n\
                     address, from inside the VPC (policy.management.allow names no outside source)."
                },
            )
            .attr("value", map(management)),
    );
    let (ids, macs): (Vec<_>, Vec<_>) = dep
        .cloud
        .instances
        .iter()
        .flat_map(|i| i.enis.iter().enumerate().map(move |(n, e)| (i, n, e)))
        .map(|(inst, n, eni)| {
            let (id, mac) = if n == 0 {
                let d = format!(
                    "data.alicloud_ecs_network_interfaces.{}.interfaces[0]",
                    label::name(&inst.name)
                );
                (format!("{d}.id"), format!("{d}.mac"))
            } else {
                let l = label::name(&eni.name);
                (
                    reference("alicloud_ecs_network_interface", &l, "id"),
                    reference("alicloud_ecs_network_interface", &l, "mac"),
                )
            };
            ((eni.name.clone(), id), (eni.name.clone(), mac))
        })
        .unzip();
    f.block(
        Block::new("output", &["eni_ids"])
            .str(
                "description",
                "ENI ids, by ENI name (primary ENIs included).",
            )
            .attr("value", map(ids)),
    );
    f.block(
        Block::new("output", &["eni_macs"])
            .str(
                "description",
                "ENI MAC addresses, by ENI name: how a node tells its interfaces apart.",
            )
            .attr("value", map(macs)),
    );
    f.block(
        Block::new("output", &["ha_key_b64"])
            .str(
                "description",
                "The pair's HA key, base64 (terraform output -raw ha_key_b64 | base64 -d).",
            )
            .raw("value", format!("random_id.{HA_KEY}.b64_std"))
            .raw("sensitive", "true"),
    );
    f.render()
}
