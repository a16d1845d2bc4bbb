//! The audit log in a lab pair: an apply on the active, a suspend and a
//! resume of it, then an apply that changes `[policy.ha]` on the new
//! active, refused. Each node's JSON-lines audit file holds each of these
//! in order, who did it (uid 0: the tests run as root), the versions and
//! hashes, the result, and the HA transitions they caused; the peer's
//! policy is recorded as taken from the peer. A SIGTERM of the active
//! leaves its handover as its last record.
//!
//! No journald runs in the lab: each daemon's journal entries go to a
//! datagram socket this test binds (`--audit-journal`, a test hook), and
//! they must be the file's records, in the same order.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hafw_lab::pair::{Fault, Pair};
use serde_json::Value;

fn seed() -> String {
    std::fs::read_to_string(example("alicloud-havip.toml")).unwrap()
}

/// The seed with one more rule.
fn with_rule(name: &str) -> String {
    let at = "[[policy.rule]]\nname = \"servers-out\"";
    let text = seed();
    assert!(text.contains(at), "the seed changed: update this test");
    let rule = format!(
        "[[policy.rule]]\nname = \"{name}\"\nfrom = \"trust\"\nto = \"untrust\"\n\
         destination = [\"198.51.100.30\"]\nprotocol = \"tcp\"\nports = [9]\naction = \"drop\"\n\n"
    );
    text.replacen(at, &format!("{rule}{at}"), 1)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn hafw_cmd(args: &[&str], control: &Path) -> std::process::Output {
    Command::new(hafw())
        .args(args)
        .arg("--control")
        .arg(control)
        .output()
        .expect("run hafw")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Polls `f` every 10 ms until it holds or `limit` passes.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn event(r: &Value) -> &str {
    r["event"].as_str().unwrap_or("")
}

fn what(r: &Value) -> &str {
    r["what"].as_str().unwrap_or("")
}

/// Where in `rs` the first record after `from` matching `f` is.
fn find(rs: &[Value], from: usize, f: impl Fn(&Value) -> bool) -> Option<usize> {
    rs.iter().skip(from).position(f).map(|i| i + from)
}

fn dump(rs: &[Value]) -> String {
    rs.iter().map(|r| format!("{r}\n")).collect()
}

/// A directory of this test's own, removed when dropped (panic or not).
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every datagram waiting on `sock`, as journal fields (`KEY=value`
/// lines; a value with a newline comes as `KEY\n`, its length in 8 bytes
/// little endian, the value, `\n`).
fn journal_entries(sock: &UnixDatagram) -> Vec<Vec<(String, String)>> {
    sock.set_nonblocking(true).unwrap();
    let mut out = vec![];
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        let mut fields = vec![];
        let mut rest = &buf[..n];
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(&rest[..nl]).into_owned();
            rest = &rest[nl + 1..];
            match line.split_once('=') {
                Some((k, v)) => fields.push((k.to_string(), v.to_string())),
                None => {
                    let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                    let v = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
                    fields.push((line, v));
                    rest = &rest[8 + len + 1..];
                }
            }
        }
        out.push(fields);
    }
    out
}

fn field<'a>(entry: &'a [(String, String)], key: &str) -> &'a str {
    entry
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

