//! Pure renderings of a validated deployment.
pub mod bootstrap;
pub mod nft;
pub mod node;
pub mod security_group;
pub mod terraform;
