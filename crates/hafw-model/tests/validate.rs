//! Each rule of the validator, broken once in an example: the exact
//! message, fix, path and line:column it reports, and nothing else.

use hafw_model::parse;

const SEED: &str = include_str!("../../../examples/alicloud-havip.toml");
const ONE_ARM: &str = include_str!("../../../examples/alicloud-one-arm.toml");

/// The example with each `from`, in turn, replaced once by its `to`.
fn edit(base: &str, edits: &[(&str, &str)]) -> String {
    let mut text = base.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "`{from}` is not in the example");
        text = text.replacen(from, to, 1);
    }
    text
}

/// Every diagnostic as `line:column: path: message` and its fix.
fn errors(text: &str) -> Vec<String> {
    match parse("deployment.toml", text) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .items
            .iter()
            .map(|i| {
                let at = i
                    .location
                    .map_or("?:?".to_string(), |l| format!("{}:{}", l.line, l.column));
                format!("{at}: {}: {}\n  fix: {}", i.path, i.message, i.fix)
            })
            .collect(),
    }
}

/// rule 1
#[test]
fn duplicate_vswitch_name() {
    let text = edit(
        SEED,
        &[(
            r##"# Four ENIs"##,
            r##"[[cloud.vswitch]]
name = "mgmt"
zone = "cn-hangzhou-h"
cidr = "10.0.20.0/24"
role = "server"

# Four ENIs"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "44:8: cloud.vswitch[5].name: vSwitch name `mgmt` is already used at cloud.vswitch[0].name\n  fix: give each vSwitch its own name",
        ]
    );
}

/// rule 1
#[test]
fn duplicate_eni_name() {
    let text = edit(
        SEED,
        &[(r##"{ name = "fw-b-ha2""##, r##"{ name = "fw-a-ha2""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "62:12: cloud.instance[1].eni[3].name: ENI name `fw-a-ha2` is already used at cloud.instance[0].eni[3].name\n  fix: give each ENI its own name",
        ]
    );
}

/// rule 1
#[test]
fn duplicate_rule_name() {
    let text = edit(
        SEED,
        &[(r##"name = "servers-out""##, r##"name = "web-in""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "121:8: policy.rule[1].name: rule name `web-in` is already used at policy.rule[0].name\n  fix: give each rule its own name",
        ]
    );
}

/// rule 1
#[test]
fn duplicate_lab_host_name() {
    let text = edit(SEED, &[(r##"name = "echo""##, r##"name = "client""##)]);
    assert_eq!(
        errors(&text),
        [
            "170:8: lab.host[2].name: lab host name `client` is already used at lab.host[1].name\n  fix: give each lab host its own name",
        ]
    );
}

/// rule 1
#[test]
fn eni_vswitch_does_not_resolve() {
    let text = edit(
        SEED,
        &[(
            r##"vswitch = "ha2", primary_ip = "10.0.3.12""##,
            r##"vswitch = "ha3", primary_ip = "10.0.3.12""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "62:34: cloud.instance[1].eni[3].vswitch: ENI `fw-b-ha2` names vSwitch `ha3`, which is not declared\n  fix: use one of `mgmt`, `untrust`, `trust`, `ha2` and `servers`",
        ]
    );
}

/// rule 1
#[test]
fn havip_vswitch_does_not_resolve() {
    let text = edit(
        SEED,
        &[(
            r##"vswitch = "trust"
ip"##,
            r##"vswitch = "inside"
ip"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "75:11: cloud.havip[1].vswitch: HAVIP `internal` names vSwitch `inside`, which is not declared\n  fix: use one of `mgmt`, `untrust`, `trust`, `ha2` and `servers`",
        ]
    );
}

/// rule 1
#[test]
fn havip_member_does_not_resolve() {
    let text = edit(SEED, &[(r##""fw-b-untrust"]"##, r##""fw-c-untrust"]"##)]);
    assert_eq!(
        errors(&text),
        [
            "71:11: cloud.havip[0].members: HAVIP `external` does not bind `fw-b-untrust`, the untrust ENI of firewall `fw-b`, so its address cannot move to `fw-b`\n  fix: add \"fw-b-untrust\" to members",
            "71:28: cloud.havip[0].members[1]: HAVIP `external` member `fw-c-untrust` is neither an ENI nor an instance\n  fix: name an ENI (`fw-a-mgmt`, `fw-a-untrust`, `fw-a-trust`, `fw-a-ha2`, `fw-b-mgmt`, `fw-b-untrust`, `fw-b-trust` and `fw-b-ha2`) or an instance (`fw-a` and `fw-b`)",
        ]
    );
}

/// rule 1
#[test]
fn eip_havip_does_not_resolve() {
    let text = edit(
        SEED,
        &[(r##"havip = "external""##, r##"havip = "externa""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "82:9: cloud.eip[0].havip: EIP `web` is bound to HAVIP `externa`, which is not declared\n  fix: use one of `external` and `internal`",
            "129:17: policy.nat.dnat[0].match_address: DNAT `web` matches 10.0.1.100, but no HAVIP has an EIP, so there is no external HAVIP\n  fix: bind a [[cloud.eip]] (havip = ...) to the HAVIP of the untrust ENIs (data ENIs in one-arm)",
            "137:14: policy.nat.snat[0].to_address: SNAT `servers` translates to 10.0.1.100, but no HAVIP has an EIP, so there is no external HAVIP\n  fix: bind a [[cloud.eip]] (havip = ...) to the HAVIP of the untrust ENIs (data ENIs in one-arm)",
        ]
    );
}

/// rule 1
#[test]
fn route_table_vswitch_does_not_resolve() {
    let text = edit(
        SEED,
        &[(
            r##"vswitches = ["servers"]"##,
            r##"vswitches = ["server"]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "86:14: cloud.route_table[0].vswitches[0]: route table `servers-via-firewall` names vSwitch `server`, which is not declared\n  fix: use one of `mgmt`, `untrust`, `trust`, `ha2` and `servers`",
        ]
    );
}

/// rule 1
#[test]
fn next_hop_does_not_resolve() {
    let text = edit(
        SEED,
        &[(r##"{ havip = "internal" }"##, r##"{ havip = "inside" }"##)],
    );
    assert_eq!(
        errors(&text),
        [
            "88:53: cloud.route_table[0].entry[0].next_hop.havip: route 0.0.0.0/0 in table `servers-via-firewall` points at HAVIP `inside`, which is not declared\n  fix: use one of `external` and `internal`",
        ]
    );
}

/// rule 1
#[test]
fn node_names_no_instance() {
    let text = edit(
        SEED,
        &[(
            r##"name = "fw-b"
priority"##,
            r##"name = "fw-c"
priority"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "151:8: node[1].name: node `fw-c` names no instance; a node runs on the cloud.instance of the same name\n  fix: use one of `fw-a` and `fw-b`",
        ]
    );
}

/// rule 1
#[test]
fn lab_host_vswitch_does_not_resolve() {
    let text = edit(
        SEED,
        &[(
            r##"vswitch = "servers"
ip"##,
            r##"vswitch = "web"
ip"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "160:11: lab.host[0].vswitch: lab host `web` names vSwitch `web`, which is not declared\n  fix: use one of `mgmt`, `untrust`, `trust`, `ha2` and `servers`",
        ]
    );
}

/// rule 1/5
#[test]
fn vswitch_zone_not_in_cloud_zones() {
    let text = edit(
        SEED,
        &[(
            r##"name = "servers"
zone = "cn-hangzhou-h""##,
            r##"name = "servers"
zone = "cn-hangzhou-i""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "39:8: cloud.vswitch[4].zone: vSwitch `servers` is in zone `cn-hangzhou-i`, which cloud.zones does not list\n  fix: add `cn-hangzhou-i` to cloud.zones, or use `cn-hangzhou-h`",
        ]
    );
}

/// rule 2
#[test]
fn havip_ip_outside_its_vswitch() {
    let text = edit(
        SEED,
        &[(r##"ip = "10.0.1.100""##, r##"ip = "10.0.9.100""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "70:6: cloud.havip[0].ip: HAVIP `external` IP 10.0.9.100 is outside its vSwitch `untrust` (10.0.1.0/24)\n  fix: choose a free address inside 10.0.1.0/24",
            "92:24: policy.interface.untrust.floating: the untrust floating address 10.0.1.100 is not the IP of the HAVIP that binds the untrust ENIs: `external` (10.0.9.100)\n  fix: set it to 10.0.9.100; the cloud delivers only the HAVIP's address to the active firewall",
            "129:17: policy.nat.dnat[0].match_address: DNAT `web` matches 10.0.1.100, not the private IP 10.0.9.100 of the external HAVIP `external`\n  fix: match 10.0.9.100; the EIP maps only the external HAVIP's private IP",
            "137:14: policy.nat.snat[0].to_address: SNAT `servers` translates to 10.0.1.100, not the private IP 10.0.9.100 of the external HAVIP `external`\n  fix: translate to 10.0.9.100; the EIP maps only the external HAVIP's private IP",
        ]
    );
}

/// rule 2
#[test]
fn havip_ip_is_the_gateway() {
    let text = edit(
        SEED,
        &[(r##"ip = "10.0.2.100""##, r##"ip = "10.0.2.253""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "76:6: cloud.havip[1].ip: HAVIP `internal` IP 10.0.2.253 is the gateway of vSwitch `trust` (10.0.2.0/24)\n  fix: choose another address inside 10.0.2.0/24; the cloud keeps 10.0.2.0, 10.0.2.253, 10.0.2.254 and 10.0.2.255 for itself",
            "93:22: policy.interface.trust.floating: the trust floating address 10.0.2.100 is not the IP of the HAVIP that binds the trust ENIs: `internal` (10.0.2.253)\n  fix: set it to 10.0.2.253; the cloud delivers only the HAVIP's address to the active firewall",
        ]
    );
}

/// rule 2
#[test]
fn havip_ip_is_the_network_address() {
    let text = edit(SEED, &[(r##"ip = "10.0.2.100""##, r##"ip = "10.0.2.0""##)]);
    assert_eq!(
        errors(&text),
        [
            "76:6: cloud.havip[1].ip: HAVIP `internal` IP 10.0.2.0 is the network address of vSwitch `trust` (10.0.2.0/24)\n  fix: choose another address inside 10.0.2.0/24; the cloud keeps 10.0.2.0, 10.0.2.253, 10.0.2.254 and 10.0.2.255 for itself",
            "93:22: policy.interface.trust.floating: the trust floating address 10.0.2.100 is not the IP of the HAVIP that binds the trust ENIs: `internal` (10.0.2.0)\n  fix: set it to 10.0.2.0; the cloud delivers only the HAVIP's address to the active firewall",
        ]
    );
}

/// rule 2/14
#[test]
fn havip_ip_used_by_an_eni() {
    let text = edit(SEED, &[(r##"ip = "10.0.2.100""##, r##"ip = "10.0.2.12""##)]);
    assert_eq!(
        errors(&text),
        [
            "76:6: cloud.havip[1].ip: HAVIP `internal` IP 10.0.2.12 is already used by ENI `fw-b-trust`\n  fix: give each ENI, HAVIP, EIP and lab host its own address",
            "93:22: policy.interface.trust.floating: the trust floating address 10.0.2.100 is not the IP of the HAVIP that binds the trust ENIs: `internal` (10.0.2.12)\n  fix: set it to 10.0.2.12; the cloud delivers only the HAVIP's address to the active firewall",
        ]
    );
}

/// rule 2
#[test]
fn havip_members_of_mixed_kinds() {
    let text = edit(
        SEED,
        &[(
            r##"["fw-a-untrust", "fw-b-untrust"]"##,
            r##"["fw-a-untrust", "fw-b"]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "71:11: cloud.havip[0].members: HAVIP `external` does not bind `fw-b-untrust`, the untrust ENI of firewall `fw-b`, so its address cannot move to `fw-b`\n  fix: add \"fw-b-untrust\" to members",
            "71:28: cloud.havip[0].members[1]: HAVIP `external` mixes member kinds: `fw-a-untrust` is an ENI but `fw-b` is an instance\n  fix: bind only ENIs or only instances; a firewall binds its data ENIs",
        ]
    );
}

/// rule 2
#[test]
fn havip_member_in_another_vswitch() {
    let text = edit(
        SEED,
        &[(
            r##"["fw-a-trust", "fw-b-trust"]"##,
            r##"["fw-a-trust", "fw-b-trust", "fw-b-ha2"]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "77:40: cloud.havip[1].members[2]: HAVIP `internal` member ENI `fw-b-ha2` is in vSwitch `ha2`, not the HAVIP's vSwitch `trust`\n  fix: bind only ENIs in vSwitch `trust`; the cloud associates members of the HAVIP's vSwitch only",
            "88:53: cloud.route_table[0].entry[0].next_hop.havip: route 0.0.0.0/0 in table `servers-via-firewall` (attached to server vSwitch `servers`) points at HAVIP `internal`, whose members are not all trust (or data) ENIs\n  fix: point it at a HAVIP whose members are the firewalls' trust ENIs (data ENIs in one-arm)",
        ]
    );
}

/// rule 2
#[test]
fn havip_instance_member_counts_by_primary_eni() {
    let text = edit(
        SEED,
        &[(
            r##"["fw-a-untrust", "fw-b-untrust"]"##,
            r##"["fw-a", "fw-b"]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "71:12: cloud.havip[0].members[0]: HAVIP `external` member instance `fw-a` (by its primary ENI `fw-a-mgmt`) is in vSwitch `mgmt`, not the HAVIP's vSwitch `untrust`\n  fix: bind only ENIs in vSwitch `untrust`; the cloud associates members of the HAVIP's vSwitch only",
            "71:20: cloud.havip[0].members[1]: HAVIP `external` member instance `fw-b` (by its primary ENI `fw-b-mgmt`) is in vSwitch `mgmt`, not the HAVIP's vSwitch `untrust`\n  fix: bind only ENIs in vSwitch `untrust`; the cloud associates members of the HAVIP's vSwitch only",
            "92:24: policy.interface.untrust.floating: no HAVIP binds the untrust ENIs, so the untrust floating address 10.0.1.100 cannot move between the firewalls\n  fix: add a [[cloud.havip]] with ip = \"10.0.1.100\" whose members are the firewalls' untrust ENIs",
        ]
    );
}

/// rule 2
#[test]
fn havip_member_quota() {
    let text = edit(
        SEED,
        &[(
            r##"[[cloud.havip]]"##,
            r##"[cloud.limits]
havip_members = 1

[[cloud.havip]]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "74:28: cloud.havip[0].members[1]: HAVIP `external` has 2 members; the cloud allows at most 1 (cloud.limits.havip_members)\n  fix: bind at most 1 member",
            "80:26: cloud.havip[1].members[1]: HAVIP `internal` has 2 members; the cloud allows at most 1 (cloud.limits.havip_members)\n  fix: bind at most 1 member",
        ]
    );
}

/// rule 2
#[test]
fn havips_per_instance_quota() {
    let text = edit(
        SEED,
        &[(
            r##"[[cloud.havip]]"##,
            r##"[cloud.limits]
havips_per_instance = 1

[[cloud.havip]]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "80:12: cloud.havip[1].members[0]: instance `fw-a` is bound to 2 HAVIPs (`external` and `internal`); the cloud allows at most 1 (cloud.limits.havips_per_instance)\n  fix: bind the instance and its ENIs to at most 1 HAVIP",
            "80:26: cloud.havip[1].members[1]: instance `fw-b` is bound to 2 HAVIPs (`external` and `internal`); the cloud allows at most 1 (cloud.limits.havips_per_instance)\n  fix: bind the instance and its ENIs to at most 1 HAVIP",
        ]
    );
}

/// rule 2
#[test]
fn havips_per_vpc_quota() {
    let text = edit(
        SEED,
        &[(
            r##"[[cloud.havip]]"##,
            r##"[cloud.limits]
havips_per_vpc = 1

[[cloud.havip]]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "76:1: cloud.havip[1]: the VPC has 2 HAVIPs; the cloud allows at most 1 (cloud.limits.havips_per_vpc)\n  fix: declare at most 1 HAVIP",
        ]
    );
}

/// rule 3
#[test]
fn two_eips_on_one_havip() {
    let text = edit(
        SEED,
        &[(
            r##"[[cloud.route_table]]"##,
            r##"[[cloud.eip]]
name = "second"
ip = "203.0.113.11"
havip = "external"

[[cloud.route_table]]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "87:9: cloud.eip[1].havip: EIP `second` is bound to HAVIP `external`, which already has EIP `web`\n  fix: bind at most one EIP to a HAVIP",
        ]
    );
}

/// rule 4
#[test]
fn vswitch_in_two_route_tables() {
    let text = edit(
        SEED,
        &[(
            r##"[policy.interface]"##,
            r##"[[cloud.route_table]]
name = "again"
vswitches = ["servers"]

[policy.interface]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "93:14: cloud.route_table[1].vswitches[0]: vSwitch `servers` is attached to route table `again` and already to `servers-via-firewall`\n  fix: attach each vSwitch to one route table",
        ]
    );
}

/// rule 4
#[test]
fn route_entry_quota() {
    let text = edit(
        SEED,
        &[(
            r##"[[cloud.havip]]"##,
            r##"[cloud.limits]
route_entries = 0

[[cloud.havip]]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "91:3: cloud.route_table[0].entry[0]: route table `servers-via-firewall` has 1 entry; the cloud allows at most 0 (cloud.limits.route_entries)\n  fix: keep at most 0 entries, or summarise destinations",
        ]
    );
}

/// rule 4
#[test]
fn havip_route_entry_quota() {
    let text = edit(
        SEED,
        &[(
            r##"[[cloud.havip]]"##,
            r##"[cloud.limits]
havip_route_entries = 0

[[cloud.havip]]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "91:43: cloud.route_table[0].entry[0].next_hop: route table `servers-via-firewall` has 1 entry with a HAVIP next hop; the cloud allows at most 0 (cloud.limits.havip_route_entries)\n  fix: point at most 0 entries at HAVIPs",
        ]
    );
}

/// rule 4
#[test]
fn duplicate_route_destination() {
    let text = edit(
        SEED,
        &[(
            r##"  { destination = "0.0.0.0/0", next_hop = { havip = "internal" } },"##,
            r##"  { destination = "0.0.0.0/0", next_hop = { havip = "internal" } },
  { destination = "0.0.0.0/0", next_hop = { eni = "fw-a-trust" } },"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "89:19: cloud.route_table[0].entry[1].destination: route table `servers-via-firewall` has destination 0.0.0.0/0 twice\n  fix: keep one entry per destination",
        ]
    );
}

/// rule 4
#[test]
fn route_destination_equals_a_vswitch() {
    let text = edit(
        SEED,
        &[(
            r##"destination = "0.0.0.0/0", next_hop"##,
            r##"destination = "10.0.0.0/24", next_hop"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "88:19: cloud.route_table[0].entry[0].destination: route destination 10.0.0.0/24 in table `servers-via-firewall` equals vSwitch `mgmt` (10.0.0.0/24)\n  fix: route only destinations outside the vSwitch CIDRs; the VPC routes those itself",
        ]
    );
}

/// rule 4
#[test]
fn route_destination_inside_a_vswitch() {
    let text = edit(
        SEED,
        &[(
            r##"destination = "0.0.0.0/0", next_hop"##,
            r##"destination = "10.0.10.128/25", next_hop"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "88:19: cloud.route_table[0].entry[0].destination: route destination 10.0.10.128/25 in table `servers-via-firewall` lies inside vSwitch `servers` (10.0.10.0/24)\n  fix: route only destinations outside the vSwitch CIDRs; the VPC routes those itself",
        ]
    );
}

/// rule 4
#[test]
fn route_destination_in_cloud_service_range() {
    let text = edit(
        SEED,
        &[(
            r##"destination = "0.0.0.0/0", next_hop"##,
            r##"destination = "100.100.100.0/24", next_hop"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "88:19: cloud.route_table[0].entry[0].destination: route destination 100.100.100.0/24 in table `servers-via-firewall` lies inside 100.64.0.0/10\n  fix: choose a destination outside 100.64.0.0/10; the cloud keeps that range for its own services",
        ]
    );
}

/// rule 5
#[test]
fn vswitch_prefix_too_long() {
    let text = edit(
        SEED,
        &[(r##"cidr = "10.0.10.0/24""##, r##"cidr = "10.0.10.0/30""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "40:8: cloud.vswitch[4].cidr: vSwitch `servers` CIDR 10.0.10.0/30 is a /30; the cloud accepts /16 to /29\n  fix: choose a prefix length from /16 to /29",
            "132:14: policy.nat.dnat[0].to_address: DNAT `web` sends to 10.0.10.10, which is in no vSwitch\n  fix: send to an address in a vSwitch with role = \"server\"",
            "161:6: lab.host[0].ip: lab host `web` IP 10.0.10.10 is outside its vSwitch `servers` (10.0.10.0/30)\n  fix: choose a free address inside 10.0.10.0/30",
        ]
    );
}

/// rule 5
#[test]
fn vswitch_outside_the_vpc() {
    let text = edit(
        SEED,
        &[(r##"cidr = "10.0.10.0/24""##, r##"cidr = "10.1.10.0/24""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "40:8: cloud.vswitch[4].cidr: vSwitch `servers` CIDR 10.1.10.0/24 is outside the VPC CIDR 10.0.0.0/16\n  fix: choose a block inside 10.0.0.0/16",
            "132:14: policy.nat.dnat[0].to_address: DNAT `web` sends to 10.0.10.10, which is in no vSwitch\n  fix: send to an address in a vSwitch with role = \"server\"",
            "161:6: lab.host[0].ip: lab host `web` IP 10.0.10.10 is outside its vSwitch `servers` (10.1.10.0/24)\n  fix: choose a free address inside 10.1.10.0/24",
        ]
    );
}

/// rule 5
#[test]
fn vswitches_overlap() {
    let text = edit(
        SEED,
        &[(r##"cidr = "10.0.10.0/24""##, r##"cidr = "10.0.2.128/25""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "40:8: cloud.vswitch[4].cidr: vSwitch `servers` CIDR 10.0.2.128/25 overlaps vSwitch `trust` (10.0.2.0/24)\n  fix: give each vSwitch its own block of the VPC",
            "132:14: policy.nat.dnat[0].to_address: DNAT `web` sends to 10.0.10.10, which is in no vSwitch\n  fix: send to an address in a vSwitch with role = \"server\"",
            "161:6: lab.host[0].ip: lab host `web` IP 10.0.10.10 is outside its vSwitch `servers` (10.0.2.128/25)\n  fix: choose a free address inside 10.0.2.128/25",
        ]
    );
}

/// rule 6
#[test]
fn eni_ip_outside_its_vswitch() {
    let text = edit(
        SEED,
        &[(
            r##"primary_ip = "10.0.3.12""##,
            r##"primary_ip = "10.0.4.12""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "62:54: cloud.instance[1].eni[3].primary_ip: ENI `fw-b-ha2` IP 10.0.4.12 is outside its vSwitch `ha2` (10.0.3.0/24)\n  fix: choose a free address inside 10.0.3.0/24",
        ]
    );
}

/// rule 6
#[test]
fn eni_ip_is_the_broadcast_address() {
    let text = edit(
        SEED,
        &[(
            r##"primary_ip = "10.0.3.12""##,
            r##"primary_ip = "10.0.3.255""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "62:54: cloud.instance[1].eni[3].primary_ip: ENI `fw-b-ha2` IP 10.0.3.255 is the broadcast address of vSwitch `ha2` (10.0.3.0/24)\n  fix: choose another address inside 10.0.3.0/24; the cloud keeps 10.0.3.0, 10.0.3.253, 10.0.3.254 and 10.0.3.255 for itself",
        ]
    );
}

/// rule 6
#[test]
fn eni_role_twice() {
    let text = edit(
        SEED,
        &[(
            r##"primary_ip = "10.0.3.12", role = "ha2""##,
            r##"primary_ip = "10.0.3.12", role = "management""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "62:74: cloud.instance[1].eni[3].role: firewall `fw-b` has a second management ENI `fw-b-ha2` (the first is `fw-b-mgmt`)\n  fix: give the firewall one ENI per role; it names its interfaces by role",
            "141:24: policy.ha.paths[1]: HA path uses role ha2, but firewall `fw-b` has no ha2 ENI\n  fix: add a ha2 ENI to `fw-b`, or use one of its roles: management, untrust, trust",
        ]
    );
}

/// rule 6
#[test]
fn first_eni_is_not_management() {
    let text = edit(
        SEED,
        &[
            (
                r##"  { name = "fw-a-mgmt", vswitch = "mgmt", primary_ip = "10.0.0.11", role = "management" },
"##,
                r##""##,
            ),
            (
                r##"  { name = "fw-a-ha2", vswitch = "ha2", primary_ip = "10.0.3.11", role = "ha2" },
"##,
                r##"  { name = "fw-a-ha2", vswitch = "ha2", primary_ip = "10.0.3.11", role = "ha2" },
  { name = "fw-a-mgmt", vswitch = "mgmt", primary_ip = "10.0.0.11", role = "management" },
"##,
            ),
        ],
    );
    assert_eq!(
        errors(&text),
        [
            "49:82: cloud.instance[0].eni[0].role: the first ENI of firewall `fw-a` is `fw-a-untrust` (role untrust); the first ENI is the instance's primary ENI, which is the management interface\n  fix: move the management ENI `fw-a-mgmt` to the front of eni = [...]",
        ]
    );
}

/// rule 7
#[test]
fn instance_enis_in_two_zones() {
    let text = edit(
        SEED,
        &[
            (
                r##"zones = ["cn-hangzhou-h"]"##,
                r##"zones = ["cn-hangzhou-h", "cn-hangzhou-i"]"##,
            ),
            (
                r##"name = "ha2"
zone = "cn-hangzhou-h""##,
                r##"name = "ha2"
zone = "cn-hangzhou-i""##,
            ),
        ],
    );
    assert_eq!(
        errors(&text),
        [
            "52:34: cloud.instance[0].eni[3].vswitch: ENI `fw-a-ha2` is in zone `cn-hangzhou-i` (vSwitch `ha2`) but ENI `fw-a-mgmt` of the same instance `fw-a` is in zone `cn-hangzhou-h`\n  fix: attach only ENIs from vSwitches in zone `cn-hangzhou-h`; an instance and its ENIs share one zone",
            "62:34: cloud.instance[1].eni[3].vswitch: ENI `fw-b-ha2` is in zone `cn-hangzhou-i` (vSwitch `ha2`) but ENI `fw-b-mgmt` of the same instance `fw-b` is in zone `cn-hangzhou-h`\n  fix: attach only ENIs from vSwitches in zone `cn-hangzhou-h`; an instance and its ENIs share one zone",
        ]
    );
}

/// rule 7
#[test]
fn firewalls_in_two_zones() {
    let text = edit(
        SEED,
        &[
            (
                r##"zones = ["cn-hangzhou-h"]"##,
                r##"zones = ["cn-hangzhou-h", "cn-hangzhou-i"]"##,
            ),
            (
                r##"# Four ENIs"##,
                r##"[[cloud.vswitch]]
name = "mgmt-b"
zone = "cn-hangzhou-i"
cidr = "10.0.4.0/24"
role = "management"

# Four ENIs"##,
            ),
            (
                r##"{ name = "fw-b-mgmt", vswitch = "mgmt", primary_ip = "10.0.0.12""##,
                r##"{ name = "fw-b-mgmt", vswitch = "mgmt-b", primary_ip = "10.0.4.12""##,
            ),
        ],
    );
    assert_eq!(
        errors(&text),
        [
            "65:35: cloud.instance[1].eni[0].vswitch: firewall `fw-b` is in zone `cn-hangzhou-i` but firewall `fw-a` is in zone `cn-hangzhou-h`; the pair shares HAVIPs, and a HAVIP lives in one zone\n  fix: put both firewalls' ENIs in vSwitches of zone `cn-hangzhou-h`",
            "66:38: cloud.instance[1].eni[1].vswitch: ENI `fw-b-untrust` is in zone `cn-hangzhou-h` (vSwitch `untrust`) but ENI `fw-b-mgmt` of the same instance `fw-b` is in zone `cn-hangzhou-i`\n  fix: attach only ENIs from vSwitches in zone `cn-hangzhou-i`; an instance and its ENIs share one zone",
            "67:36: cloud.instance[1].eni[2].vswitch: ENI `fw-b-trust` is in zone `cn-hangzhou-h` (vSwitch `trust`) but ENI `fw-b-mgmt` of the same instance `fw-b` is in zone `cn-hangzhou-i`\n  fix: attach only ENIs from vSwitches in zone `cn-hangzhou-i`; an instance and its ENIs share one zone",
            "68:34: cloud.instance[1].eni[3].vswitch: ENI `fw-b-ha2` is in zone `cn-hangzhou-h` (vSwitch `ha2`) but ENI `fw-b-mgmt` of the same instance `fw-b` is in zone `cn-hangzhou-i`\n  fix: attach only ENIs from vSwitches in zone `cn-hangzhou-i`; an instance and its ENIs share one zone",
        ]
    );
}

/// rule 8
#[test]
fn too_many_enis_for_the_type() {
    let text = edit(
        SEED,
        &[(
            r##"instance_type = "ecs.g7.xlarge""##,
            r##"instance_type = "ecs.g6.xlarge""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "52:3: cloud.instance[0].eni[3]: instance `fw-a` declares 4 ENIs but type ecs.g6.xlarge allows 3, primary included\n  fix: use one-arm mode (management, one data ENI and ha2, as in examples/alicloud-one-arm.toml) or a type that allows 4 ENIs, such as ecs.g7.xlarge",
        ]
    );
}

/// rule 8
#[test]
fn unknown_type_needs_max_enis() {
    let text = edit(
        SEED,
        &[(
            r##"instance_type = "ecs.g7.xlarge""##,
            r##"instance_type = "ecs.r7.xlarge""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "47:17: cloud.instance[0].instance_type: instance `fw-a` has type `ecs.r7.xlarge`, whose ENI limit hafw does not know\n  fix: set max_enis to the number of ENIs the type allows (primary included), from the cloud's instance type documentation",
        ]
    );
}

/// rule 8
#[test]
fn max_enis_overrides_the_table() {
    let text = edit(
        SEED,
        &[(
            r##"instance_type = "ecs.g7.xlarge""##,
            r##"instance_type = "ecs.g7.xlarge"
max_enis = 3"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "53:3: cloud.instance[0].eni[3]: instance `fw-a` declares 4 ENIs but its max_enis allows 3, primary included\n  fix: use one-arm mode (management, one data ENI and ha2, as in examples/alicloud-one-arm.toml) or a type that allows 4 ENIs, such as ecs.g7.xlarge",
        ]
    );
}

/// rule 9
#[test]
fn both_two_arm_and_one_arm() {
    let text = edit(
        SEED,
        &[(
            r##"  { name = "fw-b-ha2", vswitch = "ha2", primary_ip = "10.0.3.12", role = "ha2" },
"##,
            r##"  { name = "fw-b-ha2", vswitch = "ha2", primary_ip = "10.0.3.12", role = "data", source_dest_check = false },
"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "62:74: cloud.instance[1].eni[3].role: firewall `fw-b` has both a data ENI (one-arm) and untrust or trust ENIs (two-arm)\n  fix: keep either untrust and trust ENIs (two-arm) or one data ENI (one-arm, see examples/alicloud-one-arm.toml)",
            "91:1: policy.interface: the firewalls have data ENIs but policy.interface.data gives no floating address\n  fix: add data = { floating = \"...\" } under [policy.interface], the IP of the HAVIP that binds the data ENIs",
            "141:24: policy.ha.paths[1]: HA path uses role ha2, but firewall `fw-b` has no ha2 ENI\n  fix: add a ha2 ENI to `fw-b`, or use one of its roles: management, untrust, trust, data",
        ]
    );
}

/// rule 9
#[test]
fn untrust_without_trust() {
    let text = edit(
        ONE_ARM,
        &[(
            r##"primary_ip = "10.0.1.12", role = "data""##,
            r##"primary_ip = "10.0.1.12", role = "untrust""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "49:7: cloud.instance[1].eni: firewall `fw-b` has an untrust ENI but no trust ENI; two-arm mode needs both\n  fix: add a trust ENI, or replace both with one data ENI for one-arm mode",
            "70:53: cloud.route_table[0].entry[0].next_hop.havip: route 0.0.0.0/0 in table `servers-via-firewall` (attached to server vSwitch `servers`) points at HAVIP `data`, whose members are not all trust (or data) ENIs\n  fix: point it at a HAVIP whose members are the firewalls' trust ENIs (data ENIs in one-arm)",
            "73:1: policy.interface: the firewalls have untrust ENIs but policy.interface.untrust gives no floating address\n  fix: add untrust = { floating = \"10.0.1.100\" } under [policy.interface], the IP of HAVIP `data`",
            "78:7: policy.route[0].via: route 0.0.0.0/0 uses role data, but firewall `fw-b` has no data ENI\n  fix: add a data ENI to `fw-b`, or use one of its roles: management, untrust, ha2",
            "82:7: policy.route[1].via: route 10.0.10.0/24 uses role data, but firewall `fw-b` has no data ENI\n  fix: add a data ENI to `fw-b`, or use one of its roles: management, untrust, ha2",
            "86:15: policy.zone[0].interfaces[0]: zone `data` uses role data, but firewall `fw-b` has no data ENI\n  fix: add a data ENI to `fw-b`, or use one of its roles: management, untrust, ha2",
            "118:33: policy.ha.link_monitor[0].interfaces[0]: link monitor uses role data, but firewall `fw-b` has no data ENI\n  fix: add a data ENI to `fw-b`, or use one of its roles: management, untrust, ha2",
        ]
    );
}

/// rule 9
#[test]
fn no_management_eni() {
    let text = edit(
        ONE_ARM,
        &[(
            r##"primary_ip = "10.0.0.12", role = "management""##,
            r##"primary_ip = "10.0.0.12", role = "ha2""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "49:7: cloud.instance[1].eni: firewall `fw-b` has no management ENI\n  fix: add an ENI with role = \"management\" first in eni = [...]; it is the instance's primary ENI",
            "52:74: cloud.instance[1].eni[2].role: firewall `fw-b` has a second ha2 ENI `fw-b-ha2` (the first is `fw-b-mgmt`)\n  fix: give the firewall one ENI per role; it names its interfaces by role",
            "117:10: policy.ha.paths[0]: HA path uses role management, but firewall `fw-b` has no management ENI\n  fix: add a management ENI to `fw-b`, or use one of its roles: ha2, data",
        ]
    );
}

/// rule 9
#[test]
fn ha_path_role_missing() {
    let text = edit(
        ONE_ARM,
        &[(
            r##"paths = ["management", "ha2"]"##,
            r##"paths = ["management", "trust"]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "117:24: policy.ha.paths[1]: HA path uses role trust, but firewalls `fw-a` and `fw-b` have no trust ENI\n  fix: add a trust ENI to each, or use a role they have: management, ha2, data",
        ]
    );
}

/// rule 10
#[test]
fn untrust_floating_is_not_the_external_havip() {
    let text = edit(
        SEED,
        &[(
            r##"untrust = { floating = "10.0.1.100" }"##,
            r##"untrust = { floating = "10.0.1.101" }"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "92:24: policy.interface.untrust.floating: the untrust floating address 10.0.1.101 is not the IP of the HAVIP that binds the untrust ENIs: `external` (10.0.1.100)\n  fix: set it to 10.0.1.100; the cloud delivers only the HAVIP's address to the active firewall",
        ]
    );
}

/// rule 10
#[test]
fn floating_missing_for_a_role() {
    let text = edit(
        SEED,
        &[(
            r##"trust = { floating = "10.0.2.100" }
"##,
            r##""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "91:1: policy.interface: the firewalls have trust ENIs but policy.interface.trust gives no floating address\n  fix: add trust = { floating = \"10.0.2.100\" } under [policy.interface], the IP of HAVIP `internal`",
        ]
    );
}

/// rule 10
#[test]
fn floating_for_a_role_the_firewalls_lack() {
    let text = edit(
        ONE_ARM,
        &[(
            r##"data = { floating = "10.0.1.100" }"##,
            r##"data = { floating = "10.0.1.100" }
trust = { floating = "10.0.1.101" }"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "75:22: policy.interface.trust.floating: policy.interface.trust gives a floating address, but the firewalls have no trust ENI\n  fix: remove policy.interface.trust, or add trust ENIs to the firewalls",
        ]
    );
}

/// rule 10
#[test]
fn havip_leaves_out_a_firewall() {
    let text = edit(
        SEED,
        &[(
            r##"["fw-a-untrust", "fw-b-untrust"]"##,
            r##"["fw-a-untrust"]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "71:11: cloud.havip[0].members: HAVIP `external` does not bind `fw-b-untrust`, the untrust ENI of firewall `fw-b`, so its address cannot move to `fw-b`\n  fix: add \"fw-b-untrust\" to members",
        ]
    );
}

/// rule 10/11
#[test]
fn eip_on_the_internal_havip() {
    let text = edit(
        SEED,
        &[(r##"havip = "external""##, r##"havip = "internal""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "82:9: cloud.eip[0].havip: EIP `web` is bound to HAVIP `internal`, whose members are trust ENIs; the internet must reach the untrust (or one-arm data) side\n  fix: bind the EIP to `external`, whose members are the firewalls' outside ENIs",
            "129:17: policy.nat.dnat[0].match_address: DNAT `web` matches 10.0.1.100, not the private IP 10.0.2.100 of the external HAVIP `internal`\n  fix: match 10.0.2.100; the EIP maps only the external HAVIP's private IP",
            "137:14: policy.nat.snat[0].to_address: SNAT `servers` translates to 10.0.1.100, not the private IP 10.0.2.100 of the external HAVIP `internal`\n  fix: translate to 10.0.2.100; the EIP maps only the external HAVIP's private IP",
        ]
    );
}

/// rule 11
#[test]
fn dnat_matches_another_address() {
    let text = edit(
        SEED,
        &[(
            r##"match_address = "10.0.1.100""##,
            r##"match_address = "10.0.1.11""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "129:17: policy.nat.dnat[0].match_address: DNAT `web` matches 10.0.1.11, not the private IP 10.0.1.100 of the external HAVIP `external`\n  fix: match 10.0.1.100; the EIP maps only the external HAVIP's private IP",
        ]
    );
}

/// rule 11
#[test]
fn snat_to_another_address() {
    let text = edit(
        ONE_ARM,
        &[(
            r##"sources = ["10.0.10.0/24"]
to_address = "10.0.1.100""##,
            r##"sources = ["10.0.10.0/24"]
to_address = "10.0.1.12""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "114:14: policy.nat.snat[0].to_address: SNAT `servers` translates to 10.0.1.12, not the private IP 10.0.1.100 of the external HAVIP `data`\n  fix: translate to 10.0.1.100; the EIP maps only the external HAVIP's private IP",
        ]
    );
}

/// rule 11
#[test]
fn dnat_to_a_non_server_address() {
    let text = edit(
        SEED,
        &[(
            r##"to_address = "10.0.10.10""##,
            r##"to_address = "10.0.2.10""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "132:14: policy.nat.dnat[0].to_address: DNAT `web` sends to 10.0.2.10 in vSwitch `trust`, whose role is trust, not server\n  fix: send to an address in a vSwitch with role = \"server\"",
        ]
    );
}

/// rule 11
#[test]
fn nat_without_an_eip() {
    let text = edit(
        SEED,
        &[(
            r##"[[cloud.eip]]
name = "web"
ip = "203.0.113.10"
havip = "external"
"##,
            r##"[[cloud.eip]]
name = "web"
ip = "203.0.113.10"
"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "128:17: policy.nat.dnat[0].match_address: DNAT `web` matches 10.0.1.100, but no HAVIP has an EIP, so there is no external HAVIP\n  fix: bind a [[cloud.eip]] (havip = ...) to the HAVIP of the untrust ENIs (data ENIs in one-arm)",
            "136:14: policy.nat.snat[0].to_address: SNAT `servers` translates to 10.0.1.100, but no HAVIP has an EIP, so there is no external HAVIP\n  fix: bind a [[cloud.eip]] (havip = ...) to the HAVIP of the untrust ENIs (data ENIs in one-arm)",
        ]
    );
}

/// rule 12
#[test]
fn data_eni_with_the_check_on() {
    let text = edit(
        SEED,
        &[(
            r##"primary_ip = "10.0.2.12", role = "trust", source_dest_check = false"##,
            r##"primary_ip = "10.0.2.12", role = "trust""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "61:3: cloud.instance[1].eni[2].source_dest_check: ENI `fw-b-trust` (role trust) has its source/destination check on\n  fix: set source_dest_check = false; with the check on the cloud drops the traffic the firewall forwards",
        ]
    );
}

/// rule 13
#[test]
fn server_route_to_the_external_havip() {
    let text = edit(
        SEED,
        &[(r##"{ havip = "internal" }"##, r##"{ havip = "external" }"##)],
    );
    assert_eq!(
        errors(&text),
        [
            "88:53: cloud.route_table[0].entry[0].next_hop.havip: route 0.0.0.0/0 in table `servers-via-firewall` (attached to server vSwitch `servers`) points at HAVIP `external`, whose members are untrust ENIs\n  fix: point it at `internal`, whose members are the firewalls' inside ENIs",
        ]
    );
}

/// rule 14
#[test]
fn lab_host_reuses_an_address() {
    let text = edit(
        SEED,
        &[(r##"ip = "198.51.100.30""##, r##"ip = "198.51.100.20""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "172:6: lab.host[2].ip: lab host `echo` IP 198.51.100.20 is already used by lab host `client`\n  fix: give each ENI, HAVIP, EIP and lab host its own address",
        ]
    );
}

/// rule 14
#[test]
fn eni_reuses_an_address() {
    let text = edit(
        SEED,
        &[(
            r##"primary_ip = "10.0.3.12""##,
            r##"primary_ip = "10.0.3.11""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "62:54: cloud.instance[1].eni[3].primary_ip: ENI `fw-b-ha2` IP 10.0.3.11 is already used by ENI `fw-a-ha2`\n  fix: give each ENI, HAVIP, EIP and lab host its own address",
        ]
    );
}

/// rule 15
#[test]
fn zone_role_missing_on_the_firewalls() {
    let text = edit(
        SEED,
        &[(
            r##"interfaces = ["trust"]"##,
            r##"interfaces = ["trust", "data"]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "109:24: policy.zone[1].interfaces[1]: zone `trust` uses role data, but firewalls `fw-a` and `fw-b` have no data ENI\n  fix: add a data ENI to each, or use a role they have: management, untrust, trust, ha2",
        ]
    );
}

/// rule 15
#[test]
fn interface_in_two_zones() {
    let text = edit(
        SEED,
        &[(
            r##"interfaces = ["trust"]"##,
            r##"interfaces = ["trust", "untrust"]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "109:24: policy.zone[1].interfaces[1]: interface untrust is in zone `trust` and already in zone `untrust`\n  fix: put each interface in one zone",
        ]
    );
}

/// rule 15
#[test]
fn rule_to_an_unknown_zone() {
    let text = edit(SEED, &[(r##"to = "untrust""##, r##"to = "internet""##)]);
    assert_eq!(
        errors(&text),
        [
            "123:6: policy.rule[1].to: rule `servers-out` to zone `internet`, which is not declared\n  fix: use one of `untrust` and `trust`",
        ]
    );
}

/// rule 15
#[test]
fn route_via_a_missing_role() {
    let text = edit(
        SEED,
        &[(
            r##"destination = "10.0.10.0/24"
via = "trust""##,
            r##"destination = "10.0.10.0/24"
via = "data""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "101:7: policy.route[1].via: route 10.0.10.0/24 uses role data, but firewalls `fw-a` and `fw-b` have no data ENI\n  fix: add a data ENI to each, or use a role they have: management, untrust, trust, ha2",
        ]
    );
}

/// rule 15
#[test]
fn route_gateway_outside_the_via_vswitch() {
    let text = edit(
        SEED,
        &[(
            r##"destination = "10.0.10.0/24"
via = "trust""##,
            r##"destination = "10.0.10.0/24"
via = "trust"
gateway = "10.0.10.1""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "102:11: policy.route[1].gateway: route 10.0.10.0/24 via trust has gateway 10.0.10.1, outside vSwitch `trust` (10.0.2.0/24) of the trust ENI `fw-a-trust`\n  fix: choose a gateway inside 10.0.2.0/24, or leave gateway out to use the vSwitch gateway 10.0.2.253",
        ]
    );
}

/// rule 15
#[test]
fn ports_with_protocol_any() {
    let text = edit(
        SEED,
        &[(
            r##"protocol = "tcp"
ports = [80]"##,
            r##"ports = [80]"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "116:9: policy.rule[0].ports: rule `web-in` lists ports but its protocol is any\n  fix: set protocol = \"tcp\" or \"udp\", or remove ports",
        ]
    );
}

/// rule 15
#[test]
fn three_nodes() {
    let text = edit(
        SEED,
        &[(
            r##"# Test hosts"##,
            r##"[[node]]
name = "fw-a"
priority = 50
key_file = "/etc/hafw/ha.key"

# Test hosts"##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "155:1: node[2]: 3 nodes are declared; an HA pair has at most two\n  fix: keep one [[node]] per firewall, two at most",
            "156:8: node[2].name: node name `fw-a` is already used at node[0].name\n  fix: give each node its own name",
        ]
    );
}

/// rule 15
#[test]
fn priority_zero() {
    let text = edit(SEED, &[(r##"priority = 100"##, r##"priority = 0"##)]);
    assert_eq!(
        errors(&text),
        [
            "152:12: node[1].priority: node `fw-b` has priority 0; priorities run from 1 to 255\n  fix: set a priority from 1 to 255 (the higher wins the election)",
        ]
    );
}

/// rule 15
#[test]
fn key_file_relative() {
    let text = edit(
        SEED,
        &[(
            r##"priority = 100
key_file = "/etc/hafw/ha.key""##,
            r##"priority = 100
key_file = "etc/hafw/ha.key""##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "153:12: node[1].key_file: node `fw-b` key_file `etc/hafw/ha.key` is not an absolute path\n  fix: write the absolute path, e.g. /etc/hafw/ha.key; the daemon's working directory is not the file's",
        ]
    );
}

/// rule 15
#[test]
fn key_file_empty() {
    let text = edit(
        SEED,
        &[(
            r##"priority = 100
key_file = "/etc/hafw/ha.key""##,
            r##"priority = 100
key_file = """##,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "153:12: node[1].key_file: node `fw-b` has an empty key_file\n  fix: set key_file to the absolute path of the pair's pre-shared key, e.g. /etc/hafw/ha.key",
        ]
    );
}

/// rule 15
#[test]
fn equal_priorities_are_valid() {
    let text = edit(SEED, &[(r##"priority = 100"##, r##"priority = 200"##)]);
    assert_eq!(errors(&text), Vec::<String>::new());
}

/// rule 16
#[test]
fn server_outside_its_vswitch() {
    let text = edit(
        SEED,
        &[(r##"ip = "10.0.10.10""##, r##"ip = "10.0.11.10""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "161:6: lab.host[0].ip: lab host `web` IP 10.0.11.10 is outside its vSwitch `servers` (10.0.10.0/24)\n  fix: choose a free address inside 10.0.10.0/24",
        ]
    );
}

/// rule 16
#[test]
fn internet_host_outside_documentation_ranges() {
    let text = edit(
        SEED,
        &[(r##"ip = "198.51.100.20""##, r##"ip = "8.8.8.8""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "167:6: lab.host[1].ip: lab host `client` has no vSwitch, so it is on the lab's internet, but its IP 8.8.8.8 is not a documentation address\n  fix: use an address from 192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24, or give the host a vswitch",
        ]
    );
}

/// rule 16
#[test]
fn eip_outside_documentation_ranges() {
    let text = edit(
        SEED,
        &[(r##"ip = "203.0.113.10""##, r##"ip = "47.96.1.10""##)],
    );
    assert_eq!(
        errors(&text),
        [
            "81:6: cloud.eip[0].ip: EIP `web` IP 47.96.1.10 is not a documentation address; the lab emulates the EIP with it (the cloud allocates the real one)\n  fix: use an address from 192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24",
        ]
    );
}

#[test]
fn both_examples_validate_with_no_diagnostics() {
    for (name, text) in [
        ("alicloud-havip.toml", SEED),
        ("alicloud-one-arm.toml", ONE_ARM),
    ] {
        if let Err(d) = parse(name, text) {
            panic!("{name} should validate:\n{d}");
        }
    }
}

/// Validation never stops at the first problem: three unrelated mistakes
/// give three diagnostics, sorted by where they are in the file.
#[test]
fn every_error_is_collected_and_sorted() {
    let text = edit(
        SEED,
        &[
            ("priority = 100", "priority = 0"),
            (r#"ip = "10.0.2.100""#, r#"ip = "10.0.2.253""#),
            (
                r#"match_address = "10.0.1.100""#,
                r#"match_address = "10.0.1.11""#,
            ),
        ],
    );
    let e = errors(&text);
    let at: Vec<&str> = e
        .iter()
        .map(|e| e.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_eq!(at, ["76", "93", "129", "152"], "{e:#?}");
}

/// The rendered report: file, line, column, path, message and fix.
#[test]
fn the_report_reads_as_compiler_output() {
    let text = edit(SEED, &[(r#"ip = "10.0.1.100""#, r#"ip = "10.0.9.100""#)]);
    let d = parse("seed.toml", &text).unwrap_err();
    let shown = d.to_string();
    assert!(
        shown.starts_with(
            "seed.toml:70:6: error: cloud.havip[0].ip: HAVIP `external` IP 10.0.9.100 is outside its vSwitch `untrust` (10.0.1.0/24)\n  fix: choose a free address inside 10.0.1.0/24\n"
        ),
        "{shown}"
    );
    assert!(
        shown.ends_with("4 errors in seed.toml; nothing was applied"),
        "{shown}"
    );
}

/// A 0 interval or count is refused by its type when the file is parsed:
/// located at the value, naming the field and the fix.
#[test]
fn zero_heartbeat_interval_and_miss_count() {
    let ha = r#"profile = "default""#;
    assert_eq!(
        errors(&edit(
            SEED,
            &[(ha, "profile = \"default\"\nheartbeat_interval_ms = 0")]
        )),
        [
            "141:25: policy.ha.heartbeat_interval_ms: an interval of 0 is not allowed: it must be 1 or more\n  fix: set heartbeat_interval_ms to 1 or more, or leave it out to use the profile's",
        ]
    );
    assert_eq!(
        errors(&edit(SEED, &[(ha, "profile = \"fast\"\nmiss_count = 0")])),
        [
            "141:14: policy.ha.miss_count: a count of 0 is not allowed: it must be 1 or more\n  fix: set miss_count to 1 or more, or leave it out to use the profile's",
        ]
    );
    // 1 is the least allowed.
    assert_eq!(
        errors(&edit(
            SEED,
            &[(
                ha,
                "profile = \"default\"\nheartbeat_interval_ms = 1\nmiss_count = 1"
            )]
        )),
        Vec::<String>::new()
    );
}

#[test]
fn zero_path_monitor_interval_and_misses() {
    let monitor = r#"link_monitor = [{ interfaces = ["untrust", "trust"], failure = "any" }]"#;
    let with = |extra: &str| {
        format!(
            "{monitor}\npath_monitor = [{{ name = \"gw\", via = \"untrust\", targets = [\"10.0.1.253\"], {extra} }}]"
        )
    };
    assert_eq!(
        errors(&edit(SEED, &[(monitor, &with("interval_ms = 0"))])),
        [
            "143:89: policy.ha.path_monitor[0].interval_ms: an interval of 0 is not allowed: it must be 1 or more\n  fix: set interval_ms to 1 or more, or leave it out to use its default",
        ]
    );
    assert_eq!(
        errors(&edit(SEED, &[(monitor, &with("misses = 0"))])),
        [
            "143:84: policy.ha.path_monitor[0].misses: a count of 0 is not allowed: it must be 1 or more\n  fix: set misses to 1 or more, or leave it out to use its default",
        ]
    );
}

#[test]
fn zero_flap_limit() {
    assert_eq!(
        errors(&edit(
            SEED,
            &[(
                r#"profile = "default""#,
                "profile = \"default\"\nflap_limit = { transitions = 0 }"
            )]
        )),
        [
            "141:30: policy.ha.flap_limit.transitions: a count of 0 is not allowed: it must be 1 or more\n  fix: set transitions to 1 or more, or leave it out to use its default",
        ]
    );
}

// ------------------------------------------------ VPC, region, quotas

/// The seed's VPC moved to `cidr`, with its vSwitches left where they
/// are (so those are reported too, after the VPC's own).
fn vpc_errors(cidr: &str) -> Vec<String> {
    errors(&edit(
        SEED,
        &[(r#"cidr = "10.0.0.0/16""#, &format!(r#"cidr = "{cidr}""#))],
    ))
    .into_iter()
    .filter(|e| e.contains(": cloud.vpc.cidr: "))
    .collect()
}

#[test]
fn vpc_cidr_spanning_two_ranges() {
    assert_eq!(
        vpc_errors("10.0.0.0/7"),
        [
            "11:35: cloud.vpc.cidr: the VPC CIDR 10.0.0.0/7 is a /7; the cloud accepts /8 to /28 (CreateVpc)\n  fix: choose a mask from /8 to /28, for example 10.0.0.0/16",
            "11:35: cloud.vpc.cidr: the VPC CIDR 10.0.0.0/7 covers 10.0.0.0/8 and addresses outside the private ranges; a VPC block must lie inside one of 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16\n  fix: choose a block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, for example 10.0.0.0/16",
        ]
    );
}

#[test]
fn vpc_cidr_mask_too_long() {
    assert_eq!(
        vpc_errors("10.0.0.0/29"),
        [
            "11:35: cloud.vpc.cidr: the VPC CIDR 10.0.0.0/29 is a /29; the cloud accepts /8 to /28 (CreateVpc)\n  fix: choose a mask from /8 to /28, for example 10.0.0.0/16",
        ]
    );
}

#[test]
fn vpc_cidr_inside_the_clouds_shared_range() {
    assert_eq!(
        vpc_errors("100.64.0.0/16"),
        [
            "11:35: cloud.vpc.cidr: the VPC CIDR 100.64.0.0/16 overlaps 100.64.0.0/10, which the cloud reserves for the cloud's own services (the metadata service at 100.100.100.200 among them)\n  fix: choose a block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
        ]
    );
}

#[test]
fn vpc_user_cidr() {
    assert_eq!(
        vpc_errors("203.0.113.0/24"),
        [
            "11:35: cloud.vpc.cidr: the VPC CIDR 203.0.113.0/24 is outside 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16; hafw refuses a user CIDR: the VPC would route those addresses itself, so hosts behind the firewall could never reach them on the internet\n  fix: choose a block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, for example 10.0.0.0/16",
        ]
    );
}

#[test]
fn zone_of_another_region() {
    let text = edit(
        SEED,
        &[(
            r#"zones = ["cn-hangzhou-h"]"#,
            r#"zones = ["cn-hangzhou-h", "cn-shanghai-b"]"#,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "10:27: cloud.zones[1]: zone `cn-shanghai-b` is not a zone of region `cn-hangzhou`; a zone id is its region's id and a letter (`cn-hangzhou-h`, `ap-southeast-1a`)\n  fix: use a zone of cn-hangzhou, or set cloud.region to the zone's region",
        ]
    );
}

#[test]
fn unknown_region() {
    let text = edit(
        SEED,
        &[(r#"region = "cn-hangzhou""#, r#"region = "cn-hangzou""#)],
    );
    assert_eq!(
        errors(&text),
        [
            "9:10: cloud.region: region `cn-hangzou` is not one the provider knows (the nearest: cn-hangzhou, cn-guangzhou, cn-chengdu)\n  fix: write a region id such as cn-hangzhou (the known ones are listed in crates/hafw-model/src/validate/region.rs, from the Terraform provider)",
        ]
    );
}

#[test]
fn security_group_rule_quota() {
    let n = hafw_model::render::security_group::ingress(&parse("seed", SEED).unwrap()).len();
    let text = edit(
        SEED,
        &[(
            "[[cloud.havip]]",
            &format!(
                "[cloud.limits]\nsecurity_group_rules = {}\n\n[[cloud.havip]]",
                n - 1
            ),
        )],
    );
    assert_eq!(
        errors(&text),
        [format!(
            "114:1: policy.rule: the firewalls' security group needs {n} rules (heartbeats, HA2, management and each accept rule's sources, ports and protocols); the cloud allows at most {} per group (cloud.limits.security_group_rules)\n  fix: merge accept rules that share sources or ports so that at most {} rules remain",
            n - 1,
            n - 1
        )]
    );
}

/// The default is 5 (ROS `ALIYUN::VPC::HaVip`), not the older 50.
#[test]
fn havips_per_vpc_default_is_five() {
    let extra: String = (1..=4)
        .map(|n| {
            format!(
                "[[cloud.havip]]\nname = \"spare{n}\"\nvswitch = \"untrust\"\nip = \"10.0.1.{}\"\nmembers = []\n\n",
                100 + n
            )
        })
        .collect();
    let six = edit(SEED, &[("[[cloud.eip]]", &format!("{extra}[[cloud.eip]]"))]);
    assert_eq!(
        errors(&six),
        [
            "97:1: cloud.havip[5]: the VPC has 6 HAVIPs; the cloud allows at most 5 (cloud.limits.havips_per_vpc)\n  fix: declare at most 5 HAVIPs",
        ]
    );
    let five = edit(
        SEED,
        &[(
            "[[cloud.eip]]",
            &format!(
                "{}[[cloud.eip]]",
                &extra[..extra.rfind("[[cloud.havip]]").unwrap()]
            ),
        )],
    );
    assert_eq!(errors(&five), Vec::<String>::new());
}

#[test]
fn eni_mac_twice() {
    let text = edit(
        SEED,
        &[
            (
                r#"primary_ip = "10.0.1.11", role"#,
                r#"primary_ip = "10.0.1.11", mac = "00:16:3e:00:00:01", role"#,
            ),
            (
                r#"primary_ip = "10.0.2.11", role"#,
                r#"primary_ip = "10.0.2.11", mac = "00:16:3E:00:00:01", role"#,
            ),
        ],
    );
    assert_eq!(
        errors(&text),
        [
            "51:77: cloud.instance[0].eni[2].mac: ENI `fw-a-trust` has MAC 00:16:3e:00:00:01, which ENI `fw-a-untrust` has too; every ENI has its own\n  fix: copy each ENI's MAC from the ECS console or Terraform's output, or leave `mac` out",
        ]
    );
}

#[test]
fn eni_mac_malformed() {
    let text = edit(
        SEED,
        &[(
            r#"primary_ip = "10.0.1.11", role"#,
            r#"primary_ip = "10.0.1.11", mac = "00:16:3e:00:01", role"#,
        )],
    );
    assert_eq!(
        errors(&text),
        [
            "50:81: cloud.instance[0].eni[1].mac: `00:16:3e:00:01` is not a MAC address; write one like 00:16:3e:12:34:56\n  fix: correct the value as the message says; see examples/alicloud-havip.toml",
        ]
    );
}
