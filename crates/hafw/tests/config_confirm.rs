//! Confirm or roll back, history, rollback N and diff in a lab pair: a
//! change applied with `--confirm-within` and left to expire brings both
//! nodes back to the previous policy by themselves (as a new version); a
//! confirmed one stays; `hafw config history` names version, hash, who
//! and the comment; `hafw config rollback N` makes a new version equal to
//! N on both nodes; `hafw config diff --from N --to M` shows the change.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hafw_lab::pair::{Fault, Pair};

fn with_rule(name: &str) -> String {
    let seed = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    let at = "[[policy.rule]]\nname = \"servers-out\"";
    assert!(seed.contains(at), "the seed changed: update this test");
    let rule = format!(
        "[[policy.rule]]\nname = \"{name}\"\nfrom = \"trust\"\nto = \"untrust\"\n\
         destination = [\"198.51.100.32\"]\nprotocol = \"tcp\"\nports = [9]\naction = \"drop\"\n\n"
    );
    seed.replacen(at, &format!("{rule}{at}"), 1)
}

fn hafw_cmd(args: &[&str], control: &Path) -> (bool, String) {
    let o = Command::new(hafw())
        .args(args)
        .arg("--control")
        .arg(control)
        .output()
        .expect("run hafw");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn ruleset(pair: &Pair, node: &str) -> String {
    let ns = format!("hafw-{}.{node}", pair.lab);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "list", "table", "inet", "hafw"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (version, hash) of a node, from its status.
fn on(pair: &Pair, node: &str) -> Option<(u64, String)> {
    pair.status(node)
        .map(|s| (s.config.version, s.config.hash.clone()))
}

/// Waits until both nodes run `version` (and the same hash); returns the hash.
fn both_on(pair: &Pair, nodes: [&str; 2], version: u64, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let (a, b) = (on(pair, nodes[0]), on(pair, nodes[1]));
        if let (Some(a), Some(b)) = (&a, &b) {
            if a.0 == version && a == b {
                return a.1.clone();
            }
        }
        assert!(
            start.elapsed() < limit,
            "not both on version {version} within {limit:?}: {a:?} {b:?}\n{}\n{}",
            pair.daemon_log(nodes[0]),
            pair.daemon_log(nodes[1])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unconfirmed_change_goes_back_on_both_nodes_and_a_confirmed_one_stays() {
    if !ns_tests_enabled() {
        return;
    }
    let pair = Pair::start(
        &example("alicloud-havip.toml"),
        &unique("cfm"),
        Path::new(hafw()),
        "fast",
    )
    .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let active = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    let nodes = [active.as_str(), passive.as_str()];
    let ctl = pair.control(&active);
    let dir = hafw_lab::lab::state_dir(&pair.lab);
    let (v0_hash, _) = (on(&pair, &active).unwrap().1, ());

    // Left to expire: both go back, as version 2 with version 0's policy.
    let try_a = dir.join("try-a.toml");
    std::fs::write(&try_a, with_rule("try-a")).unwrap();
    let (ok, out) = hafw_cmd(
        &[
            "config",
            "apply",
            try_a.to_str().unwrap(),
            "--confirm-within",
            "3s",
            "-m",
            "try a",
        ],
        &ctl,
    );
    assert!(ok && out.contains("not confirmed yet"), "{out}");
    let applied = Instant::now();
    both_on(&pair, nodes, 1, Duration::from_secs(5));
    for n in nodes {
        assert!(ruleset(&pair, n).contains("rule try-a"), "{n}");
    }
    // The active's status says what waits and what happens without it.
    let st = pair.status(&active).unwrap();
    let p = st
        .config
        .pending_confirm
        .clone()
        .expect("pending in status");
    assert_eq!((p.version, p.back_to), (1, 0), "{p:?}");
    assert!(p.seconds_left <= 3, "{p:?}");
    assert!(
        pair.status_text(&active).contains("NOT CONFIRMED"),
        "{}",
        pair.status_text(&active)
    );
    let back = both_on(&pair, nodes, 2, Duration::from_secs(10));
    let st = pair.status(&active).unwrap();
    assert_eq!(
        st.config.pending_confirm, None,
        "the rollback is not pending"
    );
    let took = applied.elapsed();
    eprintln!("unconfirmed version 1 rolled back on both nodes {took:?} after the apply");
    assert!(
        took >= Duration::from_millis(2500),
        "{took:?}: before the window closed"
    );
    assert_eq!(back, v0_hash, "version 2 is version 0's policy");
    for n in nodes {
        assert!(!ruleset(&pair, n).contains("rule try-a"), "{n}");
    }

    // Confirmed in time: it stays past its window.
    let try_b = dir.join("try-b.toml");
    std::fs::write(&try_b, with_rule("try-b")).unwrap();
    let (ok, out) = hafw_cmd(
        &[
            "config",
            "apply",
            try_b.to_str().unwrap(),
            "--confirm-within",
            "3s",
            "-m",
            "try b",
        ],
        &ctl,
    );
    assert!(ok, "{out}");
    // Only the active's confirmation reaches both nodes: the passive says so.
    both_on(&pair, nodes, 3, Duration::from_secs(5));
    let (ok, out) = hafw_cmd(&["config", "confirm"], &pair.control(&passive));
    assert!(!ok && out.contains("not active"), "{out}");
    let (ok, out) = hafw_cmd(&["config", "confirm"], &ctl);
    assert!(ok && out.contains("version 3 confirmed"), "{out}");
    std::thread::sleep(Duration::from_secs(5));
    both_on(&pair, nodes, 3, Duration::from_secs(1));
    for n in nodes {
        assert!(ruleset(&pair, n).contains("rule try-b"), "{n}");
    }
    let (ok, out) = hafw_cmd(&["config", "confirm"], &ctl);
    assert!(!ok && out.contains("nothing waits"), "{out}");

    // History: who (uid 0: the test runs as root), comments and states.
    let (ok, hist) = hafw_cmd(&["config", "history"], &ctl);
    eprintln!("{hist}");
    assert!(ok, "{hist}");
    let line = |v: &str| {
        hist.lines()
            .find(|l| l.trim_start_matches('*').split_whitespace().next() == Some(v))
            .unwrap_or_else(|| panic!("no version {v}: {hist}"))
            .to_string()
    };
    assert!(
        line("1").contains("expired") && line("1").contains("try a"),
        "{hist}"
    );
    assert!(
        line("1").split_whitespace().any(|w| w == "0"),
        "uid 0: {hist}"
    );
    assert!(line("2").contains("not confirmed in time"), "{hist}");
    assert!(
        line("3").contains("confirmed") && line("3").starts_with('*'),
        "{hist}"
    );

    // Rollback to 1: a new version 4 equal to 1, on both nodes.
    let (ok, out) = hafw_cmd(&["config", "rollback", "1"], &ctl);
    assert!(ok && out.contains("applied policy version 4"), "{out}");
    both_on(&pair, nodes, 4, Duration::from_secs(5));
    for n in nodes {
        let rs = ruleset(&pair, n);
        assert!(
            rs.contains("rule try-a") && !rs.contains("rule try-b"),
            "{n}"
        );
    }
    let (ok, out) = hafw_cmd(&["config", "rollback", "99"], &ctl);
    assert!(!ok && out.contains("not in the history"), "{out}");

    // Diff of two versions; the passive has its own history of the same.
    let (ok, d) = hafw_cmd(&["config", "diff", "--from", "3", "--to", "4"], &ctl);
    assert!(ok, "{d}");
    assert!(
        d.contains("- name = \"try-b\"") && d.contains("+ name = \"try-a\""),
        "{d}"
    );
    let (ok, d) = hafw_cmd(
        &["config", "diff", "--from", "1", "--to", "4"],
        &pair.control(&passive),
    );
    assert!(ok && d.contains("same policy"), "{d}");
}

#[test]
fn a_failover_while_a_change_is_pending_rolls_back_on_the_new_active_by_itself() {
    if !ns_tests_enabled() {
        return;
    }
    let mut pair = Pair::start(
        &example("alicloud-havip.toml"),
        &unique("cff"),
        Path::new(hafw()),
        "fast",
    )
    .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let active = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    let nodes = [active.as_str(), passive.as_str()];
    let v0_hash = on(&pair, &active).unwrap().1;
    let try_c = hafw_lab::lab::state_dir(&pair.lab).join("try-c.toml");
    std::fs::write(&try_c, with_rule("try-c")).unwrap();
    let (ok, out) = hafw_cmd(
        &[
            "config",
            "apply",
            try_c.to_str().unwrap(),
            "--confirm-within",
            "4s",
        ],
        &pair.control(&active),
    );
    assert!(ok, "{out}");
    let applied = Instant::now();
    both_on(&pair, nodes, 1, Duration::from_secs(5));
    // The passive knows the deadline (config sync's Pending).
    let start = Instant::now();
    loop {
        let (_, hist) = hafw_cmd(&["config", "history"], &pair.control(&passive));
        if hist
            .lines()
            .any(|l| l.starts_with('*') && l.contains("pending"))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the passive never marked version 1 pending:\n{hist}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    pair.inject(Fault::Kill, &active).unwrap();
    // The survivor takes over and, when the window closes, goes back.
    let start = Instant::now();
    loop {
        if let Some(st) = pair.status(&passive) {
            if st.config.version == 2 {
                assert_eq!(st.config.hash, v0_hash, "version 2 is version 0's policy");
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new active never rolled back:\n{}",
            pair.daemon_log(&passive)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = applied.elapsed();
    eprintln!("the new active rolled back {took:?} after the apply");
    assert!(
        took >= Duration::from_millis(3500),
        "{took:?}: before the window closed"
    );
    assert_eq!(pair.state(&passive).as_deref(), Some("active"));
    assert!(!ruleset(&pair, &passive).contains("rule try-c"));
    // The old active comes back and takes version 2 from it.
    pair.heal(Fault::Kill, &active).unwrap();
    both_on(&pair, nodes, 2, Duration::from_secs(20));
    assert!(!ruleset(&pair, &active).contains("rule try-c"));
}
