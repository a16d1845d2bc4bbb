//! HAVIPs and their EIPs (alicloud-havip.md, cloud rules 1 to 4): members
//! resolve to one kind and sit in the HAVIP's vSwitch, and the quotas hold.
//! The HAVIP's own address is checked in `addresses`.

use std::collections::{HashMap, HashSet};

use super::context::{names, plural, Context, Member, Report};

pub(super) fn check(cx: &Context, r: &mut Report) {
    let c = &cx.dep.cloud;
    let limits = &c.limits;
    for (i, h) in c.havips.iter().enumerate() {
        members(cx, r, i);
        if h.members.len() > limits.havip_members {
            r.error(
                format!("cloud.havip.{i}.members.{}", limits.havip_members),
                format!(
                    "HAVIP `{}` has {} members; the cloud allows at most {} (cloud.limits.havip_members)",
                    h.name,
                    h.members.len(),
                    limits.havip_members
                ),
                format!("bind at most {}", plural(limits.havip_members, "member", "members")),
            );
        }
    }
    if c.havips.len() > limits.havips_per_vpc {
        r.error(
            format!("cloud.havip.{}", limits.havips_per_vpc),
            format!(
                "the VPC has {} HAVIPs; the cloud allows at most {} (cloud.limits.havips_per_vpc)",
                c.havips.len(),
                limits.havips_per_vpc
            ),
            format!(
                "declare at most {}",
                plural(limits.havips_per_vpc, "HAVIP", "HAVIPs")
            ),
        );
    }
    per_instance(cx, r);
    one_eip_each(cx, r);
}

fn members(cx: &Context, r: &mut Report, i: usize) {
    let h = &cx.dep.cloud.havips[i];
    let home = cx.vswitch(&h.vswitch);
    let mut first_kind: Option<(Member, &str)> = None;
    let mut listed = HashSet::new();
    for (k, name) in h.members.iter().enumerate() {
        let at = format!("cloud.havip.{i}.members.{k}");
        if !listed.insert(name) {
            r.error(
                &at,
                format!("HAVIP `{}` lists member `{name}` twice", h.name),
                "list each member once",
            );
            continue;
        }
        let Some(m) = cx.member(name) else { continue };
        match first_kind {
            None => first_kind = Some((m, name)),
            Some((f, fname)) if std::mem::discriminant(&f) != std::mem::discriminant(&m) => {
                r.error(
                    &at,
                    format!(
                        "HAVIP `{}` mixes member kinds: `{fname}` is {} but `{name}` is {}",
                        h.name,
                        kind(f),
                        kind(m)
                    ),
                    "bind only ENIs or only instances; a firewall binds its data ENIs",
                );
                continue;
            }
            Some(_) => {}
        }
        // The cloud associates only members of the HAVIP's own vSwitch; an
        // instance is associated through its primary ENI.
        let (Some(home), Some(at_eni)) = (home, cx.member_eni(m)) else {
            continue;
        };
        let eni = cx.eni(at_eni);
        if eni.vswitch != home.name {
            let who = match m {
                Member::Eni(_) => format!("ENI `{name}`"),
                Member::Instance(_) => {
                    format!("instance `{name}` (by its primary ENI `{}`)", eni.name)
                }
            };
            r.error(
                &at,
                format!(
                    "HAVIP `{}` member {who} is in vSwitch `{}`, not the HAVIP's vSwitch `{}`",
                    h.name, eni.vswitch, home.name
                ),
                format!("bind only ENIs in vSwitch `{}`; the cloud associates members of the HAVIP's vSwitch only", home.name),
            );
        }
    }
}

fn kind(m: Member) -> &'static str {
    match m {
        Member::Eni(_) => "an ENI",
        Member::Instance(_) => "an instance",
    }
}

