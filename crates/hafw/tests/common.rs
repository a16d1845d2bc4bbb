//! Shared helpers for namespace tests: a lab that is removed even when the
//! test panics, and small probes run inside namespaces.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub fn hafw() -> &'static str {
    env!("CARGO_BIN_EXE_hafw")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
}

/// A private copy of an example for a node to run from: `hafw run` writes
/// its version file and history beside its configuration, which must
/// never be the repository's example (tests would share, and leave, them).
pub fn example_copy(name: &str) -> TempFile {
    let text = std::fs::read_to_string(example(name))
        .unwrap_or_else(|e| panic!("read example {name}: {e}"));
    TempFile::new("example", name, &text)
}

/// Namespace tests need root and the kernel; with HAFW_SKIP_NS_TESTS=1 they
/// say so and pass, elsewhere they fail loudly rather than pass unseen.
pub fn ns_tests_enabled() -> bool {
    if std::env::var("HAFW_SKIP_NS_TESTS").as_deref() == Ok("1") {
        eprintln!("skipped: HAFW_SKIP_NS_TESTS=1");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "namespace tests need root (or set HAFW_SKIP_NS_TESTS=1)"
    );
    true
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique lab name for this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        std::process::id() % 10000,
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// A file of one test's own, removed when dropped (panic or not). Its name
/// carries the test's label, this process and a per-process counter, so
/// tests running in parallel (threads of one binary, or several binaries)
/// never write each other's files.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(label: &str, file: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "hafw-{label}-{}-{}-{file}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        TempFile(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        // What a node wrote beside it: `<file>.<node>.version`, `.history/`.
        if let (Some(dir), Some(name)) = (self.0.parent(), self.0.file_name()) {
            let prefix = format!("{}.", name.to_string_lossy());
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// A path for a node's audit log (`--audit-log`), removed when dropped:
/// without it a node writes the host's /var/log/hafw.
pub fn audit_log(label: &str) -> TempFile {
    let file = TempFile::new(label, "audit.jsonl", "");
    let _ = std::fs::remove_file(file.path());
    file
}

/// What the session-keeping lab tests add to the seed: `app`, an echo
/// host reached through a DNAT of the external HAVIP's port 7777 (the
/// inbound sessions).
pub const APP_DNAT: &str = r#"
[[policy.rule]]
name = "app-in"
from = "untrust"
to = "trust"
destination = ["10.0.10.11"]
protocol = "tcp"
ports = [7777]
action = "accept"

[[policy.nat.dnat]]
name = "app"
match_address = "10.0.1.100"
protocol = "tcp"
port = 7777
to_address = "10.0.10.11"

[[lab.host]]
name = "app"
kind = "echo"
vswitch = "servers"
ip = "10.0.10.11"
port = 7777
"#;

/// `seed` (the seed's text, perhaps edited) plus [`APP_DNAT`], in a file
/// of the test's own (`label` names it).
pub fn with_app(label: &str, seed: &str) -> TempFile {
    TempFile::new(label, "deployment.toml", &format!("{seed}\n{APP_DNAT}"))
}

pub fn run(args: &[&str]) -> Output {
    Command::new(hafw()).args(args).output().expect("run hafw")
}

/// A lab brought up for one test and torn down on drop, panic or not.
pub struct Lab {
    pub name: String,
    pub up: Output,
}

impl Lab {
    pub fn up(example_file: &str, prefix: &str) -> Lab {
        let name = unique(prefix);
        let file = example(example_file);
        let up = run(&["lab", "up", file.to_str().unwrap(), "--name", &name]);
        let lab = Lab { name, up };
        assert!(
            lab.up.status.success(),
            "lab up failed: {}{}",
            String::from_utf8_lossy(&lab.up.stdout),
            String::from_utf8_lossy(&lab.up.stderr)
        );
        lab
    }
    pub fn ns(&self, what: &str) -> String {
        format!("hafw-{}.{what}", self.name)
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(format!("/run/hafw-lab/{}/havip.log", self.name))
            .unwrap_or_default()
    }
    /// Waits until the HAVIP log has a line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
    pub fn sh(&self, ns: &str, cmd: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), "sh", "-c", cmd])
            .output()
            .expect("ip netns exec");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = run(&["lab", "down", "--name", &self.name]);
    }
}

pub fn lab_namespaces(name: &str) -> Vec<String> {
    hafw_kernel::netns::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(&format!("hafw-{name}.")))
        .collect()
}

/// Binds a UDP socket inside `ns`.
pub fn udp_in(ns: &str, bind: &str) -> UdpSocket {
    let bind = bind.to_string();
    hafw_kernel::in_netns(Some(ns), move || UdpSocket::bind(bind.as_str()))
        .expect("enter namespace")
        .expect("bind")
}

/// Sends `msg` from `sock` to `to` and returns the reply text, if any.
pub fn ask(sock: &UdpSocket, to: &str, msg: &str, timeout: Duration) -> Option<String> {
    sock.set_read_timeout(Some(timeout)).ok()?;
    let to: SocketAddr = to.parse().ok()?;
    sock.send_to(msg.as_bytes(), to).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}

/// A UDP responder in a thread: answers each datagram with the source
/// address it saw, `count` times at most.
pub fn respond_with_source(sock: UdpSocket, count: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut buf = [0u8; 1500];
        for _ in 0..count {
            let Ok((_, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            let _ = sock.send_to(format!("seen {from}").as_bytes(), from);
        }
    })
}

/// Packets counted by the named counter `name` of `table inet hafw` in
/// namespace `ns`.
pub fn nft_counter(ns: &str, name: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "counter", "inet", "hafw", name,
        ])
        .output()
        .expect("run nft");
    assert!(out.status.success(), "no counter {name} in {ns}: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft -j output");
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("no packets in {v}"))
}

/// Polls `f` until it returns `Some`, or fails with `what` and `why()`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    why: impl Fn() -> String,
) -> T {
    let end = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < end,
            "{what} not within {timeout:?}:\n{}",
            why()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of the first line of a metrics scrape starting with `series`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
