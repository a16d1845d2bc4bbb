//! The HA2 link: one TCP connection between the nodes over the HA2
//! interfaces, carrying session sync and config sync. Every frame is a
//! 4-byte big-endian length and a sealed envelope (`Kind::Ha2Frame`), so the
//! stream is authenticated, encrypted and replay-protected like HA1. The
//! node with the lower id dials, the other accepts; either side reconnects
//! after a failure.
//!
//! A connection counts only once a frame from it has opened: each side
//! sends an empty frame (a hello) at once, and again whenever what it
//! echoes of the peer's run changed, since the peer accepts only frames
//! that echo its current run (`hafw_ha::wire::open`); after a restart of
//! either side that takes one more hello each way. [`Ha2Event::Connected`]
//! fires on each side only then. Until
//! then a connection holds no slot: the acceptor authenticates up to
//! [`MAX_PENDING`] connections at once, each given [`AUTH_TIMEOUT`] (a
//! newer one evicts the oldest), and a
//! newly authenticated connection replaces the current one (the peer
//! restarted, or the old one is half-open). A connection is closed when
//! its first frame does not open, when a length prefix is over the
//! envelope limit, or when no frame opened for [`IDLE_TIMEOUT`] (both
//! sides send a keepalive every [`KEEPALIVE`]); TCP keepalive and
//! `TCP_USER_TIMEOUT` close a dead one under the kernel too.
//!
//! Queues: what the node sends waits in a queue of [`OUT_QUEUE`] messages,
//! taken only for the connection it was meant for (a message for an older
//! connection is dropped: a fresh connection starts with a fresh bulk, not
//! a backlog); what arrives waits in one of [`EVENTS_QUEUE`] events and the
//! reader waits when it is full (TCP pushes back on the peer). Every drop
//! is counted in [`Ha2Counters`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hafw_ha::wire::{Epoch, Kind, KindSealer, Opener, PairKey, Reject, MAX_ENVELOPE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Messages waiting to be written to the peer. A full queue drops the
/// newest message (counted): session sync retransmits what is not acked
/// and config sync retries, so nothing is lost for good.
pub const OUT_QUEUE: usize = 256;
/// Events waiting for the sync thread; when full the reader waits.
pub const EVENTS_QUEUE: usize = 256;
/// Connections the acceptor authenticates at once; a newer one evicts the
/// oldest.
pub const MAX_PENDING: usize = 4;
/// How long a new connection has to deliver a frame that opens.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Each side sends an empty frame this often.
pub const KEEPALIVE: Duration = Duration::from_secs(1);
/// No frame opened for this long: the connection is closed. Several
/// keepalives, and longer than the sync thread's longest blocking step.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// `TCP_USER_TIMEOUT`: unacknowledged data for this long fails the socket.
const USER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum Ha2Event {
    /// A connection authenticated; its id tags what is sent over it.
    Connected(u64),
    Disconnected(String),
    /// A payload that opened: the peer's plaintext.
    Payload(Vec<u8>),
}

#[derive(Default, Debug)]
pub struct Ha2Counters {
    pub frames_out: AtomicU64,
    pub frames_in: AtomicU64,
    /// Frames that did not open on an authenticated connection.
    pub rejected: AtomicU64,
    pub reconnects: AtomicU64,
    /// Connections closed before a frame of theirs opened (garbage, silence,
    /// a forged or replayed frame, the wrong source address, too many).
    pub unauthenticated: AtomicU64,
    /// Authenticated connections that replaced the current one.
    pub replaced: AtomicU64,
    /// Connections closed for [`IDLE_TIMEOUT`] without a frame.
    pub idle_timeouts: AtomicU64,
    /// Length prefixes over the envelope limit (the connection is closed).
    pub oversize: AtomicU64,
    /// Messages dropped because no connection was up.
    pub dropped_down: AtomicU64,
    /// Messages dropped because [`OUT_QUEUE`] was full.
    pub dropped_full: AtomicU64,
}

