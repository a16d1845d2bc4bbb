//! The prober: a steady stream of numbered, timestamped probes, and a
//! report of what came back. At the default 1000 Hz a lost run of N probes
//! is an outage of about N ms, which is how the lab times a failover from
//! the client's side. The same prober is `hafw probe`, run on any host.
//!
//! What a probe is ([`Method`]): a UDP datagram to the lab's echo host
//! (which says the source it saw, so a moved NAT shows); an ICMP echo
//! request (the seed's own failover test is a ping); a TCP connection; an
//! HTTP GET. Datagram probes (UDP, ICMP) are matched to their replies by
//! a receiver thread; connection probes (TCP, HTTP) each run on one of a
//! bounded set of workers, and a probe that finds every worker busy is
//! counted as a send error, never queued without bound.
//!
//! Pacing follows an absolute schedule (probe k is due at start + k ×
//! interval) so sleep overshoot does not accumulate into drift. A tick that
//! wakes late sends at once, and the ticks after it catch up, but never more
//! than [`MAX_CATCH_UP`] behind: a longer stall (the machine was busy) drops
//! ticks rather than bursting, and the report counts them.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::ask::nonce;
use super::echo::decode_reply;
use super::error::{is_timeout, HostError};
use super::icmp::IcmpSocket;
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
/// At most this many connection probes in flight (TCP, HTTP).
pub const MAX_WORKERS: usize = 256;

/// What one probe is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// A UDP datagram to an echo host ([`super::echo`]), which answers with
    /// the source address it saw.
    Udp,
    /// An ICMP echo request (IPv4; a ping socket, or a raw one as root).
    Icmp,
    /// A TCP connection, closed as soon as it is established.
    Tcp,
    /// An HTTP GET of `path`; any HTTP response counts as an answer.
    Http { path: String },
}

impl Method {
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Udp => "udp",
            Method::Icmp => "icmp",
            Method::Tcp => "tcp",
            Method::Http { .. } => "http",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// An echo host ([`super::echo`]) for UDP; the host (port unused) for
    /// ICMP; the listener for TCP and HTTP.
    pub target: SocketAddr,
    pub method: Method,
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
            method: Method::Udp,
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
    let run = nonce();
    let (sends, skipped_ticks, receipts) = match &config.method {
        Method::Udp => probe_udp(config, &plan, run, stop)?,
        Method::Icmp => probe_icmp(config, &plan, run, stop)?,
        Method::Tcp | Method::Http { .. } => probe_connections(config, &plan, run, stop)?,
    };
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

type Outcome = (Vec<Sent>, u64, Receipts);

fn probe_udp(
    config: &ProbeConfig,
    plan: &Plan,
    run: u64,
    stop: &Stop,
) -> Result<Outcome, HostError> {
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
    let target = config.target;
    datagrams(
        config,
        plan,
        run,
        stop,
        move |p: &ProbePayload| socket.send_to(&p.encode(), target).is_err(),
        move |buf: &mut [u8], wait: Duration| {
            rx_socket
                .set_read_timeout(Some(wait))
                .map_err(HostError::io("cannot set the probe read timeout"))?;
            let (n, from) = match rx_socket.recv_from(buf) {
                Ok(got) => got,
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                    return Ok(None)
                }
                Err(source) => {
                    return Err(HostError::Io {
                        context: "receiving probe replies".into(),
                        source,
                    })
                }
            };
            if canonical(from) != target {
                return Ok(Some(Got::Foreign));
            }
            Ok(Some(
                decode_reply(&buf[..n])
                    .ok()
                    .and_then(|(seen, payload)| {
                        ProbePayload::decode(payload).map(|p| Got::Reply(seen, p))
                    })
                    .unwrap_or(Got::Malformed),
            ))
        },
    )
}

fn probe_icmp(
    config: &ProbeConfig,
    plan: &Plan,
    run: u64,
    stop: &Stop,
) -> Result<Outcome, HostError> {
    let IpAddr::V4(host) = config.target.ip() else {
        return Err(HostError::Config(format!(
            "ICMP probes are IPv4 only, got {}",
            config.target.ip()
        )));
    };
    let socket = Arc::new(IcmpSocket::open()?);
    let tx = socket.clone();
    let seen = SocketAddr::new(host.into(), 0);
    datagrams(
        config,
        plan,
        run,
        stop,
        move |p: &ProbePayload| tx.send(host, p.seq as u16, &p.encode()).is_err(),
        move |buf: &mut [u8], wait: Duration| {
            let got = socket.recv(buf, wait).map_err(|source| HostError::Io {
                context: "receiving ICMP echo replies".into(),
                source,
            })?;
            Ok(got.map(|(from, payload)| {
                if from != host {
                    Got::Foreign
                } else {
                    ProbePayload::decode(payload)
                        .map(|p| Got::Reply(seen, p))
                        .unwrap_or(Got::Malformed)
                }
            }))
        },
    )
}

