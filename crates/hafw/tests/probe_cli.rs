//! `hafw probe` as an operator runs it: the exit status says whether the
//! run stayed within its thresholds, `--json` is one object, a bad target
//! is refused with the fix. Loopback only, ports picked by binding port 0.

use std::net::TcpListener;
use std::process::Command;

fn hafw() -> &'static str {
    env!("CARGO_BIN_EXE_hafw")
}

fn probe(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(hafw())
        .arg("probe")
        .args(args)
        .output()
        .expect("run hafw probe");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reachable_listener_passes_and_a_closed_port_breaks_max_loss() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().to_string();
    let (code, out, err) = probe(&[
        &open,
        "--method",
        "tcp",
        "--interval",
        "50ms",
        "--duration",
        "500ms",
        "--max-loss",
        "0",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (json["lost"].as_u64(), json["passed"].as_bool()),
        (Some(0), Some(true))
    );

    // Nothing listens on a port just released.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (code, out, err) = probe(&[
        &closed,
        "--method",
        "tcp",
        "--interval",
        "50ms",
        "--duration",
        "500ms",
        "--max-loss",
        "2",
    ]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(out.starts_with("lost "), "{out}");
    assert!(
        out.contains("FAILED: lost 10 probes, more than --max-loss 2"),
        "{out}"
    );
    drop(listener);
}

#[test]
fn a_target_without_a_port_is_refused_with_the_fix() {
    let (code, _, err) = probe(&["127.0.0.1", "--method", "tcp", "--duration", "1s"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("give the port too, as in 127.0.0.1:80"),
        "{err}"
    );
    let (code, _, err) = probe(&["127.0.0.1", "--interval", "5s"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--interval 5s: give 1ms to 1s"), "{err}");
}
