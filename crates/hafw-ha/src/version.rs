//! Protocol versions and their per-peer negotiation, for rolling upgrades.
//!
//! Every envelope's version byte is the protocol version of that message.
//! A node accepts every version from [`PROTOCOL_MIN`] to its own maximum
//! and speaks to its peer the highest one both know: the lower of the two
//! maxima, never below [`PROTOCOL_MIN`]. From version 3 on, heartbeats
//! carry an [`Advert`]: the sender's software version, its maximum protocol
//! and its policy schema. Version 2 (the format before negotiation) carries
//! none, so a version 2 message says only "my maximum may be 2".
//!
//! [`Negotiation`] is the pure core: it takes what authentic messages
//! showed ([`Negotiation::heard`]) and the time, and says which version to
//! seal with ([`Negotiation::speak_at`]). It starts at our maximum, steps
//! down once an authentic message shows the peer's maximum is lower, and
//! up when it rises (the peer was upgraded, which is a restart: a new
//! epoch).
//!
//! One case needs a probe: two nodes of this release can each have heard
//! the other's version 2 messages (one restarted while the other still
//! spoke 2 to the older release), so neither sends an advert any more.
//! While it speaks below its maximum without an advert from the peer's
//! current run, a node seals one heartbeat at its maximum after each new
//! peer run and every [`PROBE_EVERY`]: a peer of this release answers with
//! adverts; an older one drops that one heartbeat (counted as a bad
//! version), far fewer than the misses that call a peer lost.
//!
//! And one needs a fallback: a peer restarted on a lower protocol (a
//! rollback) cannot read what we speak, so it never learns our run, and
//! while we hold its previous run we refuse its new one's envelopes until
//! they echo us. Once nothing authentic came for [`SILENT_AFTER`], the
//! heartbeats go out at each version in turn, from ours down to
//! [`PROTOCOL_MIN`], until the peer is heard again.

use std::time::Duration;

use crate::wire::Epoch;

/// The oldest protocol accepted: the format before negotiation existed.
pub const PROTOCOL_MIN: u8 = 2;
/// This release's protocol.
pub const PROTOCOL: u8 = 3;
/// The highest protocol a build can be told to speak (the test-only knob
/// `HAFW_TEST_PROTOCOL_MAX`): [`PROTOCOL`] plus one, so a lab can run a
/// pair across a protocol change this release does not have yet.
pub const PROTOCOL_TEST_MAX: u8 = PROTOCOL + 1;
/// The version of the policy's schema (what `hafw-model` reads). Config
/// sync runs only between nodes of one schema.
pub const POLICY_SCHEMA: u16 = 1;
/// Longest software version an advert carries, in bytes (longer ones are
/// cut at a character boundary).
pub const SOFTWARE_MAX: usize = 24;
/// How often a node that speaks below its maximum to a peer that sent no
/// advert tries its maximum once.
pub const PROBE_EVERY: Duration = Duration::from_secs(30);
/// How long the peer may be silent before heartbeats try every version.
/// Longer than any detection time, so a peer that is merely slow never
/// sees a version change.
pub const SILENT_AFTER: Duration = Duration::from_secs(2);

/// Why config sync must pause, if it must: the peer's policy schema is
/// known and differs from ours. HA and session sync go on meanwhile.
pub fn config_sync_paused(ours: u16, peer: Option<u16>) -> Option<String> {
    let peer = peer.filter(|p| *p != ours)?;
    Some(format!(
        "the peer's policy schema is {peer}, this node's is {ours}: no policy is offered or \
         taken until both nodes run one release (finish the upgrade, docs/upgrade.md)"
    ))
}

/// What a node says of itself in its heartbeats (protocol 3 and later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    /// The sender's software version (its crate version), at most
    /// [`SOFTWARE_MAX`] bytes of UTF-8.
    pub software: String,
    /// The highest protocol the sender speaks.
    pub protocol_max: u8,
    /// The sender's [`POLICY_SCHEMA`].
    pub policy_schema: u16,
}

impl Advert {
    /// `software` is cut to [`SOFTWARE_MAX`] bytes, on a character boundary.
    pub fn new(software: &str, protocol_max: u8, policy_schema: u16) -> Advert {
        let mut end = software.len().min(SOFTWARE_MAX);
        while !software.is_char_boundary(end) {
            end -= 1;
        }
        Advert {
            software: software[..end].to_string(),
            protocol_max,
            policy_schema,
        }
    }
}

