//! The config task: one [`ConfigTask`] (the policy this node runs, and
//! what it needs to change it) and one step, [`ConfigTask::process`], per
//! [`ConfigInput`]: a local apply, a show, or a policy the peer offered.
//! Which version a local apply gets and which offers are taken are
//! config sync's rules ([`hafw_ha::config_sync::version`]); this task
//! validates, applies and persists.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hafw_ha::config_sync::{self, local_edit_allowed, policy_hash, ConfigAction};
use hafw_ha::msg::State;
use hafw_kernel::{route, Rtnl};
use hafw_model::render::node::NodePlan;
use tokio::sync::{mpsc, oneshot};

use super::{
    changed_outside_policy, ha_changes, ha_refusal, hex, load_version, merge, policy_text,
    prepare_files, remove, rename_files, restart_needed, splice, version_path,
};
use crate::dataplane::apply::{self, planned_route, Applied};
use crate::dataplane::withdraw::restore;
use crate::error::{ConfigError, DaemonError, KernelError, PeerError, SetupError};
use crate::ha::HaRequest;
use crate::log::Log;
use crate::ops::audit::{self, Audit, Who};
use crate::sync::{SyncCmd, SyncHandle};

/// What `hafw status` shows of this node's policy.
#[derive(Debug, Clone, Default)]
pub struct ConfigView {
    pub version: u64,
    pub hash: [u8; 32],
    /// The last apply that failed here, local or from the peer.
    pub error: Option<String>,
    /// Why the running node still uses parts of the old policy.
    pub restart: Option<String>,
}

/// Everything the config task reacts to.
pub enum ConfigInput {
    /// `hafw config apply FILE` on this node; the reply is the operator's.
    Apply {
        path: PathBuf,
        /// Who asked, from the control socket.
        caller: crate::control::Caller,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `hafw config show`.
    Show { reply: oneshot::Sender<String> },
    /// A policy config sync took from the peer
    /// ([`ConfigAction::ApplyConfig`]).
    PeerOffer {
        version: u64,
        hash: [u8; 32],
        bytes: Vec<u8>,
    },
}

impl From<ConfigAction> for ConfigInput {
    fn from(a: ConfigAction) -> ConfigInput {
        let ConfigAction::ApplyConfig {
            version,
            hash,
            bytes,
        } = a;
        ConfigInput::PeerOffer {
            version,
            hash,
            bytes,
        }
    }
}

/// Why a peer's policy was not applied, as this node's status and the
/// peer's Result say it: both already name the version and the peer.
fn reason(e: &DaemonError) -> String {
    match e {
        DaemonError::Peer(PeerError::Policy { reason, .. }) => reason.clone(),
        e => e.to_string(),
    }
}

/// A policy that was not applied, for its audit record: its hash and how
/// it differs from the running one.
fn proposal(running: &str, proposed: &str) -> String {
    format!(
        "hash {}, {}",
        &hex(&policy_hash(proposed.as_bytes()))[..8],
        audit::policy_change(running, proposed)
    )
}

/// What the task works with: paths, the kernel, the other threads.
pub struct ConfigEnv {
    pub config_path: PathBuf,
    pub node: String,
    /// `--ha-profile`: the same override for every new plan.
    pub ha_profile: Option<hafw_model::spec::HaProfile>,
    pub nl: Rtnl,
    pub log: Log,
    pub ha: mpsc::UnboundedSender<HaRequest>,
    pub sync: Option<Arc<SyncHandle>>,
    /// What every apply of this run changed, for the withdraw at shutdown.
    pub applied: Arc<Mutex<Applied>>,
    pub view: Arc<Mutex<ConfigView>>,
    pub audit: Audit,
}

/// A policy as one node runs it: the version, its hash, the whole file,
/// its `[policy]` and the plan built from it.
struct Policy {
    version: u64,
    hash: [u8; 32],
    text: String,
    policy: String,
    plan: NodePlan,
}

/// The policy a node starts with.
pub struct Startup {
    pub version: u64,
    pub hash: [u8; 32],
    pub policy: String,
    pub text: String,
}

/// Reads the file and its version at start. A version file whose hash is
/// not the file's policy means the file was edited by hand: the node runs
/// the file, says so, and the peer's status flags the mismatch.
pub fn startup(config: &Path, node: &str, log: &Log) -> Result<Startup, ConfigError> {
    let text = std::fs::read_to_string(config).map_err(|source| ConfigError::File {
        path: config.to_owned(),
        what: "cannot read",
        source,
    })?;
    let policy = policy_text(&text).map_err(|e| ConfigError::Invalid {
        path: config.to_owned(),
        message: e.to_string(),
    })?;
    let vpath = version_path(config, node);
    let (version, stored) = load_version(&vpath)?.unwrap_or((0, [0; 32]));
    // Version 0 (never applied through config sync) still has its hash, so
    // two nodes started from different files show a mismatch.
    let hash = policy_hash(policy.as_bytes());
    if version != 0 && stored != hash {
        log.warn(format!(
            "{} was edited since policy version {version} was applied (hash {} on disk, {} recorded); \
             running it as version {version}: apply it with `hafw config apply` on the active to give it a version of its own",
            config.display(),
            &hex(&hash)[..8],
            &hex(&stored)[..8]
        ));
    }
    Ok(Startup {
        version,
        hash,
        policy,
        text,
    })
}

pub struct ConfigTask {
    env: ConfigEnv,
    running: Policy,
}

impl ConfigTask {
    pub fn new(env: ConfigEnv, start: Startup, plan: NodePlan) -> ConfigTask {
        let task = ConfigTask {
            env,
            running: Policy {
                version: start.version,
                hash: start.hash,
                text: start.text,
                policy: start.policy,
                plan,
            },
        };
        task.publish(None, None);
        task
    }

