//! The monitors' verdicts: link groups (`policy.ha.link_monitor`), path
//! monitors (`policy.ha.path_monitor`) and their combination into the one
//! healthy/unhealthy verdict the HA node is told
//! ([`crate::node::Node::handle_monitor`]). A pure core: the daemon polls
//! carrier and sends echo probes, hands the results in, and carries out
//! what comes back (tell the node, restore routes on a link).
//!
//! # Rules
//! - A group fails when any (or all, [`Rule`]) of its members is down. An
//!   interface never polled is down: a group naming a device the node does
//!   not have cannot be healthy.
//! - A failed carrier query ([`Link::Unknown`]) keeps the interface's last
//!   state (up before the first answer).
//! - The verdict is reported only when it changed (healthy or the reason),
//!   and never without a monitor: with none the node is healthy by
//!   definition.
//! - An interface going from down to up gets its routes restored; its first
//!   state seen restores nothing (start-up applied the routes).
//! - A path monitor's target fails after `misses` unanswered rounds in a
//!   row ([`PathCheck`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

/// When a group of members (interfaces of a link group, targets of a path
/// monitor) fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Any member down fails the group.
    Any,
    /// Only all members down fail the group.
    All,
}

impl Rule {
    pub fn fails(self, down: usize, members: usize) -> bool {
        match self {
            Rule::Any => down > 0,
            Rule::All => down == members,
        }
    }
}

/// A link group: interface names and when the group fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkGroup {
    pub interfaces: Vec<String>,
    pub rule: Rule,
}

/// One interface's carrier as one poll saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Up,
    Down,
    /// The query failed. Not a link going down: on a loaded machine a
    /// netlink query can fail, and that must not make the node
    /// non-functional. The last known state stands (up if none).
    Unknown,
}

/// The combined verdict, as the HA node takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub healthy: bool,
    /// What fails, `; `-separated; empty when healthy.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorAction {
    /// Tell the HA node: the verdict changed.
    Report(Verdict),
    /// `ifname` came back up: put the plan's routes on it back. The kernel
    /// deletes a route whose link went down, and a node that takes over
    /// again without its default route would black-hole traffic.
    RestoreRoutes { ifname: String },
}

/// The link groups and path monitors of one node.
#[derive(Debug, Clone)]
pub struct Monitors {
    groups: Vec<LinkGroup>,
    /// The last known carrier of every polled interface.
    links: BTreeMap<String, bool>,
    /// Each path monitor's verdict: `None` while healthy, else why it fails.
    paths: Vec<Option<String>>,
    last: Option<Verdict>,
    actions: VecDeque<MonitorAction>,
}

impl Monitors {
    /// `paths` path monitors, numbered `0..paths` in [`Monitors::handle_path`].
    pub fn new(groups: Vec<LinkGroup>, paths: usize) -> Monitors {
        Monitors {
            groups,
            links: BTreeMap::new(),
            paths: vec![None; paths],
            last: None,
            actions: VecDeque::new(),
        }
    }

    /// Path monitor `index`'s current verdict. Combined into the verdict at
    /// the next link poll, the monitors' one tick.
    pub fn handle_path(&mut self, index: usize, failing: Option<&str>) {
        if let Some(slot) = self.paths.get_mut(index) {
            if slot.as_deref() != failing {
                *slot = failing.map(str::to_owned);
            }
        }
    }

    /// One poll of every interface's carrier: restores routes on links
    /// that came back, then reports the combined verdict if it changed.
    pub fn handle_links<'a>(&mut self, poll: impl IntoIterator<Item = (&'a str, Link)>) {
        for (ifname, seen) in poll {
            let before = self.links.get(ifname).copied();
            let up = match seen {
                Link::Up => true,
                Link::Down => false,
                Link::Unknown => before.unwrap_or(true),
            };
            if up && before == Some(false) {
                self.actions.push_back(MonitorAction::RestoreRoutes {
                    ifname: ifname.to_owned(),
                });
            }
            match self.links.get_mut(ifname) {
                Some(v) => *v = up,
                None => {
                    self.links.insert(ifname.to_owned(), up);
                }
            }
        }
        self.evaluate();
    }

    pub fn poll_action(&mut self) -> Option<MonitorAction> {
        self.actions.pop_front()
    }

    fn evaluate(&mut self) {
        if self.groups.is_empty() && self.paths.is_empty() {
            // Nothing monitored: the node's own default (healthy) stands.
            return;
        }
        let mut failing = vec![];
        for g in &self.groups {
            // An interface never polled counts as down: it is not there.
            let down: Vec<&str> = (g.interfaces.iter())
                .map(String::as_str)
                .filter(|n| self.links.get(*n) != Some(&true))
                .collect();
            if g.rule.fails(down.len(), g.interfaces.len()) {
                failing.push(format!("link down: {}", down.join(", ")));
            }
        }
        failing.extend(self.paths.iter().flatten().cloned());
        let verdict = Verdict {
            healthy: failing.is_empty(),
            reason: failing.join("; "),
        };
        if self.last.as_ref() != Some(&verdict) {
            self.actions
                .push_back(MonitorAction::Report(verdict.clone()));
            self.last = Some(verdict);
        }
    }
}

