//! The web client of the lab's internet host: one GET, the status and body
//! back, plus the connection's addresses so a test can compare what the
//! client used with what the server saw.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::error::{is_timeout, HostError};
use super::http::{self, MAX_HEAD};

/// A body larger than this is an error rather than a memory hazard; the
/// lab's server answers a few dozen bytes.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub body: String,
    /// The client's end of the connection.
    pub local: SocketAddr,
    /// The server's end, as connected to.
    pub peer: SocketAddr,
}

/// GETs `path` from `target` within `timeout` (connect, send and read all
/// together).
///
/// `target` is `http://host[:port][/path]` or `host:port`; an IPv6 host is
/// written in brackets. A URL with a path of its own takes an empty `path`.
/// Only plain HTTP is spoken, and only responses with a Content-Length or
/// ending at close (the lab's server sends both); chunked ones are refused.
pub fn fetch(target: &str, path: &str, timeout: Duration) -> Result<Fetched, HostError> {
    let deadline = Instant::now() + timeout;
    let target = Target::parse(target, path)?;
    let mut stream = connect(&target.authority, deadline, timeout)?;
    let local = stream
        .local_addr()
        .map_err(HostError::io("cannot read the local address"))?;
    let peer = stream
        .peer_addr()
        .map_err(HostError::io("cannot read the peer address"))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hafw-lab\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .set_write_timeout(Some(timeout))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(HostError::io(format!("cannot send the request to {peer}")))?;
    let (status, body) = read_response(&mut stream, peer, deadline, timeout)?;
    let body = String::from_utf8(body)
        .map_err(|_| HostError::Protocol(format!("the body from {peer} is not UTF-8 text")))?;
    Ok(Fetched {
        status,
        body,
        local,
        peer,
    })
}

#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port`, also sent as the Host header.
    authority: String,
    path: String,
}

impl Target {
    fn parse(target: &str, path: &str) -> Result<Target, HostError> {
        let bad = |why: &str| HostError::Config(format!("target {target:?}: {why}"));
        let scheme_len = target.find("://").map_or(0, |i| i + 3);
        let rest = match target[..scheme_len].to_ascii_lowercase().as_str() {
            "" | "http://" => &target[scheme_len..],
            _ => return Err(bad("only http:// is spoken")),
        };
        let (authority, url_path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let has_port = match authority.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None if authority.matches(':').count() > 1 => {
                return Err(bad("write an IPv6 address in brackets: [2001:db8::1]:80"));
            }
            None => authority.contains(':'),
        };
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let path = match (url_path, path) {
            ("", "") => "/".to_string(),
            (p, "") | ("", p) => p.to_string(),
            _ => return Err(bad("a path is given both in the URL and apart from it")),
        };
        if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "the path must start with / and hold visible ASCII only",
            ));
        }
        Ok(Target { authority, path })
    }
}

fn connect(authority: &str, deadline: Instant, timeout: Duration) -> Result<TcpStream, HostError> {
    let addrs: Vec<SocketAddr> = authority
        .to_socket_addrs()
        .map_err(|e| HostError::Config(format!("cannot resolve {authority:?}: {e}")))?
        .collect();
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => return Ok(stream),
            Err(e) if is_timeout(&e) => {
                return Err(HostError::Timeout {
                    context: format!("connect to {addr}"),
                    after: timeout,
                });
            }
            Err(source) => last = Some(HostError::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| HostError::Timeout {
        context: format!("connect to {authority}"),
        after: timeout,
    }))
}

/// Reads the head, then the body by Content-Length or to EOF.
fn read_response(
    stream: &mut TcpStream,
    peer: SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HostError> {
    let mut buf = Vec::new();
    let mut eof = false;
    let end = loop {
        if let Some(end) = http::head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(HostError::Protocol(format!(
                "the response head from {peer} exceeds {MAX_HEAD} bytes"
            )));
        }
        if eof {
            return Err(HostError::Protocol(format!(
                "{peer} closed before the end of the response head"
            )));
        }
        eof = read_more(stream, &mut buf, peer, deadline, timeout)?;
    };
    let head = http::parse_response(&buf[..end])
        .map_err(|why| HostError::Protocol(format!("from {peer}: {why}")))?;
    if head.chunked {
        return Err(HostError::Protocol(format!(
            "{peer} sent a chunked body, which fetch does not decode"
        )));
    }
    let mut body = buf.split_off(end);
    // RFC 9112 §6.3: these responses have no body whatever the headers say.
    if head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok((head.status, Vec::new()));
    }
    let want = head.content_length;
    if want.is_some_and(|n| n > MAX_BODY) {
        return Err(HostError::Protocol(format!(
            "the body from {peer} exceeds {MAX_BODY} bytes"
        )));
    }
    while !eof && want.is_none_or(|n| body.len() < n) {
        if body.len() > MAX_BODY {
            return Err(HostError::Protocol(format!(
                "the body from {peer} exceeds {MAX_BODY} bytes"
            )));
        }
        eof = read_more(stream, &mut body, peer, deadline, timeout)?;
    }
    match want {
        Some(n) if body.len() < n => Err(HostError::Protocol(format!(
            "{peer} closed after {} of {n} body bytes",
            body.len()
        ))),
        Some(n) => {
            body.truncate(n);
            Ok((head.status, body))
        }
        None => Ok((head.status, body)),
    }
}

/// Appends what one read returns; true at EOF.
fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<bool, HostError> {
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HostError::Timeout {
                context: format!("read the response from {peer}"),
                after: timeout,
            });
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(HostError::io("cannot set a read timeout"))?;
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {}
            Err(source) => {
                return Err(HostError::Io {
                    context: format!("reading the response from {peer}"),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str, p: &str) -> Result<(String, String), HostError> {
        Target::parse(t, p).map(|t| (t.authority, t.path))
    }

    #[test]
    fn targets_take_urls_and_addresses() {
        let pair = |a: &str, p: &str| (a.to_string(), p.to_string());
        assert_eq!(
            parse("http://192.0.2.1", "").unwrap(),
            pair("192.0.2.1:80", "/")
        );
        assert_eq!(
            parse("HTTP://192.0.2.1:8080/a/b?c", "").unwrap(),
            pair("192.0.2.1:8080", "/a/b?c")
        );
        assert_eq!(
            parse("192.0.2.1:81", "/x").unwrap(),
            pair("192.0.2.1:81", "/x")
        );
        assert_eq!(
            parse("[2001:db8::1]", "").unwrap(),
            pair("[2001:db8::1]:80", "/")
        );
        assert_eq!(
            parse("[2001:db8::1]:8080", "/").unwrap(),
            pair("[2001:db8::1]:8080", "/")
        );
    }

    #[test]
    fn bad_targets_say_why() {
        for (t, p) in [
            ("https://192.0.2.1", ""),
            ("http://", ""),
            ("2001:db8::1", ""),
            ("http://192.0.2.1/a", "/b"),
            ("192.0.2.1:80", "relative"),
            ("192.0.2.1:80", "/with space"),
        ] {
            let err = parse(t, p).unwrap_err();
            assert!(matches!(err, HostError::Config(_)), "{t} {p}: {err}");
        }
    }
}
