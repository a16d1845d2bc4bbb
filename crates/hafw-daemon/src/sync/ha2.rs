//! The HA2 link: one TCP connection between the nodes over the HA2
//! interfaces, carrying session sync and config sync. Every frame is a
//! 4-byte big-endian length and a sealed envelope (`Kind::Ha2Frame`), so the
//! stream is authenticated, encrypted and replay-protected like HA1. The
//! node with the lower id dials, the other accepts; either side reconnects
//! after a failure. A frame that does not open is counted and dropped; a
//! length over the envelope limit closes the connection (the stream can no
//! longer be trusted to be in sync).
//!
//! The link is `Connected` only once a frame from the peer opened: each
//! side first sends a hello (an empty payload), and again whenever what it
//! echoes of the peer's run changed, since the peer accepts only frames
//! that echo its current run (see `hafw_ha::wire::open`). After a restart
//! of either side that takes one more hello; without it the first
//! payloads would be refused. A connection that opens nothing within
//! [`HELLO_TIMEOUT`] is closed and dialled again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hafw_ha::wire::{Kind, KindSealer, Opener, PairKey, MAX_ENVELOPE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a connection may stay without a frame that opens.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum Ha2Event {
    Connected,
    Disconnected(String),
    /// A payload that opened: the peer's plaintext.
    Payload(Vec<u8>),
}

#[derive(Default, Debug)]
pub struct Ha2Counters {
    pub frames_out: AtomicU64,
    pub frames_in: AtomicU64,
    pub rejected: AtomicU64,
    pub reconnects: AtomicU64,
}

pub struct Ha2 {
    pub to_peer: mpsc::UnboundedSender<Vec<u8>>,
    pub events: mpsc::UnboundedReceiver<Ha2Event>,
    pub counters: Arc<Ha2Counters>,
}

