//! The traffic log (`docs/logs.md`): what the ruleset's `log group N`
//! statements hand over by NFLOG, and session starts and ends from
//! conntrack, as JSON lines in a file and, with `[policy.logging.syslog]`,
//! RFC 5424 messages to a collector.
//!
//! Never in the way of forwarding or HA: threads of their own
//! (`hafw-nflog`, `hafw-ctlog` read the kernel, `hafw-traffic` writes,
//! `hafw-syslog` sends), joined by bounded queues that drop and count when
//! full. The rate limit (`[policy.logging] rate`, `burst`) is applied by the
//! readers before a record is built, so a flood costs a token check per
//! packet; what it held back is counted and said by a periodic
//! `suppressed` record. What the kernel lost (ENOBUFS, NFLOG sequence gaps)
//! is counted as lost. The pure parts: [`record`], [`packet`], [`rate`],
//! [`sessions`], [`syslog::frame`].

pub mod packet;
pub mod rate;
pub mod record;
pub mod sessions;
pub mod syslog;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hafw_kernel::conntrack::{Session, SessionEvents};
use hafw_kernel::nflog::{Logged, Nflog, COPY_RANGE};
use hafw_model::logging::Logging;

use crate::log::Log;
use crate::ops::metrics::Metrics;
use rate::RateLimit;
use record::{Body, Record};

/// Every `reason` of `hafw_traffic_log_lost_total`.
pub const LOST_REASONS: [&str; 8] = [
    "nflog_overrun",
    "nflog_gap",
    "nflog_malformed",
    "conntrack_overrun",
    "conntrack_malformed",
    "queue_full",
    "nat_pairing_full",
    "syslog",
];

/// Records waiting for the writer, at most.
const QUEUE: usize = 4096;
/// How often a `suppressed` record is written while anything was held
/// back or lost.
pub const SUPPRESSED_EVERY: Duration = Duration::from_secs(5);
/// The file is rotated to `FILE.1` past this, as the audit log is.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The default file: `/var/log/hafw/NODE.traffic.jsonl`.
pub fn default_path(node: &str) -> PathBuf {
    Path::new(crate::ops::audit::DEFAULT_DIR).join(format!("{node}.traffic.jsonl"))
}

/// What the traffic log needs from the node.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: String,
    pub file: PathBuf,
    pub max_bytes: u64,
    pub logging: Logging,
    /// The node's own addresses (its sessions are not traffic).
    pub local: Vec<Ipv4Addr>,
    /// Mark bits of entries session sync installed.
    pub ignore_mark: u32,
    /// Each rule's action (`accept`, `drop`, `reject`), for the `kind` of
    /// its logged packets.
    pub rule_actions: HashMap<String, &'static str>,
}

/// The running traffic log; dropping it leaves the threads to end with
/// the process, [`TrafficLog::stop`] ends them.
pub struct TrafficLog {
    stop: Arc<AtomicBool>,
}

