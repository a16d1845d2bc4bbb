//! Config sync in the daemon: the policy text, its version file, and the
//! config task that applies a policy, from `hafw config apply` on the
//! active or from the peer on the passive.
//!
//! The shared policy is the deployment file's `[policy]` table, written
//! canonically (parsed and serialized again, so the same policy gives the
//! same bytes, hence the same hash, on both nodes whatever the file's
//! layout). Everything else in the file (the cloud, `[[node]]`, the lab) is
//! not synced: the cloud is Terraform's to change, and what is local to a
//! node stays local. `hafw config apply` refuses a file that changes it.
//!
//! Config is a transaction (style.md, 6): validate the whole file, build
//! the plan, write the new files beside the old ones, apply to the kernel
//! (which undoes itself on failure), then rename the files into place. A
//! failed rename puts the kernel back on the old plan, so a node is always
//! on one version, never between two.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hafw_ha::config_sync::{local_edit_allowed, policy_hash, ConfigAction};
use hafw_ha::msg::State;
use hafw_kernel::{route, Rtnl};
use hafw_model::render::node::NodePlan;
use tokio::sync::{mpsc, oneshot};

use crate::dataplane::apply::{self, planned_route, Applied};
use crate::dataplane::withdraw::withdraw;
use crate::ha::HaRequest;
use crate::log::Log;
use crate::sync::{SyncCmd, SyncHandle};

/// The canonical `[policy]` of a deployment text.
pub fn policy_text(text: &str) -> Result<String, String> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| format!("not a TOML document: {}", e.message()))?;
    let Some(policy) = table.get("policy") else {
        return Err("the file has no [policy] table".into());
    };
    let mut doc = toml::Table::new();
    doc.insert("policy".into(), policy.clone());
    toml::to_string(&doc).map_err(|e| format!("cannot write the policy as TOML: {e}"))
}

/// The top-level keys other than `policy` whose values differ.
pub fn changed_outside_policy(old: &str, new: &str) -> Result<Vec<String>, String> {
    let parse = |t: &str| {
        toml::from_str::<toml::Table>(t)
            .map_err(|e| format!("not a TOML document: {}", e.message()))
    };
    let (old, new) = (parse(old)?, parse(new)?);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    Ok(keys
        .into_iter()
        .filter(|k| *k != "policy" && old.get(*k) != new.get(*k))
        .cloned()
        .collect())
}

/// `text` with its `[policy]` replaced by `policy` (a document holding only
/// a `policy` table). The rest keeps its layout and comments.
pub fn splice(text: &str, policy: &str) -> Result<String, String> {
    let only: toml::Table = toml::from_str(policy)
        .map_err(|e| format!("the peer's policy is not TOML: {}", e.message()))?;
    if only.keys().any(|k| k != "policy") || !only.contains_key("policy") {
        return Err("the peer's policy holds more than a [policy] table".into());
    }
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("this node's deployment file is not TOML: {e}"))?;
    doc.remove("policy");
    Ok(format!("{}\n\n{policy}", doc.to_string().trim_end()))
}

/// Where a node keeps the version of the policy its file holds. Named per
/// node: the lab runs both nodes from one file.
pub fn version_path(config: &Path, node: &str) -> PathBuf {
    let mut name = config.as_os_str().to_os_string();
    name.push(format!(".{node}.version"));
    PathBuf::from(name)
}

/// The persisted (version, hash), or None when there is no version file.
pub fn load_version(path: &Path) -> Result<Option<(u64, [u8; 32])>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let bad = || {
        format!(
            "{} is not `<version> <sha256 hex>`; delete it to start from version 0 (the peer then sends its policy)",
            path.display()
        )
    };
    let mut words = text.split_whitespace();
    let version = words.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let hash = words.next().and_then(parse_hex).ok_or_else(bad)?;
    Ok(Some((version, hash)))
}

pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A line diff of `old` against `new`, with `-`/`+`/` ` prefixes; None
/// when they are equal.
pub fn line_diff(old: &str, new: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let mut out = String::new();
    for change in similar::TextDiff::from_lines(old, new).iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        let _ = writeln!(out, "{sign} {}", change.value().trim_end_matches('\n'));
    }
    Some(out)
}

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

pub enum ConfigReq {
    Apply {
        path: PathBuf,
        reply: oneshot::Sender<Result<String, String>>,
    },
    Show {
        reply: oneshot::Sender<String>,
    },
}

/// The policy this node runs.
struct Running {
    version: u64,
    hash: [u8; 32],
    text: String,
    policy: String,
    plan: NodePlan,
}

pub struct ConfigTask {
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
}

/// The policy a node starts with: (version, policy text, full text).
pub struct Startup {
    pub version: u64,
    pub hash: [u8; 32],
    pub policy: String,
    pub text: String,
}

