//! Crash-safe config apply in a lab pair: a daemon killed (kill -9) at
//! each named step of an apply (the test-only pause points,
//! `HAFW_TEST_PAUSE_AT`), on the active (a local apply) and on the passive
//! (a policy from the peer), restarts on exactly one consistent version
//! (its file's policy hash == its version file's hash == what it runs, and
//! the kernel's ruleset has the rule exactly when that policy has it), and
//! the pair converges (both nodes on the same version and hash).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hafw_daemon::config::{pause, policy_hash_hex};
use hafw_lab::pair::{Fault, Pair};

const RULE: &str = "crash-rule";

fn with_rule() -> String {
    let seed = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    let at = "[[policy.rule]]\nname = \"servers-out\"";
    assert!(seed.contains(at), "the seed changed: update this test");
    let rule = format!(
        "[[policy.rule]]\nname = \"{RULE}\"\nfrom = \"trust\"\nto = \"untrust\"\n\
         destination = [\"198.51.100.31\"]\nprotocol = \"tcp\"\nports = [9]\naction = \"drop\"\n\n"
    );
    seed.replacen(at, &format!("{rule}{at}"), 1)
}

fn ruleset(pair: &Pair, node: &str) -> String {
    let ns = format!("hafw-{}.{node}", pair.lab);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "list", "table", "inet", "hafw"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One node's (version, hash) if everything it has agrees, or why not.
fn consistent(pair: &Pair, node: &str) -> Result<(u64, String), String> {
    let file = pair.node_config(node);
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let file_hash = policy_hash_hex(&text).map_err(|e| e.to_string())?;
    let vpath = format!("{}.{node}.version", file.display());
    let vtext = std::fs::read_to_string(&vpath).unwrap_or_else(|_| "0 -".into());
    let mut w = vtext.split_whitespace();
    let (v, vh) = (
        w.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0),
        w.next().unwrap_or("-").to_string(),
    );
    let st = pair.status(node).ok_or("no status")?;
    let has_rule = text.contains(&format!("name = \"{RULE}\""));
    let in_kernel = ruleset(pair, node).contains(&format!("rule {RULE}"));
    let why = if v != 0 && vh != file_hash {
        format!("version file {v} {vh} but the file's policy is {file_hash}")
    } else if st.config.version != v || st.config.hash != file_hash {
        format!(
            "runs {} {} but the disk says {v} {file_hash}",
            st.config.version, st.config.hash
        )
    } else if has_rule != in_kernel {
        format!("the file has {RULE}: {has_rule}; the kernel: {in_kernel}")
    } else {
        return Ok((v, file_hash));
    };
    Err(why)
}

/// One cell of the matrix: Ok(the version both ended on) or why not.
fn cell(step: &str, role: &str) -> Result<u64, String> {
    // fw-a has the higher priority: active at start.
    let (active, passive) = ("fw-a", "fw-b");
    let target = if role == "active" { active } else { passive };
    let name = unique("crash");
    let mut pair = Pair::start_env(
        &example("alicloud-havip.toml"),
        &name,
        Path::new(hafw()),
        "fast",
        false,
        &[],
        &[(target, pause::ENV, step)],
    )
    .map_err(|e| format!("start: {e}"))?;
    let got = pair
        .wait_settled(Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    if got != active {
        return Err(format!("{got} is active, not {active}"));
    }
    let dir = hafw_lab::lab::state_dir(&pair.lab);
    let v1 = dir.join("v1.toml");
    std::fs::write(&v1, with_rule()).unwrap();
    // The apply never answers when the active pauses: not waited for.
    let mut cli = Command::new(hafw())
        .args(["config", "apply"])
        .arg(&v1)
        .arg("--control")
        .arg(pair.control(active))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let want = format!("paused at {step}");
    let start = Instant::now();
    while !pair.daemon_log(target).contains(&want) {
        if start.elapsed() > Duration::from_secs(15) {
            let _ = cli.kill();
            let _ = cli.wait();
            return Err(format!("never {want}:\n{}", pair.daemon_log(target)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = pair.inject(Fault::Kill, target);
    let _ = cli.kill();
    let _ = cli.wait();
    killed.map_err(|e| e.to_string())?;
    pair.set_env(target, pause::ENV, None);
    pair.heal(Fault::Kill, target).map_err(|e| e.to_string())?;
    // Back, consistent, and the same as the peer.
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        match (consistent(&pair, active), consistent(&pair, passive)) {
            (Ok(a), Ok(b)) if a == b => return Ok(a.0),
            (Ok(a), Ok(b)) => last = format!("not converged: {active} {a:?}, {passive} {b:?}"),
            (Err(e), _) => last = format!("{active}: {e}"),
            (_, Err(e)) => last = format!("{passive}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{last}\n--- {target} log:\n{}",
        pair.daemon_log(target)
    ))
}

#[test]
fn a_daemon_killed_at_any_step_of_an_apply_restarts_consistent_and_the_pair_converges() {
    if !ns_tests_enabled() {
        return;
    }
    let mut results = vec![];
    for role in ["active", "passive"] {
        for step in pause::STEPS {
            // The offer is the active's step only.
            if role == "passive" && step == "offered" {
                continue;
            }
            let r = cell(step, role);
            eprintln!("crash at {step:16} on the {role:7}: {r:?}");
            results.push((step, role, r));
        }
    }
    let ok = results.iter().filter(|(_, _, r)| r.is_ok()).count();
    eprintln!(
        "crash matrix: {} steps x 2 roles = {} cells, {ok} consistent and converged, {} not",
        pause::STEPS.len(),
        results.len(),
        results.len() - ok
    );
    let failed: Vec<_> = results.iter().filter(|(_, _, r)| r.is_err()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
