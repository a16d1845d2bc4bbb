//! The config-sync core. See the module docs of [`crate::config_sync`].

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use super::assemble::{chunks, Assembly};
use super::codec::{decode, encode, truncate_utf8, ConfigMessage, DecodeError, MAX_ERROR_LEN};
use super::policy_hash;
use super::version::{self, OfferVerdict};
use crate::Time;

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigAction {
    /// Validate, apply atomically and persist this policy, then call
    /// [`ConfigSync::handle_apply_result`]. Nothing else is applied until
    /// then.
    ApplyConfig {
        version: u64,
        hash: [u8; 32],
        bytes: Vec<u8>,
    },
    /// The active peer's version `version` waits for confirmation for
    /// `remaining_ms` more (0: confirmed); if this node is active when the
    /// time is up and still runs it, it goes back to `back_to`'s policy.
    Pending {
        version: u64,
        hash: [u8; 32],
        remaining_ms: u32,
        back_to: u64,
    },
}

/// How offers are retransmitted until the peer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryConfig {
    /// 100 ms doubling to 1 s: a lost offer still lands well within the
    /// issue's 1 s goal on a link that loses one copy.
    fn default() -> Self {
        RetryConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigStatus {
    /// Ours: 0 and a zero hash when there is no policy yet.
    pub version: u64,
    pub hash: [u8; 32],
    /// The peer's, as its heartbeats advertise it.
    pub peer: Option<(u64, [u8; 32])>,
    /// The peer is known and runs another (version, hash).
    pub mismatch: bool,
    /// A version seen with two different hashes (independent edits).
    pub conflict: Option<u64>,
    /// The version we offer until the peer answers.
    pub offering: Option<u64>,
    /// The version the daemon is applying.
    pub applying: Option<u64>,
    /// The peer's last answer to our offer: (version, applied, error).
    pub peer_result: Option<(u64, bool, Option<String>)>,
    /// The last failure on either side, for `hafw status` and the alarm.
    pub last_error: Option<String>,
    pub offers_sent: u64,
    pub retransmits: u64,
    pub applied: u64,
    pub failed: u64,
    /// Offers refused as older than ours.
    pub stale_offers: u64,
    /// Offer copies refused because the peer is not active (a passive
    /// never pushes its policy), unanswered: an active we had not yet
    /// heard of as active sends them again.
    pub refused_peer_not_active: u64,
    /// Offer copies refused because this node is active: the active's
    /// policy changes only by `hafw config apply`.
    pub refused_local_active: u64,
    pub bad_messages: u64,
}

/// Why a local apply is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyError {
    NotNewer { version: u64, current: u64 },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::NotNewer { version, current } => write!(
                f,
                "policy version {version} is not newer than the current {current}; \
                 use ConfigSync::next_version"
            ),
        }
    }
}

impl std::error::Error for ApplyError {}

#[derive(Debug, Clone)]
struct Policy {
    version: u64,
    hash: [u8; 32],
    bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Offering {
    version: u64,
    hash: [u8; 32],
    retries: u32,
    retry_at: Time,
}

#[derive(Debug, Clone)]
pub struct ConfigSync {
    retry: RetryConfig,
    ours: Option<Policy>,
    peer: Option<(u64, [u8; 32])>,
    offering: Option<Offering>,
    incoming: Option<Assembly>,
    applying: Option<Policy>,
    /// The last version that failed to apply here, with why: answered
    /// again, never re-applied, when the peer retransmits it.
    failed: Option<(u64, [u8; 32], String)>,
    outbox: VecDeque<Vec<u8>>,
    actions: VecDeque<ConfigAction>,
    status: ConfigStatus,
    /// This node is active: it offers, and takes no offer.
    local_active: bool,
    /// The peer is alive and active, from its heartbeats: only then is
    /// its offer taken.
    peer_active: bool,
    /// Our version waits for confirmation: (version, deadline, back_to),
    /// told to the peer again when it comes to run that version.
    pending: Option<(u64, Time, u64)>,
}

impl ConfigSync {
    /// `current`: the persisted policy (version, bytes), if any.
    pub fn new(retry: RetryConfig, current: Option<(u64, Vec<u8>)>) -> ConfigSync {
        let ours = current.map(|(version, bytes)| Policy {
            version,
            hash: policy_hash(&bytes),
            bytes,
        });
        ConfigSync {
            retry,
            ours,
            peer: None,
            offering: None,
            incoming: None,
            applying: None,
            failed: None,
            outbox: VecDeque::new(),
            actions: VecDeque::new(),
            status: ConfigStatus::default(),
            local_active: false,
            peer_active: false,
            pending: None,
        }
    }