    /// The loop: waits for the next input and processes it, one at a time
    /// (an apply is a transaction; nothing interleaves with it).
    pub async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<ConfigInput>,
        mut from_peer: mpsc::UnboundedReceiver<ConfigAction>,
    ) {
        loop {
            let input = tokio::select! {
                i = inputs.recv() => match i {
                    Some(i) => i,
                    None => return,
                },
                Some(a) = from_peer.recv() => a.into(),
            };
            self.process(input).await;
        }
    }

    /// The one step.
    pub async fn process(&mut self, input: ConfigInput) {
        match input {
            ConfigInput::Show { reply } => {
                let _ = reply.send(self.show());
            }
            ConfigInput::Apply {
                path,
                caller,
                reply,
            } => {
                let before = self.audit_mark();
                let r = self.apply_file(&path).await;
                if let Err(e) = &r {
                    self.env.log.error(e);
                }
                let mut what = format!("{}: {}", path.display(), self.audit_what(&before));
                if r.is_err() {
                    // What was refused, when the file still reads as a policy.
                    let proposed = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| policy_text(&t).ok());
                    if let Some(p) = proposed {
                        what.push_str(&format!("; refused: {}", proposal(&before.2, &p)));
                    }
                }
                let result = r.as_ref().map(|_| ()).map_err(|e| e.to_string());
                self.env
                    .audit
                    .record("config-apply", Who::Uid(caller.uid), what, result);
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            ConfigInput::PeerOffer {
                version,
                hash,
                bytes,
            } => {
                let before = self.audit_mark();
                let offered = String::from_utf8(bytes.clone()).ok();
                let r = self.apply_from_peer(version, hash, bytes).await;
                let what = match (&r, offered) {
                    (Ok(()), _) => self.audit_what(&before),
                    (Err(_), offered) => format!(
                        "{}; refused: version {version} {}",
                        self.audit_what(&before),
                        offered.map_or_else(
                            || format!("hash {}", &hex(&hash)[..8]),
                            |p| proposal(&before.2, &p)
                        )
                    ),
                };
                let result = r.as_ref().map(|_| ()).map_err(|e| e.to_string());
                self.env
                    .audit
                    .record("config-from-peer", Who::Peer, what, result);
                let verdict = match r {
                    Ok(()) => {
                        let applied = format!("policy version {version} from the peer applied");
                        self.env.log.info(applied);
                        Ok(())
                    }
                    Err(e) => {
                        self.env.log.error(&e);
                        let why = reason(&e);
                        if let Ok(mut v) = self.env.view.lock() {
                            v.error = Some(format!(
                                "policy version {version} from the peer was not applied: {why}"
                            ));
                        }
                        Err(why)
                    }
                };
                if let Some(s) = &self.env.sync {
                    let _ = s.config(SyncCmd::ApplyResult(verdict));
                }
            }
        }
    }

    /// The running policy before a change, for its audit record.
    fn audit_mark(&self) -> (u64, [u8; 32], String) {
        let r = &self.running;
        (r.version, r.hash, r.policy.clone())
    }

