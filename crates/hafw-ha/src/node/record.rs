//! A recording of the core's inputs, as text: a header with the core's
//! [`Config`] and start time, then one line per [`Input`] with its time.
//! A replay feeds a fresh [`Node`] the same inputs at the same times; the
//! core is deterministic, so it returns the same actions. Nothing secret is
//! in it: message bodies are recorded as the core saw them, decrypted and
//! decoded, never the envelopes or the key.
//!
//! ```text
//! hafw-ha record 1
//! config node_id=1 priority=100 preempt=false preempt_hold=10000000000 ...
//! start 1200
//! 1200 config-version 3 <64 hex digits>
//! 1500 timeout
//! 20001000 msg 0 <hex of wire::encode(message)>
//! 20001000 monitor failing link eth1 down
//! 20002000 command suspend
//! # action 20001000 become active (term 1): ...
//! # gap 1234 lines dropped
//! ```
//!
//! `# action` lines are what the core returned (after the input just
//! before them), so a replay can be checked against what the daemon did.
//! Other `#` lines and empty lines are comments.

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::{Action, Command, Config, ConfigError, FlapLimit, Input, Node};
use crate::wire;
use crate::Time;

const MAGIC: &str = "hafw-ha record 1";
const ACTION: &str = "# action ";
const GAP: &str = "# gap ";

/// A decoded recording: everything a replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub config: Config,
    /// The time the node was created at (`Node::new`'s `now`).
    pub start: Time,
    pub inputs: Vec<(Time, Input)>,
    /// The actions the recording node returned, as their display text.
    pub actions: Vec<(Time, String)>,
    /// Where history was dropped to keep the recording bounded: the index
    /// in `inputs` of the first input after the gap. A replay past a gap
    /// starts from a state the recording no longer holds, so only the
    /// actions before it are exact.
    pub gap: Option<usize>,
}

/// A recording that cannot be read: the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub line: usize,
    pub what: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "recording line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for RecordError {}

/// The first lines of a recording: magic, config, start time.
pub fn header(config: &Config, start: Time) -> String {
    let c = config;
    format!(
        "{MAGIC}\nconfig node_id={} priority={} preempt={} preempt_hold={} promotion_hold={} \
         heartbeat_interval={} miss_count={} paths={} flap_transitions={} flap_window={} \
         takeover_wait={} initial_listen={} max_detection={}\nstart {}\n",
        c.node_id,
        c.priority,
        c.preempt,
        ns(c.preempt_hold),
        ns(c.promotion_hold),
        ns(c.heartbeat_interval),
        c.miss_count,
        c.paths,
        c.flap_limit.transitions,
        ns(c.flap_limit.window),
        ns(c.takeover_wait),
        ns(c.initial_listen),
        ns(c.max_detection),
        ns(start),
    )
}

/// One input as a line (with its newline).
pub fn input_line(now: Time, input: &Input) -> String {
    let mut s = format!("{} ", ns(now));
    match input {
        Input::Message { path, msg } => {
            let _ = write!(s, "msg {path} {}", hex(&wire::encode(msg)));
        }
        Input::Timeout => s.push_str("timeout"),
        Input::Monitor { healthy, reason } => {
            let verdict = if *healthy { "ok" } else { "failing" };
            let _ = write!(s, "monitor {verdict} {}", escape(reason));
        }
        Input::Command(Command::Suspend) => s.push_str("command suspend"),
        Input::Command(Command::Resume) => s.push_str("command resume"),
        Input::Command(Command::Shutdown) => s.push_str("command shutdown"),
        Input::ConfigVersion { version, hash } => {
            let _ = write!(s, "config-version {version} {}", hex(hash));
        }
    }
    s.push('\n');
    s
}

/// One action the core returned after the input at `now`, as a comment line.
pub fn action_line(now: Time, action: &Action) -> String {
    format!("{ACTION}{} {}\n", ns(now), escape(&action.to_string()))
}

