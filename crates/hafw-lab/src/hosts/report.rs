//! What a probe run measured, computed from the raw sends and arrivals by a
//! pure function so the outage arithmetic is tested without sockets.
//!
//! Two outage measures, because they fail differently:
//! - the longest *loss run*: in send order, the most consecutive probes that
//!   were never answered, and the send-time span they cover. It locates an
//!   outage at the start or end of the run too, and does not depend on when
//!   replies happen to arrive.
//! - the longest *arrival gap*: the longest time between two consecutive
//!   first replies, as the client experienced it. It includes queueing and
//!   path delay changes, but sees only gaps between replies.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// One probe's fate. Times are relative to the run's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub seq: u64,
    pub sent_at: Duration,
    /// Round-trip time of the first reply; `None` if none came in time.
    pub rtt: Option<Duration>,
    /// The kernel refused to send it (no route, for example); counted lost.
    pub send_failed: bool,
    /// Replies received; more than one means duplicates.
    pub replies: u32,
}

/// A lost probe, to place an outage on the run's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossMark {
    pub seq: u64,
    pub sent_at: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub target: SocketAddr,
    pub rate_hz: u32,
    pub interval: Duration,
    /// From the start to the last send.
    pub sending: Duration,
    /// Probes attempted, including those the kernel refused to send.
    pub sent: u64,
    /// Probes answered at least once.
    pub received: u64,
    /// Probes never answered before the wait after the last send ran out.
    pub lost: u64,
    /// Extra replies to probes already answered.
    pub duplicates: u64,
    pub send_errors: u64,
    /// Schedule ticks dropped because the sender fell behind by more than a
    /// few intervals (the machine was busy); no probe exists for them.
    pub skipped_ticks: u64,
    /// Datagrams from an address other than the target, ignored.
    pub foreign: u64,
    /// Datagrams from the target that are not replies to this run's probes.
    pub malformed: u64,
    /// Most consecutive lost probes, in send order.
    pub longest_loss_run: u64,
    /// The first probe of that run.
    pub longest_loss_run_start: Option<LossMark>,
    /// Send-time span of that run: from its first probe to one interval past
    /// its last (so 100 lost probes at 1 ms span 100 ms).
    pub longest_loss_span: Duration,
    /// Longest time between consecutive first replies' arrivals.
    pub longest_arrival_gap: Duration,
    /// When that gap ended (the arrival that closed it).
    pub longest_arrival_gap_end: Option<Duration>,
    pub first_lost: Option<LossMark>,
    pub last_lost: Option<LossMark>,
    pub rtt_min: Option<Duration>,
    pub rtt_avg: Option<Duration>,
    pub rtt_max: Option<Duration>,
    /// The distinct source addresses the echo host reported seeing, in order
    /// of first appearance (a change shows a NAT moved).
    pub seen: Vec<SocketAddr>,
    /// Every probe, for a timeline.
    pub probes: Vec<ProbeResult>,
}

/// A probe as the sender recorded it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub at: Duration,
    pub failed: bool,
}

/// A well-formed reply to this run, as the receiver recorded it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    pub seq: u64,
    /// The send time the probe carried, checked against the sender's record.
    pub sent_ns: u64,
    pub at: Duration,
    pub seen: SocketAddr,
}

pub(crate) struct Raw {
    pub target: SocketAddr,
    pub rate_hz: u32,
    pub interval: Duration,
    pub sends: Vec<Sent>,
    /// In arrival order.
    pub arrivals: Vec<Arrival>,
    pub skipped_ticks: u64,
    pub foreign: u64,
    pub malformed: u64,
}

/// At most this many distinct seen addresses are kept.
const MAX_SEEN: usize = 16;

