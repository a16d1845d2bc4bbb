//! Instances and their ENIs: the type's ENI limit (rule 8), one zone per
//! instance and per pair (rule 7), and the firewall's interface layout
//! (rules 6, 9 and 12).

use super::context::{Context, Report};
use super::instance_type;
use crate::spec::{EniRole, Instance};

pub(super) fn check(cx: &Context, r: &mut Report) {
    for (i, inst) in cx.dep.cloud.instances.iter().enumerate() {
        if inst.enis.is_empty() {
            r.error(
                format!("cloud.instance.{i}.eni"),
                format!("instance `{}` has no ENIs", inst.name),
                "declare its primary ENI first in eni = [...]",
            );
        }
        eni_limit(r, i, inst);
        one_zone(cx, r, i, inst);
        source_dest_check(r, i, inst);
    }
    for &i in &cx.firewalls {
        layout(r, i, cx.instance_at(i));
    }
    pair_zone(cx, r);
    unique_macs(cx, r);
}

/// Each ENI has its own MAC: `hafw run` finds an ENI's link by it
/// (`crate::resolve`), so two ENIs given one MAC would land on one link.
fn unique_macs(cx: &Context, r: &mut Report) {
    let mut seen: Vec<(crate::addr::Mac, &str)> = Vec::new();
    for (i, inst) in cx.dep.cloud.instances.iter().enumerate() {
        for (j, eni) in inst.enis.iter().enumerate() {
            let Some(mac) = eni.mac else { continue };
            match seen.iter().find(|(m, _)| *m == mac) {
                Some((_, first)) => r.error(
                    format!("cloud.instance.{i}.eni.{j}.mac"),
                    format!(
                        "ENI `{}` has MAC {mac}, which ENI `{first}` has too; every ENI has its own",
                        eni.name
                    ),
                    "copy each ENI's MAC from the ECS console or Terraform's output, or leave `mac` out",
                ),
                None => seen.push((mac, eni.name.as_str())),
            }
        }
    }
}

/// Rule 8: the type bounds the ENIs; the seed's four interfaces do not fit a
/// 4 vCPU type of the older families, which is why one-arm mode exists.
fn eni_limit(r: &mut Report, i: usize, inst: &Instance) {
    let (limit, source) = match (inst.max_enis, instance_type::max_enis(&inst.instance_type)) {
        (Some(0), _) => {
            r.error(
                format!("cloud.instance.{i}.max_enis"),
                format!(
                    "instance `{}` has max_enis = 0; every instance has at least its primary ENI",
                    inst.name
                ),
                "set max_enis to the number of ENIs the type allows, primary included",
            );
            return;
        }
        (Some(n), _) => (n, "its max_enis allows".to_string()),
        (None, Some(n)) => (n, format!("type {} allows", inst.instance_type)),
        (None, None) => {
            r.error(
                format!("cloud.instance.{i}.instance_type"),
                format!(
                    "instance `{}` has type `{}`, whose ENI limit hafw does not know",
                    inst.name, inst.instance_type
                ),
                "set max_enis to the number of ENIs the type allows (primary included), from the cloud's instance type documentation",
            );
            return;
        }
    };
    let n = inst.enis.len();
    if n > usize::from(limit) {
        r.error(
            format!("cloud.instance.{i}.eni.{limit}"),
            format!("instance `{}` declares {n} ENIs but {source} {limit}, primary included", inst.name),
            format!(
                "use one-arm mode (management, one data ENI and ha2, as in examples/alicloud-one-arm.toml) or a type that allows {n} ENIs, such as ecs.g7.xlarge"
            ),
        );
    }
}

/// Rule 7: an ENI is attached in its instance's zone, so every vSwitch an
/// instance uses is in one zone.
fn one_zone(cx: &Context, r: &mut Report, i: usize, inst: &Instance) {
    let mut first: Option<(&str, &str)> = None;
    for (j, e) in inst.enis.iter().enumerate() {
        let Some(zone) = cx.eni_zone(e) else { continue };
        match first {
            None => first = Some((zone, &e.name)),
            Some((z, by)) if z != zone => r.error(
                format!("cloud.instance.{i}.eni.{j}.vswitch"),
                format!(
                    "ENI `{}` is in zone `{zone}` (vSwitch `{}`) but ENI `{by}` of the same instance `{}` is in zone `{z}`",
                    e.name, e.vswitch, inst.name
                ),
                format!("attach only ENIs from vSwitches in zone `{z}`; an instance and its ENIs share one zone"),
            ),
            Some(_) => {}
        }
    }
}

