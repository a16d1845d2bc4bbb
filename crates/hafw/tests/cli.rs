//! The command line as an operator meets it: every operating command's
//! `--help` shows an example; and the licences of everything linked in
//! allow hafw's own (Apache-2.0 OR MIT: no copyleft crate).

mod common;

use std::process::Command;

use common::*;

#[test]
fn operating_commands_show_an_example_in_their_help() {
    for cmd in [
        &["status"][..],
        &["sessions"],
        &["config", "show"],
        &["config", "diff"],
        &["config", "apply"],
        &["suspend"],
        &["resume"],
        &["run"],
        &["validate"],
        &["bench", "failover"],
        &["bench", "dataplane"],
        &["bench", "connections"],
        &["replay"],
        &["keygen"],
        &["plan", "user-data"],
    ] {
        let out = Command::new(hafw())
            .args(cmd)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let example = format!("Example: hafw {}", cmd.join(" "));
        assert!(
            out.status.success() && text.contains(&example),
            "`hafw {} --help` lacks `{example}`:\n{text}",
            cmd.join(" ")
        );
    }
}

/// Permissive licences only (SPDX ids).
const ALLOWED: &[&str] = &[
    "MIT",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "BSL-1.0",
    "0BSD",
    "CC0-1.0",
];

/// Whether an SPDX expression can be satisfied with [`ALLOWED`] licences:
/// `A OR B` needs one, `A AND B` both; `/` is the old spelling of OR.
fn allowed(expr: &str) -> bool {
    let tokens: Vec<String> = expr
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut pos = 0;
    let ok = or_expr(&tokens, &mut pos);
    ok && pos == tokens.len()
}

fn or_expr(t: &[String], pos: &mut usize) -> bool {
    let mut any = and_expr(t, pos);
    while t.get(*pos).is_some_and(|x| x == "OR") {
        *pos += 1;
        any |= and_expr(t, pos);
    }
    any
}

fn and_expr(t: &[String], pos: &mut usize) -> bool {
    let mut all = atom(t, pos);
    while t.get(*pos).is_some_and(|x| x == "AND") {
        *pos += 1;
        all &= atom(t, pos);
    }
    all
}

fn atom(t: &[String], pos: &mut usize) -> bool {
    match t.get(*pos).map(String::as_str) {
        Some("(") => {
            *pos += 1;
            let v = or_expr(t, pos);
            if t.get(*pos).is_some_and(|x| x == ")") {
                *pos += 1;
                v
            } else {
                false
            }
        }
        Some(id) => {
            let mut id = id.to_string();
            *pos += 1;
            if t.get(*pos).is_some_and(|x| x == "WITH") {
                id = format!("{id} WITH {}", t.get(*pos + 1).cloned().unwrap_or_default());
                *pos += 2;
            }
            ALLOWED.contains(&id.as_str())
        }
        None => false,
    }
}

#[test]
fn the_licence_check_refuses_copyleft() {
    assert!(allowed("MIT OR Apache-2.0"));
    assert!(allowed("(MIT OR Apache-2.0) AND Unicode-3.0"));
    assert!(allowed("MIT/Apache-2.0"));
    assert!(allowed("MIT OR Apache-2.0 OR LGPL-2.1-or-later"));
    assert!(!allowed("GPL-3.0-only"));
    assert!(!allowed("MIT AND GPL-2.0-or-later"));
    assert!(!allowed("LGPL-2.1-or-later"));
    assert!(!allowed(""));
}

/// The packages of a `cargo metadata` document whose licence is not
/// [`allowed`] (a package without a licence field is refused too).
fn refused(meta: &serde_json::Value) -> Vec<String> {
    let packages = meta["packages"].as_array().expect("a packages array");
    packages
        .iter()
        .filter(|p| !p["license"].as_str().is_some_and(allowed))
        .map(|p| format!("{} {}: {:?}", p["name"], p["version"], p["license"]))
        .collect()
}

#[test]
fn the_licence_check_flags_a_copyleft_package() {
    let meta = serde_json::json!({"packages": [
        {"name": "ok", "version": "1.0.0", "license": "MIT OR Apache-2.0"},
        {"name": "gpl", "version": "2.0.0", "license": "GPL-3.0-only"},
        {"name": "none", "version": "3.0.0", "license": null},
    ]});
    let refused = refused(&meta);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].contains("gpl") && refused[1].contains("none"));
}

/// The host's target triple, as cargo reports it (`host: ...`).
fn host_triple(cargo: &str) -> String {
    let out = Command::new(cargo)
        .arg("-vV")
        .output()
        .expect("run cargo -vV");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("no host line in `cargo -vV`:\n{text}"))
        .trim()
        .to_string()
}

/// Everything a build for this machine links in. `--filter-platform`
/// keeps the graph to packages this target uses: unfiltered, cargo wants
/// every package in the lock file, Windows-only ones included, which a
/// Linux build never downloads, and `--offline` then fails on a fresh
/// machine.
#[test]
fn every_dependency_allows_apache_2_or_mit() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = host_triple(&cargo);
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(repo())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    assert!(packages.len() > 50, "the dependency graph looks empty");
    // The filter kept what this machine links: our crates and libc.
    for name in ["hafw", "hafw-ha", "libc"] {
        assert!(
            packages.iter().any(|p| p["name"] == name),
            "{name} missing from the filtered graph"
        );
    }
    let refused = refused(&meta);
    assert!(
        refused.is_empty(),
        "dependencies whose licence is not permissive: {refused:#?}"
    );
}