    /// This node became active (true) or not. Only the active offers: it
    /// offers now if its peer is known to be behind; a node that is no
    /// longer active stops offering and drops a half-received offer.
    pub fn set_local_active(&mut self, now: Time, active: bool) {
        if active == self.local_active {
            return;
        }
        self.local_active = active;
        // A failure recorded under the other role (an offer taken just
        // before a promotion, refused by the daemon) is not the policy's
        // verdict: the next offer is judged afresh.
        self.failed = None;
        if active {
            self.incoming = None;
            if let Some((v, h)) = self.peer {
                self.note_peer_version(now, v, h);
            }
        } else {
            self.offering = None;
            self.pending = None;
        }
    }

    /// The peer's role from its heartbeats (true: alive and active).
    /// Offers are taken only from an active peer.
    pub fn set_peer_active(&mut self, active: bool) {
        self.peer_active = active;
    }

    /// (version, hash) to advertise in heartbeats (`Node::set_config_version`).
    pub fn advertised(&self) -> (u64, [u8; 32]) {
        self.ours
            .as_ref()
            .map_or((0, [0; 32]), |p| (p.version, p.hash))
    }

    /// The version `hafw config apply` should use: above both nodes'.
    pub fn next_version(&self) -> u64 {
        version::next_version(
            self.peer
                .map(|(v, _)| v)
                .into_iter()
                .chain([self.advertised().0]),
        )
    }

    /// The daemon applied a new policy here (`hafw config apply` on the
    /// active, after [`super::local_edit_allowed`]): offer it to the peer.
    /// Returns its hash.
    pub fn apply_local(
        &mut self,
        now: Time,
        version: u64,
        bytes: Vec<u8>,
    ) -> Result<[u8; 32], ApplyError> {
        let current = self.advertised().0;
        if version <= current {
            return Err(ApplyError::NotNewer { version, current });
        }
        let hash = policy_hash(&bytes);
        self.ours = Some(Policy {
            version,
            hash,
            bytes,
        });
        self.status.conflict = None;
        self.failed = None;
        self.start_offer(now);
        Ok(hash)
    }

    /// The peer's (version, hash) from its heartbeats: offers ours when
    /// the peer is behind (it restarted from scratch, or missed an apply).
    pub fn note_peer_version(&mut self, now: Time, version: u64, hash: [u8; 32]) {
        let changed = self.peer != Some((version, hash));
        self.peer = Some((version, hash));
        if let Some((v, _, back_to)) = self.pending {
            if changed && self.local_active && (version, hash) == self.advertised() && v == version
            {
                self.push_pending(now, v, back_to);
            }
        }
        let (v, h) = self.advertised();
        if version::conflicts((v, h), (version, hash)) {
            self.status.conflict = Some(v);
        }
        // Only the active offers: a passive that is ahead (it restarted
        // with a newer persisted policy than an active restored from an
        // old disk) is flagged as a mismatch until the next apply on the
        // active, never pushed onto it.
        if self.local_active && v > version && self.offering.as_ref().is_none_or(|o| o.version != v)
        {
            // Not again if the peer already refused exactly this version:
            // its error stands until a new apply.
            let refused = matches!(&self.status.peer_result,
                Some((rv, false, _)) if *rv == v);
            if !refused {
                self.start_offer(now);
            }
        }
    }

    /// A config-sync payload from the peer.
    pub fn handle_message(&mut self, now: Time, bytes: &[u8]) -> Result<(), DecodeError> {
        match decode(bytes) {
            Ok(msg) => {
                self.handle_decoded(now, msg);
                Ok(())
            }
            Err(e) => {
                self.status.bad_messages += 1;
                Err(e)
            }
        }
    }