/// Rule 12: the cloud drops traffic an ENI forwards for other addresses
/// while the check is on, which is all a firewall's data ENIs carry.
fn source_dest_check(r: &mut Report, i: usize, inst: &Instance) {
    for (j, e) in inst.enis.iter().enumerate() {
        if e.role.is_data() && e.source_dest_check {
            r.error(
                format!("cloud.instance.{i}.eni.{j}.source_dest_check"),
                format!("ENI `{}` (role {}) has its source/destination check on", e.name, e.role.as_str()),
                "set source_dest_check = false; with the check on the cloud drops the traffic the firewall forwards",
            );
        }
    }
}

/// Rules 6 and 9: one ENI per role, the management ENI first (the cloud's
/// primary ENI), and either two-arm (untrust and trust) or one-arm (data).
fn layout(r: &mut Report, i: usize, inst: &Instance) {
    let name = &inst.name;
    for (j, e) in inst.enis.iter().enumerate() {
        if let Some(first) = inst.enis[..j].iter().find(|o| o.role == e.role) {
            r.error(
                format!("cloud.instance.{i}.eni.{j}.role"),
                format!(
                    "firewall `{name}` has a second {} ENI `{}` (the first is `{}`)",
                    e.role.as_str(),
                    e.name,
                    first.name
                ),
                "give the firewall one ENI per role; it names its interfaces by role",
            );
        }
    }
    match inst.enis.first() {
        Some(first) if first.role != EniRole::Management => {
            if let Some(j) = inst.enis.iter().position(|e| e.role == EniRole::Management) {
                r.error(
                    format!("cloud.instance.{i}.eni.0.role"),
                    format!(
                        "the first ENI of firewall `{name}` is `{}` (role {}); the first ENI is the instance's primary ENI, which is the management interface",
                        first.name,
                        first.role.as_str()
                    ),
                    format!("move the management ENI `{}` to the front of eni = [...]", inst.enis[j].name),
                );
            } else {
                r.error(
                    format!("cloud.instance.{i}.eni"),
                    format!("firewall `{name}` has no management ENI"),
                    "add an ENI with role = \"management\" first in eni = [...]; it is the instance's primary ENI",
                );
            }
        }
        _ => {}
    }
    let has = |role| inst.eni_by_role(role).is_some();
    let (untrust, trust, data) = (
        has(EniRole::Untrust),
        has(EniRole::Trust),
        has(EniRole::Data),
    );
    let mode_fix = "keep either untrust and trust ENIs (two-arm) or one data ENI (one-arm, see examples/alicloud-one-arm.toml)";
    if data && (untrust || trust) {
        let j = inst
            .enis
            .iter()
            .position(|e| e.role == EniRole::Data)
            .unwrap_or(0);
        r.error(
            format!("cloud.instance.{i}.eni.{j}.role"),
            format!("firewall `{name}` has both a data ENI (one-arm) and untrust or trust ENIs (two-arm)"),
            mode_fix,
        );
    } else if untrust != trust {
        let (have, lack) = if untrust {
            ("an untrust", "trust")
        } else {
            ("a trust", "untrust")
        };
        r.error(
            format!("cloud.instance.{i}.eni"),
            format!("firewall `{name}` has {have} ENI but no {lack} ENI; two-arm mode needs both"),
            format!("add a {lack} ENI, or replace both with one data ENI for one-arm mode"),
        );
    } else if !data && !untrust {
        r.error(
            format!("cloud.instance.{i}.eni"),
            format!("firewall `{name}` has no data ENI: neither untrust and trust (two-arm) nor data (one-arm)"),
            mode_fix,
        );
    }
}

