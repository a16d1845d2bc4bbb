//! `hafw plan terraform` output for the example deployments: it parses as
//! HCL, every reference resolves, it is pinned by golden files (regenerate
//! with `HAFW_BLESS=1`), it is deterministic, and it says what the cloud
//! rules need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use hafw_model::render::terraform;
use hcl::expr::{Expression, TraversalOperator};
use hcl::{Block, Body};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(example: &str) -> hafw_model::Deployment {
    let path = root()
        .join("../../examples")
        .join(format!("{example}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    match hafw_model::parse(&path.display().to_string(), &text) {
        Ok(d) => d,
        Err(e) => panic!("{example} does not validate: {e:?}"),
    }
}

fn files(example: &str) -> BTreeMap<String, String> {
    terraform::render(&load(example)).into_iter().collect()
}

/// Every block of every file, parsed.
fn parse_all(files: &BTreeMap<String, String>) -> Vec<Block> {
    let mut blocks = Vec::new();
    for (name, text) in files {
        let body: Body =
            hcl::parse(text).unwrap_or_else(|e| panic!("{name} is not HCL: {e}\n{text}"));
        assert_eq!(
            body.attributes().count(),
            0,
            "{name} has top-level attributes"
        );
        blocks.extend(body.into_blocks());
    }
    blocks
}

fn labels(b: &Block) -> Vec<String> {
    b.labels.iter().map(|l| l.as_str().to_string()).collect()
}

fn resources<'a>(blocks: &'a [Block], ty: &str) -> Vec<&'a Block> {
    blocks
        .iter()
        .filter(|b| b.identifier.as_str() == "resource" && labels(b)[0] == ty)
        .collect()
}

fn attr<'a>(b: &'a Block, key: &str) -> &'a Expression {
    b.body
        .attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
        .unwrap_or_else(|| panic!("{:?} has no {key}", labels(b)))
}

fn string_attr(b: &Block, key: &str) -> String {
    match attr(b, key) {
        Expression::String(s) => s.clone(),
        other => panic!("{:?}.{key} is not a string: {other:?}", labels(b)),
    }
}

/// `a.b.c` as its parts, for a traversal of plain names.
fn path(e: &Expression) -> Option<Vec<String>> {
    let Expression::Traversal(t) = e else {
        return None;
    };
    let Expression::Variable(root) = &t.expr else {
        return None;
    };
    let mut out = vec![root.as_str().to_string()];
    for op in &t.operators {
        match op {
            TraversalOperator::GetAttr(id) => out.push(id.as_str().to_string()),
            _ => return None,
        }
    }
    Some(out)
}

fn ref_attr(b: &Block, key: &str) -> Vec<String> {
    path(attr(b, key)).unwrap_or_else(|| panic!("{:?}.{key} is not a reference", labels(b)))
}

fn walk<'a>(e: &'a Expression, out: &mut Vec<&'a Expression>) {
    out.push(e);
    match e {
        Expression::Array(items) => items.iter().for_each(|i| walk(i, out)),
        Expression::Object(obj) => obj.values().for_each(|v| walk(v, out)),
        Expression::Parenthesis(inner) => walk(inner, out),
        Expression::FuncCall(call) => call.args.iter().for_each(|a| walk(a, out)),
        Expression::TemplateExpr(_) => panic!("a template expression was rendered: {e:?}"),
        _ => {}
    }
}

fn expressions(body: &Body) -> Vec<&Expression> {
    let mut out = Vec::new();
    for a in body.attributes() {
        walk(&a.expr, &mut out);
    }
    for b in body.blocks() {
        out.extend(expressions(&b.body));
    }
    out
}

/// Every `var.x` names a declared variable and every `alicloud_t.label...`
/// a declared resource; nothing else is referenced.
fn assert_references_resolve(blocks: &[Block]) {
    let mut declared = BTreeSet::new();
    let mut variables = BTreeSet::new();
    for b in blocks {
        let l = labels(b);
        match b.identifier.as_str() {
            "resource" => {
                assert!(
                    declared.insert((l[0].clone(), l[1].clone())),
                    "{l:?} declared twice"
                );
            }
            "variable" => {
                assert!(
                    variables.insert(l[0].clone()),
                    "variable {l:?} declared twice"
                );
            }
            _ => {}
        }
    }
    let mut checked = 0;
    for b in blocks {
        for e in expressions(&b.body) {
            let Expression::Traversal(_) = e else {
                continue;
            };
            let p = path(e).unwrap_or_else(|| panic!("unexpected traversal {e:?}"));
            match p[0].as_str() {
                "var" => assert!(variables.contains(&p[1]), "undeclared variable {p:?}"),
                ty if ty.starts_with("alicloud_") => {
                    assert!(
                        declared.contains(&(p[0].clone(), p[1].clone())),
                        "reference to undeclared resource {p:?}"
                    );
                }
                _ => panic!("unexpected reference {p:?}"),
            }
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} references found; the walk is missing some"
    );
}

