//! Command implementations: each loads the deployment, prints, and maps
//! failures to exit codes (2 for a deployment that does not validate).

use std::path::Path;
use std::process::ExitCode;

pub use hafw_daemon::{load, EXIT_INVALID};

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

pub fn plan_terraform(file: &Path, output: Option<&Path>) -> ExitCode {
    let dep = match load(file) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let files = hafw_model::render::terraform::render(&dep);
    match output {
        None => {
            for (name, text) in files {
                println!("# ---- {name}\n{text}");
            }
            ExitCode::SUCCESS
        }
        Some(dir) => {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("error: cannot create {}: {e}", dir.display());
                return ExitCode::FAILURE;
            }
            for (name, text) in files {
                let path = dir.join(&name);
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
    }
}

pub fn plan_node(file: &Path, node: &str) -> ExitCode {
    let dep = match load(file) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match hafw_model::render::node::plan(&dep, node) {
        Ok(plan) => {
            print!("{plan}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: error: {e}", file.display());
            ExitCode::from(EXIT_INVALID)
        }
    }
}

pub fn keygen(file: &Path, force: bool) -> ExitCode {
    match hafw_daemon::ha::keyfile::generate(file, force) {
        Ok(()) => {
            println!(
                "{}: new HA key ({} bytes, mode 0600); copy this same file to the peer node",
                file.display(),
                hafw_daemon::ha::keyfile::KEY_LEN
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
