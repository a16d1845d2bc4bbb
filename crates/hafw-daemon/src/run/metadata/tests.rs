//! Against a local listener serving canned replies.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

use super::*;

/// What the canned server does with one request.
enum Reply {
    Bytes(Vec<u8>),
    /// The bytes, one every `Duration`.
    Drip(Vec<u8>, Duration),
    /// Reads the request, answers nothing for this long, closes.
    Silent(Duration),
}

fn ok(body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn status(code: u16) -> Reply {
    Reply::Bytes(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").into_bytes())
}

/// A server on 127.0.0.1 answering each request with `answer(request
/// head)`; returns its URL and the heads it saw.
fn serve(answer: impl Fn(&str) -> Reply + Send + 'static) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                match conn.read(&mut b) {
                    Ok(1) => head.push(b[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let reply = answer(&head);
            log.lock().unwrap().push(head);
            match reply {
                Reply::Bytes(r) => {
                    let _ = conn.write_all(&r);
                }
                Reply::Drip(r, every) => {
                    for byte in r {
                        if conn.write_all(&[byte]).is_err() {
                            break;
                        }
                        thread::sleep(every);
                    }
                }
                Reply::Silent(d) => thread::sleep(d),
            }
        }
    });
    (url, seen)
}

/// Limits scaled down so the tests take well under a second each.
fn quick() -> Limits {
    Limits {
        reply_max: 64 * 1024,
        per_request: Duration::from_millis(300),
        budget: Duration::from_millis(1500),
        first_backoff: Duration::from_millis(20),
    }
}

/// The hardened-mode service: a token from PUT, reads refused without it.
fn hardened(head: &str) -> Reply {
    let path = head.split(' ').nth(1).unwrap_or_default().to_string();
    if head.starts_with("PUT /latest/api/token ") {
        if !head.contains("X-aliyun-ecs-metadata-token-ttl-seconds: 21600\r\n") {
            return status(400);
        }
        return ok("TOKEN-abc123");
    }
    if !head.contains("X-aliyun-ecs-metadata-token: TOKEN-abc123\r\n") {
        return status(403);
    }
    match path.as_str() {
        "/latest/meta-data/network/interfaces/macs/00:16:3e:00:00:01/primary-ip-address" => {
            ok("10.0.0.11\n")
        }
        "/latest/meta-data/instance-id" => ok("i-abc"),
        _ => status(404),
    }
}

#[test]
fn the_token_is_asked_once_and_sent_on_every_read() {
    let (url, seen) = serve(hardened);
    let mut c = Client::new(&url, quick()).unwrap();
    assert_eq!(
        c.primary_ip("00:16:3e:00:00:01").unwrap(),
        Ipv4Addr::new(10, 0, 0, 11)
    );
    assert_eq!(c.item("instance-id").unwrap(), "i-abc");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].starts_with("PUT /latest/api/token HTTP/1.1\r\n"));
    assert!(seen[1..]
        .iter()
        .all(|h| h.starts_with("GET ") && h.contains("X-aliyun-ecs-metadata-token: TOKEN-abc123")));
    assert_eq!(c.stats.retries, 0);
}

#[test]
fn a_prefix_in_the_url_is_kept() {
    let (url, seen) = serve(|h| {
        if h.starts_with("PUT /md/latest/api/token ") {
            ok("t")
        } else {
            ok("i-x")
        }
    });
    let mut c = Client::new(&format!("{url}/md/"), quick()).unwrap();
    assert_eq!(c.item("instance-id").unwrap(), "i-x");
    assert!(seen.lock().unwrap()[1].starts_with("GET /md/latest/meta-data/instance-id "));
}