impl Ha2Counters {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the counters, for status.
    pub fn figures(&self) -> Ha2Figures {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Ha2Figures {
            frames_out: get(&self.frames_out),
            frames_in: get(&self.frames_in),
            rejected: get(&self.rejected),
            reconnects: get(&self.reconnects),
            unauthenticated: get(&self.unauthenticated),
            replaced: get(&self.replaced),
            idle_timeouts: get(&self.idle_timeouts),
            oversize: get(&self.oversize),
            dropped_down: get(&self.dropped_down),
            dropped_full: get(&self.dropped_full),
        }
    }
}

/// [`Ha2Counters`] at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ha2Figures {
    pub frames_out: u64,
    pub frames_in: u64,
    pub rejected: u64,
    pub reconnects: u64,
    pub unauthenticated: u64,
    pub replaced: u64,
    pub idle_timeouts: u64,
    pub oversize: u64,
    pub dropped_down: u64,
    pub dropped_full: u64,
}

/// The sending end: what the node sends to its peer.
#[derive(Clone)]
pub struct Ha2Tx {
    tx: mpsc::Sender<(u64, Vec<u8>)>,
    counters: Arc<Ha2Counters>,
}

impl Ha2Tx {
    /// Queues `payload` for connection `conn` (the id of the last
    /// [`Ha2Event::Connected`], `None` while down). Never waits: with no
    /// connection, or a full queue, the message is dropped and counted.
    pub fn send(&self, conn: Option<u64>, payload: Vec<u8>) -> bool {
        let Some(conn) = conn else {
            Ha2Counters::add(&self.counters.dropped_down);
            return false;
        };
        match self.tx.try_send((conn, payload)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                Ha2Counters::add(&self.counters.dropped_full);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    pub fn figures(&self) -> Ha2Figures {
        self.counters.figures()
    }

    /// A sending end with no link behind it: the test reads what was queued.
    #[cfg(test)]
    pub(super) fn detached(bound: usize) -> (Ha2Tx, mpsc::Receiver<(u64, Vec<u8>)>) {
        let (tx, rx) = mpsc::channel(bound);
        let counters = Arc::new(Ha2Counters::default());
        (Ha2Tx { tx, counters }, rx)
    }
}

pub struct Ha2 {
    pub to_peer: Ha2Tx,
    pub events: mpsc::Receiver<Ha2Event>,
    pub counters: Arc<Ha2Counters>,
}

/// What both ends of the link share.
#[derive(Clone)]
struct Shared {
    sealer: Arc<Mutex<KindSealer>>,
    opener: Arc<Mutex<Opener>>,
    counters: Arc<Ha2Counters>,
    /// The monotonic origin of the opener's clock.
    origin: std::time::Instant,
}

/// A connection whose first frame opened.
struct Authed {
    stream: TcpStream,
    /// The first frame's plaintext (empty for a keepalive).
    first: Vec<u8>,
    /// Dropped when the connection ends: the dialer then dials again.
    _ended: Option<oneshot::Sender<()>>,
}

/// HA2's opener accepts the protocol versions HA1's does (its sealer
/// shares HA1's spoken version: see `crate::ha::thread`).
fn opener(key: &PairKey, own_id: u32, peer_id: u32, own_epoch: Epoch) -> Opener {
    let mut o = Opener::new(key, own_id, peer_id, own_epoch);
    let max = crate::ha::thread::own_versions().map(|v| v.protocol_max);
    o.set_max_version(max.unwrap_or(hafw_ha::version::PROTOCOL));
    o
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
    let (to_peer, outgoing) = mpsc::channel(OUT_QUEUE);
    let (ev_tx, events) = mpsc::channel(EVENTS_QUEUE);
    let (auth_tx, auth_rx) = mpsc::channel(MAX_PENDING);
    let counters = Arc::new(Ha2Counters::default());
    let own_epoch = match sealer.lock() {
        Ok(s) => s.epoch(),
        Err(p) => p.into_inner().epoch(),
    };
    let shared = Shared {
        sealer,
        opener: Arc::new(Mutex::new(opener(key, own_id, peer_id, own_epoch))),
        counters: counters.clone(),
        origin: std::time::Instant::now(),
    };
    if dial {
        tokio::spawn(dialer(local, peer, shared.clone(), auth_tx));
    } else {
        tokio::spawn(acceptor(local, peer, shared.clone(), auth_tx));
    }
    tokio::spawn(link(shared, auth_rx, outgoing, ev_tx));
    Ha2 {
        to_peer: Ha2Tx {
            tx: to_peer,
            counters: counters.clone(),
        },
        events,
        counters,
    }
}

/// Serves one authenticated connection at a time; a newer one replaces it.
async fn link(
    sh: Shared,
    mut auth: mpsc::Receiver<Authed>,
    mut outgoing: mpsc::Receiver<(u64, Vec<u8>)>,
    events: mpsc::Sender<Ha2Event>,
) {
    let mut conn = 0u64;
    let mut next = None;
    loop {
        let a = match next.take() {
            Some(a) => a,
            None => match auth.recv().await {
                Some(a) => a,
                None => return,
            },
        };
        conn += 1;
        // Whatever waits was meant for an older connection.
        while outgoing.try_recv().is_ok() {
            Ha2Counters::add(&sh.counters.dropped_down);
        }
        if events.send(Ha2Event::Connected(conn)).await.is_err() {
            return;
        }
        if !a.first.is_empty() && events.send(Ha2Event::Payload(a.first)).await.is_err() {
            return;
        }
        let why = match serve(a.stream, conn, &sh, &mut outgoing, &mut auth, &events).await {
            End::Closed(why) => why,
            End::Replaced(new) => {
                Ha2Counters::add(&sh.counters.replaced);
                next = Some(new);
                "replaced by a newly authenticated connection".into()
            }
            End::Stopped => return,
        };
        Ha2Counters::add(&sh.counters.reconnects);
        if events.send(Ha2Event::Disconnected(why)).await.is_err() {
            return;
        }
    }
}

enum End {
    Closed(String),
    Replaced(Authed),
    Stopped,
}

async fn serve(
    stream: TcpStream,
    conn: u64,
    sh: &Shared,
    outgoing: &mut mpsc::Receiver<(u64, Vec<u8>)>,
    auth: &mut mpsc::Receiver<Authed>,
    events: &mpsc::Sender<Ha2Event>,
) -> End {
    let (rd, mut wr) = stream.into_split();
    let (done_tx, mut done) = oneshot::channel();
    let reader = tokio::spawn({
        let sh = sh.clone();
        let events = events.clone();
        async move {
            let _ = done_tx.send(read_loop(rd, &sh, &events).await);
        }
    });
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        let payload = tokio::select! {
            why = &mut done => break End::Closed(why.unwrap_or_else(|_| "reader stopped".into())),
            new = auth.recv() => match new {
                Some(a) => break End::Replaced(a),
                None => break End::Stopped,
            },
            msg = outgoing.recv() => match msg {
                None => break End::Stopped,
                Some((c, _)) if c != conn => {
                    Ha2Counters::add(&sh.counters.dropped_down);
                    continue;
                }
                Some((_, p)) => p,
            },
            _ = keepalive.tick() => Vec::new(),
        };
        let Some(frame) = seal(&sh.sealer, &payload) else {
            continue;
        };
        // A peer that takes no data (frozen, its window shut) would hold
        // this loop, and with it a replacement connection, for good.
        match tokio::time::timeout(IDLE_TIMEOUT, wr.write_all(&frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break End::Closed(format!("write: {e}")),
            Err(_) => break End::Closed(format!("the peer took no data for {IDLE_TIMEOUT:?}")),
        }
        Ha2Counters::add(&sh.counters.frames_out);
    };
    reader.abort();
    end
}

/// Reads frames until the connection fails or stays silent too long.
async fn read_loop(mut rd: OwnedReadHalf, sh: &Shared, events: &mpsc::Sender<Ha2Event>) -> String {
    let mut deadline = Instant::now() + IDLE_TIMEOUT;
    loop {
        let frame = match tokio::time::timeout_at(deadline, read_frame(&mut rd, sh)).await {
            Err(_) => {
                Ha2Counters::add(&sh.counters.idle_timeouts);
                return format!("no frame from the peer in {IDLE_TIMEOUT:?}");
            }
            Ok(Err(why)) => return why,
            Ok(Ok(f)) => f,
        };
        match open(sh, &frame).0 {
            Ok(body) => {
                deadline = Instant::now() + IDLE_TIMEOUT;
                Ha2Counters::add(&sh.counters.frames_in);
                if !body.is_empty() && events.send(Ha2Event::Payload(body)).await.is_err() {
                    return "closed".into();
                }
            }
            Err(_) => Ha2Counters::add(&sh.counters.rejected),
        }
    }
}

/// One length-prefixed frame; an over-long prefix is an error (the stream
/// can no longer be trusted to be in step).
async fn read_frame(rd: &mut OwnedReadHalf, sh: &Shared) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 4];
    rd.read_exact(&mut len)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_ENVELOPE_LEN {
        Ha2Counters::add(&sh.counters.oversize);
        return Err(format!(
            "a frame of {n} bytes is over the {MAX_ENVELOPE_LEN}-byte limit"
        ));
    }
    let mut buf = vec![0u8; n];
    rd.read_exact(&mut buf)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(buf)
}

