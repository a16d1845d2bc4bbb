//! One TCP bulk stream between two namespaces: one sender thread writing
//! 64 KiB buffers for a fixed time, one receiver counting what arrives.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hafw_kernel::in_netns;

const WRITE: usize = 64 * 1024;

/// Streams from namespace `from` to `connect_to` for `duration`; the
/// server listens on `listen` in namespace `to`. Returns Gbit/s as the
/// receiver saw it, from accept to end of stream.
pub fn measure(
    from: &str,
    to: &str,
    listen: SocketAddr,
    connect_to: SocketAddr,
    duration: Duration,
) -> Result<f64, String> {
    // Sockets stay in the namespace they were made in, so only their
    // creation runs inside it; reading and writing happen on plain threads.
    let listener = in_netns(Some(to), || TcpListener::bind(listen))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("listen on {listen} in {to}: {e}"))?;
    let receiver = std::thread::spawn(move || -> std::io::Result<(u64, Duration)> {
        let mut conn = accept(&listener, Duration::from_secs(5))?;
        let started = Instant::now();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match conn.read(&mut buf)? {
                0 => return Ok((total, started.elapsed())),
                n => total += n as u64,
            }
        }
    });
    let sent = in_netns(Some(from), || {
        TcpStream::connect_timeout(&connect_to, Duration::from_secs(3))
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("connect to {connect_to} from {from}: {e}"))
    .and_then(|mut conn| {
        let buf = vec![0x5au8; WRITE];
        let end = Instant::now() + duration;
        while Instant::now() < end {
            conn.write_all(&buf)
                .map_err(|e| format!("send to {connect_to}: {e}"))?;
        }
        conn.shutdown(Shutdown::Write)
            .map_err(|e| format!("close stream: {e}"))
    });
    // On failure the receiver's accept times out and its thread ends.
    sent?;
    let (bytes, took) = receiver
        .join()
        .map_err(|_| "receiver thread panicked".to_string())?
        .map_err(|e| format!("receive: {e}"))?;
    Ok(bytes as f64 * 8.0 / took.as_secs_f64().max(1e-9) / 1e9)
}

/// `accept` that gives up after `timeout`, so a failed connect cannot
/// leave the receiver thread waiting forever.
fn accept(listener: &TcpListener, timeout: Duration) -> std::io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let end = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false)?;
                return Ok(conn);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}
