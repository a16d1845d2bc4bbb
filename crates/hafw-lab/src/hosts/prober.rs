//! The prober: a steady stream of numbered, timestamped UDP probes to an
//! echo host, and a report of what came back. At the default 1000 Hz a lost
//! run of N probes is an outage of about N ms, which is how the lab times a
//! failover from the client's side.
//!
//! Pacing follows an absolute schedule (probe k is due at start + k ×
//! interval) so sleep overshoot does not accumulate into drift. A tick that
//! wakes late sends at once, and the ticks after it catch up, but never more
//! than [`MAX_CATCH_UP`] behind: a longer stall (the machine was busy) drops
//! ticks rather than bursting, and the report counts them.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::ask::nonce;
use super::echo::decode_reply;
use super::error::{is_timeout, HostError};
use super::report::{Arrival, ProbeReport, Raw, Sent};
use super::sock::canonical;
use super::Stop;

pub const MAX_RATE_HZ: u32 = 100_000;
/// A bound on memory: every probe is kept for the timeline.
pub const MAX_PROBES: u64 = 10_000_000;
/// How many ticks a late sender may send back to back to catch up.
pub const MAX_CATCH_UP: u64 = 3;
/// How often the receiver looks whether the run is over.
const RECEIVE_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// An echo host ([`super::echo`]).
    pub target: SocketAddr,
    pub rate_hz: u32,
    /// How long to send for.
    pub duration: Duration,
    /// How long to wait for replies after the last send; a probe not
    /// answered by then is lost.
    pub timeout: Duration,
    /// The local address to send from; by default any, on an ephemeral port.
    pub bind: Option<SocketAddr>,
}

impl ProbeConfig {
    pub fn new(target: SocketAddr) -> Self {
        ProbeConfig {
            target,
            rate_hz: 1000,
            duration: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            bind: None,
        }
    }
}

/// What a probe carries: this run's id (so a reply to an earlier run is not
/// taken for one of ours), its number and its send time in nanoseconds since
/// the run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePayload {
    pub run: u64,
    pub seq: u64,
    pub sent_ns: u64,
}

impl ProbePayload {
    const MAGIC: &'static [u8; 4] = b"HFP1";
    pub const LEN: usize = 28;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..4].copy_from_slice(Self::MAGIC);
        out[4..12].copy_from_slice(&self.run.to_be_bytes());
        out[12..20].copy_from_slice(&self.seq.to_be_bytes());
        out[20..28].copy_from_slice(&self.sent_ns.to_be_bytes());
        out
    }

    /// `None` unless `bytes` is exactly a probe.
    pub fn decode(bytes: &[u8]) -> Option<ProbePayload> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        if &bytes[..4] != Self::MAGIC {
            return None;
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        Some(ProbePayload {
            run: word(4),
            seq: word(12),
            sent_ns: word(20),
        })
    }
}

/// Probes `config.target` for `config.duration` (or until `stop`), waits
/// `config.timeout` for the last replies, and reports.
pub fn probe(config: &ProbeConfig, stop: &Stop) -> Result<ProbeReport, HostError> {
    let plan = Plan::new(config)?;
    let local = config.bind.unwrap_or(match config.target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    });
    // Not connected: a connected socket would have the kernel drop replies
    // from other sources, and the report counts those.
    let socket = UdpSocket::bind(local).map_err(|source| HostError::Bind {
        addr: local,
        source,
    })?;
    let rx_socket = socket
        .try_clone()
        .map_err(HostError::io("cannot clone the probe socket"))?;
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        receive_until_ns: AtomicU64::new(u64::MAX),
    });
    let run = nonce();
    let start = Instant::now();
    let receiver = {
        let shared = shared.clone();
        let (target, total) = (config.target, plan.ticks);
        thread::Builder::new()
            .name("probe-rx".into())
            .spawn(move || receive(&rx_socket, target, run, start, total, &shared))
            .map_err(HostError::io("cannot start the probe receiver"))?
    };
    let (sends, skipped_ticks) = send(&socket, config.target, run, start, &plan, stop, &shared);
    let last = sends.last().map_or(Duration::ZERO, |s| s.at);
    let until = last.saturating_add(config.timeout).as_nanos();
    shared.receive_until_ns.store(
        u64::try_from(until).unwrap_or(u64::MAX - 1),
        Ordering::SeqCst,
    );
    let receipts = receiver.join().map_err(|_| HostError::Io {
        context: "probe receiver".into(),
        source: io::Error::other("panicked"),
    })??;
    Ok(ProbeReport::analyze(Raw {
        target: config.target,
        rate_hz: config.rate_hz,
        interval: plan.interval,
        sends,
        arrivals: receipts.arrivals,
        skipped_ticks,
        foreign: receipts.foreign,
        malformed: receipts.malformed,
    }))
}

