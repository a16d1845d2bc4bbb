//! The emulated ECS metadata service (IMDS) at 100.100.100.200:80, as the
//! instances of a lab see it (alicloud-havip.md, "On the instance"). The
//! answers are a pure function of a [`Catalog`] (built from the deployment)
//! and the requester's source address, so an instance sees only its own
//! items; the server around it (`hafw lab metadata`, a process in the VPC
//! namespace) is bounded: a few connections at a time, one small request
//! each, short timeouts.
//!
//! Hardened mode (the cloud's IMDSv2): `PUT /latest/api/token` with
//! `X-aliyun-ecs-metadata-token-ttl-seconds: N` returns a token, sent back
//! as `X-aliyun-ecs-metadata-token` on reads. With `require_token` (the
//! lab's default) a read without a valid token is 401, so a node's client
//! that works here works on an instance where the cloud enforces it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hafw_model::spec::Deployment;

use crate::lab::{self, LabError};
use crate::topology::Topology;

/// The address every instance reaches the service at.
pub const ADDR: &str = "100.100.100.200";
pub const PORT: u16 = 80;
pub const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
pub const TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";
/// The cloud's bounds on a token's lifetime (IMDSv2: 1 s to 6 h).
pub const MAX_TTL_S: u64 = 21_600;
/// Request head size limit: a metadata read is one short line and a few
/// headers; anything longer is refused (431) before it is parsed.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 8;
/// Tokens kept at once (all instances); the oldest goes first.
pub const MAX_TOKENS: usize = 256;
/// Per-connection deadline to send the whole request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// User data larger than the cloud accepts (32 KiB) is not served.
pub const MAX_USER_DATA: u64 = 32 * 1024;

/// One ENI as its instance's metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub mac: String,
    pub eni_id: String,
    pub primary_ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub vswitch_id: String,
    pub vswitch_cidr: String,
    pub vpc_cidr: String,
}

/// One instance's metadata; `nics[0]` is the primary ENI (eth0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub instance_id: String,
    pub hostname: String,
    pub region: String,
    pub zone: String,
    pub nics: Vec<Nic>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub instances: Vec<Instance>,
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A stable id in the cloud's shape (`i-…`, `eni-…`, `vsw-…`), from the lab
/// and the resource's name, so two labs never show the same id.
pub fn cloud_id(prefix: &str, lab: &str, name: &str) -> String {
    let h = format!("{lab}/{name}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{prefix}-{h:016x}")
}

impl Catalog {
    /// The metadata of every instance of a deployment (firewalls and any
    /// other instance in `cloud.instances`), with the MACs the lab gives
    /// their ENIs.
    pub fn build(dep: &Deployment, t: &Topology) -> Catalog {
        let mut instances = vec![];
        for inst in &dep.cloud.instances {
            let mut nics = vec![];
            let mut zone = String::new();
            for eni in &inst.enis {
                let (Some(p), Some(vs)) = (t.port(&eni.name), dep.vswitch(&eni.vswitch)) else {
                    continue;
                };
                if zone.is_empty() {
                    zone = vs.zone.clone();
                }
                let net = vs.cidr.0;
                nics.push(Nic {
                    mac: mac_text(p.mac),
                    eni_id: cloud_id("eni", &t.lab, &eni.name),
                    primary_ip: eni.primary_ip.0,
                    netmask: net.netmask(),
                    gateway: vs.gateway().0,
                    vswitch_id: cloud_id("vsw", &t.lab, &vs.name),
                    vswitch_cidr: net.to_string(),
                    vpc_cidr: dep.cloud.vpc.cidr.0.to_string(),
                });
            }
            instances.push(Instance {
                name: inst.name.clone(),
                instance_id: cloud_id("i", &t.lab, &inst.name),
                hostname: inst.name.clone(),
                region: dep.cloud.region.clone(),
                zone,
                nics,
            });
        }
        Catalog { instances }
    }

    /// The instance one of whose ENIs has address `src`.
    pub fn by_source(&self, src: Ipv4Addr) -> Option<&Instance> {
        self.instances
            .iter()
            .find(|i| i.nics.iter().any(|n| n.primary_ip == src))
    }
}

/// A parsed request head. Only what the service looks at is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub ttl: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub body: String,
}

