//! The policy history on disk, beside the deployment file:
//! `<config>.<node>.history/`, one pair of files per version,
//! `<version>.policy` (the canonical `[policy]` text) and `<version>.json`
//! (a [`Record`]: version, hash, time, who, comment, state). At most
//! [`MAX_ENTRIES`] versions are kept; the oldest go first, never the
//! running one nor one waiting for `hafw config confirm`.
//!
//! Every file is written beside its final name, synced, renamed, and the
//! directory synced, so a crash leaves either the old file or the new one.
//! What startup does with the history after a crash is [`recover`], a pure
//! function of what is on disk.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Versions kept on disk.
pub const MAX_ENTRIES: usize = 64;

/// Where a version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum EntryState {
    /// Written before the kernel and the files changed; committed only
    /// once the version file names it.
    Prepared,
    /// Committed (the version file named it at some point).
    Committed,
    /// Committed, and rolled back unless confirmed by `until_ms` (Unix
    /// time, milliseconds).
    Pending { until_ms: u64, back_to: u64 },
    /// A pending version that was confirmed.
    Confirmed,
    /// A pending version left to expire: the node went back.
    Expired,
}

/// What is kept of one version besides its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u64,
    /// SHA-256 of the policy text, hex.
    pub hash: String,
    /// When it was written here (Unix time, milliseconds).
    pub time_ms: u64,
    /// The caller's uid for a local apply; None for one from the peer or
    /// the one found at start.
    pub uid: Option<u32>,
    pub comment: String,
    #[serde(flatten)]
    pub state: EntryState,
}

/// `<config>.<node>.history`: per node, as the version file is.
pub fn history_dir(config: &Path, node: &str) -> PathBuf {
    let mut name = config.as_os_str().to_os_string();
    name.push(format!(".{node}.history"));
    PathBuf::from(name)
}

fn record_path(dir: &Path, version: u64) -> PathBuf {
    dir.join(format!("{version}.json"))
}

fn policy_path(dir: &Path, version: u64) -> PathBuf {
    dir.join(format!("{version}.policy"))
}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> ConfigError + 'a {
    move |source| ConfigError::File {
        path: path.to_owned(),
        what,
        source,
    }
}

/// Syncs a directory, so the renames inside it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), ConfigError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "cannot sync the directory"))
}

/// Writes `bytes` at `path` through a synced file beside it and a rename;
/// the caller syncs the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    write_through(path, &PathBuf::from(tmp), bytes)
}

/// [`write_atomic`] through `tmp`: a file two nodes may share (the lab
/// runs both from one deployment file) goes through a name of the node's.
pub fn write_through(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let tmp = tmp.to_path_buf();
    std::fs::File::create(&tmp)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()
        })
        .map_err(io(&tmp, "cannot write"))?;
    std::fs::rename(&tmp, path).map_err(io(path, "cannot replace"))
}

/// Writes one version's text and record (text first: a record names a
/// text that is there).
pub fn write_entry(dir: &Path, record: &Record, policy: &str) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir).map_err(io(dir, "cannot create"))?;
    write_atomic(&policy_path(dir, record.version), policy.as_bytes())?;
    write_record(dir, record)
}

/// Replaces a version's record (its state changed).
pub fn write_record(dir: &Path, record: &Record) -> Result<(), ConfigError> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| ConfigError::Invalid {
        path: record_path(dir, record.version),
        message: format!("cannot encode the record: {e}"),
    })?;
    write_atomic(&record_path(dir, record.version), &json)?;
    sync_dir(dir)
}

/// Every record, oldest first. A record that does not parse is skipped
/// (and named in the second list) rather than failing the start: the
/// history is a convenience; the version file is the commit record.
pub fn list(dir: &Path) -> (Vec<Record>, Vec<PathBuf>) {
    let (mut out, mut bad) = (vec![], vec![]);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (out, bad);
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
        {
            Some(r) => out.push(r),
            None => bad.push(p),
        }
    }
    out.sort_by_key(|r| r.version);
    (out, bad)
}