/// Starts the link on the current runtime.
pub fn start(
    local: SocketAddr,
    peer: SocketAddr,
    dial: bool,
    sealer: Arc<Mutex<KindSealer>>,
    key: &PairKey,
    own_id: u32,
    peer_id: u32,
) -> Ha2 {
    let (to_peer, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    let (ev_tx, events) = mpsc::unbounded_channel();
    let counters = Arc::new(Ha2Counters::default());
    let c = counters.clone();
    let own_epoch = match sealer.lock() {
        Ok(s) => s.epoch(),
        Err(p) => p.into_inner().epoch(),
    };
    let mut opener = Opener::new(key, own_id, peer_id, own_epoch);
    let origin = Instant::now();
    tokio::spawn(async move {
        let listener = if dial {
            None
        } else {
            TcpListener::bind(local).await.ok()
        };
        loop {
            let stream = if dial {
                match tokio::net::TcpSocket::new_v4().and_then(|s| {
                    s.bind(SocketAddr::new(local.ip(), 0))?;
                    Ok(s)
                }) {
                    Ok(s) => {
                        match tokio::time::timeout(Duration::from_secs(2), s.connect(peer)).await {
                            Ok(Ok(st)) => Some(st),
                            _ => None,
                        }
                    }
                    Err(_) => None,
                }
            } else {
                match &listener {
                    Some(l) => match l.accept().await {
                        // Only the peer's HA2 address may connect.
                        Ok((st, from)) if from.ip() == peer.ip() => Some(st),
                        _ => None,
                    },
                    None => None,
                }
            };
            let Some(stream) = stream else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let link = Link {
                sealer: &sealer,
                opener: &mut opener,
                events: &ev_tx,
                counters: &c,
                origin,
            };
            let (why, connected) = serve(stream, &mut outgoing, link).await;
            c.reconnects.fetch_add(1, Ordering::Relaxed);
            if connected && ev_tx.send(Ha2Event::Disconnected(why)).is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ha2 {
        to_peer,
        events,
        counters,
    }
}

/// What one connection works with.
struct Link<'a> {
    sealer: &'a Arc<Mutex<KindSealer>>,
    opener: &'a mut Opener,
    events: &'a mpsc::UnboundedSender<Ha2Event>,
    counters: &'a Ha2Counters,
    origin: Instant,
}

/// Serves one connection until it fails; returns why, and whether it was
/// reported `Connected`.
async fn serve(
    stream: TcpStream,
    outgoing: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    link: Link<'_>,
) -> (String, bool) {
    let Link {
        sealer,
        opener,
        events,
        counters: c,
        origin,
    } = link;
    let (mut rd, mut wr) = stream.into_split();
    let mut len = [0u8; 4];
    let mut connected = false;
    if let Err(e) = send(&mut wr, sealer, &[]).await {
        return (e, connected);
    }
    let hello_deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    loop {
        tokio::select! {
            r = rd.read_exact(&mut len) => {
                if let Err(e) = r {
                    return (format!("read: {e}"), connected);
                }
                let n = u32::from_be_bytes(len) as usize;
                if n > MAX_ENVELOPE_LEN {
                    return (format!("a frame of {n} bytes is over the limit"), connected);
                }
                let mut buf = vec![0u8; n];
                if let Err(e) = rd.read_exact(&mut buf).await {
                    return (format!("read: {e}"), connected);
                }
                let echo_before = opener.echo();
                let opened = opener.open_bytes(crate::ha::wire_now(origin.elapsed()), &buf);
                let echo = opener.echo();
                if echo != echo_before {
                    // Tell the peer at once that we heard its run.
                    match sealer.lock() {
                        Ok(mut s) => s.set_echo(echo),
                        Err(_) => return ("sealer poisoned".into(), connected),
                    }
                    if let Err(e) = send(&mut wr, sealer, &[]).await {
                        return (e, connected);
                    }
                }
                match opened {
                    Ok(o) if o.kind == Kind::Ha2Frame => {
                        c.frames_in.fetch_add(1, Ordering::Relaxed);
                        if !connected {
                            connected = true;
                            if events.send(Ha2Event::Connected).is_err() {
                                return ("closed".into(), connected);
                            }
                        }
                        // An empty payload is a hello.
                        if !o.body.is_empty() && events.send(Ha2Event::Payload(o.body)).is_err() {
                            return ("closed".into(), connected);
                        }
                    }
                    _ => {
                        c.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = tokio::time::sleep_until(hello_deadline), if !connected => {
                return (
                    format!("no frame from the peer opened within {} s", HELLO_TIMEOUT.as_secs()),
                    connected,
                );
            }
            msg = outgoing.recv(), if connected => {
                let Some(payload) = msg else { return ("closed".into(), connected) };
                if let Err(e) = send(&mut wr, sealer, &payload).await {
                    return (e, connected);
                }
                c.frames_out.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Seals `payload` and writes it as one length-prefixed frame.
async fn send(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    sealer: &Arc<Mutex<KindSealer>>,
    payload: &[u8],
) -> Result<(), String> {
    let sealed = match sealer.lock() {
        Ok(mut s) => s.seal_bytes(payload),
        Err(_) => return Err("sealer poisoned".into()),
    };
    // Too long to seal: the payload is dropped, the link stays.
    let Ok(frame) = sealed else { return Ok(()) };
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    out.extend_from_slice(&frame);
    wr.write_all(&out).await.map_err(|e| format!("write: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafw_ha::wire::{Psk, Sealer};

    fn psk() -> PairKey {
        PairKey::for_tests(&Psk::from_file_bytes(&(0u8..32).collect::<Vec<_>>(), "test").unwrap())
    }

    #[tokio::test]
    async fn frames_cross_sealed_both_ways() {
        let a_addr: SocketAddr = "127.0.0.1:28791".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:28792".parse().unwrap();
        let sa = Arc::new(Mutex::new(Sealer::new(&psk(), 1, 1, [1; 8]).split().1));
        let sb = Arc::new(Mutex::new(Sealer::new(&psk(), 2, 1, [2; 8]).split().1));
        let mut b = start(b_addr, a_addr, false, sb, &psk(), 2, 1);
        let mut a = start(a_addr, b_addr, true, sa, &psk(), 1, 2);
        assert!(matches!(a.events.recv().await, Some(Ha2Event::Connected)));
        assert!(matches!(b.events.recv().await, Some(Ha2Event::Connected)));
        a.to_peer.send(b"hello".to_vec()).unwrap();
        match b.events.recv().await {
            Some(Ha2Event::Payload(p)) => assert_eq!(p, b"hello"),
            other => panic!("{other:?}"),
        }
        b.to_peer.send(vec![7; 50_000]).unwrap();
        match a.events.recv().await {
            Some(Ha2Event::Payload(p)) => assert_eq!(p.len(), 50_000),
            other => panic!("{other:?}"),
        }
    }

    /// The dialling side restarts (a new epoch, a fresh opener): the link
    /// comes back, each side reports `Connected` again, and payloads cross
    /// both ways, well within the hello timeout (the echo-change hello).
    #[tokio::test]
    async fn a_restarted_peer_is_connected_again_and_heard() {
        fn within<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
            tokio::time::timeout(Duration::from_secs(3), f)
        }
        let a_addr: SocketAddr = "127.0.0.1:28793".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:28794".parse().unwrap();
        let sa = Arc::new(Mutex::new(Sealer::new(&psk(), 1, 1, [1; 8]).split().1));
        let sb = Arc::new(Mutex::new(Sealer::new(&psk(), 2, 1, [2; 8]).split().1));
        let mut b = start(b_addr, a_addr, false, sb, &psk(), 2, 1);
        let a = start(a_addr, b_addr, true, sa, &psk(), 1, 2);
        assert!(matches!(b.events.recv().await, Some(Ha2Event::Connected)));
        drop(a);
        assert!(matches!(
            within(b.events.recv()).await,
            Ok(Some(Ha2Event::Disconnected(_)))
        ));
        let sa2 = Arc::new(Mutex::new(Sealer::new(&psk(), 1, 5, [9; 8]).split().1));
        let mut a2 = start(a_addr, b_addr, true, sa2, &psk(), 1, 2);
        assert!(matches!(
            within(a2.events.recv()).await,
            Ok(Some(Ha2Event::Connected))
        ));
        assert!(matches!(
            within(b.events.recv()).await,
            Ok(Some(Ha2Event::Connected))
        ));
        a2.to_peer.send(b"after the restart".to_vec()).unwrap();
        b.to_peer.send(b"welcome back".to_vec()).unwrap();
        match within(b.events.recv()).await {
            Ok(Some(Ha2Event::Payload(p))) => assert_eq!(p, b"after the restart"),
            other => panic!("{other:?}"),
        }
        match within(a2.events.recv()).await {
            Ok(Some(Ha2Event::Payload(p))) => assert_eq!(p, b"welcome back"),
            other => panic!("{other:?}"),
        }
        // The first hello of each side did not echo the other's new run.
        assert!(b.counters.rejected.load(Ordering::Relaxed) >= 1);
    }
}
