//! The audit log: who changed what on this node, when, and how it went
//! (every policy apply, local or from the peer, every suspend and resume,
//! every HA transition with its cause).
//!
//! Each record goes two ways: one JSON object per line to a file (mode
//! 0600, rotated at a size to one `.1` file, so the disk use is bounded),
//! and one entry in the systemd journal with `HAFW_*` fields, over the
//! journal's native datagram protocol.
//!
//! [`Audit::record`] never blocks: the record goes into a bounded channel
//! to a writer thread, and a full channel drops it and counts the drop
//! ([`Audit::dropped`], in `hafw status` and the metrics). The HA thread
//! and the failover path must never wait on a slow disk.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::log::Log;

/// Where systemd's journal listens for native-protocol datagrams.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The directory of the default audit file, `<dir>/<node>.audit.jsonl`.
pub const DEFAULT_DIR: &str = "/var/log/hafw";

/// The file is rotated to `.1` when a record would take it past this.
pub const DEFAULT_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Records waiting for the writer; more are dropped and counted.
const QUEUE: usize = 256;

/// A journal datagram stays well under the socket's limit; a longer
/// `what` is cut (the file keeps it whole).
const JOURNAL_WHAT_MAX: usize = 4096;

/// The default audit file of `node`.
pub fn default_path(node: &str) -> PathBuf {
    Path::new(DEFAULT_DIR).join(format!("{node}.audit.jsonl"))
}

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// A local operator, by the uid the control socket saw.
    Uid(u32),
    /// The peer, through config sync.
    Peer,
    /// The HA core, on its own (the cause is in `what`).
    Ha,
    /// A confirmation window that closed unconfirmed (`--confirm-within`).
    ConfirmWindow,
}

impl Who {
    fn text(self) -> String {
        match self {
            Who::Uid(uid) => uid.to_string(),
            Who::Peer => "peer".into(),
            Who::Ha => "ha".into(),
            Who::ConfirmWindow => "confirm-window".into(),
        }
    }
}

/// One audit record, as written.
#[derive(Debug, Clone)]
pub struct Record {
    /// Unix time in milliseconds.
    pub unix_ms: u64,
    pub node: String,
    /// `config-apply`, `config-from-peer`, `suspend`, `resume`,
    /// `ha-transition`, or what a later caller names.
    pub event: String,
    pub who: Who,
    pub what: String,
    /// `Err` holds the error text.
    pub result: Result<(), String>,
}

impl Record {
    /// The JSON line, newline included.
    pub fn to_json_line(&self) -> String {
        let mut o = serde_json::Map::new();
        o.insert("time".into(), rfc3339(self.unix_ms).into());
        o.insert("node".into(), self.node.clone().into());
        o.insert("event".into(), self.event.clone().into());
        o.insert("who".into(), self.who.text().into());
        if let Who::Uid(uid) = self.who {
            o.insert("uid".into(), uid.into());
        }
        o.insert("what".into(), self.what.clone().into());
        match &self.result {
            Ok(()) => o.insert("result".into(), "ok".into()),
            Err(e) => {
                o.insert("result".into(), "error".into());
                o.insert("error".into(), e.clone().into())
            }
        };
        let mut line = serde_json::Value::Object(o).to_string();
        line.push('\n');
        line
    }

    /// The datagram for the journal's native protocol: one `KEY=value`
    /// line per field, or for a value with a newline `KEY\n`, its length
    /// as 64-bit little endian, the value and `\n`.
    pub fn to_journal(&self) -> Vec<u8> {
        let mut what = self.what.clone();
        if what.len() > JOURNAL_WHAT_MAX {
            let mut cut = JOURNAL_WHAT_MAX;
            while !what.is_char_boundary(cut) {
                cut -= 1;
            }
            what.truncate(cut);
            what.push_str(" [cut]");
        }
        let result = match &self.result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        let message = format!(
            "audit: {} by {}: {what}: {result}",
            self.event,
            self.who.text()
        );
        // Notice for a change that worked, warning for one that did not.
        let priority = if self.result.is_ok() { "5" } else { "4" };
        let mut out = vec![];
        for (k, v) in [
            ("MESSAGE", message.as_str()),
            ("PRIORITY", priority),
            ("SYSLOG_IDENTIFIER", "hafw"),
            ("HAFW_NODE", self.node.as_str()),
            ("HAFW_EVENT", self.event.as_str()),
            ("HAFW_WHO", self.who.text().as_str()),
            ("HAFW_WHAT", what.as_str()),
            ("HAFW_RESULT", result.as_str()),
        ] {
            journal_field(&mut out, k, v);
        }
        out
    }
}

