//! Small-packet forwarding rate: 64-byte UDP frames (18 bytes of payload)
//! over many flows, from the server namespace (10.0.10.10, one socket per
//! source port) to an "internet" address in the client namespace
//! (203.0.113.10:9), so with the ruleset every packet crosses the
//! firewall's conntrack, the `servers-out` rule's zone pair and the SNAT.
//!
//! Each flow is first made established (one datagram out, one echo back),
//! as real flows are, so the measured packets meet the forward chain's
//! `ct state established` path, and the fast path can offload them. Then
//! one pinned sender thread (`sched_setaffinity`, CPU 0) writes batches
//! with `sendmmsg`, round robin over the flows, for a fixed time; a
//! receiver pinned to CPU 1 drains its socket. The rate is what reached
//! the client's interface (its rx_packets counter over the window): the
//! firewall's forwarding rate, whatever the receiving socket keeps up with.
//!
//! On veth every hop runs in softirq on the CPU that sent the packet (veth
//! queues to that CPU's backlog), so the sender's CPU does the syscall and
//! all three namespaces' forwarding; per-CPU softirq and system time over
//! the window are reported, so the figure says what limited it.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hafw_kernel::in_netns;

/// 14 Ethernet + 20 IPv4 + 8 UDP + 18 = 60 bytes on the wire of a veth;
/// 64 with the FCS a real NIC adds: the classic minimum frame.
pub const PAYLOAD: usize = 18;
/// The "internet" address the flows go to, on the client's `lo`.
pub const TARGET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const TARGET_PORT: u16 = 9;
/// Source ports `FIRST_PORT..FIRST_PORT + flows`.
const FIRST_PORT: u16 = 20000;
/// Datagrams per `sendmmsg` call.
const BATCH: usize = 32;
/// Sent before the window opens, so the window sees the steady state.
const WARM_UP: Duration = Duration::from_millis(300);

/// One measurement.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Packets per second that reached the client's interface.
    pub pps: f64,
    /// Packets per second the sender's `sendmmsg` accepted.
    pub sent_pps: f64,
    /// Per CPU (0, 1): share of the window not idle, in softirq and in
    /// system time (from /proc/stat, so other processes' time counts too).
    pub busy: [f64; 2],
    pub softirq: [f64; 2],
    pub system: [f64; 2],
}

/// Runs one measurement of `flows` flows for `duration`: sender in
/// namespace `from`, receiver in `to`, whose interface `to_dev` is counted.
pub fn measure(
    from: &str,
    to: &str,
    to_dev: &str,
    source: Ipv4Addr,
    flows: u16,
    duration: Duration,
) -> Result<Rate, String> {
    let target = SocketAddr::from((TARGET, TARGET_PORT));
    let receiver = in_netns(Some(to), || UdpSocket::bind(target))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("bind {target} in {to}: {e}"))?;
    let socks = in_netns(Some(from), || -> std::io::Result<Vec<UdpSocket>> {
        (0..flows)
            .map(|i| {
                let s = UdpSocket::bind(SocketAddr::from((source, FIRST_PORT + i)))?;
                s.connect(target)?;
                Ok(s)
            })
            .collect()
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("open {flows} UDP sockets on {source} in {from}: {e}"))?;
    establish(&socks, &receiver)?;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let drain = {
        let stop = stop.clone();
        let r = receiver.try_clone().map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            pin(1);
            let _ = r.set_read_timeout(Some(Duration::from_millis(100)));
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = r.recv(&mut buf);
            }
        })
    };
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || send_loop(&socks, &stop, &sent))
    };
    std::thread::sleep(WARM_UP);
    let (rx0, sent0, cpu0) = (
        rx_packets(to, to_dev)?,
        sent.load(Ordering::Relaxed),
        cpu_times()?,
    );
    let t0 = Instant::now();
    std::thread::sleep(duration);
    let (rx1, sent1, cpu1) = (
        rx_packets(to, to_dev)?,
        sent.load(Ordering::Relaxed),
        cpu_times()?,
    );
    let took = t0.elapsed().as_secs_f64().max(1e-9);
    stop.store(true, Ordering::Relaxed);
    let send_error = sender.join().map_err(|_| "sender thread panicked")?;
    let _ = drain.join();
    if let Some(e) = send_error {
        return Err(format!("sendmmsg from {from}: {e}"));
    }
    let share = |i: usize, field: fn(&CpuTimes) -> u64| -> f64 {
        match (cpu0.get(i), cpu1.get(i)) {
            (Some(a), Some(b)) => {
                let total = b.total.saturating_sub(a.total).max(1);
                field(b).saturating_sub(field(a)) as f64 / total as f64
            }
            _ => f64::NAN,
        }
    };
    Ok(Rate {
        pps: rx1.saturating_sub(rx0) as f64 / took,
        sent_pps: sent1.saturating_sub(sent0) as f64 / took,
        busy: [share(0, |c| c.busy), share(1, |c| c.busy)],
        softirq: [share(0, |c| c.softirq), share(1, |c| c.softirq)],
        system: [share(0, |c| c.system), share(1, |c| c.system)],
    })
}