impl TrafficLog {
    /// Opens the file (mode 0640) now, so a path that cannot be written
    /// refuses the start; a kernel side that cannot be opened (the NFLOG
    /// group held by another process) is a warning, and the node runs
    /// without that part of the log.
    pub fn start(s: Settings, metrics: Metrics, log: &Log) -> Result<TrafficLog, String> {
        let file = open(&s.file).map_err(|e| {
            format!(
                "--traffic-log {}: cannot open: {e}; give a writable path",
                s.file.display()
            )
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let limit = Arc::new(Mutex::new(RateLimit::new(
            s.logging.rate.get(),
            s.logging.burst.get(),
        )));
        let lost = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::sync_channel::<Record>(QUEUE);
        let epoch = Instant::now();
        let feed = Feed {
            tx,
            limit: limit.clone(),
            lost: lost.clone(),
            metrics: metrics.clone(),
            epoch,
            node: s.node.clone(),
        };
        let syslog = match &s.logging.syslog {
            Some(cfg) => {
                let (stx, srx) = mpsc::sync_channel::<String>(syslog::QUEUE);
                let (addr, transport, stop2, log2) =
                    (cfg.address, cfg.transport, stop.clone(), log.clone());
                spawn("hafw-syslog", move || {
                    syslog::run(addr, transport, srx, stop2, log2)
                })?;
                Some(stx)
            }
            None => None,
        };
        match Nflog::open(None, s.logging.group, COPY_RANGE) {
            Ok(nflog) => {
                let (feed, stop2, actions) = (feed.clone(), stop.clone(), s.rule_actions.clone());
                spawn("hafw-nflog", move || read_nflog(nflog, feed, actions, stop2))?;
            }
            Err(e) => log.warn(format!(
                "traffic log: no packet logs: {e}; is another process (ulogd, another hafw) bound to NFLOG group {}? Set [policy.logging] group to a free one",
                s.logging.group
            )),
        }
        match SessionEvents::open(None) {
            Ok(events) => {
                let sessions =
                    sessions::Sessions::new(s.local.clone(), s.ignore_mark, sessions::MAX_PAIRED);
                let (feed, stop2) = (feed.clone(), stop.clone());
                spawn("hafw-ctlog", move || {
                    read_sessions(events, sessions, feed, stop2)
                })?;
            }
            Err(e) => log.warn(format!("traffic log: no session records: {e}")),
        }
        let mut writer = Writer {
            path: s.file.clone(),
            max_bytes: s.max_bytes,
            file,
            failing: false,
            log: log.clone(),
        };
        let (stop2, node, pid) = (stop.clone(), s.node.clone(), std::process::id());
        spawn("hafw-traffic", move || {
            let mut last_note = Instant::now();
            let mut since = now_ms();
            loop {
                match rx.recv_timeout(Duration::from_millis(500)) {
                    Ok(r) => writer.write(&r, syslog.as_ref(), &metrics, pid),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                if last_note.elapsed() >= SUPPRESSED_EVERY {
                    last_note = Instant::now();
                    let suppressed = limit.lock().map(|mut l| l.take_suppressed()).unwrap_or(0);
                    let lost = lost.swap(0, Ordering::Relaxed);
                    if suppressed + lost > 0 {
                        metrics.traffic_suppressed(suppressed);
                        let r = Record {
                            unix_ms: now_ms(),
                            node: node.clone(),
                            body: Body::Suppressed {
                                suppressed,
                                lost,
                                since_ms: since,
                            },
                        };
                        writer.write(&r, syslog.as_ref(), &metrics, pid);
                    }
                    since = now_ms();
                }
            }
        })?;
        Ok(TrafficLog { stop })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| format!("cannot start the {name} thread: {e}"))
}

/// What the readers share: the queue, the limit, the lost count.
#[derive(Clone)]
struct Feed {
    tx: SyncSender<Record>,
    limit: Arc<Mutex<RateLimit>>,
    lost: Arc<AtomicU64>,
    metrics: Metrics,
    epoch: Instant,
    node: String,
}

impl Feed {
    fn allow(&self) -> bool {
        let now = self.epoch.elapsed();
        self.limit.lock().map(|mut l| l.allow(now)).unwrap_or(false)
    }

    fn lose(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.lost.fetch_add(n, Ordering::Relaxed);
            self.metrics.traffic_lost(reason, n);
        }
    }

    fn send(&self, body: Body) {
        let r = Record {
            unix_ms: now_ms(),
            node: self.node.clone(),
            body,
        };
        match self.tx.try_send(r) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.lose("queue_full", 1)
            }
        }
    }
}

/// The record kind and rule of a logged packet, from its prefix.
fn classify(prefix: &str, actions: &HashMap<String, &'static str>) -> (&'static str, String) {
    match prefix.strip_prefix("rule ") {
        Some(name) => (
            actions.get(name).copied().unwrap_or("rule"),
            name.to_string(),
        ),
        None => ("deny", prefix.to_string()),
    }
}