fn assert_golden(example: &str, files: &BTreeMap<String, String>) {
    let dir = root().join("tests/golden").join(example);
    let bless = std::env::var("HAFW_BLESS").is_ok_and(|v| v == "1");
    for (name, text) in files {
        let path = dir.join(name);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with HAFW_BLESS=1 to create it",
                path.display()
            )
        });
        assert!(
            want == *text,
            "{} differs from the rendering; if the change is intended, run with HAFW_BLESS=1 and review the diff",
            path.display()
        );
    }
}

/// `terraform fmt -check` accepts the files as they are, when terraform is
/// installed (it is on the project's machines; elsewhere this check says
/// it was skipped).
fn assert_terraform_fmt_clean(example: &str, files: &BTreeMap<String, String>) {
    let dir = std::env::temp_dir().join(format!("hafw-tf-fmt-{}-{example}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let run = std::process::Command::new("terraform")
        .args(["fmt", "-check", "-diff", "-no-color"])
        .current_dir(&dir)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match run {
        Err(e) => eprintln!("terraform fmt check skipped for {example}: cannot run terraform: {e}"),
        Ok(out) => assert!(
            out.status.success(),
            "terraform fmt would change {example}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}

fn check_example(example: &str) -> Vec<Block> {
    let files = files(example);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, ["main.tf", "outputs.tf", "variables.tf"]);
    assert_eq!(
        terraform::render(&load(example)),
        terraform::render(&load(example))
    );
    assert_golden(example, &files);
    assert_terraform_fmt_clean(example, &files);
    let blocks = parse_all(&files);
    assert_references_resolve(&blocks);
    // The EIP's address in the file is the lab's stand-in: only comments
    // may mention it.
    for (name, text) in &files {
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(
                !line.contains("203.0.113.10"),
                "{name} renders the stand-in EIP: {line}"
            );
        }
    }
    blocks
}

#[test]
fn seed_renders_valid_terraform() {
    let dep = load("alicloud-havip");
    let blocks = check_example("alicloud-havip");

    let provider = blocks
        .iter()
        .find(|b| b.identifier.as_str() == "provider")
        .unwrap();
    assert_eq!(ref_attr(provider, "region"), ["var", "region"]);
    let region = blocks
        .iter()
        .find(|b| b.identifier.as_str() == "variable" && labels(b) == ["region"])
        .unwrap();
    assert_eq!(string_attr(region, "default"), "cn-hangzhou");

    // One attachment per HAVIP member: two HAVIPs with two ENIs each.
    let members: usize = dep.cloud.havips.iter().map(|h| h.members.len()).sum();
    assert_eq!(members, 4);
    let attachments = resources(&blocks, "alicloud_havip_attachment");
    assert_eq!(attachments.len(), members);
    for a in &attachments {
        assert_eq!(string_attr(a, "instance_type"), "NetworkInterface");
        assert_eq!(
            ref_attr(a, "instance_id")[0],
            "alicloud_ecs_network_interface"
        );
    }
    let external: Vec<Vec<String>> = attachments
        .iter()
        .filter(|a| ref_attr(a, "ha_vip_id") == ["alicloud_havip", "external", "id"])
        .map(|a| ref_attr(a, "instance_id"))
        .collect();
    assert_eq!(
        external,
        [
            ["alicloud_ecs_network_interface", "fw-a-untrust", "id"],
            ["alicloud_ecs_network_interface", "fw-b-untrust", "id"],
        ]
    );

    // The servers' default route goes to the internal HAVIP, after its
    // members are attached.
    let entries = resources(&blocks, "alicloud_route_entry");
    assert_eq!(entries.len(), 1);
    let entry = entries[0];
    assert_eq!(string_attr(entry, "destination_cidrblock"), "0.0.0.0/0");
    assert_eq!(string_attr(entry, "nexthop_type"), "HaVip");
    assert_eq!(
        ref_attr(entry, "nexthop_id"),
        ["alicloud_havip", "internal", "id"]
    );
    let Expression::Array(deps) = attr(entry, "depends_on") else {
        panic!("depends_on is not a list")
    };
    let deps: Vec<Vec<String>> = deps.iter().map(|d| path(d).unwrap()).collect();
    assert_eq!(
        deps,
        [
            ["alicloud_havip_attachment", "internal_-fw-a-trust"],
            ["alicloud_havip_attachment", "internal_-fw-b-trust"],
        ]
    );

    let assoc = resources(&blocks, "alicloud_eip_association");
    assert_eq!(assoc.len(), 1);
    assert_eq!(string_attr(assoc[0], "instance_type"), "HaVip");
    assert_eq!(
        ref_attr(assoc[0], "instance_id"),
        ["alicloud_havip", "external", "id"]
    );

    // Secondary ENIs carry the file's source/destination check; primary
    // ENIs are no resource of their own.
    let enis = resources(&blocks, "alicloud_ecs_network_interface");
    let mut checks: Vec<(String, bool)> = enis
        .iter()
        .map(|e| {
            let Expression::Bool(b) = attr(e, "source_dest_check") else {
                panic!("source_dest_check is not a bool")
            };
            (labels(e)[1].clone(), *b)
        })
        .collect();
    checks.sort();
    let mut want: Vec<(String, bool)> = dep
        .enis()
        .filter(|(i, e)| i.enis[0].name != e.name)
        .map(|(_, e)| (e.name.clone(), e.source_dest_check))
        .collect();
    want.sort();
    assert_eq!(checks, want);
    assert_eq!(checks.iter().filter(|(_, c)| !c).count(), 4);
    assert_eq!(
        resources(&blocks, "alicloud_ecs_network_interface_attachment").len(),
        6
    );

    let instances = resources(&blocks, "alicloud_instance");
    assert_eq!(instances.len(), 2);
    assert_eq!(string_attr(instances[0], "private_ip"), "10.0.0.11");
    assert_eq!(
        ref_attr(instances[0], "vswitch_id"),
        ["alicloud_vswitch", "mgmt", "id"]
    );
    assert_eq!(ref_attr(instances[0], "image_id"), ["var", "image_id"]);

    // Heartbeats: UDP on the HA port from each node's management and HA2
    // addresses.
    let rules = resources(&blocks, "alicloud_security_group_rule");
    let heartbeat_sources: BTreeSet<String> = rules
        .iter()
        .filter(|r| {
            string_attr(r, "ip_protocol") == "udp" && string_attr(r, "port_range") == "28780/28780"
        })
        .map(|r| string_attr(r, "cidr_ip"))
        .collect();
    let want: BTreeSet<String> = [
        "10.0.0.11/32",
        "10.0.0.12/32",
        "10.0.3.11/32",
        "10.0.3.12/32",
    ]
    .map(String::from)
    .into();
    assert_eq!(heartbeat_sources, want);
    // HA2 (session and config sync): TCP on the same port between the HA2
    // ENIs; without it, inner_access_policy = Drop cuts the sync.
    let ha2_sources: BTreeSet<String> = rules
        .iter()
        .filter(|r| {
            string_attr(r, "ip_protocol") == "tcp" && string_attr(r, "port_range") == "28780/28780"
        })
        .map(|r| string_attr(r, "cidr_ip"))
        .collect();
    let want: BTreeSet<String> = ["10.0.3.11/32", "10.0.3.12/32"].map(String::from).into();
    assert_eq!(ha2_sources, want);
    // SSH from the management sources only.
    let ssh: Vec<String> = rules
        .iter()
        .filter(|r| string_attr(r, "port_range") == "22/22")
        .map(|r| string_attr(r, "cidr_ip"))
        .collect();
    assert_eq!(ssh, ["10.0.0.0/24"]);
    // The web DNAT's port is open from anywhere.
    assert!(rules.iter().any(|r| string_attr(r, "ip_protocol") == "tcp"
        && string_attr(r, "port_range") == "80/80"
        && string_attr(r, "cidr_ip") == "0.0.0.0/0"));
}

#[test]
fn one_arm_renders_valid_terraform() {
    let blocks = check_example("alicloud-one-arm");
    let attachments = resources(&blocks, "alicloud_havip_attachment");
    assert_eq!(attachments.len(), 2);
    let entry = resources(&blocks, "alicloud_route_entry")[0];
    assert_eq!(string_attr(entry, "nexthop_type"), "HaVip");
    assert_eq!(
        ref_attr(entry, "nexthop_id"),
        ["alicloud_havip", "data", "id"]
    );
    let assoc = resources(&blocks, "alicloud_eip_association")[0];
    assert_eq!(
        ref_attr(assoc, "instance_id"),
        ["alicloud_havip", "data", "id"]
    );
    assert_eq!(
        resources(&blocks, "alicloud_ecs_network_interface").len(),
        4
    );
}

/// Names that are not valid labels, or that would collide if sanitised
/// carelessly, still render to parseable, resolvable HCL with distinct labels.
#[test]
fn awkward_names_stay_distinct_and_quoted() {
    let text = std::fs::read_to_string(root().join("../../examples/alicloud-havip.toml")).unwrap();
    let mut dep: hafw_model::Deployment = toml::from_str(&text).unwrap();
    dep.cloud.vpc.name = "vpc \"${evil}\" %{x} \\".into();
    // `fw.a` and `fw_a` must not both become `fw_a`; `1fw` must not start
    // with a digit.
    let renames = [("fw-a", "fw.a"), ("fw-b", "fw_a")];
    for (old, new) in renames {
        for i in dep.cloud.instances.iter_mut().filter(|i| i.name == old) {
            i.name = new.into();
        }
        for n in dep.nodes.iter_mut().filter(|n| n.name == old) {
            n.name = new.into();
        }
    }
    for v in dep.cloud.vswitches.iter_mut().filter(|v| v.name == "mgmt") {
        v.name = "1mgmt".into();
    }
    for e in dep
        .cloud
        .instances
        .iter_mut()
        .flat_map(|i| i.enis.iter_mut())
    {
        if e.vswitch == "mgmt" {
            e.vswitch = "1mgmt".into();
        }
    }
    let files: BTreeMap<String, String> = terraform::render(&dep).into_iter().collect();
    let blocks = parse_all(&files);
    assert_references_resolve(&blocks);
    let vpc = resources(&blocks, "alicloud_vpc")[0];
    assert_eq!(string_attr(vpc, "vpc_name"), "vpc \"${evil}\" %{x} \\");
    let names: BTreeSet<String> = resources(&blocks, "alicloud_instance")
        .iter()
        .map(|b| labels(b)[1].clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// Instance members (and primary ENIs, which have no resource of their own)
/// attach as `EcsInstance`; an ENI next hop routes to the ENI once attached;
/// a primary ENI whose check the file turns off gets the manual step noted.
#[test]
fn instance_members_and_eni_next_hops() {
    let text = std::fs::read_to_string(root().join("../../examples/alicloud-havip.toml")).unwrap();
    let mut dep: hafw_model::Deployment = toml::from_str(&text).unwrap();
    dep.cloud.havips[1].members = vec!["fw-a".into(), "fw-b-mgmt".into()];
    dep.cloud.route_tables[0].entries[0].next_hop =
        hafw_model::spec::NextHop::Eni("fw-a-trust".into());
    dep.cloud.instances[0].enis[0].source_dest_check = false;
    let files: BTreeMap<String, String> = terraform::render(&dep).into_iter().collect();
    let blocks = parse_all(&files);
    assert_references_resolve(&blocks);

    let internal: Vec<(String, Vec<String>)> = resources(&blocks, "alicloud_havip_attachment")
        .iter()
        .filter(|a| ref_attr(a, "ha_vip_id") == ["alicloud_havip", "internal", "id"])
        .map(|a| (string_attr(a, "instance_type"), ref_attr(a, "instance_id")))
        .collect();
    let want = [
        ("EcsInstance", ["alicloud_instance", "fw-a", "id"]),
        ("EcsInstance", ["alicloud_instance", "fw-b", "id"]),
    ]
    .map(|(t, r)| (t.to_string(), r.map(String::from).to_vec()));
    assert_eq!(internal, want);

    let entry = resources(&blocks, "alicloud_route_entry")[0];
    assert_eq!(string_attr(entry, "nexthop_type"), "NetworkInterface");
    assert_eq!(
        ref_attr(entry, "nexthop_id"),
        ["alicloud_ecs_network_interface", "fw-a-trust", "id"]
    );

    let main = &files["main.tf"];
    let note = main
        .find("ModifyNetworkInterfaceAttribute")
        .expect("no note on the primary ENI's check");
    let fw_a = main
        .find("resource \"alicloud_instance\" \"fw-a\"")
        .unwrap();
    let fw_b = main
        .find("resource \"alicloud_instance\" \"fw-b\"")
        .unwrap();
    assert!(note < fw_a && main.matches("ModifyNetworkInterfaceAttribute").count() == 1);
    assert!(fw_a < fw_b);
}
