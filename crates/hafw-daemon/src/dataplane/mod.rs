//! The node's data plane in the kernel: apply the plan (links, addresses,
//! routes, sysctls, the nftables ruleset) and record what changed, compare
//! the live state with the plan, withdraw exactly what was added, and
//! announce floating addresses.

pub mod apply;
pub mod check;
pub mod garp;
pub mod nft_error;
pub mod nft_view;
pub mod preflight;
pub mod sessions;
pub mod withdraw;
