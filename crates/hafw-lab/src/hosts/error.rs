//! What can go wrong in a lab host, split by who is at fault: the caller's
//! configuration, the local system (bind, socket calls), or the peer (no
//! answer, an answer we cannot parse).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug)]
pub enum HostError {
    /// The caller asked for something that cannot work (rate 0, a URL we do
    /// not speak). The message says which value and what is accepted.
    Config(String),
    /// The local address could not be bound.
    Bind { addr: SocketAddr, source: io::Error },
    /// A local socket operation failed.
    Io { context: String, source: io::Error },
    /// The peer refused or could not be reached.
    Connect { addr: SocketAddr, source: io::Error },
    /// The peer did not answer in time.
    Timeout { context: String, after: Duration },
    /// The peer answered with something we cannot parse.
    Protocol(String),
}

impl HostError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> HostError {
        let context = context.into();
        move |source| HostError::Io { context, source }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Config(msg) => write!(f, "bad configuration: {msg}"),
            HostError::Bind { addr, source } => write!(
                f,
                "cannot bind {addr}: {source} (is the address assigned in this namespace and the \
                 port free?)"
            ),
            HostError::Io { context, source } => write!(f, "{context}: {source}"),
            HostError::Connect { addr, source } => write!(
                f,
                "cannot connect to {addr}: {source} (is the server running and the path routed?)"
            ),
            HostError::Timeout { context, after } => {
                write!(f, "{context}: no answer within {} ms", after.as_millis())
            }
            HostError::Protocol(msg) => write!(f, "unexpected answer from the peer: {msg}"),
        }
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HostError::Bind { source, .. }
            | HostError::Io { source, .. }
            | HostError::Connect { source, .. } => Some(source),
            HostError::Config(_) | HostError::Timeout { .. } | HostError::Protocol(_) => None,
        }
    }
}

/// Whether a read that returned `e` merely ran out of time (the platform says
/// `WouldBlock` or `TimedOut` depending on the socket option used).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
