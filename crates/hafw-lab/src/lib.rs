//! The emulated VPC and its test hosts.

pub mod controller;
pub mod havip;
pub mod hosts;
pub mod lab;
pub mod pair;
pub mod sessions;
mod neigh;
pub mod topology;
