//! HA event hooks (`[policy.hooks]`): a command and an HTTP POST webhook
//! run on each HA event (to active, to passive, suspended, non-functional,
//! peer lost, peer back).
//!
//! Never on the failover path: the executor calls [`Hooks::emit`] after a
//! transition's phases are done, and `emit` only puts the event in a
//! bounded queue (a full queue drops it, counted as `dropped`). One runner
//! thread, `hafw-hooks`, takes the events in order and runs each hook to
//! its end (or its timeout) before the next, so a hook sees the events in
//! the order they happened (keepalived runs its notify scripts
//! concurrently and users ask for this order: keepalived #1213).
//!
//! A command runs without a shell, in a process group of its own, with
//! only `PATH` and the `HAFW_*` variables in its environment and the
//! event's JSON on stdin; at its timeout the whole group is killed, and so
//! is what the command left running when it exits (a hook that must leave
//! a process behind starts it with `setsid`). Its stdout and stderr are
//! kept up to [`OUTPUT_MAX`] bytes each, for the log line of a failure.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hafw_model::hooks::Webhook;

use super::metrics::Metrics;
use crate::log::Log;

/// Events waiting for the runner; more are dropped and counted. A flapping
/// pair makes a few events a second at most; 64 is minutes of a stuck
/// hook's backlog.
pub const QUEUE: usize = 64;

/// What is kept of a command's stdout, and of its stderr.
pub const OUTPUT_MAX: usize = 4096;

/// A cause longer than this is cut in `HAFW_CAUSE` (the JSON keeps it whole).
const CAUSE_ENV_MAX: usize = 1024;

/// The `result` label values of `hafw_hook_runs_total`.
pub const RESULTS: [&str; 4] = ["ok", "failed", "timeout", "dropped"];

/// The `PATH` a hook command gets.
const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What happened, as `HAFW_EVENT` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Active,
    Passive,
    Suspended,
    NonFunctional,
    PeerLost,
    PeerBack,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Active => "active",
            EventKind::Passive => "passive",
            EventKind::Suspended => "suspended",
            EventKind::NonFunctional => "non-functional",
            EventKind::PeerLost => "peer-lost",
            EventKind::PeerBack => "peer-back",
        }
    }
}

/// One event, as the hooks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The node's HA state after the event.
    pub state: String,
    /// Its state before (for a peer event, the same as `state`).
    pub previous: String,
    pub cause: String,
    /// The term of this node's latest promotion (0 before any).
    pub term: u64,
}

/// An event with its number and time, queued for the runner.
#[derive(Debug, Clone)]
struct Job {
    /// From 1 in each run of the daemon; a dropped event leaves a gap.
    seq: u64,
    node: String,
    unix_ms: u64,
    event: Event,
}

impl Job {
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut cause: String = self.event.cause.replace('\0', " ");
        if cause.len() > CAUSE_ENV_MAX {
            let mut cut = CAUSE_ENV_MAX;
            while !cause.is_char_boundary(cut) {
                cut -= 1;
            }
            cause.truncate(cut);
        }
        vec![
            ("HAFW_EVENT", self.event.kind.as_str().to_string()),
            ("HAFW_NODE", self.node.clone()),
            ("HAFW_STATE", self.event.state.clone()),
            ("HAFW_PREVIOUS", self.event.previous.clone()),
            ("HAFW_CAUSE", cause),
            ("HAFW_TERM", self.event.term.to_string()),
            ("HAFW_SEQ", self.seq.to_string()),
        ]
    }

    /// The JSON body of the webhook and the command's stdin.
    fn json(&self) -> String {
        serde_json::json!({
            "seq": self.seq,
            "time": super::audit::rfc3339(self.unix_ms),
            "node": self.node,
            "event": self.event.kind.as_str(),
            "state": self.event.state,
            "previous": self.event.previous,
            "cause": self.event.cause,
            "term": self.event.term,
        })
        .to_string()
    }
}

/// Runs per result, for `hafw_hook_runs_total` and the tests.
#[derive(Debug, Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    timeout: AtomicU64,
    dropped: AtomicU64,
}

/// The handle the executor emits events through; cheap to clone.
#[derive(Clone)]
pub struct Hooks {
    node: String,
    tx: Option<SyncSender<Job>>,
    seq: Arc<AtomicU64>,
    counts: Arc<Counts>,
    metrics: Option<Metrics>,
}