    pub fn handle_decoded(&mut self, now: Time, msg: ConfigMessage) {
        match msg {
            ConfigMessage::Offer {
                version,
                hash,
                total,
                offset,
                bytes,
            } => self.on_offer(version, hash, total as usize, offset as usize, bytes),
            ConfigMessage::Result {
                version,
                hash,
                applied,
                error,
            } => self.on_result(now, version, hash, applied, error),
            ConfigMessage::Pending {
                version,
                hash,
                remaining_ms,
                back_to,
            } => {
                // As an offer: only an active peer's, only on a passive.
                if self.local_active || !self.peer_active {
                    self.status.refused_peer_not_active += 1;
                    return;
                }
                self.actions.push_back(ConfigAction::Pending {
                    version,
                    hash,
                    remaining_ms,
                    back_to,
                });
            }
        }
    }

    /// The active's version waits for confirmation (or, with 0, no
    /// longer): tell the peer, so it can go back by itself if it takes
    /// over meanwhile. Only the active sends it.
    /// Kept, and sent again when the peer comes to run that version (it
    /// restarted, or was still applying it).
    pub fn send_pending(&mut self, now: Time, version: u64, remaining_ms: u32, back_to: u64) {
        if !self.local_active || self.advertised().0 != version {
            return;
        }
        self.pending = (remaining_ms > 0).then(|| {
            (
                version,
                now + Duration::from_millis(u64::from(remaining_ms)),
                back_to,
            )
        });
        self.push_pending(now, version, back_to);
    }

    fn push_pending(&mut self, now: Time, version: u64, back_to: u64) {
        let remaining_ms = match self.pending {
            // At least 1: 0 says "confirmed", not "expired".
            Some((v, until, _)) if v == version => until
                .saturating_sub(now)
                .as_millis()
                .clamp(1, u128::from(u32::MAX))
                as u32,
            _ => 0,
        };
        self.outbox.push_back(encode(&ConfigMessage::Pending {
            version,
            hash: self.advertised().1,
            remaining_ms,
            back_to,
        }));
    }

    /// The daemon's verdict on [`ConfigAction::ApplyConfig`]. On failure
    /// nothing changed (the daemon applies atomically): we stay on our
    /// previous version.
    pub fn handle_apply_result(&mut self, _now: Time, result: Result<(), String>) {
        let Some(p) = self.applying.take() else {
            return;
        };
        match result {
            Ok(()) => {
                self.status.applied += 1;
                self.reply(p.version, p.hash, true, None);
                self.failed = None;
                self.status.conflict = None;
                // Applied here: an older offer of ours is moot.
                if self
                    .offering
                    .as_ref()
                    .is_some_and(|o| o.version < p.version)
                {
                    self.offering = None;
                }
                self.ours = Some(p);
            }
            Err(e) => {
                let e = truncate_utf8(&e, MAX_ERROR_LEN).to_owned();
                self.status.failed += 1;
                self.status.last_error = Some(format!(
                    "policy version {} from the peer was not applied: {e}",
                    p.version
                ));
                self.reply(p.version, p.hash, false, Some(e.clone()));
                self.failed = Some((p.version, p.hash, e));
            }
        }
    }

