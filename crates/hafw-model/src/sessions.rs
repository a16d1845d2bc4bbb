//! Session capacity: how many concurrent sessions a node holds, and the
//! three things that number sizes: the kernel's `nf_conntrack_max`, the
//! conntrack hash table, and the bound of the passive's session-sync cache.
//! Pure: the memory comes in as an argument (the instance type's, from
//! the file, or the host's, read by the daemon).
//!
//! **Bytes per session, and why.** A session costs, on a node:
//! - in the kernel, [`KERNEL_BYTES_PER_SESSION`]: the `nf_conn` slab object
//!   (about 320 bytes on a 6.x x86_64 kernel with zones, marks and
//!   labels), its extension area (NAT, accounting, timestamps: one
//!   kmalloc-128/192 object) and a hash bucket (8 bytes, one per session,
//!   see [`buckets`]), with slab slack, rounded up to 512;
//! - on the passive, the sync cache's slot,
//!   [`hafw_ha::sessions::cache::MAX_BYTES_PER_SESSION`] at its worst load;
//! - headroom the same size again as the cache, for what moves with the
//!   session count but is not in either table: event and dump buffers,
//!   the sender's coalescing map during a burst, slabs not yet reclaimed.
//!
//! That is [`BYTES_PER_SESSION`] = 1 KiB. By default a node gives sessions
//! [`DEFAULT_SHARE`] of its memory (262,144 sessions per GiB: an 8 GiB
//! ecs.g7.large holds 2M), leaving the rest to the OS, socket buffers and
//! the daemon; a `policy.sessions.max` that
//! would take more than [`MAX_SHARE`] is refused.

use hafw_ha::sessions::cache::MAX_BYTES_PER_SESSION as CACHE_BYTES;

/// The passive's sync cache per session, at its worst load (hafw-ha's
/// figure, held to the real slot size by its test).
pub const CACHE_BYTES_PER_SESSION: u64 = CACHE_BYTES;

use crate::spec::{Deployment, Instance, SessionCount};

pub const KERNEL_BYTES_PER_SESSION: u64 = 512;
/// Kernel + sync cache + headroom (the module comment says why).
pub const BYTES_PER_SESSION: u64 = KERNEL_BYTES_PER_SESSION + 2 * CACHE_BYTES;
/// The share of memory a derived maximum uses: 1/4.
pub const DEFAULT_SHARE: Share = Share { num: 1, den: 4 };
/// The largest share an explicit `policy.sessions.max` may take: 1/2.
pub const MAX_SHARE: Share = Share { num: 1, den: 2 };
/// `nf_conntrack_max` is a signed 32-bit integer in the kernel.
pub const KERNEL_LIMIT: u32 = i32::MAX as u32;
/// A derived maximum never goes below this (a host with little memory
/// still holds the kernel's smallest default table).
pub const MIN_DERIVED: u32 = 16_384;
/// The kernel rounds the hash table to whole pages of 8-byte buckets.
const BUCKETS_PER_PAGE: u32 = 512;

const GIB: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub num: u64,
    pub den: u64,
}

impl Share {
    fn of(self, bytes: u64) -> u64 {
        bytes / self.den * self.num
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// Where the node's memory figure comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memory {
    /// The instance type's, from the table (`validate::instance_type`).
    Type { instance_type: String, gib: u64 },
    /// The type is not in the table: the daemon reads the host's at start.
    Host { instance_type: String },
}

/// `policy.sessions` for one node, as `hafw plan node` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsPlan {
    /// `policy.sessions.max`, if set.
    pub max: Option<SessionCount>,
    pub memory: Memory,
}

/// What the node applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// `nf_conntrack_max`, and the passive's sync cache bound.
    pub max: u32,
    /// The conntrack hash table's buckets: the least the node needs (it
    /// only ever grows the table).
    pub buckets: u32,
    /// The memory the figures were checked against.
    pub memory_bytes: u64,
    /// `max` came from the file (else it was derived from the memory).
    pub explicit: bool,
}

impl SessionsPlan {
    pub fn of(dep: &Deployment, instance: &Instance) -> SessionsPlan {
        let t = instance.instance_type.clone();
        let memory = match crate::validate::instance_type::memory_gib(&t) {
            Some(gib) => Memory::Type {
                instance_type: t,
                gib,
            },
            None => Memory::Host { instance_type: t },
        };
        SessionsPlan {
            max: dep.policy.sessions.max,
            memory,
        }
    }