#[test]
fn not_found_is_an_answer_not_a_retry() {
    let (url, seen) = serve(hardened);
    let mut c = Client::new(&url, quick()).unwrap();
    let e = c.primary_ip("00:16:3e:00:00:99").unwrap_err();
    assert_eq!(e, MetadataError::Status(404));
    assert_eq!(e.to_string(), "404 Not Found");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn a_refused_token_is_not_worked_around() {
    // No fallback to plain reads: a node always uses the token.
    let (url, seen) = serve(|h| {
        if h.starts_with("PUT ") {
            status(403)
        } else {
            ok("10.0.0.11")
        }
    });
    let mut c = Client::new(&url, quick()).unwrap();
    assert_eq!(
        c.primary_ip("00:16:3e:00:00:01").unwrap_err(),
        MetadataError::Status(403)
    );
    assert!(seen.lock().unwrap().iter().all(|h| h.starts_with("PUT ")));
}

#[test]
fn an_expired_token_is_renewed_once() {
    let puts = Arc::new(Mutex::new(0));
    let p = puts.clone();
    let (url, _) = serve(move |h| {
        if h.starts_with("PUT ") {
            let mut n = p.lock().unwrap();
            *n += 1;
            return ok(&format!("tok{n}"));
        }
        if h.contains("token: tok2\r\n") {
            ok("i-renewed")
        } else {
            status(401)
        }
    });
    let mut c = Client::new(&url, quick()).unwrap();
    assert_eq!(c.item("instance-id").unwrap(), "i-renewed");
    assert_eq!(*puts.lock().unwrap(), 2);
}

#[test]
fn a_slow_reply_times_out_and_the_budget_bounds_the_retries() {
    let (url, _) = serve(|_| {
        Reply::Drip(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde".to_vec(),
            Duration::from_millis(50),
        )
    });
    let mut c = Client::new(&url, quick()).unwrap();
    let t = Instant::now();
    let e = c.item("instance-id").unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, MetadataError::Exhausted(_)), "{e}");
    // Each attempt is cut at 300 ms although bytes keep coming; all of
    // them within the 1.5 s budget (and a little scheduling slack).
    assert!(took < Duration::from_millis(2000), "{took:?}");
    assert!(c.stats.timeouts >= 2, "{:?}", c.stats);
}

#[test]
fn a_silent_server_times_out() {
    let (url, _) = serve(|_| Reply::Silent(Duration::from_secs(3)));
    let limits = Limits {
        budget: Duration::from_millis(400),
        ..quick()
    };
    let mut c = Client::new(&url, limits).unwrap();
    let t = Instant::now();
    let e = c.item("instance-id").unwrap_err();
    assert!(matches!(e, MetadataError::Exhausted(_)), "{e}");
    assert!(t.elapsed() < Duration::from_millis(1000));
}

#[test]
fn a_service_that_comes_up_late_is_waited_for() {
    // Nothing listens at first: connection refused, retried.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");
    let late = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        let l = TcpListener::bind(addr).unwrap();
        for conn in l.incoming().take(2) {
            let mut conn = conn.unwrap();
            let mut b = [0u8; 2048];
            let _ = conn.read(&mut b);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntok");
        }
    });
    let mut c = Client::new(&url, quick()).unwrap();
    assert_eq!(c.item("instance-id").unwrap(), "tok");
    assert!(c.stats.retries >= 1, "{:?}", c.stats);
    late.join().unwrap();
}

#[test]
fn an_oversized_reply_is_refused_unretried() {
    let (url, seen) = serve(|_| {
        let mut r = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        r.extend(std::iter::repeat_n(b'a', 70 * 1024));
        Reply::Bytes(r)
    });
    let mut c = Client::new(&url, quick()).unwrap();
    assert_eq!(c.item("instance-id").unwrap_err(), MetadataError::Oversize);
    assert_eq!(c.stats.oversize, 1);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn garbage_is_refused_and_counted_never_a_panic() {
    let replies: Vec<&[u8]> = vec![
        b"",
        b"garbage\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n\xff\xfe",
        b"HTTP/1.1 200 OK\xff\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nbad token\r\nX-Injected: 1",
    ];
    for r in replies {
        let body = r.to_vec();
        let (url, _) = serve(move |_| Reply::Bytes(body.clone()));
        let mut c = Client::new(&url, quick()).unwrap();
        let e = c.item("instance-id").unwrap_err();
        assert!(
            matches!(e, MetadataError::Malformed(_)),
            "{:?}: {e:?}",
            String::from_utf8_lossy(r)
        );
        assert!(c.stats.malformed >= 1, "{:?}", String::from_utf8_lossy(r));
    }
    // A primary IP that is not one.
    let (url, _) = serve(|h| {
        if h.starts_with("PUT ") {
            ok("t")
        } else {
            ok("10.0.0.999")
        }
    });
    let mut c = Client::new(&url, quick()).unwrap();
    assert!(matches!(
        c.primary_ip("00:16:3e:00:00:01"),
        Err(MetadataError::Malformed(_))
    ));
}

#[test]
fn byte_mutations_of_a_reply_never_panic() {
    let good = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n10.0.0.11".to_vec();
    let mut rng = hafw_testkit::Rng::new(15);
    for _ in 0..2000 {
        let r = hafw_testkit::mutate::mutate(&mut rng, &good, 64);
        let _ = parse(&r, true);
        let _ = parse(&r, false);
        let _ = complete(&r);
    }
}

#[test]
fn bad_urls_are_refused_with_the_fix() {
    for bad in [
        "https://100.100.100.200",
        "100.100.100.200",
        "http://",
        "http://a b/",
    ] {
        let e = Client::new(bad, quick())
            .err()
            .unwrap_or_else(|| panic!("{bad}"));
        assert!(e.to_string().contains("HAFW_METADATA_URL"), "{e}");
    }
}