/// At most `havips_per_instance` HAVIPs per instance, counting a member ENI
/// against the instance it is attached to.
fn per_instance(cx: &Context, r: &mut Report) {
    let limit = cx.dep.cloud.limits.havips_per_instance;
    // Per instance, in declaration order: each HAVIP it is bound to, with
    // the member entry that binds it first.
    let mut bound: Vec<Vec<(&str, String)>> = vec![Vec::new(); cx.dep.cloud.instances.len()];
    for (i, h) in cx.dep.cloud.havips.iter().enumerate() {
        for (k, name) in h.members.iter().enumerate() {
            let Some(m) = cx.member(name) else { continue };
            let list = &mut bound[cx.member_instance(m)];
            if !list.iter().any(|(n, _)| *n == h.name) {
                list.push((&h.name, format!("cloud.havip.{i}.members.{k}")));
            }
        }
    }
    for (inst, list) in bound.iter().enumerate() {
        let Some((_, at)) = list.get(limit) else {
            continue;
        };
        let havips: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
        r.error(
            at,
            format!(
                "instance `{}` is bound to {} ({}); the cloud allows at most {limit} (cloud.limits.havips_per_instance)",
                cx.instance_at(inst).name,
                plural(havips.len(), "HAVIP", "HAVIPs"),
                names(&havips)
            ),
            format!("bind the instance and its ENIs to at most {}", plural(limit, "HAVIP", "HAVIPs")),
        );
    }
}

/// Cloud rule 4: an EIP maps 1:1 onto one HAVIP address.
fn one_eip_each(cx: &Context, r: &mut Report) {
    let mut bound: HashMap<&str, &str> = HashMap::new();
    for (i, e) in cx.dep.cloud.eips.iter().enumerate() {
        let Some(h) = e.havip.as_deref() else {
            continue;
        };
        if let Some(first) = bound.get(h) {
            r.error(
                format!("cloud.eip.{i}.havip"),
                format!(
                    "EIP `{}` is bound to HAVIP `{h}`, which already has EIP `{first}`",
                    e.name
                ),
                "bind at most one EIP to a HAVIP",
            );
        } else {
            bound.insert(h, &e.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{messages, seed_with};

    #[test]
    fn a_member_in_another_vswitch_is_refused() {
        let m = messages(&seed_with(
            r#"["fw-a-untrust", "fw-b-untrust"]"#,
            r#"["fw-a-untrust", "fw-b-trust"]"#,
        ));
        assert!(
            m.contains(
                &"HAVIP `external` member ENI `fw-b-trust` is in vSwitch `trust`, not the HAVIP's vSwitch `untrust`"
                    .to_string()
            ),
            "{m:?}"
        );
    }

    #[test]
    fn mixed_kinds_are_refused() {
        let m = messages(&seed_with(
            r#"["fw-a-untrust", "fw-b-untrust"]"#,
            r#"["fw-a-untrust", "fw-b"]"#,
        ));
        assert!(
            m.contains(&"HAVIP `external` mixes member kinds: `fw-a-untrust` is an ENI but `fw-b` is an instance".to_string()),
            "{m:?}"
        );
    }

    #[test]
    fn member_quota_is_configurable() {
        let m = messages(&seed_with(
            "[[cloud.havip]]",
            "[cloud.limits]\nhavip_members = 1\n\n[[cloud.havip]]",
        ));
        assert!(
            m.contains(&"HAVIP `external` has 2 members; the cloud allows at most 1 (cloud.limits.havip_members)".to_string()),
            "{m:?}"
        );
    }

    #[test]
    fn per_instance_quota_counts_enis_by_instance() {
        let m = messages(&seed_with(
            "[[cloud.havip]]",
            "[cloud.limits]\nhavips_per_instance = 1\n\n[[cloud.havip]]",
        ));
        assert!(
            m.contains(&"instance `fw-a` is bound to 2 HAVIPs (`external` and `internal`); the cloud allows at most 1 (cloud.limits.havips_per_instance)".to_string()),
            "{m:?}"
        );
    }

    #[test]
    fn two_eips_on_one_havip() {
        let m = messages(&seed_with(
            "[[cloud.route_table]]",
            "[[cloud.eip]]\nname = \"second\"\nip = \"203.0.113.11\"\nhavip = \"external\"\n\n[[cloud.route_table]]",
        ));
        assert!(
            m.contains(
                &"EIP `second` is bound to HAVIP `external`, which already has EIP `web`"
                    .to_string()
            ),
            "{m:?}"
        );
    }

    #[test]
    fn a_member_listed_twice() {
        let m = messages(&seed_with(
            r#"["fw-a-trust", "fw-b-trust"]"#,
            r#"["fw-a-trust", "fw-b-trust", "fw-a-trust"]"#,
        ));
        assert_eq!(m, vec!["HAVIP `internal` lists member `fw-a-trust` twice"]);
    }
}