/// The plaintext of an HA2 frame from the peer, or why not; and whether
/// what this node echoes of the peer's run changed (then the sealer echoes
/// the new run, and the peer should hear it at once).
fn open(sh: &Shared, frame: &[u8]) -> (Result<Vec<u8>, Option<Reject>>, bool) {
    let Ok(mut opener) = sh.opener.lock() else {
        return (Err(None), false);
    };
    let before = opener.echo();
    let opened = opener.open_bytes(crate::ha::wire_now(sh.origin.elapsed()), frame);
    let echo = opener.echo();
    drop(opener);
    let changed = echo != before;
    if changed {
        if let Ok(mut s) = sh.sealer.lock() {
            s.set_echo(echo);
        }
    }
    let body = match opened {
        Ok(o) if o.kind == Kind::Ha2Frame => Ok(o.body),
        Ok(_) => Err(None),
        Err(r) => Err(Some(r)),
    };
    (body, changed)
}

/// A length-prefixed sealed frame.
fn seal(sealer: &Mutex<KindSealer>, payload: &[u8]) -> Option<Vec<u8>> {
    let sealed = sealer.lock().ok()?.seal_bytes(payload).ok()?;
    let mut out = Vec::with_capacity(sealed.len() + 4);
    out.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
    out.extend_from_slice(&sealed);
    Some(out)
}

