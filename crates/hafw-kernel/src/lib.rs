//! Drivers, one module per kernel interface. Thin: each function does one
//! kernel operation and turns the kernel's answer into a value or an
//! [`Error`] naming the operation, the object and its namespace.
//!
//! | module | what it drives |
//! |---|---|
//! | [`netns`] | named namespaces under `/run/netns` (`ip netns add/del/list`) |
//! | [`exec`] | [`in_netns`] (run a closure in a namespace) and [`command`] (spawn a process in one) |
//! | [`rtnl`] | [`Rtnl`] (a route-netlink connection) and [`Netns`] (a worker thread inside a namespace) |
//! | [`link`] | veth pairs across namespaces, up/down, delete, index, state |
//! | [`addr`] | IPv4 addresses on interfaces |
//! | [`route`] | IPv4 routes in any table, gateway, `onlink`, `scope link` |
//! | [`rule`] | policy routing rules (`iif X lookup T`) |
//! | [`sysctl`] | `/proc/sys/net` keys of a namespace |
//! | [`arp`] | gratuitous ARP and an ARP listener (AF_PACKET) |
//! | [`nft`] | nftables rulesets through `nft -f -` |
//! | [`nflog`] | NFLOG: the packets `log group N` rules hand over (traffic logs) |
//! | [`conntrack`] | ctnetlink: dump, events, create/update with NAT, delete of conntrack entries |
//!
//! Netlink functions take an [`Rtnl`]: in the daemon, `Rtnl::connect()` in
//! its own namespace; in the lab, the one a [`Netns`] hands to its jobs:
//!
//! ```no_run
//! # async fn demo() -> hafw_kernel::Result<()> {
//! use hafw_kernel::{link, Netns};
//! hafw_kernel::netns::create("vpc")?;
//! let vpc = Netns::open("vpc")?;
//! vpc.run(|nl| async move { link::set_up(&nl, "lo").await }).await?;
//! # Ok(()) }
//! ```
//!
//! Traps met while writing this (see also the crate README):
//! - `setns` moves only the calling thread, so it is called only on threads
//!   made for it ([`in_netns`], [`Netns`]) or in a child before exec
//!   ([`command`]); never on a tokio worker.
//! - A socket stays in the namespace it was created in; `/proc/sys/net` files
//!   belong to the namespace of the thread that opened them.
//! - A namespace is created with `unshare` on a throwaway thread and bind
//!   mounted from `/proc/thread-self/ns/net` (`/proc/self` would be the main
//!   thread's namespace).

pub mod addr;
pub mod arp;
pub mod clock;
pub mod conntrack;
mod error;
pub mod exec;
pub mod link;
mod mac;
pub mod netns;
pub mod nflog;
pub mod nft;
pub mod route;
pub mod rtnl;
pub mod rule;
pub mod sysctl;

pub use error::{Error, Result};
pub use exec::{command, in_netns};
pub use mac::Mac;
pub use rtnl::{Netns, Rtnl};
