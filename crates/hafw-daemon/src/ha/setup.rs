//! Everything the HA thread needs, resolved from the node plan before the
//! thread starts: errors here stop `hafw run` before anything is applied.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;

use hafw_ha::node::Config;
use hafw_ha::wire::{Pair, PairKey};
use hafw_model::render::node::NodePlan;

pub struct Setup {
    pub config: Config,
    /// The pair's key: the key file bound to the deployment and both nodes.
    pub key: PairKey,
    pub peer_id: u32,
    /// (local, peer) per heartbeat path, in the order of `policy.ha.paths`.
    pub paths: Vec<(SocketAddr, SocketAddr)>,
    pub path_names: Vec<String>,
    /// The interface of each path: heartbeats are bound to it, so a path
    /// whose link is down is silent instead of leaking out another one.
    pub path_ifnames: Vec<String>,
    pub peer_name: String,
}

/// The HA settings come resolved in the plan (`plan.ha`); this only reads
/// the key and builds the sockets' addresses.
pub fn resolve(plan: &NodePlan, key_file: &Path) -> Result<Setup, String> {
    let (Some(peer_name), Some(peer_id)) = (plan.peer.clone(), plan.ha.peer_id) else {
        return Err(format!(
            "node `{}` has no peer in the file; add a second [[node]] or run with --standalone",
            plan.node
        ));
    };
    let psk = super::keyfile::read(key_file).map_err(|e| e.to_string())?;
    // The key of this pair only: the same file under another deployment
    // or other node names opens nothing.
    let pair = Pair::new(
        &plan.deployment,
        (plan.ha.node_id, &plan.node),
        (peer_id, &peer_name),
    );
    let key = PairKey::derive(&psk, &pair);
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
    let config = Config::from(&plan.ha);
    config.validate().map_err(|e| format!("HA settings: {e}"))?;
    Ok(Setup {
        config,
        key,
        peer_id,
        paths,
        path_names,
        path_ifnames,
        peer_name,
    })
}