    /// What the audit record says of a change: the version and hash now
    /// running and, if they moved, from what and the diff summary.
    fn audit_what(&self, before: &(u64, [u8; 32], String)) -> String {
        let r = &self.running;
        if (r.version, r.hash) == (before.0, before.1) {
            return format!(
                "version {} hash {} (unchanged)",
                r.version,
                &hex(&r.hash)[..8]
            );
        }
        format!(
            "version {} hash {} (was version {} hash {}); {}",
            r.version,
            &hex(&r.hash)[..8],
            before.0,
            &hex(&before.1)[..8],
            audit::policy_change(&before.2, &r.policy)
        )
    }

    fn show(&self) -> String {
        let r = &self.running;
        let peer = self
            .env
            .sync
            .as_ref()
            .and_then(|s| s.status.lock().ok().and_then(|st| st.config.peer));
        format!(
            "version {}  hash {}\npeer    {}\nfile    {}\n\n{}",
            r.version,
            hex(&r.hash),
            peer.map(|(v, h)| format!("version {v}  hash {}", hex(&h)))
                .unwrap_or_else(|| "not heard yet".into()),
            self.env.config_path.display(),
            r.policy
        )
    }

    async fn state(&self) -> Result<State, SetupError> {
        let (tx, rx) = oneshot::channel();
        self.env
            .ha
            .send(HaRequest::State { reply: tx })
            .map_err(|_| SetupError::Stopped("HA"))?;
        rx.await.map_err(|_| SetupError::NoAnswer("HA"))
    }

    /// Every policy version this node knows of: its own, config sync's view
    /// of it, the peer's from its heartbeats.
    fn known_versions(&self) -> Vec<u64> {
        let mut known = vec![self.running.version];
        if let Some(Ok(st)) = self.env.sync.as_ref().map(|s| s.status.lock()) {
            known.push(st.config.version);
            known.extend(st.config.peer.map(|(v, _)| v));
        }
        known
    }