impl Hooks {
    /// Checks the hooks of `spec` can run on this machine (the command is
    /// an executable file) and starts the runner; nothing to run: a handle
    /// that emits nothing. The error names the field and the fix.
    pub fn start(
        node: &str,
        spec: &hafw_model::hooks::Hooks,
        metrics: Option<Metrics>,
        log: &Log,
    ) -> Result<Hooks, String> {
        if !spec.any() {
            return Ok(Hooks::off(node));
        }
        if let Some(argv) = &spec.on_transition {
            let Some(cmd) = argv.first() else {
                return Err(
                    "policy.hooks.on_transition is empty: give the command's absolute path first"
                        .into(),
                );
            };
            // A notification script must not keep a firewall from running
            // (config sync gives both nodes the same path): the node starts,
            // says so, and each run fails and is counted until it is fixed.
            if let Err(e) = executable(Path::new(cmd)) {
                log.warn(format!(
                    "policy.hooks.on_transition: {cmd} {e}; install it on this node or remove on_transition (every run fails until then)"
                ));
            }
        }
        let webhook =
            match &spec.webhook {
                Some(url) => Some(Webhook::parse(url).map_err(|e| {
                    format!("policy.hooks.webhook: {e}; use http://HOST[:PORT]/PATH")
                })?),
                None => None,
            };
        let runner = Runner {
            command: spec.on_transition.clone(),
            webhook,
            timeout: spec.timeout(),
            log: log.clone(),
        };
        log.info(format!(
            "hooks: {}{} on HA events, each within {} ms",
            spec.on_transition
                .as_ref()
                .and_then(|a| a.first())
                .map(|c| format!("command {c}"))
                .unwrap_or_default(),
            spec.webhook
                .as_ref()
                .map(|w| format!(" webhook {w}"))
                .unwrap_or_default(),
            runner.timeout.as_millis()
        ));
        Hooks::start_with(node, runner, QUEUE, metrics)
    }

    fn start_with(
        node: &str,
        runner: Runner,
        queue: usize,
        metrics: Option<Metrics>,
    ) -> Result<Hooks, String> {
        let (tx, rx) = mpsc::sync_channel::<Job>(queue);
        let counts = Arc::new(Counts::default());
        let (c, m) = (counts.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("hafw-hooks".into())
            .spawn(move || runner.serve(rx, &c, m.as_ref()))
            .map_err(|e| format!("cannot start the hook runner thread: {e}"))?;
        Ok(Hooks {
            node: node.to_string(),
            tx: Some(tx),
            seq: Arc::new(AtomicU64::new(0)),
            counts,
            metrics,
        })
    }

    /// A handle that runs nothing.
    pub fn off(node: &str) -> Hooks {
        Hooks {
            node: node.to_string(),
            tx: None,
            seq: Arc::new(AtomicU64::new(0)),
            counts: Arc::new(Counts::default()),
            metrics: None,
        }
    }

    /// Queues `event` for the hooks; never blocks. A full queue drops it
    /// and counts the drop.
    pub fn emit(&self, event: Event) {
        let Some(tx) = &self.tx else {
            return;
        };
        let job = Job {
            seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            node: self.node.clone(),
            unix_ms: unix_ms(),
            event,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(job) {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = &self.metrics {
                m.hook_run("dropped");
            }
        }
    }

    /// Whether anything runs (`policy.hooks` is set).
    pub fn on(&self) -> bool {
        self.tx.is_some()
    }

    /// Runs so far by result, in [`RESULTS`] order (`dropped` counts events).
    pub fn totals(&self) -> [(&'static str, u64); 4] {
        let c = &self.counts;
        [
            ("ok", c.ok.load(Ordering::Relaxed)),
            ("failed", c.failed.load(Ordering::Relaxed)),
            ("timeout", c.timeout.load(Ordering::Relaxed)),
            ("dropped", c.dropped.load(Ordering::Relaxed)),
        ]
    }
}

/// An absolute path to a regular file someone may execute, that only its
/// owner (root, or the user running hafw) can change: hooks run as root.
fn executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a file".into());
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err("is not executable (chmod +x it)".into());
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "is owned by uid {}: whoever that is could change what runs as root (chown root it)",
            meta.uid()
        ));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "has mode {:04o}: group or others may change what runs as root (chmod go-w it)",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed(String),
    Timeout,
}

struct Runner {
    command: Option<Vec<String>>,
    webhook: Option<Webhook>,
    timeout: Duration,
    log: Log,
}