/// The schedule a valid config asks for.
struct Plan {
    rate_hz: u32,
    interval: Duration,
    ticks: u64,
}

impl Plan {
    fn new(config: &ProbeConfig) -> Result<Plan, HostError> {
        let rate_hz = config.rate_hz;
        if !(1..=MAX_RATE_HZ).contains(&rate_hz) {
            return Err(HostError::Config(format!(
                "rate_hz must be 1..={MAX_RATE_HZ}, got {rate_hz}"
            )));
        }
        if config.duration.is_zero() || config.timeout.is_zero() {
            return Err(HostError::Config(
                "the probe duration and timeout must be more than zero".into(),
            ));
        }
        let ticks = (config.duration.as_nanos() * u128::from(rate_hz)).div_ceil(NANOS);
        match u64::try_from(ticks) {
            Ok(ticks) if ticks <= MAX_PROBES => Ok(Plan {
                rate_hz,
                interval: Duration::from_nanos((NANOS / u128::from(rate_hz)) as u64),
                ticks,
            }),
            _ => Err(HostError::Config(format!(
                "{ticks} probes exceed the limit of {MAX_PROBES} per run; lower the rate or split the run"
            ))),
        }
    }

    /// When tick `k` is due after the start; computed from `k` each time
    /// so a rate that does not divide a second does not drift.
    fn due(&self, k: u64) -> Duration {
        let ns = u128::from(k) * NANOS / u128::from(self.rate_hz);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

const NANOS: u128 = 1_000_000_000;

/// What the sender tells the receiver.
struct Shared {
    /// Probes sent so far.
    sent: AtomicU64,
    /// When the receiver gives up, in ns since start; `u64::MAX` while
    /// sending.
    receive_until_ns: AtomicU64,
}

/// Sends on schedule; returns every probe's send record and the ticks
/// dropped.
fn send(
    socket: &UdpSocket,
    target: SocketAddr,
    run: u64,
    start: Instant,
    plan: &Plan,
    stop: &Stop,
    shared: &Shared,
) -> (Vec<Sent>, u64) {
    let capacity = usize::try_from(plan.ticks).unwrap_or(0);
    let mut sends = Vec::with_capacity(capacity);
    let interval_ns = plan.interval.as_nanos();
    let mut tick: u64 = 0;
    let mut skipped = 0;
    while tick < plan.ticks {
        let due = start + plan.due(tick);
        sleep_until(due);
        // After the sleep, so a slow rate does not send past the stop.
        if stop.is_stopped() {
            break;
        }
        let now = Instant::now();
        let behind =
            u64::try_from(now.duration_since(due).as_nanos() / interval_ns).unwrap_or(u64::MAX);
        if behind > MAX_CATCH_UP {
            let skip = (behind - MAX_CATCH_UP).min(plan.ticks - tick);
            tick += skip;
            skipped += skip;
            if tick >= plan.ticks {
                break;
            }
        }
        let at = now.duration_since(start);
        let seq = sends.len() as u64;
        let payload = ProbePayload {
            run,
            seq,
            sent_ns: u64::try_from(at.as_nanos()).unwrap_or(u64::MAX),
        };
        let failed = socket.send_to(&payload.encode(), target).is_err();
        sends.push(Sent { at, failed });
        shared.sent.store(seq + 1, Ordering::SeqCst);
        tick += 1;
    }
    (sends, skipped)
}

/// Sleeps until `due` without spinning; `thread::sleep` never returns early,
/// so this loops only if it is interrupted.
fn sleep_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        thread::sleep(due - now);
    }
}