    /// Offer retransmissions.
    pub fn handle_timeout(&mut self, now: Time) {
        let Some(o) = &mut self.offering else {
            return;
        };
        if o.retry_at > now {
            return;
        }
        o.retries += 1;
        let backoff = self
            .retry
            .initial
            .saturating_mul(1 << o.retries.min(16))
            .min(self.retry.max);
        o.retry_at = now + backoff;
        // The daemon has not even sent the last copy: do not pile up more.
        if self.outbox.is_empty() {
            self.status.retransmits += 1;
            self.queue_offer();
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<ConfigAction> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        self.offering.as_ref().map(|o| o.retry_at)
    }

    pub fn status(&self) -> ConfigStatus {
        let (version, hash) = self.advertised();
        ConfigStatus {
            version,
            hash,
            peer: self.peer,
            mismatch: self.peer.is_some_and(|p| p != (version, hash)),
            offering: self.offering.as_ref().map(|o| o.version),
            applying: self.applying.as_ref().map(|p| p.version),
            ..self.status.clone()
        }
    }

    fn start_offer(&mut self, now: Time) {
        let Some(p) = &self.ours else {
            return;
        };
        self.offering = Some(Offering {
            version: p.version,
            hash: p.hash,
            retries: 0,
            retry_at: now + self.retry.initial,
        });
        self.status.offers_sent += 1;
        self.status.peer_result = None;
        self.queue_offer();
    }

    fn queue_offer(&mut self) {
        let Some(p) = &self.ours else {
            return;
        };
        let total = p.bytes.len() as u32;
        for (offset, chunk) in chunks(&p.bytes) {
            self.outbox.push_back(encode(&ConfigMessage::Offer {
                version: p.version,
                hash: p.hash,
                total,
                offset: offset as u32,
                bytes: chunk.to_vec(),
            }));
        }
    }

    fn on_offer(
        &mut self,
        version: u64,
        hash: [u8; 32],
        total: usize,
        offset: usize,
        bytes: Vec<u8>,
    ) {
        // A policy comes from the active to the passive only
        // (`hafw config apply` runs on the active), whatever the versions
        // say: a passive must not rewrite the active's policy.
        if self.local_active {
            self.status.refused_local_active += 1;
            return;
        }
        if !self.peer_active {
            self.status.refused_peer_not_active += 1;
            return;
        }
        match version::judge_offer(self.advertised(), (version, hash)) {
            OfferVerdict::Apply => {}
            OfferVerdict::Stale { current } => {
                self.status.stale_offers += 1;
                let why = format!("this node already runs the newer policy version {current}");
                return self.reply(version, hash, false, Some(why));
            }
            // Our earlier Result was lost: say it again.
            OfferVerdict::AlreadyRunning => return self.reply(version, hash, true, None),
            OfferVerdict::Conflict { version: v } => {
                self.status.conflict = Some(v);
                let why = format!(
                    "this node runs another policy under version {v}: both nodes were \
                     edited independently; apply a new version on the active node"
                );
                self.status.last_error = Some(why.clone());
                return self.reply(version, hash, false, Some(why));
            }
        }
        if let Some(p) = &self.applying {
            // One apply at a time; the offer comes again after it.
            if (p.version, p.hash) != (version, hash) {
                self.status.stale_offers += 1;
            }
            return;
        }
        if let Some((fv, fh, e)) = &self.failed {
            if (*fv, *fh) == (version, hash) {
                let e = e.clone();
                self.reply(version, hash, false, Some(e));
                return;
            }
        }
        let same = self
            .incoming
            .as_ref()
            .is_some_and(|a| (a.version, a.hash) == (version, hash));
        if !same {
            if self.incoming.as_ref().is_some_and(|a| a.version > version) {
                self.status.stale_offers += 1;
                return;
            }
            match Assembly::new(version, hash, total) {
                Ok(a) => self.incoming = Some(a),
                Err(e) => return self.refuse(version, hash, e.describe()),
            }
        }
        let Some(a) = &mut self.incoming else {
            return;
        };
        match a.add(total, offset, bytes) {
            Ok(None) => {}
            Ok(Some(whole)) => {
                self.incoming = None;
                self.actions.push_back(ConfigAction::ApplyConfig {
                    version,
                    hash,
                    bytes: whole.clone(),
                });
                self.applying = Some(Policy {
                    version,
                    hash,
                    bytes: whole,
                });
            }
            Err(e) => {
                self.incoming = None;
                self.refuse(version, hash, e.describe());
            }
        }
    }

    /// An offer that cannot even reach the daemon: the peer's bug.
    fn refuse(&mut self, version: u64, hash: [u8; 32], why: String) {
        self.status.bad_messages += 1;
        self.status.last_error = Some(why.clone());
        self.reply(version, hash, false, Some(why));
    }

    fn on_result(
        &mut self,
        _now: Time,
        version: u64,
        hash: [u8; 32],
        applied: bool,
        error: Option<String>,
    ) {
        let Some(o) = &self.offering else {
            return;
        };
        if (o.version, o.hash) != (version, hash) {
            return;
        }
        self.offering = None;
        if !applied {
            self.status.last_error = Some(format!(
                "the peer did not apply policy version {version}: {}",
                error.as_deref().unwrap_or("no reason given")
            ));
        }
        self.status.peer_result = Some((version, applied, error));
    }

    fn reply(&mut self, version: u64, hash: [u8; 32], applied: bool, error: Option<String>) {
        self.outbox.push_back(encode(&ConfigMessage::Result {
            version,
            hash,
            applied,
            error,
        }));
    }
}
