//! Validation against the cloud's rules (alicloud-havip.md) and the seed's.
use crate::diag::Diagnostic;
use crate::spec::Deployment;

pub fn validate(_dep: &Deployment) -> Vec<Diagnostic> {
    Vec::new()
}
