//! The seed's design (its "Configure the VM-Series Firewall" steps): the
//! floating addresses are the HAVIP addresses (rule 10), the EIP sits on
//! the outside HAVIP, and NAT uses the external HAVIP's private IP, the only
//! address the EIP maps (rule 11).

use super::context::{names, Context, Report};
use crate::addr::Ip;
use crate::spec::{EniRole, Havip, VSwitchRole};

const FLOATING_ROLES: [EniRole; 3] = [EniRole::Untrust, EniRole::Trust, EniRole::Data];

pub(super) fn check(cx: &Context, r: &mut Report) {
    for role in FLOATING_ROLES {
        floating(cx, r, role);
    }
    eip_outside(cx, r);
    nat(cx, r);
}

fn floating(cx: &Context, r: &mut Report, role: EniRole) {
    let name = role.as_str();
    let has = cx.any_firewall_has(role);
    let candidates = cx.havips_binding(role);
    let at = format!("policy.interface.{name}.floating");
    let Some(f) = cx.dep.floating(role) else {
        if has {
            let fix = match candidates.first() {
                Some((_, h)) => format!(
                    "add {name} = {{ floating = \"{}\" }} under [policy.interface], the IP of HAVIP `{}`",
                    h.ip, h.name
                ),
                None => format!("add {name} = {{ floating = \"...\" }} under [policy.interface], the IP of the HAVIP that binds the {name} ENIs"),
            };
            r.error(
                "policy.interface",
                format!("the firewalls have {name} ENIs but policy.interface.{name} gives no floating address"),
                fix,
            );
        }
        return;
    };
    if !has {
        if !cx.firewalls.is_empty() {
            r.error(
                at,
                format!("policy.interface.{name} gives a floating address, but the firewalls have no {name} ENI"),
                format!("remove policy.interface.{name}, or add {name} ENIs to the firewalls"),
            );
        }
        return;
    }
    if candidates.is_empty() {
        r.error(
            at,
            format!("no HAVIP binds the {name} ENIs, so the {name} floating address {f} cannot move between the firewalls"),
            format!("add a [[cloud.havip]] with ip = \"{f}\" whose members are the firewalls' {name} ENIs"),
        );
        return;
    }
    let Some(&(hi, h)) = candidates.iter().find(|(_, h)| h.ip == f) else {
        let list: Vec<String> = candidates
            .iter()
            .map(|(_, h)| format!("`{}` ({})", h.name, h.ip))
            .collect();
        r.error(
            at,
            format!(
                "the {name} floating address {f} is not the IP of the HAVIP that binds the {name} ENIs: {}",
                list.join(", ")
            ),
            format!("set it to {}; the cloud delivers only the HAVIP's address to the active firewall", candidates[0].1.ip),
        );
        return;
    };
    members_cover(cx, r, role, hi, h);
}

/// Every firewall's ENI of the role must be a member, or the floating
/// address could not follow a failover to that firewall.
fn members_cover(cx: &Context, r: &mut Report, role: EniRole, hi: usize, h: &Havip) {
    for &i in &cx.firewalls {
        let inst = cx.instance_at(i);
        let Some(e) = inst.eni_by_role(role) else {
            continue;
        };
        if !h.members.contains(&e.name) {
            r.error(
                format!("cloud.havip.{hi}.members"),
                format!(
                    "HAVIP `{}` does not bind `{}`, the {} ENI of firewall `{}`, so its address cannot move to `{}`",
                    h.name,
                    e.name,
                    role.as_str(),
                    inst.name,
                    inst.name
                ),
                format!("add \"{}\" to members", e.name),
            );
        }
    }
}

/// The internet reaches the pair through the EIP, so the EIP's HAVIP must
/// be bound to the outside ENIs (untrust, or data in one-arm).
fn eip_outside(cx: &Context, r: &mut Report) {
    let outside = |role: Option<EniRole>| matches!(role, Some(EniRole::Untrust | EniRole::Data));
    for (i, e) in cx.dep.cloud.eips.iter().enumerate() {
        let Some(h) = e.havip.as_deref().and_then(|h| cx.havip(h)) else {
            continue;
        };
        let Some(role) = cx.havip_role(h) else {
            continue;
        };
        if outside(Some(role)) {
            continue;
        }
        let good: Vec<&str> = cx
            .dep
            .cloud
            .havips
            .iter()
            .filter(|h| outside(cx.havip_role(h)))
            .map(|h| h.name.as_str())
            .collect();
        let fix = if good.is_empty() {
            "bind the EIP to the HAVIP whose members are the firewalls' untrust ENIs (data ENIs in one-arm)".to_string()
        } else {
            format!(
                "bind the EIP to {}, whose members are the firewalls' outside ENIs",
                names(&good)
            )
        };
        r.error(
            format!("cloud.eip.{i}.havip"),
            format!(
                "EIP `{}` is bound to HAVIP `{}`, whose members are {} ENIs; the internet must reach the untrust (or one-arm data) side",
                e.name,
                h.name,
                role.as_str()
            ),
            fix,
        );
    }
}

