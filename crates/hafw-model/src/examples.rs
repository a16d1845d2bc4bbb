//! The shipped example deployments, built in so the lab demo, the benchmarks
//! and the tests run from anywhere without the repository.

/// The seed's deployment: two firewalls with four ENIs each behind two HAVIPs.
pub const SEED: &str = include_str!("../../../examples/alicloud-havip.toml");

/// The three-ENI variant (one data interface, management, HA2).
pub const ONE_ARM: &str = include_str!("../../../examples/alicloud-one-arm.toml");
