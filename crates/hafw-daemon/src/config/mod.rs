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
//! the plan, record the version in the history ([`history`]), write the
//! new files beside the old ones, apply to the kernel (which undoes itself
//! on failure), rename the deployment file into place, and last the
//! version file, the commit record; each rename is synced with its
//! directory. A failed rename puts the kernel back on the old plan, and a
//! crash between the steps is undone at the next start
//! ([`recover_files`]), so a node is always on one version, never between
//! two.
//!
//! The task itself is [`task::ConfigTask`]: one instance, one input enum,
//! one `process` step. This module holds the texts and files it works on.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hafw_model::render::node::NodePlan;

use crate::dataplane::apply::Applied;
use crate::error::ConfigError;

pub mod history;
pub mod pause;
mod task;

pub use task::startup;
pub use task::{ConfigEnv, ConfigInput, ConfigTask, ConfigView, PendingView, Startup};

/// The canonical `[policy]` of a deployment text.
pub fn policy_text(text: &str) -> Result<String, ConfigError> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError::Malformed(format!("not a TOML document: {}", e.message())))?;
    let Some(policy) = table.get("policy") else {
        return Err(ConfigError::Malformed(
            "the file has no [policy] table".into(),
        ));
    };
    let mut doc = toml::Table::new();
    doc.insert("policy".into(), policy.clone());
    toml::to_string(&doc)
        .map_err(|e| ConfigError::Malformed(format!("cannot write the policy as TOML: {e}")))
}

/// The hash (hex) of a deployment text's canonical `[policy]`: what the
/// version file records for it.
pub fn policy_hash_hex(text: &str) -> Result<String, ConfigError> {
    Ok(hex(&hafw_ha::config_sync::policy_hash(
        policy_text(text)?.as_bytes(),
    )))
}

/// The top-level keys other than `policy` whose values differ.
pub fn changed_outside_policy(old: &str, new: &str) -> Result<Vec<String>, ConfigError> {
    let parse = |t: &str| {
        toml::from_str::<toml::Table>(t)
            .map_err(|e| ConfigError::Malformed(format!("not a TOML document: {}", e.message())))
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
pub fn splice(text: &str, policy: &str) -> Result<String, ConfigError> {
    let bad = ConfigError::Malformed;
    let only: toml::Table = toml::from_str(policy)
        .map_err(|e| bad(format!("the peer's policy is not TOML: {}", e.message())))?;
    if only.keys().any(|k| k != "policy") || !only.contains_key("policy") {
        return Err(bad(
            "the peer's policy holds more than a [policy] table".into()
        ));
    }
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| bad(format!("this node's deployment file is not TOML: {e}")))?;
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
pub fn load_version(path: &Path) -> Result<Option<(u64, [u8; 32])>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::File {
                path: path.to_owned(),
                what: "cannot read",
                source,
            })
        }
    };
    let bad = || ConfigError::Invalid {
        path: path.to_owned(),
        message: "is not `<version> <sha256 hex>`; delete it to start from version 0 \
                  (the peer then sends its policy)"
            .into(),
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

/// What of a new policy the running daemon does not take up until a
/// restart: the executor announces the floating addresses it started with.
/// (HA settings are never applied live: see [`ha_changes`].)
fn restart_needed(old: &NodePlan, new: &NodePlan) -> Option<String> {
    let mut why = vec![];
    if old.floating != new.floating {
        why.push("the floating addresses changed (they are tied to the cloud's HAVIPs)");
    }
    if old.interfaces != new.interfaces {
        why.push("the interfaces changed");
    }
    (!why.is_empty()).then(|| {
        format!(
            "{}; restart this node and its peer (passive first) to use them",
            why.join(", ")
        )
    })
}

/// The fields of `[policy.ha]` that differ between two policies, as
/// dotted paths (`policy.ha.port`, `policy.ha.timers.miss_count`); also
/// names the HA plan when the tables are equal but what this node renders
/// from them is not. The HA core, its sockets and the monitors take these
/// at start: changing them live would move the HA accept rule to a port
/// the sockets do not listen on, so an apply that changes any is refused.
pub fn ha_changes(
    old: &NodePlan,
    new: &NodePlan,
    old_policy: &str,
    new_policy: &str,
) -> Vec<String> {
    let ha = |p: &str| {
        toml::from_str::<toml::Table>(p)
            .ok()
            .and_then(|t| t.get("policy")?.get("ha").cloned())
    };
    let mut out = vec![];
    diff_paths(
        "policy.ha",
        ha(old_policy).as_ref(),
        ha(new_policy).as_ref(),
        &mut out,
    );
    if out.is_empty() && old.ha != new.ha {
        out.push("policy.ha (the HA settings this node renders from the policy)".into());
    }
    out
}

/// Dotted paths under `at` where `a` and `b` differ; a value that is not a
/// table on both sides is one path.
fn diff_paths(at: &str, a: Option<&toml::Value>, b: Option<&toml::Value>, out: &mut Vec<String>) {
    match (a, b) {
        (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff_paths(&format!("{at}.{k}"), a.get(k), b.get(k), out);
            }
        }
        (a, b) if a != b => out.push(at.to_string()),
        _ => {}
    }
}