/// Keepalive, user timeout and no delay on a link socket. Failing to set
/// them leaves the idle timeout as the only guard, so it is not fatal.
fn tune(stream: &TcpStream) {
    let s = socket2::SockRef::from(stream);
    let _ = s.set_tcp_nodelay(true);
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(1))
        .with_retries(3);
    let _ = s.set_tcp_keepalive(&ka);
    let _ = s.set_tcp_user_timeout(Some(USER_TIMEOUT));
}

/// Frames a new connection may send before one opens: a hello that does
/// not echo us yet, then one that does (and a keepalive that crossed).
const AUTH_FRAMES: usize = 4;

/// Says hello, then reads frames until one opens; its plaintext if one
/// did within [`AUTH_TIMEOUT`]. Only a frame that is authentic but does not
/// echo this run of ours yet ([`Reject::Unconfirmed`]) earns another
/// look; anything else closes the connection.
async fn authenticate(stream: TcpStream, sh: &Shared) -> Result<(TcpStream, Vec<u8>), String> {
    let deadline = Instant::now() + AUTH_TIMEOUT;
    let (mut rd, mut wr) = stream.into_split();
    hello(&mut wr, sh, deadline).await?;
    for _ in 0..AUTH_FRAMES {
        let frame = tokio::time::timeout_at(deadline, read_frame(&mut rd, sh))
            .await
            .map_err(|_| format!("no frame opened in {AUTH_TIMEOUT:?}"))??;
        let (opened, changed) = open(sh, &frame);
        if changed {
            hello(&mut wr, sh, deadline).await?;
        }
        match opened {
            Ok(body) => {
                let stream = rd
                    .reunite(wr)
                    .map_err(|_| "split halves did not reunite".to_string())?;
                return Ok((stream, body));
            }
            Err(Some(Reject::Unconfirmed { .. })) => continue,
            Err(_) => return Err("a frame that did not open".into()),
        }
    }
    Err(format!("no frame opened in {AUTH_FRAMES} frames"))
}

