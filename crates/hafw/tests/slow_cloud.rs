//! A slow cloud: with every HAVIP's move held 2 s (`--move-delay 2s`),
//! `hafw lab demo` still passes with every TCP session kept through both
//! failovers, and its timeline gives the wait to the cloud's move.

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_demo_passes_with_a_two_second_cloud_and_keeps_every_session() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("sc");
    let out = Command::new(hafw())
        .args(["lab", "demo", "--name", &name, "--profile", "fast"])
        .args(["--sessions", "10", "--move-delay", "2s"])
        .output()
        .expect("run hafw lab demo");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("HAVIP move delay 2.0 s"), "{text}");
    // Both failovers, planned and unplanned, keep every session.
    assert_eq!(
        text.matches("10/10 TCP sessions survived").count(),
        2,
        "{text}"
    );
    // The unplanned one loses about the cloud's 2 s, and says why.
    let unplanned = text
        .lines()
        .skip_while(|l| !l.contains("failover, unplanned"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        unplanned.contains("external move requested +"),
        "{unplanned}"
    );
    assert!(unplanned.contains("(after 2.0 s)"), "{unplanned}");
    assert!(text.contains(&format!("lab `{name}` torn down")), "{text}");
    assert!(lab_namespaces(&name).is_empty());
}
