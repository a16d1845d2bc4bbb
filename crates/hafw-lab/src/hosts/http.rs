//! The slice of HTTP/1.x (RFC 9112) the lab's web server and client speak:
//! finding the end of a header block, checking a request head, parsing a
//! response head, and rendering a response. Pure, so every malformed input
//! is a unit test.

/// The largest request or response head we accept; a longer one is refused
/// (431) rather than buffered without bound.
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// The index just past the blank line that ends the head in `buf`, if `buf`
/// holds a whole head. Lines may end in CRLF or a bare LF (RFC 9112 §2.2
/// allows a recipient to accept LF), and blank lines before the first line are
/// skipped (§2.2: a server SHOULD ignore at least one).
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut started = false;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &buf[line_start..i];
        let blank = line.is_empty() || line == b"\r";
        if blank && started {
            return Some(i + 1);
        }
        started |= !blank;
        line_start = i + 1;
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    Http10,
    Http11,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    pub target: String,
    pub version: Version,
}

/// Why a request head was refused, and so which status answers it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// 400, with the reason (sent in the body so a human can see it).
    Malformed(&'static str),
    /// 505: well-formed, but a version other than 1.0 and 1.1.
    Version,
}

/// Checks a request head (the bytes up to [`head_end`]).
pub(crate) fn parse_request(head: &[u8]) -> Result<Request, Reject> {
    let mut lines = lines(head)?.into_iter().skip_while(|l| l.is_empty());
    let first = lines.next().ok_or(Reject::Malformed("empty request"))?;
    let (method, target, version) = request_line(first)?;
    let mut hosts = 0;
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, _) = header(line)?;
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        }
    }
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without
    // a Host header, and to any request with more than one.
    if hosts > 1 || (version == Version::Http11 && hosts == 0) {
        return Err(Reject::Malformed(
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    Ok(Request {
        method,
        target,
        version,
    })
}

/// The head's lines without their line ends. A CR anywhere but before LF is
/// refused (RFC 9112 §2.2: a bare CR must not be passed on as data).
fn lines(head: &[u8]) -> Result<Vec<&[u8]>, Reject> {
    let mut out = Vec::new();
    for raw in head.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.contains(&b'\r') {
            return Err(Reject::Malformed("bare CR in the request head"));
        }
        out.push(line);
    }
    Ok(out)
}

fn request_line(line: &[u8]) -> Result<(String, String, Version), Reject> {
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(Reject::Malformed(
            "the request line must be: METHOD SP target SP HTTP/1.x",
        ));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Reject::Malformed("the method is not a token"));
    }
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return Err(Reject::Malformed(
            "the request target is empty or not visible ASCII",
        ));
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Reject::Version);
        }
        _ => return Err(Reject::Malformed("the version is not HTTP/1.0 or HTTP/1.1")),
    };
    // Both were checked to be ASCII above, so the conversion loses nothing.
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((text(method), text(target), version))
}

/// One header field: its name and value (RFC 9112 §5).
fn header(line: &[u8]) -> Result<(&[u8], &[u8]), Reject> {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        // §5.2: obsolete line folding; a server may reject it with 400.
        return Err(Reject::Malformed("folded header lines are not accepted"));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(Reject::Malformed("a header line has no colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // §5.1: no whitespace is allowed between the name and the colon.
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(Reject::Malformed("a header name is empty or not a token"));
    }
    if value.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(Reject::Malformed(
            "a header value holds a control character",
        ));
    }
    Ok((name, value.trim_ascii()))
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A whole response. `head_only` answers HEAD: the same header fields, no
/// body (RFC 9110 §9.3.2). Every response closes the connection, so the
/// server never has to find where a second request starts.
pub(crate) fn render_response(status: u16, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    if !head_only {
        out.push_str(body);
    }
    out.into_bytes()
}

/// What a client needs from a response head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub status: u16,
    pub content_length: Option<usize>,
    pub chunked: bool,
}

