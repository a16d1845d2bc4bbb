//! Long-lived TCP sessions through the firewall: each connection to an echo
//! host exchanges a small message every few milliseconds on its own thread,
//! so a failover that loses the connection's state shows up as a reset, a
//! stall or a lost byte.
//!
//! A session is judged the way TCP judges it: it survives if no reset
//! arrives, every byte comes back intact and in order, and each echo comes
//! back within the session's patience, which must be longer than the
//! outage plus the retransmission backoff TCP adds on top of it
//! ([`patience_for`]). A fixed short socket timeout would call a session
//! lost that TCP carries across a slow cloud's move.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
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

/// How long an echo may take before the session counts as stalled, when
/// the caller expects no outage longer than about a second.
pub const STALL: Duration = Duration::from_secs(3);
/// Linux's minimum retransmission timeout (`TCP_RTO_MIN`): on a fast path
/// the first resend of a lost segment comes this long after it was sent.
const RTO_MIN: Duration = Duration::from_millis(200);
/// Room for the echo's own round trip and a busy machine's scheduling.
const SLACK: Duration = Duration::from_secs(1);

/// How long a session must be allowed to wait for an echo to survive an
/// outage of `outage`, as TCP would. A segment lost at the outage's start
/// is resent after RTO, 3 RTO, 7 RTO, ... (the timer doubles each time,
/// RFC 6298 5.5), so the first resend after the outage ends comes before
/// `2 × outage + RTO`; the wait is that plus slack, and never below
/// [`STALL`].
pub fn patience_for(outage: Duration) -> Duration {
    outage
        .saturating_mul(2)
        .saturating_add(RTO_MIN)
        .saturating_add(SLACK)
        .max(STALL)
}
/// How long the echo host may take to accept and greet.
const GREETING: Duration = Duration::from_secs(30);

impl Sessions {
    /// Opens `n` connections to `target` from namespace `ns`, each
    /// exchanging 16 bytes every `every`, each echo allowed [`STALL`].
    pub fn open(ns: &str, target: SocketAddr, n: usize, every: Duration) -> Sessions {
        Sessions::open_patient(ns, target, n, every, STALL)
    }

    /// As [`Sessions::open`], each echo allowed `patience` (see
    /// [`patience_for`]) before the session counts as stalled.
    pub fn open_patient(
        ns: &str,
        target: SocketAddr,
        n: usize,
        every: Duration,
        patience: Duration,
    ) -> Sessions {
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
                exchange(i, stream, every, patience, &stop)
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

    /// Stops every exchange and returns each session's result. An echo
    /// still on its way is waited for (up to the patience): a session is
    /// kept only if every byte it sent came back.
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

fn exchange(
    i: usize,
    stream: TcpStream,
    every: Duration,
    patience: Duration,
    stop: &AtomicBool,
) -> SessionResult {
    let mut r = SessionResult {
        local: stream.local_addr().ok(),
        ..Default::default()
    };
    // The greeting waits on the echo host accepting, which a saturated
    // host may take seconds to do: that is the load, not the firewall.
    let _ = stream.set_read_timeout(Some(GREETING.max(patience)));
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
    let mut seq: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let msg = format!("{i:06}:{seq:09}\n");
        let t = Instant::now();
        if let Err(e) = writer.write_all(msg.as_bytes()) {
            r.failure = Some(format!(
                "{} on write after {} exchanges",
                lost_because(&e),
                r.exchanges
            ));
            return r;
        }
        let mut back = vec![0u8; msg.len()];
        if let Err(e) = read_within(&mut reader, &mut back, t + patience) {
            r.failure = Some(match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => format!(
                    "no echo within {:.1} s after {} exchanges (an outage longer than the wait)",
                    patience.as_secs_f64(),
                    r.exchanges
                ),
                _ => format!(
                    "{} on read after {} exchanges",
                    lost_because(&e),
                    r.exchanges
                ),
            });
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

/// Fills `buf` before `deadline`, however many reads that takes: the
/// deadline bounds the whole echo, not each read.
fn read_within(reader: &mut impl ReadTimeout, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        reader.set_timeout(left)?;
        match reader.read(&mut buf[got..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A reader whose next reads may be given a timeout.
trait ReadTimeout: Read {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()>;
}

impl ReadTimeout for BufReader<TcpStream> {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        self.get_ref().set_read_timeout(Some(t))
    }
}

/// Why an error ended the session, in TCP's terms.
fn lost_because(e: &io::Error) -> String {
    match e.kind() {
        ErrorKind::ConnectionReset => "reset".into(),
        ErrorKind::UnexpectedEof => "closed by the peer".into(),
        ErrorKind::BrokenPipe => "reset (broken pipe)".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patience_outlasts_the_outage_and_tcp_backoff() {
        assert_eq!(patience_for(Duration::ZERO), STALL);
        assert_eq!(patience_for(Duration::from_millis(500)), STALL);
        // A 2.2 s outage: TCP resends at 0.2, 0.6, 1.4, 3.0 s, so the echo
        // may come back just after 3 s; the old fixed 3 s gave up first.
        let two = patience_for(Duration::from_millis(2_200));
        assert_eq!(two, Duration::from_millis(5_600));
        // Every resend time up to the first one past the outage is within.
        for outage_ms in [1_000u64, 2_200, 5_200, 9_000] {
            let outage = Duration::from_millis(outage_ms);
            let mut resend = RTO_MIN;
            let mut backoff = RTO_MIN;
            while resend < outage {
                backoff *= 2;
                resend += backoff;
            }
            assert!(resend < patience_for(outage), "{outage_ms} ms: {resend:?}");
        }
    }
}
