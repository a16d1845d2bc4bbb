//! The echo host: tells each client the source address it saw, so the
//! seed's outbound test can check that traffic leaves with the EIP.
//!
//! UDP: each datagram is answered with `seen <ip>:<port>\n` followed by the
//! datagram's payload (see [`encode_reply`]). TCP on the same port: on
//! connect the server writes the same `seen` line, then echoes bytes until
//! EOF, with no idle timeout, so session-survival tests can hold a
//! connection open across a failover.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::error::{is_timeout, HostError};
use super::sock::{accept_until, canonical, Live};
use super::Stop;

/// How often blocked reads look at the stop handle.
const STOP_POLL: Duration = Duration::from_millis(50);
/// A TCP peer that stops reading is dropped after this, so a stuck client
/// cannot hold a thread for ever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TCP_CONNECTIONS: usize = 1024;

#[derive(Debug, Clone)]
pub struct EchoConfig {
    pub addr: SocketAddr,
    /// Also serve TCP on the same port.
    pub tcp: bool,
}

impl EchoConfig {
    pub fn new(addr: SocketAddr) -> Self {
        EchoConfig { addr, tcp: true }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EchoStats {
    pub datagrams: u64,
    /// Replies the kernel refused (no route, buffer full).
    pub reply_errors: u64,
    pub tcp_connections: u64,
    /// TCP connections closed at once because too many were open.
    pub tcp_refused: u64,
    pub tcp_bytes: u64,
}

pub struct EchoServer {
    udp: UdpSocket,
    tcp: Option<TcpListener>,
}

/// Binds `config.addr` and serves until `stop` says so.
pub fn serve_echo(config: EchoConfig, stop: &Stop) -> Result<EchoStats, HostError> {
    EchoServer::bind(config)?.run(stop)
}

/// The UDP reply to `payload` from `seen`.
pub fn encode_reply(seen: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut out = seen_line(seen).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Splits a reply into the address the echo host saw and the payload.
pub fn decode_reply(reply: &[u8]) -> Result<(SocketAddr, &[u8]), HostError> {
    let bad = || {
        let shown = String::from_utf8_lossy(&reply[..reply.len().min(64)]).into_owned();
        HostError::Protocol(format!(
            "an echo reply must start with \"seen <ip>:<port>\\n\", got {shown:?}"
        ))
    };
    let nl = reply.iter().position(|&b| b == b'\n').ok_or_else(bad)?;
    let line = std::str::from_utf8(&reply[..nl]).map_err(|_| bad())?;
    let seen = line
        .strip_prefix("seen ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(bad)?;
    Ok((seen, &reply[nl + 1..]))
}

/// The first line of every answer, UDP or TCP.
pub fn seen_line(seen: SocketAddr) -> String {
    format!("seen {seen}\n")
}

impl EchoServer {
    pub fn bind(config: EchoConfig) -> Result<Self, HostError> {
        // With port 0 the UDP port is picked first and TCP must get the
        // same number; another program may hold it for TCP, so try anew.
        let tries = if config.addr.port() == 0 { 20 } else { 1 };
        let mut last = None;
        for _ in 0..tries {
            let udp = UdpSocket::bind(config.addr).map_err(|source| HostError::Bind {
                addr: config.addr,
                source,
            })?;
            if !config.tcp {
                return Ok(EchoServer { udp, tcp: None });
            }
            let addr = udp
                .local_addr()
                .map_err(HostError::io("cannot read the UDP port"))?;
            match TcpListener::bind(addr) {
                Ok(tcp) => {
                    return Ok(EchoServer {
                        udp,
                        tcp: Some(tcp),
                    })
                }
                Err(source) => last = Some(HostError::Bind { addr, source }),
            }
        }
        Err(last.unwrap_or_else(|| HostError::Config("no port could be bound".into())))
    }

    /// The bound address (UDP and, if served, TCP share it).
    pub fn local_addr(&self) -> Result<SocketAddr, HostError> {
        self.udp
            .local_addr()
            .map_err(HostError::io("cannot read the echo server's address"))
    }

    pub fn run(self, stop: &Stop) -> Result<EchoStats, HostError> {
        let counters = Arc::new(Counters::default());
        let udp_thread = {
            let (stop, counters, udp) = (stop.clone(), counters.clone(), self.udp);
            thread::Builder::new()
                .name("echo-udp".into())
                .spawn(move || serve_udp(&udp, &stop, &counters))
                .map_err(HostError::io("cannot start the UDP echo thread"))?
        };
        let tcp = match &self.tcp {
            Some(listener) => serve_tcp(listener, stop, &counters),
            None => Ok(()),
        };
        if tcp.is_err() {
            // Do not leave the UDP half running after the TCP half failed.
            stop.stop();
        }
        let udp = udp_thread.join().unwrap_or_else(|_| {
            Err(HostError::Io {
                context: "UDP echo thread".into(),
                source: io::Error::other("panicked"),
            })
        });
        tcp.and(udp)?;
        Ok(counters.snapshot())
    }
}

#[derive(Default)]
struct Counters {
    datagrams: AtomicU64,
    reply_errors: AtomicU64,
    tcp_connections: AtomicU64,
    tcp_refused: AtomicU64,
    tcp_bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> EchoStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EchoStats {
            datagrams: get(&self.datagrams),
            reply_errors: get(&self.reply_errors),
            tcp_connections: get(&self.tcp_connections),
            tcp_refused: get(&self.tcp_refused),
            tcp_bytes: get(&self.tcp_bytes),
        }
    }
}

fn serve_udp(udp: &UdpSocket, stop: &Stop, counters: &Counters) -> Result<(), HostError> {
    udp.set_read_timeout(Some(STOP_POLL))
        .map_err(HostError::io("cannot set the UDP read timeout"))?;
    let mut buf = vec![0u8; 65536];
    while !stop.is_stopped() {
        let (n, from) = match udp.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            // A failed receive concerns one datagram; keep serving, but do
            // not spin if the error repeats.
            Err(_) => {
                counters.reply_errors.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        counters.datagrams.fetch_add(1, Ordering::Relaxed);
        let reply = encode_reply(canonical(from), &buf[..n]);
        if udp.send_to(&reply, from).is_err() {
            counters.reply_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn serve_tcp(
    listener: &TcpListener,
    stop: &Stop,
    counters: &Arc<Counters>,
) -> Result<(), HostError> {
    let live = Live::default();
    accept_until(listener, stop, |stream, peer| {
        counters.tcp_connections.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = live.take(MAX_TCP_CONNECTIONS) else {
            counters.tcp_refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (stop, counters) = (stop.clone(), counters.clone());
        // If the thread cannot start, the stream is dropped with the
        // closure, which closes the connection; nothing else to undo.
        let _ = thread::Builder::new()
            .name("echo-tcp".into())
            .spawn(move || {
                let _slot = slot;
                let _ = echo_stream(stream, peer, &stop, &counters);
            });
    })?;
    live.drain(STOP_POLL * 4);
    Ok(())
}

/// Writes the seen line, then echoes until EOF or `stop`.
fn echo_stream(
    mut stream: TcpStream,
    peer: SocketAddr,
    stop: &Stop,
    counters: &Counters,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    stream.set_read_timeout(Some(STOP_POLL))?;
    stream.write_all(seen_line(peer).as_bytes())?;
    let mut buf = [0u8; 16 * 1024];
    while !stop.is_stopped() {
        match stream.read(&mut buf) {
            Ok(0) => return stream.shutdown(Shutdown::Write),
            Ok(n) => {
                stream.write_all(&buf[..n])?;
                counters.tcp_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip() {
        let seen: SocketAddr = "198.51.100.7:4242".parse().unwrap();
        let reply = encode_reply(seen, b"a\nb\x00");
        assert_eq!(&reply[..], b"seen 198.51.100.7:4242\na\nb\x00");
        assert_eq!(decode_reply(&reply).unwrap(), (seen, &b"a\nb\x00"[..]));
        let v6: SocketAddr = "[2001:db8::7]:1".parse().unwrap();
        assert_eq!(
            decode_reply(&encode_reply(v6, b"")).unwrap(),
            (v6, &b""[..])
        );
    }

    #[test]
    fn bad_replies_are_errors() {
        for bad in [
            &b""[..],
            b"seen 1.2.3.4:5",
            b"saw 1.2.3.4:5\n",
            b"seen 1.2.3.4\n",
            b"seen \xff\n",
        ] {
            assert!(decode_reply(bad).is_err(), "{bad:?}");
        }
    }
}