/// Reads a recording. Any bytes give a value or an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Recording, RecordError> {
    let text = std::str::from_utf8(bytes).map_err(|e| RecordError {
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        what: "not UTF-8 text".into(),
    })?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let err = |line, what: &str| RecordError {
        line,
        what: what.to_owned(),
    };
    match lines.next() {
        Some((_, MAGIC)) => {}
        _ => {
            return Err(err(
                1,
                "not a recording: the first line must be `hafw-ha record 1`",
            ))
        }
    }
    let config = match lines.next() {
        Some((n, l)) => parse_config(l).map_err(|w| err(n, &w))?,
        None => return Err(err(2, "truncated: no config line")),
    };
    let start = match lines.next() {
        Some((n, l)) => match l.strip_prefix("start ") {
            Some(t) => time(t).map_err(|w| err(n, &w))?,
            None => return Err(err(n, "expected `start <ns>`")),
        },
        None => return Err(err(3, "truncated: no start line")),
    };
    let mut rec = Recording {
        config,
        start,
        inputs: Vec::new(),
        actions: Vec::new(),
        gap: None,
    };
    for (n, line) in lines {
        if let Some(rest) = line.strip_prefix(ACTION) {
            let (t, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let t = time(t).map_err(|w| err(n, &w))?;
            rec.actions
                .push((t, unescape(text).map_err(|w| err(n, &w))?));
        } else if line.starts_with(GAP) {
            rec.gap = Some(rec.inputs.len());
        } else if line.is_empty() || line.starts_with('#') {
        } else {
            rec.inputs.push(parse_input(line).map_err(|w| err(n, &w))?);
        }
    }
    Ok(rec)
}

/// Feeds a fresh node the recorded inputs at their times; returns the
/// actions it gave, each with the time of the input that caused it.
pub fn replay(rec: &Recording) -> Result<Vec<(Time, Action)>, ConfigError> {
    let mut node = Node::new(rec.config.clone(), rec.start)?;
    let mut out = Vec::new();
    for (now, input) in &rec.inputs {
        node.handle(*now, input.clone());
        while let Some(a) = node.poll_action() {
            out.push((*now, a));
        }
        // A replay has no sockets: what the node would send is dropped.
        while node.poll_transmit().is_some() {}
    }
    Ok(out)
}

/// What the owner of a recording file must do after a line was recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum Write<'a> {
    /// Append this line to the file.
    Append(&'a str),
    /// History was dropped: write [`Recorder::text`] anew.
    Rewrite,
}

/// A recording bounded in bytes.
///
/// When full it keeps the header and the start-up (the first half of the
/// budget) and then the most recent history in two rotating quarters: when
/// the newer quarter fills, the older is dropped (a `# gap` line says how
/// many lines went) and a new one starts. A failure in the field is
/// explained by how the pair came up (the election, the first peer
/// contact, the config version) and by the minutes before it; the hours of
/// steady heartbeats in between are the part worth losing. Rotating halves
/// keeps at least a quarter of the budget of recent history at any moment,
/// and a rewrite of the file happens once per quarter, not per line.
#[derive(Debug, Clone)]
pub struct Recorder {
    header: String,
    start: String,
    start_full: bool,
    older: String,
    current: String,
    older_lines: u64,
    current_lines: u64,
    dropped: u64,
    limit: usize,
    last_input: Time,
}

impl Recorder {
    /// 4 MiB: at the fast profile's 20 ms heartbeat on two paths (about
    /// 200 bytes a line, 150 lines a second) a quarter holds about 35 s of
    /// recent history, at the default 200 ms about six minutes.
    pub const DEFAULT_LIMIT: usize = 4 << 20;

    pub fn new(config: &Config, start: Time, limit: usize) -> Recorder {
        Recorder {
            header: header(config, start),
            start: String::new(),
            start_full: false,
            older: String::new(),
            current: String::new(),
            older_lines: 0,
            current_lines: 0,
            dropped: 0,
            limit,
            last_input: start,
        }
    }

