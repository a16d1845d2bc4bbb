//! The emulated VPC and its test hosts.

pub mod controller;
pub mod havip;
pub mod hosts;
pub mod instance_fs;
pub mod keepalived;
pub mod lab;
pub mod metadata;
mod neigh;
pub mod pair;
pub mod sessions;
pub mod topology;
