//! The syslog sender: RFC 5424 messages to one collector, over UDP (one
//! message a datagram, RFC 5426) or TCP (RFC 6587 octet counting,
//! `LEN SP MSG`), on a thread of its own fed by a bounded queue. A
//! collector that is down, slow or never reads costs queued messages
//! (dropped and counted by the writer when the queue is full), never the
//! writer's time: every socket call here has a timeout, a lost connection
//! is redialled with a doubling backoff, and a message is never cut in the
//! middle of its frame.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hafw_model::logging::Transport;

use crate::log::Log;

/// Messages waiting for the collector, at most.
pub const QUEUE: usize = 1024;
/// The longest message sent: RFC 5426 asks receivers for 2048 octets at
/// least; a longer record is cut (the file keeps it whole).
const MAX_MESSAGE: usize = 2048;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Frames one message for the transport.
pub fn frame(transport: Transport, msg: &str) -> Vec<u8> {
    let mut end = msg.len().min(MAX_MESSAGE);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    let msg = &msg.as_bytes()[..end];
    match transport {
        Transport::Udp => msg.to_vec(),
        Transport::Tcp => {
            let mut out = format!("{} ", msg.len()).into_bytes();
            out.extend_from_slice(msg);
            out
        }
    }
}

/// Runs until `stop` is set and the queue is closed.
pub fn run(
    addr: SocketAddr,
    transport: Transport,
    rx: Receiver<String>,
    stop: Arc<AtomicBool>,
    log: Log,
) {
    match transport {
        Transport::Udp => udp(addr, rx, stop, log),
        Transport::Tcp => tcp(addr, rx, stop, log),
    }
}

fn udp(addr: SocketAddr, rx: Receiver<String>, stop: Arc<AtomicBool>, log: Log) {
    let bind: SocketAddr = match addr {
        SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("a constant address"),
        SocketAddr::V6(_) => "[::]:0".parse().expect("a constant address"),
    };
    let sock = match UdpSocket::bind(bind).and_then(|s| {
        s.set_nonblocking(true)?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            log.warn(format!(
                "traffic log: no syslog socket ({e}); syslog records are lost"
            ));
            return;
        }
    };
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let msg = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Non-blocking: a full send buffer or an ICMP-refused collector
        // loses this datagram, as UDP syslog does.
        match sock.send_to(&frame(Transport::Udp, &msg), addr) {
            Ok(_) => failing = false,
            Err(e) if !failing => {
                failing = true;
                log.warn(format!("traffic log: syslog to udp {addr}: {e}"));
            }
            Err(_) => {}
        }
    }
}

fn tcp(addr: SocketAddr, rx: Receiver<String>, stop: Arc<AtomicBool>, log: Log) {
    let mut conn: Option<TcpStream> = None;
    let mut backoff = BACKOFF_FIRST;
    let mut next_dial = Instant::now();
    // The unsent rest of the message being written: a message is finished
    // before the next one starts, so a frame is never cut.
    let mut pending: Vec<u8> = Vec::new();
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            if Instant::now() < next_dial {
                std::thread::sleep(Duration::from_millis(50).min(next_dial - Instant::now()));
                continue;
            }
            match dial(addr) {
                Ok(s) => {
                    if failing {
                        log.info(format!("traffic log: syslog to tcp {addr} connected"));
                    }
                    conn = Some(s);
                    backoff = BACKOFF_FIRST;
                    failing = false;
                    // A message half sent on the old connection is lost
                    // with it: the collector discarded the broken frame.
                    pending.clear();
                }
                Err(e) => {
                    if !failing {
                        log.warn(format!(
                            "traffic log: syslog to tcp {addr}: {e}; retrying with backoff up to {} s",
                            BACKOFF_MAX.as_secs()
                        ));
                    }
                    failing = true;
                    next_dial = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        if pending.is_empty() {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(m) => pending = frame(Transport::Tcp, &m),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let Some(s) = conn.as_mut() else { continue };
        match s.write(&pending) {
            Ok(0) => conn = None,
            Ok(n) => {
                pending.drain(..n);
            }
            // A collector that does not read: wait here (the queue in front
            // fills and the writer drops, counted), keeping the frame whole.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                log.warn(format!(
                    "traffic log: syslog to tcp {addr}: {e}; reconnecting"
                ));
                failing = true;
                conn = None;
                next_dial = Instant::now() + backoff;
            }
        }
    }
}

fn dial(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6587 3.4.1: `MSG-LEN SP SYSLOG-MSG`, the length in octets.
    #[test]
    fn tcp_frames_count_octets_and_udp_sends_the_message_alone() {
        assert_eq!(
            frame(Transport::Tcp, "<134>1 é"),
            b"9 <134>1 \xc3\xa9".to_vec()
        );
        assert_eq!(frame(Transport::Udp, "<134>1 x"), b"<134>1 x".to_vec());
        let long = "é".repeat(2000);
        let f = frame(Transport::Udp, &long);
        assert!(f.len() <= MAX_MESSAGE && std::str::from_utf8(&f).is_ok());
    }

    /// A collector that accepts and never reads: the sender keeps its
    /// frame whole and the queue in front of it stays bounded (the writer
    /// side counts what did not fit); stopping ends the thread promptly.
    #[test]
    fn a_collector_that_never_reads_costs_only_the_queue() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || run(addr, Transport::Tcp, rx, s2, Log::quiet()));
        let (_held, _) = listener.accept().unwrap();
        let msg = "x".repeat(1500);
        let started = Instant::now();
        let (mut sent, mut dropped) = (0u64, 0u64);
        for _ in 0..20_000 {
            match tx.try_send(msg.clone()) {
                Ok(()) => sent += 1,
                Err(_) => dropped += 1,
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(dropped > 0, "sent {sent}");
        stop.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        t.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }
}