/// One datagram per flow, each echoed by the receiver, so conntrack has
/// seen both directions of every flow (state established) before the
/// window; for plain forwarding the echo just goes back unfiltered.
fn establish(socks: &[UdpSocket], receiver: &UdpSocket) -> Result<(), String> {
    receiver
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let mut echoed = 0;
    for s in socks {
        s.send(&[0u8; PAYLOAD])
            .map_err(|e| format!("first datagram of a flow: {e}"))?;
        if let Ok((_, from)) = receiver.recv_from(&mut buf) {
            if receiver.send_to(&buf[..PAYLOAD], from).is_ok() {
                echoed += 1;
            }
        }
    }
    // The echoes are not read: they only need to cross the firewall.
    if echoed < socks.len() {
        return Err(format!(
            "only {echoed} of {} flows reached the receiver before the measurement; the path through the firewall is broken",
            socks.len()
        ));
    }
    std::thread::sleep(Duration::from_millis(100));
    Ok(())
}

/// Round robin over the flows, `BATCH` datagrams per call, until `stop`.
/// Returns the error that ended it, if any (ENOBUFS is the qdisc full, not
/// an error: it is retried).
fn send_loop(socks: &[UdpSocket], stop: &AtomicBool, sent: &AtomicU64) -> Option<String> {
    pin(0);
    let payload = [0x5au8; PAYLOAD];
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: PAYLOAD,
        })
        .collect();
    // SAFETY: mmsghdr is plain data; the zeroed fields mean no address
    // (the sockets are connected), no control data, no flags.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
        .collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let fd = socks[i % socks.len()].as_raw_fd();
        i = i.wrapping_add(1);
        // SAFETY: msgs holds BATCH initialised headers pointing at iov
        // and payload, which outlive the call.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), BATCH as libc::c_uint, 0) };
        if n > 0 {
            sent.fetch_add(n as u64, Ordering::Relaxed);
        } else if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::ECONNREFUSED) => {}
                _ => return Some(e.to_string()),
            }
        }
    }
    None
}

/// Pins the calling thread to `cpu` (best effort: on a one-CPU host the
/// second pin fails and the thread runs where it may).
fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain data, zeroed is the empty set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// `rx_packets` of `dev` in namespace `ns`, from `ip -s -j link`.
fn rx_packets(ns: &str, dev: &str) -> Result<u64, String> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-s", "-j", "link", "show", "dev", dev])
        .output()
        .map_err(|e| format!("run ip -s link in {ns}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip -n {ns} -s link show dev {dev}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("ip -s -j link in {ns}: {e}"))?;
    v.get(0)
        .and_then(|l| l.get("stats64"))
        .and_then(|s| s.get("rx"))
        .and_then(|r| r.get("packets"))
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("no stats64.rx.packets for {dev} in {ns}"))
}

struct CpuTimes {
    total: u64,
    busy: u64,
    system: u64,
    softirq: u64,
}

/// Per-CPU jiffies from /proc/stat (`cpuN user nice system idle iowait irq
/// softirq steal ...`), in CPU order.
fn cpu_times() -> Result<Vec<CpuTimes>, String> {
    let text =
        std::fs::read_to_string("/proc/stat").map_err(|e| format!("read /proc/stat: {e}"))?;
    Ok(parse_cpu_times(&text))
}

fn parse_cpu_times(text: &str) -> Vec<CpuTimes> {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .filter_map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .take(8)
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            (v.len() == 8).then(|| CpuTimes {
                total: v.iter().sum(),
                busy: v.iter().sum::<u64>() - v[3] - v[4],
                system: v[2],
                softirq: v[6],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lines_are_read_per_cpu() {
        let stat = "cpu  10 0 20 100 0 0 5 0 0 0\ncpu0 1 0 2 10 0 0 3 0 0 0\ncpu1 4 0 5 20 0 0 6 1 0 0\nintr 5\n";
        let c = parse_cpu_times(stat);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].total, c[0].system, c[0].softirq), (16, 2, 3));
        assert_eq!(c[0].busy, 6);
        assert_eq!((c[1].total, c[1].system, c[1].softirq), (36, 5, 6));
        assert!(parse_cpu_times("cpu0 1 2\n").is_empty());
    }
}