    /// The memory known without the host: the instance type's.
    pub fn type_memory(&self) -> Option<u64> {
        match self.memory {
            Memory::Type { gib, .. } => Some(gib * GIB),
            Memory::Host { .. } => None,
        }
    }

    /// The capacity, with `host_bytes` (the host's memory) used only when
    /// the instance type's is unknown. An explicit max too large for the
    /// memory is an error naming the field and the fix.
    pub fn capacity(&self, host_bytes: Option<u64>) -> Result<Capacity, String> {
        let memory_bytes = match (&self.memory, host_bytes) {
            (Memory::Type { gib, .. }, _) => gib * GIB,
            (Memory::Host { .. }, Some(b)) => b,
            (Memory::Host { instance_type }, None) => {
                return Err(format!(
                    "instance type `{instance_type}` is not in hafw's table and the host's memory could not be read (/proc/meminfo); set policy.sessions.max"
                ))
            }
        };
        let (max, explicit) = match self.max {
            Some(m) => {
                check(m.get(), memory_bytes).map_err(|e| e.to_string())?;
                (m.get(), true)
            }
            None => (derived_max(memory_bytes), false),
        };
        Ok(Capacity {
            max,
            buckets: buckets(max),
            memory_bytes,
            explicit,
        })
    }
}

/// The default maximum for `memory_bytes`: [`DEFAULT_SHARE`] of it at
/// [`BYTES_PER_SESSION`] each.
pub fn derived_max(memory_bytes: u64) -> u32 {
    let n = DEFAULT_SHARE.of(memory_bytes) / BYTES_PER_SESSION;
    u32::try_from(n)
        .unwrap_or(KERNEL_LIMIT)
        .clamp(MIN_DERIVED, KERNEL_LIMIT)
}

/// The most sessions `memory_bytes` allows an explicit maximum.
pub fn allowed_max(memory_bytes: u64) -> u32 {
    let n = MAX_SHARE.of(memory_bytes) / BYTES_PER_SESSION;
    u32::try_from(n).unwrap_or(KERNEL_LIMIT).min(KERNEL_LIMIT)
}

/// A `policy.sessions.max` refused: what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub message: String,
    pub fix: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.message, self.fix)
    }
}

/// Refuses a maximum the kernel cannot hold or the memory cannot pay for.
pub fn check(max: u32, memory_bytes: u64) -> Result<(), Refused> {
    if max > KERNEL_LIMIT {
        return Err(Refused {
            message: format!(
                "policy.sessions.max = {max} is above the kernel's limit for nf_conntrack_max ({KERNEL_LIMIT})"
            ),
            fix: format!("lower policy.sessions.max to {} or less", allowed_max(memory_bytes)),
        });
    }
    let allowed = allowed_max(memory_bytes);
    if max > allowed {
        return Err(Refused {
            message: format!(
                "policy.sessions.max = {max} needs {} MiB at {BYTES_PER_SESSION} bytes a session, more than {MAX_SHARE} of the node's {} MiB",
                (u64::from(max) * BYTES_PER_SESSION) >> 20,
                memory_bytes >> 20,
            ),
            fix: format!(
                "lower policy.sessions.max to {allowed} or less, or use an instance type with more memory"
            ),
        });
    }
    Ok(())
}

/// The hash table for `max` sessions: one bucket per session, which is the
/// kernel's own ratio since Linux 5.15 (`nf_conntrack_max` defaults to the
/// bucket count; nf_conntrack-sysctl.rst), rounded up to whole pages of
/// buckets as the kernel allocates them. Each entry sits in two chains
/// (original and reply tuple), so chains stay about two long.
pub fn buckets(max: u32) -> u32 {
    max.div_ceil(BUCKETS_PER_PAGE)
        .saturating_mul(BUCKETS_PER_PAGE)
        .min(KERNEL_LIMIT)
}