struct Receipts {
    arrivals: Vec<Arrival>,
    foreign: u64,
    malformed: u64,
}

/// Records replies until the wait after the last send is over, or every
/// probe sent has been answered.
fn receive(
    socket: &UdpSocket,
    target: SocketAddr,
    run: u64,
    start: Instant,
    total: u64,
    shared: &Shared,
) -> Result<Receipts, HostError> {
    let mut out = Receipts {
        arrivals: Vec::new(),
        foreign: 0,
        malformed: 0,
    };
    let mut answered = vec![false; usize::try_from(total).unwrap_or(0)];
    let mut unique = 0;
    let mut buf = vec![0u8; 2048];
    loop {
        let now_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let until = shared.receive_until_ns.load(Ordering::SeqCst);
        if now_ns >= until || (until != u64::MAX && unique >= shared.sent.load(Ordering::SeqCst)) {
            return Ok(out);
        }
        let wait = Duration::from_nanos(until - now_ns).min(RECEIVE_POLL);
        socket
            .set_read_timeout(Some(wait))
            .map_err(HostError::io("cannot set the probe read timeout"))?;
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(HostError::Io {
                    context: "receiving probe replies".into(),
                    source,
                })
            }
        };
        let at = start.elapsed();
        if canonical(from) != target {
            out.foreign += 1;
            continue;
        }
        let reply = decode_reply(&buf[..n]).ok().and_then(|(seen, payload)| {
            let p = ProbePayload::decode(payload)?;
            let slot = usize::try_from(p.seq)
                .ok()
                .filter(|&i| i < answered.len())?;
            (p.run == run).then_some((seen, p, slot))
        });
        let Some((seen, p, slot)) = reply else {
            out.malformed += 1;
            continue;
        };
        if !answered[slot] {
            answered[slot] = true;
            unique += 1;
        }
        out.arrivals.push(Arrival {
            seq: p.seq,
            sent_ns: p.sent_ns,
            at,
            seen,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_rejects_others() {
        let p = ProbePayload {
            run: 7,
            seq: 1 << 40,
            sent_ns: 123_456_789,
        };
        assert_eq!(ProbePayload::decode(&p.encode()), Some(p));
        let mut bad = p.encode();
        bad[0] = b'X';
        assert_eq!(ProbePayload::decode(&bad), None);
        assert_eq!(ProbePayload::decode(&p.encode()[..27]), None);
        assert_eq!(ProbePayload::decode(b"ask 0123456789abcdef\n"), None);
    }

    #[test]
    fn plans_reject_bad_configs() {
        let target = "127.0.0.1:7".parse().unwrap();
        let plan = Plan::new(&ProbeConfig {
            duration: Duration::from_millis(1500),
            ..ProbeConfig::new(target)
        })
        .unwrap();
        assert_eq!(
            (plan.interval, plan.ticks, plan.due(1499)),
            (Duration::from_millis(1), 1500, Duration::from_millis(1499))
        );
        let odd = Plan::new(&ProbeConfig {
            rate_hz: 3,
            duration: Duration::from_secs(1),
            ..ProbeConfig::new(target)
        })
        .unwrap();
        assert_eq!(
            (odd.interval, odd.ticks),
            (Duration::from_nanos(333_333_333), 3)
        );
        assert_eq!(odd.due(3), Duration::from_secs(1));
        for bad in [
            ProbeConfig {
                rate_hz: 0,
                ..ProbeConfig::new(target)
            },
            ProbeConfig {
                rate_hz: MAX_RATE_HZ + 1,
                ..ProbeConfig::new(target)
            },
            ProbeConfig {
                duration: Duration::ZERO,
                ..ProbeConfig::new(target)
            },
            ProbeConfig {
                timeout: Duration::ZERO,
                ..ProbeConfig::new(target)
            },
            ProbeConfig {
                rate_hz: MAX_RATE_HZ,
                duration: Duration::from_secs(3600),
                ..ProbeConfig::new(target)
            },
        ] {
            assert!(
                matches!(Plan::new(&bad), Err(HostError::Config(_))),
                "{bad:?}"
            );
        }
    }
}