impl Response {
    fn new(code: u16, body: impl Into<String>) -> Response {
        Response {
            code,
            body: body.into(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.code {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            _ => "Error",
        };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.code,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

/// Parses a request head (everything before the blank line). A request
/// with a body is refused: no metadata call has one.
pub fn parse(head: &[u8]) -> Result<Request, Response> {
    let text = std::str::from_utf8(head).map_err(|_| Response::new(400, "not UTF-8\n"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut f = line.split(' ');
    let (Some(method), Some(path), Some(version), None) = (f.next(), f.next(), f.next(), f.next())
    else {
        return Err(Response::new(400, "bad request line\n"));
    };
    if !version.starts_with("HTTP/1.") || !path.starts_with('/') || method.is_empty() {
        return Err(Response::new(400, "bad request line\n"));
    }
    let mut req = Request {
        method: method.to_string(),
        path: path.to_string(),
        token: None,
        ttl: None,
    };
    for h in lines.filter(|l| !l.is_empty()) {
        let Some((k, v)) = h.split_once(':') else {
            return Err(Response::new(400, "bad header line\n"));
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            TOKEN_HEADER => req.token = Some(v.to_string()),
            TTL_HEADER => req.ttl = Some(v.to_string()),
            "content-length" if v != "0" => {
                return Err(Response::new(400, "metadata requests have no body\n"))
            }
            "transfer-encoding" => {
                return Err(Response::new(400, "metadata requests have no body\n"))
            }
            _ => {}
        }
    }
    Ok(req)
}

/// The service's state: tokens issued and what it answered.
#[derive(Debug)]
pub struct Service {
    pub catalog: Catalog,
    pub require_token: bool,
    /// User data of each instance, by name.
    pub user_data: BTreeMap<String, String>,
    /// token -> (instance name, expiry since the service's start).
    tokens: BTreeMap<String, (String, Duration)>,
    /// (method, path or `other`, code) -> count. Paths outside the
    /// catalog's are counted as `other`, so the map stays bounded.
    pub counts: BTreeMap<(String, String, u16), u64>,
    next_token: u64,
    secret: [u8; 16],
}

impl Service {
    pub fn new(catalog: Catalog, require_token: bool, secret: [u8; 16]) -> Service {
        Service {
            catalog,
            require_token,
            user_data: BTreeMap::new(),
            tokens: BTreeMap::new(),
            counts: BTreeMap::new(),
            next_token: 0,
            secret,
        }
    }

    /// Answers one request from `src` at `now` (time since the start).
    pub fn handle(&mut self, now: Duration, src: Ipv4Addr, req: &Request) -> Response {
        let r = self.answer(now, src, req);
        let known = self.catalog.by_source(src).is_some_and(|i| {
            req.path == "/latest/api/token"
                || req.path == "/latest/user-data"
                || req
                    .path
                    .strip_prefix("/latest/meta-data")
                    .is_some_and(|rest| item(i, rest).is_some())
        });
        let path = if known {
            req.path.clone()
        } else {
            "other".into()
        };
        let method = match req.method.as_str() {
            "GET" | "PUT" => req.method.clone(),
            _ => "other".into(),
        };
        *self.counts.entry((method, path, r.code)).or_default() += 1;
        r
    }

    /// Counts a request refused before it could be parsed.
    pub fn count_refused(&mut self, code: u16) {
        *self
            .counts
            .entry(("other".into(), "other".into(), code))
            .or_default() += 1;
    }

    fn answer(&mut self, now: Duration, src: Ipv4Addr, req: &Request) -> Response {
        let Some(inst) = self.catalog.by_source(src).cloned() else {
            return Response::new(403, format!("{src} is no ENI of this VPC's instances\n"));
        };
        self.tokens.retain(|_, (_, exp)| *exp > now);
        if req.path == "/latest/api/token" {
            if req.method != "PUT" {
                return Response::new(405, "use PUT for a token\n");
            }
            let ttl = req
                .ttl
                .as_deref()
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|t| (1..=MAX_TTL_S).contains(t));
            let Some(ttl) = ttl else {
                return Response::new(
                    400,
                    format!("{TTL_HEADER} must be 1..={MAX_TTL_S} seconds\n"),
                );
            };
            while self.tokens.len() >= MAX_TOKENS {
                let oldest = self
                    .tokens
                    .iter()
                    .min_by_key(|(_, (_, exp))| *exp)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => self.tokens.remove(&k),
                    None => break,
                };
            }
            let token = self.mint();
            self.tokens.insert(
                token.clone(),
                (inst.name.clone(), now + Duration::from_secs(ttl)),
            );
            return Response::new(200, token);
        }
        if req.method != "GET" {
            return Response::new(405, "metadata is read with GET\n");
        }
        let token_ok = req
            .token
            .as_ref()
            .and_then(|t| self.tokens.get(t))
            .is_some_and(|(owner, _)| *owner == inst.name);
        if req.token.is_some() && !token_ok {
            return Response::new(401, "token unknown, expired or another instance's\n");
        }
        if self.require_token && !token_ok {
            return Response::new(
                401,
                format!("hardened mode: PUT /latest/api/token first and send {TOKEN_HEADER}\n"),
            );
        }
        if req.path == "/latest/user-data" {
            return match self.user_data.get(&inst.name) {
                Some(u) => Response::new(200, u.clone()),
                None => Response::new(404, "no user data\n"),
            };
        }
        match req
            .path
            .strip_prefix("/latest/meta-data")
            .and_then(|rest| item(&inst, rest))
        {
            Some(body) => Response::new(200, body),
            None => Response::new(404, "no such metadata item\n"),
        }
    }

    /// A token nobody can guess: a counter mixed with a per-run secret
    /// (the key from getrandom at the service's start).
    fn mint(&mut self) -> String {
        use std::hash::{Hash, Hasher};
        self.next_token += 1;
        let mut out = String::new();
        for half in 0..2u8 {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (self.secret, self.next_token, half).hash(&mut h);
            let _ = write!(out, "{:016x}", h.finish());
        }
        out
    }

    /// The counts as lines `<count> <method> <code> <path>`.
    pub fn counts_text(&self) -> String {
        let mut s = String::new();
        for ((m, p, c), n) in &self.counts {
            let _ = writeln!(s, "{n} {m} {c} {p}");
        }
        s
    }
}

/// The item at `rest` (the path after `/latest/meta-data`) for `inst`.
fn item(inst: &Instance, rest: &str) -> Option<String> {
    let listing = |names: &[&str]| names.iter().map(|n| format!("{n}\n")).collect::<String>();
    match rest {
        "" | "/" => Some(listing(&[
            "instance-id",
            "hostname",
            "region-id",
            "zone-id",
            "mac",
            "network/",
        ])),
        "/instance-id" => Some(inst.instance_id.clone()),
        "/hostname" => Some(inst.hostname.clone()),
        "/region-id" => Some(inst.region.clone()),
        "/zone-id" => Some(inst.zone.clone()),
        "/mac" => inst.nics.first().map(|n| n.mac.clone()),
        "/network/" | "/network" => Some("interfaces/\n".into()),
        "/network/interfaces/" | "/network/interfaces" => Some("macs/\n".into()),
        "/network/interfaces/macs/" | "/network/interfaces/macs" => {
            Some(inst.nics.iter().map(|n| format!("{}/\n", n.mac)).collect())
        }
        _ => {
            let rest = rest.strip_prefix("/network/interfaces/macs/")?;
            let (mac, what) = rest.split_once('/').unwrap_or((rest, ""));
            let n = inst.nics.iter().find(|n| n.mac == mac)?;
            match what {
                "" => Some(listing(&[
                    "network-interface-id",
                    "primary-ip-address",
                    "netmask",
                    "gateway",
                    "vswitch-id",
                    "vswitch-cidr-block",
                    "vpc-cidr-block",
                ])),
                "network-interface-id" => Some(n.eni_id.clone()),
                "primary-ip-address" => Some(n.primary_ip.to_string()),
                "netmask" => Some(n.netmask.to_string()),
                "gateway" => Some(n.gateway.to_string()),
                "vswitch-id" => Some(n.vswitch_id.clone()),
                "vswitch-cidr-block" => Some(n.vswitch_cidr.clone()),
                "vpc-cidr-block" => Some(n.vpc_cidr.clone()),
                _ => None,
            }
        }
    }
}

/// Reads one request head from `s`: at most [`MAX_REQUEST`] bytes within
/// [`READ_TIMEOUT`]. Err carries the answer to send (400, 408, 431).
pub fn read_head(s: &mut TcpStream) -> Result<Vec<u8>, Response> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST {
            return Err(Response::new(431, "request too large\n"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Response::new(408, "request not sent in time\n"));
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) => return Err(Response::new(400, "connection closed mid-request\n")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Response::new(408, "request not sent in time\n"))
            }
            Err(_) => return Err(Response::new(400, "read error\n")),
        }
    }
}

/// Where the service keeps its counts and reads each instance's user data.
pub fn counts_file(lab: &str) -> PathBuf {
    lab::state_dir(lab).join("metadata.counts")
}

pub fn user_data_file(lab: &str, instance: &str) -> PathBuf {
    lab::state_dir(lab).join("user-data").join(instance)
}

/// Whether a lab's service accepts reads without a token (a file in the
/// state dir written by `lab up`; absent: tokens required).
pub fn optional_token_file(lab: &str) -> PathBuf {
    lab::state_dir(lab).join("metadata.token-optional")
}

/// Parses the counts file: (count, method, code, path).
pub fn read_counts(lab: &str) -> Vec<(u64, String, u16, String)> {
    std::fs::read_to_string(counts_file(lab))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            Some((
                f.next()?.parse().ok()?,
                f.next()?.to_string(),
                f.next()?.parse().ok()?,
                f.next()?.to_string(),
            ))
        })
        .collect()
}

