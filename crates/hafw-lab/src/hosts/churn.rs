//! A connection-churn load generator: threads that open a TCP connection
//! to an echo host, read its greeting and close, as fast as they can, so
//! that a firewall on the path creates and retires conntrack entries at the
//! highest rate this machine allows (`hafw bench sync` measures session
//! sync under it).
//!
//! Reading the greeting makes each connection a real exchange through the
//! firewall (both directions, ESTABLISHED), and paces the clients to the
//! echo host's accept loop (it polls its listener every 5 ms). Clients
//! that closed right after the handshake churned 7 times slower in a trial
//! (likely an overflowing accept backlog: dropped SYNs wait a second for
//! their retransmission). More threads give more connections per second. The caller runs
//! [`churn`] inside the client's namespace (e.g. with
//! `hafw_kernel::in_netns`); the worker threads it spawns inherit that
//! namespace.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::error::HostError;
use super::Stop;

/// Distinct error messages kept for the report; the rest are only counted.
const KEEP_ERRORS: usize = 8;

#[derive(Debug, Clone)]
pub struct ChurnConfig {
    /// The echo host (it greets each connection with a `seen` line).
    pub target: SocketAddr,
    /// Worker threads, each with one connection at a time.
    pub threads: usize,
    /// How long to churn (the [`Stop`] may end it sooner).
    pub duration: Duration,
    /// Per connect and per greeting read.
    pub timeout: Duration,
}

impl ChurnConfig {
    pub fn new(target: SocketAddr) -> Self {
        ChurnConfig {
            target,
            threads: 8,
            duration: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChurnReport {
    /// Connections that were opened, greeted and closed.
    pub completed: u64,
    /// Connections that failed (refused, timed out, reset, no port left).
    pub failed: u64,
    /// Up to [`KEEP_ERRORS`] distinct failure messages.
    pub errors: Vec<String>,
    /// From the first worker's start to the last one's end.
    pub elapsed: Duration,
}

impl ChurnReport {
    /// Completed connections per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.completed as f64 / s
        } else {
            0.0
        }
    }
}

/// Churns connections to `cfg.target` from the calling thread's namespace
/// until `cfg.duration` has passed or `stop` says so.
pub fn churn(cfg: &ChurnConfig, stop: &Stop) -> Result<ChurnReport, HostError> {
    if cfg.threads == 0 {
        return Err(HostError::Config(
            "churn threads is 0; use at least 1".into(),
        ));
    }
    if cfg.timeout.is_zero() {
        return Err(HostError::Config(
            "churn timeout is 0, which the standard library refuses; use e.g. 2 s".into(),
        ));
    }
    let completed = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let errors = Mutex::new(Vec::<String>::new());
    let start = Instant::now();
    let end = start + cfg.duration;
    let spawned = thread::scope(|scope| -> Result<(), HostError> {
        for i in 0..cfg.threads {
            let (completed, failed, errors) = (&completed, &failed, &errors);
            thread::Builder::new()
                .name(format!("churn-{i}"))
                .spawn_scoped(scope, move || {
                    while Instant::now() < end && !stop.is_stopped() {
                        match one(cfg) {
                            Ok(()) => {
                                completed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                // Out of local ports or buffers: give the
                                // kernel a moment instead of spinning on it.
                                if e.kind() == io::ErrorKind::AddrNotAvailable {
                                    thread::sleep(Duration::from_millis(1));
                                }
                                let msg = format!("{}: {e}", cfg.target);
                                if let Ok(mut list) = errors.lock() {
                                    if list.len() < KEEP_ERRORS && !list.contains(&msg) {
                                        list.push(msg);
                                    }
                                }
                            }
                        }
                    }
                })
                .map_err(HostError::io("cannot start a churn thread"))?;
        }
        Ok(())
    });
    let elapsed = start.elapsed();
    spawned?;
    Ok(ChurnReport {
        completed: completed.into_inner(),
        failed: failed.into_inner(),
        errors: errors.into_inner().unwrap_or_default(),
        elapsed,
    })
}

/// One connection: connect, read the greeting line, close.
fn one(cfg: &ChurnConfig) -> io::Result<()> {
    let mut s = TcpStream::connect_timeout(&cfg.target, cfg.timeout)?;
    s.set_read_timeout(Some(cfg.timeout))?;
    // The greeting is one short line; it normally arrives in one segment.
    let mut buf = [0u8; 128];
    let mut got = 0;
    while !buf[..got].contains(&b'\n') {
        if got == buf.len() {
            return Err(io::Error::other("greeting longer than 128 bytes"));
        }
        match s.read(&mut buf[got..])? {
            0 => return Err(io::Error::other("closed before the greeting")),
            n => got += n,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::{EchoConfig, EchoServer};

    #[test]
    fn churns_against_a_local_echo_host() {
        let server = EchoServer::bind(EchoConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = server.local_addr().unwrap();
        let stop = Stop::new();
        let server_stop = stop.clone();
        let t = thread::spawn(move || server.run(&server_stop));
        let mut cfg = ChurnConfig::new(addr);
        cfg.threads = 2;
        cfg.duration = Duration::from_millis(300);
        let r = churn(&cfg, &Stop::new()).unwrap();
        stop.stop();
        t.join().unwrap().unwrap();
        assert!(r.completed > 0, "{r:?}");
        assert_eq!(r.failed, 0, "{r:?}");
        assert!(r.rate() > 0.0);
    }

    #[test]
    fn zero_threads_is_a_config_error() {
        let mut cfg = ChurnConfig::new("127.0.0.1:9".parse().unwrap());
        cfg.threads = 0;
        assert!(matches!(
            churn(&cfg, &Stop::new()),
            Err(HostError::Config(_))
        ));
    }
}
