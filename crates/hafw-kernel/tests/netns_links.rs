//! Namespaces, veth pairs, addresses: created here, checked through the
//! kernel and through iproute2.

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use common::{ip_netns_lists, mac, wire, Lab};
use hafw_kernel::{addr, in_netns, link, netns, Error};
use ipnet::Ipv4Net;

#[test]
fn namespace_create_list_delete() {
    let lab = Lab::new(&["solo"]);
    let name = lab.name(0).to_string();
    assert!(netns::exists(&name).unwrap());
    assert!(netns::list().unwrap().contains(&name));
    assert!(ip_netns_lists(&name), "ip netns list does not show {name}");

    // `ip netns exec` works in it and sees only its own interfaces.
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &name, "ip", "-o", "link", "show"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(": lo:"), "{text}");

    // Creating it twice fails with EEXIST and leaves it in place.
    let err = netns::create(&name).unwrap_err();
    assert_eq!(err.errno(), Some(17), "EEXIST expected: {err}");
    assert!(netns::exists(&name).unwrap());

    netns::delete(&name).unwrap();
    netns::delete(&name).unwrap();
    assert!(!netns::exists(&name).unwrap());
    assert!(!netns::list().unwrap().contains(&name));
    assert!(!ip_netns_lists(&name));
    assert!(matches!(
        hafw_kernel::Netns::open(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn command_runs_inside_the_namespace_with_its_own_sys() {
    let lab = Lab::new(&["cmd"]);
    let out = hafw_kernel::command(lab.name(0), "/bin/sh")
        .unwrap()
        .args(["-c", "ls /sys/class/net"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "lo");
}

#[test]
fn veth_between_namespaces_carries_udp() {
    let lab = Lab::new(&["a", "b"]);
    let (a, b) = (lab.open(0), lab.open(1));
    wire(&a, "a0", "10.1.0.1/24", &b, "b0", "10.1.0.2/24");

    let a0 = a
        .run_blocking(|nl| async move { link::show(&nl, "a0").await })
        .unwrap();
    assert_eq!(a0.mac, Some(mac(1)));
    assert!(a0.admin_up);
    let b0 = b
        .run_blocking(|nl| async move { link::show(&nl, "b0").await })
        .unwrap();
    assert_eq!(b0.mac, Some(mac(2)));
    // The peer ended up in b, not beside a0.
    let missing = a.run_blocking(|nl| async move { link::index(&nl, "b0").await });
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );

    // Carrier comes once both ends are up.
    let mut up = false;
    for _ in 0..50 {
        let l = a
            .run_blocking(|nl| async move { link::show(&nl, "a0").await })
            .unwrap();
        if l.carrier && l.oper == link::OperState::Up {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(up, "a0 never reached carrier + oper up");

    // Adding an address twice is fine; listing shows it once.
    let net: Ipv4Net = "10.1.0.1/24".parse().unwrap();
    let addrs = a
        .run_blocking(move |nl| async move {
            addr::add(&nl, "a0", net).await?;
            addr::list(&nl, "a0").await
        })
        .unwrap();
    assert_eq!(addrs, vec![net]);

    let rx = in_netns(Some(lab.name(1)), || UdpSocket::bind("10.1.0.2:0"))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let dst = rx.local_addr().unwrap();
    in_netns(Some(lab.name(0)), || {
        let tx = UdpSocket::bind("0.0.0.0:0").unwrap();
        tx.send_to(b"hello", dst).unwrap();
    })
    .unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(from.ip(), Ipv4Addr::new(10, 1, 0, 1));

    // Address and link removal.
    let addrs = a
        .run_blocking(move |nl| async move {
            addr::delete(&nl, "a0", net).await?;
            addr::delete(&nl, "a0", net).await?;
            addr::list(&nl, "a0").await
        })
        .unwrap();
    assert!(addrs.is_empty());
    a.run_blocking(|nl| async move {
        link::delete(&nl, "a0").await?;
        link::delete(&nl, "a0").await
    })
    .unwrap();
    let gone = b.run_blocking(|nl| async move { link::index(&nl, "b0").await });
    assert!(
        matches!(gone, Err(Error::NotFound { .. })),
        "peer survived: {gone:?}"
    );
}

#[test]
fn bad_names_are_refused_before_the_kernel() {
    let lab = Lab::new(&["names"]);
    let a = lab.open(0);
    let err = a
        .run_blocking(|nl| async move {
            let end = link::VethEnd::new("this-name-is-too-long", None);
            let peer = link::VethEnd::new("p", None);
            link::add_veth(&nl, &end, &peer, None).await
        })
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

#[test]
fn a_panicking_job_is_an_error_and_the_worker_goes_on() {
    let lab = Lab::new(&["panic"]);
    let ns = lab.open(0);
    let err = ns
        .run_blocking(|_nl| async move {
            if true {
                panic!("job panics on purpose");
            }
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::WorkerGone { .. }), "{err}");
    let lo = ns
        .run_blocking(|nl| async move { link::show(&nl, "lo").await })
        .unwrap();
    assert!(lo.admin_up);
}

#[test]
fn rtnl_connect_in_a_namespace_thread_and_outside_a_runtime() {
    let lab = Lab::new(&["conn"]);
    assert!(hafw_kernel::Rtnl::connect().is_err(), "no runtime here");
    // What `hafw run` does: a runtime on a thread that is in the namespace.
    let names = in_netns(Some(lab.name(0)), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let nl = hafw_kernel::Rtnl::connect().unwrap();
            link::list(&nl)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.name)
                .collect::<Vec<_>>()
        })
    })
    .unwrap();
    assert_eq!(names, vec!["lo".to_string()]);
}