fn load_user_data(lab: &str, catalog: &Catalog) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for i in &catalog.instances {
        let path = user_data_file(lab, &i.name);
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.len() > MAX_USER_DATA {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.insert(i.name.clone(), text);
        }
    }
    out
}

/// `hafw lab metadata`: serves lab `lab_name`'s metadata until killed.
/// Runs in the VPC namespace, where [`ADDR`] is a local address.
pub fn run(lab_name: &str, ready_file: Option<&Path>) -> Result<(), LabError> {
    let refused = |m: String| LabError::Refused(m);
    let text = std::fs::read_to_string(lab::state_dir(lab_name).join("deployment.toml"))
        .map_err(|e| refused(format!("lab `{lab_name}` has no saved deployment: {e}")))?;
    let dep = hafw_model::parse("deployment.toml", &text).map_err(|d| refused(d.to_string()))?;
    let topo = crate::topology::build(&dep, lab_name).map_err(refused)?;
    let catalog = Catalog::build(&dep, &topo);
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(|e| refused(format!("getrandom: {e}")))?;
    let require = !optional_token_file(lab_name).exists();
    let service = Arc::new(Mutex::new(Service::new(catalog, require, secret)));
    let listener =
        TcpListener::bind((ADDR, PORT)).map_err(|e| refused(format!("bind {ADDR}:{PORT}: {e}")))?;
    if let Some(f) = ready_file {
        std::fs::write(f, "ready\n").map_err(|e| refused(format!("write ready file: {e}")))?;
    }
    let epoch = Instant::now();
    let busy = Arc::new(AtomicUsize::new(0));
    let lab_name = lab_name.to_string();
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        if busy.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            // Over the bound: refuse at once rather than queue without end.
            let mut s = stream;
            let _ = s.write_all(&Response::new(503, "busy\n").to_bytes());
            if let Ok(mut svc) = service.lock() {
                svc.count_refused(503);
            }
            continue;
        }
        busy.fetch_add(1, Ordering::AcqRel);
        let (service, busy, lab_name) = (service.clone(), busy.clone(), lab_name.clone());
        std::thread::spawn(move || {
            serve_one(stream, &service, epoch, &lab_name);
            busy.fetch_sub(1, Ordering::AcqRel);
        });
    }
    Ok(())
}

