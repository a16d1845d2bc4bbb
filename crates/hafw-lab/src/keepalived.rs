//! keepalived as the baseline: the same pair, the same emulated VPC, with
//! keepalived (VRRPv3, unicast peers, both HAVIPs in one sync group,
//! gratuitous ARP on transition) moving the floating addresses instead of
//! hafw's HA core. hafw still lays the data plane (ruleset, routes, sysctls)
//! as a passive node would, so only the failover mechanism differs.
//!
//! Where conntrackd is installed it runs beside keepalived, as people run
//! keepalived on a NAT firewall: FTFW over HA2 (unicast UDP to the peer),
//! and the sync group's notify commands drive it the way the conntrackd
//! package's `primary-backup.sh` does (a new master commits the peer's
//! sessions into its kernel table; a backup asks for a resync).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hafw_model::render::node::{Interface, NodePlan};
use hafw_model::spec::EniRole;

/// Timers to compare: keepalived's default advert interval, and the
/// smallest it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timers {
    /// `advert_int 1` (keepalived's default).
    Default,
    /// `advert_int 0.01`, VRRPv3's smallest (centiseconds).
    Fastest,
}

impl Timers {
    pub fn advert_int(self) -> &'static str {
        match self {
            Timers::Default => "1",
            Timers::Fastest => "0.01",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Timers::Default => "keepalived default (advert 1 s)",
            Timers::Fastest => "keepalived fastest (advert 10 ms)",
        }
    }
}

/// The UDP port conntrackd's sync uses on HA2 (its documentation's).
pub const CONNTRACKD_PORT: u16 = 3780;

/// One node's conntrackd: the binary and its files, all inside the lab's
/// state directory so that two labs never share a socket or a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conntrackd {
    pub bin: PathBuf,
    pub conf: PathBuf,
    /// The UNIX socket its client commands (`-c`, `-n`, ...) talk to.
    pub socket: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
    /// Output of the notify commands keepalived runs.
    pub notify_log: PathBuf,
}

impl Conntrackd {
    /// The files of `node`'s conntrackd in `dir` (the lab's state dir).
    pub fn in_dir(dir: &Path, node: &str, bin: &Path) -> Conntrackd {
        let file = |ext: &str| dir.join(format!("{node}.conntrackd.{ext}"));
        Conntrackd {
            bin: bin.to_path_buf(),
            conf: file("conf"),
            socket: file("ctl"),
            lock: file("lock"),
            log: file("log"),
            notify_log: file("notify.log"),
        }
    }

    /// `conntrackd -C <conf> <flag>`, as a shell word list.
    fn client(&self, flag: &str) -> String {
        format!("{} -C {} {flag}", self.bin.display(), self.conf.display())
    }

    /// The shell command keepalived runs on a transition: the steps of
    /// `primary-backup.sh` for that state, each run whatever the previous
    /// one returned, with their output appended to the notify log.
    fn notify(&self, state: &str, flags: &[&str]) -> String {
        let steps: Vec<String> = flags.iter().map(|f| self.client(f)).collect();
        format!(
            "/bin/sh -c 'exec >>{} 2>&1; echo {state}; {}'",
            self.notify_log.display(),
            steps.join("; ")
        )
    }

    /// The sync group's notify commands, as `primary-backup.sh` orders them.
    /// Master: commit the external cache (the peer's sessions) into the
    /// kernel table, flush both caches, resync the internal cache from the
    /// kernel, bulk-send it to the peer. Backup: shorten the kernel's timers
    /// (zombie entries from when it was master), ask the master for a
    /// resync. Fault: shorten the timers.
    pub fn notify_commands(&self) -> [(&'static str, String); 3] {
        [
            (
                "notify_master",
                self.notify("master", &["-c", "-f", "-R", "-B"]),
            ),
            ("notify_backup", self.notify("backup", &["-t", "-n"])),
            ("notify_fault", self.notify("fault", &["-t"])),
        ]
    }
}

/// The HA2 addresses of `plan` and its peer: conntrackd's dedicated link.
fn ha2_link<'p>(
    plan: &'p NodePlan,
    peer: &'p NodePlan,
) -> Result<(&'p Interface, &'p Interface), String> {
    let me = plan
        .interfaces
        .iter()
        .find(|x| x.role == EniRole::Ha2)
        .ok_or(format!("node {} has no ha2 interface", plan.node))?;
    let other = peer
        .interfaces
        .iter()
        .find(|x| x.role == EniRole::Ha2)
        .ok_or(format!("node {} has no ha2 interface", peer.node))?;
    Ok((me, other))
}