fn ruleset(pair: &Pair, node: &str) -> String {
    let ns = format!("hafw-{}.{node}", pair.lab);
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "list", "table", "inet", "hafw"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn applies_suspends_resumes_refusals_and_transitions_are_audited_in_order() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("aud");
    let jdir = Dir(std::env::temp_dir().join(format!("hafw-test-journal-{name}")));
    let _ = std::fs::remove_dir_all(&jdir.0);
    std::fs::create_dir_all(&jdir.0).unwrap();
    let journal = |node: &str| jdir.0.join(format!("{node}.journal"));
    let journals: Vec<(String, UnixDatagram)> = ["fw-a", "fw-b"]
        .iter()
        .map(|n| (n.to_string(), UnixDatagram::bind(journal(n)).unwrap()))
        .collect();
    let pattern = jdir.0.join("{node}.journal");
    let mut pair = Pair::start_opts(
        &example("alicloud-havip.toml"),
        &name,
        Path::new(hafw()),
        "fast",
        false,
        &["--audit-journal", pattern.to_str().unwrap()],
    )
    .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let a = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let b = pair.peer_of(&a).unwrap();
    let (file_a, file_b) = (pair.audit_log(&a), pair.audit_log(&b));
    let dir = hafw_lab::lab::state_dir(&pair.lab);

    // The file exists from the start, readable by its owner only.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file_a).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", file_a.display());

    // 1. An apply on the active; the passive takes it from the peer.
    let v1 = write(&dir, "v1.toml", &with_rule("audit-drop"));
    let applied = hafw_cmd(
        &["config", "apply", v1.to_str().unwrap()],
        &pair.control(&a),
    );
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(
        within(Duration::from_secs(5), || pair
            .status(&b)
            .is_some_and(|s| s.config.version == 1)),
        "{}",
        pair.status_text(&b)
    );
    let hash = pair.status(&a).unwrap().config.hash[..8].to_string();

    // 2. Suspend the active: the peer takes over. 3. Resume: it comes back
    // as the passive (no preemption in the seed).
    let s = hafw_cmd(&["suspend"], &pair.control(&a));
    assert!(s.status.success(), "{}", text(&s));
    assert!(
        within(Duration::from_secs(10), || pair.state(&b).as_deref()
            == Some("active")),
        "{}",
        pair.status_text(&b)
    );
    // The demotion is recorded once the executor has carried it out, a
    // little after the core's state changed: resumed only then, so the
    // order in the file is the order of the operations.
    assert!(
        within(Duration::from_secs(5), || records(&file_a)
            .iter()
            .any(|r| what(r).starts_with("become suspended"))),
        "{}",
        dump(&records(&file_a))
    );
    let r = hafw_cmd(&["resume"], &pair.control(&a));
    assert!(r.status.success(), "{}", text(&r));
    assert!(
        within(Duration::from_secs(10), || pair.state(&a).as_deref()
            == Some("passive")),
        "{}",
        pair.status_text(&a)
    );

    // 4. On the new active, a policy that moves the HA port: refused,
    // naming the field and the restart; nothing changes on either node.
    let moved = with_rule("audit-other").replace(
        "[policy.ha]\nprofile = \"default\"\n",
        "[policy.ha]\nprofile = \"default\"\nport = 4799\n",
    );
    assert!(
        moved.contains("port = 4799"),
        "the seed changed: update this test"
    );
    let v2 = write(&dir, "v2.toml", &moved);
    let refused = hafw_cmd(
        &["config", "apply", v2.to_str().unwrap()],
        &pair.control(&b),
    );
    let said = text(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("policy.ha.port")
            && said.contains("restart the nodes one at a time, the passive first"),
        "{said}"
    );
    for n in [&a, &b] {
        assert_eq!(pair.status(n).map(|s| s.config.version), Some(1));
        let rs = ruleset(&pair, n);
        assert!(
            rs.contains("audit-drop") && !rs.contains("audit-other"),
            "{rs}"
        );
        assert!(!rs.contains("4799"), "{rs}");
    }

    // The audit files. A's: the apply, the suspend with its transition,
    // the resume with its own, in that order, all by uid 0.
    let done = |f: &Path, n: usize| within(Duration::from_secs(3), || records(f).len() >= n);
    assert!(done(&file_a, 5), "{}", dump(&records(&file_a)));
    let ra = records(&file_a);
    for r in &ra {
        assert_eq!(r["node"], a.as_str(), "{r}");
        let t = r["time"].as_str().unwrap_or("");
        assert!(
            t.len() == 24 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{r}"
        );
    }
    let all = dump(&ra);
    let apply = find(&ra, 0, |r| event(r) == "config-apply").expect(&all);
    let rec = &ra[apply];
    assert_eq!(
        (rec["who"].as_str(), rec["uid"].as_u64()),
        (Some("0"), Some(0)),
        "{rec}"
    );
    assert_eq!(rec["result"], "ok", "{rec}");
    let w = what(rec);
    assert!(
        w.contains(&format!("version 1 hash {hash}"))
            && w.contains("was version 0")
            && w.contains("rules added: audit-drop")
            && w.contains(" lines"),
        "{rec}"
    );
    let suspend = find(&ra, apply, |r| event(r) == "suspend").expect(&all);
    let resume = find(&ra, suspend, |r| event(r) == "resume").expect(&all);
    for i in [suspend, resume] {
        assert_eq!(ra[i]["uid"], 0, "{}", ra[i]);
        assert_eq!(ra[i]["result"], "ok", "{}", ra[i]);
    }
    let suspended = find(&ra, apply, |r| {
        event(r) == "ha-transition" && what(r).starts_with("become suspended")
    })
    .expect(&all);
    let passive = find(&ra, suspended, |r| {
        event(r) == "ha-transition" && what(r).starts_with("become passive")
    })
    .expect(&all);
    assert!(suspended < resume && passive > suspend, "{all}");
    assert_eq!(ra[suspended]["who"], "ha");
    // Its cause is in the record.
    assert!(what(&ra[suspended]).contains(": "), "{}", ra[suspended]);

    // B's: the policy from the peer, its promotion, the refused apply with
    // the error, by uid 0, after them.
    assert!(done(&file_b, 3), "{}", dump(&records(&file_b)));
    let rb = records(&file_b);
    let all = dump(&rb);
    let from_peer = find(&rb, 0, |r| event(r) == "config-from-peer").expect(&all);
    assert_eq!(rb[from_peer]["who"], "peer");
    assert_eq!(rb[from_peer]["result"], "ok");
    assert!(
        what(&rb[from_peer]).contains(&format!("version 1 hash {hash}")),
        "{all}"
    );
    let promoted = find(&rb, from_peer, |r| {
        event(r) == "ha-transition" && what(r).starts_with("become active")
    })
    .expect(&all);
    let refusal = find(&rb, promoted, |r| event(r) == "config-apply").expect(&all);
    let rec = &rb[refusal];
    assert_eq!(rec["uid"], 0, "{rec}");
    assert_eq!(rec["result"], "error", "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap_or("")
            .contains("policy.ha.port")
            && what(rec).contains("version 1")
            && what(rec).contains("unchanged")
            && what(rec).contains("refused: hash ")
            && what(rec).contains("rules added: audit-other"),
        "{rec}"
    );
    // The journal has the same records, in the same order, as fields.
    for (node, records) in [(&a, &ra), (&b, &rb)] {
        let sock = &journals.iter().find(|(n, _)| n == node).unwrap().1;
        // The writer sends to the journal just after the file: wait for
        // the last one.
        let mut entries = journal_entries(sock);
        within(Duration::from_secs(2), || {
            entries.extend(journal_entries(sock));
            entries.len() >= records.len()
        });
        let events: Vec<&str> = entries.iter().map(|e| field(e, "HAFW_EVENT")).collect();
        let in_file: Vec<&str> = records.iter().map(event).collect();
        assert_eq!(events, in_file, "{node}: {entries:?}");
        for (e, r) in entries.iter().zip(records.iter()) {
            assert_eq!(field(e, "HAFW_NODE"), node.as_str());
            assert_eq!(field(e, "HAFW_WHO"), r["who"].as_str().unwrap());
            assert_eq!(field(e, "HAFW_WHAT"), what(r));
            assert_eq!(field(e, "SYSLOG_IDENTIFIER"), "hafw");
            let ok = r["result"] == "ok";
            assert_eq!(field(e, "HAFW_RESULT").starts_with("ok"), ok, "{e:?}");
            assert_eq!(field(e, "PRIORITY"), if ok { "5" } else { "4" });
            assert!(field(e, "MESSAGE").starts_with("audit: "), "{e:?}");
        }
    }
    eprintln!("{}:\n{}", a, dump(&ra));
    eprintln!("{}:\n{}", b, all);

    // A service stop of the active hands over: its demotion is its last
    // record, written before the process ends.
    let n = rb.len();
    pair.inject(Fault::Term, &b).unwrap();
    let handed_over = within(Duration::from_secs(15), || {
        records(&file_b)
            .iter()
            .skip(n)
            .any(|r| event(r) == "ha-transition" && what(r).starts_with("become suspended"))
    });
    assert!(
        handed_over,
        "{}\n{}",
        dump(&records(&file_b)),
        pair.daemon_log(&b)
    );
    pair.stop().unwrap();
}
