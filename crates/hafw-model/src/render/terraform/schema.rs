//! Every resource, data source and argument `hafw plan terraform` renders,
//! with the provider version it appeared in.
//!
//! Taken from `aliyun/terraform-provider-alicloud` at commit
//! [`ALICLOUD_COMMIT`] (v1.289), as extracted in
//! `shared/reference/alicloud-terraform-schema.md` (its per-resource tables
//! and its "Provider version at which each argument hafw sets became
//! available" table). `since: None` means the argument is older than every
//! version the reference dates (it gives no version for it); it never
//! raises the minimum. The two entries not in that reference say where
//! they come from.
//!
//! [`required_version`] walks a rendered file and returns the highest
//! `since` of what it uses, and refuses anything the table does not list:
//! `required_providers` is derived from it, and pinned below
//! [`ALICLOUD_BELOW`] (v2.0.0 betas exist, with breaking changes).

use super::hcl::File;

/// The provider commit the table was checked against.
pub const ALICLOUD_COMMIT: &str = "81c43b6727a09e9da37b3d88818c3ba5fa17fa14";
/// `git describe` of that commit.
pub const ALICLOUD_DESCRIBE: &str = "v1.289.0-8-g81c43b672";
/// The first version not accepted: the next major.
pub const ALICLOUD_BELOW: Version = Version(2, 0, 0);
/// hashicorp/random: `random_id` with `byte_length` and `b64_std` is in
/// every 3.x release.
pub const RANDOM_CONSTRAINT: &str = ">= 3.0.0, < 4.0.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u16, pub u16, pub u16);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One argument: its name, the version it appeared in, and the evidence.
#[derive(Debug)]
pub struct Arg {
    pub name: &'static str,
    pub since: Option<Version>,
    pub evidence: &'static str,
}

/// A resource or data source type.
#[derive(Debug)]
pub struct Kind {
    /// `resource` or `data`.
    pub block: &'static str,
    pub ty: &'static str,
    /// The resource type itself: its arguments are no older than this.
    pub since: Option<Version>,
    pub evidence: &'static str,
    pub args: &'static [Arg],
}

impl Kind {
    /// Whether the provider is `aliyun/alicloud` (its version is derived).
    pub fn alicloud(&self) -> bool {
        self.ty.starts_with("alicloud_")
    }
}

/// Meta-arguments of Terraform itself, valid in every resource.
pub const META_ARGUMENTS: [&str; 5] = ["count", "depends_on", "for_each", "lifecycle", "provider"];

const fn v(a: u16, b: u16, c: u16) -> Option<Version> {
    Some(Version(a, b, c))
}

const fn arg(name: &'static str) -> Arg {
    Arg {
        name,
        since: None,
        evidence: "per-resource table; no version given",
    }
}

const fn dated(name: &'static str, since: Option<Version>, evidence: &'static str) -> Arg {
    Arg {
        name,
        since,
        evidence,
    }
}

const REF: &str = "alicloud-terraform-schema.md per-resource table";

