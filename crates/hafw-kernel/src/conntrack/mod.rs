//! Conntrack through ctnetlink: dump the table, follow its events, and
//! install entries with their NAT binding and TCP state, so that a passive
//! firewall can hold the active's connections and carry them on after a
//! failover (issue 6, session sync).
//!
//! - [`Entry`] / [`Tuple`]: plain data; [`Entry::nat`] derives the NAT from
//!   the tuples (dumps carry no NAT attributes).
//! - [`Conntrack`]: [`dump`](Conntrack::dump), [`create`](Conntrack::create)
//!   (upsert), [`update`](Conntrack::update), [`delete`](Conntrack::delete),
//!   [`flush`](Conntrack::flush), [`create_batch`](Conntrack::create_batch).
//! - [`Events`]: [`Event::New`], [`Event::Update`], [`Event::Destroy`], and
//!   [`Event::Overrun`] when the kernel dropped events (re-dump).
//!
//! Echo suppression: [`Conntrack::set_inject_mark`] ORs a mark bit into every
//! entry it writes, and [`Events::ignore_mark`] with the same bit drops the
//! events those entries cause on the node that injected them.
//!
//! ```no_run
//! # fn demo() -> hafw_kernel::Result<()> {
//! use hafw_kernel::conntrack::{Conntrack, Event, Events};
//! const SYNCED: u32 = 1 << 31;
//! let mut active = Conntrack::open(Some("fw1"))?;
//! let mut passive = Conntrack::open(Some("fw2"))?;
//! passive.set_inject_mark(SYNCED);
//! let mut events = Events::open(Some("fw1"))?;
//! events.ignore_mark(SYNCED);
//! passive.create_batch(&active.dump()?)?;          // bulk sync
//! while let Some(ev) = events.recv(None)? {        // incremental
//!     match ev {
//!         Event::New(e) | Event::Update(e) => passive.create(&e)?,
//!         Event::Destroy(e) => passive.delete(&e.orig, e.zone)?,
//!         Event::Overrun => { passive.create_batch(&active.dump()?)?; }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Traps (linux-kernel-notes 3 and 4), handled here:
//! - create needs `IPS_CONFIRMED` (else EBUSY); EXPECTED/DYING are refused;
//!   the NAT status bits are ignored by the kernel.
//! - NAT must be sent as `CTA_NAT_DST`/`CTA_NAT_SRC` with the *un-translated*
//!   reply tuple; the kernel then computes the translated reply itself. An
//!   existing entry's NAT cannot be changed (EOPNOTSUPP), so updates omit it.
//! - TCP flags are sent with a mask of the connection properties only
//!   (window scale, SACK, close-init, liberal); the kernel re-learns the
//!   window from the next packets.
//! - NEW and UPDATE events differ only by `NLM_F_CREATE|NLM_F_EXCL`.
//!
//! - [`SessionEvents`]: new and destroy events only, with the destroyed
//!   entry's [`Accounting`] (packets, bytes, start and stop), for the
//!   traffic log.
//!
//! Not carried: IPv6, helpers and expectations, sequence adjustment
//! (`CTA_SEQ_ADJ_*`), labels, counters, GRE keys.

pub(crate) mod codec;
mod entry;
mod sessions;
pub(crate) mod socket;

pub use entry::{proto, status, tcp_flags, tcp_state, Binding, Entry, Nat, TcpInfo, Tuple};
pub use sessions::{Accounting, Counters, Session, SessionEvents};
pub use socket::{BatchReport, Conntrack, Event, Events, RCVBUF, REQUEST_TIMEOUT};
