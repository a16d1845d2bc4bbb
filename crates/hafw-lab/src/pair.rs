//! A running HA pair in a lab: the emulated VPC with `hafw run` on both
//! firewalls, faults to inject and heal, and probes through it. The failover
//! tests, `hafw bench failover` and `hafw lab demo` all drive the pair this
//! way. Dropping a `Pair` removes its lab.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hafw_model::render::node::HaTimers;
use hafw_model::spec::{Deployment, HaProfile};

use crate::instance_fs::InstanceFs;
use crate::keepalived::Timers;

use crate::hosts::{self, ProbeReport, Stop};
use crate::lab::{self, monotonic_ns, LabError, LogLine};
use crate::topology;
use hafw_daemon::control::{self, Request};
use hafw_daemon::status::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `hafw suspend` on the active: the planned handover.
    Suspend,
    /// `kill -9` of the active's daemon. Its kernel keeps forwarding with
    /// what it had, as a real node's would after a daemon crash.
    Kill,
    /// SIGSTOP of the active's daemon: frozen, heartbeats stop.
    Stop,
    /// The active's untrust interface loses its link.
    UntrustDown,
    /// The whole active instance dies: daemon killed and every interface
    /// down, as when a VM crashes.
    Crash,
    /// SIGTERM of the active's daemon (a service stop): it hands over first.
    Term,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Suspend,
        Fault::Term,
        Fault::Kill,
        Fault::Stop,
        Fault::UntrustDown,
        Fault::Crash,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Suspend => "suspend",
            Fault::Kill => "kill -9",
            Fault::Stop => "SIGSTOP",
            Fault::UntrustDown => "untrust link down",
            Fault::Crash => "instance crash",
            Fault::Term => "SIGTERM",
        }
    }
    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL
            .into_iter()
            .find(|f| f.as_str() == s || f.key() == s)
    }
    pub fn key(self) -> &'static str {
        match self {
            Fault::Suspend => "suspend",
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::UntrustDown => "link",
            Fault::Crash => "crash",
            Fault::Term => "term",
        }
    }
}

pub struct Pair {
    pub lab: String,
    pub dep: Deployment,
    /// The lab as built: each ENI's NIC name and MAC inside its instance.
    pub topology: topology::Topology,
    /// Started from first boot: each node's files are in its instance's
    /// own file system ([`crate::instance_fs`]).
    first_boot: bool,
    pub file: PathBuf,
    exe: PathBuf,
    profile: Profile,
    /// Serve the status API on 127.0.0.1 inside each firewall.
    api: bool,
    extra: Vec<String>,
    daemons: Vec<(String, Option<Child>)>,
    runtime: tokio::runtime::Runtime,
    /// Extra environment of each node's daemon, and the binary it runs
    /// instead of `exe`, by the index in `daemons` ([`Pair::restart_with`]).
    env: Vec<Vec<(String, String)>>,
    node_exe: Vec<Option<PathBuf>>,
    /// conntrackd beside keepalived (the baseline's session sync): its
    /// binary when the profile is keepalived's and it is installed.
    conntrackd: Option<PathBuf>,
    /// Each node's conntrackd, by the index in `daemons`.
    syncd: Vec<Option<Child>>,
}

/// Profiles that run keepalived instead of hafw's HA core (the baseline).
pub const KEEPALIVED_DEFAULT: &str = "keepalived";
pub const KEEPALIVED_FASTEST: &str = "keepalived-fastest";

/// What a lab pair runs: hafw with one of its timer profiles, or
/// keepalived (the baseline) with its default or its fastest advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Hafw(HaProfile),
    Keepalived(Timers),
}

impl Profile {
    pub const KEEPALIVED: Profile = Profile::Keepalived(Timers::Default);
    pub const KEEPALIVED_FASTEST: Profile = Profile::Keepalived(Timers::Fastest);

    /// The name the benches and tests give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Hafw(p) => p.as_str(),
            Profile::Keepalived(Timers::Default) => KEEPALIVED_DEFAULT,
            Profile::Keepalived(Timers::Fastest) => KEEPALIVED_FASTEST,
        }
    }
}

impl From<HaProfile> for Profile {
    fn from(p: HaProfile) -> Profile {
        Profile::Hafw(p)
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so a width in a format string (a table column) applies.
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Profile, String> {
        match s {
            KEEPALIVED_DEFAULT => Ok(Profile::KEEPALIVED),
            KEEPALIVED_FASTEST => Ok(Profile::KEEPALIVED_FASTEST),
            _ => s.parse::<HaProfile>().map(Profile::Hafw).map_err(|_| {
                format!(
                    "unknown HA profile `{s}`: use `default`, `fast`, `{KEEPALIVED_DEFAULT}` or `{KEEPALIVED_FASTEST}`"
                )
            }),
        }
    }
}

/// conntrackd on PATH, if installed: the keepalived baseline then runs it
/// for session sync, as keepalived is run on a NAT firewall.
pub fn conntrackd_path() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("conntrackd"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The security group a keepalived pair needs on top of hafw's: VRRP
/// (protocol 112) and conntrackd between the firewalls, which hafw's
/// rendering does not know. Everything from each firewall ENI's address,
/// as a deployment of the baseline would have to open.
fn baseline_security_group(dep: &Deployment) -> Vec<hafw_model::render::security_group::Ingress> {
    let mut rules = hafw_model::render::security_group::ingress(dep);
    for n in &dep.nodes {
        for eni in dep
            .instance(&n.name)
            .map(|i| i.enis.as_slice())
            .unwrap_or_default()
        {
            rules.push(hafw_model::render::security_group::Ingress {
                proto: "all",
                cidr: format!("{}/32", eni.primary_ip),
                ports: None,
                why: vec![format!(
                    "keepalived baseline: VRRP and conntrackd from {}",
                    n.name
                )],
            });
        }
    }
    rules
}

/// The deployment file the unit's ExecStart names, inside an instance.
pub const FIRST_BOOT_CONFIG: &str = "/etc/hafw/deployment.toml";

/// Where the lab's daemons serve the status API (inside each namespace).
pub const API_ADDR: &str = "127.0.0.1:9100";
/// The lab's API token (a lab secret, not a production one).
pub const API_TOKEN: &str = "lab-token-0123456789abcdef";

fn write_secret(path: &Path, text: &str) -> Result<(), LabError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(format!("create {}: {e}", path.display())))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .map_err(|e| err(format!("write {}: {e}", path.display())))
}