/// What the receiver made of one datagram.
enum Got {
    /// From an address other than the target.
    Foreign,
    /// From the target, but not a reply to one of this run's probes.
    Malformed,
    /// A reply: the address the far end saw, and the probe it answers.
    Reply(SocketAddr, ProbePayload),
}

/// A datagram run: `emit` sends a probe (true if the kernel refused it),
/// `next` waits up to the given time for a reply.
fn datagrams(
    config: &ProbeConfig,
    plan: &Plan,
    run: u64,
    stop: &Stop,
    mut emit: impl FnMut(&ProbePayload) -> bool,
    next: impl FnMut(&mut [u8], Duration) -> Result<Option<Got>, HostError> + Send + 'static,
) -> Result<Outcome, HostError> {
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        receive_until_ns: AtomicU64::new(u64::MAX),
    });
    let start = Instant::now();
    let receiver = {
        let shared = shared.clone();
        let total = plan.ticks;
        thread::Builder::new()
            .name("probe-rx".into())
            .spawn(move || receive(next, run, start, total, &shared))
            .map_err(HostError::io("cannot start the probe receiver"))?
    };
    let (sends, skipped_ticks) = send(&mut emit, run, start, plan, stop, &shared);
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
    Ok((sends, skipped_ticks, receipts))
}

/// A connection run: each probe is handed to a free worker, which connects
/// (and for HTTP asks) within the timeout and records the answer.
fn probe_connections(
    config: &ProbeConfig,
    plan: &Plan,
    run: u64,
    stop: &Stop,
) -> Result<Outcome, HostError> {
    // Enough workers for every probe of one timeout to be in flight.
    let in_flight = config.timeout.as_nanos() / plan.interval.as_nanos().max(1) + 2;
    let workers = usize::try_from(in_flight)
        .unwrap_or(MAX_WORKERS)
        .min(MAX_WORKERS);
    let (jobs, queue): (SyncSender<ProbePayload>, Receiver<ProbePayload>) =
        mpsc::sync_channel(workers);
    let queue = Arc::new(Mutex::new(queue));
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut threads = Vec::with_capacity(workers);
    for i in 0..workers {
        let (queue, arrivals, method) = (queue.clone(), arrivals.clone(), config.method.clone());
        let (target, timeout) = (config.target, config.timeout);
        let t = thread::Builder::new()
            .name(format!("probe-{i}"))
            .spawn(move || loop {
                let job = match queue.lock() {
                    Ok(q) => q.recv(),
                    Err(_) => return,
                };
                let Ok(p) = job else { return };
                if let Some(seen) = transact(&method, target, timeout) {
                    if let Ok(mut a) = arrivals.lock() {
                        a.push(Arrival {
                            seq: p.seq,
                            sent_ns: p.sent_ns,
                            at: start.elapsed(),
                            seen,
                        });
                    }
                }
            })
            .map_err(HostError::io("cannot start a probe worker"))?;
        threads.push(t);
    }
    let shared = Shared {
        sent: AtomicU64::new(0),
        receive_until_ns: AtomicU64::new(u64::MAX),
    };
    let mut emit = |p: &ProbePayload| match jobs.try_send(*p) {
        Ok(()) => false,
        // Every worker busy: the probe is not sent, and counted.
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => true,
    };
    let (sends, skipped_ticks) = send(&mut emit, run, start, plan, stop, &shared);
    drop(jobs);
    for t in threads {
        let _ = t.join();
    }
    let mut arrivals = Arc::try_unwrap(arrivals)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default();
    arrivals.sort_by_key(|a| a.at);
    Ok((
        sends,
        skipped_ticks,
        Receipts {
            arrivals,
            foreign: 0,
            malformed: 0,
        },
    ))
}

/// One connection probe; the address answered from, or `None` if it was
/// lost (refused, reset, timed out).
fn transact(method: &Method, target: SocketAddr, timeout: Duration) -> Option<SocketAddr> {
    match method {
        Method::Http { path } => super::fetch(&target.to_string(), path, timeout)
            .ok()
            .map(|f| f.peer),
        _ => TcpStream::connect_timeout(&target, timeout)
            .ok()
            .and_then(|s| s.peer_addr().ok()),
    }
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
    emit: &mut dyn FnMut(&ProbePayload) -> bool,
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
        let failed = emit(&payload);
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
    mut next: impl FnMut(&mut [u8], Duration) -> Result<Option<Got>, HostError>,
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
        let Some(got) = next(&mut buf, wait)? else {
            continue;
        };
        let at = start.elapsed();
        let reply = match got {
            Got::Foreign => {
                out.foreign += 1;
                continue;
            }
            Got::Malformed => None,
            Got::Reply(seen, p) => usize::try_from(p.seq)
                .ok()
                .filter(|&i| i < answered.len() && p.run == run)
                .map(|slot| (seen, p, slot)),
        };
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