    async fn apply_file(&mut self, path: &Path) -> Result<String, DaemonError> {
        local_edit_allowed(self.state().await?).map_err(|e| ConfigError::Refused(e.to_string()))?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
            path: path.to_owned(),
            what: "cannot read",
            source,
        })?;
        let invalid = |e: ConfigError| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let changed = changed_outside_policy(&self.running.text, &text).map_err(invalid)?;
        if !changed.is_empty() {
            return Err(ConfigError::Refused(format!(
                "{} changes {} as well as [policy]: only the policy is applied and synced here; \
                 the cloud is changed with Terraform (`hafw plan terraform`) and node settings on each node, \
                 then the nodes restarted",
                path.display(),
                changed
                    .iter()
                    .map(|k| format!("[{k}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
        let policy = policy_text(&text).map_err(invalid)?;
        let plan = self.plan_of(&path.display().to_string(), &text)?;
        if policy == self.running.policy {
            return Ok(format!(
                "policy unchanged: still version {} ({})\n",
                self.running.version,
                &hex(&self.running.hash)[..8]
            ));
        }
        let ha = ha_changes(&self.running.plan, &plan, &self.running.policy, &policy);
        if !ha.is_empty() {
            return Err(
                ConfigError::Refused(format!("{}: {}", path.display(), ha_refusal(&ha))).into(),
            );
        }
        let version = config_sync::next_version(self.known_versions());
        let hash = policy_hash(policy.as_bytes());
        let next = Policy {
            version,
            hash,
            text,
            policy: policy.clone(),
            plan,
        };
        let restart = self.commit(next, true).await?;
        let pushed = match &self.env.sync {
            Some(s) => {
                let (tx, rx) = oneshot::channel();
                s.config(SyncCmd::ApplyLocal {
                    version,
                    bytes: policy.into_bytes(),
                    reply: tx,
                })?;
                match rx.await {
                    Ok(Ok(_)) => "offered to the peer".to_string(),
                    Ok(Err(e)) => format!("NOT offered to the peer: {e}"),
                    Err(_) => "NOT offered to the peer: the sync thread stopped".into(),
                }
            }
            None => "not synced: session sync (and with it config sync) is off".into(),
        };
        Ok(format!(
            "applied policy version {version} ({}) on {}; {pushed}\n{}",
            &hex(&hash)[..8],
            self.env.node,
            restart
                .map(|r| format!("restart needed: {r}\n"))
                .unwrap_or_default()
        ))
    }

    /// The peer's policy: what does not validate here is the peer's fault
    /// ([`PeerError::Policy`]); what the kernel or the disk refuses is ours.
    async fn apply_from_peer(
        &mut self,
        version: u64,
        hash: [u8; 32],
        bytes: Vec<u8>,
    ) -> Result<(), DaemonError> {
        let refused = |reason: String| PeerError::Policy { version, reason };
        let policy = String::from_utf8(bytes)
            .map_err(|_| refused("the peer's policy is not UTF-8".into()))?;
        let text = splice(&self.running.text, &policy).map_err(|e| refused(e.to_string()))?;
        let name = self.env.config_path.display().to_string();
        let plan = self
            .plan_of(&name, &text)
            .map_err(|e| refused(e.to_string()))?;
        // The peer's HA settings would reach this node's rules but not its
        // sockets: refused as a local apply is.
        let ha = ha_changes(&self.running.plan, &plan, &self.running.policy, &policy);
        if !ha.is_empty() {
            return Err(refused(format!("the peer's policy: {}", ha_refusal(&ha))).into());
        }
        // Persisted as received: the bytes whose hash both nodes advertise.
        let active = self.state().await? == State::Active;
        if active {
            // Config sync takes no offer while active; this node may have
            // been promoted since it took this one. The active's policy
            // changes only by `hafw config apply`.
            return Err(refused(
                "this node is active: its policy changes only by `hafw config apply` here".into(),
            )
            .into());
        }
        let next = Policy {
            version,
            hash,
            text,
            policy,
            plan,
        };
        self.commit(next, active).await.map(|_| ())
    }

    /// Full validation, then this node's plan.
    fn plan_of(&self, name: &str, text: &str) -> Result<NodePlan, ConfigError> {
        let dep =
            hafw_model::parse(name, text).map_err(|d| ConfigError::Malformed(d.to_string()))?;
        hafw_model::render::node::plan_with(&dep, &self.env.node, self.env.ha_profile).map_err(
            |e| ConfigError::Invalid {
                path: name.into(),
                message: e.to_string(),
            },
        )
    }

    /// Prepare, apply, persist; on any failure this node stays on its
    /// previous version. Returns why a restart is needed, if it is.
    async fn commit(&mut self, next: Policy, active: bool) -> Result<Option<String>, DaemonError> {
        let env = &self.env;
        let vpath = version_path(&env.config_path, &env.node);
        let files = [
            (vpath, format!("{} {}\n", next.version, hex(&next.hash))),
            (env.config_path.clone(), next.text.clone()),
        ];
        let tmps = prepare_files(&files, &env.node)?;
        let new_applied = match apply::apply(&env.nl, &next.plan, active, &env.log).await {
            Ok(a) => a,
            Err(e) => {
                remove(&tmps);
                return Err(KernelError::Apply(e).into());
            }
        };
        if let Err(e) = rename_files(&tmps, &files) {
            remove(&tmps);
            self.rollback(new_applied).await;
            return Err(ConfigError::NotPersisted {
                back_on: self.running.version,
                source: Box::new(e),
            }
            .into());
        }
        // Routes the new policy no longer has.
        let old = &self.running.plan;
        for r in old.routes.iter().filter(|r| !next.plan.routes.contains(r)) {
            if let Err(e) = route::delete(&env.nl, &planned_route(r)).await {
                let problem = format!(
                    "route {} via {} was dropped from the policy but is still in the kernel: {e}",
                    r.destination, r.gateway
                );
                env.log.error(
                    &KernelError::Withdraw {
                        problems: vec![problem],
                    }
                    .into(),
                );
            }
        }
        if let Ok(mut all) = env.applied.lock() {
            merge(&mut all, new_applied);
        }
        let restart = restart_needed(old, &next.plan);
        let _ = env.ha.send(HaRequest::SetConfigVersion {
            version: next.version,
            hash: next.hash,
        });
        self.running = next;
        self.publish(None, restart.clone());
        Ok(restart)
    }

    /// The new plan's kernel changes are taken back exactly: the previous
    /// ruleset recommitted as it was listed before (never just the table
    /// deleted), forwarding, addresses, routes and sysctls as they were.
    /// The running plan is then what the kernel holds again.
    async fn rollback(&self, new_applied: Applied) {
        let env = &self.env;
        let problems = restore(&env.nl, new_applied, &env.log).await;
        if problems.is_empty() {
            env.log.warn(format!(
                "back on policy version {}: the kernel holds its ruleset, routes and sysctls again",
                self.running.version
            ));
        } else {
            env.log.error(&KernelError::Withdraw { problems }.into());
        }
    }

    fn publish(&self, error: Option<String>, restart: Option<String>) {
        if let Ok(mut v) = self.env.view.lock() {
            *v = ConfigView {
                version: self.running.version,
                hash: self.running.hash,
                error,
                restart,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_told_the_reason_without_the_version_twice() {
        let refused: DaemonError = PeerError::Policy {
            version: 3,
            reason: "dep.toml:4:1: policy.rules[0].ports: 70000 is not a port".into(),
        }
        .into();
        assert_eq!(
            reason(&refused),
            "dep.toml:4:1: policy.rules[0].ports: 70000 is not a port"
        );
        // Ours (disk, kernel): the whole error, path included.
        let disk: DaemonError = ConfigError::File {
            path: "/etc/hafw/dep.toml.fw-b.tmp".into(),
            what: "cannot write",
            source: std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
        }
        .into();
        assert_eq!(
            reason(&disk),
            "/etc/hafw/dep.toml.fw-b.tmp: cannot write: is a directory"
        );
    }

    /// A peer's policy that changes `[policy.ha]` is refused before
    /// anything is applied (the netlink socket is opened, never used): this
    /// node stays on its version, its file is untouched, the status and
    /// the audit log say which field and that the nodes need a restart.
    #[tokio::test]
    async fn a_peer_policy_that_changes_the_ha_settings_is_refused_and_audited() {
        let dir = std::env::temp_dir().join(format!("hafw-cfgha-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let seed = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/alicloud-havip.toml"
        ))
        .unwrap();
        let config = dir.join("dep.toml");
        std::fs::write(&config, &seed).unwrap();
        let dep = hafw_model::parse("seed", &seed).unwrap();
        let plan = hafw_model::render::node::plan(&dep, "fw-b").unwrap();
        let log = Log::quiet();
        let start = startup(&config, "fw-b", &log).unwrap();
        let audit_file = dir.join("fw-b.audit.jsonl");
        let audit = Audit::start(
            "fw-b",
            audit::Sinks {
                file: audit_file.clone(),
                max_bytes: audit::DEFAULT_MAX_BYTES,
                journal: None,
            },
            &log,
        )
        .unwrap();
        // No HA thread: an offer that got past the check would fail on
        // asking for the state, with another error than the one wanted.
        let (ha, ha_rx) = mpsc::unbounded_channel();
        drop(ha_rx);
        let view = Arc::new(Mutex::new(ConfigView::default()));
        let env = ConfigEnv {
            config_path: config.clone(),
            node: "fw-b".into(),
            ha_profile: None,
            nl: Rtnl::connect().unwrap(),
            log,
            ha,
            sync: None,
            applied: Arc::default(),
            view: view.clone(),
            audit,
        };
        let mut task = ConfigTask::new(env, start, plan);
        let moved = seed.replace(
            "[policy.ha]\nprofile = \"default\"\n",
            "[policy.ha]\nprofile = \"default\"\nport = 4799\n",
        );
        assert_ne!(moved, seed, "the seed changed: update this test");
        let policy = policy_text(&moved).unwrap();
        task.process(ConfigInput::PeerOffer {
            version: 1,
            hash: policy_hash(policy.as_bytes()),
            bytes: policy.into_bytes(),
        })
        .await;
        let v = view.lock().unwrap().clone();
        assert_eq!(v.version, 0);
        let error = v.error.unwrap_or_default();
        assert!(
            error.contains("policy version 1 from the peer was not applied")
                && error.contains("policy.ha.port")
                && error.contains("restart the nodes one at a time, the passive first"),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&config).unwrap(), seed);
        assert!(!version_path(&config, "fw-b").exists());
        let mut line = String::new();
        for _ in 0..400 {
            line = std::fs::read_to_string(&audit_file).unwrap_or_default();
            if !line.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let r: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(r["event"], "config-from-peer", "{r}");
        assert_eq!(r["who"], "peer", "{r}");
        assert_eq!(r["result"], "error", "{r}");
        assert!(
            r["error"].as_str().unwrap().contains("policy.ha.port"),
            "{r}"
        );
        let what = r["what"].as_str().unwrap();
        assert!(
            what.starts_with("version 0 hash ")
                && what.contains("(unchanged); refused: version 1 hash ")
                && what.contains("+1 -0 lines"),
            "{r}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_without_a_policy_is_a_config_error_naming_it() {
        let dir = std::env::temp_dir().join(format!(
            "hafw-cfgstart-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dep.toml");
        std::fs::write(&path, "[cloud]\nregion = \"x\"\n").unwrap();
        let e = startup(&path, "fw-a", &Log::quiet())
            .err()
            .expect("refused");
        assert!(matches!(e, ConfigError::Invalid { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(&path.display().to_string()) && text.contains("no [policy] table"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