/// Parses a response head (the bytes up to [`head_end`]); the error names
/// what is wrong.
pub(crate) fn parse_response(head: &[u8]) -> Result<ResponseHead, String> {
    let lines = lines(head).map_err(|_| "bare CR in the response head".to_string())?;
    let mut lines = lines.into_iter().skip_while(|l| l.is_empty());
    let first = lines.next().ok_or("empty response")?;
    let status = status_line(first)?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = header(line)
            .map_err(|_| format!("bad header line {:?}", String::from_utf8_lossy(line)))?;
        if name.eq_ignore_ascii_case(b"content-length") {
            let n: usize = std::str::from_utf8(value)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| {
                    format!("bad Content-Length {:?}", String::from_utf8_lossy(value))
                })?;
            if content_length.is_some_and(|m| m != n) {
                return Err("conflicting Content-Length headers".into());
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        }
    }
    Ok(ResponseHead {
        status,
        content_length,
        chunked,
    })
}

/// `HTTP/1.x SP 3DIGIT [SP reason]`; the reason may be absent in practice.
fn status_line(line: &[u8]) -> Result<u16, String> {
    let shown = || String::from_utf8_lossy(line).into_owned();
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))
        .ok_or_else(|| format!("status line {:?} does not start with HTTP/1.x", shown()))?;
    let code = rest.get(..3).filter(|c| c.iter().all(u8::is_ascii_digit));
    let code = code.ok_or_else(|| format!("status line {:?} has no 3-digit status", shown()))?;
    if rest.len() > 3 && rest[3] != b' ' {
        return Err(format!("status line {:?} has a malformed status", shown()));
    }
    Ok(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_finds_crlf_and_lf_blank_lines() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        // Blank lines before the request line do not end the head.
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.0\r\n\r\n"), Some(22));
        assert_eq!(head_end(b"\r\n\r\n"), None);
    }

    #[test]
    fn accepts_plain_gets() {
        let r = parse_request(b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n").unwrap();
        assert_eq!(
            r,
            Request {
                method: "GET".into(),
                target: "/x?y=1".into(),
                version: Version::Http11
            }
        );
        let r = parse_request(b"\r\nGET / HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(r.version, Version::Http10);
        assert_eq!(
            parse_request(b"DELETE / HTTP/1.1\r\nhost: h\r\n\r\n")
                .unwrap()
                .method,
            "DELETE"
        );
    }

    #[test]
    fn refuses_malformed_heads() {
        let bad: &[&[u8]] = &[
            b"\r\n",
            b"NONSENSE\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / FTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\x00\r\n\r\n",
            b"GET /\xff HTTP/1.0\r\n\r\n",
        ];
        for head in bad {
            let got = parse_request(head);
            assert!(
                matches!(got, Err(Reject::Malformed(_))),
                "{:?} gave {got:?}",
                String::from_utf8_lossy(head)
            );
        }
        assert_eq!(
            parse_request(b"GET / HTTP/2.0\r\n\r\n"),
            Err(Reject::Version)
        );
    }

    #[test]
    fn renders_a_closing_response_with_its_length() {
        let r = String::from_utf8(render_response(200, "client 1.2.3.4:5\n", false)).unwrap();
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n\
             Connection: close\r\n\r\nclient 1.2.3.4:5\n"
        );
        let head = String::from_utf8(render_response(200, "abc", true)).unwrap();
        assert!(head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
        let r = String::from_utf8(render_response(405, "", false)).unwrap();
        assert!(r.contains("Allow: GET, HEAD\r\n"));
    }

    #[test]
    fn parses_response_heads() {
        let h = parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(
            h,
            ResponseHead {
                status: 404,
                content_length: Some(12),
                chunked: false
            }
        );
        let h = parse_response(b"HTTP/1.0 200\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!(
            h,
            ResponseHead {
                status: 200,
                content_length: None,
                chunked: true
            }
        );
        for bad in [
            &b"HTTP/1.1 20 OK\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