/// Why a policy that changes `[policy.ha]` is refused, and what to do.
pub fn ha_refusal(changes: &[String]) -> String {
    format!(
        "it changes {} in [policy.ha], which the running HA core and its sockets took at start \
         and do not change live; change the deployment file on each node and restart the nodes \
         one at a time, the passive first (`hafw status` shows which), each once the other is back",
        changes.join(", ")
    )
}

/// Adds what a later apply changed to the run's record; a sysctl keeps the
/// value it had before hafw first wrote it, forwarding included.
fn merge(into: &mut Applied, new: Applied) {
    if into.forwarding.is_empty() {
        into.forwarding = new.forwarding;
    }
    for (k, v) in new.sysctls {
        if !into.sysctls.iter().any(|(k2, _)| *k2 == k) {
            into.sysctls.push((k, v));
        }
    }
    into.addresses_added.extend(new.addresses_added);
    into.links_raised.extend(new.links_raised);
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
fn prepare_files(files: &[(PathBuf, String)], node: &str) -> Result<Vec<PathBuf>, ConfigError> {
    let mut tmps = vec![];
    for (path, text) in files {
        let tmp = tmp_path(path, node);
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            f.sync_all()
        });
        if let Err(source) = written {
            remove(&tmps);
            let _ = std::fs::remove_file(&tmp);
            return Err(ConfigError::File {
                path: tmp,
                what: "cannot write",
                source,
            });
        }
        tmps.push(tmp);
    }
    Ok(tmps)
}