fn nat(cx: &Context, r: &mut Report) {
    let ext = cx.dep.external_havip();
    let nat = &cx.dep.policy.nat;
    let no_eip = "bind a [[cloud.eip]] (havip = ...) to the HAVIP of the untrust ENIs (data ENIs in one-arm)";
    let external =
        |r: &mut Report, at: String, what: String, verb: &str, ip: Ip, fix_verb: &str| match ext {
            None => r.error(
                at,
                format!(
                    "{what} {verb} {ip}, but no HAVIP has an EIP, so there is no external HAVIP"
                ),
                no_eip,
            ),
            Some(h) if h.ip != ip => r.error(
                at,
                format!(
                    "{what} {verb} {ip}, not the private IP {} of the external HAVIP `{}`",
                    h.ip, h.name
                ),
                format!(
                    "{fix_verb} {}; the EIP maps only the external HAVIP's private IP",
                    h.ip
                ),
            ),
            Some(_) => {}
        };
    for (i, d) in nat.dnat.iter().enumerate() {
        external(
            r,
            format!("policy.nat.dnat.{i}.match_address"),
            format!("DNAT `{}`", d.name),
            "matches",
            d.match_address,
            "match",
        );
        server_target(cx, r, i, d.to_address, &d.name);
    }
    for (i, s) in nat.snat.iter().enumerate() {
        external(
            r,
            format!("policy.nat.snat.{i}.to_address"),
            format!("SNAT `{}`", s.name),
            "translates to",
            s.to_address,
            "translate to",
        );
    }
}

fn server_target(cx: &Context, r: &mut Report, i: usize, to: Ip, name: &str) {
    let at = format!("policy.nat.dnat.{i}.to_address");
    let fix = "send to an address in a vSwitch with role = \"server\"";
    match cx.dep.cloud.vswitches.iter().find(|v| v.cidr.contains(to)) {
        None => r.error(
            at,
            format!("DNAT `{name}` sends to {to}, which is in no vSwitch"),
            fix,
        ),
        Some(v) if v.role != VSwitchRole::Server => r.error(
            at,
            format!(
                "DNAT `{name}` sends to {to} in vSwitch `{}`, whose role is {}, not server",
                v.name,
                vswitch_role(v.role)
            ),
            fix,
        ),
        Some(_) => {}
    }
}

fn vswitch_role(role: VSwitchRole) -> &'static str {
    match role {
        VSwitchRole::Management => "management",
        VSwitchRole::Untrust => "untrust",
        VSwitchRole::Trust => "trust",
        VSwitchRole::Ha2 => "ha2",
        VSwitchRole::Data => "data",
        VSwitchRole::Server => "server",
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::{messages, one_arm_with, seed_with};

    #[test]
    fn floating_must_be_the_havip_address() {
        let m = messages(&seed_with(
            r#"trust = { floating = "10.0.2.100" }"#,
            r#"trust = { floating = "10.0.2.50" }"#,
        ));
        assert_eq!(
            m,
            vec!["the trust floating address 10.0.2.50 is not the IP of the HAVIP that binds the trust ENIs: `internal` (10.0.2.100)"]
        );
    }

    #[test]
    fn a_missing_floating_address_is_reported() {
        let m = messages(&seed_with("trust = { floating = \"10.0.2.100\" }\n", ""));
        assert_eq!(m, vec!["the firewalls have trust ENIs but policy.interface.trust gives no floating address"]);
    }

    #[test]
    fn one_arm_data_floating() {
        let m = messages(&one_arm_with(
            r#"data = { floating = "10.0.1.100" }"#,
            r#"data = { floating = "10.0.1.101" }"#,
        ));
        assert_eq!(
            m,
            vec!["the data floating address 10.0.1.101 is not the IP of the HAVIP that binds the data ENIs: `data` (10.0.1.100)"]
        );
    }

    #[test]
    fn a_member_left_out_of_the_havip() {
        let m = messages(&seed_with(
            r#"["fw-a-trust", "fw-b-trust"]"#,
            r#"["fw-a-trust"]"#,
        ));
        assert_eq!(
            m,
            vec!["HAVIP `internal` does not bind `fw-b-trust`, the trust ENI of firewall `fw-b`, so its address cannot move to `fw-b`"]
        );
    }

    #[test]
    fn the_eip_belongs_outside() {
        let m = messages(&seed_with(r#"havip = "external""#, r#"havip = "internal""#));
        assert!(
            m.contains(&"EIP `web` is bound to HAVIP `internal`, whose members are trust ENIs; the internet must reach the untrust (or one-arm data) side".to_string()),
            "{m:?}"
        );
    }

    #[test]
    fn snat_to_another_address() {
        let m = messages(&seed_with(
            "sources = [\"10.0.10.0/24\"]\nto_address = \"10.0.1.100\"",
            "sources = [\"10.0.10.0/24\"]\nto_address = \"10.0.1.11\"",
        ));
        assert_eq!(
            m,
            vec!["SNAT `servers` translates to 10.0.1.11, not the private IP 10.0.1.100 of the external HAVIP `external`"]
        );
    }

    #[test]
    fn dnat_to_a_non_server_vswitch() {
        let m = messages(&seed_with(
            r#"to_address = "10.0.10.10""#,
            r#"to_address = "10.0.2.10""#,
        ));
        assert_eq!(
            m,
            vec![
                "DNAT `web` sends to 10.0.2.10 in vSwitch `trust`, whose role is trust, not server"
            ]
        );
    }
}
