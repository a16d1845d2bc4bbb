//! Rule 5: vSwitch CIDRs are /16 to /29, inside the VPC CIDR, and do not
//! overlap (alicloud-havip.md, cloud rule 6). The zone reference is checked
//! with the other names.

use super::context::{Context, Report};

/// The prefix lengths the cloud accepts for a vSwitch.
const PREFIXES: std::ops::RangeInclusive<u8> = 16..=29;

pub(super) fn check(cx: &Context, r: &mut Report) {
    let c = &cx.dep.cloud;
    let vpc = c.vpc.cidr;
    for (i, v) in c.vswitches.iter().enumerate() {
        let at = format!("cloud.vswitch.{i}.cidr");
        if !PREFIXES.contains(&v.cidr.prefix_len()) {
            r.error(
                &at,
                format!(
                    "vSwitch `{}` CIDR {} is a /{}; the cloud accepts /16 to /29",
                    v.name,
                    v.cidr,
                    v.cidr.prefix_len()
                ),
                "choose a prefix length from /16 to /29",
            );
        }
        if !vpc.contains_net(&v.cidr) {
            r.error(
                &at,
                format!(
                    "vSwitch `{}` CIDR {} is outside the VPC CIDR {vpc}",
                    v.name, v.cidr
                ),
                format!("choose a block inside {vpc}"),
            );
        }
        if let Some(o) = c.vswitches[..i].iter().find(|o| o.cidr.overlaps(&v.cidr)) {
            r.error(
                &at,
                format!(
                    "vSwitch `{}` CIDR {} overlaps vSwitch `{}` ({})",
                    v.name, v.cidr, o.name, o.cidr
                ),
                "give each vSwitch its own block of the VPC",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{messages, seed_with};

    #[test]
    fn prefix_outside_the_cloud_range_is_refused() {
        let m = messages(&seed_with(
            r#"cidr = "10.0.10.0/24""#,
            r#"cidr = "10.0.10.0/30""#,
        ));
        assert!(
            m.iter()
                .any(|m| m.contains("is a /30; the cloud accepts /16 to /29")),
            "{m:?}"
        );
    }

    #[test]
    fn a_block_outside_the_vpc_is_refused() {
        let m = messages(&seed_with(
            r#"cidr = "10.0.10.0/24""#,
            r#"cidr = "10.1.10.0/24""#,
        ));
        assert!(
            m.iter()
                .any(|m| m.contains("outside the VPC CIDR 10.0.0.0/16")),
            "{m:?}"
        );
    }

    #[test]
    fn overlap_names_the_earlier_vswitch() {
        let m = messages(&seed_with(
            r#"cidr = "10.0.10.0/24""#,
            r#"cidr = "10.0.0.0/23""#,
        ));
        assert!(
            m.iter()
                .any(|m| m.contains("overlaps vSwitch `mgmt` (10.0.0.0/24)")),
            "{m:?}"
        );
    }

    #[test]
    fn the_seed_has_good_vswitches() {
        let mut r = super::Report::default();
        let dep = seed_with("", "");
        super::check(&super::Context::new(&dep), &mut r);
        assert!(r.0.is_empty(), "{:?}", r.0);
    }
}
