//! Rolling upgrade in a lab pair (docs/upgrade.md): the passive restarted
//! as the next release (the test-only `HAFW_TEST_PROTOCOL_MAX=4`), a
//! planned handover, then the other node; long-lived TCP sessions through
//! the pair all along must all survive, and the only HA transitions are
//! the planned ones. And a node of another policy schema
//! (`HAFW_TEST_POLICY_SCHEMA=2`): config sync pauses with an alarm while
//! HA and session sync go on.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hafw_daemon::status::Status;
use hafw_lab::pair::{Fault, Pair};
use hafw_lab::sessions::Sessions;

const NEXT: [(&str, &str); 1] = [("HAFW_TEST_PROTOCOL_MAX", "4")];
const SETTLE: Duration = Duration::from_secs(20);

/// The seed plus `app`, reached through a DNAT of the external HAVIP's
/// port 7777 (the inbound sessions), in a file of the test's own.
fn deployment(test: &str) -> TempFile {
    let seed = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    with_app(&format!("upgrade-{test}"), &seed)
}

fn start(prefix: &str) -> (Pair, TempFile) {
    let name = unique(prefix);
    let file = deployment(&name);
    let pair = Pair::start_opts(file.path(), &name, Path::new(hafw()), "fast", false, &[])
        .unwrap_or_else(|e| panic!("start the pair in lab {name}: {e}"));
    (pair, file)
}

fn ns(pair: &Pair, host: &str) -> String {
    hafw_lab::topology::ns_name(&pair.lab, host)
}

fn logs(pair: &Pair) -> String {
    pair.nodes()
        .iter()
        .map(|n| format!("--- {n}\n{}\n{}", pair.status_text(n), pair.daemon_log(n)))
        .collect()
}

