//! What `hafw probe` prints and decides from a probe run: every lost span
//! with its wall-clock times (so an operator can line it up with the
//! cloud's console or `hafw status`), a summary, and the thresholds that
//! make it exit non-zero. Pure: the report and the run's start time in,
//! text out.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::report::ProbeReport;

/// `--max-loss`: a number of lost probes, or a share of those sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxLoss {
    Probes(u64),
    Percent(f64),
}

impl FromStr for MaxLoss {
    type Err = String;

    fn from_str(s: &str) -> Result<MaxLoss, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("`{s}`: a share is written like 1% or 0.5%"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("`{s}`: a share is 0% to 100%"));
            }
            return Ok(MaxLoss::Percent(v));
        }
        t.parse()
            .map(MaxLoss::Probes)
            .map_err(|_| format!("`{s}`: give a number of probes (20) or a share (1%)"))
    }
}

/// When a run fails.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    pub max_loss: Option<MaxLoss>,
    /// The longest lost span allowed.
    pub max_outage: Option<Duration>,
}

/// Each threshold the run broke, said in words.
pub fn breaches(r: &ProbeReport, t: &Thresholds) -> Vec<String> {
    let mut out = vec![];
    let pct = percent(r);
    match t.max_loss {
        Some(MaxLoss::Probes(n)) if r.lost > n => {
            out.push(format!("lost {} probes, more than --max-loss {n}", r.lost));
        }
        Some(MaxLoss::Percent(p)) if pct > p => {
            out.push(format!(
                "lost {pct:.2}% of probes, more than --max-loss {p}%"
            ));
        }
        _ => {}
    }
    if let Some(max) = t.max_outage {
        if r.longest_loss_span > max {
            out.push(format!(
                "longest outage {:.3} s, more than --max-outage {:.3} s",
                r.longest_loss_span.as_secs_f64(),
                max.as_secs_f64()
            ));
        }
    }
    out
}

fn percent(r: &ProbeReport) -> f64 {
    if r.sent == 0 {
        0.0
    } else {
        r.lost as f64 * 100.0 / r.sent as f64
    }
}

/// The lost spans, one a line, then the summary and any breach.
pub fn render_text(r: &ProbeReport, method: &str, started: SystemTime, t: &Thresholds) -> String {
    let mut s = String::new();
    let spans = r.loss_spans();
    for span in &spans {
        let _ = writeln!(
            s,
            "lost {} .. {}  {:>8.3} s  {} probes from #{}",
            utc(started + span.from),
            utc(started + span.until),
            span.length().as_secs_f64(),
            span.lost,
            span.first_seq
        );
    }
    let _ = writeln!(
        s,
        "{method} probe of {} at {} Hz from {} for {:.3} s: sent {}, lost {} ({:.2}%), {} lost span{}, longest outage {:.3} s{}",
        r.target,
        r.rate_hz,
        utc(started),
        r.sending.as_secs_f64(),
        r.sent,
        r.lost,
        percent(r),
        spans.len(),
        if spans.len() == 1 { "" } else { "s" },
        r.longest_loss_span.as_secs_f64(),
        match (r.rtt_min, r.rtt_avg, r.rtt_max) {
            (Some(a), Some(b), Some(c)) => format!(
                ", rtt min/avg/max {:.3}/{:.3}/{:.3} ms",
                a.as_secs_f64() * 1e3,
                b.as_secs_f64() * 1e3,
                c.as_secs_f64() * 1e3
            ),
            _ => String::new(),
        }
    );
    for b in breaches(r, t) {
        let _ = writeln!(s, "FAILED: {b}");
    }
    s
}

/// The same as one JSON object.
pub fn render_json(r: &ProbeReport, method: &str, started: SystemTime, t: &Thresholds) -> String {
    let spans: Vec<_> = r
        .loss_spans()
        .iter()
        .map(|span| {
            json!({
                "from": utc(started + span.from), "until": utc(started + span.until),
                "seconds": span.length().as_secs_f64(), "lost": span.lost, "first_seq": span.first_seq,
            })
        })
        .collect();
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let breaches = breaches(r, t);
    json!({
        "method": method, "target": r.target.to_string(), "rate_hz": r.rate_hz,
        "started": utc(started), "seconds": r.sending.as_secs_f64(),
        "sent": r.sent, "received": r.received, "lost": r.lost, "loss_percent": percent(r),
        "send_errors": r.send_errors, "skipped_ticks": r.skipped_ticks,
        "longest_outage_s": r.longest_loss_span.as_secs_f64(),
        "rtt_min_ms": ms(r.rtt_min), "rtt_avg_ms": ms(r.rtt_avg), "rtt_max_ms": ms(r.rtt_max),
        "lost_spans": spans, "passed": breaches.is_empty(), "breaches": breaches,
    })
    .to_string()
}

/// RFC 3339 UTC with milliseconds: `2026-12-08T00:15:02.123Z`.
pub fn utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_times_are_rfc3339_utc() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 (a leap day) 13:14:15.678.
        let t = UNIX_EPOCH + Duration::from_millis(1_709_212_455_678);
        assert_eq!(utc(t), "2024-02-29T13:14:15.678Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_675_200);
        assert_eq!(utc(t), "2026-12-31T00:00:00.000Z");
    }

    #[test]
    fn max_loss_parses_counts_and_shares() {
        assert_eq!("20".parse(), Ok(MaxLoss::Probes(20)));
        assert_eq!("0.5%".parse(), Ok(MaxLoss::Percent(0.5)));
        for bad in ["", "x", "-1", "101%", "1.5"] {
            assert!(bad.parse::<MaxLoss>().is_err(), "{bad}");
        }
    }
}