fn journal_field(out: &mut Vec<u8>, key: &str, value: &str) {
    if value.contains('\n') {
        out.extend_from_slice(key.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    } else {
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
}

/// Where the writer sends records.
#[derive(Debug, Clone)]
pub struct Sinks {
    pub file: PathBuf,
    /// Rotate to `<file>.1` when a record would take the file past this.
    pub max_bytes: u64,
    /// The journal's socket; `None` or absent: file only.
    pub journal: Option<PathBuf>,
}

/// The handle every part of the daemon records through; cheap to clone.
#[derive(Clone)]
pub struct Audit {
    node: String,
    tx: Option<SyncSender<ToWriter>>,
    dropped: Arc<AtomicU64>,
}

impl Audit {
    /// Opens (creates, mode 0600) the file now, so a path that cannot be
    /// written is refused at start, and starts the writer thread.
    pub fn start(node: &str, sinks: Sinks, log: &Log) -> Result<Audit, String> {
        let file = open(&sinks.file).map_err(|e| {
            format!(
                "--audit-log {}: cannot open: {e}; give a writable path",
                sinks.file.display()
            )
        })?;
        let journal = match &sinks.journal {
            Some(p) if p.exists() => match UnixDatagram::unbound() {
                Ok(s) => Some((s, p.clone())),
                Err(e) => {
                    log.warn(format!(
                        "audit: no journal socket ({e}); audit records go to {} only",
                        sinks.file.display()
                    ));
                    None
                }
            },
            Some(p) => {
                log.info(format!(
                    "audit: no journald at {}; audit records go to {} only",
                    p.display(),
                    sinks.file.display()
                ));
                None
            }
            None => None,
        };
        let (tx, rx) = mpsc::sync_channel::<ToWriter>(QUEUE);
        let mut writer = Writer {
            sinks,
            file,
            journal,
            log: log.clone(),
            failing: false,
        };
        std::thread::Builder::new()
            .name("hafw-audit".into())
            .spawn(move || {
                while let Ok(m) = rx.recv() {
                    match m {
                        ToWriter::Record(r) => writer.write(&r),
                        ToWriter::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the audit writer thread: {e}"))?;
        Ok(Audit {
            node: node.to_string(),
            tx: Some(tx),
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A handle that records nothing (tests, tools).
    pub fn off(node: &str) -> Audit {
        Audit {
            node: node.to_string(),
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues one record; never blocks. A full queue drops it and counts
    /// the drop.
    pub fn record(
        &self,
        event: &str,
        who: Who,
        what: impl Into<String>,
        result: Result<(), String>,
    ) {
        let Some(tx) = &self.tx else {
            return;
        };
        let r = Record {
            unix_ms: now_ms(),
            node: self.node.clone(),
            event: event.to_string(),
            who,
            what: what.into(),
            result,
        };
        match tx.try_send(ToWriter::Record(r)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits at most `limit` for the records queued so far to be written:
    /// at shutdown, so the last transitions are not lost with the process.
    pub fn flush(&self, limit: Duration) {
        let Some(tx) = &self.tx else {
            return;
        };
        let (done, wait) = mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + limit;
        let mut msg = ToWriter::Flush(done);
        // A full queue is retried until the deadline: the queue drains.
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = wait.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
    }

    /// Records dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

enum ToWriter {
    Record(Record),
    /// Answered once everything before it is written.
    Flush(SyncSender<()>),
}

struct Writer {
    sinks: Sinks,
    file: File,
    journal: Option<(UnixDatagram, PathBuf)>,
    log: Log,
    /// Set while writes fail, so the log says it once per streak.
    failing: bool,
}

impl Writer {
    fn write(&mut self, r: &Record) {
        let line = r.to_json_line();
        let written = self.rotate_if_full(line.len() as u64).and_then(|()| {
            self.file.write_all(line.as_bytes())?;
            self.file.flush()
        });
        match written {
            Ok(()) => self.failing = false,
            Err(e) if !self.failing => {
                self.failing = true;
                self.log.warn(format!(
                    "audit: cannot write {}: {e}; records are lost until it can be written",
                    self.sinks.file.display()
                ));
            }
            Err(_) => {}
        }
        if let Some((sock, path)) = &self.journal {
            // A journal that is gone or full loses the entry; the file has it.
            let _ = sock.send_to(&r.to_journal(), path);
        }
    }

    fn rotate_if_full(&mut self, adding: u64) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        if len == 0 || len + adding <= self.sinks.max_bytes {
            return Ok(());
        }
        let mut old = self.sinks.file.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.sinks.file, PathBuf::from(old))?;
        self.file = open(&self.sinks.file)?;
        Ok(())
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    // A file that existed with wider permissions is narrowed: the log
    // names who changed the firewall.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix milliseconds as RFC 3339 in UTC, `2026-12-07T20:38:31.123Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ms % 1000
    )
}

/// What a policy change is, for the audit record: the line counts of its
/// diff and the rules it adds and removes, e.g. `+9 -0 lines; rules
/// added: no-discard`.
pub fn policy_change(old: &str, new: &str) -> String {
    let (mut plus, mut minus) = (0, 0);
    for c in similar::TextDiff::from_lines(old, new).iter_all_changes() {
        match c.tag() {
            similar::ChangeTag::Insert => plus += 1,
            similar::ChangeTag::Delete => minus += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    let mut out = format!("+{plus} -{minus} lines");
    let (old_rules, new_rules) = (rule_names(old), rule_names(new));
    let added: Vec<&str> = new_rules
        .iter()
        .filter(|r| !old_rules.contains(r))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = old_rules
        .iter()
        .filter(|r| !new_rules.contains(r))
        .map(String::as_str)
        .collect();
    if !added.is_empty() {
        let _ = write!(out, "; rules added: {}", added.join(", "));
    }
    if !removed.is_empty() {
        let _ = write!(out, "; rules removed: {}", removed.join(", "));
    }
    out
}

/// The names of `[[policy.rule]]`, in order; none for a text that does not
/// parse (the summary then has only the line counts).
fn rule_names(policy: &str) -> Vec<String> {
    let Ok(t) = toml::from_str::<toml::Table>(policy) else {
        return vec![];
    };
    t.get("policy")
        .and_then(|p| p.get("rule"))
        .and_then(|r| r.as_array())
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r.get("name")?.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hafw-audit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn lines_within(path: &Path, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..400 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= n {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("{} did not get {n} records", path.display());
    }

    #[test]
    fn the_time_is_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.999Z: a leap day, the end of a day.
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(1_796_675_911_123), "2026-12-07T20:38:31.123Z");
    }

    #[test]
    fn a_record_is_one_json_line_with_every_field() {
        let r = Record {
            unix_ms: 0,
            node: "fw-a".into(),
            event: "config-apply".into(),
            who: Who::Uid(0),
            what: "version 2 hash abcd; +1 -0 lines".into(),
            result: Err("refused".into()),
        };
        let line = r.to_json_line();
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["node"], "fw-a");
        assert_eq!(v["who"], "0");
        assert_eq!(v["uid"], 0);
        assert_eq!(v["result"], "error");
        assert_eq!(v["error"], "refused");
        let peer = Record {
            who: Who::Peer,
            result: Ok(()),
            ..r
        };
        let v: serde_json::Value = serde_json::from_str(&peer.to_json_line()).unwrap();
        assert_eq!(v["who"], "peer");
        assert!(v.get("uid").is_none() && v.get("error").is_none(), "{v}");
        assert_eq!(v["result"], "ok");
    }

    #[test]
    fn the_change_summary_counts_lines_and_names_rules() {
        let old = "[policy]\n[[policy.rule]]\nname = \"a\"\n[[policy.rule]]\nname = \"b\"\n";
        let new =
            "[policy]\n[[policy.rule]]\nname = \"a\"\n[[policy.rule]]\nname = \"c\"\nports = [9]\n";
        assert_eq!(
            policy_change(old, new),
            "+2 -1 lines; rules added: c; rules removed: b"
        );
        assert_eq!(policy_change(old, old), "+0 -0 lines");
    }

    #[test]
    fn records_reach_the_file_in_order_mode_0600_and_it_rotates() {
        let dir = temp_dir("file");
        let file = dir.join("sub").join("fw-a.audit.jsonl");
        let sinks = Sinks {
            file: file.clone(),
            max_bytes: 600,
            journal: None,
        };
        let audit = Audit::start("fw-a", sinks, &Log::quiet()).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        for i in 0..3 {
            audit.record("suspend", Who::Uid(0), format!("n{i}"), Ok(()));
        }
        // After a flush the records are in the file, without waiting more.
        audit.flush(Duration::from_secs(5));
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3);
        let lines = lines_within(&file, 3);
        let what: Vec<&str> = lines.iter().map(|l| l["what"].as_str().unwrap()).collect();
        assert_eq!(what, ["n0", "n1", "n2"]);
        // Past 600 bytes the file moves to .1 and a new one starts.
        for i in 3..8 {
            audit.record("resume", Who::Uid(0), format!("n{i}"), Ok(()));
        }
        let rotated = dir.join("sub").join("fw-a.audit.jsonl.1");
        for _ in 0..400 {
            let now = std::fs::read_to_string(&file).unwrap_or_default();
            if rotated.exists() && now.contains("\"n7\"") {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let old = std::fs::read_to_string(&rotated).unwrap();
        let now = std::fs::read_to_string(&file).unwrap();
        assert!(
            old.contains("\"n0\"") && now.contains("\"n7\""),
            "{old}\n--\n{now}"
        );
        assert!(old.len() as u64 <= 600 && now.len() as u64 <= 600);
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_journal_gets_native_protocol_fields() {
        let dir = temp_dir("journal");
        let sock_path = dir.join("journal.sock");
        let journal = UnixDatagram::bind(&sock_path).unwrap();
        journal
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let sinks = Sinks {
            file: dir.join("a.jsonl"),
            max_bytes: DEFAULT_MAX_BYTES,
            journal: Some(sock_path),
        };
        let audit = Audit::start("fw-b", sinks, &Log::quiet()).unwrap();
        audit.record("resume", Who::Uid(1000), "resume", Ok(()));
        audit.record(
            "config-from-peer",
            Who::Peer,
            "two\nlines",
            Err("bad".into()),
        );
        let mut buf = vec![0; 65536];
        let n = journal.recv(&mut buf).unwrap();
        let first = String::from_utf8(buf[..n].to_vec()).unwrap();
        for f in [
            "MESSAGE=audit: resume by 1000: resume: ok\n",
            "PRIORITY=5\n",
            "HAFW_NODE=fw-b\n",
            "HAFW_EVENT=resume\n",
            "HAFW_WHO=1000\n",
            "HAFW_RESULT=ok\n",
        ] {
            assert!(first.contains(f), "{f:?} in {first:?}");
        }
        let n = journal.recv(&mut buf).unwrap();
        let second = &buf[..n];
        // A value with a newline is sent with its length, not as KEY=value.
        let mut want = b"HAFW_WHAT\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert!(
            second.windows(want.len()).any(|w| w == want.as_slice()),
            "{:?}",
            String::from_utf8_lossy(second)
        );
        assert!(String::from_utf8_lossy(second).contains("HAFW_WHO=peer\nHAFW_WHAT"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        // A writer that never drains: the channel's receiver held here.
        let (tx, _rx) = mpsc::sync_channel(2);
        let audit = Audit {
            node: "fw-a".into(),
            tx: Some(tx),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let t = std::time::Instant::now();
        for _ in 0..10 {
            audit.record("ha-transition", Who::Ha, "x", Ok(()));
        }
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(audit.dropped(), 8);
        // A flush behind a stuck writer gives up at its limit.
        let t = std::time::Instant::now();
        audit.flush(Duration::from_millis(50));
        assert!(t.elapsed() < Duration::from_secs(1));
        let off = Audit::off("fw-a");
        off.record("suspend", Who::Uid(0), "x", Ok(()));
        assert_eq!(off.dropped(), 0);
    }

    #[test]
    fn an_unwritable_path_is_refused_at_start_naming_the_flag() {
        let dir = temp_dir("bad");
        let blocker = dir.join("file");
        std::fs::write(&blocker, "").unwrap();
        let sinks = Sinks {
            file: blocker.join("audit.jsonl"),
            max_bytes: DEFAULT_MAX_BYTES,
            journal: None,
        };
        let e = Audit::start("fw-a", sinks, &Log::quiet()).err().unwrap();
        assert!(
            e.starts_with("--audit-log ") && e.contains("writable"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
