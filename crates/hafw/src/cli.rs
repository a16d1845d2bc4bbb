//! Command implementations: each loads the deployment, prints, and maps
//! failures to exit codes (2 for a deployment that does not validate).

use std::path::Path;
use std::process::ExitCode;

use hafw_model::Deployment;

/// Exit status for a deployment file that does not validate.
pub const EXIT_INVALID: u8 = 2;

pub fn load(file: &Path) -> Result<Deployment, ExitCode> {
    hafw_model::load(file).map_err(|d| {
        eprintln!("{d}");
        ExitCode::from(EXIT_INVALID)
    })
}

pub fn validate(file: &Path) -> ExitCode {
    match load(file) {
        Ok(dep) => {
            println!(
                "{}: ok: deployment `{}`, {} vSwitches, {} instances, {} HAVIPs, {} route tables, {} nodes",
                file.display(),
                dep.name,
                dep.cloud.vswitches.len(),
                dep.cloud.instances.len(),
                dep.cloud.havips.len(),
                dep.cloud.route_tables.len(),
                dep.nodes.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
