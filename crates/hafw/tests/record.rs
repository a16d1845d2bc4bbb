//! Namespace test of `hafw run --record` and `hafw replay`: a failover
//! recorded in the lab replays, on a fresh core, to the same actions at the
//! same recorded times as the daemons took.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use hafw_lab::pair::{Fault, Pair};

const SETTLE: Duration = Duration::from_secs(15);

/// The `# action <ns> <text>` lines of a recording, as the replay prints
/// them: `<seconds, 6 decimals> s  <text>`.
fn recorded_actions(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# action "))
        .filter_map(|l| {
            let (ns, what) = l.split_once(' ')?;
            let t = Duration::from_nanos(ns.parse().ok()?).as_secs_f64();
            Some(format!("{t:>12.6} s  {what}"))
        })
        .collect()
}

/// Replays `file` with `hafw replay` and checks it printed exactly the
/// actions the recording node wrote, and said so.
fn replays_to_the_same_actions(file: &Path, must: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("read the recording");
    assert!(
        text.starts_with("hafw-ha record 1\nconfig node_id="),
        "{text:.300}"
    );
    let recorded = recorded_actions(&text);
    for m in must {
        assert!(
            recorded.iter().any(|a| a.contains(m)),
            "{}: no recorded action with {m:?}: {recorded:#?}",
            file.display()
        );
    }
    let out = run(&["replay", file.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hafw replay {}: {stdout}{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<String> = stdout
        .lines()
        .filter(|l| l.contains(" s  "))
        .map(str::to_owned)
        .collect();
    assert_eq!(replayed, recorded, "{}", file.display());
    assert!(stdout.contains("the same as recorded"), "{stdout}");
    recorded
}

struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[test]
fn a_recorded_failover_replays_to_the_same_actions() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("rec");
    let pattern = std::env::temp_dir().join(format!("hafw-record-{name}-{{node}}.rec"));
    let pattern = pattern.to_str().expect("utf-8 temp dir").to_owned();
    let file = |node: &str| PathBuf::from(pattern.replace("{node}", node));
    let _files = Files(vec![file("fw-a"), file("fw-b")]);
    let mut pair = Pair::start_opts(
        &example("alicloud-havip.toml"),
        &name,
        Path::new(hafw()),
        "fast",
        false,
        &["--record", &pattern],
    )
    .unwrap_or_else(|e| panic!("start the pair in lab {name}: {e}"));
    let active = pair.wait_settled(SETTLE).expect("settled");
    let standby = pair.peer_of(&active).expect("a peer");

    let at = pair.inject(Fault::Kill, &active).expect("kill -9");
    pair.wait_moved_to(&standby, at, SETTLE)
        .unwrap_or_else(|e| panic!("failover: {e}\n{}", pair.daemon_log(&standby)));
    // Stopped as an operator would: SIGTERM suspends the survivor (no peer
    // to hand over to), which is one more recorded input and action.
    pair.inject(Fault::Term, &standby).expect("SIGTERM");
    let end = Instant::now() + SETTLE;
    while !std::fs::read_to_string(file(&standby))
        .unwrap_or_default()
        .contains("become suspended")
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = pair.daemon_log(&standby);
    pair.stop().expect("lab down");

    let survivor = replays_to_the_same_actions(
        &file(&standby),
        &[
            "become passive",
            "become active",
            "peer lost",
            "become suspended",
        ],
    );
    // The replay is checked against the daemon's own log too: every
    // promotion it logged is one the replay returned.
    let logged = log
        .lines()
        .filter_map(|l| l.split_once("HA: become ").map(|(_, r)| r))
        // The text log puts the node field after the message.
        .map(|r| r.split(" node=").next().unwrap_or(r).trim_end());
    let mut count = 0;
    for line in logged {
        count += 1;
        assert!(
            survivor
                .iter()
                .any(|a| a.ends_with(&format!("become {line}"))),
            "logged `become {line}` is not in the replay: {survivor:#?}"
        );
    }
    assert!(
        count >= 3,
        "transitions missing from the daemon log:\n{log}"
    );
    // The killed node's recording ends mid-history; what it holds replays too.
    replays_to_the_same_actions(&file(&active), &["become active"]);
}