fn err(msg: impl Into<String>) -> LabError {
    LabError::Refused(msg.into())
}

/// Linux delays a proxy ARP reply by a random time up to `proxy_delay`
/// (0.8 s by default); the VPC's gateway answers at once. Without this an
/// instance's first ARP for its peer or gateway waits up to 0.8 s, which
/// delays the first heartbeats (both nodes go active at cold start) and
/// the first packets a new active forwards. The topology should set it
/// (topology.rs, beside `proxy_arp`); until it does, the pair sets it.
fn answer_arp_at_once(t: &topology::Topology) -> Result<(), LabError> {
    let vpc = t.vpc_ns();
    for p in &t.ports {
        let key = format!("net.ipv4.neigh.{}.proxy_delay", p.vpc_dev);
        hafw_kernel::sysctl::set(Some(&vpc), &key, "0")
            .map_err(|e| err(format!("set {key} in {vpc}: {e}")))?;
    }
    Ok(())
}

impl Pair {
    /// Builds the lab and starts a daemon on every firewall; returns once
    /// one is active and both HAVIPs point at it.
    pub fn start(file: &Path, lab_name: &str, exe: &Path, profile: &str) -> Result<Pair, LabError> {
        Pair::start_with(file, lab_name, exe, profile, false)
    }

    /// As [`Pair::start`]; with `api`, each daemon also serves the status
    /// API and metrics on [`API_ADDR`] in its own namespace.
    pub fn start_with(
        file: &Path,
        lab_name: &str,
        exe: &Path,
        profile: &str,
        api: bool,
    ) -> Result<Pair, LabError> {
        Pair::start_opts(file, lab_name, exe, profile, api, &[])
    }

    /// As [`Pair::start_with`], with extra `hafw run` arguments for both
    /// daemons (e.g. `--session-sync off`); `{node}` in one is replaced by
    /// the node's name (e.g. `--record /tmp/x-{node}.rec`).
    pub fn start_opts(
        file: &Path,
        lab_name: &str,
        exe: &Path,
        profile: &str,
        api: bool,
        extra: &[&str],
    ) -> Result<Pair, LabError> {
        Pair::start_env(file, lab_name, exe, profile, api, extra, &[])
    }

    /// As [`Pair::start_opts`], with extra environment for some daemons:
    /// `(node, key, value)` (see [`Pair::set_env`]).
    pub fn start_env(
        file: &Path,
        lab_name: &str,
        exe: &Path,
        profile: &str,
        api: bool,
        extra: &[&str],
        env: &[(&str, &str, &str)],
    ) -> Result<Pair, LabError> {
        let opts = topology::Options::default();
        Pair::start_lab(file, lab_name, exe, profile, api, extra, env, &opts)
    }

    /// The pair from first boot, as on the cloud: instances start with
    /// only eth0 configured; each one's user data (rendered by
    /// `render::bootstrap`, served by the lab's metadata service) is fetched
    /// with a metadata token and run inside the instance, which then starts
    /// `hafw run` as the unit's ExecStart does. `extra` as in
    /// [`Pair::start_opts`].
    pub fn start_first_boot(
        file: &Path,
        lab_name: &str,
        exe: &Path,
        profile: &str,
        extra: &[&str],
    ) -> Result<Pair, LabError> {
        let opts = topology::Options {
            first_boot: true,
            ..topology::Options::default()
        };
        Pair::start_lab(file, lab_name, exe, profile, false, extra, &[], &opts)
    }

