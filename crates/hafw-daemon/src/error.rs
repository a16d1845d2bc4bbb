//! The daemon's errors, split by who is at fault, so one place
//! ([`DaemonError::level`], used by [`crate::log::Log::error`]) decides how
//! loudly each is logged: a peer's bad packet is expected on a hostile
//! network and counted at debug; a kernel refusal is an error an operator
//! must see.
//!
//! Each layer keeps its own enum (`ApplyError` for the data plane, the
//! kernel crate's `Error`, ...); these wrap them with what the daemon was
//! doing, and `source()` reaches the original.

use std::path::PathBuf;

use crate::dataplane::apply::ApplyError;

/// Everything the daemon can fail with, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The peer (or someone on its segment) sent something we refuse.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The deployment file, a policy or an argument is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The kernel refused or failed an operation.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The host is not set up to run a node (key file, sockets, threads).
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// How loudly an error is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Warn,
    Error,
}

impl DaemonError {
    /// The one rule for log levels: the network's noise at debug, a
    /// refused configuration as a warning (the node keeps running on the
    /// previous one), the kernel and the host as errors.
    pub fn level(&self) -> Level {
        match self {
            DaemonError::Peer(_) => Level::Debug,
            DaemonError::Config(_) => Level::Warn,
            DaemonError::Kernel(_) | DaemonError::Setup(_) => Level::Error,
        }
    }
}

/// Input from the peer that is refused (and counted), never a panic.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A frame that failed authentication, replay or format checks.
    #[error("refused a message from the peer: {reason}")]
    Refused { reason: String },
    /// A policy offered by the peer that does not validate here. The
    /// reason may quote the peer's policy: logged escaped and capped.
    #[error(
        "the peer's policy version {version} does not apply here: {}",
        crate::ops::text::peer_text(reason)
    )]
    Policy { version: u64, reason: String },
    /// The HA2 stream broke or carried something undecodable.
    #[error("HA2 link: {reason}")]
    Link { reason: String },
}

/// A configuration (file, policy, argument) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or written.
    #[error("{}: {what}: {source}", path.display())]
    File {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The file does not validate or does not fit this node.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// A request the node refuses in its current state (apply on a passive).
    #[error("{0}")]
    Refused(String),
    /// A text that is not a deployment file or a policy; the caller names
    /// the file (or the peer) it came from.
    #[error("{0}")]
    Malformed(String),
    /// A new policy applied to the kernel but could not be persisted: the
    /// kernel was put back on the running version.
    #[error("{source}; the kernel is back on policy version {back_on}")]
    NotPersisted {
        back_on: u64,
        #[source]
        source: Box<ConfigError>,
    },
}

/// The kernel refused or failed something the daemon asked of it.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Applying a plan failed; everything it changed was undone.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A driver call failed.
    #[error("{step}: {source}")]
    Driver {
        step: &'static str,
        #[source]
        source: hafw_kernel::Error,
    },
    /// Withdrawing left something behind.
    #[error("withdraw left something behind:{}", .problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Withdraw { problems: Vec<String> },
    /// A failed policy change could not put the previous plan back.
    #[error("config rollback: the previous plan did not apply again: {source}")]
    Rollback {
        #[source]
        source: ApplyError,
    },
    /// A conntrack operation of session sync failed.
    #[error("session sync: {what}: {source}")]
    Conntrack {
        what: String,
        #[source]
        source: hafw_kernel::Error,
    },
}

/// The host cannot run the node as asked.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A system resource (socket, thread, runtime, signal) could not be had.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Something the node needs is missing or wrong; the message says the fix.
    #[error("{0}")]
    Missing(String),
    /// A thread of the daemon stopped.
    #[error("the {0} thread has stopped")]
    Stopped(&'static str),
    /// A thread of the daemon did not answer a request.
    #[error("the {0} thread did not answer")]
    NoAnswer(&'static str),
    /// The session-sync cores refused the daemon's settings (a bug: the
    /// daemon's settings are constants).
    #[error(transparent)]
    SyncSettings(#[from] hafw_ha::sessions::ConfigError),
}

impl SetupError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SetupError::Io {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_peer_policy_reason_is_logged_escaped() {
        let e = PeerError::Policy {
            version: 3,
            reason: "zone \"\x1b[2Jx\"\nhafw[fw-a] forged line".into(),
        };
        let shown = e.to_string();
        assert_eq!(
            shown,
            "the peer's policy version 3 does not apply here: zone \"\\u{1b}[2Jx\"\\nhafw[fw-a] forged line"
        );
    }

    #[test]
    fn the_level_follows_who_is_at_fault() {
        let peer: DaemonError = PeerError::Refused {
            reason: "bad tag".into(),
        }
        .into();
        let config: DaemonError = ConfigError::Refused("passive".into()).into();
        let kernel: DaemonError = KernelError::Withdraw {
            problems: vec!["route".into()],
        }
        .into();
        let setup: DaemonError = SetupError::Stopped("HA").into();
        assert_eq!(peer.level(), Level::Debug);
        assert_eq!(config.level(), Level::Warn);
        assert_eq!(kernel.level(), Level::Error);
        assert_eq!(setup.level(), Level::Error);
    }

    #[test]
    fn the_source_reaches_the_original_error() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e: DaemonError = ConfigError::File {
            path: "/etc/hafw/deployment.toml".into(),
            what: "read",
            source: io,
        }
        .into();
        assert!(e.to_string().starts_with("/etc/hafw/deployment.toml: read"));
        // transparent: the wrapper's source is the inner error's source.
        let src = e.source().expect("a source");
        assert_eq!(src.to_string(), "denied");
    }
}
