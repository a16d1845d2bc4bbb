//! `hafw plan terraform` output for the example deployments: it parses as
//! HCL, every reference resolves, it is pinned by golden files (regenerate
//! with `HAFW_BLESS=1`), it is deterministic, and it says what the cloud
//! rules need. Every resource and argument is in the schema table
//! (`render/terraform/schema.rs`), the provider constraint is the newest
//! of them, the table matches the provider reference, and Terraform's own
//! `templatefile()` turns each node's template into the stand-alone script.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use hafw_model::render::terraform;
use hafw_model::render::terraform::schema;
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

fn example_text(example: &str) -> String {
    std::fs::read_to_string(
        root()
            .join("../../examples")
            .join(format!("{example}.toml")),
    )
    .unwrap()
}

fn render(dep: &hafw_model::Deployment, text: &str) -> BTreeMap<String, String> {
    terraform::render(dep, text)
        .unwrap_or_else(|e| panic!("no Terraform: {e}"))
        .into_iter()
        .collect()
}

fn files(example: &str) -> BTreeMap<String, String> {
    render(&load(example), &example_text(example))
}

/// The HCL files only (the user-data templates are shell).
fn hcl_files(files: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    files
        .iter()
        .filter(|(n, _)| n.ends_with(".tf"))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect()
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
            TraversalOperator::Index(Expression::Number(n)) => out.push(format!("[{n}]")),
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
    let mut data = BTreeSet::new();
    let mut variables = BTreeSet::new();
    let mut locals = BTreeSet::new();
    for b in blocks {
        let l = labels(b);
        match b.identifier.as_str() {
            "resource" => {
                assert!(
                    declared.insert((l[0].clone(), l[1].clone())),
                    "{l:?} declared twice"
                );
            }
            "data" => {
                assert!(
                    data.insert((l[0].clone(), l[1].clone())),
                    "data {l:?} declared twice"
                );
            }
            "locals" => {
                for a in b.body.attributes() {
                    assert!(locals.insert(a.key.to_string()), "local {} twice", a.key);
                }
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
                "local" => assert!(locals.contains(&p[1]), "undeclared local {p:?}"),
                "path" => assert_eq!(p, ["path", "module"]),
                "data" => assert!(
                    data.contains(&(p[1].clone(), p[2].clone())),
                    "reference to undeclared data source {p:?}"
                ),
                ty if ty.starts_with("alicloud_") || ty.starts_with("random_") => {
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

/// Every resource, data source and argument rendered is in the schema
/// table, and `required_providers.alicloud.version` is `>= the newest
/// since, < 2.0.0`, recomputed here from the parsed HCL.
fn assert_schema_table_covers(blocks: &[Block]) {
    let mut max = schema::Version(0, 0, 0);
    let mut checked = 0;
    for b in blocks {
        let block = b.identifier.as_str();
        if block != "resource" && block != "data" {
            continue;
        }
        let l = labels(b);
        let kind = schema::lookup(block, &l[0])
            .unwrap_or_else(|| panic!("{block} {} is not in the schema table", l[0]));
        for inner in b.body.blocks() {
            assert_eq!(
                inner.identifier.as_str(),
                "lifecycle",
                "{l:?} has nested blocks"
            );
        }
        if kind.alicloud() {
            max = max.max(kind.since.unwrap_or(schema::Version(0, 0, 0)));
        }
        for a in b.body.attributes() {
            let key = a.key.as_str();
            if schema::META_ARGUMENTS.contains(&key) {
                continue;
            }
            let arg = kind
                .args
                .iter()
                .find(|x| x.name == key)
                .unwrap_or_else(|| panic!("{}.{key} is not in the schema table", l[0]));
            if kind.alicloud() {
                max = max.max(arg.since.unwrap_or(schema::Version(0, 0, 0)));
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} arguments checked");
    let tf = blocks
        .iter()
        .find(|b| b.identifier.as_str() == "terraform")
        .expect("a terraform block");
    let rp = tf
        .body
        .blocks()
        .find(|b| b.identifier.as_str() == "required_providers")
        .expect("required_providers");
    let version = |provider: &str| -> String {
        let Expression::Object(o) = attr(rp, provider) else {
            panic!("required_providers.{provider} is not an object")
        };
        let v = o
            .iter()
            .find(|(k, _)| k.to_string() == "version")
            .map(|(_, v)| v.clone());
        match v {
            Some(Expression::String(s)) => s,
            other => panic!("required_providers.{provider}.version: {other:?}"),
        }
    };
    assert_eq!(version("alicloud"), schema::alicloud_constraint(max));
    // What the schema reference says the rendered arguments need.
    assert_eq!(version("alicloud"), ">= 1.252.0, < 2.0.0");
    assert_eq!(version("random"), schema::RANDOM_CONSTRAINT);
}

/// Each firewall has its node name as host name and its template as user
/// data; each template is a shell script whose only interpolations are
/// the three `locals.user_data_vars` provides.
fn assert_user_data(example: &str, all: &BTreeMap<String, String>, blocks: &[Block]) {
    let locals = blocks
        .iter()
        .find(|b| b.identifier.as_str() == "locals")
        .expect("locals");
    let Expression::Object(vars) = attr(locals, "user_data_vars") else {
        panic!("user_data_vars is not an object")
    };
    let mut given: Vec<String> = vars.keys().map(|k| k.to_string()).collect();
    given.sort();
    let mut want = hafw_model::render::bootstrap::TEMPLATE_VARS.map(String::from);
    want.sort();
    assert_eq!(given, want);
    for inst in resources(blocks, "alicloud_instance") {
        let name = labels(inst)[1].clone();
        assert_eq!(string_attr(inst, "host_name"), name);
        let mut exprs = Vec::new();
        walk(attr(inst, "user_data"), &mut exprs);
        let file = format!("user-data-{name}.sh.tftpl");
        assert!(
            exprs
                .iter()
                .any(|e| matches!(e, Expression::String(s) if *s == file)),
            "{name}'s user_data does not read {file}"
        );
        let Expression::FuncCall(call) = attr(inst, "user_data") else {
            panic!("user_data is not a call")
        };
        assert_eq!(call.name.to_string(), "base64encode");
        // A changed file must not reboot both firewalls: first boot only.
        let lifecycle = inst
            .body
            .blocks()
            .find(|b| b.identifier.as_str() == "lifecycle")
            .unwrap_or_else(|| panic!("{name} has no lifecycle"));
        let ignored: Vec<String> = match attr(lifecycle, "ignore_changes") {
            Expression::Array(a) => a
                .iter()
                .map(|e| match e {
                    Expression::Variable(v) => v.as_str().to_string(),
                    other => panic!("ignore_changes item {other:?}"),
                })
                .collect(),
            other => panic!("ignore_changes: {other:?}"),
        };
        assert_eq!(ignored, ["user_data"]);
        let template = &all[&file];
        let rest = template
            .replace("$${", "")
            .replace("%%{", "")
            .replace("${ha_key_b64}", "")
            .replace("${package_url}", "")
            .replace("${package_sha256}", "");
        assert!(
            !rest.contains("${") && !rest.contains("%{"),
            "{example} {file} has an interpolation Terraform would evaluate"
        );
        assert!(template.contains("HAFW_NODE='") && template.contains(&format!("'{name}'")));
    }
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
    let all = files(example);
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "main.tf",
            "outputs.tf",
            "user-data-fw-a.sh.tftpl",
            "user-data-fw-b.sh.tftpl",
            "variables.tf"
        ]
    );
    assert_eq!(files(example), files(example));
    assert_golden(example, &all);
    let files = hcl_files(&all);
    assert_terraform_fmt_clean(example, &files);
    let blocks = parse_all(&files);
    assert_references_resolve(&blocks);
    assert_schema_table_covers(&blocks);
    assert_user_data(example, &all, &blocks);
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
        .filter(|a| ref_attr(a, "ha_vip_id") == ["alicloud_vpc_ha_vip", "external", "id"])
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
        ["alicloud_vpc_ha_vip", "internal", "id"]
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
        ["alicloud_vpc_ha_vip", "external", "id"]
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
        ["alicloud_vpc_ha_vip", "data", "id"]
    );
    let assoc = resources(&blocks, "alicloud_eip_association")[0];
    assert_eq!(
        ref_attr(assoc, "instance_id"),
        ["alicloud_vpc_ha_vip", "data", "id"]
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
    // `fw.a` and `fw-a` must not both become `fw-a` (nor `fw_a`); `1mgmt`
    // must not start with a digit. Node names are host names, so `.` and
    // `-` are what they may differ by.
    let renames = [("fw-a", "fw.a"), ("fw-b", "fw-a")];
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
    let files = hcl_files(&render(&dep, &text));
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
    let files = hcl_files(&render(&dep, &text));
    let blocks = parse_all(&files);
    assert_references_resolve(&blocks);

    let internal: Vec<(String, Vec<String>)> = resources(&blocks, "alicloud_havip_attachment")
        .iter()
        .filter(|a| ref_attr(a, "ha_vip_id") == ["alicloud_vpc_ha_vip", "internal", "id"])
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

/// HAVIP members attach one after the other (AssociateHaVip refuses
/// concurrent associations of one HAVIP), each after its ENI is attached.
#[test]
fn havip_attachments_are_chained() {
    let blocks = parse_all(&hcl_files(&files("alicloud-havip")));
    let deps = |label: &str| -> Vec<Vec<String>> {
        let a = resources(&blocks, "alicloud_havip_attachment")
            .into_iter()
            .find(|a| labels(a)[1] == label)
            .unwrap_or_else(|| panic!("no attachment {label}"));
        let Expression::Array(d) = attr(a, "depends_on") else {
            panic!("depends_on is not a list")
        };
        d.iter().map(|x| path(x).unwrap()).collect()
    };
    assert_eq!(
        deps("external_-fw-a-untrust"),
        [["alicloud_ecs_network_interface_attachment", "fw-a-untrust"]]
    );
    assert_eq!(
        deps("external_-fw-b-untrust"),
        [
            ["alicloud_ecs_network_interface_attachment", "fw-b-untrust"],
            ["alicloud_havip_attachment", "external_-fw-a-untrust"],
        ]
    );
    assert_eq!(
        deps("internal_-fw-b-trust")[1],
        ["alicloud_havip_attachment", "internal_-fw-a-trust"]
    );
    // The deprecated name is gone.
    assert!(resources(&blocks, "alicloud_havip").is_empty());
    assert_eq!(resources(&blocks, "alicloud_vpc_ha_vip").len(), 2);
}

/// Outputs: ENI ids and MACs for every ENI (primary ones through the data
/// source), EIP and management addresses, and the key, sensitive.
#[test]
fn outputs_name_every_eni_and_the_ways_in() {
    let dep = load("alicloud-havip");
    let blocks = parse_all(&hcl_files(&files("alicloud-havip")));
    let output = |name: &str| {
        blocks
            .iter()
            .find(|b| b.identifier.as_str() == "output" && labels(b) == [name])
            .unwrap_or_else(|| panic!("no output {name}"))
    };
    for name in ["eni_ids", "eni_macs"] {
        let Expression::Object(o) = attr(output(name), "value") else {
            panic!("{name} is not a map")
        };
        let keys: BTreeSet<String> = o
            .keys()
            .map(|k| k.to_string().trim_matches('"').to_string())
            .collect();
        let want: BTreeSet<String> = dep.enis().map(|(_, e)| e.name.clone()).collect();
        assert_eq!(keys, want, "{name}");
        let attr_name = if name == "eni_ids" { "id" } else { "mac" };
        for (k, v) in o {
            let p = path(v).unwrap_or_else(|| panic!("{name}.{k} is not a reference"));
            assert_eq!(p.last().map(String::as_str), Some(attr_name), "{p:?}");
        }
    }
    let Expression::Object(o) = attr(output("eni_macs"), "value") else {
        unreachable!()
    };
    let primary: Vec<Vec<String>> = o
        .iter()
        .filter(|(k, _)| k.to_string().contains("mgmt"))
        .map(|(_, v)| path(v).unwrap())
        .collect();
    assert_eq!(
        primary[0],
        [
            "data",
            "alicloud_ecs_network_interfaces",
            "fw-a",
            "interfaces",
            "[0]",
            "mac"
        ]
    );
    let Expression::Object(m) = attr(output("management_addresses"), "value") else {
        panic!("management_addresses is not a map")
    };
    // The seed allows management from inside the VPC only: no EIP, the
    // private addresses.
    let addrs: Vec<Expression> = m.values().cloned().collect();
    assert_eq!(
        addrs,
        [
            Expression::String("10.0.0.11".into()),
            Expression::String("10.0.0.12".into())
        ]
    );
    assert!(matches!(
        attr(output("ha_key_b64"), "sensitive"),
        Expression::Bool(true)
    ));
    assert!(attr(output("eip_addresses"), "value") != &Expression::Null);
}

/// A management source outside the VPC gets an EIP per firewall's
/// management ENI; the security group still admits only that source.
#[test]
fn an_outside_management_source_gets_a_management_eip_per_node() {
    let text = example_text("alicloud-havip").replace(
        "allow = [\"10.0.0.0/24\"]",
        "allow = [\"10.0.0.0/24\", \"192.0.2.0/28\"]",
    );
    let dep = hafw_model::parse("seed.toml", &text).unwrap();
    let all = render(&dep, &text);
    let blocks = parse_all(&hcl_files(&all));
    assert_references_resolve(&blocks);
    assert_schema_table_covers(&blocks);
    let eips: Vec<String> = resources(&blocks, "alicloud_eip_address")
        .iter()
        .map(|b| labels(b)[1].clone())
        .collect();
    assert_eq!(eips, ["web", "management_-fw-a", "management_-fw-b"]);
    let assoc = resources(&blocks, "alicloud_eip_association")
        .into_iter()
        .find(|b| labels(b)[1] == "management_-fw-b")
        .unwrap();
    // The management ENI is the primary one: bound through the instance.
    assert_eq!(string_attr(assoc, "instance_type"), "EcsInstance");
    assert_eq!(
        ref_attr(assoc, "instance_id"),
        ["alicloud_instance", "fw-b", "id"]
    );
    let ssh: BTreeSet<String> = resources(&blocks, "alicloud_security_group_rule")
        .iter()
        .filter(|r| string_attr(r, "port_range") == "22/22")
        .map(|r| string_attr(r, "cidr_ip"))
        .collect();
    assert_eq!(
        ssh,
        ["10.0.0.0/24", "192.0.2.0/28"].map(String::from).into()
    );
}

/// The schema table agrees with the provider reference it was taken from
/// (`shared/reference/alicloud-terraform-schema.md`, found beside the
/// repository): every alicloud resource argument the table lists has a row
/// in its resource's section, and every dated argument's version appears
/// on a line of the reference that names it.
#[test]
fn the_schema_table_matches_the_reference() {
    let reference = root()
        .ancestors()
        .map(|d| d.join("shared/reference/alicloud-terraform-schema.md"))
        .find(|p| p.exists());
    let Some(reference) = reference else {
        eprintln!("the_schema_table_matches_the_reference: skipped: no shared/reference beside the repository");
        return;
    };
    let md = std::fs::read_to_string(&reference).unwrap();
    assert!(
        md.contains(schema::ALICLOUD_COMMIT),
        "the reference is of another commit"
    );
    let section = |ty: &str| -> String {
        // The reference files alicloud_vpc_ha_vip under its old name.
        let heading_ty = if ty == "alicloud_vpc_ha_vip" {
            "alicloud_havip"
        } else {
            ty
        };
        let start = md
            .find(&format!("\n## `{heading_ty}`\n"))
            .unwrap_or_else(|| panic!("no section for {ty}"));
        let rest = &md[start + 1..];
        let end = rest[1..].find("\n## ").map_or(rest.len(), |e| e + 1);
        rest[..end].to_string()
    };
    let mut rows = 0;
    for kind in schema::TABLE
        .iter()
        .filter(|k| k.alicloud() && k.block == "resource")
    {
        let sec = section(kind.ty);
        for a in kind.args {
            assert!(
                sec.contains(&format!("\n| `{}` |", a.name)),
                "{}.{} has no row in the reference",
                kind.ty,
                a.name
            );
            rows += 1;
            if let Some(v) = a.since {
                let v = v.to_string();
                assert!(
                    md.lines().any(|l| l.contains(a.name) && l.contains(&v)),
                    "{}.{} since {v}: no line of the reference says so",
                    kind.ty,
                    a.name
                );
            }
        }
    }
    assert!(rows > 40, "{rows}");
}

/// Terraform's own `templatefile()` (via `terraform console`, which needs
/// no provider) turns each rendered template into exactly the script
/// `hafw plan user-data` prints for the same key, even for a deployment
/// file full of `${`, `%{` and quotes. Skipped, saying so, without terraform.
#[test]
fn terraform_fills_the_templates_into_the_stand_alone_scripts() {
    use hafw_model::render::bootstrap::{user_data, Bootstrap, KeySource};
    let text = format!(
        "{}# ${{HOME}} %{{ if x }} $${{y}} `id` $(id) 'q' \"d\" \\ 50%\n",
        example_text("alicloud-havip")
    );
    let dep = hafw_model::parse("seed.toml", &text).unwrap();
    let all = render(&dep, &text);
    let key: Vec<u8> = (0u8..32).map(|b| b.wrapping_mul(37) ^ 0xa5).collect();
    let dir = std::env::temp_dir().join(format!("hafw-tf-console-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sha256 = |bytes: &[u8]| -> String {
        let f = dir.join("script");
        std::fs::write(&f, bytes).unwrap();
        let out = std::process::Command::new("sha256sum")
            .arg(&f)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let b64 = {
        let out = std::process::Command::new("base64")
            .args(["-w0"])
            .arg({
                let f = dir.join("key");
                std::fs::write(&f, &key).unwrap();
                f
            })
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let url = "https://example.com/hafw_0.1.0_amd64.deb";
    let mut compared = 0;
    for node in ["fw-a", "fw-b"] {
        let file = format!("user-data-{node}.sh.tftpl");
        std::fs::write(dir.join(&file), &all[&file]).unwrap();
        let expr = format!(
            "sha256(templatefile(\"{file}\", {{ ha_key_b64 = \"{b64}\", package_url = \"{url}\", package_sha256 = \"\" }}))\n"
        );
        let run = std::process::Command::new("terraform")
            .arg("console")
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = run else {
            eprintln!("terraform templatefile check skipped: cannot run terraform");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(expr.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "terraform console refused {file}: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let from_terraform = stdout.trim().trim_matches('"').to_string();
        let opts = Bootstrap {
            package_url: Some(url.into()),
            package_sha256: None,
        };
        let script = user_data(&dep, &text, node, KeySource::Bytes(&key), &opts).unwrap();
        assert_eq!(from_terraform, sha256(script.as_bytes()), "{node}");
        compared += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(compared, 2);
}
