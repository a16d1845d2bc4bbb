//! Socket plumbing shared by the servers: an accept loop that honours a
//! [`Stop`], a count of live connection threads, and the address form we
//! report to clients.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::error::HostError;
use super::Stop;

/// How often an idle accept loop looks at its stop handle. The standard
/// library cannot put a timeout on `accept`, so the listener is non-blocking
/// and polled; 5 ms keeps the added connect latency small next to a
/// failover's hundreds of milliseconds, at 200 wakeups a second.
const ACCEPT_POLL: Duration = Duration::from_millis(5);

/// Accepts connections until `stop` says so, handing each, in blocking mode,
/// to `handle`. Errors of one connection (aborted handshake, out of file
/// descriptors) are counted in the return value and do not end the loop.
/// Waits until a connection is pending, or [`ACCEPT_POLL`] passes (so
/// `stop` is seen): a connection is accepted the moment it arrives, not at
/// the next tick of a sleep loop (which capped `churn` at one connection per
/// client thread per tick).
fn wait_readable(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let mut fds = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the listener's open descriptor.
    let rc = unsafe { libc::poll(&mut fds, 1, ACCEPT_POLL.as_millis() as libc::c_int) };
    if rc < 0 {
        thread::sleep(ACCEPT_POLL);
    }
}

pub(crate) fn accept_until(
    listener: &TcpListener,
    stop: &Stop,
    mut handle: impl FnMut(TcpStream, SocketAddr),
) -> Result<u64, HostError> {
    listener
        .set_nonblocking(true)
        .map_err(HostError::io("cannot make the listener non-blocking"))?;
    let mut errors = 0;
    while !stop.is_stopped() {
        match listener.accept() {
            Ok((stream, peer)) => {
                // Whether an accepted socket inherits O_NONBLOCK differs by
                // platform; the handlers rely on blocking reads with timeouts.
                if stream.set_nonblocking(false).is_err() {
                    errors += 1;
                    continue;
                }
                handle(stream, canonical(peer));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(listener),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // EMFILE and friends: back off instead of spinning on them.
                errors += 1;
                thread::sleep(ACCEPT_POLL);
            }
        }
    }
    Ok(errors)
}

/// An IPv4 peer of a dual-stack socket shows as `::ffff:a.b.c.d`; clients
/// and the lab's checks compare against plain IPv4, so report that.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Counts live connection threads so a server can refuse past a limit and
/// wait for the rest when it stops.
#[derive(Clone, Default)]
pub(crate) struct Live(Arc<AtomicUsize>);

/// Held by one connection thread; dropping it (also on unwind) frees the slot.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Live {
    /// A slot if fewer than `max` are taken.
    pub(crate) fn take(&self, max: usize) -> Option<Slot> {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.0.clone()))
    }

    /// Waits up to `limit` for every slot to be freed; true if they were.
    pub(crate) fn drain(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while self.0.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= until {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_is_reported_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:80".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.7:80".parse().unwrap());
        let v6: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let live = Live::default();
        let a = live.take(2).unwrap();
        let _b = live.take(2).unwrap();
        assert!(live.take(2).is_none());
        drop(a);
        assert!(live.take(2).is_some());
        assert!(!live.drain(Duration::from_millis(10)));
    }
}