impl ProbeReport {
    pub(crate) fn analyze(raw: Raw) -> ProbeReport {
        let mut probes: Vec<ProbeResult> = raw
            .sends
            .iter()
            .zip(0..)
            .map(|(s, seq)| ProbeResult {
                seq,
                sent_at: s.at,
                rtt: None,
                send_failed: s.failed,
                replies: 0,
            })
            .collect();
        let mut malformed = raw.malformed;
        let mut duplicates = 0;
        let mut seen = Vec::new();
        let mut first_arrivals = Vec::new();
        for a in &raw.arrivals {
            let probe = usize::try_from(a.seq).ok().and_then(|i| probes.get_mut(i));
            // A probe number we never sent, or a send time that is not the
            // one we sent with: not a reply to this run.
            let Some(probe) = probe.filter(|p| p.sent_at.as_nanos() == u128::from(a.sent_ns))
            else {
                malformed += 1;
                continue;
            };
            probe.replies += 1;
            if probe.replies > 1 {
                duplicates += 1;
                continue;
            }
            probe.rtt = Some(a.at.saturating_sub(probe.sent_at));
            first_arrivals.push(a.at);
            if !seen.contains(&a.seen) && seen.len() < MAX_SEEN {
                seen.push(a.seen);
            }
        }
        let sent = probes.len() as u64;
        let received = probes.iter().filter(|p| p.replies > 0).count() as u64;
        let lost_marks: Vec<LossMark> = probes
            .iter()
            .filter(|p| p.rtt.is_none())
            .map(|p| LossMark {
                seq: p.seq,
                sent_at: p.sent_at,
            })
            .collect();
        let (longest_loss_run, longest_loss_run_start, longest_loss_span) =
            longest_run(&lost_marks, raw.interval);
        let (longest_arrival_gap, longest_arrival_gap_end) = longest_gap(&first_arrivals);
        let rtts: Vec<Duration> = probes.iter().filter_map(|p| p.rtt).collect();
        let rtt_avg = u32::try_from(rtts.len())
            .ok()
            .filter(|&n| n > 0)
            .map(|n| rtts.iter().sum::<Duration>() / n);
        ProbeReport {
            target: raw.target,
            rate_hz: raw.rate_hz,
            interval: raw.interval,
            sending: raw.sends.last().map_or(Duration::ZERO, |s| s.at),
            sent,
            received,
            lost: sent - received,
            duplicates,
            send_errors: raw.sends.iter().filter(|s| s.failed).count() as u64,
            skipped_ticks: raw.skipped_ticks,
            foreign: raw.foreign,
            malformed,
            longest_loss_run,
            longest_loss_run_start,
            longest_loss_span,
            longest_arrival_gap,
            longest_arrival_gap_end,
            first_lost: lost_marks.first().copied(),
            last_lost: lost_marks.last().copied(),
            rtt_min: rtts.iter().min().copied(),
            rtt_avg,
            rtt_max: rtts.iter().max().copied(),
            seen,
            probes,
        }
    }

    /// The summary (not the per-probe list) as one JSON object; durations in
    /// milliseconds, absent values as null.
    pub fn to_json(&self) -> String {
        let mark = |m: Option<LossMark>| match m {
            Some(m) => format!("{{\"seq\":{},\"sent_at_ms\":{}}}", m.seq, ms(m.sent_at)),
            None => "null".into(),
        };
        let opt_ms = |d: Option<Duration>| d.map_or("null".into(), ms);
        let seen: Vec<String> = self.seen.iter().map(|a| format!("\"{a}\"")).collect();
        format!(
            "{{\"target\":\"{}\",\"rate_hz\":{},\"interval_ms\":{},\"sending_ms\":{},\"sent\":{},\
             \"received\":{},\"lost\":{},\"duplicates\":{},\"send_errors\":{},\"skipped_ticks\":{},\
             \"foreign\":{},\"malformed\":{},\"longest_loss_run\":{},\"longest_loss_run_start\":{},\
             \"longest_loss_span_ms\":{},\"longest_arrival_gap_ms\":{},\
             \"longest_arrival_gap_end_ms\":{},\"first_lost\":{},\"last_lost\":{},\"rtt_min_ms\":{},\
             \"rtt_avg_ms\":{},\"rtt_max_ms\":{},\"seen\":[{}]}}",
            self.target,
            self.rate_hz,
            ms(self.interval),
            ms(self.sending),
            self.sent,
            self.received,
            self.lost,
            self.duplicates,
            self.send_errors,
            self.skipped_ticks,
            self.foreign,
            self.malformed,
            self.longest_loss_run,
            mark(self.longest_loss_run_start),
            ms(self.longest_loss_span),
            ms(self.longest_arrival_gap),
            opt_ms(self.longest_arrival_gap_end),
            mark(self.first_lost),
            mark(self.last_lost),
            opt_ms(self.rtt_min),
            opt_ms(self.rtt_avg),
            opt_ms(self.rtt_max),
            seen.join(","),
        )
    }
}

/// A run of consecutive lost probes: an outage as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossSpan {
    pub first_seq: u64,
    pub lost: u64,
    /// Send time of its first probe, from the run's start.
    pub from: Duration,
    /// One interval past its last probe's send time (so 100 lost probes at
    /// 1 ms span 100 ms).
    pub until: Duration,
}

impl LossSpan {
    pub fn length(&self) -> Duration {
        self.until.saturating_sub(self.from)
    }
}