impl Runner {
    fn serve(self, rx: Receiver<Job>, counts: &Counts, metrics: Option<&Metrics>) {
        while let Ok(job) = rx.recv() {
            if let Some(argv) = &self.command {
                let o = run_command(argv, &job, self.timeout);
                self.count("command", &job, o, counts, metrics);
            }
            if let Some(w) = &self.webhook {
                let o = post(w, &job, self.timeout);
                self.count("webhook", &job, o, counts, metrics);
            }
        }
    }

    fn count(&self, what: &str, job: &Job, o: Outcome, counts: &Counts, metrics: Option<&Metrics>) {
        let (counter, result) = match &o {
            Outcome::Ok => (&counts.ok, "ok"),
            Outcome::Failed(_) => (&counts.failed, "failed"),
            Outcome::Timeout => (&counts.timeout, "timeout"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = metrics {
            m.hook_run(result);
        }
        let name = job.event.kind.as_str();
        match o {
            Outcome::Ok => {}
            Outcome::Failed(why) => self.log.warn(format!(
                "hooks: {what} for {name} (seq {}) failed: {why}",
                job.seq
            )),
            Outcome::Timeout => self.log.warn(format!(
                "hooks: {what} for {name} (seq {}) killed at its {} ms timeout",
                job.seq,
                self.timeout.as_millis()
            )),
        }
    }
}

fn run_command(argv: &[String], job: &Job, timeout: Duration) -> Outcome {
    let Some((cmd, args)) = argv.split_first() else {
        return Outcome::Failed("no command".into());
    };
    if let Err(e) = executable(Path::new(cmd)) {
        return Outcome::Failed(format!("{cmd} {e}: not run"));
    }
    let deadline = Instant::now() + timeout;
    let mut c = Command::new(cmd);
    c.args(args)
        .env_clear()
        .env("PATH", HOOK_PATH)
        .envs(job.env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => return Outcome::Failed(format!("cannot start {cmd}: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // From a thread of its own: a command that never reads its input
        // must not hold the runner past its timeout (the kill at the
        // deadline ends the write with EPIPE). EPIPE is fine.
        let json = job.json();
        let _ = std::thread::Builder::new()
            .name("hafw-hook-stdin".into())
            .spawn(move || {
                let _ = stdin.write_all(json.as_bytes());
                let _ = stdin.write_all(b"\n");
            });
    }
    let out = child.stdout.take().map(bounded_reader);
    let err = child.stderr.take().map(bounded_reader);
    let status = wait_until(&mut child, deadline);
    // The group goes with the command: what it left running, and at the
    // timeout everything.
    kill_group(&child);
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.wait();
            return Outcome::Timeout;
        }
    };
    if status.success() {
        return Outcome::Ok;
    }
    let text = |r: Option<Receiver<Vec<u8>>>| {
        r.and_then(|r| r.recv_timeout(Duration::from_millis(200)).ok())
            .map(|b| crate::ops::text::peer_text(&String::from_utf8_lossy(&b)))
            .unwrap_or_default()
    };
    let (out, err) = (text(out), text(err));
    Outcome::Failed(format!(
        "{status}; stdout: {:?}; stderr: {:?}",
        out.trim(),
        err.trim()
    ))
}

/// Polls the child until it exits (its status) or the deadline (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
}

fn kill_group(child: &Child) {
    let Ok(pgid) = i32::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group the
    // child leads (process_group(0) made it its own); no memory is shared.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Reads a pipe to its end on a thread of its own, keeping the first
/// [`OUTPUT_MAX`] bytes (the rest is read and thrown away, so the command
/// never blocks on a full pipe).
fn bounded_reader(mut r: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::sync_channel(1);
    let _ = std::thread::Builder::new()
        .name("hafw-hook-out".into())
        .spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = OUTPUT_MAX.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            let _ = tx.send(kept);
        });
    rx
}

