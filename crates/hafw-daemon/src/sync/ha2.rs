//! The HA2 link: one TCP connection between the nodes over the HA2
//! interfaces, carrying session sync and config sync. Every frame is a
//! 4-byte big-endian length and a sealed envelope (`Kind::Ha2Frame`), so the
//! stream is authenticated, encrypted and replay-protected like HA1. The
//! node with the lower id dials, the other accepts; either side reconnects
//! after a failure. A frame that does not open is counted and dropped; a
//! length over the envelope limit closes the connection (the stream can no
//! longer be trusted to be in sync).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hafw_ha::wire::{Kind, KindSealer, Opener, Psk, MAX_ENVELOPE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

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
    psk: &Psk,
    own_id: u32,
) -> Ha2 {
    let (to_peer, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    let (ev_tx, events) = mpsc::unbounded_channel();
    let counters = Arc::new(Ha2Counters::default());
    let c = counters.clone();
    let mut opener = Opener::new(psk, own_id);
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
            let _ = ev_tx.send(Ha2Event::Connected);
            let why = serve(stream, &mut outgoing, &sealer, &mut opener, &ev_tx, &c).await;
            c.reconnects.fetch_add(1, Ordering::Relaxed);
            if ev_tx.send(Ha2Event::Disconnected(why)).is_err() {
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

async fn serve(
    stream: TcpStream,
    outgoing: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    sealer: &Arc<Mutex<KindSealer>>,
    opener: &mut Opener,
    events: &mpsc::UnboundedSender<Ha2Event>,
    c: &Ha2Counters,
) -> String {
    let (mut rd, mut wr) = stream.into_split();
    let mut len = [0u8; 4];
    loop {
        tokio::select! {
            r = rd.read_exact(&mut len) => {
                if let Err(e) = r {
                    return format!("read: {e}");
                }
                let n = u32::from_be_bytes(len) as usize;
                if n > MAX_ENVELOPE_LEN {
                    return format!("a frame of {n} bytes is over the limit");
                }
                let mut buf = vec![0u8; n];
                if let Err(e) = rd.read_exact(&mut buf).await {
                    return format!("read: {e}");
                }
                match opener.open_bytes(&buf) {
                    Ok(o) if o.kind == Kind::Ha2Frame => {
                        c.frames_in.fetch_add(1, Ordering::Relaxed);
                        if events.send(Ha2Event::Payload(o.body)).is_err() {
                            return "closed".into();
                        }
                    }
                    _ => {
                        c.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            msg = outgoing.recv() => {
                let Some(payload) = msg else { return "closed".into() };
                let sealed = match sealer.lock() {
                    Ok(mut s) => s.seal_bytes(&payload),
                    Err(_) => return "sealer poisoned".into(),
                };
                let Ok(frame) = sealed else { continue };
                let mut out = Vec::with_capacity(frame.len() + 4);
                out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
                out.extend_from_slice(&frame);
                if let Err(e) = wr.write_all(&out).await {
                    return format!("write: {e}");
                }
                c.frames_out.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafw_ha::wire::Sealer;

    fn psk() -> Psk {
        Psk::from_file_bytes(&(0u8..32).collect::<Vec<_>>(), "test").unwrap()
    }

    #[tokio::test]
    async fn frames_cross_sealed_both_ways() {
        let a_addr: SocketAddr = "127.0.0.1:28791".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:28792".parse().unwrap();
        let sa = Arc::new(Mutex::new(Sealer::new(&psk(), 1, 1, [1; 8]).split().1));
        let sb = Arc::new(Mutex::new(Sealer::new(&psk(), 2, 1, [2; 8]).split().1));
        let mut b = start(b_addr, a_addr, false, sb, &psk(), 2);
        let mut a = start(a_addr, b_addr, true, sa, &psk(), 1);
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
}
