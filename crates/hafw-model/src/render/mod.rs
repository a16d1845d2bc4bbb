//! Pure renderings of a validated deployment.
pub mod nft;
pub mod node;
pub mod terraform;
