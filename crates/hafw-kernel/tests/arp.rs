//! Gratuitous ARP sent in one namespace, heard in another.

mod common;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::{mac, wire, Lab};
use hafw_kernel::arp::{self, ArpOp, AsyncListener, Listener};
use hafw_kernel::in_netns;

const HAVIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);

#[test]
fn gratuitous_arp_reaches_the_listener_in_the_peer_namespace() {
    let lab = Lab::new(&["ga", "gb"]);
    let (a, b) = (lab.open(0), lab.open(1));
    wire(&a, "a0", "10.1.0.1/24", &b, "b0", "10.1.0.2/24");

    let mut heard = Listener::open(Some(lab.name(1)), &["b0"]).unwrap();
    let mut own = Listener::open(Some(lab.name(0)), &["a0"]).unwrap();

    let from = arp::announce(Some(lab.name(0)), "a0", HAVIP, 3, Duration::from_millis(20)).unwrap();
    assert_eq!(from, mac(1));

    let mut announcements = 0;
    while let Some(packet) = heard.recv(Some(Duration::from_millis(500))).unwrap() {
        if packet.fields.sender_ip != HAVIP {
            continue;
        }
        assert_eq!(packet.interface, "b0");
        assert_eq!(packet.fields.op, ArpOp::Request);
        assert_eq!(packet.fields.sender_mac, mac(1));
        assert_eq!(packet.fields.eth_src, mac(1));
        assert_eq!(packet.fields.target_ip, HAVIP);
        assert!(packet.fields.is_gratuitous());
        announcements += 1;
    }
    assert_eq!(announcements, 3);
    assert_eq!(heard.malformed(), 0);

    // The sender's own listener does not report what its namespace sent.
    let echo = own.recv(Some(Duration::from_millis(200))).unwrap();
    assert!(echo.is_none(), "outgoing frame reported: {echo:?}");
}

#[test]
fn malformed_frames_are_counted_and_skipped() {
    let lab = Lab::new(&["ma", "mb"]);
    let (a, b) = (lab.open(0), lab.open(1));
    wire(&a, "a0", "10.1.0.1/24", &b, "b0", "10.1.0.2/24");
    let mut heard = Listener::open(Some(lab.name(1)), &["b0"]).unwrap();

    // An ARP-typed frame with a truncated body, sent raw from a0.
    let mut junk = vec![0xff; 6];
    junk.extend_from_slice(&mac(1).0);
    junk.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08]);
    in_netns(Some(lab.name(0)), || send_raw("a0", &junk)).unwrap();
    arp::announce(Some(lab.name(0)), "a0", HAVIP, 1, Duration::ZERO).unwrap();

    let packet = heard
        .recv(Some(Duration::from_secs(2)))
        .unwrap()
        .expect("announcement after junk");
    assert_eq!(packet.fields.sender_ip, HAVIP);
    assert_eq!(heard.malformed(), 1);
}

#[test]
fn async_listener_under_tokio() {
    let lab = Lab::new(&["aa", "ab"]);
    let (a, b) = (lab.open(0), lab.open(1));
    wire(&a, "a0", "10.1.0.1/24", &b, "b0", "10.1.0.2/24");
    let (sender_ns, listener_ns) = (lab.name(0).to_string(), lab.name(1).to_string());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let packet = runtime.block_on(async move {
        let mut listener = AsyncListener::open(Some(&listener_ns), &["b0"]).unwrap();
        tokio::task::spawn_blocking(move || {
            arp::announce(Some(&sender_ns), "a0", HAVIP, 1, Duration::ZERO)
        })
        .await
        .unwrap()
        .unwrap();
        tokio::time::timeout(Duration::from_secs(2), listener.recv())
            .await
            .unwrap()
            .unwrap()
    });
    assert_eq!(packet.fields.sender_ip, HAVIP);
    assert_eq!(packet.interface, "b0");
}

#[test]
fn async_listener_outside_a_runtime_is_an_error() {
    let lab = Lab::new(&["ar"]);
    assert!(AsyncListener::open(Some(lab.name(0)), &["lo"]).is_err());
}

fn send_raw(ifname: &str, frame: &[u8]) {
    let c_name = std::ffi::CString::new(ifname).unwrap();
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    assert!(index > 0, "no interface {ifname}");
    let proto = (libc::ETH_P_ALL as u16).to_be();
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    assert!(fd >= 0);
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = index as i32;
    let rc = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(
        rc,
        frame.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}