/// A path monitor's targets: a target fails after `misses` probe rounds in
/// a row without its answer; the group fails by its [`Rule`].
#[derive(Debug, Clone)]
pub struct PathCheck {
    name: String,
    via: String,
    targets: Vec<Ipv4Addr>,
    rule: Rule,
    misses: u32,
    missed: Vec<u32>,
}

impl PathCheck {
    /// `misses` below 1 is taken as 1: a target fails on its first
    /// unanswered round at the soonest.
    pub fn new(name: &str, via: &str, targets: Vec<Ipv4Addr>, rule: Rule, misses: u32) -> Self {
        PathCheck {
            name: name.to_owned(),
            via: via.to_owned(),
            missed: vec![0; targets.len()],
            targets,
            rule,
            misses: misses.max(1),
        }
    }

    pub fn targets(&self) -> &[Ipv4Addr] {
        &self.targets
    }

    /// A probe round ended; `answered[i]` says whether target `i` replied.
    /// Returns the group's verdict: `None` while healthy, else why it fails.
    pub fn handle_round(&mut self, answered: &[bool]) -> Option<String> {
        for (i, m) in self.missed.iter_mut().enumerate() {
            *m = if answered.get(i).copied().unwrap_or(false) {
                0
            } else {
                m.saturating_add(1)
            };
        }
        let failed: Vec<String> = (self.targets.iter().zip(&self.missed))
            .filter(|(_, m)| **m >= self.misses)
            .map(|(t, _)| t.to_string())
            .collect();
        self.rule.fails(failed.len(), self.targets.len()).then(|| {
            format!(
                "path {} via {} failed: no answer from {}",
                self.name,
                self.via,
                failed.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(names: &[&str], rule: Rule) -> LinkGroup {
        LinkGroup {
            interfaces: names.iter().map(|n| n.to_string()).collect(),
            rule,
        }
    }

    fn drain(m: &mut Monitors) -> Vec<MonitorAction> {
        std::iter::from_fn(|| m.poll_action()).collect()
    }

    fn reports(actions: &[MonitorAction]) -> Vec<Verdict> {
        (actions.iter())
            .filter_map(|a| match a {
                MonitorAction::Report(v) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    fn healthy() -> Verdict {
        Verdict {
            healthy: true,
            reason: String::new(),
        }
    }

    fn failing(reason: &str) -> Verdict {
        Verdict {
            healthy: false,
            reason: reason.into(),
        }
    }

    #[test]
    fn any_fails_on_one_member_down() {
        let mut m = Monitors::new(vec![group(&["a", "b"], Rule::Any)], 0);
        m.handle_links([("a", Link::Up), ("b", Link::Down)]);
        assert_eq!(reports(&drain(&mut m)), [failing("link down: b")]);
    }

    #[test]
    fn all_fails_only_when_every_member_is_down() {
        let mut m = Monitors::new(vec![group(&["a", "b"], Rule::All)], 0);
        m.handle_links([("a", Link::Up), ("b", Link::Down)]);
        assert_eq!(reports(&drain(&mut m)), [healthy()]);
        m.handle_links([("a", Link::Down), ("b", Link::Down)]);
        assert_eq!(reports(&drain(&mut m)), [failing("link down: a, b")]);
    }

    #[test]
    fn an_interface_never_polled_counts_as_down() {
        let mut m = Monitors::new(vec![group(&["a", "gone"], Rule::Any)], 0);
        m.handle_links([("a", Link::Up)]);
        assert_eq!(reports(&drain(&mut m)), [failing("link down: gone")]);
    }

    #[test]
    fn a_failed_query_keeps_the_last_state() {
        let mut m = Monitors::new(vec![group(&["a"], Rule::Any)], 0);
        // Nothing known yet: a failed query is no link going down.
        m.handle_links([("a", Link::Unknown)]);
        assert_eq!(reports(&drain(&mut m)), [healthy()]);
        m.handle_links([("a", Link::Down)]);
        assert_eq!(reports(&drain(&mut m)), [failing("link down: a")]);
        // Down stays down through a failed query, and is no "back up".
        m.handle_links([("a", Link::Unknown)]);
        assert_eq!(drain(&mut m), []);
        m.handle_links([("a", Link::Up)]);
        let actions = drain(&mut m);
        assert_eq!(reports(&actions), [healthy()]);
        assert!(actions.contains(&MonitorAction::RestoreRoutes { ifname: "a".into() }));
    }

    #[test]
    fn an_unchanged_verdict_is_not_reported_again() {
        let mut m = Monitors::new(vec![group(&["a"], Rule::Any)], 1);
        m.handle_links([("a", Link::Up)]);
        assert_eq!(reports(&drain(&mut m)), [healthy()]);
        for _ in 0..3 {
            m.handle_links([("a", Link::Up)]);
            m.handle_path(0, None);
        }
        assert_eq!(drain(&mut m), []);
        // The same failure with another reason is a change.
        m.handle_path(0, Some("path p failed: 10.0.0.1"));
        m.handle_links([("a", Link::Up)]);
        m.handle_path(0, Some("path p failed: 10.0.0.2"));
        m.handle_links([("a", Link::Up)]);
        assert_eq!(reports(&drain(&mut m)).len(), 2);
    }

    #[test]
    fn nothing_is_reported_without_monitors() {
        let mut m = Monitors::new(vec![], 0);
        m.handle_links([("a", Link::Down)]);
        m.handle_links([("a", Link::Up)]);
        assert_eq!(reports(&drain(&mut m)), []);
    }

    #[test]
    fn routes_are_restored_only_on_down_to_up() {
        let mut m = Monitors::new(vec![], 0);
        m.handle_links([("a", Link::Up), ("b", Link::Down)]);
        assert_eq!(drain(&mut m), [], "first sight is no change");
        m.handle_links([("a", Link::Up), ("b", Link::Down)]);
        assert_eq!(drain(&mut m), []);
        m.handle_links([("a", Link::Down), ("b", Link::Up)]);
        assert_eq!(
            drain(&mut m),
            [MonitorAction::RestoreRoutes { ifname: "b".into() }]
        );
        m.handle_links([("a", Link::Up), ("b", Link::Up)]);
        assert_eq!(
            drain(&mut m),
            [MonitorAction::RestoreRoutes { ifname: "a".into() }]
        );
    }

    #[test]
    fn path_verdicts_join_the_link_verdict_at_the_next_poll() {
        let mut m = Monitors::new(vec![group(&["a"], Rule::Any)], 2);
        m.handle_links([("a", Link::Down)]);
        drain(&mut m);
        m.handle_path(1, Some("path p via b failed"));
        assert_eq!(drain(&mut m), [], "combined at the poll");
        m.handle_links([("a", Link::Down)]);
        assert_eq!(
            reports(&drain(&mut m)),
            [failing("link down: a; path p via b failed")]
        );
        m.handle_path(1, None);
        m.handle_path(7, Some("no such monitor"));
        m.handle_links([("a", Link::Up)]);
        assert_eq!(reports(&drain(&mut m)), [healthy()]);
    }

    #[test]
    fn path_monitors_alone_are_reported() {
        let mut m = Monitors::new(vec![], 1);
        m.handle_links([]);
        assert_eq!(reports(&drain(&mut m)), [healthy()]);
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    #[test]
    fn a_target_fails_after_misses_rounds_in_a_row() {
        let mut p = PathCheck::new("up", "eth1", vec![ip(1), ip(2)], Rule::Any, 3);
        assert_eq!(p.handle_round(&[true, false]), None);
        assert_eq!(p.handle_round(&[true, false]), None);
        // An answer resets the count.
        assert_eq!(p.handle_round(&[false, true]), None);
        for _ in 0..2 {
            assert_eq!(p.handle_round(&[true, false]), None);
        }
        assert_eq!(
            p.handle_round(&[true, false]).as_deref(),
            Some("path up via eth1 failed: no answer from 10.0.0.2")
        );
        assert_eq!(p.handle_round(&[true, true]), None);
    }

    #[test]
    fn a_path_monitor_with_all_fails_only_when_every_target_fails() {
        let mut p = PathCheck::new("up", "eth1", vec![ip(1), ip(2)], Rule::All, 1);
        assert_eq!(p.handle_round(&[true, false]), None);
        assert_eq!(
            p.handle_round(&[false, false]).as_deref(),
            Some("path up via eth1 failed: no answer from 10.0.0.1, 10.0.0.2")
        );
    }

    #[test]
    fn zero_misses_is_taken_as_one() {
        let mut p = PathCheck::new("up", "eth1", vec![ip(1)], Rule::Any, 0);
        assert_eq!(p.handle_round(&[true]), None);
        assert!(p.handle_round(&[]).is_some(), "a missing answer is a miss");
    }
}
