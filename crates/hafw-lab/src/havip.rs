//! The HAVIP controller's core: which member owns each HAVIP, given the ARP
//! announcements the VPC sees. Pure: announcements and time in, moves out.
//!
//! The cloud's rules (alicloud-havip.md, "How the VPC delivers traffic"):
//! ownership moves when an associated member announces the HAVIP's IP with a
//! (gratuitous) ARP; non-members are ignored; ownership sticks while the owner
//! is silent; if both members announce, the latest announcement wins. A
//! per-HAVIP delay models a slower cloud: the move lands that long after the
//! announcement, unless a later announcement supersedes it.

use std::time::Duration;

use crate::topology::HavipSpec;

/// An ARP packet seen on the VPC end of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The ENI the packet came from.
    pub eni: String,
    pub sender_ip: std::net::Ipv4Addr,
    pub target_ip: std::net::Ipv4Addr,
    pub is_reply: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ownership moves now.
    Move {
        havip: String,
        from: Option<String>,
        to: String,
    },
    /// A member announced; the move lands at `due`.
    Scheduled {
        havip: String,
        to: String,
        due: Duration,
    },
    /// The announcer already owns the HAVIP.
    Refresh { havip: String },
    /// Someone other than a member announced the HAVIP's IP.
    NonMember { havip: String, eni: String },
    /// Not an announcement of any HAVIP.
    Unrelated,
}

struct Entry {
    spec: HavipSpec,
    owner: Option<String>,
    pending: Option<(String, Duration)>,
}

pub struct Controller {
    entries: Vec<Entry>,
    pub non_member: u64,
}

impl Controller {
    pub fn new(specs: &[HavipSpec]) -> Self {
        Controller {
            entries: specs
                .iter()
                .map(|s| Entry {
                    spec: s.clone(),
                    owner: None,
                    pending: None,
                })
                .collect(),
            non_member: 0,
        }
    }

