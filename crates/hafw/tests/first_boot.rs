//! `hafw run` on an instance as the cloud hands it over: the NICs are
//! `eth0..eth3` in an order unlike the file's, only the management NIC is
//! up with its address (DHCP), the others down with none, and the node
//! name is not given (`--node auto`). A small metadata service in the VPC
//! namespace answers in hardened (token) mode. The node must find each
//! ENI's link (one by the MAC in the file, the others by the metadata
//! service) and bring the data plane up on those links.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const SEED: &str = "alicloud-havip.toml";

/// fw-a's role links renamed, in this order: untrust is eth0, ha2 eth1,
/// mgmt eth2, trust eth3.
const RENAMES: [(&str, &str, &str); 4] = [
    ("untrust", "eth0", "10.0.1.11/24"),
    ("ha2", "eth1", "10.0.3.11/24"),
    ("mgmt", "eth2", "10.0.0.11/24"),
    ("trust", "eth3", "10.0.2.11/24"),
];

/// A link's MAC in a namespace (the lab's, which the VPC's neighbour
/// entries know: the ENI keeps it, as on the cloud).
fn mac_of(ns: &str, link: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(format!("/sys/class/net/{link}/address"))
        .output()
        .unwrap();
    assert!(out.status.success(), "no link {link} in {ns}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Turns fw-a into a first-booted ECS guest; returns (eth name, MAC,
/// primary IP) per link.
fn first_boot(lab: &Lab) -> Vec<(String, String, String)> {
    let ns = lab.ns("fw-a");
    // The lab already names fw-a's NICs eth0..eth3 in the file's order
    // (mgmt, untrust, trust, ha2); move them to the shuffled names through
    // temporary ones, since the targets are taken.
    let lab_nic = |role: &str| match role {
        "mgmt" => "eth0",
        "untrust" => "eth1",
        "trust" => "eth2",
        _ => "eth3",
    };
    for (role, _, _) in RENAMES {
        let nic = lab_nic(role);
        let cmd = format!("ip link set {nic} down && ip link set {nic} name tmp-{role}");
        let said = lab.sh("fw-a", &format!("{cmd} && echo done"));
        assert!(said.contains("done"), "{cmd}: {said}");
    }
    let mut out = vec![];
    for (role, eth, cidr) in RENAMES {
        let tmp = format!("tmp-{role}");
        let mac = mac_of(&ns, &tmp);
        let ip = cidr.split('/').next().unwrap().to_string();
        let mut cmd = format!("ip link set {tmp} name {eth}");
        if eth != "eth2" {
            cmd.push_str(&format!(" && ip addr flush dev {eth}"));
        } else {
            cmd.push_str(&format!(
                " && ip link set {eth} up && ip route replace default via 10.0.0.253 dev {eth}"
            ));
        }
        let said = lab.sh("fw-a", &format!("{cmd} && echo done"));
        assert!(said.contains("done"), "{cmd}: {said}");
        out.push((eth.to_string(), mac, ip));
    }
    out
}

/// The metadata service: hardened mode (a token from PUT, required on
/// every read), one `primary-ip-address` per MAC, 404 for anything else.
/// Serves until dropped; keeps every request line.
struct Metadata {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Metadata {
    fn serve(lab: &Lab, answers: Vec<(String, String)>) -> Metadata {
        let listener =
            hafw_kernel::in_netns(Some(&lab.ns("vpc")), || TcpListener::bind("10.0.0.253:0"))
                .unwrap()
                .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let seen = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut head = vec![];
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    match conn.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                let body = if line.starts_with("PUT /latest/api/token ") {
                    Some("tok-first-boot".to_string())
                } else if !head.contains("X-aliyun-ecs-metadata-token: tok-first-boot\r\n") {
                    None
                } else {
                    answers
                        .iter()
                        .find(|(mac, _)| {
                            path == format!(
                                "/latest/meta-data/network/interfaces/macs/{mac}/primary-ip-address"
                            )
                        })
                        .map(|(_, ip)| ip.clone())
                };
                let reply = match body {
                    Some(b) => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len()),
                    None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
                };
                let _ = conn.write_all(reply.as_bytes());
                log.lock().unwrap().push(line);
            }
        });
        Metadata { url, seen, stop }
    }
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Metadata {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `hafw run --node auto --standalone` in fw-a, with the metadata URL;
/// killed on drop.
struct Run {
    child: Child,
    log: TempFile,
}

impl Run {
    fn start(lab: &Lab, config: &TempFile, md: &Metadata) -> Run {
        let log = TempFile::new("first-boot", "fw-a.log", "");
        let child = hafw_kernel::command(&lab.ns("fw-a"), hafw())
            .unwrap()
            .env("HAFW_METADATA_URL", &md.url)
            .args(["run", "--config"])
            .arg(config.path())
            .args(["--node", "auto", "--standalone", "--audit-log"])
            .arg(format!("{}.audit.jsonl", log.path().display()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log.path()).unwrap())
            .spawn()
            .unwrap();
        Run { child, log }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The seed with the untrust ENI's MAC written in (the others are left to
/// the metadata service).
fn config_with_untrust_mac(untrust_mac: &str) -> TempFile {
    let seed = std::fs::read_to_string(example(SEED)).unwrap();
    let text = seed.replacen(
        r#"primary_ip = "10.0.1.11", role = "untrust""#,
        &format!(r#"primary_ip = "10.0.1.11", mac = "{untrust_mac}", role = "untrust""#),
        1,
    );
    assert_ne!(text, seed);
    TempFile::new("first-boot", "seed.toml", &text)
}

#[test]
fn a_first_booted_instance_comes_up_on_the_links_it_finds() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(SEED, "fb");
    let links = first_boot(&lab);
    let untrust_mac = links[0].1.clone();
    let md = Metadata::serve(
        &lab,
        links
            .iter()
            .map(|(_, mac, ip)| (mac.clone(), ip.clone()))
            .collect(),
    );
    let config = config_with_untrust_mac(&untrust_mac);
    let run = Run::start(&lab, &config, &md);
    assert!(
        lab.wait_log("move external - fw-a-untrust", Duration::from_secs(20)),
        "fw-a did not come up:\n{}",
        run.log()
    );
    let log = run.log();
    for want in [
        "this machine is node fw-a",
        "ENI fw-a-untrust is link eth0, found by the MAC in the deployment file",
        // eth2 carries the management address (DHCP): no need to ask.
        "ENI fw-a-mgmt is link eth2, found by its primary IP already on the link",
        "ENI fw-a-trust is link eth3, found by the metadata service",
        "ENI fw-a-ha2 is link eth1, found by the metadata service",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
    // Hardened mode: one token, then reads with it; no MAC asked twice.
    let seen = md.seen();
    assert_eq!(seen[0], "PUT /latest/api/token HTTP/1.1", "{seen:?}");
    assert!(seen[1..].iter().all(|l| l.starts_with("GET ")), "{seen:?}");
    // Each down link was set up and given its address; the routes, the
    // floating addresses and the ruleset name the links found.
    let addrs = lab.sh("fw-a", "ip -br -4 addr");
    for (eth, _, ip) in &links {
        let line = addrs
            .lines()
            .find(|l| l.starts_with(eth.as_str()))
            .unwrap_or_else(|| panic!("no {eth} in {addrs}"));
        assert!(
            line.contains(" UP ") && line.contains(ip.as_str()),
            "{line}"
        );
    }
    assert!(
        addrs
            .lines()
            .any(|l| l.starts_with("eth0") && l.contains("10.0.1.100/32")),
        "floating address not on eth0: {addrs}"
    );
    let routes = lab.sh("fw-a", "ip -4 route show table main");
    for want in [
        "default via 10.0.1.253 dev eth0",
        "10.0.10.0/24 via 10.0.2.253 dev eth3",
        "100.100.100.200 via 10.0.0.253 dev eth2",
    ] {
        assert!(routes.contains(want), "missing {want:?} in:\n{routes}");
    }
    let table = lab.sh("fw-a", "nft list table inet hafw");
    assert!(table.contains("iifname \"eth0\""), "{table}");
    for role in ["mgmt", "untrust", "trust", "ha2"] {
        assert!(
            !table.contains(&format!("\"{role}\"")),
            "the ruleset still names `{role}`:\n{table}"
        );
    }
    // `--check` finds the same links and sees the kernel as planned.
    let check = hafw_kernel::command(&lab.ns("fw-a"), hafw())
        .unwrap()
        .env("HAFW_METADATA_URL", &md.url)
        .args(["run", "--config"])
        .arg(config.path())
        .args(["--node", "auto", "--standalone", "--check", "--audit-log"])
        .arg(format!("{}.audit.jsonl", config.path().display()))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "check differs:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // The node still reaches the metadata service (via mgmt, not the
    // policy's default route via untrust).
    let via = lab.sh("fw-a", "ip route get 100.100.100.200");
    assert!(via.contains("via 10.0.0.253 dev eth2"), "{via}");
    let addr: std::net::SocketAddr = md.url.trim_start_matches("http://").parse().unwrap();
    let reply = hafw_kernel::in_netns(Some(&lab.ns("fw-a")), move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /x HTTP/1.1\r\n\r\n")?;
        let mut r = String::new();
        s.read_to_string(&mut r)?;
        Ok::<String, std::io::Error>(r)
    })
    .unwrap()
    .expect("the metadata service is reachable after the start");
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
}

#[test]
fn an_eni_found_nowhere_stops_the_start_before_anything_is_applied() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(SEED, "fbx");
    let links = first_boot(&lab);
    // The metadata service knows only mgmt (eth2); the file names a MAC
    // for untrust that no link has.
    let md = Metadata::serve(&lab, vec![(links[2].1.clone(), links[2].2.clone())]);
    let config = config_with_untrust_mac("00:16:3e:99:99:99");
    let mut run = Run::start(&lab, &config, &md);
    let status = (0..200)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            run.child.try_wait().unwrap()
        })
        .unwrap_or_else(|| panic!("hafw run did not stop:\n{}", run.log()));
    assert!(!status.success());
    let log = run.log();
    for want in [
        "cannot find this node's ENIs",
        "ENI `fw-a-untrust` (role untrust, primary IP 10.0.1.11, MAC 00:16:3e:99:99:99)",
        "no link has MAC 00:16:3e:99:99:99",
        "no link carries 10.0.1.11",
        "ENI `fw-a-trust`",
        "ENI `fw-a-ha2`",
        "not an ENI of this instance (404)",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
    assert!(!log.contains("ENI `fw-a-mgmt`"), "{log}");
    // Nothing applied: no table, the down links still down.
    let tables = lab.sh("fw-a", "nft list tables");
    assert!(!tables.contains("hafw"), "{tables}");
    let links_now = lab.sh("fw-a", "ip -br link");
    assert!(
        links_now
            .lines()
            .any(|l| l.starts_with("eth0") && l.contains("DOWN")),
        "{links_now}"
    );
}