pub const TABLE: &[Kind] = &[
    Kind {
        block: "resource",
        ty: "alicloud_vpc",
        since: None,
        evidence: REF,
        args: &[
            arg("cidr_block"),
            dated("vpc_name", v(1, 119, 0), "docs/r/vpc"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_vswitch",
        since: None,
        evidence: REF,
        args: &[
            arg("cidr_block"),
            arg("vpc_id"),
            dated("vswitch_name", v(1, 119, 0), "docs/r/vswitch"),
            dated("zone_id", v(1, 119, 0), "docs/r/vswitch"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_security_group",
        since: None,
        evidence: REF,
        args: &[
            dated(
                "inner_access_policy",
                v(1, 55, 3),
                "Deprecated msg on inner_access: \"from provider version 1.55.3. New field inner_access_policy\"",
            ),
            dated(
                "security_group_name",
                v(1, 239, 0),
                "CHANGELOG 1.239.0 (#7987); Deprecated msg on name",
            ),
            arg("vpc_id"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_security_group_rule",
        since: None,
        evidence: REF,
        args: &[
            arg("cidr_ip"),
            arg("ip_protocol"),
            arg("nic_type"),
            arg("policy"),
            arg("port_range"),
            arg("priority"),
            arg("security_group_id"),
            arg("type"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_instance",
        since: None,
        evidence: REF,
        args: &[
            arg("host_name"),
            arg("image_id"),
            arg("instance_name"),
            arg("instance_type"),
            arg("key_name"),
            arg("private_ip"),
            arg("security_groups"),
            arg("system_disk_category"),
            arg("user_data"),
            arg("vswitch_id"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_ecs_network_interface",
        since: v(1, 123, 1),
        evidence: "docs/r/ecs_network_interface",
        args: &[
            dated("network_interface_name", v(1, 123, 1), "docs/r/ecs_network_interface"),
            dated("primary_ip_address", v(1, 123, 1), "docs/r/ecs_network_interface"),
            dated("security_group_ids", v(1, 123, 1), "docs/r/ecs_network_interface"),
            dated(
                "source_dest_check",
                v(1, 252, 0),
                "CHANGELOG 1.252.0 (#8769); docs/r/ecs_network_interface",
            ),
            arg("vswitch_id"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_ecs_network_interface_attachment",
        since: v(1, 123, 1),
        evidence: "docs/r/ecs_network_interface_attachment",
        args: &[arg("instance_id"), arg("network_interface_id")],
    },
    Kind {
        block: "resource",
        ty: "alicloud_vpc_ha_vip",
        since: v(1, 205, 0),
        evidence: "docs/r/havip: renamed to alicloud_vpc_ha_vip from 1.205.0; CHANGELOG 1.205.0",
        args: &[
            dated("ha_vip_name", v(1, 205, 0), "CHANGELOG 1.205.0; Deprecated msg on havip_name"),
            arg("ip_address"),
            arg("vswitch_id"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_havip_attachment",
        since: None,
        evidence: REF,
        args: &[
            dated("ha_vip_id", v(1, 211, 0), "docs/r/havip_attachment"),
            arg("instance_id"),
            arg("instance_type"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_eip_address",
        since: None,
        evidence: REF,
        args: &[
            dated("address_name", v(1, 126, 0), "Deprecated msg on name"),
            arg("bandwidth"),
            arg("internet_charge_type"),
            dated("payment_type", v(1, 126, 0), "Deprecated msg on instance_charge_type"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_eip_association",
        since: None,
        evidence: REF,
        args: &[arg("allocation_id"), arg("instance_id"), arg("instance_type")],
    },
    Kind {
        block: "resource",
        ty: "alicloud_route_table",
        since: None,
        evidence: REF,
        args: &[
            arg("associate_type"),
            dated("route_table_name", v(1, 119, 1), "Deprecated msg on name"),
            arg("vpc_id"),
        ],
    },
    Kind {
        block: "resource",
        ty: "alicloud_route_table_attachment",
        since: v(1, 194, 0),
        evidence: "docs/r/route_table_attachment",
        args: &[arg("route_table_id"), arg("vswitch_id")],
    },
    Kind {
        block: "resource",
        ty: "alicloud_route_entry",
        since: None,
        evidence: REF,
        args: &[
            arg("destination_cidrblock"),
            arg("nexthop_id"),
            arg("nexthop_type"),
            arg("route_table_id"),
        ],
    },
    // Not in the shared reference: website/docs/d/ecs_network_interfaces
    // ("Available in v1.124.0+"; arguments instance_id and type, exported
    // interfaces[*].id and .mac), read at provider commit 02a0b45a.
    Kind {
        block: "data",
        ty: "alicloud_ecs_network_interfaces",
        since: v(1, 124, 0),
        evidence: "docs/d/ecs_network_interfaces (commit 02a0b45a): Available in v1.124.0+",
        args: &[
            dated("instance_id", v(1, 124, 0), "docs/d/ecs_network_interfaces"),
            dated("type", v(1, 124, 0), "docs/d/ecs_network_interfaces"),
        ],
    },
    // hashicorp/random, pinned by RANDOM_CONSTRAINT, not by this table.
    Kind {
        block: "resource",
        ty: "random_id",
        since: None,
        evidence: "hashicorp/random docs, resources/id",
        args: &[arg("byte_length")],
    },
];

/// The entry for a `resource` or `data` block of type `ty`.
pub fn lookup(block: &str, ty: &str) -> Option<&'static Kind> {
    TABLE.iter().find(|k| k.block == block && k.ty == ty)
}

/// The lowest aliyun/alicloud version that has every resource, data source
/// and argument `file` uses; an error names anything the table lacks.
pub fn required_version(file: &File) -> Result<Version, String> {
    let mut used = Vec::new();
    for b in file.blocks() {
        if b.kind() != "resource" && b.kind() != "data" {
            continue;
        }
        let ty = b.labels().first().map(String::as_str).unwrap_or("");
        for a in b.attr_names() {
            used.push((b.kind(), ty, a));
        }
        if let Some(inner) = b.blocks().find(|i| i.kind() != "lifecycle") {
            return Err(format!(
                "{} {ty} renders a nested block `{}`, which the schema table does not model",
                b.kind(),
                inner.kind()
            ));
        }
        if b.attr_names().next().is_none() {
            used.push((b.kind(), ty, ""));
        }
    }
    min_version(used)
}

/// The highest `since` among `(block, type, argument)` triples (an empty
/// argument: the type alone).
pub fn min_version<'a>(
    used: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Result<Version, String> {
    let mut max = Version(0, 0, 0);
    for (block, ty, name) in used {
        let kind = lookup(block, ty).ok_or_else(|| {
            format!(
                "{block} type {ty} is rendered but not in the schema table (render/terraform/schema.rs); add it with the version it appeared in"
            )
        })?;
        if !kind.alicloud() {
            continue;
        }
        max = max.max(kind.since.unwrap_or(Version(0, 0, 0)));
        if name.is_empty() || META_ARGUMENTS.contains(&name) {
            continue;
        }
        let a = kind.args.iter().find(|a| a.name == name).ok_or_else(|| {
            format!(
                "{ty}.{name} is rendered but not in the schema table (render/terraform/schema.rs); check it in the provider's source and add it with the version it appeared in"
            )
        })?;
        max = max.max(a.since.unwrap_or(Version(0, 0, 0)));
    }
    Ok(max)
}

/// `required_providers.alicloud.version` for a file that needs `min`.
pub fn alicloud_constraint(min: Version) -> String {
    format!(">= {min}, < {ALICLOUD_BELOW}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_is_the_newest_argument_used() {
        let v = min_version([
            ("resource", "alicloud_vpc", "vpc_name"),
            (
                "resource",
                "alicloud_ecs_network_interface",
                "source_dest_check",
            ),
            ("resource", "alicloud_instance", "depends_on"),
            ("resource", "random_id", "byte_length"),
        ])
        .unwrap();
        assert_eq!(v, Version(1, 252, 0));
        assert_eq!(alicloud_constraint(v), ">= 1.252.0, < 2.0.0");
        // A type's own version counts even for its oldest arguments.
        let v = min_version([("resource", "alicloud_vpc_ha_vip", "ip_address")]).unwrap();
        assert_eq!(v, Version(1, 205, 0));
    }

    #[test]
    fn anything_not_in_the_table_is_refused() {
        let e = min_version([("resource", "alicloud_havip", "ha_vip_name")]).unwrap_err();
        assert!(
            e.contains("alicloud_havip") && e.contains("schema.rs"),
            "{e}"
        );
        let e = min_version([("resource", "alicloud_instance", "password")]).unwrap_err();
        assert!(e.contains("alicloud_instance.password"), "{e}");
    }

    #[test]
    fn no_type_or_argument_is_listed_twice() {
        for (i, k) in TABLE.iter().enumerate() {
            assert!(
                !TABLE[..i]
                    .iter()
                    .any(|o| o.block == k.block && o.ty == k.ty),
                "{} twice",
                k.ty
            );
            for (j, a) in k.args.iter().enumerate() {
                assert!(
                    !k.args[..j].iter().any(|o| o.name == a.name),
                    "{}.{}",
                    k.ty,
                    a.name
                );
                assert!(
                    a.since.is_none() || a.since >= k.since,
                    "{}.{} older than its type",
                    k.ty,
                    a.name
                );
            }
        }
    }
}