fn read_nflog(
    mut nflog: Nflog,
    feed: Feed,
    actions: HashMap<String, &'static str>,
    stop: Arc<AtomicBool>,
) {
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut last_seq: Option<u32> = None;
    let mut malformed = 0;
    while !stop.load(Ordering::Relaxed) {
        let got = match nflog.recv(Some(Duration::from_millis(500))) {
            Ok(g) => g,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let m = nflog.malformed();
        feed.lose("nflog_malformed", m - malformed);
        malformed = m;
        let p = match got {
            None => continue,
            Some(Logged::Overrun) => {
                feed.lose("nflog_overrun", 1);
                continue;
            }
            Some(Logged::Packet(p)) => p,
        };
        if let (Some(last), Some(seq)) = (last_seq, p.seq) {
            let gap = seq.wrapping_sub(last).wrapping_sub(1);
            if gap < u32::MAX / 2 {
                feed.lose("nflog_gap", u64::from(gap));
            }
        }
        last_seq = p.seq.or(last_seq);
        if !feed.allow() {
            continue;
        }
        let Ok(flow) = packet::flow(&p.payload) else {
            feed.lose("nflog_malformed", 1);
            continue;
        };
        let (kind, rule) = classify(&p.prefix, &actions);
        let mut name = |i: Option<u32>| i.and_then(|i| ifname(&mut names, i));
        let (in_if, out_if) = (name(p.indev), name(p.outdev));
        feed.send(Body::Packet {
            kind,
            rule,
            in_if,
            out_if,
            flow,
        });
    }
}

/// An interface's name from its index, cached (bounded: a node has a few
/// links; a cache that grows past 256 is cleared).
fn ifname(cache: &mut HashMap<u32, String>, index: u32) -> Option<String> {
    if let Some(n) = cache.get(&index) {
        return Some(n.clone());
    }
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    if cache.len() >= 256 {
        cache.clear();
    }
    cache.insert(index, name.clone());
    Some(name)
}

fn read_sessions(
    mut events: SessionEvents,
    mut sessions: sessions::Sessions,
    feed: Feed,
    stop: Arc<AtomicBool>,
) {
    let mut malformed = 0;
    while !stop.load(Ordering::Relaxed) {
        let got = match events.recv(Duration::from_millis(500)) {
            Ok(g) => g,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let m = events.malformed();
        feed.lose("conntrack_malformed", m - malformed);
        malformed = m;
        let bodies = match got {
            None => Vec::new(),
            Some(Session::Overrun) => {
                feed.lose("conntrack_overrun", 1);
                Vec::new()
            }
            Some(Session::New(e)) => sessions.on_new(&e, now_ms()).into_iter().collect(),
            Some(Session::End(e, acct)) => sessions.on_end(&e, &acct, now_ms()),
        };
        feed.lose("nat_pairing_full", sessions.take_full());
        for b in bodies {
            if feed.allow() {
                feed.send(b);
            }
        }
    }
}

struct Writer {
    path: PathBuf,
    max_bytes: u64,
    file: File,
    failing: bool,
    log: Log,
}

impl Writer {
    fn write(&mut self, r: &Record, syslog: Option<&SyncSender<String>>, m: &Metrics, pid: u32) {
        let line = r.to_json_line();
        let written = self
            .rotate_if_full(line.len() as u64)
            .and_then(|()| self.file.write_all(line.as_bytes()));
        match written {
            Ok(()) => {
                self.failing = false;
                m.traffic_record(r.kind());
            }
            Err(e) if !self.failing => {
                self.failing = true;
                self.log.warn(format!(
                    "traffic log: cannot write {}: {e}; records are lost until it can be written",
                    self.path.display()
                ));
            }
            Err(_) => {}
        }
        if let Some(tx) = syslog {
            if tx.try_send(r.to_syslog(pid)).is_err() {
                m.traffic_lost("syslog", 1);
            }
        }
    }

    fn rotate_if_full(&mut self, adding: u64) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        if len == 0 || len + adding <= self.max_bytes {
            return Ok(());
        }
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, PathBuf::from(old))?;
        self.file = open(&self.path)?;
        Ok(())
    }
}

/// Mode 0640: the log names who talked to whom; the group (adm on Debian)
/// may read it, others may not.
fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    Ok(f)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_names_the_rule_and_its_action() {
        let actions: HashMap<String, &'static str> = [("ssh-in".to_string(), "accept")].into();
        assert_eq!(
            classify("rule ssh-in", &actions),
            ("accept", "ssh-in".into())
        );
        assert_eq!(
            classify("rule new-one", &actions),
            ("rule", "new-one".into())
        );
        assert_eq!(
            classify("default deny untrust -> trust", &actions),
            ("deny", "default deny untrust -> trust".into())
        );
    }

    #[test]
    fn the_file_is_0640_and_rotates_to_one_backup() {
        let dir = std::env::temp_dir().join(format!("hafw-traffic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("n.traffic.jsonl");
        let mut w = Writer {
            path: path.clone(),
            max_bytes: 400,
            file: open(&path).unwrap(),
            failing: false,
            log: Log::quiet(),
        };
        let r = Record {
            unix_ms: 0,
            node: "n".into(),
            body: Body::Suppressed {
                suppressed: 1,
                lost: 0,
                since_ms: 0,
            },
        };
        for _ in 0..10 {
            w.write(&r, None, &Metrics::new(), 1);
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let mut backup = path.clone().into_os_string();
        backup.push(".1");
        assert!(std::fs::metadata(PathBuf::from(backup)).unwrap().len() <= 400);
        assert!(std::fs::metadata(&path).unwrap().len() <= 400);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
