//! ARP on AF_PACKET sockets: gratuitous announcements ([`announce`]) and a
//! listener that yields the ARP packets arriving on chosen interfaces
//! ([`Listener`], or [`AsyncListener`] under tokio).
//!
//! Sockets are created on a thread inside the namespace and stay there, so
//! receiving and sending can then happen from any thread.

mod frame;
mod socket;

pub use frame::{decode, gratuitous, ArpFields, ArpOp, Malformed, FRAME_LEN};
pub use socket::{announce, Announcer, ArpPacket, AsyncListener, Listener};