    pub fn input(&mut self, now: Time, input: &Input) -> Write<'_> {
        self.last_input = now;
        self.push(input_line(now, input))
    }

    /// An action the core returned, stamped with the last input's time.
    pub fn action(&mut self, action: &Action) -> Write<'_> {
        self.push(action_line(self.last_input, action))
    }

    /// The whole recording, as a file holds it.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(
            self.header.len() + self.start.len() + self.older.len() + self.current.len() + 40,
        );
        s.push_str(&self.header);
        s.push_str(&self.start);
        if self.dropped > 0 {
            let _ = writeln!(s, "{GAP}{} lines dropped", self.dropped);
        }
        s.push_str(&self.older);
        s.push_str(&self.current);
        s
    }

    fn push(&mut self, line: String) -> Write<'_> {
        if !self.start_full {
            if self.start.len() + line.len() <= self.limit / 2 {
                let at = self.start.len();
                self.start.push_str(&line);
                return Write::Append(&self.start[at..]);
            }
            self.start_full = true;
        }
        let mut rewrite = false;
        if !self.current.is_empty() && self.current.len() + line.len() > self.limit / 4 {
            if !self.older.is_empty() {
                self.dropped += self.older_lines;
                rewrite = true;
            }
            self.older = std::mem::take(&mut self.current);
            self.older_lines = std::mem::take(&mut self.current_lines);
        }
        let at = self.current.len();
        self.current.push_str(&line);
        self.current_lines += 1;
        if rewrite {
            Write::Rewrite
        } else {
            Write::Append(&self.current[at..])
        }
    }
}

fn parse_input(line: &str) -> Result<(Time, Input), String> {
    let (t, rest) = line.split_once(' ').ok_or("expected `<ns> <input>`")?;
    let now = time(t)?;
    let (kind, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let input = match kind {
        "timeout" if args.is_empty() => Input::Timeout,
        "msg" => {
            let (path, body) = args.split_once(' ').ok_or("expected `msg <path> <hex>`")?;
            let path = path.parse().map_err(|_| format!("bad path {path:?}"))?;
            let msg = wire::decode(&unhex(body)?).map_err(|e| format!("bad message: {e}"))?;
            Input::Message { path, msg }
        }
        "monitor" => {
            let (verdict, reason) = args.split_once(' ').unwrap_or((args, ""));
            let healthy = match verdict {
                "ok" => true,
                "failing" => false,
                _ => {
                    return Err(format!(
                        "monitor verdict {verdict:?}: expected ok or failing"
                    ))
                }
            };
            Input::Monitor {
                healthy,
                reason: unescape(reason)?,
            }
        }
        "command" => Input::Command(match args {
            "suspend" => Command::Suspend,
            "resume" => Command::Resume,
            "shutdown" => Command::Shutdown,
            _ => return Err(format!("unknown command {args:?}")),
        }),
        "config-version" => {
            let (v, h) = args
                .split_once(' ')
                .ok_or("expected `config-version <n> <hex>`")?;
            let version = v.parse().map_err(|_| format!("bad version {v:?}"))?;
            let hash = unhex(h)?
                .try_into()
                .map_err(|_| "config hash must be 32 bytes".to_string())?;
            Input::ConfigVersion { version, hash }
        }
        _ => return Err(format!("unknown input {rest:?}")),
    };
    Ok((now, input))
}

fn parse_config(line: &str) -> Result<Config, String> {
    let fields = line
        .strip_prefix("config ")
        .ok_or("expected `config key=value ...`")?;
    let mut c = Config::new(0, 0);
    let mut seen = Vec::new();
    for field in fields.split(' ') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| format!("config field {field:?} is not key=value"))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| format!("config {k}: bad number {v:?}"))
        };
        let dur = || num().map(Duration::from_nanos);
        match k {
            "node_id" => c.node_id = v.parse().map_err(|_| format!("config {k}: {v:?}"))?,
            "priority" => c.priority = v.parse().map_err(|_| format!("config {k}: {v:?}"))?,
            "preempt" => c.preempt = v.parse().map_err(|_| format!("config {k}: {v:?}"))?,
            "preempt_hold" => c.preempt_hold = dur()?,
            "promotion_hold" => c.promotion_hold = dur()?,
            "heartbeat_interval" => c.heartbeat_interval = dur()?,
            "miss_count" => c.miss_count = v.parse().map_err(|_| format!("config {k}: {v:?}"))?,
            "paths" => c.paths = v.parse().map_err(|_| format!("config {k}: {v:?}"))?,
            "flap_transitions" => {
                c.flap_limit = FlapLimit {
                    transitions: v.parse().map_err(|_| format!("config {k}: {v:?}"))?,
                    ..c.flap_limit
                }
            }
            "flap_window" => {
                c.flap_limit = FlapLimit {
                    window: dur()?,
                    ..c.flap_limit
                }
            }
            "takeover_wait" => c.takeover_wait = dur()?,
            "initial_listen" => c.initial_listen = dur()?,
            "max_detection" => c.max_detection = dur()?,
            _ => return Err(format!("unknown config field {k:?}")),
        }
        if seen.contains(&k) {
            return Err(format!("config field {k} given twice"));
        }
        seen.push(k);
    }
    // A replay must run with the recorded settings, not with defaults.
    if seen.len() != CONFIG_FIELDS {
        return Err(format!(
            "config has {} of {CONFIG_FIELDS} fields: the recording is cut or from another version",
            seen.len()
        ));
    }
    Ok(c)
}