impl std::fmt::Display for SessionsPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.capacity(None) {
            Ok(c) => {
                let how = if c.explicit {
                    "policy.sessions.max".to_string()
                } else {
                    format!("{DEFAULT_SHARE} of the memory at {BYTES_PER_SESSION} bytes a session")
                };
                writeln!(f, "  max = {} ({how})", c.max)?;
                if let Memory::Type { instance_type, gib } = &self.memory {
                    writeln!(f, "  memory = {gib} GiB ({instance_type})")?;
                }
                writeln!(f, "  net.netfilter.nf_conntrack_max = {}", c.max)?;
                writeln!(f, "  conntrack hash buckets >= {}", c.buckets)?;
                writeln!(f, "  sync cache bound = {}", c.max)
            }
            Err(_) => {
                let Memory::Host { instance_type } = &self.memory else {
                    return writeln!(f, "  (not valid for this instance: see hafw validate)");
                };
                match self.max {
                    Some(m) => writeln!(f, "  max = {m} (policy.sessions.max)")?,
                    None => writeln!(
                        f,
                        "  max = {DEFAULT_SHARE} of the host's memory at {BYTES_PER_SESSION} bytes a session, read at start"
                    )?,
                }
                writeln!(
                    f,
                    "  memory = the host's, read at start (`{instance_type}` is not in hafw's table)"
                )?;
                writeln!(
                    f,
                    "  net.netfilter.nf_conntrack_max, hash buckets (one per session) and sync cache bound follow max"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(max: Option<u32>, gib: u64) -> SessionsPlan {
        SessionsPlan {
            max: max.map(|m| SessionCount::new(m).unwrap()),
            memory: Memory::Type {
                instance_type: "ecs.g7.xlarge".into(),
                gib,
            },
        }
    }

    #[test]
    fn the_budget_is_a_kibibyte() {
        assert_eq!(BYTES_PER_SESSION, 1024);
        assert_eq!(derived_max(GIB), 262_144);
        assert_eq!(allowed_max(GIB), 524_288);
    }

    #[test]
    fn derived_from_the_instance_type() {
        let c = typed(None, 16).capacity(None).unwrap();
        assert_eq!(c.max, 4 * 1_048_576);
        assert_eq!(c.buckets, c.max);
        assert!(!c.explicit);
        // The host's memory is not used when the type's is known.
        assert_eq!(typed(None, 16).capacity(Some(GIB)).unwrap(), c);
    }

    #[test]
    fn derived_from_the_host_when_the_type_is_unknown() {
        let p = SessionsPlan {
            max: None,
            memory: Memory::Host {
                instance_type: "ecs.r8.xlarge".into(),
            },
        };
        assert_eq!(p.capacity(Some(2 * GIB)).unwrap().max, 524_288);
        let e = p.capacity(None).unwrap_err();
        assert!(
            e.contains("ecs.r8.xlarge") && e.contains("set policy.sessions.max"),
            "{e}"
        );
    }

    #[test]
    fn small_and_huge_memories_are_clamped() {
        assert_eq!(derived_max(64 << 20), MIN_DERIVED);
        assert_eq!(derived_max(u64::MAX), KERNEL_LIMIT);
        assert_eq!(buckets(KERNEL_LIMIT), KERNEL_LIMIT);
    }

    #[test]
    fn buckets_are_whole_pages() {
        assert_eq!(buckets(1), 512);
        assert_eq!(buckets(1000), 1024);
        assert_eq!(buckets(1_000_000), 1_000_448);
        assert_eq!(buckets(1_048_576), 1_048_576);
    }

    #[test]
    fn an_explicit_max_is_taken_up_to_half_the_memory() {
        let c = typed(Some(1000), 8).capacity(None).unwrap();
        assert_eq!((c.max, c.buckets, c.explicit), (1000, 1024, true));
        assert_eq!(
            typed(Some(4_194_304), 8).capacity(None).unwrap().max,
            4_194_304
        );
        let e = typed(Some(4_194_305), 8).capacity(None).unwrap_err();
        assert!(e.contains("policy.sessions.max = 4194305"), "{e}");
        assert!(e.contains("to 4194304 or less"), "{e}");
        assert!(e.contains("8192 MiB"), "{e}");
    }

    #[test]
    fn above_the_kernel_limit_is_refused() {
        let e = check(u32::MAX, u64::MAX).unwrap_err();
        assert!(e.message.contains("kernel's limit"), "{e}");
    }

    #[test]
    fn the_plan_shows_what_is_applied() {
        let text = typed(None, 16).to_string();
        assert!(text.contains("max = 4194304 (1/4 of the memory"), "{text}");
        assert!(
            text.contains("net.netfilter.nf_conntrack_max = 4194304"),
            "{text}"
        );
        assert!(text.contains("sync cache bound = 4194304"), "{text}");
    }
}