/// Rule 7: a HAVIP lives in one vSwitch, so in one zone; both firewalls
/// must be there for either to own it.
fn pair_zone(cx: &Context, r: &mut Report) {
    let zone_of = |i: usize| {
        let inst = cx.instance_at(i);
        inst.enis.first().and_then(|e| cx.eni_zone(e))
    };
    let Some((&first, rest)) = cx.firewalls.split_first() else {
        return;
    };
    let Some(zone) = zone_of(first) else { return };
    for &i in rest {
        match zone_of(i) {
            Some(z) if z != zone => r.error(
                format!("cloud.instance.{i}.eni.0.vswitch"),
                format!(
                    "firewall `{}` is in zone `{z}` but firewall `{}` is in zone `{zone}`; the pair shares HAVIPs, and a HAVIP lives in one zone",
                    cx.instance_at(i).name,
                    cx.instance_at(first).name
                ),
                format!("put both firewalls' ENIs in vSwitches of zone `{zone}`"),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{messages, one_arm_with, seed_edits, seed_with};

    #[test]
    fn four_enis_on_a_three_eni_type() {
        let m = messages(&seed_with("ecs.g7.xlarge", "ecs.g6.xlarge"));
        assert_eq!(
            m,
            vec![
                "instance `fw-a` declares 4 ENIs but type ecs.g6.xlarge allows 3, primary included"
                    .to_string()
            ]
        );
    }

    #[test]
    fn max_enis_overrides_the_table() {
        let m = messages(&one_arm_with(
            "instance_type = \"ecs.g6.xlarge\"",
            "instance_type = \"ecs.g6.xlarge\"\nmax_enis = 2",
        ));
        assert_eq!(
            m,
            vec![
                "instance `fw-a` declares 3 ENIs but its max_enis allows 2, primary included"
                    .to_string()
            ]
        );
    }

    #[test]
    fn an_unknown_type_needs_max_enis() {
        let m = messages(&one_arm_with("ecs.g6.xlarge", "ecs.r8.xlarge"));
        assert_eq!(
            m,
            vec![
                "instance `fw-a` has type `ecs.r8.xlarge`, whose ENI limit hafw does not know"
                    .to_string()
            ]
        );
        let m = messages(&one_arm_with(
            "instance_type = \"ecs.g6.xlarge\"",
            "instance_type = \"ecs.r8.xlarge\"\nmax_enis = 3",
        ));
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn data_enis_need_the_check_off() {
        let m = messages(&one_arm_with(
            r#"role = "data", source_dest_check = false"#,
            r#"role = "data""#,
        ));
        assert_eq!(
            m,
            vec!["ENI `fw-a-data` (role data) has its source/destination check on".to_string()]
        );
    }

    #[test]
    fn both_modes_at_once_is_refused() {
        let ha2 =
            r#"{ name = "fw-a-ha2", vswitch = "ha2", primary_ip = "10.0.3.11", role = "ha2" },"#;
        let data = r#"{ name = "fw-a-data", vswitch = "servers", primary_ip = "10.0.10.11", role = "data", source_dest_check = false },"#;
        let m = messages(&seed_with(ha2, &format!("{ha2}\n  {data}")));
        assert!(
            m.contains(&"firewall `fw-a` has both a data ENI (one-arm) and untrust or trust ENIs (two-arm)".to_string()),
            "{m:?}"
        );
    }

    #[test]
    fn the_management_eni_comes_first() {
        let mgmt = "  { name = \"fw-b-mgmt\", vswitch = \"mgmt\", primary_ip = \"10.0.0.12\", role = \"management\" },\n";
        let ha2 = "  { name = \"fw-b-ha2\", vswitch = \"ha2\", primary_ip = \"10.0.3.12\", role = \"ha2\" },\n";
        let m = messages(&seed_edits(&[(mgmt, ""), (ha2, &format!("{ha2}{mgmt}"))]));
        assert_eq!(
            m,
            vec!["the first ENI of firewall `fw-b` is `fw-b-untrust` (role untrust); the first ENI is the instance's primary ENI, which is the management interface"]
        );
        let m = messages(&seed_edits(&[(mgmt, "")]));
        assert_eq!(
            m,
            vec![
                "firewall `fw-b` has no management ENI",
                "HA path uses role management, but firewall `fw-b` has no management ENI"
            ]
        );
    }
}