impl ProbeReport {
    /// Every run of consecutive lost probes, in send order.
    pub fn loss_spans(&self) -> Vec<LossSpan> {
        let mut spans: Vec<LossSpan> = vec![];
        for p in self.probes.iter().filter(|p| p.rtt.is_none()) {
            match spans.last_mut() {
                Some(s) if s.first_seq + s.lost == p.seq => {
                    s.lost += 1;
                    s.until = p.sent_at + self.interval;
                }
                _ => spans.push(LossSpan {
                    first_seq: p.seq,
                    lost: 1,
                    from: p.sent_at,
                    until: p.sent_at + self.interval,
                }),
            }
        }
        spans
    }
}

/// The longest run of consecutive sequence numbers in `lost` (ascending):
/// its length, first probe and send-time span.
fn longest_run(lost: &[LossMark], interval: Duration) -> (u64, Option<LossMark>, Duration) {
    let mut best = (0, None, Duration::ZERO);
    let mut i = 0;
    while i < lost.len() {
        let mut j = i;
        while j + 1 < lost.len() && lost[j + 1].seq == lost[j].seq + 1 {
            j += 1;
        }
        let len = (j - i + 1) as u64;
        if len > best.0 {
            best = (
                len,
                Some(lost[i]),
                lost[j].sent_at.saturating_sub(lost[i].sent_at) + interval,
            );
        }
        i = j + 1;
    }
    best
}

/// The longest gap between consecutive times (ascending) and when it ended.
fn longest_gap(times: &[Duration]) -> (Duration, Option<Duration>) {
    times
        .windows(2)
        .map(|w| (w[1].saturating_sub(w[0]), Some(w[1])))
        .max_by_key(|(gap, _)| *gap)
        .unwrap_or((Duration::ZERO, None))
}