/// conntrackd.conf for one node: FTFW (reliable: acknowledged, resent) over
/// HA2, unicast UDP to the peer's HA2 address; traffic to or from either
/// node's own addresses is never synced (heartbeats, VRRP, the sync itself:
/// what the old `IgnoreTrafficFor` clause did, spelled as conntrackd 1.4
/// reads it); its socket, lock and log in the lab's state directory.
pub fn conntrackd_config(
    plan: &NodePlan,
    peer: &NodePlan,
    files: &Conntrackd,
) -> Result<String, String> {
    let (me, other) = ha2_link(plan, peer)?;
    let mut ignore = vec!["127.0.0.1".to_string()];
    for i in plan.interfaces.iter().chain(&peer.interfaces) {
        let a = i.address.to_string();
        if !ignore.contains(&a) {
            ignore.push(a);
        }
    }
    let lines = [
        format!(
            "# conntrackd for node {} (generated by hafw bench): keepalived's session sync",
            plan.node
        ),
        "Sync {".into(),
        "    Mode FTFW {".into(),
        "        StartupResync on".into(),
        "    }".into(),
        "    UDP {".into(),
        format!("        IPv4_address {}", me.address),
        format!("        IPv4_Destination_Address {}", other.address),
        format!("        Port {CONNTRACKD_PORT}"),
        format!("        Interface {}", me.ifname),
        "        SndSocketBuffer 1249280".into(),
        "        RcvSocketBuffer 1249280".into(),
        "        Checksum on".into(),
        "    }".into(),
        "}".into(),
        "General {".into(),
        "    Systemd off".into(),
        "    HashSize 32768".into(),
        "    HashLimit 131072".into(),
        format!("    LogFile {}", files.log.display()),
        "    Syslog off".into(),
        format!("    LockFile {}", files.lock.display()),
        "    UNIX {".into(),
        format!("        Path {}", files.socket.display()),
        "    }".into(),
        "    NetlinkBufferSize 8388608".into(),
        "    NetlinkBufferSizeMaxGrowth 16777216".into(),
        "    Filter From Kernelspace {".into(),
        "        Address Ignore {".into(),
    ];
    let mut s = String::new();
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    for a in ignore {
        let _ = writeln!(s, "            IPv4_address {a}");
    }
    s.push_str("        }\n    }\n}\n");
    Ok(s)
}

/// The rule conntrackd's sync needs through hafw's input chain: UDP to
/// its port from the peer's HA2 address, on HA2.
pub fn conntrackd_rule(plan: &NodePlan, peer: &NodePlan) -> Result<String, String> {
    let (me, other) = ha2_link(plan, peer)?;
    Ok(format!(
        "insert rule {} {} input iifname \"{}\" ip saddr {} udp dport {CONNTRACKD_PORT} counter accept comment \"conntrackd baseline\"\n",
        plan.ruleset.family, plan.ruleset.table, me.ifname, other.address
    ))
}

/// keepalived.conf for one node: one VRRP instance per floating address,
/// on its own interface, unicast to the peer's address on that interface
/// (the VPC has no multicast), all in one sync group so they move together.
/// Preemption is off, as in hafw's default.
pub fn config(plan: &NodePlan, peer: &NodePlan, timers: Timers) -> Result<String, String> {
    config_with(plan, peer, timers, None)
}

