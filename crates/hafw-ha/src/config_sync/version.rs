//! Policy version numbering: how a local apply picks its version and what
//! an offer from the peer must carry to be taken. Pure rules; the
//! [`super::ConfigSync`] core and the daemon's config task both ask them.
//!
//! A version names one policy (its hash) on both nodes. Versions only go
//! up: a local apply takes one above every version either node is known to
//! hold, so it wins on both; an offer is applied only when it is newer than
//! what this node runs. One version with two hashes means two nodes were
//! edited independently (a split brain): neither wins, the conflict alarm
//! is raised, and a new apply on the active (a higher version) resolves it.

/// The version a local apply gets: above every version known on either
/// node (this node's running one, config sync's view of it, the peer's
/// from its heartbeats). Saturates at `u64::MAX`, which a local apply then
/// refuses as not newer rather than wrapping to an old number.
pub fn next_version(known: impl IntoIterator<Item = u64>) -> u64 {
    known.into_iter().max().unwrap_or(0).saturating_add(1)
}

/// What a node does with the peer's offer of (version, hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferVerdict {
    /// Newer than ours: hand it to the daemon to apply.
    Apply,
    /// Ours exactly: our earlier answer was lost; say "applied" again.
    AlreadyRunning,
    /// Older than ours (or version 0, which names "no policy"): refused,
    /// never a downgrade.
    Stale { current: u64 },
    /// Our version with another hash: independent edits.
    Conflict { version: u64 },
}

/// The rule for an offer: `ours` is the (version, hash) this node runs.
pub fn judge_offer(ours: (u64, [u8; 32]), offered: (u64, [u8; 32])) -> OfferVerdict {
    let ((v, h), (version, hash)) = (ours, offered);
    if version == 0 || version < v {
        OfferVerdict::Stale { current: v }
    } else if version == v && hash == h {
        OfferVerdict::AlreadyRunning
    } else if version == v {
        OfferVerdict::Conflict { version: v }
    } else {
        OfferVerdict::Apply
    }
}

/// Whether the peer's advertised (version, hash) and ours are one version
/// under two hashes. Version 0 is "never applied through config sync":
/// two nodes started from different files differ there without having
/// been edited independently (the status shows a mismatch instead).
pub fn conflicts(ours: (u64, [u8; 32]), peer: (u64, [u8; 32])) -> bool {
    ours.0 == peer.0 && ours.1 != peer.1 && ours.0 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [0xa; 32];
    const B: [u8; 32] = [0xb; 32];

    #[test]
    fn a_local_apply_goes_above_every_known_version() {
        assert_eq!(next_version([0, 0]), 1);
        assert_eq!(next_version([3, 7, 5]), 8, "the peer is ahead: above it");
        assert_eq!(next_version([9, 2]), 10);
        assert_eq!(next_version([]), 1, "nothing known: the first version");
        assert_eq!(next_version([u64::MAX, 1]), u64::MAX, "never wraps");
    }

    #[test]
    fn only_a_newer_offer_is_applied() {
        assert_eq!(judge_offer((3, A), (4, B)), OfferVerdict::Apply);
        assert_eq!(judge_offer((0, [0; 32]), (1, A)), OfferVerdict::Apply);
        assert_eq!(
            judge_offer((3, A), (2, B)),
            OfferVerdict::Stale { current: 3 }
        );
        assert_eq!(
            judge_offer((0, [0; 32]), (0, A)),
            OfferVerdict::Stale { current: 0 },
            "version 0 is no policy, never offered"
        );
    }

    #[test]
    fn the_same_version_is_a_repeat_or_a_conflict_by_its_hash() {
        assert_eq!(judge_offer((3, A), (3, A)), OfferVerdict::AlreadyRunning);
        assert_eq!(
            judge_offer((3, A), (3, B)),
            OfferVerdict::Conflict { version: 3 }
        );
    }

    #[test]
    fn one_version_under_two_hashes_conflicts_except_version_0() {
        assert!(conflicts((2, A), (2, B)));
        assert!(!conflicts((2, A), (2, A)));
        assert!(!conflicts((2, A), (3, B)));
        assert!(!conflicts((0, A), (0, B)));
    }
}