/// One version's policy text.
pub fn load_policy(dir: &Path, version: u64) -> Result<String, ConfigError> {
    let p = policy_path(dir, version);
    std::fs::read_to_string(&p).map_err(io(&p, "cannot read"))
}

/// Removes one version's files.
pub fn remove_entry(dir: &Path, version: u64) {
    let _ = std::fs::remove_file(record_path(dir, version));
    let _ = std::fs::remove_file(policy_path(dir, version));
}

/// Which versions go so that at most `max` stay: the oldest first, never
/// one in `keep` (the running one, one pending confirmation, the one a
/// pending one goes back to).
pub fn to_prune(records: &[Record], max: usize, keep: &[u64]) -> Vec<u64> {
    let mut excess = records.len().saturating_sub(max);
    let mut out = vec![];
    for r in records {
        if excess == 0 {
            break;
        }
        let pending_back_to = records.iter().any(
            |o| matches!(o.state, EntryState::Pending { back_to, .. } if back_to == r.version),
        );
        if keep.contains(&r.version)
            || matches!(r.state, EntryState::Pending { .. })
            || pending_back_to
        {
            continue;
        }
        out.push(r.version);
        excess -= 1;
    }
    out
}

/// What startup does after looking at the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The file is the version file's version (or an edit by hand, or
    /// there is no history): run it as it is.
    AsIs,
    /// The deployment file holds a version that was never committed (the
    /// crash came between its rename and the version file's): put the
    /// committed version's policy back from the history.
    RestoreFile { version: u64 },
    /// As `RestoreFile`, but the committed version's text is not in the
    /// history (a history from before this release): the prepared version
    /// is taken as committed instead (rolled forward).
    RollForward { version: u64, hash: String },
}

/// The decision, from the version file's (version, hash), the hash of the
/// deployment file's policy and the history's records. Also returns the
/// versions to forget: prepared ones the version file never named.
pub fn recover(
    committed: Option<(u64, String)>,
    file_hash: &str,
    records: &[Record],
) -> (Recovery, Vec<u64>) {
    let (version, hash) = committed.unwrap_or((0, String::new()));
    let uncommitted = |r: &&Record| r.version > version && r.state == EntryState::Prepared;
    let forget: Vec<u64> = records
        .iter()
        .filter(uncommitted)
        .map(|r| r.version)
        .collect();
    if hash == file_hash {
        return (Recovery::AsIs, forget);
    }
    // The file holds a version prepared but not committed?
    let Some(prepared) = records
        .iter()
        .filter(uncommitted)
        .find(|r| r.hash == file_hash)
    else {
        // Edited by hand: startup says so and runs the file.
        return (Recovery::AsIs, forget);
    };
    // The version file names it, so it is committed whatever its record
    // says (a crash may come before the record is updated). Without a
    // version file (version 0, never applied through config sync) the
    // record of version 0 is the one written at start.
    let have_committed = records
        .iter()
        .any(|r| r.version == version && (r.hash == hash || hash.is_empty()));
    if have_committed {
        (Recovery::RestoreFile { version }, forget)
    } else {
        let forget = forget
            .into_iter()
            .filter(|v| *v != prepared.version)
            .collect();
        (
            Recovery::RollForward {
                version: prepared.version,
                hash: prepared.hash.clone(),
            },
            forget,
        )
    }
}

