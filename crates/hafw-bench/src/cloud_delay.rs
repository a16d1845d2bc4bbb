//! A slow cloud: `--move-delay` for `hafw lab demo` and `hafw bench
//! failover`. The vendor publishes no HAVIP switch time (peers report
//! seconds), so the lab can hold every move that long; the runs then size
//! their probes and their TCP sessions' patience from it, and the timeline
//! tells the cloud's share of the outage from the node's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hafw_lab::lab::LogLine;
use serde_json::{json, Value};

/// The longest move delay the lab takes: beyond it a run measures the
/// patience of the operator, not the pair.
pub const MAX_MOVE_DELAY: Duration = Duration::from_secs(60);

/// `--move-delay`: `2s`, `2.5s`, `500ms` or `0`.
pub fn parse_delay(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (number, unit) = match t.strip_suffix("ms") {
        Some(n) => (n, 1e-3),
        None => match t.strip_suffix('s') {
            Some(n) => (n, 1.0),
            None if t == "0" => ("0", 1.0),
            None => return Err(format!("`{s}`: give a unit, as in 2s, 2.5s or 500ms")),
        },
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: not a number of seconds or milliseconds (2s, 500ms)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{s}`: the delay must be 0 or more"));
    }
    let d = Duration::from_secs_f64(value * unit);
    if d > MAX_MOVE_DELAY {
        return Err(format!("`{s}`: at most {} s", MAX_MOVE_DELAY.as_secs()));
    }
    // The lab holds moves in whole milliseconds.
    Ok(Duration::from_millis(d.as_millis() as u64))
}

/// A copy of a deployment file with `move_delay_ms` set on every HAVIP,
/// removed when dropped.
pub struct DelayedFile(PathBuf);

impl DelayedFile {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DelayedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `file` with every `[[cloud.havip]]` given `delay`, next to the
/// temporary directory under a name of this process's own.
pub fn with_move_delay(file: &Path, delay: Duration) -> Result<DelayedFile, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let changed = set_move_delay(&text, delay).map_err(|e| format!("{}: {e}", file.display()))?;
    let path = std::env::temp_dir().join(format!(
        "hafw-move-delay-{}-{}.toml",
        std::process::id(),
        delay.as_millis()
    ));
    std::fs::write(&path, changed).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(DelayedFile(path))
}

/// The deployment text with `move_delay_ms` set on every HAVIP.
fn set_move_delay(text: &str, delay: Duration) -> Result<String, String> {
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not TOML: {}", e.message()))?;
    let ms = i64::try_from(delay.as_millis()).map_err(|_| "delay too long".to_string())?;
    let havips = doc
        .get_mut("cloud")
        .and_then(|c| c.get_mut("havip"))
        .and_then(|h| h.as_array_mut())
        .filter(|h| !h.is_empty())
        .ok_or("no [[cloud.havip]] to give a move delay to")?;
    for h in havips.iter_mut() {
        let table = h
            .as_table_mut()
            .ok_or("cloud.havip: each entry must be a table")?;
        table.insert("move_delay_ms".into(), toml::Value::Integer(ms));
    }
    toml::to_string(&doc).map_err(|e| format!("cannot write it back: {e}"))
}

/// The longest move delay the file gives any HAVIP.
pub fn longest_delay(dep: &hafw_model::spec::Deployment) -> Duration {
    let ms = dep
        .cloud
        .havips
        .iter()
        .map(|h| h.move_delay_ms)
        .max()
        .unwrap_or(0);
    Duration::from_millis(u64::from(ms))
}

/// Each HAVIP's move after `fault_at` (CLOCK_MONOTONIC ns), attributed:
/// when the cloud was asked (the announcement) and when it moved, as text
/// ("external move requested +12.3 ms, moved +2012.4 ms (after 2.0 s)")
/// and JSON.
pub fn havip_timeline(log: &[LogLine], fault_at: u64) -> (String, Value) {
    let ms = |ns: u64| ns.saturating_sub(fault_at) as f64 / 1e6;
    let mut text = vec![];
    let mut figures = vec![];
    for m in log
        .iter()
        .filter(|l| l.kind == "move" && l.at_ns >= fault_at)
    {
        let requested = log
            .iter()
            .filter(|l| {
                l.kind == "requested"
                    && l.havip == m.havip
                    && l.to == m.to
                    && l.at_ns >= fault_at
                    && l.at_ns <= m.at_ns
            })
            .map(|l| l.at_ns)
            .next_back();
        match requested {
            Some(r) => text.push(format!(
                "{} move requested +{:.1} ms, moved +{:.1} ms (after {:.1} s)",
                m.havip,
                ms(r),
                ms(m.at_ns),
                (m.at_ns - r) as f64 / 1e9
            )),
            None => text.push(format!("{} moved +{:.1} ms", m.havip, ms(m.at_ns))),
        }
        figures.push(json!({
            "havip": m.havip, "to": m.to,
            "requested_ms": requested.map(ms), "moved_ms": ms(m.at_ns),
        }));
    }
    (text.join("; "), Value::Array(figures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_with_units_and_bad_ones_are_refused() {
        assert_eq!(parse_delay("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_delay("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_delay("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        for bad in ["2", "-1s", "fast", "61s", "NaNs", "s"] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_havip_of_the_seed_gets_the_delay() {
        let text = set_move_delay(hafw_model::examples::SEED, Duration::from_secs(2)).unwrap();
        let dep = hafw_model::parse("seed.toml", &text).unwrap();
        assert!(dep.cloud.havips.len() >= 2);
        assert!(dep.cloud.havips.iter().all(|h| h.move_delay_ms == 2000));
        assert_eq!(longest_delay(&dep), Duration::from_secs(2));
        assert!(set_move_delay("name = \"x\"\n", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn the_timeline_attributes_the_wait_to_the_cloud() {
        let line = |at_ns, kind: &str| LogLine {
            at_ns,
            kind: kind.into(),
            havip: "external".into(),
            from: None,
            to: "fw-b-untrust".into(),
        };
        let log = [
            line(500, "requested"),
            line(1_000_000_000 + 12_000_000, "requested"),
            line(3_012_000_000 + 1_000_000_000, "move"),
        ];
        let (text, json) = havip_timeline(&log, 1_000_000_000);
        assert_eq!(
            text,
            "external move requested +12.0 ms, moved +3012.0 ms (after 3.0 s)"
        );
        assert_eq!(json[0]["requested_ms"], 12.0);
        let (plain, _) = havip_timeline(&[line(1_000_000_000 + 5_000_000, "move")], 1_000_000_000);
        assert_eq!(plain, "external moved +5.0 ms");
    }
}