/// POSTs the event's JSON; a 2xx answer is `Ok`. The name is resolved by
/// the system resolver, which the timeout does not bound (give an address
/// to avoid it).
fn post(w: &Webhook, job: &Job, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let addrs: Vec<_> = match (w.host.as_str(), w.port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return Outcome::Failed(format!("cannot resolve {}: {e}", w.host)),
    };
    let Some(addr) = addrs.first() else {
        return Outcome::Failed(format!("{} has no address", w.host));
    };
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        )
    };
    let mut s = match TcpStream::connect_timeout(addr, left().max(Duration::from_millis(1))) {
        Ok(s) => s,
        Err(e) if timed_out(&e) => return Outcome::Timeout,
        Err(e) => return Outcome::Failed(format!("connect to {addr}: {e}")),
    };
    let body = job.json();
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: hafw/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        w.path,
        w.host,
        w.port,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let io = (|| -> std::io::Result<Vec<u8>> {
        s.set_write_timeout(Some(left().max(Duration::from_millis(1))))?;
        s.write_all(req.as_bytes())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        // The status line is all we need; a reply is read to 1 KiB at most.
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
            let rest = left();
            if rest.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            s.set_read_timeout(Some(rest))?;
            match s.read(&mut buf)? {
                0 => break,
                n => head.extend_from_slice(&buf[..n]),
            }
        }
        Ok(head)
    })();
    let head = match io {
        Ok(h) => h,
        Err(e) if timed_out(&e) => return Outcome::Timeout,
        Err(e) => return Outcome::Failed(format!("POST to {addr}: {e}")),
    };
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    match line.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()) {
        Some(code) if (200..300).contains(&code) => Outcome::Ok,
        _ => Outcome::Failed(format!(
            "POST to {addr}: answer {:?}",
            crate::ops::text::peer_text(line)
        )),
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::PathBuf;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hafw-hooks-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A shell script at `dir/name`, executable.
    fn script(dir: &Path, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt as _;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    }

    fn event(kind: EventKind, cause: &str) -> Event {
        Event {
            kind,
            state: "active".into(),
            previous: "passive".into(),
            cause: cause.into(),
            term: 3,
        }
    }

    fn runner(command: Option<Vec<String>>, webhook: Option<Webhook>, ms: u64) -> Runner {
        Runner {
            command,
            webhook,
            timeout: Duration::from_millis(ms),
            log: Log::quiet(),
        }
    }

    fn wait_for(hooks: &Hooks, done: u64) {
        for _ in 0..1000 {
            let t = hooks.totals();
            if t[0].1 + t[1].1 + t[2].1 >= done {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{done} runs not done: {:?}", hooks.totals());
    }

    #[test]
    fn events_run_in_order_with_their_environment() {
        let dir = temp_dir("order");
        let log = dir.join("seen");
        let cmd = script(
            &dir,
            "hook",
            &format!(
                "echo \"$HAFW_SEQ $HAFW_EVENT $HAFW_NODE $HAFW_STATE $HAFW_PREVIOUS $HAFW_TERM $HAFW_CAUSE $(cat)\" >> {}",
                log.display()
            ),
        );
        let hooks =
            Hooks::start_with("fw-a", runner(Some(vec![cmd]), None, 5000), 64, None).unwrap();
        let kinds = [
            EventKind::PeerLost,
            EventKind::Active,
            EventKind::PeerBack,
            EventKind::Passive,
            EventKind::Suspended,
            EventKind::NonFunctional,
        ];
        for (i, k) in kinds.iter().enumerate() {
            hooks.emit(event(*k, &format!("cause {i}")));
        }
        wait_for(&hooks, 6);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        for (i, (line, k)) in lines.iter().zip(kinds).enumerate() {
            let want = format!(
                "{} {} fw-a active passive 3 cause {i} {{\"seq\":{}",
                i + 1,
                k.as_str(),
                i + 1
            );
            assert!(line.starts_with(&want), "{line} / {want}");
            assert!(
                line.contains(&format!("\"event\":\"{}\"", k.as_str())),
                "{line}"
            );
        }
        assert_eq!(hooks.totals()[0], ("ok", 6));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed_with_its_group() {
        let dir = temp_dir("timeout");
        let pidfile = dir.join("child.pid");
        // The script leaves a grandchild in its group: it must die too.
        let cmd = script(
            &dir,
            "slow",
            &format!("sleep 30 & echo $! > {}; sleep 30", pidfile.display()),
        );
        let hooks =
            Hooks::start_with("fw-a", runner(Some(vec![cmd]), None, 300), 64, None).unwrap();
        let t = Instant::now();
        hooks.emit(event(EventKind::Active, "x"));
        wait_for(&hooks, 1);
        let took = t.elapsed();
        assert_eq!(hooks.totals()[2], ("timeout", 1), "{:?}", hooks.totals());
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed (and reaped by init, or a zombie until then): not running.
        let mut gone = false;
        for _ in 0..200 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone, "the hook's background child {pid} still runs");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let dir = temp_dir("full");
        let cmd = script(&dir, "slow", "sleep 2");
        let hooks = Hooks::start_with("fw-a", runner(Some(vec![cmd]), None, 100), 2, None).unwrap();
        let t = Instant::now();
        for _ in 0..20 {
            hooks.emit(event(EventKind::PeerLost, "flood"));
        }
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        // One running, two queued (a first event may not yet be taken).
        let dropped = hooks.totals()[3].1;
        assert!((17..=18).contains(&dropped), "{:?}", hooks.totals());
        wait_for(&hooks, 20 - dropped);
        assert_eq!(hooks.totals()[2].1, 20 - dropped);
        let off = Hooks::off("fw-a");
        off.emit(event(EventKind::Active, "x"));
        assert_eq!(
            off.totals(),
            [("ok", 0), ("failed", 0), ("timeout", 0), ("dropped", 0)]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_failing_hook_is_counted_with_its_output_bounded() {
        let dir = temp_dir("fail");
        let cmd = script(
            &dir,
            "fail",
            "head -c 100000 /dev/zero | tr '\\0' x; echo oops >&2; exit 3",
        );
        let argv = vec![cmd.clone()];
        let o = run_command(
            &argv,
            &Job {
                seq: 1,
                node: "fw-a".into(),
                unix_ms: 0,
                event: event(EventKind::Active, "x"),
            },
            Duration::from_secs(5),
        );
        let Outcome::Failed(why) = o else {
            panic!("{o:?}")
        };
        assert!(
            why.contains("exit status: 3") && why.contains("oops"),
            "{why}"
        );
        assert!(why.len() < 2 * OUTPUT_MAX + 200, "{}", why.len());
        // A missing, non-executable or writable-by-others command does not
        // stop the node (start succeeds); each run fails, saying why.
        let spec = |cmd: &str| hafw_model::hooks::Hooks {
            on_transition: Some(vec![cmd.into()]),
            ..Default::default()
        };
        assert!(Hooks::start("fw-a", &spec("/nonexistent/hook"), None, &Log::quiet()).is_ok());
        let job = Job {
            seq: 1,
            node: "fw-a".into(),
            unix_ms: 0,
            event: event(EventKind::Active, "x"),
        };
        let why = |argv: &[String]| match run_command(argv, &job, Duration::from_secs(5)) {
            Outcome::Failed(w) => w,
            o => panic!("{o:?}"),
        };
        assert!(why(&["/nonexistent/hook".into()]).contains("cannot be read"));
        let plain = dir.join("plain");
        std::fs::write(&plain, "").unwrap();
        assert!(why(&[plain.display().to_string()]).contains("not executable"));
        let open = dir.join("open");
        std::fs::write(&open, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let w = why(&[open.display().to_string()]);
        assert!(
            w.contains("group or others may change") && w.contains("not run"),
            "{w}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A one-connection HTTP server answering `status`; returns its port
    /// and the request it read.
    fn http_once(status: &'static str, delay: Duration) -> (u16, Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&req).to_string());
            std::thread::sleep(delay);
            let _ =
                s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        });
        (port, rx)
    }

    #[test]
    fn the_webhook_posts_json_and_counts_answers() {
        let job = Job {
            seq: 7,
            node: "fw-b".into(),
            unix_ms: 0,
            event: event(EventKind::PeerBack, "peer node 1 found"),
        };
        let hook = |port: u16| Webhook::parse(&format!("http://127.0.0.1:{port}/e")).unwrap();
        let (port, req) = http_once("204 No Content", Duration::ZERO);
        assert_eq!(post(&hook(port), &job, Duration::from_secs(5)), Outcome::Ok);
        let req = req.recv().unwrap();
        assert!(req.starts_with("POST /e HTTP/1.1\r\n"), "{req}");
        let body: serde_json::Value =
            serde_json::from_str(req.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["seq"], 7);
        assert_eq!(body["event"], "peer-back");
        assert_eq!(body["cause"], "peer node 1 found");
        let (port, _) = http_once("500 Internal Server Error", Duration::ZERO);
        assert!(matches!(
            post(&hook(port), &job, Duration::from_secs(5)),
            Outcome::Failed(_)
        ));
        // A server that never answers in time.
        let (port, _r) = http_once("200 OK", Duration::from_secs(3));
        let t = Instant::now();
        assert_eq!(
            post(&hook(port), &job, Duration::from_millis(200)),
            Outcome::Timeout
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        // Nobody listening: failed, not hung.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(matches!(
            post(&hook(port), &job, Duration::from_secs(2)),
            Outcome::Failed(_)
        ));
    }
}
