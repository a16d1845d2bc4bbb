//! `hafw run --record FILE`: the HA core's inputs and actions written to a
//! file ([`hafw_ha::node::record`] holds the format and the bound), and
//! `hafw replay FILE`, which feeds them to a fresh core.
//!
//! Lines are formatted into a buffer as inputs arrive and written out every
//! [`FLUSH_EVERY`] and at every action, so the heartbeat path costs one
//! `format!` and a kill -9 loses at most the last tenth of a second of
//! inputs. A rotation (history dropped to stay within the bound) rewrites
//! the file to a temporary name and renames it over: a crash during it
//! leaves the old or the new recording, never half of one.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hafw_ha::node::record::{self, Recorder, Write};
use hafw_ha::node::{Action, Config, Input, Node};
use hafw_ha::Time;

use crate::log::Log;

/// How long recorded lines may wait in memory.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The recording file of one run.
pub struct RecordFile {
    path: PathBuf,
    file: File,
    recorder: Recorder,
    pending: String,
    last_flush: Instant,
    /// An action is waiting: written at the next tick, not after 100 ms.
    urgent: bool,
    log: Log,
    failed: bool,
}

/// Creates (truncates) the file before the HA thread starts, so a path
/// that cannot be written stops `hafw run` at once.
pub fn create(path: &Path) -> Result<(PathBuf, File), String> {
    File::create(path)
        .map(|f| (path.to_path_buf(), f))
        .map_err(|e| format!("--record {}: {e}", path.display()))
}

impl RecordFile {
    /// Starts the recording: the header carries `config` and `start`.
    pub fn new((path, file): (PathBuf, File), config: &Config, start: Time, log: Log) -> Self {
        let mut r = RecordFile {
            path,
            file,
            recorder: Recorder::new(config, start, Recorder::DEFAULT_LIMIT),
            pending: record::header(config, start),
            last_flush: Instant::now(),
            urgent: false,
            log,
            failed: false,
        };
        r.flush();
        r
    }

    pub fn input(&mut self, now: Time, input: &Input) {
        if self.failed {
            return;
        }
        match self.recorder.input(now, input) {
            Write::Append(line) => self.pending.push_str(line),
            Write::Rewrite => self.rewrite(),
        }
    }

    /// An action the core returned for the input just recorded: written
    /// at the next tick, since what the daemon did is what a replay is
    /// checked against.
    pub fn action(&mut self, action: &Action) {
        if self.failed {
            return;
        }
        match self.recorder.action(action) {
            Write::Append(line) => self.pending.push_str(line),
            Write::Rewrite => self.rewrite(),
        }
        self.urgent = true;
    }

    /// Writes the buffered lines if an action waits or [`FLUSH_EVERY`] has
    /// passed. The HA thread calls it after handing actions on.
    pub fn tick(&mut self) {
        if self.urgent || self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.last_flush = Instant::now();
        self.urgent = false;
        if self.failed || self.pending.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(self.pending.as_bytes()) {
            self.fail(e);
        }
        self.pending.clear();
    }

    fn rewrite(&mut self) {
        self.pending.clear();
        let tmp = self.path.with_extension("rotating");
        let result = std::fs::write(&tmp, self.recorder.text())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .and_then(|()| OpenOptions::new().append(true).open(&self.path));
        match result {
            Ok(f) => self.file = f,
            Err(e) => self.fail(e),
        }
    }

    /// A recording is a diagnostic: a full disk stops it, not the node.
    fn fail(&mut self, e: std::io::Error) {
        self.failed = true;
        self.log.warn(format!(
            "HA: recording to {} stopped: {e}",
            self.path.display()
        ));
    }
}

