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

use super::history::{self, EntryState, Record};
use super::{
    changed_outside_policy, ha_changes, ha_refusal, hex, line_diff, load_version, merge, pause,
    policy_text, prepare_files, remove, rename_synced, restart_needed, splice, version_path,
};
use crate::control::Caller;
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
    /// The running version waits for `hafw config confirm`.
    pub pending: Option<PendingView>,
}

/// A version applied with `--confirm-within`, not yet confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingView {
    pub version: u64,
    /// Unix ms when both nodes go back unless confirmed.
    pub until_ms: u64,
    pub back_to: u64,
}

/// Everything the config task reacts to.
pub enum ConfigInput {
    /// `hafw config apply FILE` on this node; the reply is the operator's.
    Apply {
        path: PathBuf,
        caller: Caller,
        /// `-m`: kept in the history.
        comment: String,
        /// `--confirm-within`: rolled back unless confirmed by then.
        confirm_within: Option<std::time::Duration>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `hafw config confirm`: keeps the version pending confirmation.
    Confirm {
        caller: Caller,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `hafw config rollback N`: a new version equal to version N.
    Rollback {
        version: u64,
        caller: Caller,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `hafw config history`.
    History { reply: oneshot::Sender<String> },
    /// `hafw config diff --from N --to M`.
    Diff {
        from: u64,
        to: u64,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `hafw config show`.
    Show { reply: oneshot::Sender<String> },
    /// The active peer's version waits for confirmation
    /// ([`ConfigAction::Pending`]).
    PeerPending {
        version: u64,
        hash: [u8; 32],
        remaining_ms: u32,
        back_to: u64,
    },
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
        match a {
            ConfigAction::ApplyConfig {
                version,
                hash,
                bytes,
            } => ConfigInput::PeerOffer {
                version,
                hash,
                bytes,
            },
            ConfigAction::Pending {
                version,
                hash,
                remaining_ms,
                back_to,
            } => ConfigInput::PeerPending {
                version,
                hash,
                remaining_ms,
                back_to,
            },
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
    /// The links `hafw run` found for this node's ENIs: a policy change
    /// cannot move an ENI, so every new plan uses them.
    pub names: hafw_model::render::node::IfNames,
    pub nl: Rtnl,
    pub log: Log,
    pub ha: mpsc::UnboundedSender<HaRequest>,
    pub sync: Option<Arc<SyncHandle>>,
    /// What every apply of this run changed, for the withdraw at shutdown.
    pub applied: Arc<Mutex<Applied>>,
    pub view: Arc<Mutex<ConfigView>>,
    pub audit: Audit,
    /// Rule hits: told before and after each apply, which replaces the
    /// table and with it the counters.
    pub hits: Option<crate::hits::Hits>,
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
    /// The running version waits for `hafw config confirm` until then.
    pending: Option<Pending>,
    /// The overdue window was logged once (a passive waits for its
    /// active, or for taking over).
    overdue_said: bool,
}

/// How often an overdue window that could not roll back yet (not active,
/// or the rollback failed) is looked at again.
const OVERDUE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a local apply waits for the peer's answer before it writes
/// its commit record anyway (the peer may be down).
const PEER_ANSWER: std::time::Duration = std::time::Duration::from_secs(3);

/// A version applied with `--confirm-within` and not yet confirmed.
#[derive(Debug, Clone, Copy)]
struct Pending {
    version: u64,
    until_ms: u64,
    back_to: u64,
}

/// Who asked for a commit and why: what the history keeps.
struct Meta {
    uid: Option<u32>,
    comment: String,
    pending: Option<(u64, u64)>,
}

impl ConfigTask {
    pub fn new(env: ConfigEnv, start: Startup, plan: NodePlan) -> ConfigTask {
        let mut task = ConfigTask {
            env,
            running: Policy {
                version: start.version,
                hash: start.hash,
                text: start.text,
                policy: start.policy,
                plan,
            },
            pending: None,
            overdue_said: false,
        };
        task.seed_history();
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
            let wait = self
                .pending
                .map(|p| match p.until_ms.saturating_sub(history::now_ms()) {
                    // Overdue and not yet rolled back: checked again.
                    0 => OVERDUE_RECHECK,
                    left => std::time::Duration::from_millis(left),
                });
            let input = tokio::select! {
                i = inputs.recv() => match i {
                    Some(i) => i,
                    None => return,
                },
                Some(a) = from_peer.recv() => a.into(),
                _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {
                    self.expire().await;
                    self.publish_pending();
                    continue;
                }
            };
            self.process(input).await;
            self.publish_pending();
            if self.pending.is_none() {
                self.overdue_said = false;
            }
        }
    }

    /// Status shows whether the running version waits for confirmation.
    fn publish_pending(&self) {
        if let Ok(mut v) = self.env.view.lock() {
            v.pending = self.pending.map(|p| PendingView {
                version: p.version,
                until_ms: p.until_ms,
                back_to: p.back_to,
            });
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
                comment,
                confirm_within,
                reply,
            } => {
                let before = self.audit_mark();
                let r = self
                    .apply_file(&path, caller, comment, confirm_within)
                    .await;
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
            ConfigInput::PeerPending {
                version,
                hash,
                remaining_ms,
                back_to,
            } => self.peer_pending(version, hash, remaining_ms, back_to),
            ConfigInput::Confirm { caller, reply } => {
                // Only the active's confirmation reaches both nodes.
                let r = match self.state().await {
                    Ok(State::Active) => self.confirm(),
                    Ok(_) => Err(
                        "this node is not active: confirm on the active, which tells its peer"
                            .to_string(),
                    ),
                    Err(e) => Err(e.to_string()),
                };
                let what = match &r {
                    Ok(done) => done.trim_end().to_string(),
                    Err(_) => format!("version {}", self.running.version),
                };
                self.env.audit.record(
                    "config-confirm",
                    Who::Uid(caller.uid),
                    what,
                    r.as_ref().map(|_| ()).map_err(|e| e.clone()),
                );
                let _ = reply.send(r);
            }
            ConfigInput::Rollback {
                version,
                caller,
                reply,
            } => {
                let before = self.audit_mark();
                let r = self.rollback_to(version, Some(caller.uid), None).await;
                if let Err(e) = &r {
                    self.env.log.error(e);
                }
                let what = format!("to version {version}: {}", self.audit_what(&before));
                let result = r.as_ref().map(|_| ()).map_err(|e| e.to_string());
                self.env
                    .audit
                    .record("config-rollback", Who::Uid(caller.uid), what, result);
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            ConfigInput::History { reply } => {
                let _ = reply.send(self.history());
            }
            ConfigInput::Diff { from, to, reply } => {
                let _ = reply.send(self.diff(from, to));
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

    async fn apply_file(
        &mut self,
        path: &Path,
        caller: Caller,
        comment: String,
        confirm_within: Option<std::time::Duration>,
    ) -> Result<String, DaemonError> {
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
        let pending = confirm_within.map(|w| {
            (
                history::now_ms().saturating_add(w.as_millis() as u64),
                self.running.version,
            )
        });
        let meta = Meta {
            uid: Some(caller.uid),
            comment,
            pending,
        };
        self.apply_local(text, policy, plan, meta).await
    }

    /// A new local version: committed here, then offered to the peer.
    async fn apply_local(
        &mut self,
        text: String,
        policy: String,
        plan: NodePlan,
        meta: Meta,
    ) -> Result<String, DaemonError> {
        // A rollback or an expired window goes through here too: none may
        // move the HA settings under the running sockets either.
        let ha = ha_changes(&self.running.plan, &plan, &self.running.policy, &policy);
        if !ha.is_empty() {
            return Err(ConfigError::Refused(ha_refusal(&ha)).into());
        }
        let pending = meta.pending;
        let version = config_sync::next_version(self.known_versions());
        let hash = policy_hash(policy.as_bytes());
        let next = Policy {
            version,
            hash,
            text,
            policy: policy.clone(),
            plan,
        };
        let (restart, pushed) = self.commit(next, true, meta).await?;
        let pushed = pushed.unwrap_or_default();
        let confirm = pending
            .map(|(until, back)| {
                format!(
                    "not confirmed yet: `hafw config confirm` within {} s, or both nodes go back to version {back}'s policy\n",
                    until.saturating_sub(history::now_ms()).div_ceil(1000)
                )
            })
            .unwrap_or_default();
        Ok(format!(
            "applied policy version {version} ({}) on {}; {pushed}\n{confirm}{}",
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
        let meta = Meta {
            uid: None,
            comment: "from the peer".into(),
            pending: None,
        };
        self.commit(next, false, meta).await.map(|_| ())
    }

    /// Full validation, then this node's plan.
    fn plan_of(&self, name: &str, text: &str) -> Result<NodePlan, ConfigError> {
        let dep =
            hafw_model::parse(name, text).map_err(|d| ConfigError::Malformed(d.to_string()))?;
        hafw_model::render::node::plan_with(
            &dep,
            &self.env.node,
            self.env.ha_profile,
            &self.env.names,
        )
        .map_err(|e| ConfigError::Invalid {
            path: name.into(),
            message: e.to_string(),
        })
    }

    /// Prepare, apply, persist; on any failure this node stays on its
    /// previous version. Returns why a restart is needed, if it is.
    ///
    /// The order is what makes a crash at any point recoverable
    /// ([`super::recover_files`]): the history entry (prepared), the
    /// kernel, the deployment file, and last the version file, the commit
    /// record; each rename synced with its directory.
    async fn commit(
        &mut self,
        next: Policy,
        active: bool,
        meta: Meta,
    ) -> Result<(Option<String>, Option<String>), DaemonError> {
        let Some(hits) = self.env.hits.clone() else {
            return self.commit_held(next, active, meta).await;
        };
        let counted = hafw_model::parse("policy", &next.text)
            .map(|d| hafw_model::render::nft::counted::counted(&d))
            .ok();
        // Held from before the kernel changes until the commit ends, so
        // no sample sees a table a rollback takes back (which recommits
        // the old one counters included).
        hits.before_replace();
        let r = self.commit_held(next, active, meta).await;
        match &r {
            Ok(_) => hits.after_replace(counted, false),
            Err(_) => hits.after_replace(None, true),
        }
        r
    }

    async fn commit_held(
        &mut self,
        next: Policy,
        active: bool,
        meta: Meta,
    ) -> Result<(Option<String>, Option<String>), DaemonError> {
        let env = &self.env;
        let hdir = history::history_dir(&env.config_path, &env.node);
        let mut record = Record {
            version: next.version,
            hash: hex(&next.hash),
            time_ms: history::now_ms(),
            uid: meta.uid,
            comment: meta.comment,
            state: EntryState::Prepared,
        };
        history::write_entry(&hdir, &record, &next.policy)?;
        pause::at(pause::STEPS[0], &env.log).await;
        let vpath = version_path(&env.config_path, &env.node);
        let files = [
            (env.config_path.clone(), next.text.clone()),
            (vpath, format!("{} {}\n", next.version, hex(&next.hash))),
        ];
        let tmps = match prepare_files(&files, &env.node) {
            Ok(t) => t,
            Err(e) => {
                history::remove_entry(&hdir, next.version);
                return Err(e.into());
            }
        };
        let new_applied = match apply::apply(&env.nl, &next.plan, active, &env.log).await {
            Ok(a) => a,
            Err(e) => {
                remove(&tmps);
                history::remove_entry(&hdir, next.version);
                return Err(KernelError::Apply(e).into());
            }
        };
        pause::at(pause::STEPS[1], &env.log).await;
        let mut renamed = rename_synced(&tmps[0], &files[0].0);
        let mut pushed = None;
        if renamed.is_ok() {
            pause::at(pause::STEPS[2], &env.log).await;
            if active {
                // Offered before the commit record: a crash from here on
                // leaves the peer on the new version (then active, it
                // offers it back) or both on the old one, never this node
                // alone on a version the peer lacks.
                pushed = Some(self.offer(&next).await);
                pause::at(pause::STEPS[3], &env.log).await;
            }
            renamed = rename_synced(&tmps[1], &files[1].0);
            if renamed.is_err() {
                // The version file still names the running version: its
                // file goes back with it.
                let back =
                    history::write_through(&files[0].0, &tmps[0], self.running.text.as_bytes())
                        .and_then(|()| history::sync_dir(super::parent(&files[0].0)));
                if let Err(e) = back {
                    // The next start puts it back from the history.
                    env.log.warn(format!("{e}"));
                }
            }
        }
        if let Err(e) = renamed {
            remove(&tmps);
            history::remove_entry(&hdir, next.version);
            self.rollback(new_applied).await;
            return Err(ConfigError::NotPersisted {
                back_on: self.running.version,
                source: Box::new(e),
            }
            .into());
        }
        pause::at(pause::STEPS[4], &env.log).await;
        record.state = match meta.pending {
            Some((until_ms, back_to)) => EntryState::Pending { until_ms, back_to },
            None => EntryState::Committed,
        };
        // Committed already (the version file says so): a record that
        // fails here only shows an older state in `hafw config history`.
        if let Err(e) = history::write_record(&hdir, &record) {
            env.log.warn(format!("history: {e}"));
        }
        self.pending = meta.pending.map(|(until_ms, back_to)| Pending {
            version: next.version,
            until_ms,
            back_to,
        });
        if let Some(p) = self.pending {
            // After the offer: the peer runs this version by now (or
            // config sync still offers it; it then ignores this).
            self.tell_peer_pending(&p, p.until_ms.saturating_sub(history::now_ms()));
        }
        let env = &self.env;
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
        self.prune_history();
        self.publish(None, restart.clone());
        Ok((restart, pushed))
    }

    /// Offers a local version to the peer and waits, a bounded time, for
    /// its answer; says what became of it.
    async fn offer(&self, next: &Policy) -> String {
        let Some(s) = &self.env.sync else {
            return "not synced: session sync (and with it config sync) is off".into();
        };
        let (tx, rx) = oneshot::channel();
        let sent = s.config(SyncCmd::ApplyLocal {
            version: next.version,
            bytes: next.policy.clone().into_bytes(),
            reply: tx,
        });
        match (sent, rx.await) {
            (Ok(()), Ok(Ok(_))) => {}
            (_, Ok(Err(e))) => return format!("NOT offered to the peer: {e}"),
            _ => return "NOT offered to the peer: the sync thread stopped".into(),
        }
        let until = tokio::time::Instant::now() + PEER_ANSWER;
        loop {
            let (answer, connected) = match s.status.lock() {
                Ok(st) => (
                    st.config
                        .peer_result
                        .clone()
                        .filter(|(v, _, _)| *v == next.version),
                    st.connected,
                ),
                Err(_) => (None, false),
            };
            match answer {
                // No peer to wait for: config sync offers it when it is back.
                None if !connected => {
                    return "offered to the peer (not connected now: config sync offers it when the peer is back)".into()
                }
                Some((_, true, _)) => return "offered to the peer, which applied it".into(),
                Some((_, false, e)) => {
                    return format!(
                        "offered to the peer, which did NOT apply it: {}",
                        e.unwrap_or_default()
                    )
                }
                None if tokio::time::Instant::now() >= until => {
                    return format!(
                    "offered to the peer; no answer within {} s (config sync goes on offering it)",
                    PEER_ANSWER.as_secs()
                )
                }
                None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    }

    fn history_dir(&self) -> PathBuf {
        history::history_dir(&self.env.config_path, &self.env.node)
    }

    /// At start: the running version gets an entry if it has none (the
    /// version a crash recovery puts back must be there), and a pending
    /// confirmation survives the restart.
    fn seed_history(&mut self) {
        let dir = self.history_dir();
        let (records, bad) = history::list(&dir);
        for b in bad {
            self.env
                .log
                .warn(format!("{}: not a history record; skipped", b.display()));
        }
        let hash = hex(&self.running.hash);
        match records.iter().find(|r| r.version == self.running.version) {
            Some(r) if r.hash == hash => match r.state {
                EntryState::Pending { until_ms, back_to } => {
                    self.pending = Some(Pending {
                        version: r.version,
                        until_ms,
                        back_to,
                    });
                }
                // The version file names it: committed, the record not
                // yet updated when the node stopped.
                EntryState::Prepared => self.set_state(r.version, EntryState::Committed),
                _ => {}
            },
            // A file edited by hand runs as this version: the record of
            // what was committed under it stays.
            Some(_) => {}
            None => {
                let r = Record {
                    version: self.running.version,
                    hash,
                    time_ms: history::now_ms(),
                    uid: None,
                    comment: "found at start".into(),
                    state: EntryState::Committed,
                };
                if let Err(e) = history::write_entry(&dir, &r, &self.running.policy) {
                    self.env.log.warn(format!("history: {e}"));
                }
            }
        }
    }

    fn prune_history(&self) {
        let dir = self.history_dir();
        let (records, _) = history::list(&dir);
        let mut keep = vec![self.running.version];
        keep.extend(self.pending.map(|p| p.back_to));
        for v in history::to_prune(&records, history::MAX_ENTRIES, &keep) {
            history::remove_entry(&dir, v);
        }
    }

    fn set_state(&self, version: u64, state: EntryState) {
        let dir = self.history_dir();
        let (records, _) = history::list(&dir);
        if let Some(mut r) = records.into_iter().find(|r| r.version == version) {
            r.state = state;
            if let Err(e) = history::write_record(&dir, &r) {
                self.env.log.warn(format!("history: {e}"));
            }
        }
    }

    /// Tells the peer how long the running version still waits (0:
    /// confirmed).
    fn tell_peer_pending(&self, p: &Pending, remaining_ms: u64) {
        if let Some(s) = &self.env.sync {
            let _ = s.config(SyncCmd::Pending {
                version: p.version,
                remaining_ms: remaining_ms.min(u64::from(u32::MAX)) as u32,
                back_to: p.back_to,
            });
        }
    }

    /// The active's version waits for confirmation: kept here (and in the
    /// history, for a restart), so that if this node takes over before
    /// the window closes it goes back by itself.
    fn peer_pending(&mut self, version: u64, hash: [u8; 32], remaining_ms: u32, back_to: u64) {
        if remaining_ms == 0 {
            if let Some(p) = self.pending.take() {
                self.set_state(p.version, EntryState::Confirmed);
            }
            return;
        }
        if (version, hash) != (self.running.version, self.running.hash) {
            self.env.log.warn(format!(
                "the peer's version {version} waits for confirmation, but this node runs version {}: ignored",
                self.running.version
            ));
            return;
        }
        let p = Pending {
            version,
            until_ms: history::now_ms().saturating_add(u64::from(remaining_ms)),
            back_to,
        };
        self.set_state(
            version,
            EntryState::Pending {
                until_ms: p.until_ms,
                back_to,
            },
        );
        self.pending = Some(p);
    }

    fn confirm(&mut self) -> Result<String, String> {
        let Some(p) = self.pending.take() else {
            return Err(format!(
                "nothing waits for confirmation here: version {} is running",
                self.running.version
            ));
        };
        self.tell_peer_pending(&p, 0);
        self.set_state(p.version, EntryState::Confirmed);
        self.env
            .log
            .info(format!("policy version {} confirmed", p.version));
        Ok(format!("policy version {} confirmed\n", p.version))
    }

    /// The confirmation window closed: back to the previous policy, as a
    /// new version the peer takes through config sync.
    async fn expire(&mut self) {
        let Some(p) = self.pending else {
            return;
        };
        if p.version != self.running.version {
            self.pending = None;
            self.set_state(p.version, EntryState::Expired);
            return;
        }
        // The active goes back; a passive only once it has taken over.
        // The window stays open until then (the run loop checks again
        // every second), so a node that takes over after the deadline, or
        // a pair restarted after it, still goes back.
        if !matches!(self.state().await, Ok(State::Active)) {
            if !self.overdue_said {
                self.overdue_said = true;
                self.env.log.info(format!(
                    "policy version {} was not confirmed in time: the active goes back to version {}'s policy",
                    p.version, p.back_to
                ));
            }
            return;
        }
        let why = format!(
            "policy version {} was not confirmed in time: back to version {}'s policy",
            p.version, p.back_to
        );
        self.env.log.warn(&why);
        let before = self.audit_mark();
        let r = self.rollback_to(p.back_to, None, Some(why)).await;
        match &r {
            Ok(done) => {
                self.set_state(p.version, EntryState::Expired);
                self.env.log.info(done.trim_end());
            }
            // Still pending: tried again at the next check.
            Err(e) => self.env.log.error(e),
        }
        let what = format!(
            "version {} not confirmed, to version {}: {}",
            p.version,
            p.back_to,
            self.audit_what(&before)
        );
        let result = r.as_ref().map(|_| ()).map_err(|e| e.to_string());
        self.env
            .audit
            .record("config-rollback", Who::ConfirmWindow, what, result);
    }

    /// A new version whose policy is version `version`'s.
    async fn rollback_to(
        &mut self,
        version: u64,
        uid: Option<u32>,
        comment: Option<String>,
    ) -> Result<String, DaemonError> {
        local_edit_allowed(self.state().await?).map_err(|e| ConfigError::Refused(e.to_string()))?;
        let dir = self.history_dir();
        let policy = history::load_policy(&dir, version).map_err(|e| {
            ConfigError::Refused(format!(
                "version {version} is not in the history ({e}); `hafw config history` lists the versions kept"
            ))
        })?;
        let text = splice(&self.running.text, &policy)?;
        let name = dir.display().to_string();
        let plan = self.plan_of(&name, &text)?;
        let policy = policy_text(&text)?;
        if policy == self.running.policy {
            self.pending = None;
            return Ok(format!(
                "version {} already runs version {version}'s policy\n",
                self.running.version
            ));
        }
        let meta = Meta {
            uid,
            comment: comment.unwrap_or_else(|| format!("rollback to version {version}")),
            pending: None,
        };
        // A successful commit clears the window (its meta has none); a
        // failed one leaves it open.
        self.apply_local(text, policy, plan, meta).await
    }

    fn history(&self) -> String {
        let (records, _) = history::list(&self.history_dir());
        let mut out = format!(
            "{:>8}  {:8}  {:20}  {:>6}  {:10}  comment\n",
            "version", "hash", "time (UTC)", "uid", "state"
        );
        for r in records.iter().rev() {
            let running = if r.version == self.running.version {
                "*"
            } else {
                " "
            };
            let state = match r.state {
                EntryState::Prepared => "prepared".to_string(),
                EntryState::Committed => "committed".into(),
                EntryState::Pending { .. } => "pending".into(),
                EntryState::Confirmed => "confirmed".into(),
                EntryState::Expired => "expired".into(),
            };
            out.push_str(&format!(
                "{running}{:>7}  {:8}  {:20}  {:>6}  {:10}  {}\n",
                r.version,
                r.hash.get(..8).unwrap_or(&r.hash),
                utc(r.time_ms),
                r.uid.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
                state,
                crate::ops::text::peer_text(&r.comment)
            ));
        }
        out
    }

    fn diff(&self, from: u64, to: u64) -> Result<String, String> {
        let dir = self.history_dir();
        let a = history::load_policy(&dir, from).map_err(|e| e.to_string())?;
        let b = history::load_policy(&dir, to).map_err(|e| e.to_string())?;
        let Some(d) = line_diff(&a, &b) else {
            return Ok(format!("versions {from} and {to} have the same policy\n"));
        };
        // A version may come from the peer: its text is shown escaped.
        let mut out = format!("- version {from}\n+ version {to}\n");
        for line in d.lines() {
            out.push_str(&crate::ops::text::peer_text(line));
            out.push('\n');
        }
        Ok(out)
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
                pending: None,
            };
        }
        self.publish_pending();
    }
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time in milliseconds.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_796_672_263_000), "2026-12-07 19:37:43");
    }

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
            names: Default::default(),
            nl: Rtnl::connect().unwrap(),
            log,
            ha,
            sync: None,
            applied: Arc::default(),
            view: view.clone(),
            audit,
            hits: None,
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
