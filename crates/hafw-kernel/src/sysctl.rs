//! Network sysctls (`/proc/sys/net/...`) of a namespace. `/proc/sys/net`
//! belongs to the namespace of the thread that opens the file, so the file is
//! opened on a thread inside the namespace (see [`crate::in_netns`]).

use std::fs;
use std::path::PathBuf;

use crate::error::in_ns;
use crate::{in_netns, Error, Result};

/// Writes `value` to `key` in namespace `ns` (`None`: the calling thread's).
/// `key` is `net.ipv4.ip_forward` or `net/ipv4/conf/eth0/proxy_arp`; use the
/// slash form when an interface name contains a dot.
pub fn set(ns: Option<&str>, key: &str, value: &str) -> Result<()> {
    let path = path(key)?;
    let object = in_ns(format!("sysctl {key}"), ns);
    in_netns(ns, || fs::write(&path, value))?.map_err(|e| Error::io("set", object, e))
}

/// Reads `key` in namespace `ns`, without the trailing newline.
pub fn get(ns: Option<&str>, key: &str) -> Result<String> {
    let path = path(key)?;
    let object = in_ns(format!("sysctl {key}"), ns);
    let text =
        in_netns(ns, || fs::read_to_string(&path))?.map_err(|e| Error::io("get", object, e))?;
    Ok(text.trim_end_matches('\n').to_string())
}

/// `/proc/sys/...` for `key`, refusing anything outside `/proc/sys/net`.
pub fn path(key: &str) -> Result<PathBuf> {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.first() != Some(&"net") || parts.len() < 2 {
        return Err(Error::invalid(
            "sysctl key",
            key,
            "must start with net. or net/",
        ));
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(Error::invalid(
            "sysctl key",
            key,
            "has an empty, '.' or '..' component",
        ));
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_sys_net() {
        assert_eq!(
            path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path("net/ipv4/conf/eth0.100/proxy_arp").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/proxy_arp")
        );
        for bad in [
            "kernel.hostname",
            "net",
            "net/../kernel/x",
            "net..ipv4",
            "/net/ipv4/ip_forward",
        ] {
            assert!(path(bad).is_err(), "{bad}");
        }
    }
}