/// What is known of the peer's versions, for status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerVersions {
    /// The version sealed with now (probes aside).
    pub speaking: u8,
    /// The peer's highest protocol: its advert's, or 2 when it sent
    /// version 2 without one; None before any authentic message.
    pub peer_max: Option<u8>,
    /// The version of the peer's last authentic message.
    pub peer_speaking: Option<u8>,
    /// From the peer's last advert (None: a version 2 peer, or not heard).
    pub software: Option<String>,
    /// The peer's policy schema: its advert's, or [`POLICY_SCHEMA`] 1 for
    /// a version 2 peer (that release knew schema 1 only).
    pub policy_schema: Option<u16>,
    /// Times the spoken version changed.
    pub changes: u64,
}

/// A change of the spoken version, to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub from: u8,
    pub to: u8,
    pub peer_max: u8,
}

/// The per-peer negotiation (see the module's text).
#[derive(Debug, Clone)]
pub struct Negotiation {
    ours: u8,
    speaking: u8,
    peer_max: Option<u8>,
    peer_speaking: Option<u8>,
    /// The peer run whose advert we hold: a version 2 message of that run
    /// only says the peer has not heard our advert yet.
    advert_epoch: Option<Epoch>,
    advert: Option<Advert>,
    /// The peer run last heard, and whether a probe went to it already.
    epoch: Option<Epoch>,
    probed_epoch: bool,
    last_probe: Option<Duration>,
    /// When an authentic message of the peer was last heard.
    last_heard: Option<Duration>,
    /// Heartbeats sealed while the peer was silent (the fallback's turn).
    silent_sends: u64,
    changes: u64,
}

impl Negotiation {
    /// `ours`: this node's maximum, clamped to [`PROTOCOL_MIN`]..=[`PROTOCOL_TEST_MAX`].
    pub fn new(ours: u8) -> Negotiation {
        let ours = ours.clamp(PROTOCOL_MIN, PROTOCOL_TEST_MAX);
        Negotiation {
            ours,
            speaking: ours,
            peer_max: None,
            peer_speaking: None,
            advert_epoch: None,
            advert: None,
            epoch: None,
            probed_epoch: false,
            last_probe: None,
            last_heard: None,
            silent_sends: 0,
            changes: 0,
        }
    }

    pub fn ours(&self) -> u8 {
        self.ours
    }

    /// The version to seal with, probes aside.
    pub fn speaking(&self) -> u8 {
        self.speaking
    }

