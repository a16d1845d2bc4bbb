//! Long-lived TCP sessions through the firewall: each connection to an echo
//! host exchanges a small message every few milliseconds on its own thread,
//! so a failover that loses the connection's state shows up as a reset, a
//! stall or a lost byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct SessionResult {
    pub exchanges: u64,
    /// What ended it, if it failed (reset, stall, wrong bytes).
    pub failure: Option<String>,
    /// The longest wait for an echo.
    pub longest_wait: Duration,
    /// This end of the connection (the firewall's conntrack key).
    pub local: Option<SocketAddr>,
    /// When the last echo came back.
    pub last_ok: Option<Instant>,
}

pub struct Sessions {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<SessionResult>>,
    pub opened: usize,
    pub open_errors: Vec<String>,
}

/// How long an echo may take before the session counts as stalled.
const STALL: Duration = Duration::from_secs(3);
/// How long the echo host may take to accept and greet.
const GREETING: Duration = Duration::from_secs(30);

impl Sessions {
    /// Opens `n` connections to `target` from namespace `ns`, each
    /// exchanging 16 bytes every `every`.
    pub fn open(ns: &str, target: SocketAddr, n: usize, every: Duration) -> Sessions {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut threads = vec![];
        for i in 0..n {
            let conn = hafw_kernel::in_netns(Some(ns), || {
                TcpStream::connect_timeout(&target, Duration::from_secs(2))
            });
            let stream = match conn {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    if let Ok(mut e2) = errors.lock() {
                        e2.push(format!("connect {target}: {e}"));
                    }
                    continue;
                }
                Err(e) => {
                    if let Ok(mut e2) = errors.lock() {
                        e2.push(e.to_string());
                    }
                    continue;
                }
            };
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                exchange(i, stream, every, &stop)
            }));
        }
        let open_errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
        Sessions {
            stop,
            opened: threads.len(),
            threads,
            open_errors,
        }
    }

    /// Stops every exchange and returns each session's result.
    pub fn finish(self) -> Vec<SessionResult> {
        self.stop.store(true, Ordering::SeqCst);
        self.threads
            .into_iter()
            .map(|t| {
                t.join().unwrap_or_else(|_| SessionResult {
                    failure: Some("thread panicked".into()),
                    ..Default::default()
                })
            })
            .collect()
    }
}

fn exchange(i: usize, stream: TcpStream, every: Duration, stop: &AtomicBool) -> SessionResult {
    let mut r = SessionResult {
        local: stream.local_addr().ok(),
        ..Default::default()
    };
    // The greeting waits on the echo host accepting, which a saturated
    // host may take seconds to do: that is the load, not the firewall.
    let _ = stream.set_read_timeout(Some(GREETING));
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            r.failure = Some(e.to_string());
            return r;
        }
    };
    let mut reader = BufReader::new(stream);
    // The echo host first says which address it saw.
    let mut seen = String::new();
    if let Err(e) = reader.read_line(&mut seen) {
        r.failure = Some(format!("no greeting: {e}"));
        return r;
    }
    let _ = reader.get_ref().set_read_timeout(Some(STALL));
    let mut seq: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let msg = format!("{i:06}:{seq:09}\n");
        let t = Instant::now();
        if let Err(e) = writer.write_all(msg.as_bytes()) {
            r.failure = Some(format!("write after {} exchanges: {e}", r.exchanges));
            return r;
        }
        let mut back = vec![0u8; msg.len()];
        if let Err(e) = reader.read_exact(&mut back) {
            r.failure = Some(format!("read after {} exchanges: {e}", r.exchanges));
            return r;
        }
        if back != msg.as_bytes() {
            r.failure = Some(format!("wrong bytes after {} exchanges", r.exchanges));
            return r;
        }
        r.longest_wait = r.longest_wait.max(t.elapsed());
        r.last_ok = Some(Instant::now());
        r.exchanges += 1;
        seq += 1;
        std::thread::sleep(every);
    }
    r
}
