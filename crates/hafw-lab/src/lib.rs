//! The emulated VPC and its test hosts.