fn serve_one(mut s: TcpStream, service: &Mutex<Service>, epoch: Instant, lab_name: &str) {
    let _ = s.set_write_timeout(Some(READ_TIMEOUT));
    let src = match s.peer_addr() {
        Ok(SocketAddr::V4(a)) => *a.ip(),
        _ => return,
    };
    let parsed = read_head(&mut s).and_then(|h| parse(&h));
    let Ok(mut svc) = service.lock() else { return };
    let resp = match parsed {
        Ok(req) => {
            if req.path == "/latest/user-data" {
                let ud = load_user_data(lab_name, &svc.catalog);
                svc.user_data = ud;
            }
            svc.handle(epoch.elapsed(), src, &req)
        }
        Err(r) => {
            svc.count_refused(r.code);
            r
        }
    };
    // Written under the service's lock: connections run on threads of
    // their own, and one shared temporary file written by two at once
    // could be renamed into place half-written.
    let path = counts_file(lab_name);
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, svc.counts_text()).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
    drop(svc);
    let _ = s.write_all(&resp.to_bytes());
    // Lingering close: closing with unread bytes (an oversized request)
    // would send a reset that can destroy the answer in flight; read a
    // bounded amount for a short while first.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = std::io::copy(&mut (&mut s).take(64 * 1024), &mut std::io::sink());
}