/// As [`config`]; with `conntrackd`, the sync group's transitions drive it.
pub fn config_with(
    plan: &NodePlan,
    peer: &NodePlan,
    timers: Timers,
    conntrackd: Option<&Conntrackd>,
) -> Result<String, String> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# keepalived baseline for node {} (generated by hafw bench)\nglobal_defs {{\n  router_id {}\n  vrrp_version 3\n  vrrp_garp_master_delay 0\n  vrrp_garp_master_repeat 3\n  vrrp_garp_interval 0.1\n  script_user root\n  enable_script_security\n}}",
        plan.node, plan.node
    );
    let names: Vec<String> = plan
        .floating
        .iter()
        .map(|f| format!("vi_{}", f.ifname))
        .collect();
    let notify: String = conntrackd
        .map(|c| {
            c.notify_commands()
                .iter()
                .map(|(k, cmd)| format!("  {k} \"{cmd}\"\n"))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "vrrp_sync_group hafw {{\n  group {{\n{}  }}\n{notify}}}",
        names
            .iter()
            .map(|n| format!("    {n}\n"))
            .collect::<String>()
    );
    for (i, f) in plan.floating.iter().enumerate() {
        let me = plan
            .interfaces
            .iter()
            .find(|x| x.ifname == f.ifname)
            .ok_or(format!("no interface {}", f.ifname))?;
        let other = peer
            .interfaces
            .iter()
            .find(|x| x.role == me.role)
            .ok_or(format!("peer has no {} interface", f.ifname))?;
        let _ = writeln!(
            s,
            "vrrp_instance {} {{\n  state BACKUP\n  nopreempt\n  interface {}\n  virtual_router_id {}\n  priority {}\n  advert_int {}\n  unicast_src_ip {}\n  unicast_peer {{\n    {}\n  }}\n  virtual_ipaddress {{\n    {}/32 dev {}\n  }}\n}}",
            names[i],
            me.ifname,
            51 + i,
            plan.ha.priority.max(1),
            timers.advert_int(),
            me.address,
            other.address,
            f.address,
            f.ifname
        );
    }
    Ok(s)
}