/// Reads the file and its version at start. A version file whose hash is
/// not the file's policy means the file was edited by hand: the node runs
/// the file, says so, and the peer's status flags the mismatch.
pub fn startup(config: &Path, node: &str, log: &Log) -> Result<Startup, String> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("cannot read {}: {e}", config.display()))?;
    let policy = policy_text(&text)?;
    let vpath = version_path(config, node);
    let (version, stored) = load_version(&vpath)?.unwrap_or((0, [0; 32]));
    // Version 0 (never applied through config sync) still has its hash, so
    // two nodes started from different files show a mismatch.
    let hash = policy_hash(policy.as_bytes());
    if version != 0 && stored != hash {
        log.info(format!(
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

impl ConfigTask {
    pub async fn run(
        self,
        start: Startup,
        plan: NodePlan,
        mut reqs: mpsc::UnboundedReceiver<ConfigReq>,
        mut from_peer: mpsc::UnboundedReceiver<ConfigAction>,
    ) {
        let mut running = Running {
            version: start.version,
            hash: start.hash,
            text: start.text,
            policy: start.policy,
            plan,
        };
        self.publish(&running, None, None);
        loop {
            tokio::select! {
                req = reqs.recv() => match req {
                    None => return,
                    Some(ConfigReq::Show { reply }) => {
                        let _ = reply.send(self.show(&running));
                    }
                    Some(ConfigReq::Apply { path, reply }) => {
                        let r = self.apply_file(&mut running, &path).await;
                        if let Err(e) = &r {
                            self.log.info(format!("config apply {}: refused: {e}", path.display()));
                        }
                        let _ = reply.send(r);
                    }
                },
                Some(action) = from_peer.recv() => {
                    let ConfigAction::ApplyConfig { version, hash, bytes } = action;
                    let r = self.apply_from_peer(&mut running, version, hash, bytes).await;
                    match &r {
                        Ok(()) => self.log.info(format!("policy version {version} from the peer applied")),
                        Err(e) => {
                            self.log.info(format!("policy version {version} from the peer NOT applied: {e}"));
                            if let Ok(mut v) = self.view.lock() {
                                v.error = Some(format!("policy version {version} from the peer was not applied: {e}"));
                            }
                        }
                    }
                    if let Some(s) = &self.sync {
                        let _ = s.config(SyncCmd::ApplyResult(r));
                    }
                }
            }
        }
    }

    fn show(&self, r: &Running) -> String {
        let peer = self
            .sync
            .as_ref()
            .and_then(|s| s.status.lock().ok().and_then(|st| st.config.peer));
        format!(
            "version {}  hash {}\npeer    {}\nfile    {}\n\n{}",
            r.version,
            hex(&r.hash),
            peer.map(|(v, h)| format!("version {v}  hash {}", hex(&h)))
                .unwrap_or_else(|| "not heard yet".into()),
            self.config_path.display(),
            r.policy
        )
    }

    async fn state(&self) -> Result<State, String> {
        let (tx, rx) = oneshot::channel();
        self.ha
            .send(HaRequest::State { reply: tx })
            .map_err(|_| "the HA thread has stopped".to_string())?;
        rx.await
            .map_err(|_| "the HA thread did not answer".to_string())
    }

    async fn apply_file(&self, running: &mut Running, path: &Path) -> Result<String, String> {
        local_edit_allowed(self.state().await?).map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let changed = changed_outside_policy(&running.text, &text)?;
        if !changed.is_empty() {
            return Err(format!(
                "{} changes {} as well as [policy]: only the policy is applied and synced here; \
                 the cloud is changed with Terraform (`hafw plan terraform`) and node settings on each node, \
                 then the nodes restarted",
                path.display(),
                changed
                    .iter()
                    .map(|k| format!("[{k}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let policy = policy_text(&text)?;
        let plan = self.plan_of(&path.display().to_string(), &text)?;
        if policy == running.policy {
            return Ok(format!(
                "policy unchanged: still version {} ({})\n",
                running.version,
                &hex(&running.hash)[..8]
            ));
        }
        let version = match &self.sync {
            Some(s) => s
                .status
                .lock()
                .map(|st| st.config.version.max(st.config.peer.map_or(0, |p| p.0)))
                .unwrap_or(running.version),
            None => running.version,
        }
        .max(running.version)
            + 1;
        let hash = policy_hash(policy.as_bytes());
        let restart = self
            .commit(running, text, policy.clone(), plan, version, hash, true)
            .await?;
        let pushed = match &self.sync {
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
            self.node,
            restart
                .map(|r| format!("restart needed: {r}\n"))
                .unwrap_or_default()
        ))
    }

    async fn apply_from_peer(
        &self,
        running: &mut Running,
        version: u64,
        hash: [u8; 32],
        bytes: Vec<u8>,
    ) -> Result<(), String> {
        let policy =
            String::from_utf8(bytes).map_err(|_| "the peer's policy is not UTF-8".to_string())?;
        let text = splice(&running.text, &policy)?;
        let plan = self.plan_of(&self.config_path.display().to_string(), &text)?;
        // Persisted as received: the bytes whose hash both nodes advertise.
        let active = self.state().await? == State::Active;
        self.commit(running, text, policy, plan, version, hash, active)
            .await
            .map(|_| ())
    }

    /// Full validation, then this node's plan.
    fn plan_of(&self, name: &str, text: &str) -> Result<NodePlan, String> {
        let dep = hafw_model::parse(name, text).map_err(|d| d.to_string())?;
        hafw_model::render::node::plan_with(&dep, &self.node, self.ha_profile)
            .map_err(|e| format!("{name}: {e}"))
    }

    /// Prepare, apply, persist; on any failure this node stays on its
    /// previous version. Returns why a restart is needed, if it is.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        running: &mut Running,
        text: String,
        policy: String,
        plan: NodePlan,
        version: u64,
        hash: [u8; 32],
        active: bool,
    ) -> Result<Option<String>, String> {
        let vpath = version_path(&self.config_path, &self.node);
        let files = [
            (vpath.clone(), format!("{version} {}\n", hex(&hash))),
            (self.config_path.clone(), text.clone()),
        ];
        let tmps = prepare_files(&files, &self.node)?;
        let new_applied = match apply::apply(&self.nl, &plan, active, &self.log).await {
            Ok(a) => a,
            Err(e) => {
                remove(&tmps);
                return Err(e.to_string());
            }
        };
        if let Err(e) = rename_files(&tmps, &files) {
            remove(&tmps);
            self.rollback(&running.plan, new_applied, active).await;
            return Err(format!(
                "{e}; the kernel is back on policy version {}",
                running.version
            ));
        }
        // Routes the new policy no longer has.
        for r in running
            .plan
            .routes
            .iter()
            .filter(|r| !plan.routes.contains(r))
        {
            if let Err(e) = route::delete(&self.nl, &planned_route(r)).await {
                self.log.info(format!(
                    "route {} via {} was dropped from the policy but is still in the kernel: {e}",
                    r.destination, r.gateway
                ));
            }
        }
        if let Ok(mut all) = self.applied.lock() {
            merge(&mut all, new_applied);
        }
        let restart = restart_needed(&running.plan, &plan, &running.policy, &policy);
        *running = Running {
            version,
            hash,
            text,
            policy,
            plan,
        };
        let _ = self.ha.send(HaRequest::SetConfigVersion { version, hash });
        self.publish(running, None, restart.clone());
        Ok(restart)
    }

    /// The new plan's kernel changes are taken back and the old plan put
    /// back in place (its ruleset recommitted).
    async fn rollback(&self, old: &NodePlan, mut new_applied: Applied, active: bool) {
        new_applied.table = None;
        new_applied.table_found = None;
        if active {
            new_applied.floating_added.clear();
        }
        for p in withdraw(&self.nl, new_applied, &self.log).await {
            self.log.info(format!("config rollback: {p}"));
        }
        match apply::apply(&self.nl, old, active, &self.log).await {
            Ok(a) => {
                if let Ok(mut all) = self.applied.lock() {
                    merge(&mut all, a);
                }
            }
            Err(e) => self.log.info(format!(
                "config rollback: the previous plan did not apply again: {e}"
            )),
        }
    }

    fn publish(&self, r: &Running, error: Option<String>, restart: Option<String>) {
        if let Ok(mut v) = self.view.lock() {
            *v = ConfigView {
                version: r.version,
                hash: r.hash,
                error,
                restart,
            };
        }
    }
}

/// What of a new policy the running daemon does not take up until a
/// restart: the executor announces the floating addresses it started with,
/// and the HA core and monitors keep their settings.
fn restart_needed(
    old: &NodePlan,
    new: &NodePlan,
    old_policy: &str,
    new_policy: &str,
) -> Option<String> {
    let mut why = vec![];
    if old.floating != new.floating {
        why.push("the floating addresses changed (they are tied to the cloud's HAVIPs)");
    }
    if old.interfaces != new.interfaces {
        why.push("the interfaces changed");
    }
    let ha = |p: &str| {
        toml::from_str::<toml::Table>(p)
            .ok()
            .and_then(|t| t.get("policy")?.get("ha").cloned())
    };
    if old.ha != new.ha || ha(old_policy) != ha(new_policy) {
        why.push("the HA settings changed");
    }
    (!why.is_empty()).then(|| {
        format!(
            "{}; restart this node and its peer (passive first) to use them",
            why.join(", ")
        )
    })
}

/// Adds what a later apply changed to the run's record; a sysctl keeps the
/// value it had before hafw first wrote it.
fn merge(into: &mut Applied, new: Applied) {
    for (k, v) in new.sysctls {
        if !into.sysctls.iter().any(|(k2, _)| *k2 == k) {
            into.sysctls.push((k, v));
        }
    }
    into.addresses_added.extend(new.addresses_added);
    into.routes_added.extend(new.routes_added);
    into.routes_replaced.extend(new.routes_replaced);
    if into.table.is_none() && into.table_found.is_none() {
        into.table = new.table.or(new.table_found);
    }
}

fn tmp_path(path: &Path, node: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{node}.tmp"));
    PathBuf::from(name)
}

/// Writes each file's new content beside it, synced to disk.
fn prepare_files(files: &[(PathBuf, String)], node: &str) -> Result<Vec<PathBuf>, String> {
    let mut tmps = vec![];
    for (path, text) in files {
        let tmp = tmp_path(path, node);
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written {
            remove(&tmps);
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("cannot write {}: {e}", tmp.display()));
        }
        tmps.push(tmp);
    }
    Ok(tmps)
}

/// Renames the prepared files into place, the version file first; if a
/// later rename fails, the earlier ones get their old content back.
fn rename_files(tmps: &[PathBuf], files: &[(PathBuf, String)]) -> Result<(), String> {
    let mut done: Vec<(PathBuf, Option<Vec<u8>>)> = vec![];
    for (tmp, (path, _)) in tmps.iter().zip(files) {
        let old = std::fs::read(path).ok();
        if let Err(e) = std::fs::rename(tmp, path) {
            for (p, old) in done.iter().rev() {
                let _ = match old {
                    Some(bytes) => std::fs::write(p, bytes),
                    None => std::fs::remove_file(p),
                };
            }
            return Err(format!("cannot replace {}: {e}", path.display()));
        }
        done.push((path.clone(), old));
    }
    Ok(())
}

fn remove(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/alicloud-havip.toml"
        ))
        .unwrap()
    }

    #[test]
    fn the_policy_text_is_canonical_and_survives_a_splice() {
        let text = seed();
        let policy = policy_text(&text).unwrap();
        assert!(policy.contains("web-in"), "{policy}");
        assert!(!policy.contains("[cloud") && !policy.contains("[[node]]"));
        // The same policy written another way gives the same bytes.
        assert_eq!(policy_text(&policy).unwrap(), policy);
        let spliced = splice(&text, &policy).unwrap();
        assert_eq!(policy_text(&spliced).unwrap(), policy);
        assert!(changed_outside_policy(&text, &spliced).unwrap().is_empty());
        // The whole spliced file still validates, comments outside kept.
        hafw_model::parse("spliced", &spliced).unwrap();
        assert!(spliced.contains("# Higher priority wins the election."));
    }

    #[test]
    fn a_splice_refuses_anything_but_a_policy() {
        let err = splice(&seed(), "[policy]\n[cloud]\nregion = \"x\"\n").unwrap_err();
        assert!(err.contains("more than a [policy]"), "{err}");
    }

    #[test]
    fn changes_outside_the_policy_are_named() {
        let text = seed();
        let other = text.replace("priority = 200", "priority = 150");
        assert_eq!(changed_outside_policy(&text, &other).unwrap(), vec!["node"]);
        let policy_only = text.replace("port = 80\nto_address", "port = 8080\nto_address");
        assert_ne!(policy_only, text);
        assert!(changed_outside_policy(&text, &policy_only)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_version_file_round_trips_and_a_bad_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("hafw-cfgver-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dep.toml.fw-a.version");
        assert_eq!(load_version(&path).unwrap(), None);
        std::fs::write(&path, format!("7 {}\n", hex(&[0xab; 32]))).unwrap();
        assert_eq!(load_version(&path).unwrap(), Some((7, [0xab; 32])));
        std::fs::write(&path, "7 nothex\n").unwrap();
        assert!(load_version(&path).unwrap_err().contains("delete it"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_line_diff_marks_what_changed() {
        assert_eq!(line_diff("a\nb\n", "a\nb\n"), None);
        let d = line_diff("a\nb\nc\n", "a\nx\nc\nd\n").unwrap();
        assert_eq!(d, "  a\n- b\n+ x\n  c\n+ d\n");
    }

    #[test]
    fn the_version_path_is_per_node() {
        assert_eq!(
            version_path(Path::new("/etc/hafw/dep.toml"), "fw-b"),
            PathBuf::from("/etc/hafw/dep.toml.fw-b.version")
        );
    }
}