/// Reads `path` from the metadata service inside namespace `ns`, in
/// hardened mode (a token first), as cloud-init and the node do. Bounded:
/// 2 s per request, 64 KiB per reply.
pub fn fetch_in(ns: &str, path: &str) -> Result<String, String> {
    let path = path.to_string();
    hafw_kernel::in_netns(Some(ns), move || {
        let token = exchange(&format!(
            "PUT /latest/api/token HTTP/1.1\r\nHost: {ADDR}\r\n{TTL_HEADER}: 60\r\nContent-Length: 0\r\n\r\n"
        ))?;
        exchange(&format!(
            "GET {path} HTTP/1.1\r\nHost: {ADDR}\r\n{TOKEN_HEADER}: {token}\r\n\r\n"
        ))
    })
    .map_err(|e| e.to_string())?
}

/// One request on a fresh connection; the body of a 200, else an error.
fn exchange(request: &str) -> Result<String, String> {
    const MAX_REPLY: u64 = 64 * 1024;
    let addr: SocketAddr =
        SocketAddr::from((ADDR.parse::<Ipv4Addr>().map_err(|e| e.to_string())?, PORT));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .and_then(|_| s.set_write_timeout(Some(Duration::from_secs(2))))
        .and_then(|_| s.write_all(request.as_bytes()))
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut reply = Vec::new();
    s.take(MAX_REPLY + 1)
        .read_to_end(&mut reply)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    if reply.len() as u64 > MAX_REPLY {
        return Err(format!("{addr} sent more than {MAX_REPLY} bytes"));
    }
    let text =
        String::from_utf8(reply).map_err(|_| format!("{addr} sent a reply that is not UTF-8"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr} sent no complete reply"))?;
    let code = head.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(format!("{addr} answered {code}: {}", body.trim()));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> (Catalog, Deployment) {
        let dep = hafw_model::parse("seed.toml", hafw_model::examples::SEED).unwrap();
        let t = crate::topology::build(&dep, "md1").unwrap();
        (Catalog::build(&dep, &t), dep)
    }

    fn req(method: &str, path: &str) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            token: None,
            ttl: None,
        }
    }

    fn fw_a_ip(c: &Catalog) -> Ipv4Addr {
        c.instances[0].nics[0].primary_ip
    }

    #[test]
    fn without_a_token_reads_are_refused_when_required() {
        let (c, _) = catalog();
        let src = fw_a_ip(&c);
        let mut s = Service::new(c, true, [1; 16]);
        let r = s.handle(
            Duration::ZERO,
            src,
            &req("GET", "/latest/meta-data/instance-id"),
        );
        assert_eq!(r.code, 401, "{r:?}");
        assert_eq!(
            s.counts
                .get(&("GET".into(), "/latest/meta-data/instance-id".into(), 401)),
            Some(&1)
        );
    }

    #[test]
    fn token_flow_answers_the_requesters_own_items() {
        let (c, dep) = catalog();
        let src = fw_a_ip(&c);
        let me = c.by_source(src).unwrap().clone();
        let mut s = Service::new(c, true, [1; 16]);
        let mut put = req("PUT", "/latest/api/token");
        put.ttl = Some("60".into());
        let t = s.handle(Duration::ZERO, src, &put);
        assert_eq!(t.code, 200);
        assert_eq!(t.body.len(), 32);
        let mut get = req("GET", "/latest/meta-data/network/interfaces/macs/");
        get.token = Some(t.body.clone());
        let macs = s.handle(Duration::from_secs(1), src, &get);
        assert_eq!(macs.code, 200);
        assert_eq!(macs.body.lines().count(), me.nics.len());
        for n in &me.nics {
            get.path = format!(
                "/latest/meta-data/network/interfaces/macs/{}/primary-ip-address",
                n.mac
            );
            let r = s.handle(Duration::from_secs(1), src, &get);
            assert_eq!(
                (r.code, r.body.as_str()),
                (200, n.primary_ip.to_string().as_str())
            );
        }
        get.path = "/latest/meta-data/region-id".into();
        assert_eq!(
            s.handle(Duration::from_secs(1), src, &get).body,
            dep.cloud.region
        );
        // Expired after its TTL.
        get.path = "/latest/meta-data/instance-id".into();
        assert_eq!(s.handle(Duration::from_secs(61), src, &get).code, 401);
    }

    #[test]
    fn another_instances_token_and_strangers_are_refused() {
        let (c, _) = catalog();
        let a = c.instances[0].nics[0].primary_ip;
        let b = c.instances[1].nics[1].primary_ip;
        let mut s = Service::new(c, true, [2; 16]);
        let mut put = req("PUT", "/latest/api/token");
        put.ttl = Some("60".into());
        let t = s.handle(Duration::ZERO, a, &put).body;
        let mut get = req("GET", "/latest/meta-data/instance-id");
        get.token = Some(t);
        assert_eq!(s.handle(Duration::ZERO, b, &get).code, 401);
        let stranger: Ipv4Addr = "10.0.10.10".parse().unwrap();
        assert_eq!(s.handle(Duration::ZERO, stranger, &get).code, 403);
    }

    #[test]
    fn bad_ttls_and_methods_are_refused() {
        let (c, _) = catalog();
        let src = fw_a_ip(&c);
        let mut s = Service::new(c, false, [3; 16]);
        for ttl in [None, Some("0"), Some("21601"), Some("x"), Some("-1")] {
            let mut put = req("PUT", "/latest/api/token");
            put.ttl = ttl.map(str::to_string);
            assert_eq!(s.handle(Duration::ZERO, src, &put).code, 400, "{ttl:?}");
        }
        assert_eq!(
            s.handle(Duration::ZERO, src, &req("GET", "/latest/api/token"))
                .code,
            405
        );
        assert_eq!(
            s.handle(Duration::ZERO, src, &req("DELETE", "/latest/meta-data/mac"))
                .code,
            405
        );
        // Token optional: a plain read works, an unknown path is 404 and
        // counted as `other` (the map stays bounded).
        assert_eq!(
            s.handle(Duration::ZERO, src, &req("GET", "/latest/meta-data/mac"))
                .code,
            200
        );
        for i in 0..100 {
            let r = s.handle(Duration::ZERO, src, &req("GET", &format!("/x/{i}")));
            assert_eq!(r.code, 404);
        }
        assert_eq!(
            s.counts.get(&("GET".into(), "other".into(), 404)),
            Some(&100)
        );
        assert!(s.counts.len() < 10, "{:?}", s.counts);
    }

    #[test]
    fn tokens_are_bounded() {
        let (c, _) = catalog();
        let src = fw_a_ip(&c);
        let mut s = Service::new(c, true, [4; 16]);
        let mut put = req("PUT", "/latest/api/token");
        put.ttl = Some("600".into());
        let first = s.handle(Duration::ZERO, src, &put).body;
        for i in 0..(MAX_TOKENS * 2) {
            s.handle(Duration::from_millis(i as u64 + 1), src, &put);
        }
        assert!(s.tokens.len() <= MAX_TOKENS);
        let mut get = req("GET", "/latest/meta-data/mac");
        get.token = Some(first);
        assert_eq!(s.handle(Duration::from_secs(1), src, &get).code, 401);
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            &b"GET\r\n"[..],
            b"GET /x\r\n",
            b"GET x HTTP/1.1\r\n",
            b"GET /x HTTP/1.1 extra\r\n",
            b"GET /x SPDY/3\r\n",
            b"GET /x HTTP/1.1\r\nno colon here",
            b"PUT /latest/api/token HTTP/1.1\r\nContent-Length: 5",
            b"PUT /latest/api/token HTTP/1.1\r\nTransfer-Encoding: chunked",
            b"\xff\xfe GET",
        ] {
            let r = parse(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(r.code, 400);
        }
        let ok = parse(b"GET /latest/meta-data/mac HTTP/1.1\r\nHost: 100.100.100.200\r\nX-Aliyun-Ecs-Metadata-Token: abc").unwrap();
        assert_eq!(ok.token.as_deref(), Some("abc"));
    }

    /// The server's reads over a real socket: oversized and slow requests.
    #[test]
    fn oversized_and_slow_requests_are_cut_off() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let big = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let _ = c.write_all(&vec![b'a'; MAX_REQUEST * 4]);
            let mut out = String::new();
            let _ = c.read_to_string(&mut out);
        });
        let (mut s, _) = l.accept().unwrap();
        assert_eq!(read_head(&mut s).unwrap_err().code, 431);
        drop(s);
        big.join().unwrap();
        let slow = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let _ = c.write_all(b"GET /latest/meta-data/mac HTTP/1.1\r\n");
            std::thread::sleep(READ_TIMEOUT + Duration::from_millis(500));
        });
        let (mut s, _) = l.accept().unwrap();
        let t = Instant::now();
        assert_eq!(read_head(&mut s).unwrap_err().code, 408);
        assert!(t.elapsed() < READ_TIMEOUT + Duration::from_millis(400));
        slow.join().unwrap();
    }
}