    /// The most general start: [`Pair::start_env`] with the lab's options
    /// (first boot, a changed security group). With a security group that
    /// keeps the pair from forming, this still returns once a node is
    /// active; [`Pair::wait_ready`] then says what is missing.
    #[allow(clippy::too_many_arguments)]
    pub fn start_lab(
        file: &Path,
        lab_name: &str,
        exe: &Path,
        profile: &str,
        api: bool,
        extra: &[&str],
        env: &[(&str, &str, &str)],
        opts: &topology::Options,
    ) -> Result<Pair, LabError> {
        let profile: Profile = profile.parse().map_err(err)?;
        if opts.first_boot && matches!(profile, Profile::Keepalived(_)) {
            return Err(err(
                "first boot runs hafw's bootstrap; the keepalived baseline starts as before (drop first_boot)",
            ));
        }
        let text = std::fs::read_to_string(file)
            .map_err(|e| err(format!("read {}: {e}", file.display())))?;
        let dep = hafw_model::parse(&file.display().to_string(), &text)
            .map_err(|d| err(d.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(format!("runtime: {e}")))?;
        let mut opts = opts.clone();
        if matches!(profile, Profile::Keepalived(_)) && opts.security_group.is_none() {
            opts.security_group = Some(baseline_security_group(&dep));
        }
        let up = runtime.block_on(lab::up_with(&dep, &text, lab_name, exe, &opts))?;
        let topology = up.topology.clone();
        if let Err(e) = answer_arp_at_once(&up.topology) {
            let _ = lab::down(lab_name);
            return Err(e);
        }
        let mut pair = Pair {
            lab: lab_name.to_string(),
            daemons: dep.nodes.iter().map(|n| (n.name.clone(), None)).collect(),
            syncd: dep.nodes.iter().map(|_| None).collect(),
            env: dep.nodes.iter().map(|_| Vec::new()).collect(),
            node_exe: dep.nodes.iter().map(|_| None).collect(),
            conntrackd: if matches!(profile, Profile::Keepalived(_)) {
                conntrackd_path()
            } else {
                None
            },
            dep,
            topology,
            first_boot: opts.first_boot,
            file: file.to_path_buf(),
            exe: exe.to_path_buf(),
            profile,
            api,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            runtime,
        };
        for (node, k, v) in env {
            pair.set_env(node, k, Some(v));
        }
        if api {
            write_secret(&pair.api_token_file(), API_TOKEN)?;
        }
        if pair.first_boot {
            for n in pair.nodes() {
                pair.first_boot(&n)?;
            }
        }
        // Each node runs from a file of its own, as on two machines: config
        // sync rewrites a node's file, and one shared file would hide a
        // passive that never wrote its copy.
        for n in pair.dep.nodes.iter().filter(|_| !pair.first_boot) {
            let copy = pair.node_config(&n.name);
            if let Err(e) = std::fs::write(&copy, &text) {
                let _ = lab::down(lab_name);
                return Err(err(format!("write {}: {e}", copy.display())));
            }
        }
        for i in 0..pair.daemons.len() {
            pair.spawn(i)?;
        }
        pair.wait_settled(Duration::from_secs(20))?;
        Ok(pair)
    }

    pub fn api_token_file(&self) -> PathBuf {
        lab::state_dir(&self.lab).join("api.token")
    }

    /// GET `path` from a node's status API; `token` None sends none.
    /// Returns the status code and body.
    pub fn api_get(
        &self,
        node: &str,
        path: &str,
        token: Option<&str>,
    ) -> Result<(u16, String), LabError> {
        use std::io::{Read, Write};
        let ns = topology::ns_name(&self.lab, node);
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!("GET {path} HTTP/1.1\r\nHost: hafw\r\n{auth}Connection: close\r\n\r\n");
        let text = hafw_kernel::in_netns(Some(&ns), move || -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(API_ADDR)?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(req.as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .map_err(|e| err(e.to_string()))?
        .map_err(|e| err(format!("API of {node}: {e}")))?;
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// The deployment file `node`'s daemon runs from (its own copy).
    pub fn node_config(&self, node: &str) -> PathBuf {
        if self.first_boot {
            return self.instance_file(node, FIRST_BOOT_CONFIG);
        }
        lab::state_dir(&self.lab).join(format!("{node}.toml"))
    }

    /// Where the host sees `inside` (a path under /etc, /var or /run/hafw)
    /// of `node`'s instance.
    pub fn instance_file(&self, node: &str, inside: &str) -> PathBuf {
        let fs = InstanceFs::new(&self.lab, node);
        fs.host_path(inside)
            .unwrap_or_else(|| fs.root.join("outside"))
    }

    /// First boot of `node`'s instance: its user data rendered and served
    /// by the metadata service, fetched from inside the instance with a
    /// token (as cloud-init does), and run there with the binary just
    /// built on PATH. The script writes /etc/hafw (deployment, hafw.env,
    /// key); starting the unit is left to [`Pair::spawn`].
    fn first_boot(&mut self, node: &str) -> Result<(), LabError> {
        let fs = InstanceFs::new(&self.lab, node);
        fs.prepare()?;
        fs.install(&self.exe)?;
        // `lab up` rendered and serves it (lab::serve_user_data).
        let served = crate::metadata::user_data_file(&self.lab, node);
        let script = std::fs::read_to_string(&served)
            .map_err(|e| err(format!("{}: {e}", served.display())))?;
        let ns = topology::ns_name(&self.lab, node);
        let fetched = crate::metadata::fetch_in(&ns, "/latest/user-data")
            .map_err(|e| err(format!("{node} could not read its user data: {e}")))?;
        if fetched != script {
            return Err(err(format!(
                "{node}: the metadata service served other user data"
            )));
        }
        // Where cloud-init keeps it, inside the instance.
        let inside = "/var/lib/cloud/instance/user-data.txt";
        let copy = self.instance_file(node, inside);
        if let Some(dir) = copy.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        }
        std::fs::write(&copy, &fetched).map_err(|e| err(format!("{}: {e}", copy.display())))?;
        let log = lab::state_dir(&self.lab).join(format!("{node}.bootstrap.log"));
        let out = fs
            .command(&ns, "sh")?
            .arg(inside)
            .env("HAFW_BOOTSTRAP_NO_START", "1")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| err(format!("run the user data on {node}: {e}")))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::write(&log, &said);
        if !out.status.success() {
            return Err(err(format!(
                "the user data of {node} failed ({}):\n{said}",
                out.status
            )));
        }
        Ok(())
    }

    /// NODE from the instance's /etc/hafw/hafw.env, as the unit reads it.
    fn env_node(&self, node: &str) -> Result<String, LabError> {
        let path = self.instance_file(node, "/etc/hafw/hafw.env");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| err(format!("{}: {e} (did the bootstrap run?)", path.display())))?;
        text.lines()
            .find_map(|l| l.strip_prefix("NODE="))
            .map(str::to_string)
            .ok_or_else(|| err(format!("{} has no NODE= line", path.display())))
    }

    /// A node's audit log (`hafw run --audit-log`), in the lab's directory.
    pub fn audit_log(&self, node: &str) -> PathBuf {
        if self.first_boot {
            let inside = hafw_daemon::ops::audit::default_path(node);
            return self.instance_file(node, &inside.display().to_string());
        }
        lab::state_dir(&self.lab).join(format!("{node}.audit.jsonl"))
    }

    /// A node's state directory (`hafw run --state-dir`: the rule-hit
    /// totals), in the lab's directory, never the host's /var/lib/hafw.
    pub fn state_dir(&self, node: &str) -> PathBuf {
        lab::state_dir(&self.lab).join(format!("{node}.state"))
    }

    /// A node's traffic log (`hafw run --traffic-log`), in the lab's
    /// directory like the audit log.
    pub fn traffic_log(&self, node: &str) -> PathBuf {
        if self.first_boot {
            let inside = hafw_daemon::ops::traffic::default_path(node);
            return self.instance_file(node, &inside.display().to_string());
        }
        lab::state_dir(&self.lab).join(format!("{node}.traffic.jsonl"))
    }

    /// The records of a node's traffic log so far, one JSON value each
    /// (a line being written is left for the next read).
    pub fn traffic_records(&self, node: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.traffic_log(node)).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn control(&self, node: &str) -> PathBuf {
        if self.first_boot {
            return self.instance_file(node, control::DEFAULT_SOCKET);
        }
        lab::state_dir(&self.lab).join(format!("{node}.sock"))
    }

    /// Whether this pair runs keepalived (the baseline) instead of hafw.
    pub fn is_keepalived(&self) -> bool {
        matches!(self.profile, Profile::Keepalived(_))
    }

    /// Whether conntrackd runs beside keepalived (the baseline's session
    /// sync): a keepalived profile with conntrackd installed.
    pub fn conntrackd(&self) -> bool {
        self.conntrackd.is_some()
    }

    /// `node`'s conntrackd files, when conntrackd runs.
    fn conntrackd_files(&self, node: &str) -> Option<crate::keepalived::Conntrackd> {
        self.conntrackd
            .as_deref()
            .map(|bin| crate::keepalived::Conntrackd::in_dir(&lab::state_dir(&self.lab), node, bin))
    }

    /// conntrackd on node `i`, unless it runs: in the firewall's namespace,
    /// in a process group of its own (a fault on keepalived's group does not
    /// reach it), logging to the state dir. Returns once its control socket
    /// is there, which keepalived's first notify command needs.
    fn spawn_conntrackd(&mut self, i: usize) -> Result<(), LabError> {
        let node = self.daemons[i].0.clone();
        let Some(files) = self.conntrackd_files(&node) else {
            return Ok(());
        };
        if let Some(c) = &mut self.syncd[i] {
            if matches!(c.try_wait(), Ok(None)) {
                return Ok(());
            }
        }
        self.reap_conntrackd(i);
        // A killed conntrackd leaves its lock (it refuses to start while the
        // lock is there) and its socket.
        let _ = std::fs::remove_file(&files.lock);
        let _ = std::fs::remove_file(&files.socket);
        let ns = topology::ns_name(&self.lab, &node);
        let out_path = lab::state_dir(&self.lab).join(format!("{node}.conntrackd.out"));
        let out = std::fs::File::create(&out_path).map_err(|e| err(format!("log file: {e}")))?;
        let out2 = out.try_clone().map_err(|e| err(format!("log file: {e}")))?;
        let mut cmd = hafw_kernel::command(&ns, &files.bin).map_err(|e| err(e.to_string()))?;
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .arg("-C")
            .arg(&files.conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(out2)
            .spawn()
            .map_err(|e| err(format!("start conntrackd on {node}: {e}")))?;
        self.syncd[i] = Some(child);
        let end = Instant::now() + Duration::from_secs(5);
        while !files.socket.exists() {
            let exited = self.syncd[i]
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > end {
                self.reap_conntrackd(i);
                let log = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
                return Err(err(format!(
                    "conntrackd on {node} {}: {}{}",
                    match exited {
                        Some(st) => format!("exited ({st})"),
                        None => "made no control socket within 5 s".into(),
                    },
                    log(&out_path),
                    log(&files.log)
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Kills node `i`'s conntrackd (its group) without waiting for it.
    fn kill_conntrackd(&self, i: usize) {
        if let Some(c) = &self.syncd[i] {
            // SAFETY: kill(2) on our own child's process group.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
        }
    }

    /// Kills node `i`'s conntrackd, if any, and waits for it.
    fn reap_conntrackd(&mut self, i: usize) {
        self.kill_conntrackd(i);
        if let Some(mut c) = self.syncd[i].take() {
            let _ = c.wait();
        }
    }

    fn keepalived_timers(&self) -> crate::keepalived::Timers {
        match self.profile {
            Profile::Keepalived(t) => t,
            Profile::Hafw(_) => Timers::Default,
        }
    }

    /// keepalived on node `i`: hafw lays the data plane as a passive node
    /// (ruleset, routes, sysctls; no floating address), VRRP is let through
    /// the input chain, and keepalived moves the floating addresses.
    fn spawn_keepalived(&mut self, i: usize, first: bool) -> Result<(), LabError> {
        let node = self.daemons[i].0.clone();
        let ns = topology::ns_name(&self.lab, &node);
        let dir = lab::state_dir(&self.lab);
        if first {
            self.keepalived_dataplane(&node)?;
        }
        // Before keepalived: its first transition already runs conntrackd's
        // client commands.
        self.spawn_conntrackd(i)?;
        // The previous keepalived of this node is gone (reaped, its group
        // killed), but its VRRP child may linger unreaped for a while after a
        // kill -9: keepalived would take the pid in its pid file for a running
        // daemon and refuse to start.
        for f in ["keepalived.pid", "vrrp.pid"] {
            let _ = std::fs::remove_file(dir.join(format!("{node}.{f}")));
        }
        let log = std::fs::File::create(dir.join(format!("{node}.run.log")))
            .map_err(|e| err(format!("log file: {e}")))?;
        let log2 = log.try_clone().map_err(|e| err(format!("log file: {e}")))?;
        let mut cmd = hafw_kernel::command(&ns, "keepalived").map_err(|e| err(e.to_string()))?;
        // keepalived runs its VRRP engine in a child process: a group of
        // its own lets a fault reach both (a crash kills them all at once).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .args(["--dont-fork", "--vrrp", "--log-console", "-f"])
            .arg(dir.join(format!("{node}.keepalived.conf")))
            .arg("-p")
            .arg(dir.join(format!("{node}.keepalived.pid")))
            .arg("-r")
            .arg(dir.join(format!("{node}.vrrp.pid")))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| {
                err(format!(
                    "start keepalived on {node}: {e}; install it with `apt-get install keepalived`"
                ))
            })?;
        self.daemons[i].1 = Some(child);
        Ok(())
    }

    /// The data plane under keepalived: hafw applies it as a passive node
    /// would (and again after a link came back, since the kernel drops the
    /// routes of a link that goes down), VRRP is let through the input chain.
    fn keepalived_dataplane(&self, node: &str) -> Result<(), LabError> {
        let ns = topology::ns_name(&self.lab, node);
        let dir = lab::state_dir(&self.lab);
        let out = hafw_kernel::command(&ns, &self.exe)
            .map_err(|e| err(e.to_string()))?
            .arg("run")
            .arg("--config")
            .arg(&self.file)
            .args(["--node", node, "--apply-only"])
            .output()
            .map_err(|e| err(format!("apply the data plane on {node}: {e}")))?;
        if !out.status.success() {
            return Err(err(format!(
                "apply the data plane on {node}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let peer = self
            .peer_of(node)
            .ok_or_else(|| err("keepalived needs two nodes"))?;
        let me = self.plan(node)?;
        let other = self.plan(&peer)?;
        // `--apply-only` recommits the table when it differs (it does, by this
        // rule), so the rule is inserted afresh each time.
        hafw_kernel::nft::apply(Some(&ns), &crate::keepalived::vrrp_rule(&other))
            .map_err(|e| err(e.to_string()))?;
        let syncd = self.conntrackd_files(node);
        if let Some(f) = &syncd {
            let rule = crate::keepalived::conntrackd_rule(&me, &other).map_err(err)?;
            hafw_kernel::nft::apply(Some(&ns), &rule).map_err(|e| err(e.to_string()))?;
            let text = crate::keepalived::conntrackd_config(&me, &other, f).map_err(err)?;
            std::fs::write(&f.conf, text)
                .map_err(|e| err(format!("write conntrackd.conf: {e}")))?;
        }
        let conf =
            crate::keepalived::config_with(&me, &other, self.keepalived_timers(), syncd.as_ref())
                .map_err(err)?;
        std::fs::write(dir.join(format!("{node}.keepalived.conf")), conf)
            .map_err(|e| err(format!("write keepalived.conf: {e}")))
    }

    /// Whether `node` holds every floating address (keepalived's "master").
    fn holds_floating(&self, node: &str) -> Option<bool> {
        let plan = self.plan(node).ok()?;
        let ns = hafw_kernel::Netns::open(&topology::ns_name(&self.lab, node)).ok()?;
        let floating: Vec<(String, ipnet::Ipv4Net)> = plan
            .floating
            .iter()
            .map(|f| (f.ifname.clone(), ipnet::Ipv4Net::from(f.address.0)))
            .collect();
        ns.run_blocking(move |nl| async move {
            let mut all = true;
            for (dev, net) in &floating {
                let list = hafw_kernel::addr::list(&nl, dev).await?;
                all &= list.iter().any(|a| a.addr() == net.addr());
            }
            Ok(all)
        })
        .ok()
    }

    fn spawn(&mut self, i: usize) -> Result<(), LabError> {
        if self.is_keepalived() {
            let first = self.daemons[i].1.is_none()
                && !lab::state_dir(&self.lab)
                    .join(format!("{}.keepalived.conf", self.daemons[i].0))
                    .exists();
            return self.spawn_keepalived(i, first);
        }
        let node = self.daemons[i].0.clone();
        let ns = topology::ns_name(&self.lab, &node);
        let log = std::fs::File::create(lab::state_dir(&self.lab).join(format!("{node}.run.log")))
            .map_err(|e| err(format!("log file: {e}")))?;
        let log2 = log.try_clone().map_err(|e| err(format!("log file: {e}")))?;
        let exe = self.node_exe[i].as_ref().unwrap_or(&self.exe);
        if self.first_boot {
            return self.spawn_unit(i, log, log2);
        }
        let mut cmd = hafw_kernel::command(&ns, exe).map_err(|e| err(e.to_string()))?;
        cmd.arg("run")
            .arg("--config")
            .arg(self.node_config(&node))
            .args(["--node", &node, "--ha-profile", self.profile.as_str()])
            .arg("--key-file")
            .arg(lab::key_file(&self.lab))
            .arg("--control")
            .arg(self.control(&node));
        if self.api {
            cmd.args(["--api", API_ADDR, "--api-token-file"])
                .arg(self.api_token_file());
        }
        // The audit log stays in the lab's directory, never the host's
        // /var/log, unless the caller names one. Another release
        // (`restart_with`) gets it too if it knows the flag; one that does
        // not writes no audit log at all.
        let knows_audit_log = self.node_exe[i].is_none() || run_help_mentions(exe, "--audit-log");
        if knows_audit_log && !self.extra.iter().any(|a| a == "--audit-log") {
            cmd.arg("--audit-log").arg(self.audit_log(&node));
        }
        // The same for the state dir; a release without the flag keeps
        // no state there.
        let knows_state_dir = self.node_exe[i].is_none() || run_help_mentions(exe, "--state-dir");
        if knows_state_dir && !self.extra.iter().any(|a| a == "--state-dir") {
            let dir = self.state_dir(&node);
            std::fs::create_dir_all(&dir)
                .map_err(|e| err(format!("create {}: {e}", dir.display())))?;
            cmd.arg("--state-dir").arg(dir);
        }
        let knows_traffic_log =
            self.node_exe[i].is_none() || run_help_mentions(exe, "--traffic-log");
        if knows_traffic_log && !self.extra.iter().any(|a| a == "--traffic-log") {
            cmd.arg("--traffic-log").arg(self.traffic_log(&node));
        }
        // `{node}` in an extra argument is this node's name: a file per node.
        cmd.args(self.extra.iter().map(|a| a.replace("{node}", &node)));
        cmd.envs(self.env[i].iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd
            .spawn()
            .map_err(|e| err(format!("start hafw run on {node}: {e}")))?;
        self.daemons[i].1 = Some(child);
        Ok(())
    }

    /// `hafw run` on node `i` as the unit's ExecStart line runs it:
    /// `--config /etc/hafw/deployment.toml --node ${NODE}` (NODE from
    /// hafw.env) inside the instance's file system, with the default control
    /// socket (/run/hafw) and audit log (/var/log/hafw), plus the lab's
    /// profile and extra flags.
    fn spawn_unit(
        &mut self,
        i: usize,
        log: std::fs::File,
        log2: std::fs::File,
    ) -> Result<(), LabError> {
        let node = self.daemons[i].0.clone();
        let ns = topology::ns_name(&self.lab, &node);
        let env_node = self.env_node(&node)?;
        let fs = InstanceFs::new(&self.lab, &node);
        // The image's hafw, unless a restart names another release.
        let program = match &self.node_exe[i] {
            Some(p) => p.clone(),
            None => PathBuf::from("hafw"),
        };
        let mut cmd = fs.command(&ns, program)?;
        cmd.arg("run")
            .args(["--config", FIRST_BOOT_CONFIG, "--node", &env_node])
            .args(["--ha-profile", self.profile.as_str()]);
        cmd.args(self.extra.iter().map(|a| a.replace("{node}", &node)));
        cmd.envs(self.env[i].iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd
            .spawn()
            .map_err(|e| err(format!("start hafw run on {node}: {e}")))?;
        self.daemons[i].1 = Some(child);
        Ok(())
    }

    /// Stops `node`'s daemon (SIGTERM: an active hands over first) and
    /// starts it again with `env` added to its environment, for this and
    /// later starts (a rolling upgrade's test-only knobs). The previous
    /// run's log is kept as `{node}.run.log.{n}`.
    pub fn restart_with_env(&mut self, node: &str, env: &[(&str, &str)]) -> Result<(), LabError> {
        self.restart_with(node, None, env)
    }

    /// As [`Pair::restart_with_env`]; with `exe`, the node runs that binary
    /// from then on (another release), while the CLI stays the pair's.
    pub fn restart_with(
        &mut self,
        node: &str,
        exe: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Result<(), LabError> {
        let i = self.index(node)?;
        if let Some(exe) = exe {
            self.node_exe[i] = Some(exe.to_path_buf());
        }
        if let Some(mut c) = self.daemons[i].1.take() {
            // SAFETY: a signal to our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
        let dir = lab::state_dir(&self.lab);
        let log = dir.join(format!("{node}.run.log"));
        let n = (1..).find(|n| !dir.join(format!("{node}.run.log.{n}")).exists());
        if let Some(n) = n {
            let _ = std::fs::rename(&log, dir.join(format!("{node}.run.log.{n}")));
        }
        for (k, v) in env {
            self.env[i].retain(|(key, _)| key != k);
            self.env[i].push((k.to_string(), v.to_string()));
        }
        self.spawn(i)
    }

    /// Sets (or with None, removes) an environment variable for `node`'s
    /// next start (a [`Pair::heal`] after a kill); the running daemon keeps
    /// its own.
    pub fn set_env(&mut self, node: &str, key: &str, value: Option<&str>) {
        let Ok(i) = self.index(node) else { return };
        self.env[i].retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env[i].push((key.into(), v.into()));
        }
    }

    /// The daemon log of a node, for reports when something fails.
    pub fn daemon_log(&self, node: &str) -> String {
        std::fs::read_to_string(lab::state_dir(&self.lab).join(format!("{node}.run.log")))
            .unwrap_or_default()
    }

    /// The instance owning the external HAVIP, per the cloud (the HAVIP log).
    pub fn owner(&self) -> Option<String> {
        let ext = self.dep.external_havip()?.name.clone();
        let line = lab::read_havip_log(&self.lab)
            .into_iter()
            .rev()
            .find(|l| l.kind == "move" && l.havip == ext)?;
        self.dep.eni(&line.to).map(|(i, _)| i.name.clone())
    }

    /// Waits until the pair has settled: every HAVIP is owned by the same
    /// instance, that node says it is active, no other node says so, and
    /// the cloud has logged no move for longer than a promotion's
    /// gratuitous ARP repeats last (so a late repeat cannot still move a
    /// HAVIP). Returns the active node's name.
    pub fn wait_settled(&self, timeout: Duration) -> Result<String, LabError> {
        let garp = &self.dep.policy.ha.garp;
        let quiet_ns = (u64::from(garp.count) * u64::from(garp.interval_ms) + 100) * 1_000_000;
        let end = Instant::now() + timeout;
        let mut why;
        loop {
            let log = lab::read_havip_log(&self.lab);
            let owners: Vec<Option<String>> = self
                .dep
                .cloud
                .havips
                .iter()
                .map(|h| {
                    log.iter()
                        .rev()
                        .find(|l| l.kind == "move" && l.havip == h.name)
                        .and_then(|l| self.dep.eni(&l.to).map(|(i, _)| i.name.clone()))
                })
                .collect();
            let last_move = log
                .iter()
                .filter(|l| l.kind == "move")
                .map(|l| l.at_ns)
                .max()
                .unwrap_or(0);
            let states: Vec<(String, Option<String>)> = self
                .daemons
                .iter()
                .map(|(n, _)| (n.clone(), self.state(n)))
                .collect();
            let actives: Vec<&str> = states
                .iter()
                .filter(|(_, s)| s.as_deref() == Some("active"))
                .map(|(n, _)| n.as_str())
                .collect();
            why = format!("HAVIP owners {owners:?}, node states {states:?}");
            if let Some(Some(first)) = owners.first() {
                if owners.iter().all(|o| o.as_deref() == Some(first))
                    && actives == [first.as_str()]
                    && monotonic_ns().saturating_sub(last_move) > quiet_ns
                {
                    return Ok(first.clone());
                }
            }
            if Instant::now() > end {
                return Err(err(format!(
                    "the pair did not settle within {timeout:?}: {why}\nHAVIP log:\n{}\n{}",
                    log.iter()
                        .map(lab::format_log_line)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.daemons
                        .iter()
                        .map(|(n, _)| format!("--- {n}\n{}", self.daemon_log(n)))
                        .collect::<String>()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every hafw daemon says it is ready (`session_sync.ready`:
    /// active, or a passive holding its peer's sessions and policy version),
    /// as an operator would before trusting the pair with a failover. Under
    /// keepalived, or with session sync off, there is nothing to wait for.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), LabError> {
        if self.is_keepalived() {
            return Ok(());
        }
        let end = Instant::now() + timeout;
        loop {
            let pending: Vec<String> = self
                .daemons
                .iter()
                .filter(|(n, _)| !self.status(n).is_some_and(|st| st.ready()))
                .map(|(n, _)| n.clone())
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(err(format!(
                    "{} not ready within {timeout:?} (no full session table or policy from the peer)",
                    pending.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One request to a node's control socket, as `hafw status` sends it,
    /// with a short timeout: a frozen daemon must not stall the caller.
    fn request(&self, node: &str, req: Request) -> Result<String, String> {
        control::request_within(&self.control(node), &req, Duration::from_millis(1000))
            .map_err(|e| format!("{node}: {e}"))
    }

    /// A node's state from its status, or None when it does not answer.
    pub fn state(&self, node: &str) -> Option<String> {
        if self.is_keepalived() {
            return self
                .holds_floating(node)
                .map(|h| if h { "active" } else { "passive" }.to_string());
        }
        self.status(node).map(|s| s.state)
    }

    /// `hafw status` of a node, or why it did not answer.
    pub fn status_text(&self, node: &str) -> String {
        self.request(node, Request::Status)
            .unwrap_or_else(|e| format!("no status: {e}"))
    }

    /// `hafw status --json` of a node, or an empty string.
    pub fn status_json(&self, node: &str) -> String {
        self.request(node, Request::StatusJson).unwrap_or_default()
    }

    /// A node's typed status; `None` when it did not answer.
    pub fn status(&self, node: &str) -> Option<Status> {
        serde_json::from_str(&self.status_json(node)).ok()
    }

    fn index(&self, node: &str) -> Result<usize, LabError> {
        self.daemons
            .iter()
            .position(|(n, _)| n == node)
            .ok_or_else(|| err(format!("no node {node}")))
    }

    fn signal(&self, node: &str, sig: i32) -> Result<(), LabError> {
        let i = self.index(node)?;
        let Some(child) = &self.daemons[i].1 else {
            return Err(err(format!("{node} is not running")));
        };
        // keepalived's engine is a child of its own: signal the group.
        let pid = if self.is_keepalived() {
            -(child.id() as i32)
        } else {
            child.id() as i32
        };
        // SAFETY: kill(2) on our own child's pid or process group.
        let rc = unsafe { libc::kill(pid, sig) };
        if rc == 0 {
            Ok(())
        } else {
            Err(err(format!(
                "signal {sig} to {node}: {}",
                std::io::Error::last_os_error()
            )))
        }
    }

    /// Sets links of `node` up or down by their names inside the instance
    /// (`mgmt`, `untrust`, ...): faults beyond [`Fault`], such as cutting
    /// only the HA1 path.
    pub fn set_links(&self, node: &str, names: &[&str], up: bool) -> Result<(), LabError> {
        let ns = hafw_kernel::Netns::open(&topology::ns_name(&self.lab, node))
            .map_err(|e| err(e.to_string()))?;
        let names: Vec<String> = names.iter().map(|s| self.nic(node, s)).collect();
        ns.run_blocking(move |nl| async move {
            for n in &names {
                if up {
                    hafw_kernel::link::set_up(&nl, n).await?;
                } else {
                    hafw_kernel::link::set_down(&nl, n).await?;
                }
            }
            Ok(())
        })
        .map_err(|e| err(e.to_string()))
    }

    /// The NIC names of `node`'s ENIs inside its instance (`eth0`...).
    fn enis(&self, node: &str) -> Vec<String> {
        self.topology
            .ports
            .iter()
            .filter(|p| p.instance == node)
            .map(|p| p.dev.clone())
            .collect()
    }

    /// The NIC inside `node`'s instance of its ENI with role alias `name`
    /// (`mgmt`, `untrust`, ...); a NIC name (`eth1`) stays as it is.
    pub fn nic(&self, node: &str, name: &str) -> String {
        self.dep
            .instance(node)
            .and_then(|inst| {
                (0..inst.enis.len())
                    .find(|&k| hafw_model::resolve::alias(inst, k) == name)
                    .and_then(|k| self.topology.port(&inst.enis[k].name))
            })
            .map_or_else(|| name.to_string(), |p| p.dev.clone())
    }

    /// The data-plane NIC a link fault takes down: untrust, or the one-arm
    /// data ENI.
    fn untrust_nic(&self, node: &str) -> String {
        let aliases: Vec<String> = self
            .dep
            .instance(node)
            .map(|i| {
                (0..i.enis.len())
                    .map(|k| hafw_model::resolve::alias(i, k))
                    .collect()
            })
            .unwrap_or_default();
        let role = if aliases.iter().any(|a| a == "untrust") {
            "untrust"
        } else {
            "data"
        };
        self.nic(node, role)
    }

    /// `node`'s plan with the lab's NIC names, as `hafw run` resolves them.
    pub fn plan(&self, node: &str) -> Result<hafw_model::render::node::NodePlan, LabError> {
        let mut names = hafw_model::resolve::IfNames::aliases();
        for p in self.topology.ports.iter().filter(|p| p.instance == node) {
            names.insert(&p.eni, &p.dev);
        }
        hafw_model::render::node::plan_with(&self.dep, node, None, &names).map_err(err)
    }

    /// Injects a fault on `node`; returns CLOCK_MONOTONIC just before.
    pub fn inject(&mut self, fault: Fault, node: &str) -> Result<u64, LabError> {
        let at = monotonic_ns();
        match fault {
            Fault::Suspend if self.is_keepalived() => self.signal(node, libc::SIGTERM)?,
            Fault::Suspend => {
                let out = Command::new(&self.exe)
                    .args(["suspend", "--control"])
                    .arg(self.control(node))
                    .output()
                    .map_err(|e| err(e.to_string()))?;
                if !out.status.success() {
                    return Err(err(format!(
                        "hafw suspend: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )));
                }
            }
            Fault::Kill => self.signal(node, libc::SIGKILL)?,
            Fault::Term => self.signal(node, libc::SIGTERM)?,
            Fault::Stop => self.signal(node, libc::SIGSTOP)?,
            Fault::UntrustDown => {
                let nic = self.untrust_nic(node);
                self.set_links(node, &[&nic], false)?
            }
            Fault::Crash => {
                self.signal(node, libc::SIGKILL)?;
                // A crashed instance loses its conntrackd too (healing
                // starts it again, before keepalived).
                let i = self.index(node)?;
                self.kill_conntrackd(i);
                let enis = self.enis(node);
                let enis: Vec<&str> = enis.iter().map(String::as_str).collect();
                self.set_links(node, &enis, false)?
            }
        }
        Ok(at)
    }

    /// Undoes a fault so the node can serve again (passive).
    pub fn heal(&mut self, fault: Fault, node: &str) -> Result<(), LabError> {
        let i = self.index(node)?;
        match fault {
            Fault::Suspend | Fault::Term if self.is_keepalived() => {
                if let Some(mut c) = self.daemons[i].1.take() {
                    let _ = c.wait();
                }
                self.spawn(i)?;
            }
            Fault::Suspend => {
                let _ = Command::new(&self.exe)
                    .args(["resume", "--control"])
                    .arg(self.control(node))
                    .output();
            }
            Fault::Stop => self.signal(node, libc::SIGCONT)?,
            Fault::UntrustDown => {
                let nic = self.untrust_nic(node);
                self.set_links(node, &[&nic], true)?;
                // hafw's daemon restores its routes itself; under keepalived
                // the harness lays them again.
                if self.is_keepalived() {
                    self.keepalived_dataplane(node)?;
                }
            }
            Fault::Kill | Fault::Crash | Fault::Term => {
                if let Some(mut c) = self.daemons[i].1.take() {
                    let _ = c.wait();
                }
                if fault == Fault::Crash {
                    let enis = self.enis(node);
                    let enis: Vec<&str> = enis.iter().map(String::as_str).collect();
                    self.set_links(node, &enis, true)?;
                    if self.is_keepalived() {
                        self.keepalived_dataplane(node)?;
                    }
                }
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Runs the prober from lab host `from` to `target` for `duration`;
    /// returns the report and CLOCK_MONOTONIC at its start.
    pub fn probe(
        &self,
        from: &str,
        target: std::net::SocketAddr,
        rate_hz: u32,
        duration: Duration,
    ) -> Result<(ProbeReport, u64), LabError> {
        let ns = topology::ns_name(&self.lab, from);
        let mut cfg = hosts::ProbeConfig::new(target);
        cfg.rate_hz = rate_hz;
        cfg.duration = duration;
        cfg.timeout = Duration::from_millis(500);
        hafw_kernel::in_netns(Some(&ns), move || {
            let start = monotonic_ns();
            hosts::probe(&cfg, &Stop::new()).map(|r| (r, start))
        })
        .map_err(|e| err(e.to_string()))?
        .map_err(|e| err(e.to_string()))
    }

    /// Runs `f` while a probe runs in the background: the probe starts,
    /// `lead` passes, `f` runs, and the probe goes on to `duration`.
    pub fn probe_around<T>(
        &mut self,
        from: &str,
        target: std::net::SocketAddr,
        duration: Duration,
        lead: Duration,
        f: impl FnOnce(&mut Pair) -> T,
    ) -> Result<(ProbeReport, u64, T), LabError> {
        let ns = topology::ns_name(&self.lab, from);
        let mut cfg = hosts::ProbeConfig::new(target);
        cfg.duration = duration;
        cfg.timeout = Duration::from_millis(500);
        let handle = std::thread::spawn(move || {
            hafw_kernel::in_netns(Some(&ns), move || {
                let start = monotonic_ns();
                hosts::probe(&cfg, &Stop::new()).map(|r| (r, start))
            })
        });
        std::thread::sleep(lead);
        let out = f(self);
        let (report, start) = handle
            .join()
            .map_err(|_| err("the prober panicked"))?
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(e.to_string()))?;
        Ok((report, start, out))
    }

    /// How long after the last heartbeat a node declares its peer lost,
    /// with the profile the daemons run.
    pub fn detection(&self) -> Duration {
        if self.is_keepalived() {
            // VRRP: 3 adverts plus the skew time.
            return match self.keepalived_timers() {
                crate::keepalived::Timers::Fastest => Duration::from_millis(40),
                crate::keepalived::Timers::Default => Duration::from_millis(3_700),
            };
        }
        let profile = match self.profile {
            Profile::Hafw(p) => Some(p),
            Profile::Keepalived(_) => None,
        };
        HaTimers::resolve_with(&self.dep.policy.ha, profile).detection()
    }

    /// The other node of the pair.
    pub fn peer_of(&self, node: &str) -> Option<String> {
        self.daemons
            .iter()
            .map(|(n, _)| n)
            .find(|n| *n != node)
            .cloned()
    }

    /// HAVIP moves the cloud logged at or after `since_ns`.
    pub fn moves_since(&self, since_ns: u64) -> Vec<LogLine> {
        lab::read_havip_log(&self.lab)
            .into_iter()
            .filter(|l| l.kind == "move" && l.at_ns >= since_ns)
            .collect()
    }

    /// Waits until every HAVIP has moved to an ENI of `to` at or after
    /// `since_ns`; returns each HAVIP's name with the time of that move.
    pub fn wait_moved_to(
        &self,
        to: &str,
        since_ns: u64,
        timeout: Duration,
    ) -> Result<Vec<(String, u64)>, LabError> {
        let end = Instant::now() + timeout;
        loop {
            let moves = self.moves_since(since_ns);
            let found: Vec<Option<(String, u64)>> = self
                .dep
                .cloud
                .havips
                .iter()
                .map(|h| {
                    moves
                        .iter()
                        .find(|l| {
                            l.havip == h.name
                                && self.dep.eni(&l.to).is_some_and(|(i, _)| i.name == to)
                        })
                        .map(|l| (h.name.clone(), l.at_ns))
                })
                .collect();
            if found.iter().all(Option::is_some) {
                return Ok(found.into_iter().flatten().collect());
            }
            if Instant::now() > end {
                return Err(err(format!(
                    "not every HAVIP moved to {to} within {timeout:?}; moves since the fault: {:?}",
                    moves.iter().map(lab::format_log_line).collect::<Vec<_>>()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn nodes(&self) -> Vec<String> {
        self.daemons.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Stops the daemons (SIGTERM, then SIGKILL) and removes the lab.
    pub fn stop(mut self) -> Result<(), LabError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LabError> {
        for (_, child) in &mut self.daemons {
            if let Some(mut c) = child.take() {
                // SAFETY: signals to our own children.
                unsafe {
                    libc::kill(c.id() as i32, libc::SIGCONT);
                    libc::kill(c.id() as i32, libc::SIGKILL);
                }
                let _ = c.wait();
            }
        }
        for i in 0..self.syncd.len() {
            self.reap_conntrackd(i);
        }
        let _ = &self.runtime;
        lab::down(&self.lab).map(|_| ())
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Whether `exe run --help` lists `flag` (a binary of another release may
/// predate it).
fn run_help_mentions(exe: &Path, flag: &str) -> bool {
    Command::new(exe)
        .args(["run", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_from_the_names_the_benches_use() {
        for (name, want) in [
            ("default", Profile::Hafw(HaProfile::Default)),
            ("fast", Profile::Hafw(HaProfile::Fast)),
            ("tight", Profile::Hafw(HaProfile::Tight)),
            ("keepalived", Profile::KEEPALIVED),
            ("keepalived-fastest", Profile::KEEPALIVED_FASTEST),
        ] {
            assert_eq!(name.parse::<Profile>(), Ok(want));
            assert_eq!(want.as_str(), name);
        }
        let e = "quick".parse::<Profile>().unwrap_err();
        assert!(
            e.contains("`quick`") && e.contains("keepalived-fastest"),
            "{e}"
        );
    }
}
