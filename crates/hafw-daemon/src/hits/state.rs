//! The rule-hits state file (`<state dir>/rule-hits.json`): this node's
//! base and last counters per object, the table handle they were read
//! from, and the peer's last totals, so a restarted daemon carries the
//! totals on. Written atomically (a temporary file beside it, fsync,
//! rename, the directory fsynced). A file that is not ours (another
//! format, another node, unreadable JSON) is refused with a warning and
//! the counting starts from zero; it is never a panic or a refusal to run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{Own, Peer};

pub const FILE: &str = "rule-hits.json";
const FORMAT: &str = "hafw-rule-hits";
const VERSION: u32 = 1;
/// A state file larger than this is not ours (10,000 rules take ~2 MiB).
const MAX_LEN: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: String,
    pub version: u32,
    pub node: String,
    pub handle: Option<u64>,
    pub own: BTreeMap<String, Own>,
    pub peer: BTreeMap<String, Peer>,
}

impl State {
    pub fn new(
        node: &str,
        handle: Option<u64>,
        own: BTreeMap<String, Own>,
        peer: BTreeMap<String, Peer>,
    ) -> State {
        State {
            format: FORMAT.into(),
            version: VERSION,
            node: node.into(),
            handle,
            own,
            peer,
        }
    }
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The state of `node` in `file`: Ok(None) when there is none, Err with
/// the file, what is wrong and the fix when it cannot be taken.
pub fn load(file: &Path, node: &str) -> Result<Option<State>, String> {
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: cannot read ({e})", file.display())),
    };
    if meta.len() > MAX_LEN {
        return Err(format!(
            "{}: {} bytes, more than a rule-hits file holds; remove it to start counting from zero",
            file.display(),
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{}: cannot read ({e})", file.display()))?;
    let state: State = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a rule-hits file ({e}); remove it to start counting from zero",
            file.display()
        )
    })?;
    if state.format != FORMAT || state.version != VERSION {
        return Err(format!(
            "{}: field `format`/`version` is {:?}/{}, expected {FORMAT:?}/{VERSION}; remove it to start counting from zero",
            file.display(),
            state.format,
            state.version
        ));
    }
    if state.node != node {
        return Err(format!(
            "{}: field `node` is {:?}, this node is {node:?} (a copied state dir?); remove it to start counting from zero",
            file.display(),
            state.node
        ));
    }
    Ok(Some(state))
}

/// Writes `state` to `file` atomically.
pub fn save(file: &Path, state: &State) -> Result<(), String> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!("{FILE}.tmp"));
    let text = serde_json::to_vec(state).map_err(|e| format!("encode rule hits: {e}"))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "{}: cannot write ({e}); check `hafw run --state-dir`",
            file.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hits::parse::Count;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hafw-hits-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample() -> State {
        let mut own = BTreeMap::new();
        own.insert(
            "rule a".to_string(),
            Own {
                base: Count {
                    packets: 1,
                    bytes: 2,
                },
                last: Count {
                    packets: 3,
                    bytes: 4,
                },
                last_hit_ms: 5,
            },
        );
        State::new("fw-a", Some(7), own, BTreeMap::new())
    }

    #[test]
    fn a_saved_state_loads_back_and_no_file_is_none() {
        let d = dir("roundtrip");
        let f = path(&d);
        assert_eq!(load(&f, "fw-a"), Ok(None));
        save(&f, &sample()).unwrap();
        assert_eq!(load(&f, "fw-a"), Ok(Some(sample())));
        assert!(!d.join(format!("{FILE}.tmp")).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corrupt_foreign_and_other_node_files_are_refused_with_the_fix() {
        let d = dir("refused");
        let f = path(&d);
        for text in ["", "{", "[1,2]", "\u{0}\u{1}garbage"] {
            std::fs::write(&f, text).unwrap();
            let e = load(&f, "fw-a").unwrap_err();
            assert!(
                e.contains("not a rule-hits file") && e.contains("remove it"),
                "{e}"
            );
        }
        let mut other = sample();
        other.format = "something-else".into();
        std::fs::write(&f, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(load(&f, "fw-a").unwrap_err().contains("`format`"));
        save(&f, &sample()).unwrap();
        assert!(load(&f, "fw-b").unwrap_err().contains("`node`"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_unwritable_dir_is_an_error_naming_the_flag() {
        let f = Path::new("/proc/hafw-no-such-dir/rule-hits.json");
        assert!(save(f, &sample()).unwrap_err().contains("--state-dir"));
    }
}