/// Renames a prepared file into place and syncs its directory, so the
/// rename is on disk before the next step.
fn rename_synced(tmp: &Path, path: &Path) -> Result<(), ConfigError> {
    std::fs::rename(tmp, path).map_err(|source| ConfigError::File {
        path: path.to_owned(),
        what: "cannot replace",
        source,
    })?;
    history::sync_dir(parent(path))
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn remove(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// Startup's recovery, before the deployment file is loaded: after a crash
/// in an apply, the node goes back to the version its version file (the
/// commit record) names ([`history::recover`]), its leftovers removed.
/// Returns what it did, for the log.
pub fn recover_files(config: &Path, node: &str) -> Result<Vec<String>, ConfigError> {
    let mut notes = vec![];
    for tmp in [
        tmp_path(config, node),
        tmp_path(&version_path(config, node), node),
    ] {
        if std::fs::remove_file(&tmp).is_ok() {
            notes.push(format!(
                "removed {} left by an interrupted apply",
                tmp.display()
            ));
        }
    }
    let text = std::fs::read_to_string(config).map_err(|source| ConfigError::File {
        path: config.to_owned(),
        what: "cannot read",
        source,
    })?;
    // A file without a policy is startup's to refuse, with its message.
    let Ok(policy) = policy_text(&text) else {
        return Ok(notes);
    };
    let vpath = version_path(config, node);
    let committed = load_version(&vpath)?.map(|(v, h)| (v, hex(&h)));
    let file_hash = hex(&hafw_ha::config_sync::policy_hash(policy.as_bytes()));
    let dir = history::history_dir(config, node);
    let (records, _) = history::list(&dir);
    let (decision, forget) = history::recover(committed.clone(), &file_hash, &records);
    match decision {
        history::Recovery::AsIs => {}
        history::Recovery::RestoreFile { version } => {
            let old = history::load_policy(&dir, version)?;
            let restored = splice(&text, &old)?;
            history::write_through(config, &tmp_path(config, node), restored.as_bytes())?;
            history::sync_dir(parent(config))?;
            notes.push(format!(
                "{} held policy {} of an apply that never committed; put version {version} back from {}",
                config.display(),
                &file_hash[..8],
                dir.display()
            ));
        }
        history::Recovery::RollForward { version, hash } => {
            let line = format!("{version} {hash}\n");
            history::write_through(&vpath, &tmp_path(&vpath, node), line.as_bytes())?;
            history::sync_dir(parent(&vpath))?;
            if let Some(mut r) = records.iter().find(|r| r.version == version).cloned() {
                r.state = history::EntryState::Committed;
                history::write_record(&dir, &r)?;
            }
            notes.push(format!(
                "{} held version {version} of an interrupted apply and the history lacks version {}: \
                 took version {version} as committed",
                config.display(),
                committed.map(|c| c.0).unwrap_or(0)
            ));
        }
    }
    for v in forget {
        history::remove_entry(&dir, v);
        notes.push(format!("forgot version {v}: its apply never committed"));
    }
    Ok(notes)
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
        let err = splice(&seed(), "[policy]\n[cloud]\nregion = \"x\"\n")
            .unwrap_err()
            .to_string();
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
        assert!(load_version(&path)
            .unwrap_err()
            .to_string()
            .contains("delete it"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_line_diff_marks_what_changed() {
        assert_eq!(line_diff("a\nb\n", "a\nb\n"), None);
        let d = line_diff("a\nb\nc\n", "a\nx\nc\nd\n").unwrap();
        assert_eq!(d, "  a\n- b\n+ x\n  c\n+ d\n");
    }

    #[test]
    fn a_change_of_the_ha_settings_is_named_field_by_field() {
        let text = seed();
        let dep = hafw_model::parse("seed", &text).unwrap();
        let plan = hafw_model::render::node::plan(&dep, "fw-a").unwrap();
        let old = policy_text(&text).unwrap();
        // Port and a timer: both named, nothing else.
        let changed = text.replace(
            "[policy.ha]\nprofile = \"default\"\n",
            "[policy.ha]\nprofile = \"default\"\nport = 9999\nmiss_count = 7\n",
        );
        assert_ne!(changed, text, "the seed changed: update this test");
        let dep2 = hafw_model::parse("changed", &changed).unwrap();
        let plan2 = hafw_model::render::node::plan(&dep2, "fw-a").unwrap();
        let new = policy_text(&changed).unwrap();
        let c = ha_changes(&plan, &plan2, &old, &new);
        assert_eq!(c, ["policy.ha.miss_count", "policy.ha.port"]);
        let why = ha_refusal(&c);
        assert!(
            why.contains("policy.ha.miss_count, policy.ha.port")
                && why.contains("restart the nodes one at a time, the passive first"),
            "{why}"
        );
        // A rule change leaves HA alone.
        let rule = text.replace("port = 80\nto_address", "port = 8080\nto_address");
        let dep3 = hafw_model::parse("rule", &rule).unwrap();
        let plan3 = hafw_model::render::node::plan(&dep3, "fw-a").unwrap();
        assert!(ha_changes(&plan, &plan3, &old, &policy_text(&rule).unwrap()).is_empty());
        assert_eq!(restart_needed(&plan, &plan3), None);
    }

    #[test]
    fn a_crash_after_the_file_rename_is_undone_at_start() {
        let dir = std::env::temp_dir().join(format!(
            "hafw-recover-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("dep.toml");
        let old = seed();
        let new = old.replace("port = 80\nto_address", "port = 8080\nto_address");
        let (p_old, p_new) = (policy_text(&old).unwrap(), policy_text(&new).unwrap());
        let hist = history::history_dir(&config, "fw-a");
        let rec = |version, policy: &str, state| history::Record {
            version,
            hash: policy_hash_hex(policy).unwrap(),
            time_ms: 0,
            uid: None,
            comment: String::new(),
            state,
        };
        // Committed 3; 4 prepared and its file renamed, its version file not.
        history::write_entry(
            &hist,
            &rec(3, &p_old, history::EntryState::Committed),
            &p_old,
        )
        .unwrap();
        history::write_entry(
            &hist,
            &rec(4, &p_new, history::EntryState::Prepared),
            &p_new,
        )
        .unwrap();
        let vpath = version_path(&config, "fw-a");
        std::fs::write(&vpath, format!("3 {}\n", policy_hash_hex(&old).unwrap())).unwrap();
        std::fs::write(&config, &new).unwrap();
        std::fs::write(tmp_path(&vpath, "fw-a"), "4 x\n").unwrap();
        let notes = recover_files(&config, "fw-a").unwrap();
        assert_eq!(notes.len(), 3, "{notes:?}");
        let back = std::fs::read_to_string(&config).unwrap();
        assert_eq!(policy_text(&back).unwrap(), p_old);
        assert!(
            back.contains("# Higher priority wins the election."),
            "the rest kept"
        );
        assert!(!tmp_path(&vpath, "fw-a").exists());
        let (left, _) = history::list(&hist);
        assert_eq!(left.iter().map(|r| r.version).collect::<Vec<_>>(), vec![3]);
        // Consistent now: a second start changes nothing.
        assert!(recover_files(&config, "fw-a").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_version_path_is_per_node() {
        assert_eq!(
            version_path(Path::new("/etc/hafw/dep.toml"), "fw-b"),
            PathBuf::from("/etc/hafw/dep.toml.fw-b.version")
        );
    }
}
