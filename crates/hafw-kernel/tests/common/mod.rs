//! Shared by the namespace tests: unique namespace names and a guard that
//! removes them even when a test fails.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use hafw_kernel::{link, netns, Mac, Netns};
use ipnet::Ipv4Net;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Namespaces created for one test; deleted on drop, pass or fail.
pub struct Lab {
    pub names: Vec<String>,
}

impl Lab {
    /// Creates one namespace per tag, named `hkt-<pid>-<n>-<tag>`, each with
    /// `lo` up.
    pub fn new(tags: &[&str]) -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut lab = Lab { names: Vec::new() };
        for tag in tags {
            let name = format!("hkt-{}-{n}-{tag}", std::process::id());
            netns::create(&name).unwrap();
            lab.names.push(name);
        }
        for i in 0..tags.len() {
            let ns = lab.open(i);
            ns.run_blocking(|nl| async move { link::set_up(&nl, "lo").await })
                .unwrap();
        }
        lab
    }

    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    pub fn open(&self, i: usize) -> Netns {
        Netns::open(&self.names[i]).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(e) = netns::delete(name) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Connects namespace `a` (interface `a_if`, address `a_addr`) to namespace
/// `b` with a veth pair, both ends up.
pub fn wire(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    let (a_if, b_if) = (a_if.to_string(), b_if.to_string());
    let (a_addr, b_addr): (Ipv4Net, Ipv4Net) = (a_addr.parse().unwrap(), b_addr.parse().unwrap());
    let peer_ns = b.name().to_string();
    let (ai, bi) = (a_if.clone(), b_if.clone());
    a.run_blocking(move |nl| async move {
        let end = link::VethEnd::new(ai.clone(), Some(mac(1)));
        let peer = link::VethEnd::new(bi, Some(mac(2)));
        link::add_veth(&nl, &end, &peer, Some(&peer_ns)).await?;
        hafw_kernel::addr::add(&nl, &ai, a_addr).await?;
        link::set_up(&nl, &ai).await
    })
    .unwrap();
    b.run_blocking(move |nl| async move {
        hafw_kernel::addr::add(&nl, &b_if, b_addr).await?;
        link::set_up(&nl, &b_if).await
    })
    .unwrap();
}

pub fn mac(last: u8) -> Mac {
    Mac([0x02, 0, 0, 0, 0, last])
}

/// Whether `ip netns list` shows `name` (through iproute2 itself).
pub fn ip_netns_lists(name: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}