/// Unix time now, milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(version: u64, hash: &str, state: EntryState) -> Record {
        Record {
            version,
            hash: hash.into(),
            time_ms: 1000 * version,
            uid: Some(0),
            comment: format!("v{version}"),
            state,
        }
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "hafw-hist-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn entries_round_trip_and_a_bad_record_is_named_not_fatal() {
        let d = tmpdir("rt");
        let r = rec(
            3,
            "ab",
            EntryState::Pending {
                until_ms: 9,
                back_to: 2,
            },
        );
        write_entry(&d, &r, "[policy]\n").unwrap();
        write_entry(
            &d,
            &rec(1, "cd", EntryState::Committed),
            "[policy]\nx = 1\n",
        )
        .unwrap();
        std::fs::write(d.join("7.json"), "not json").unwrap();
        let (all, bad) = list(&d);
        assert_eq!(
            all.iter().map(|r| r.version).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(all[1], r);
        assert_eq!(bad, vec![d.join("7.json")]);
        assert_eq!(load_policy(&d, 1).unwrap(), "[policy]\nx = 1\n");
        assert!(load_policy(&d, 5)
            .unwrap_err()
            .to_string()
            .contains("5.policy"));
        let text = std::fs::read_to_string(d.join("3.json")).unwrap();
        assert!(text.contains("\"state\": \"pending\""), "{text}");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn pruning_keeps_the_bound_and_never_the_running_or_pending_ones() {
        let mut recs: Vec<Record> = (1..=70)
            .map(|v| rec(v, "h", EntryState::Committed))
            .collect();
        assert_eq!(
            to_prune(&recs, MAX_ENTRIES, &[70]),
            (1..=6).collect::<Vec<_>>()
        );
        // The running one is the oldest: the next ones go instead.
        assert_eq!(
            to_prune(&recs, MAX_ENTRIES, &[1]),
            (2..=7).collect::<Vec<_>>()
        );
        // A pending one and the one it goes back to stay.
        recs[2].state = EntryState::Pending {
            until_ms: 1,
            back_to: 2,
        };
        assert_eq!(to_prune(&recs, MAX_ENTRIES, &[70]), vec![1, 4, 5, 6, 7, 8]);
        assert!(
            to_prune(&recs[..64], MAX_ENTRIES, &[]).is_empty(),
            "at the bound: none"
        );
    }

    #[test]
    fn a_consistent_disk_is_run_as_it_is_and_prepared_leftovers_are_forgotten() {
        let recs = [
            rec(4, "a", EntryState::Committed),
            rec(5, "b", EntryState::Prepared),
        ];
        // Crash after the history was written, before the file moved.
        assert_eq!(
            recover(Some((4, "a".into())), "a", &recs),
            (Recovery::AsIs, vec![5])
        );
        // Crash after both renames, before the record said committed.
        assert_eq!(
            recover(Some((5, "b".into())), "b", &recs),
            (Recovery::AsIs, vec![])
        );
    }

    #[test]
    fn a_file_renamed_without_its_version_file_is_put_back() {
        let recs = [
            rec(4, "a", EntryState::Committed),
            rec(5, "b", EntryState::Prepared),
        ];
        assert_eq!(
            recover(Some((4, "a".into())), "b", &recs),
            (Recovery::RestoreFile { version: 4 }, vec![5])
        );
        // Version 4's record still says prepared (the crash of its own
        // apply came after the version file): it is committed all the same.
        let stale = [
            rec(4, "a", EntryState::Prepared),
            rec(5, "b", EntryState::Prepared),
        ];
        assert_eq!(
            recover(Some((4, "a".into())), "b", &stale),
            (Recovery::RestoreFile { version: 4 }, vec![5])
        );
        // No version file yet: version 0 is the one recorded at start.
        let first = [
            rec(0, "a", EntryState::Committed),
            rec(1, "b", EntryState::Prepared),
        ];
        assert_eq!(
            recover(None, "b", &first),
            (Recovery::RestoreFile { version: 0 }, vec![1])
        );
        // Without version 4's text, version 5 is rolled forward.
        assert_eq!(
            recover(Some((4, "a".into())), "b", &recs[1..]),
            (
                Recovery::RollForward {
                    version: 5,
                    hash: "b".into()
                },
                vec![]
            )
        );
    }

    #[test]
    fn a_file_edited_by_hand_is_run_as_it_is() {
        let recs = [rec(4, "a", EntryState::Committed)];
        assert_eq!(
            recover(Some((4, "a".into())), "zz", &recs),
            (Recovery::AsIs, vec![])
        );
        assert_eq!(recover(None, "zz", &[]), (Recovery::AsIs, vec![]));
    }
}
