//! The one error type of the crate: what was being done, to which object
//! (named with its namespace), and what the kernel or the system answered.

use std::io;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a driver call can fail with. No variant comes from a panic: the
/// kernel's answers are always turned into one of these.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call (open, mount, setns, socket, ...) failed.
    #[error("{op} {object}: {source}")]
    Io {
        /// What was being done ("create netns", "bind ARP socket").
        op: &'static str,
        /// The object, with its namespace ("interface eth0 in netns vpc").
        object: String,
        /// The system's answer; `raw_os_error()` gives the errno.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a netlink request.
    #[error("{op} {object}: kernel answered: {message}")]
    Netlink {
        /// What was being done ("add route").
        op: &'static str,
        /// The object, with its namespace.
        object: String,
        /// The errno the kernel answered with, when it gave one.
        errno: Option<i32>,
        /// The kernel's answer as text.
        message: String,
    },
    /// A named object does not exist.
    #[error("{op}: {object} does not exist")]
    NotFound {
        /// What was being done.
        op: &'static str,
        /// The missing object, with its namespace.
        object: String,
    },
    /// An argument was refused before anything was sent to the kernel.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What kind of value ("interface name", "sysctl key").
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused and what would be accepted.
        reason: String,
    },
    /// `nft -f -` refused a ruleset; `stderr` carries nft's message with the
    /// offending line.
    #[error("nft in {ns} exited with {status}: {stderr}")]
    Nft {
        /// The namespace ("current netns" when none was named).
        ns: String,
        /// nft's exit status, as text ("exit status: 1").
        status: String,
        /// What nft printed on standard error.
        stderr: String,
    },
    /// A job sent to a [`crate::Netns`] got no answer: the job panicked, or
    /// the namespace's worker thread has stopped (reopen the namespace).
    #[error("{op} in netns {ns}: the job panicked or the namespace's worker thread has stopped")]
    WorkerGone {
        /// What was being done.
        op: &'static str,
        /// The namespace.
        ns: String,
    },
}

impl Error {
    /// The errno behind this error, when the kernel or the system gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Netlink { errno, .. } => *errno,
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, object: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op,
            object: object.into(),
            source,
        }
    }

    pub(crate) fn netlink(
        op: &'static str,
        object: impl Into<String>,
        err: rtnetlink::Error,
    ) -> Self {
        let (errno, message) = match &err {
            // The kernel sends a negative errno in NLMSG_ERROR.
            rtnetlink::Error::NetlinkError(msg) => {
                let errno = msg.code.map(|c| c.get().abs());
                (errno, msg.to_io().to_string())
            }
            other => (None, other.to_string()),
        };
        Error::Netlink {
            op,
            object: object.into(),
            errno,
            message,
        }
    }

    pub(crate) fn invalid(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// How an object is named in errors: `"{what} in netns {ns}"`.
pub(crate) fn in_ns(what: impl std::fmt::Display, ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("{what} in netns {ns}"),
        None => format!("{what} in the current netns"),
    }
}
