//! A standalone fw-a in a lab for the ruleset's namespace tests, and the
//! probes they share: commands in a namespace, the table's named counters.
#![allow(dead_code)]

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{hafw, Lab};

/// `hafw run --standalone` of fw-a from `config`; killed on drop.
pub struct Node {
    child: Child,
    log: std::path::PathBuf,
}

impl Node {
    /// Starts fw-a and waits until the VPC moved the external HAVIP to it
    /// (the ruleset is in place by then).
    pub fn start(lab: &Lab, config: &Path) -> Node {
        let log = std::env::temp_dir().join(format!("hafw-rs-{}-fw-a.log", lab.name));
        let out = File::create(&log).unwrap();
        let child = hafw_kernel::command(&lab.ns("fw-a"), hafw())
            .unwrap()
            .args(["run", "--config"])
            .arg(config)
            .args(["--node", "fw-a", "--standalone", "--audit-log"])
            .arg(log.with_extension("audit.jsonl"))
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        let node = Node { child, log };
        assert!(
            lab.wait_log("move external - fw-a-untrust", Duration::from_secs(10)),
            "fw-a did not come up:\n{}",
            node.log()
        );
        node
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(self.log.with_extension("audit.jsonl"));
        let _ = std::fs::remove_file(self.log.with_extension("audit.jsonl.1"));
    }
}

/// Runs `ip ARGS` in namespace `ns`, which must succeed.
pub fn ip(ns: &str, args: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ip"])
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sh -c CMD` in namespace `ns`: whether it succeeded, and its output.
pub fn sh(ns: &str, cmd: &str) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", cmd])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Packets counted by a named counter of fw-a's table.
pub fn counted(lab: &Lab, name: &str) -> u64 {
    crate::common::nft_counter(&lab.ns("fw-a"), name)
}

/// A kernel statistic of namespace `ns` from /proc/net/netstat, e.g.
/// `TcpExt` `IPReversePathFilter`.
pub fn netstat(ns: &str, group: &str, field: &str) -> u64 {
    let (_, out) = sh(ns, "cat /proc/net/netstat");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with(&format!("{group}:")))
        .collect();
    let [names, values] = lines[..] else {
        panic!("no {group} in {out}")
    };
    let at = names
        .split_whitespace()
        .position(|n| n == field)
        .unwrap_or_else(|| panic!("no {field} in {names}"));
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}
