//! `hafw lab demo` end to end (issue 7): it passes on the seed, and when a
//! step is broken on purpose the report names the step and the reason and
//! the lab is still torn down.

mod common;

use std::process::Command;

use common::*;

fn demo(args: &[&str]) -> (bool, String) {
    let out = Command::new(hafw())
        .args(["lab", "demo"])
        .args(args)
        .output()
        .expect("run hafw lab demo");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_demo_passes_on_the_seed_and_cleans_up() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("dm");
    let (ok, text) = demo(&["--name", &name, "--profile", "fast", "--sessions", "10"]);
    assert!(ok, "{text}");
    assert!(text.contains("all checks passed"), "{text}");
    assert!(text.contains("10/10 TCP sessions survived"), "{text}");
    // The confirm-or-roll-back steps: back on the first policy, then kept.
    assert!(
        text.contains("not confirmed, both back on the previous policy"),
        "{text}"
    );
    assert!(text.contains("confirmed, still after the window"), "{text}");
    assert!(text.contains(&format!("lab `{name}` torn down")), "{text}");
    assert!(lab_namespaces(&name).is_empty());
}

#[test]
fn a_broken_nat_rule_fails_the_inbound_step() {
    if !ns_tests_enabled() {
        return;
    }
    // DNAT to a port nothing listens on: the client's fetch cannot succeed.
    let text = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    let broken = text.replace(
        "to_address = \"10.0.10.10\"",
        "to_address = \"10.0.10.10\"\nto_port = 8081",
    );
    assert_ne!(text, broken);
    let file = TempFile::new("demo-nat", "deployment.toml", &broken);
    let name = unique("dn");
    let path = file.path().to_str().unwrap();
    let (ok, out) = demo(&[path, "--name", &name, "--profile", "fast"]);
    drop(file);
    assert!(!ok, "{out}");
    assert!(
        out.contains("FAILED at `inbound: client -> EIP -> web server`"),
        "{out}"
    );
    assert!(out.contains(&format!("lab `{name}` torn down")), "{out}");
    assert!(lab_namespaces(&name).is_empty());
}

#[test]
fn a_passive_that_cannot_take_over_fails_the_failover_step() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("dp");
    let (ok, out) = demo(&[
        "--name",
        &name,
        "--profile",
        "fast",
        "--break-passive",
        "--sessions",
        "5",
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED at `failover, planned"), "{out}");
    assert!(out.contains(&format!("lab `{name}` torn down")), "{out}");
    assert!(lab_namespaces(&name).is_empty());
}