/// An empty frame: it carries our run and what we echo of the peer's.
async fn hello(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    sh: &Shared,
    deadline: Instant,
) -> Result<(), String> {
    let hello = seal(&sh.sealer, &[]).ok_or("sealer unusable")?;
    tokio::time::timeout_at(deadline, wr.write_all(&hello))
        .await
        .map_err(|_| "the peer took no hello".to_string())?
        .map_err(|e| e.to_string())?;
    Ha2Counters::add(&sh.counters.frames_out);
    Ok(())
}

/// The higher-id node: accepts, authenticates several at once, hands on
/// the ones that opened.
async fn acceptor(local: SocketAddr, peer: SocketAddr, sh: Shared, auth: mpsc::Sender<Authed>) {
    let listener = loop {
        match TcpListener::bind(local).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    // Connections being authenticated, oldest first. A full table evicts
    // the oldest: a silent or slow connection then lives only until
    // MAX_PENDING newer ones came, so holding connections open cannot keep
    // the real peer, which authenticates in a round trip or two, out.
    let mut pending: std::collections::VecDeque<tokio::task::JoinHandle<()>> =
        std::collections::VecDeque::new();
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Only the peer's HA2 address may connect.
        if from.ip() != peer.ip() {
            Ha2Counters::add(&sh.counters.unauthenticated);
            continue;
        }
        pending.retain(|h| !h.is_finished());
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending.pop_front() {
                oldest.abort();
                Ha2Counters::add(&sh.counters.unauthenticated);
            }
        }
        tune(&stream);
        let (sh, auth) = (sh.clone(), auth.clone());
        pending.push_back(tokio::spawn(async move {
            match authenticate(stream, &sh).await {
                Ok((stream, first)) => {
                    let _ = auth
                        .send(Authed {
                            stream,
                            first,
                            _ended: None,
                        })
                        .await;
                }
                Err(_) => Ha2Counters::add(&sh.counters.unauthenticated),
            }
        }));
    }
}

