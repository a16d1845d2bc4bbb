//! Gratuitous ARP for the floating addresses.

use std::time::Duration;

use hafw_kernel::arp;
use hafw_model::render::node::FloatingAddress;

/// Sends `count` gratuitous ARPs, `interval` apart, for every floating
/// address from its interface, all addresses at once. Blocking: the
/// daemon runs it with `spawn_blocking`. In a HAVIP VPC these move the
/// HAVIP to this node (alicloud-havip.md: ownership follows announcements).
pub fn announce(
    ns: Option<&str>,
    floating: &[FloatingAddress],
    count: u32,
    interval: Duration,
) -> Result<(), String> {
    std::thread::scope(|scope| {
        let sends: Vec<_> = floating
            .iter()
            .map(|f| {
                scope.spawn(move || {
                    arp::announce(ns, &f.ifname, f.address.0, count, interval)
                        .map(|_| ())
                        .map_err(|e| format!("announce {} on {}: {e}", f.address, f.ifname))
                })
            })
            .collect();
        let errors: Vec<String> = sends
            .into_iter()
            .filter_map(|s| match s.join() {
                Ok(r) => r.err(),
                Err(_) => Some("a gratuitous ARP thread panicked".into()),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    })
}