    /// An authentic message of the peer's run `epoch`, sealed at `version`,
    /// with the advert it carried, at `now`. Returns the change of the
    /// spoken version, if any.
    pub fn heard(
        &mut self,
        now: Duration,
        epoch: Epoch,
        version: u8,
        advert: Option<&Advert>,
    ) -> Option<Change> {
        self.last_heard = Some(now);
        self.silent_sends = 0;
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.probed_epoch = false;
        }
        self.peer_speaking = Some(version);
        if let Some(a) = advert {
            self.advert_epoch = Some(epoch);
            self.advert = Some(a.clone());
            self.peer_max = Some(a.protocol_max.max(version));
        } else if self.advert_epoch == Some(epoch) {
            // This run advertised already: a lower version only means it
            // has not heard our advert yet.
        } else if version <= PROTOCOL_MIN {
            self.advert = None;
            self.advert_epoch = None;
            self.peer_max = Some(version);
        } else {
            // A later version without an advert (a takeover, an HA2 frame):
            // the peer speaks at least this.
            self.peer_max = Some(self.peer_max.unwrap_or(0).max(version));
        }
        let peer_max = self.peer_max.unwrap_or(self.ours);
        let to = self.ours.min(peer_max).max(PROTOCOL_MIN);
        (to != self.speaking).then(|| {
            let from = std::mem::replace(&mut self.speaking, to);
            self.changes += 1;
            Change { from, to, peer_max }
        })
    }

    /// The version to seal the next heartbeat with at `now`: the spoken
    /// one, or once per peer run and every [`PROBE_EVERY`] our maximum
    /// while the peer's is unknown above version 2 (see the module's text).
    pub fn speak_at(&mut self, now: Duration) -> u8 {
        let silent = self
            .last_heard
            .is_some_and(|t| now.saturating_sub(t) >= SILENT_AFTER);
        if silent {
            let span = u64::from(self.ours - PROTOCOL_MIN) + 1;
            let down = (self.silent_sends % span) as u8;
            self.silent_sends += 1;
            return self.ours - down;
        }
        let unsure = self.speaking < self.ours && self.advert.is_none();
        if !unsure {
            return self.speaking;
        }
        let due = !self.probed_epoch
            || self
                .last_probe
                .is_none_or(|t| now.saturating_sub(t) >= PROBE_EVERY);
        if due {
            self.probed_epoch = true;
            self.last_probe = Some(now);
            return self.ours;
        }
        self.speaking
    }

    /// The peer's last advert, if it sent one in a run still current.
    pub fn advert(&self) -> Option<&Advert> {
        self.advert.as_ref()
    }

    /// The peer's policy schema: from its advert, or 1 for a version 2
    /// peer (that release knew no other); None before any message.
    pub fn peer_policy_schema(&self) -> Option<u16> {
        match (&self.advert, self.peer_max) {
            (Some(a), _) => Some(a.policy_schema),
            (None, Some(_)) => Some(1),
            (None, None) => None,
        }
    }

    pub fn status(&self) -> PeerVersions {
        PeerVersions {
            speaking: self.speaking,
            peer_max: self.peer_max,
            peer_speaking: self.peer_speaking,
            software: self.advert.as_ref().map(|a| a.software.clone()),
            policy_schema: self.peer_policy_schema(),
            changes: self.changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: u8) -> Epoch {
        Epoch {
            start_ns: u64::from(n),
            random: [n; 8],
        }
    }

    fn advert(max: u8) -> Advert {
        Advert::new("0.1.0", max, POLICY_SCHEMA)
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn starts_at_ours_and_steps_down_to_an_older_peer() {
        let mut n = Negotiation::new(PROTOCOL);
        assert_eq!(n.speaking(), 3);
        assert_eq!(n.speak_at(S), 3);
        let c = n.heard(S, run(1), 2, None);
        assert_eq!(
            c,
            Some(Change {
                from: 3,
                to: 2,
                peer_max: 2
            })
        );
        assert_eq!(n.speaking(), 2);
        assert_eq!(n.peer_policy_schema(), Some(1));
        assert_eq!(n.status().software, None);
        // Repeats change nothing.
        assert_eq!(n.heard(S, run(1), 2, None), None);
    }

    #[test]
    fn highest_common_version_with_adverts() {
        // A node of the next release with one of this release: both speak 3.
        let mut next = Negotiation::new(PROTOCOL_TEST_MAX);
        assert_eq!(next.speaking(), 4);
        assert!(next.heard(S, run(1), 3, Some(&advert(3))).is_some());
        assert_eq!(next.speaking(), 3);
        let mut this = Negotiation::new(PROTOCOL);
        assert_eq!(this.heard(S, run(2), 3, Some(&advert(4))), None);
        assert_eq!(this.speaking(), 3);
        // With an advert known there is nothing to probe.
        assert_eq!(next.speak_at(S), 3);
        next.heard(S * 100, run(1), 3, Some(&advert(3)));
        assert_eq!(next.speak_at(S * 100), 3);
    }

    #[test]
    fn steps_up_when_the_peer_is_upgraded() {
        let mut n = Negotiation::new(PROTOCOL_TEST_MAX);
        n.heard(S, run(1), 3, Some(&advert(3)));
        assert_eq!(n.speaking(), 3);
        // The peer restarted on the next release: its new run advertises 4.
        let c = n.heard(S, run(2), 3, Some(&advert(4)));
        assert_eq!(c.map(|c| c.to), Some(4));
        assert_eq!(n.status().changes, 2);
        // And back down when it is downgraded to the old release.
        assert_eq!(n.heard(S, run(3), 2, None).map(|c| c.to), Some(2));
    }

    #[test]
    fn a_lower_version_from_an_advertised_run_does_not_step_down() {
        let mut n = Negotiation::new(PROTOCOL);
        n.heard(S, run(1), 3, Some(&advert(3)));
        // Sent before the peer heard our advert: not a downgrade.
        assert_eq!(n.heard(S, run(1), 2, None), None);
        assert_eq!(n.speaking(), 3);
        assert_eq!(n.peer_policy_schema(), Some(POLICY_SCHEMA));
    }

    #[test]
    fn never_below_the_minimum_nor_above_ours() {
        let mut n = Negotiation::new(PROTOCOL);
        n.heard(S, run(1), 2, Some(&advert(1)));
        assert_eq!(n.speaking(), PROTOCOL_MIN);
        n.heard(S, run(2), 3, Some(&advert(200)));
        assert_eq!(n.speaking(), PROTOCOL);
        assert_eq!(Negotiation::new(0).ours(), PROTOCOL_MIN);
        assert_eq!(Negotiation::new(99).ours(), PROTOCOL_TEST_MAX);
    }

    #[test]
    fn probes_once_per_new_run_and_every_period_while_unsure() {
        let mut n = Negotiation::new(PROTOCOL);
        // The peer heard at each step (it sends version 2 all along).
        let at = |n: &mut Negotiation, t: Duration, r: u8| {
            n.heard(t, run(r), 2, None);
            n.speak_at(t)
        };
        // First heartbeat after the peer's run was heard: a probe.
        assert_eq!(at(&mut n, S, 1), 3);
        assert_eq!(at(&mut n, S * 2, 1), 2);
        let before = S + PROBE_EVERY - Duration::from_nanos(1);
        assert_eq!(at(&mut n, before, 1), 2);
        assert_eq!(at(&mut n, S + PROBE_EVERY, 1), 3);
        assert_eq!(at(&mut n, S + PROBE_EVERY, 1), 2);
        // A new peer run: probe at once.
        assert_eq!(at(&mut n, S * 40, 2), 3);
        assert_eq!(at(&mut n, S * 41, 2), 2);
    }

    #[test]
    fn two_new_nodes_stuck_at_2_meet_at_3_through_a_probe() {
        // Each heard the other's version 2 first.
        let (mut a, mut b) = (Negotiation::new(PROTOCOL), Negotiation::new(PROTOCOL));
        a.heard(S, run(2), 2, None);
        b.heard(S, run(1), 2, None);
        assert_eq!((a.speaking(), b.speaking()), (2, 2));
        // A probes; B hears A's advert and steps up; A hears B's.
        let v = a.speak_at(S);
        assert_eq!(v, 3);
        assert_eq!(
            b.heard(S, run(1), v, Some(&advert(3))).map(|c| c.to),
            Some(3)
        );
        assert_eq!(
            a.heard(S, run(2), 3, Some(&advert(3))).map(|c| c.to),
            Some(3)
        );
        // A's version 2 stragglers in flight change nothing at B now.
        assert_eq!(b.heard(S, run(1), 2, None), None);
        assert_eq!((a.speak_at(S * 2), b.speak_at(S * 2)), (3, 3));
    }

    #[test]
    fn a_silent_peer_is_tried_at_every_version_until_heard() {
        let mut n = Negotiation::new(PROTOCOL_TEST_MAX);
        n.heard(S, run(1), 4, Some(&advert(4)));
        assert_eq!(n.speak_at(S + SILENT_AFTER - Duration::from_nanos(1)), 4);
        let t = S + SILENT_AFTER;
        let tried: Vec<u8> = (0..6).map(|_| n.speak_at(t)).collect();
        assert_eq!(tried, [4, 3, 2, 4, 3, 2]);
        // Heard again (its rollback to this release): 3 from then on.
        n.heard(t, run(2), 3, Some(&advert(3)));
        assert_eq!(n.speak_at(t), 3);
        assert_eq!(n.speak_at(t + S), 3);
    }

    #[test]
    fn config_sync_pauses_only_across_known_different_schemas() {
        assert_eq!(config_sync_paused(1, None), None);
        assert_eq!(config_sync_paused(1, Some(1)), None);
        let why = config_sync_paused(1, Some(2)).unwrap();
        assert!(
            why.contains("schema is 2") && why.contains("upgrade"),
            "{why}"
        );
        // A version 2 peer is schema 1.
        let mut n = Negotiation::new(PROTOCOL);
        assert_eq!(n.peer_policy_schema(), None);
        n.heard(S, run(1), 2, None);
        assert!(config_sync_paused(2, n.peer_policy_schema()).is_some());
        n.heard(S, run(2), 3, Some(&Advert::new("0.2.0", 3, 2)));
        assert_eq!(config_sync_paused(2, n.peer_policy_schema()), None);
    }

    #[test]
    fn advert_software_is_cut_on_a_character_boundary() {
        let long = "é".repeat(20);
        let a = Advert::new(&long, 3, 1);
        assert!(a.software.len() <= SOFTWARE_MAX);
        assert_eq!(a.software, "é".repeat(12));
    }
}