/// Polls `f` on `node`'s status until it holds or `SETTLE` passes.
fn wait_status(pair: &Pair, node: &str, what: &str, f: impl Fn(&Status) -> bool) -> Status {
    let end = Instant::now() + SETTLE;
    loop {
        if let Some(st) = pair.status(node).filter(|s| f(s)) {
            return st;
        }
        if Instant::now() > end {
            panic!("{node}: {what} not within {SETTLE:?}\n{}", logs(pair));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The transitions this run of `node` made, as `from>to`.
fn transitions(pair: &Pair, node: &str) -> Vec<String> {
    pair.status(node)
        .map(|s| {
            s.transitions
                .iter()
                .map(|t| format!("{}>{}", t.from, t.to))
                .collect()
        })
        .unwrap_or_default()
}

fn speaks(st: &Status, own: u8, speaking: u8, peer_max: u8) -> bool {
    let v = &st.versions;
    v.protocol_max == own
        && v.speaking == speaking
        && v.peer_protocol == Some(speaking)
        && v.peer_protocol_max == Some(peer_max)
        && v.peer_software.as_deref() == Some(env!("CARGO_PKG_VERSION"))
}

fn open_sessions(pair: &Pair) -> (Sessions, Sessions) {
    let n = 25;
    let every = Duration::from_millis(10);
    let inbound = Sessions::open(
        &ns(pair, "client"),
        "203.0.113.10:7777".parse().unwrap(),
        n,
        every,
    );
    let outbound = Sessions::open(
        &ns(pair, "web"),
        "198.51.100.30:7777".parse().unwrap(),
        n,
        every,
    );
    assert_eq!(inbound.opened, n, "{:?}", inbound.open_errors);
    assert_eq!(outbound.opened, n, "{:?}", outbound.open_errors);
    (inbound, outbound)
}

#[test]
fn a_rolling_upgrade_keeps_every_session_with_only_the_planned_transitions() {
    if !ns_tests_enabled() {
        return;
    }
    let (mut pair, _file) = start("up");
    let first = pair.wait_settled(SETTLE).unwrap();
    let second = pair.peer_of(&first).unwrap();
    pair.wait_ready(SETTLE).unwrap();
    // Both on this release: protocol 3 each way.
    for n in [&first, &second] {
        wait_status(&pair, n, "protocol 3 each way", |s| speaks(s, 3, 3, 3));
    }
    let (inbound, outbound) = open_sessions(&pair);
    let moves_before = pair.moves_since(0).len();
    let first_before = transitions(&pair, &first);

    // 1. The passive restarted as the next release: it speaks 3 to the
    //    other, which sees its maximum 4.
    pair.restart_with_env(&second, &NEXT).unwrap();
    let st = wait_status(&pair, &second, "passive, speaking 3 of its 4", |s| {
        s.state == "passive" && speaks(s, 4, 3, 3)
    });
    eprintln!("after the passive's upgrade, {second}:\n{st}");
    let st = wait_status(&pair, &first, "the peer's maximum 4 seen", |s| {
        speaks(s, 3, 3, 4)
    });
    assert!(st.to_string().contains("(max 4)"), "{st}");
    assert!(
        st.to_json().contains("\"peer_protocol_max\":4"),
        "{}",
        st.to_json()
    );
    pair.wait_ready(SETTLE).unwrap();
    assert_eq!(
        transitions(&pair, &first),
        first_before,
        "the active moved while the passive restarted\n{}",
        logs(&pair)
    );

    // 2. Hand over: the upgraded node becomes active.
    pair.inject(Fault::Suspend, &first).unwrap();
    let now_active = pair.wait_settled(SETTLE).unwrap();
    assert_eq!(now_active, second, "{}", logs(&pair));

    // 3. The other node upgraded too: both speak 4.
    pair.restart_with_env(&first, &NEXT).unwrap();
    for n in [&first, &second] {
        wait_status(&pair, n, "protocol 4 each way", |s| speaks(s, 4, 4, 4));
    }
    wait_status(&pair, &first, "passive after its upgrade", |s| {
        s.state == "passive"
    });
    pair.wait_ready(SETTLE).unwrap();
    // Exchange a while longer across the upgraded pair.
    std::thread::sleep(Duration::from_millis(500));

    let results: Vec<_> = inbound
        .finish()
        .into_iter()
        .chain(outbound.finish())
        .collect();
    let ok = results.iter().filter(|r| r.failure.is_none()).count();
    let first_failure = results.iter().find_map(|r| r.failure.clone());
    let moves = pair.moves_since(0).len() - moves_before;
    let havips = pair.dep.cloud.havips.len();
    let report = format!(
        "rolling upgrade: {ok}/{} TCP sessions kept (first failure {first_failure:?}); \
         {moves} HAVIP moves for {havips} HAVIPs; {second}: {:?}; {first}: {:?}",
        results.len(),
        transitions(&pair, &second),
        transitions(&pair, &first),
    );
    eprintln!("{report}");
    assert_eq!(ok, results.len(), "{report}\n{}", logs(&pair));
    // The planned handover moved each HAVIP once, and nothing else did.
    assert_eq!(moves, havips, "{report}\n{}", logs(&pair));
    // The new runs: the upgraded passive came up passive and took over
    // once; the other came up passive and stayed.
    let second_moves = transitions(&pair, &second);
    assert_eq!(
        second_moves
            .iter()
            .filter(|t| t.ends_with(">active"))
            .count(),
        1,
        "{report}"
    );
    assert!(
        !second_moves.iter().any(|t| t.starts_with("active>")),
        "{report}"
    );
    assert!(
        !transitions(&pair, &first)
            .iter()
            .any(|t| t.ends_with(">active")),
        "{report}"
    );
    // The version changes were negotiated, not refused: nothing the
    // receivers could not read beyond the first few of each restart.
    for n in [&first, &second] {
        let st = pair.status(n).unwrap();
        let bad = st.dropped.get("bad_version").copied().unwrap_or(0);
        eprintln!("{n}: bad_version drops {bad}");
        assert!(bad < 20, "{n}: {bad} refused versions\n{st}");
    }
}

fn apply(pair: &Pair, node: &str, file: &Path) -> std::process::Output {
    Command::new(hafw())
        .args(["config", "apply"])
        .arg(file)
        .arg("--control")
        .arg(pair.control(node))
        .output()
        .expect("run hafw")
}

#[test]
fn another_policy_schema_pauses_config_sync_while_ha_and_sessions_go_on() {
    if !ns_tests_enabled() {
        return;
    }
    let (mut pair, file) = start("upschema");
    let active = pair.wait_settled(SETTLE).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    pair.wait_ready(SETTLE).unwrap();
    pair.restart_with_env(&passive, &[("HAFW_TEST_POLICY_SCHEMA", "2")])
        .unwrap();
    for n in [&active, &passive] {
        let st = wait_status(&pair, n, "config sync paused", |s| {
            s.versions.config_sync_paused
                && s.alarms.iter().any(|a| a.starts_with("config sync paused"))
        });
        eprintln!("{n}:\n{st}");
        assert!(st.to_string().contains("CONFIG SYNC PAUSED"), "{st}");
    }
    // HA goes on: the passive follows the active, and session sync fills it.
    let st = wait_status(&pair, &passive, "passive with the peer alive", |s| {
        s.state == "passive" && s.peer.as_ref().is_some_and(|p| p.alive)
    });
    assert_eq!(st.versions.peer_policy_schema, Some(1), "{st}");
    let (inbound, outbound) = open_sessions(&pair);
    wait_status(&pair, &passive, "sessions synced", |s| {
        s.session_sync
            .as_ref()
            .is_some_and(|ss| ss.connected && ss.sessions >= 50)
    });
    // Config sync does not: a policy applied on the active stays there.
    let text = std::fs::read_to_string(file.path()).unwrap();
    let v1 = file.path().with_file_name("v1.toml");
    std::fs::write(
        &v1,
        text.replace("name = \"app-in\"", "name = \"app-in-v1\""),
    )
    .unwrap();
    let out = apply(&pair, &active, &v1);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pair.status(&active).map(|s| s.config.version), Some(1));
    assert_eq!(
        pair.status(&passive).map(|s| s.config.version),
        Some(0),
        "a policy crossed the schemas\n{}",
        logs(&pair)
    );
    // And the pause is what held it: back on one schema, it arrives.
    pair.restart_with_env(&passive, &[("HAFW_TEST_POLICY_SCHEMA", "1")])
        .unwrap();
    wait_status(&pair, &passive, "the policy after the pause", |s| {
        s.config.version == 1 && !s.versions.config_sync_paused
    });
    wait_status(&pair, &active, "no pause", |s| {
        !s.versions.config_sync_paused
    });
    let results: Vec<_> = inbound
        .finish()
        .into_iter()
        .chain(outbound.finish())
        .collect();
    let ok = results.iter().filter(|r| r.failure.is_none()).count();
    assert_eq!(
        ok,
        results.len(),
        "sessions lost while paused\n{}",
        logs(&pair)
    );
    // The active ran throughout: its log has the pause and the resume.
    let log = pair.daemon_log(&active);
    assert!(
        log.contains("config sync paused") && log.contains("config sync resumed"),
        "no log line of the pause\n{}",
        logs(&pair)
    );
}

/// The binary of the release before negotiation (protocol 2), for the
/// upgrade from it; built from the commit before this protocol change,
/// e.g. `git worktree add /tmp/prev <commit> && cargo build -p hafw`.
const PREVIOUS: &str = "HAFW_TEST_PREVIOUS_RELEASE";

#[test]
fn an_upgrade_from_the_release_before_negotiation_keeps_every_session() {
    if !ns_tests_enabled() {
        return;
    }
    let Some(previous) = std::env::var_os(PREVIOUS) else {
        eprintln!("skipped: set {PREVIOUS} to the previous release's hafw binary");
        return;
    };
    let previous = std::path::PathBuf::from(previous);
    assert!(
        previous.is_file(),
        "{PREVIOUS}={}: no such file",
        previous.display()
    );
    let (mut pair, _file) = start("upprev");
    let first = pair.wait_settled(SETTLE).unwrap();
    let second = pair.peer_of(&first).unwrap();
    // The pair as it was: both on the previous release.
    pair.restart_with(&second, Some(&previous), &[]).unwrap();
    pair.wait_ready(SETTLE).unwrap();
    pair.restart_with(&first, Some(&previous), &[]).unwrap();
    let active = pair.wait_settled(SETTLE).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    pair.wait_ready(SETTLE).unwrap();
    let (inbound, outbound) = open_sessions(&pair);
    let moves_before = pair.moves_since(0).len();

    // 1. The passive on this release: it speaks 2 to the old active.
    pair.restart_with(&passive, Some(Path::new(hafw())), &[])
        .unwrap();
    let st = wait_status(&pair, &passive, "passive, speaking 2", |s| {
        let v = &s.versions;
        s.state == "passive"
            && v.speaking == 2
            && v.peer_protocol_max == Some(2)
            && v.peer_software.is_none()
            && v.peer_policy_schema == Some(1)
            && !v.config_sync_paused
    });
    eprintln!("this release beside the previous one, {passive}:\n{st}");
    pair.wait_ready(SETTLE).unwrap();
    let old = pair.status(&active).unwrap();
    eprintln!(
        "{active} (previous release) refused {} envelopes of a version it does not read",
        old.dropped.get("bad_version").copied().unwrap_or(0)
    );
    assert_eq!(old.state, "active", "{old}");
    assert!(old.peer.as_ref().is_some_and(|p| p.alive), "{old}");

    // 2. Hand over to it; 3. the other on this release: both speak 3.
    pair.inject(Fault::Suspend, &active).unwrap();
    assert_eq!(
        pair.wait_settled(SETTLE).unwrap(),
        passive,
        "{}",
        logs(&pair)
    );
    pair.restart_with(&active, Some(Path::new(hafw())), &[])
        .unwrap();
    for n in [&active, &passive] {
        wait_status(&pair, n, "protocol 3 each way", |s| speaks(s, 3, 3, 3));
    }
    pair.wait_ready(SETTLE).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let results: Vec<_> = inbound
        .finish()
        .into_iter()
        .chain(outbound.finish())
        .collect();
    let ok = results.iter().filter(|r| r.failure.is_none()).count();
    let moves = pair.moves_since(0).len() - moves_before;
    let havips = pair.dep.cloud.havips.len();
    let report = format!(
        "upgrade from protocol 2: {ok}/{} TCP sessions kept; {moves} HAVIP moves for {havips} \
         HAVIPs; {passive}: {:?}; {active}: {:?}",
        results.len(),
        transitions(&pair, &passive),
        transitions(&pair, &active),
    );
    eprintln!("{report}");
    assert_eq!(ok, results.len(), "{report}\n{}", logs(&pair));
    assert_eq!(moves, havips, "{report}\n{}", logs(&pair));
}