impl Drop for RecordFile {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The one way the HA thread gives the core an input: recorded, handled,
/// and the actions it caused recorded right after it (the daemon polls
/// them later, maybe after more inputs: a drain of queued heartbeats).
pub fn feed(node: &mut Node, rec: &mut Option<RecordFile>, now: Time, input: Input) {
    let Some(r) = rec else {
        node.handle(now, input);
        return;
    };
    r.input(now, &input);
    let before = node.queued_actions().len();
    node.handle(now, input);
    for a in node.queued_actions().skip(before) {
        r.action(a);
    }
}

/// `hafw replay FILE`: prints the actions a fresh core returns for the
/// recorded inputs, with their times; exits 1 when they differ from the
/// `# action` lines the recording node wrote (before any gap).
pub fn replay_command(path: &Path) -> ExitCode {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: hafw replay: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let rec = match record::decode(&bytes) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: hafw replay: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let actions = match record::replay(&rec) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: hafw replay: the recorded settings: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (t, a) in &actions {
        println!("{:>12.6} s  {a}", t.as_secs_f64());
    }
    let (replayed, recorded) = comparable(&rec, &actions);
    let gap = rec
        .gap
        .map(|_| " (before the gap: history was dropped to keep the file bounded)")
        .unwrap_or("");
    if replayed == recorded {
        println!(
            "{} inputs, {} actions: the same as recorded{gap}",
            rec.inputs.len(),
            actions.len()
        );
        ExitCode::SUCCESS
    } else {
        let at = replayed
            .iter()
            .zip(&recorded)
            .position(|(a, b)| a != b)
            .unwrap_or(replayed.len().min(recorded.len()));
        eprintln!(
            "hafw replay: differs from the recording at action {}{gap}: replayed {:?}, recorded {:?}",
            at + 1,
            replayed.get(at),
            recorded.get(at)
        );
        ExitCode::FAILURE
    }
}

/// Actions as (time, display text).
pub type Timed = Vec<(Time, String)>;

/// The replayed and the recorded actions as (time, text), up to the gap.
pub fn comparable(rec: &record::Recording, replayed: &[(Time, Action)]) -> (Timed, Timed) {
    let until = rec
        .gap
        .and_then(|g| rec.inputs.get(g))
        .map_or(Time::MAX, |(t, _)| *t);
    let replayed = replayed
        .iter()
        .filter(|(t, _)| *t < until)
        .map(|(t, a)| (*t, a.to_string()))
        .collect();
    let recorded = rec
        .actions
        .iter()
        .filter(|(t, _)| *t < until)
        .cloned()
        .collect();
    (replayed, recorded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafw_ha::msg::{Heartbeat, Message, State};

    fn heartbeat(seq: u64) -> Message {
        Message::Heartbeat(Heartbeat {
            node_id: 2,
            state: State::Active,
            term: 1,
            priority: 50,
            preempt: false,
            healthy: true,
            seq,
            sent_ns: seq,
            echo_ns: 0,
            echo_hold_ns: 0,
            config_version: 0,
            config_hash: [0; 32],
        })
    }

    /// Several inputs before one poll (a drain): each action is stamped
    /// with the input that caused it, so the replay agrees; a recording
    /// whose actions were altered does not.
    #[test]
    fn a_recording_file_replays_and_a_tampered_one_is_refused() {
        let path =
            std::env::temp_dir().join(format!("hafw-record-unit-{}.rec", std::process::id()));
        let mut config = Config::new(1, 100);
        config.paths = 1;
        let ms = Duration::from_millis;
        let mut node = Node::new(config.clone(), ms(0)).expect("valid");
        let mut rec = Some(RecordFile::new(
            create(&path).expect("temp file"),
            &config,
            ms(0),
            Log::quiet(),
        ));
        feed(&mut node, &mut rec, ms(1), Input::Timeout);
        feed(
            &mut node,
            &mut rec,
            ms(2),
            Input::Message {
                path: 0,
                msg: heartbeat(1),
            },
        );
        feed(&mut node, &mut rec, ms(3), Input::Timeout);
        for t in (100..3000).step_by(100) {
            feed(&mut node, &mut rec, ms(t), Input::Timeout);
        }
        assert!(
            node.queued_actions().len() >= 3,
            "found, passive, lost, active"
        );
        drop(rec);
        assert_eq!(replay_command(&path), ExitCode::SUCCESS);
        let text = std::fs::read_to_string(&path).expect("read");
        let tampered = text.replacen("# action 2000000 ", "# action 3000000 ", 1);
        assert_ne!(tampered, text, "{text}");
        std::fs::write(&path, tampered).expect("write");
        assert_eq!(replay_command(&path), ExitCode::FAILURE);
        let _ = std::fs::remove_file(&path);
    }
}