/// Milliseconds with microsecond precision.
fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = if self.sent == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / self.sent as f64
        };
        write!(
            f,
            "probe {} at {} Hz for {:.3} s: sent {}, received {}, lost {} ({pct:.2}%), \
             longest loss run {} ({} ms), longest arrival gap {} ms",
            self.target,
            self.rate_hz,
            self.sending.as_secs_f64(),
            self.sent,
            self.received,
            self.lost,
            self.longest_loss_run,
            ms(self.longest_loss_span),
            ms(self.longest_arrival_gap),
        )?;
        if let (Some(a), Some(b)) = (self.first_lost, self.last_lost) {
            write!(
                f,
                ", lost #{} at {} ms .. #{} at {} ms",
                a.seq,
                ms(a.sent_at),
                b.seq,
                ms(b.sent_at)
            )?;
        }
        if let (Some(min), Some(avg), Some(max)) = (self.rtt_min, self.rtt_avg, self.rtt_max) {
            write!(
                f,
                ", rtt min/avg/max {}/{}/{} ms",
                ms(min),
                ms(avg),
                ms(max)
            )?;
        }
        for (name, n) in [
            ("duplicates", self.duplicates),
            ("send errors", self.send_errors),
            ("skipped ticks", self.skipped_ticks),
            ("foreign", self.foreign),
            ("malformed", self.malformed),
        ] {
            if n > 0 {
                write!(f, ", {name} {n}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn target() -> SocketAddr {
        "192.0.2.1:7".parse().unwrap()
    }

    /// `n` probes sent 1 ms apart; each `Some(rtt_ms)` is answered once.
    fn raw(answers: &[Option<u64>]) -> Raw {
        let sends: Vec<Sent> = (0..answers.len())
            .map(|i| Sent {
                at: MS * i as u32,
                failed: false,
            })
            .collect();
        let mut arrivals: Vec<Arrival> = answers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                a.map(|rtt| Arrival {
                    seq: i as u64,
                    sent_ns: (MS * i as u32).as_nanos() as u64,
                    at: MS * i as u32 + MS * rtt as u32,
                    seen: "203.0.113.5:4000".parse().unwrap(),
                })
            })
            .collect();
        arrivals.sort_by_key(|a| a.at);
        Raw {
            target: target(),
            rate_hz: 1000,
            interval: MS,
            sends,
            arrivals,
            skipped_ticks: 0,
            foreign: 0,
            malformed: 0,
        }
    }

    #[test]
    fn a_clean_run_has_no_loss() {
        let r = ProbeReport::analyze(raw(&[Some(1); 10]));
        assert_eq!((r.sent, r.received, r.lost, r.duplicates), (10, 10, 0, 0));
        assert_eq!(
            (r.longest_loss_run, r.longest_loss_span, r.first_lost),
            (0, Duration::ZERO, None)
        );
        assert_eq!(r.longest_arrival_gap, MS);
        assert_eq!((r.rtt_min, r.rtt_max), (Some(MS), Some(MS)));
        assert_eq!(r.seen, vec!["203.0.113.5:4000".parse().unwrap()]);
    }

    #[test]
    fn the_longest_run_and_gap_locate_the_outage() {
        // Probes 2 and 6..=9 lost: runs of 1 and 4.
        let mut answers = vec![Some(1); 12];
        answers[2] = None;
        for a in &mut answers[6..10] {
            *a = None;
        }
        let r = ProbeReport::analyze(raw(&answers));
        assert_eq!((r.sent, r.received, r.lost), (12, 7, 5));
        assert_eq!(r.longest_loss_run, 4);
        assert_eq!(
            r.longest_loss_run_start,
            Some(LossMark {
                seq: 6,
                sent_at: MS * 6
            })
        );
        assert_eq!(r.longest_loss_span, MS * 4);
        assert_eq!(
            r.first_lost,
            Some(LossMark {
                seq: 2,
                sent_at: MS * 2
            })
        );
        assert_eq!(
            r.last_lost,
            Some(LossMark {
                seq: 9,
                sent_at: MS * 9
            })
        );
        // Replies to 5 and 10 arrive at 6 ms and 11 ms.
        assert_eq!(
            (r.longest_arrival_gap, r.longest_arrival_gap_end),
            (MS * 5, Some(MS * 11))
        );
    }

    #[test]
    fn loss_spans_are_each_run_of_lost_probes() {
        let mut answers = vec![Some(1); 12];
        answers[2] = None;
        for a in &mut answers[6..10] {
            *a = None;
        }
        let spans = ProbeReport::analyze(raw(&answers)).loss_spans();
        assert_eq!(
            spans,
            vec![
                LossSpan {
                    first_seq: 2,
                    lost: 1,
                    from: MS * 2,
                    until: MS * 3
                },
                LossSpan {
                    first_seq: 6,
                    lost: 4,
                    from: MS * 6,
                    until: MS * 10
                },
            ]
        );
        assert_eq!(spans[1].length(), MS * 4);
        assert!(ProbeReport::analyze(raw(&[Some(1); 3]))
            .loss_spans()
            .is_empty());
    }

    #[test]
    fn loss_at_the_end_shows_in_the_run_only() {
        let r = ProbeReport::analyze(raw(&[Some(0), Some(0), None, None, None]));
        assert_eq!((r.longest_loss_run, r.longest_loss_span), (3, MS * 3));
        assert_eq!(r.longest_arrival_gap, MS);
    }

    #[test]
    fn duplicates_and_forged_replies_are_counted_not_received() {
        let mut raw = raw(&[Some(1), None, Some(1)]);
        let dup = raw.arrivals[0];
        raw.arrivals.push(dup);
        // A reply naming probe 1 with a send time it was not sent at.
        raw.arrivals.push(Arrival {
            seq: 1,
            sent_ns: 12345,
            ..dup
        });
        // A reply naming a probe never sent.
        raw.arrivals.push(Arrival { seq: 99, ..dup });
        raw.sends[1].failed = true;
        let r = ProbeReport::analyze(raw);
        assert_eq!(
            (r.received, r.lost, r.duplicates, r.malformed, r.send_errors),
            (2, 1, 1, 2, 1)
        );
        assert_eq!(r.probes[0].replies, 2);
        assert!(r.probes[1].send_failed);
    }

    #[test]
    fn renders_a_summary_line_and_json() {
        let r = ProbeReport::analyze(raw(&[Some(1), None, Some(2)]));
        let line = r.to_string();
        assert!(
            line.starts_with(
                "probe 192.0.2.1:7 at 1000 Hz for 0.002 s: sent 3, received 2, lost 1 (33.33%)"
            ),
            "{line}"
        );
        assert!(
            line.contains("lost #1 at 1.000 ms .. #1 at 1.000 ms"),
            "{line}"
        );
        assert!(
            line.contains("rtt min/avg/max 1.000/1.500/2.000 ms"),
            "{line}"
        );
        let json = r.to_json();
        assert!(
            json.starts_with("{\"target\":\"192.0.2.1:7\",\"rate_hz\":1000,"),
            "{json}"
        );
        assert!(json.contains("\"lost\":1,"), "{json}");
        assert!(
            json.contains("\"first_lost\":{\"seq\":1,\"sent_at_ms\":1.000}"),
            "{json}"
        );
        assert!(json.contains("\"seen\":[\"203.0.113.5:4000\"]}"), "{json}");
        assert_eq!(json.matches('{').count(), json.matches('}').count());
    }
}
