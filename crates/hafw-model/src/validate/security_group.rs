//! The security group's rule quota. The firewalls' one group holds the
//! rules `render::security_group::ingress` gives (egress is the basic
//! group's default, no rule), counted as the cloud counts them: inbound
//! and outbound together, at most `cloud.limits.security_group_rules`.
//!
//! The default, 200, is ECS `AuthorizeSecurityGroup` (page of
//! 2024-11-14: "The total number of outbound and inbound rules in each
//! security group cannot exceed 200"). The page of 2026-01-28 counts per
//! ENI instead, 1,000 across every group the ENI is in, which for one
//! group is looser; a 2019 FAQ said 100 per group. Configurable for that
//! reason.

use super::context::{plural, Context, Report};
use crate::render::security_group;

pub(super) fn check(cx: &Context, r: &mut Report) {
    let limit = cx.dep.cloud.limits.security_group_rules;
    let rules = security_group::ingress(cx.dep);
    if rules.len() > limit {
        r.error(
            "policy.rule",
            format!(
                "the firewalls' security group needs {} rules (heartbeats, HA2, management and each accept rule's sources, ports and protocols); the cloud allows at most {limit} per group (cloud.limits.security_group_rules)",
                rules.len()
            ),
            format!(
                "merge accept rules that share sources or ports so that at most {} remain",
                plural(limit, "rule", "rules")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{messages, seed_with};
    use crate::render::security_group;

    #[test]
    fn the_quota_counts_the_rendered_rules() {
        let dep = seed_with("", "");
        let n = security_group::ingress(&dep).len();
        assert!(n > 1, "{n}");
        let at_limit = seed_with(
            "[[cloud.havip]]",
            &format!("[cloud.limits]\nsecurity_group_rules = {n}\n\n[[cloud.havip]]"),
        );
        assert_eq!(messages(&at_limit), Vec::<String>::new());
        let below = seed_with(
            "[[cloud.havip]]",
            &format!(
                "[cloud.limits]\nsecurity_group_rules = {}\n\n[[cloud.havip]]",
                n - 1
            ),
        );
        let m = messages(&below);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].contains(&format!("needs {n} rules"))
                && m[0].contains(&format!("at most {}", n - 1)),
            "{m:?}"
        );
    }
}
