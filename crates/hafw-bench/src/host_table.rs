//! The host's conntrack table, raised for a bench run that needs more
//! sessions than it allows, and put back afterwards: when the guard is
//! dropped (the run ended or failed) and on SIGINT/SIGTERM (Ctrl-C), from
//! the signal handler. A child namespace cannot go above the host's
//! `nf_conntrack_max`, and the hash table is global
//! (linux-kernel-notes.md, "Conntrack table size in namespaces"); the lab
//! runs in child namespaces, so only the host's values give it room.
//! Tests never use this (small sizes fit the default table).

use std::ffi::CString;
use std::sync::OnceLock;

const MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const BUCKETS: &str = "/proc/sys/net/netfilter/nf_conntrack_buckets";
const HASHSIZE: &str = "/sys/module/nf_conntrack/parameters/hashsize";

/// Room kept above the bench's own sessions: the pair's flows and the
/// churn's TIME_WAIT entries.
pub const MARGIN: u64 = 200_000;

/// What the signal handler writes back: (path, value), built before the
/// first change so the handler only calls open/write/close.
static RESTORE: OnceLock<Vec<(CString, Vec<u8>)>> = OnceLock::new();

pub struct HostTable {
    max: u64,
    buckets: u64,
    raised_max: bool,
    raised_buckets: bool,
}

fn read(path: &str) -> Result<u64, String> {
    std::fs::read_to_string(path)
        .map_err(|e| format!("read {path}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("read {path}: {e}"))
}

fn write(path: &str, v: u64) -> Result<(), String> {
    std::fs::write(path, v.to_string()).map_err(|e| format!("write {v} to {path}: {e}"))
}

impl HostTable {
    /// Raises the host's `nf_conntrack_max` (and its hash table, one bucket
    /// per entry, as a node sizes its own) when `sessions` + [`MARGIN`] do
    /// not fit; `None` when they do, and nothing is touched. Says what it
    /// changed on stderr.
    pub fn raise_for(sessions: u64) -> Result<Option<HostTable>, String> {
        let want = sessions + MARGIN;
        let max = read(MAX)?;
        if want <= max {
            return Ok(None);
        }
        let buckets = read(BUCKETS)?;
        let restore = vec![
            (cstr(MAX), max.to_string().into_bytes()),
            (cstr(HASHSIZE), buckets.to_string().into_bytes()),
        ];
        if RESTORE.set(restore).is_err() {
            return Err("the host's conntrack table is already raised by this run".into());
        }
        install_handlers();
        let mut guard = HostTable {
            max,
            buckets,
            raised_max: false,
            raised_buckets: false,
        };
        if buckets < want {
            write(HASHSIZE, want)?;
            guard.raised_buckets = true;
        }
        write(MAX, want)?;
        guard.raised_max = true;
        eprintln!(
            "hafw bench: raised the host's net.netfilter.nf_conntrack_max {max} -> {want} and its hash table {buckets} -> {} buckets for this run; both are restored when it ends (also on Ctrl-C)",
            read(BUCKETS).unwrap_or(buckets)
        );
        Ok(Some(guard))
    }
}

impl Drop for HostTable {
    fn drop(&mut self) {
        let mut said = vec![];
        if self.raised_max {
            match write(MAX, self.max) {
                Ok(()) => said.push(format!("nf_conntrack_max {}", self.max)),
                Err(e) => eprintln!("hafw bench: could not restore the host's table: {e}"),
            }
        }
        if self.raised_buckets {
            match write(HASHSIZE, self.buckets) {
                Ok(()) => said.push(format!("hash table {} buckets", self.buckets)),
                Err(e) => eprintln!("hafw bench: could not restore the host's table: {e}"),
            }
        }
        if !said.is_empty() {
            eprintln!("hafw bench: restored the host's {}", said.join(" and "));
        }
    }
}

fn cstr(s: &str) -> CString {
    // The paths are constants without a NUL byte.
    CString::new(s).unwrap_or_default()
}

fn install_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only calls async-signal-safe functions
        // (open, write, close, signal, raise) on data built beforehand.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    if let Some(list) = RESTORE.get() {
        for (path, value) in list {
            // SAFETY: async-signal-safe calls on valid, immutable buffers.
            unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
                if fd >= 0 {
                    libc::write(fd, value.as_ptr().cast(), value.len());
                    libc::close(fd);
                }
            }
        }
    }
    // SAFETY: restores the default action and re-raises, so the process
    // ends as the signal asked.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}