const CONFIG_FIELDS: usize = 13;

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn time(s: &str) -> Result<Time, String> {
    s.parse::<u64>()
        .map(Duration::from_nanos)
        .map_err(|_| format!("bad time {s:?}: expected nanoseconds"))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("bad hex digit {:?}", c as char)),
    };
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    b.chunks(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Keeps a free-text field on one line.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            _ => return Err("bad escape: expected \\\\, \\n or \\r".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{Heartbeat, Message, State};

    fn config() -> Config {
        let mut c = Config::new(1, 100);
        c.preempt = true;
        c.preempt_hold = Duration::from_millis(1234);
        c.promotion_hold = Duration::from_nanos(7);
        c.heartbeat_interval = Duration::from_millis(20);
        c.miss_count = 3;
        c.paths = 1;
        c.flap_limit = FlapLimit {
            transitions: 9,
            window: Duration::from_secs(61),
        };
        c.takeover_wait = Duration::from_millis(333);
        c.initial_listen = Duration::from_millis(44);
        c.max_detection = Duration::from_millis(555);
        c
    }

    fn heartbeat(node_id: u32, state: State, term: u64, seq: u64) -> Message {
        Message::Heartbeat(Heartbeat {
            node_id,
            state,
            term,
            priority: 50,
            preempt: true,
            healthy: true,
            seq,
            sent_ns: seq * 1000,
            echo_ns: 3,
            echo_hold_ns: 4,
            config_version: 2,
            config_hash: [7; 32],
        })
    }

    fn every_input() -> Vec<(Time, Input)> {
        let ms = Duration::from_millis;
        vec![
            (
                ms(0),
                Input::ConfigVersion {
                    version: 2,
                    hash: [9; 32],
                },
            ),
            (ms(1), Input::Timeout),
            (
                ms(2),
                Input::Message {
                    path: 0,
                    msg: heartbeat(2, State::Passive, 0, 1),
                },
            ),
            (
                ms(3),
                Input::Message {
                    path: 0,
                    msg: Message::Takeover {
                        node_id: 2,
                        term: 5,
                    },
                },
            ),
            (
                ms(4),
                Input::Monitor {
                    healthy: false,
                    reason: "link eth1 down \\ and\nmore".into(),
                },
            ),
            (
                ms(5),
                Input::Monitor {
                    healthy: true,
                    reason: String::new(),
                },
            ),
            (ms(6), Input::Command(Command::Suspend)),
            (ms(7), Input::Command(Command::Resume)),
            (ms(8), Input::Command(Command::Shutdown)),
        ]
    }

    fn encode(config: &Config, inputs: &[(Time, Input)]) -> String {
        let mut s = header(config, Duration::from_micros(5));
        for (t, i) in inputs {
            s.push_str(&input_line(*t, i));
        }
        s
    }

    #[test]
    fn every_input_and_every_config_field_round_trip() {
        let inputs = every_input();
        let text = encode(&config(), &inputs);
        let rec = decode(text.as_bytes()).expect("decodes");
        assert_eq!(rec.config, config());
        assert_eq!(rec.start, Duration::from_micros(5));
        assert_eq!(rec.inputs, inputs);
        assert_eq!(rec.gap, None);
    }

    #[test]
    fn action_lines_are_read_back_as_text() {
        let mut s = encode(&config(), &[]);
        let a = Action::BecomeSuspended {
            cause: crate::node::Cause::Resumed,
        };
        s.push_str(&action_line(Duration::from_millis(3), &a));
        let rec = decode(s.as_bytes()).expect("decodes");
        assert_eq!(rec.actions, vec![(Duration::from_millis(3), a.to_string())]);
    }

    #[test]
    fn a_missing_config_field_is_an_error_not_a_default() {
        let text = encode(&config(), &[]).replace(" max_detection=555000000", "");
        let e = decode(text.as_bytes()).expect_err("one field short");
        assert_eq!(e.line, 2);
        let twice = encode(&config(), &[]).replace("paths=1", "paths=1 paths=1");
        assert!(decode(twice.as_bytes()).is_err());
    }

    #[test]
    fn garbage_is_an_error_with_its_line() {
        let good = encode(&config(), &every_input());
        for (bad, line) in [
            ("0 timeout extra\n", 4),
            ("x timeout\n", 4),
            ("1 msg 0 zz\n", 4),
            ("1 msg 0 abc\n", 4),
            ("1 msg 0 0100\n", 4),
            ("1 monitor maybe x\n", 4),
            ("1 monitor ok bad\\q\n", 4),
            ("1 command reboot\n", 4),
            ("1 config-version 1 00\n", 4),
            ("1 launch\n", 4),
            ("# action x y\n", 4),
        ] {
            let text = format!("{}{bad}", encode(&config(), &[]));
            let e = decode(text.as_bytes()).expect_err(bad);
            assert_eq!(e.line, line, "{bad}: {e}");
        }
        assert!(decode(b"").is_err());
        assert!(decode(b"\xff\xfe").is_err());
        // A recording cut after its header is still a recording.
        let cut = good.rfind("\n1000000 timeout").map(|i| i + 1).unwrap_or(0);
        assert!(decode(&good.as_bytes()[..cut]).is_ok());
    }

    #[test]
    fn every_truncation_decodes_or_errs_and_a_cut_header_errs() {
        let good = encode(&config(), &every_input());
        // A cut inside a number leaves a shorter valid number: any cut
        // before the last config field's value loses a field, and a cut
        // before the start line loses that line.
        let last_field = good.find("max_detection=").map_or(0, |i| i + 14);
        for cut in 0..good.len() {
            let r = decode(&good.as_bytes()[..cut]);
            if cut <= last_field || !good[..cut].contains("\nstart ") {
                assert!(r.is_err(), "cut at {cut} of the header decoded");
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // A fixed LCG: deterministic, and enough to cover mutations.
        let good = encode(&config(), &every_input()).into_bytes();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as usize
        };
        for _ in 0..5000 {
            let mut b = good.clone();
            for _ in 0..1 + next() % 4 {
                let i = next() % b.len();
                b[i] = next() as u8;
            }
            let _ = decode(&b);
            let noise: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
            let _ = decode(&noise);
        }
    }

    #[test]
    fn the_recorder_keeps_header_start_up_and_recent_history_within_its_bound() {
        let limit = 4000;
        let mut r = Recorder::new(&config(), Duration::ZERO, limit);
        let mut rewrites = 0;
        let mut file = String::new();
        file.push_str(&header(&config(), Duration::ZERO));
        let n = 1000u64;
        for i in 0..n {
            let w = r.input(Duration::from_millis(i), &Input::Timeout);
            match w {
                Write::Append(line) => file.push_str(line),
                Write::Rewrite => {
                    rewrites += 1;
                    file = r.text();
                }
            }
            assert!(r.text().len() <= header(&config(), Duration::ZERO).len() + limit + 40);
        }
        // The file the owner keeps by following Append/Rewrite is the text.
        assert_eq!(file, r.text());
        assert!(rewrites > 0);
        let rec = decode(r.text().as_bytes()).expect("decodes");
        assert_eq!(rec.config, config());
        // The start-up is kept from the first input on...
        assert_eq!(rec.inputs[0].0, Duration::ZERO);
        // ...and the newest input is there.
        assert_eq!(
            rec.inputs.last().map(|i| i.0),
            Some(Duration::from_millis(n - 1))
        );
        let gap = rec.gap.expect("history was dropped");
        // The gap sits after a contiguous start-up and before contiguous recent lines.
        assert_eq!(rec.inputs[gap - 1].0, Duration::from_millis(gap as u64 - 1));
        assert!(rec.inputs[gap].0 > Duration::from_millis(gap as u64));
        let times: Vec<_> = rec.inputs[gap..].iter().map(|i| i.0).collect();
        assert!(times
            .windows(2)
            .all(|w| w[1] - w[0] == Duration::from_millis(1)));
        // At least a quarter of the budget is recent history.
        let recent: usize = rec.inputs[gap..]
            .iter()
            .map(|(t, i)| input_line(*t, i).len())
            .sum();
        assert!(recent >= limit / 4 - 40, "{recent}");
    }

    /// `Node::handle` and the `handle_*` methods are one road: the same
    /// inputs give the same actions, transmits and status either way.
    #[test]
    fn handle_dispatches_every_input_like_the_handle_methods() {
        let mut c = Config::new(1, 100);
        c.paths = 1;
        let mut by_input = Node::new(c.clone(), Duration::ZERO).expect("valid");
        let mut by_method = by_input.clone();
        for (now, input) in every_input().into_iter().chain(
            (8..3000)
                .step_by(97)
                .map(|t| (Duration::from_millis(t), Input::Timeout)),
        ) {
            by_input.handle(now, input.clone());
            match input {
                Input::Message { path, msg } => by_method.handle_message(now, path, &msg),
                Input::Timeout => by_method.handle_timeout(now),
                Input::Monitor { healthy, reason } => {
                    by_method.handle_monitor(now, healthy, &reason)
                }
                Input::Command(cmd) => by_method.handle_command(now, cmd),
                Input::ConfigVersion { version, hash } => {
                    by_method.set_config_version(version, hash)
                }
            }
            let out = |n: &mut Node| {
                let actions: Vec<_> = std::iter::from_fn(|| n.poll_action()).collect();
                let sends: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
                (actions, sends)
            };
            assert_eq!(out(&mut by_input), out(&mut by_method), "at {now:?}");
        }
        assert_eq!(
            format!("{:?}", by_input.status()),
            format!("{:?}", by_method.status())
        );
    }

    #[test]
    fn a_replay_returns_the_recorded_nodes_actions() {
        let mut c = Config::new(1, 100);
        c.paths = 1;
        let ms = Duration::from_millis;
        let mut node = Node::new(c.clone(), ms(0)).expect("valid");
        let mut rec = Recorder::new(&c, ms(0), Recorder::DEFAULT_LIMIT);
        let mut want = Vec::new();
        let mut feed = |node: &mut Node, rec: &mut Recorder, now, input: Input| {
            let _ = rec.input(now, &input);
            node.handle(now, input);
            while let Some(a) = node.poll_action() {
                let _ = rec.action(&a);
                want.push((now, a));
            }
        };
        feed(&mut node, &mut rec, ms(0), Input::Timeout);
        for seq in 1..5 {
            let hb = heartbeat(2, State::Active, 1, seq);
            feed(
                &mut node,
                &mut rec,
                ms(seq * 200),
                Input::Message { path: 0, msg: hb },
            );
            feed(&mut node, &mut rec, ms(seq * 200 + 1), Input::Timeout);
        }
        // The peer goes silent: this node promotes after detection + hold.
        for t in (1000..4000).step_by(100) {
            feed(&mut node, &mut rec, ms(t), Input::Timeout);
        }
        feed(
            &mut node,
            &mut rec,
            ms(4000),
            Input::Command(Command::Suspend),
        );
        assert!(want
            .iter()
            .any(|(_, a)| matches!(a, Action::BecomeActive { .. })));
        let decoded = decode(rec.text().as_bytes()).expect("decodes");
        let got = replay(&decoded).expect("valid config");
        assert_eq!(got, want);
        let texts: Vec<_> = got.iter().map(|(t, a)| (*t, a.to_string())).collect();
        assert_eq!(texts, decoded.actions);
    }
}
