//! Test support for every hafw crate: one seeded generator ([`Rng`]), the
//! byte mutations of the no-panic sweeps ([`mutate`]) and a deterministic
//! lossy link between two endpoints in simulated time ([`link`]).
//!
//! Everything here is deterministic from a seed, so a failing test names
//! its seed and replays exactly. It depends on none of the workspace's
//! crates: any of them can take it as a dev-dependency.

pub mod link;
pub mod mutate;
mod rng;

pub use rng::Rng;