    pub fn owner(&self, havip: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.spec.name == havip)
            .and_then(|e| e.owner.as_deref())
    }

    /// An announcement is a request or reply whose sender address is the
    /// HAVIP's (a gratuitous request has target == sender; a reply claims the
    /// sender address either way).
    pub fn handle_arp(&mut self, now: Duration, a: &Announcement) -> Verdict {
        let gratuitous = a.is_reply || a.sender_ip == a.target_ip;
        let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.spec.ip.0 == a.sender_ip && gratuitous)
        else {
            return Verdict::Unrelated;
        };
        let havip = e.spec.name.clone();
        if !e.spec.members.contains(&a.eni) {
            self.non_member += 1;
            return Verdict::NonMember {
                havip,
                eni: a.eni.clone(),
            };
        }
        if e.owner.as_deref() == Some(a.eni.as_str()) {
            // A later announcement by the owner cancels a pending move away.
            e.pending = None;
            return Verdict::Refresh { havip };
        }
        if e.spec.move_delay_ms == 0 {
            e.pending = None;
            let from = e.owner.replace(a.eni.clone());
            return Verdict::Move {
                havip,
                from,
                to: a.eni.clone(),
            };
        }
        // The move takes its time from the first announcement: the
        // gratuitous ARPs a node repeats on takeover do not restart it.
        if e.pending.as_ref().is_some_and(|(to, _)| *to == a.eni) {
            return Verdict::Refresh { havip };
        }
        let due = now + Duration::from_millis(u64::from(e.spec.move_delay_ms));
        e.pending = Some((a.eni.clone(), due));
        Verdict::Scheduled {
            havip,
            to: a.eni.clone(),
            due,
        }
    }

    /// Moves whose delay has run out by `now`.
    pub fn handle_timeout(&mut self, now: Duration) -> Vec<Verdict> {
        let mut out = vec![];
        for e in &mut self.entries {
            if let Some((to, due)) = e.pending.clone() {
                if due <= now {
                    e.pending = None;
                    let from = e.owner.replace(to.clone());
                    out.push(Verdict::Move {
                        havip: e.spec.name.clone(),
                        from,
                        to,
                    });
                }
            }
        }
        out
    }

    pub fn next_timeout(&self) -> Option<Duration> {
        self.entries
            .iter()
            .filter_map(|e| e.pending.as_ref().map(|p| p.1))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(delay: u32) -> HavipSpec {
        HavipSpec {
            name: "external".into(),
            ip: "10.0.1.100".parse().unwrap(),
            members: vec!["a".into(), "b".into()],
            entries: vec![],
            move_delay_ms: delay,
        }
    }

    fn garp(eni: &str) -> Announcement {
        let ip = "10.0.1.100".parse().unwrap();
        Announcement {
            eni: eni.into(),
            sender_ip: ip,
            target_ip: ip,
            is_reply: false,
        }
    }

    const T0: Duration = Duration::from_millis(0);

    #[test]
    fn a_member_announcement_moves_ownership() {
        let mut c = Controller::new(&[spec(0)]);
        assert_eq!(
            c.handle_arp(T0, &garp("a")),
            Verdict::Move {
                havip: "external".into(),
                from: None,
                to: "a".into()
            }
        );
        assert_eq!(c.owner("external"), Some("a"));
    }

    #[test]
    fn a_non_member_is_ignored_and_counted() {
        let mut c = Controller::new(&[spec(0)]);
        c.handle_arp(T0, &garp("a"));
        assert!(matches!(
            c.handle_arp(T0, &garp("x")),
            Verdict::NonMember { .. }
        ));
        assert_eq!(c.owner("external"), Some("a"));
        assert_eq!(c.non_member, 1);
    }

    #[test]
    fn an_ordinary_request_for_the_havip_is_not_an_announcement() {
        let mut c = Controller::new(&[spec(0)]);
        let ask = Announcement {
            eni: "a".into(),
            sender_ip: "10.0.1.11".parse().unwrap(),
            target_ip: "10.0.1.100".parse().unwrap(),
            is_reply: false,
        };
        assert_eq!(c.handle_arp(T0, &ask), Verdict::Unrelated);
        assert_eq!(c.owner("external"), None);
    }

    #[test]
    fn latest_announcement_wins_and_ownership_sticks() {
        let mut c = Controller::new(&[spec(0)]);
        c.handle_arp(T0, &garp("a"));
        c.handle_arp(T0, &garp("b"));
        assert_eq!(c.owner("external"), Some("b"));
        // Silence changes nothing.
        assert!(c.handle_timeout(Duration::from_secs(3600)).is_empty());
        assert_eq!(c.owner("external"), Some("b"));
        assert_eq!(
            c.handle_arp(T0, &garp("a")),
            Verdict::Move {
                havip: "external".into(),
                from: Some("b".into()),
                to: "a".into()
            }
        );
    }

    #[test]
    fn a_delay_holds_the_move_until_due() {
        let mut c = Controller::new(&[spec(50)]);
        c.handle_arp(T0, &garp("a"));
        assert_eq!(c.next_timeout(), Some(Duration::from_millis(50)));
        assert!(c.handle_timeout(Duration::from_millis(49)).is_empty());
        assert_eq!(c.owner("external"), None);
        let moved = c.handle_timeout(Duration::from_millis(50));
        assert_eq!(moved.len(), 1);
        assert_eq!(c.owner("external"), Some("a"));
    }

    #[test]
    fn repeated_announcements_do_not_restart_the_delay() {
        let mut c = Controller::new(&[spec(50)]);
        assert!(matches!(
            c.handle_arp(T0, &garp("a")),
            Verdict::Scheduled { .. }
        ));
        assert_eq!(
            c.handle_arp(Duration::from_millis(30), &garp("a")),
            Verdict::Refresh {
                havip: "external".into()
            }
        );
        assert_eq!(c.next_timeout(), Some(Duration::from_millis(50)));
        assert_eq!(c.handle_timeout(Duration::from_millis(50)).len(), 1);
        assert_eq!(c.owner("external"), Some("a"));
    }

    #[test]
    fn a_later_announcement_supersedes_a_pending_move() {
        let mut c = Controller::new(&[spec(50)]);
        c.handle_arp(T0, &garp("a"));
        c.handle_timeout(Duration::from_millis(50));
        c.handle_arp(Duration::from_millis(60), &garp("b"));
        // The owner speaks again before b's move lands: b's move is cancelled.
        c.handle_arp(Duration::from_millis(70), &garp("a"));
        assert!(c.handle_timeout(Duration::from_millis(200)).is_empty());
        assert_eq!(c.owner("external"), Some("a"));
    }
}