/// The rule keepalived's adverts need through hafw's input chain (VRRP is
/// IP protocol 112), inserted after the ruleset is applied.
pub fn vrrp_rule(peer: &NodePlan) -> String {
    let addrs: Vec<String> = peer
        .interfaces
        .iter()
        .map(|i| i.address.to_string())
        .collect();
    format!(
        "insert rule {} {} input ip protocol vrrp ip saddr {{ {} }} counter accept comment \"keepalived baseline\"\n",
        peer.ruleset.family,
        peer.ruleset.table,
        addrs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_havips_are_in_one_sync_group_with_unicast_peers() {
        let dep = hafw_model::parse("seed", hafw_model::examples::SEED).unwrap();
        let a = hafw_model::render::node::plan(&dep, "fw-a").unwrap();
        let b = hafw_model::render::node::plan(&dep, "fw-b").unwrap();
        let c = config(&a, &b, Timers::Fastest).unwrap();
        assert!(
            c.contains("group {\n    vi_untrust\n    vi_trust\n  }"),
            "{c}"
        );
        assert!(
            c.contains("unicast_src_ip 10.0.1.11\n  unicast_peer {\n    10.0.1.12\n  }"),
            "{c}"
        );
        assert!(c.contains("10.0.2.100/32 dev trust"), "{c}");
        assert!(c.contains("advert_int 0.01"));
        assert!(c.contains("priority 200"));
        assert!(vrrp_rule(&b).contains("10.0.1.12"));
        assert!(!c.contains("notify"), "no conntrackd, no notify: {c}");
    }

    fn seed_plans() -> (NodePlan, NodePlan) {
        let dep = hafw_model::parse("seed", hafw_model::examples::SEED).unwrap();
        (
            hafw_model::render::node::plan(&dep, "fw-a").unwrap(),
            hafw_model::render::node::plan(&dep, "fw-b").unwrap(),
        )
    }

    fn files(node: &str) -> Conntrackd {
        Conntrackd::in_dir(
            Path::new("/run/hafw-lab/seed"),
            node,
            Path::new("/usr/sbin/conntrackd"),
        )
    }

    #[test]
    fn conntrackd_syncs_ftfw_over_ha2_unicast_to_the_peer() {
        let (a, b) = seed_plans();
        let c = conntrackd_config(&a, &b, &files("fw-a")).unwrap();
        assert!(c.contains("Mode FTFW {"), "{c}");
        assert!(
            c.contains(
                "    UDP {\n        IPv4_address 10.0.3.11\n        IPv4_Destination_Address 10.0.3.12\n        Port 3780\n        Interface ha2\n"
            ),
            "{c}"
        );
        // The other way round on the peer.
        let d = conntrackd_config(&b, &a, &files("fw-b")).unwrap();
        assert!(
            d.contains("IPv4_address 10.0.3.12\n        IPv4_Destination_Address 10.0.3.11\n"),
            "{d}"
        );
        assert_eq!(c.matches('{').count(), c.matches('}').count(), "{c}");
        assert!(!c.contains("Multicast"), "{c}");
    }

    #[test]
    fn conntrackd_files_live_in_the_lab_state_dir() {
        let (a, b) = seed_plans();
        let c = conntrackd_config(&a, &b, &files("fw-a")).unwrap();
        assert!(
            c.contains("UNIX {\n        Path /run/hafw-lab/seed/fw-a.conntrackd.ctl\n"),
            "{c}"
        );
        assert!(
            c.contains("LockFile /run/hafw-lab/seed/fw-a.conntrackd.lock\n"),
            "{c}"
        );
        assert!(
            c.contains("LogFile /run/hafw-lab/seed/fw-a.conntrackd.log\n"),
            "{c}"
        );
        assert!(c.contains("NetlinkBufferSize 8388608\n"), "{c}");
        assert!(c.contains("NetlinkBufferSizeMaxGrowth 16777216\n"), "{c}");
        // Another lab, another socket and lock.
        let other = Conntrackd::in_dir(
            Path::new("/run/hafw-lab/other"),
            "fw-a",
            Path::new("/usr/sbin/conntrackd"),
        );
        assert_ne!(files("fw-a").socket, other.socket);
        assert_ne!(files("fw-a").lock, other.lock);
        assert_ne!(files("fw-a").socket, files("fw-b").socket);
    }

    #[test]
    fn conntrackd_ignores_both_nodes_own_addresses_but_not_the_havips() {
        let (a, b) = seed_plans();
        let c = conntrackd_config(&a, &b, &files("fw-a")).unwrap();
        let mut got: Vec<String> = c
            .lines()
            .skip_while(|l| !l.contains("Address Ignore {"))
            .filter_map(|l| l.trim().strip_prefix("IPv4_address "))
            .map(String::from)
            .collect();
        let mut want = vec!["127.0.0.1".to_string()];
        for n in [11, 12] {
            for net in 0..4 {
                want.push(format!("10.0.{net}.{n}"));
            }
        }
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{c}");
        // The SNAT'd sessions' reply goes to the HAVIP: ignoring it would
        // sync nothing worth syncing.
        assert!(
            !c.contains("10.0.1.100") && !c.contains("10.0.2.100"),
            "{c}"
        );
    }

    #[test]
    fn the_sync_group_drives_conntrackd_as_primary_backup_sh_does() {
        let (a, b) = seed_plans();
        let f = files("fw-a");
        let c = config_with(&a, &b, Timers::Default, Some(&f)).unwrap();
        let ctl = "/usr/sbin/conntrackd -C /run/hafw-lab/seed/fw-a.conntrackd.conf";
        let log = "/run/hafw-lab/seed/fw-a.conntrackd.notify.log";
        assert!(
            c.contains(&format!(
                "  notify_master \"/bin/sh -c 'exec >>{log} 2>&1; echo master; {ctl} -c; {ctl} -f; {ctl} -R; {ctl} -B'\"\n"
            )),
            "{c}"
        );
        assert!(
            c.contains(&format!(
                "  notify_backup \"/bin/sh -c 'exec >>{log} 2>&1; echo backup; {ctl} -t; {ctl} -n'\"\n"
            )),
            "{c}"
        );
        assert!(
            c.contains(&format!(
                "  notify_fault \"/bin/sh -c 'exec >>{log} 2>&1; echo fault; {ctl} -t'\"\n"
            )),
            "{c}"
        );
        // In the sync group (which keepalived wants before the instances),
        // not in an instance.
        let group = c.find("vrrp_sync_group hafw {").unwrap();
        let first_instance = c.find("vrrp_instance").unwrap();
        for k in ["notify_master", "notify_backup", "notify_fault"] {
            let at = c.find(k).unwrap();
            assert!(
                group < at && at < first_instance,
                "{k} outside the group: {c}"
            );
            assert_eq!(c.matches(k).count(), 1, "{c}");
        }
        assert_eq!(c.matches('{').count(), c.matches('}').count(), "{c}");
        // The rest is the plain baseline's.
        let plain = config(&a, &b, Timers::Default).unwrap();
        let without: String = c
            .lines()
            .filter(|l| !l.contains("notify_"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(without, plain);
    }

    #[test]
    fn the_sync_is_let_in_from_the_peer_on_ha2_only() {
        let (a, b) = seed_plans();
        let r = conntrackd_rule(&a, &b).unwrap();
        assert_eq!(
            r,
            "insert rule inet hafw input iifname \"ha2\" ip saddr 10.0.3.12 udp dport 3780 counter accept comment \"conntrackd baseline\"\n"
        );
    }
}
