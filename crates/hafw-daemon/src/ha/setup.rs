//! Everything the HA thread needs, resolved from the node plan before the
//! thread starts: errors here stop `hafw run` before anything is applied.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

use hafw_ha::node::{Config, FlapLimit};
use hafw_ha::wire::Psk;
use hafw_model::render::node::NodePlan;
use hafw_model::Deployment;

pub struct Setup {
    pub config: Config,
    pub psk: Psk,
    /// (local, peer) per heartbeat path, in the order of `policy.ha.paths`.
    pub paths: Vec<(SocketAddr, SocketAddr)>,
    pub path_names: Vec<String>,
    /// The interface of each path: heartbeats are bound to it, so a path
    /// whose link is down is silent instead of leaking out another one.
    pub path_ifnames: Vec<String>,
    pub peer_name: String,
}

/// Node ids are positions in the file's `[[node]]` list, from 1: both nodes
/// compute the same ids, and the tie-break (lower id wins) follows the file.
pub fn node_id(dep: &Deployment, name: &str) -> Option<u32> {
    dep.nodes
        .iter()
        .position(|n| n.name == name)
        .map(|i| i as u32 + 1)
}

pub fn resolve(dep: &Deployment, plan: &NodePlan, key_file: &Path) -> Result<Setup, String> {
    let Some(peer_name) = plan.peer.clone() else {
        return Err(format!(
            "node `{}` has no peer in the file; add a second [[node]] or run with --standalone",
            plan.node
        ));
    };
    let node_id = node_id(dep, &plan.node).ok_or("internal: node not in the file")?;
    let bytes = std::fs::read(key_file).map_err(|e| {
        format!(
            "cannot read the pre-shared key {}: {e}; create it with `head -c 32 /dev/urandom > {}` on both nodes (mode 0600)",
            key_file.display(),
            key_file.display()
        )
    })?;
    let psk =
        Psk::from_file_bytes(&bytes, &key_file.display().to_string()).map_err(|e| e.to_string())?;
    let mut paths = vec![];
    let mut path_names = vec![];
    let mut path_ifnames = vec![];
    for p in &plan.ha.paths {
        let Some(peer) = p.peer else {
            return Err(format!("HA path {} has no peer address", p.role.as_str()));
        };
        paths.push((
            SocketAddr::V4(SocketAddrV4::new(p.local.0, plan.ha.port)),
            SocketAddr::V4(SocketAddrV4::new(peer.0, plan.ha.port)),
        ));
        path_names.push(format!("{} {} -> {}", p.role.as_str(), p.local, peer));
        path_ifnames.push(p.ifname.clone());
    }
    let ha = &dep.policy.ha;
    let timers = &plan.ha.timers;
    let mut config = Config::new(node_id, plan.priority);
    config.preempt = ha.preempt;
    config.preempt_hold = Duration::from_millis(u64::from(ha.preempt_hold_ms));
    config.promotion_hold = Duration::from_millis(u64::from(ha.promotion_hold_ms));
    config.heartbeat_interval = Duration::from_millis(u64::from(timers.heartbeat_interval_ms));
    config.miss_count = timers.miss_count;
    config.paths = paths.len();
    config.flap_limit = FlapLimit {
        transitions: ha.flap_limit.transitions,
        window: Duration::from_secs(u64::from(ha.flap_limit.window_s)),
    };
    // Long enough for the peer to promote and say so in a heartbeat, even
    // with the default timers on a loaded machine.
    config.takeover_wait = (config.heartbeat_interval * 4).max(Duration::from_millis(500));
    // Booted together, the nodes must hear each other before either takes
    // the HAVIPs alone (a cold-start race makes both announce).
    config.initial_listen = Duration::from_millis(500);
    // Adaptive detection: on a loaded host heartbeats queue in the kernel
    // for tens, at worst hundreds, of milliseconds. Up to 500 ms (or twice
    // the fixed time) a
    // path's detection time grows with the lateness it has seen.
    config.max_detection = (config.detection() * 2).max(Duration::from_millis(500));
    config.validate().map_err(|e| format!("HA settings: {e}"))?;
    Ok(Setup {
        config,
        psk,
        paths,
        path_names,
        path_ifnames,
        peer_name,
    })
}