/// The lower-id node: dials, says hello, waits for the peer's answer; dials
/// again once that connection has ended.
async fn dialer(local: SocketAddr, peer: SocketAddr, sh: Shared, auth: mpsc::Sender<Authed>) {
    loop {
        match dial_once(local, peer, &sh).await {
            Ok((stream, first)) => {
                let (ended, wait) = oneshot::channel();
                let a = Authed {
                    stream,
                    first,
                    _ended: Some(ended),
                };
                if auth.send(a).await.is_err() {
                    return;
                }
                let _ = wait.await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn dial_once(
    local: SocketAddr,
    peer: SocketAddr,
    sh: &Shared,
) -> Result<(TcpStream, Vec<u8>), String> {
    let s = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    s.bind(SocketAddr::new(local.ip(), 0))
        .map_err(|e| e.to_string())?;
    let stream = tokio::time::timeout(Duration::from_secs(2), s.connect(peer))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    tune(&stream);
    authenticate(stream, sh).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafw_ha::wire::{Psk, Sealer};
    use tokio::time::timeout;

    fn psk() -> PairKey {
        PairKey::for_tests(&Psk::from_file_bytes(&(0u8..32).collect::<Vec<_>>(), "test").unwrap())
    }

    fn sealer(id: u32, r: u8) -> Arc<Mutex<KindSealer>> {
        Arc::new(Mutex::new(Sealer::new(&psk(), id, 1, [r; 8]).split().1))
    }

    /// The dialer's address (only its IP is bound) and a free port for
    /// the acceptor, so parallel test runs on one machine do not collide.
    fn addrs() -> (SocketAddr, SocketAddr) {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = free.local_addr().unwrap();
        ("127.0.0.1:0".parse().unwrap(), b)
    }

    async fn next(h: &mut Ha2) -> Ha2Event {
        timeout(Duration::from_secs(5), h.events.recv())
            .await
            .expect("an event within 5 s")
            .expect("link running")
    }

    /// Whether the other end closes `s` within `d` (its hello, the only
    /// thing an unauthenticated connection is sent, is read and ignored).
    async fn closed_within(s: &mut TcpStream, d: Duration) -> bool {
        let mut buf = [0u8; 256];
        let until = Instant::now() + d;
        loop {
            match tokio::time::timeout_at(until, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    async fn connected(h: &mut Ha2) -> u64 {
        match next(h).await {
            Ha2Event::Connected(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_cross_sealed_both_ways() {
        let (a_addr, b_addr) = addrs();
        let mut b = start(b_addr, a_addr, false, sealer(2, 2), &psk(), 2, 1);
        let mut a = start(a_addr, b_addr, true, sealer(1, 1), &psk(), 1, 2);
        let ca = connected(&mut a).await;
        let cb = connected(&mut b).await;
        assert!(a.to_peer.send(Some(ca), b"hello".to_vec()));
        match next(&mut b).await {
            Ha2Event::Payload(p) => assert_eq!(p, b"hello"),
            other => panic!("{other:?}"),
        }
        assert!(b.to_peer.send(Some(cb), vec![7; 50_000]));
        match next(&mut a).await {
            Ha2Event::Payload(p) => assert_eq!(p.len(), 50_000),
            other => panic!("{other:?}"),
        }
    }

    /// A connection that never speaks must not hold the acceptor: the real
    /// peer, dialling after it, is connected within a second, and the
    /// silent one is closed and counted after AUTH_TIMEOUT.
    #[tokio::test]
    async fn a_silent_connection_does_not_keep_the_peer_out() {
        let (a_addr, b_addr) = addrs();
        let mut b = start(b_addr, a_addr, false, sealer(2, 2), &psk(), 2, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut silent = TcpStream::connect(b_addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = std::time::Instant::now();
        let mut a = start(a_addr, b_addr, true, sealer(1, 1), &psk(), 1, 2);
        let ca = connected(&mut a).await;
        assert!(a.to_peer.send(Some(ca), b"real".to_vec()));
        connected(&mut b).await;
        match next(&mut b).await {
            Ha2Event::Payload(p) => assert_eq!(p, b"real"),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(closed_within(&mut silent, AUTH_TIMEOUT * 2).await);
        assert_eq!(b.counters.unauthenticated.load(Ordering::Relaxed), 1);
    }

    /// More silent connections than the acceptor authenticates at once,
    /// all from the peer's address: the oldest are evicted, and the real
    /// peer, dialling after them, is connected within a second.
    #[tokio::test]
    async fn silent_connections_beyond_the_table_do_not_keep_the_peer_out() {
        let (a_addr, b_addr) = addrs();
        let mut b = start(b_addr, a_addr, false, sealer(2, 2), &psk(), 2, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut silent = Vec::new();
        for _ in 0..MAX_PENDING * 2 {
            silent.push(TcpStream::connect(b_addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = std::time::Instant::now();
        let mut a = start(a_addr, b_addr, true, sealer(1, 1), &psk(), 1, 2);
        let ca = connected(&mut a).await;
        assert!(a.to_peer.send(Some(ca), b"real".to_vec()));
        connected(&mut b).await;
        match next(&mut b).await {
            Ha2Event::Payload(p) => assert_eq!(p, b"real"),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        // The first MAX_PENDING were evicted by the later ones, and those
        // by the real peer's connection.
        let evicted = b.counters.unauthenticated.load(Ordering::Relaxed);
        assert!(evicted > MAX_PENDING as u64, "{evicted} evicted");
        drop(silent);
    }

    /// Garbage and an over-long length prefix: each connection closed and
    /// counted; neither is ever reported as connected.
    #[tokio::test]
    async fn garbage_and_oversize_connections_are_closed_and_counted() {
        let (a_addr, b_addr) = addrs();
        let mut b = start(b_addr, a_addr, false, sealer(2, 2), &psk(), 2, 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut garbage = TcpStream::connect(b_addr).await.unwrap();
        let mut bytes = 100u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x5a; 100]);
        garbage.write_all(&bytes).await.unwrap();
        let mut huge = TcpStream::connect(b_addr).await.unwrap();
        huge.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        for s in [&mut garbage, &mut huge] {
            assert!(closed_within(s, Duration::from_secs(1)).await);
        }
        assert_eq!(b.counters.unauthenticated.load(Ordering::Relaxed), 2);
        assert_eq!(b.counters.oversize.load(Ordering::Relaxed), 1);
        assert!(b.events.try_recv().is_err(), "nothing was connected");
    }

    /// The peer restarts (a new epoch, a new connection) while the old
    /// connection still looks up: the new one replaces it at once.
    #[tokio::test]
    async fn a_newly_authenticated_connection_replaces_the_old() {
        let (a_addr, b_addr) = addrs();
        let mut b = start(b_addr, a_addr, false, sealer(2, 2), &psk(), 2, 1);
        let mut a1 = start(a_addr, b_addr, true, sealer(1, 1), &psk(), 1, 2);
        connected(&mut a1).await;
        assert_eq!(connected(&mut b).await, 1);
        // A second run of the peer, with a later epoch.
        let s2 = Arc::new(Mutex::new(Sealer::new(&psk(), 1, 2, [3; 8]).split().1));
        let mut a2 = start(a_addr, b_addr, true, s2, &psk(), 1, 2);
        connected(&mut a2).await;
        assert!(matches!(next(&mut b).await, Ha2Event::Disconnected(_)));
        assert_eq!(connected(&mut b).await, 2);
        assert_eq!(b.counters.replaced.load(Ordering::Relaxed), 1);
        drop(a1);
    }

    /// Nothing is queued for a link that is down, nor beyond OUT_QUEUE.
    #[tokio::test]
    async fn the_send_queue_is_bounded_and_drops_while_down() {
        let (a_addr, b_addr) = addrs();
        let a = start(a_addr, b_addr, true, sealer(1, 1), &psk(), 1, 2);
        for _ in 0..10 {
            assert!(!a.to_peer.send(None, vec![1; 100]));
        }
        assert_eq!(a.counters.dropped_down.load(Ordering::Relaxed), 10);
        // No connection takes them: the queue fills and then drops.
        let sent = (0..OUT_QUEUE + 50)
            .filter(|_| a.to_peer.send(Some(1), vec![1; 100]))
            .count();
        assert_eq!(sent, OUT_QUEUE);
        assert_eq!(a.counters.dropped_full.load(Ordering::Relaxed), 50);
    }
}
