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
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let files = match hafw_model::render::terraform::render(&dep, &text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: error: {e}", file.display());
            return ExitCode::from(EXIT_INVALID);
        }
    };
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

/// `hafw plan user-data`: one node's first-boot script, with the key from
/// `key_file` embedded (see `hafw_model::render::bootstrap`).
pub fn plan_user_data(
    file: &Path,
    node: &str,
    key_file: &Path,
    opts: &hafw_model::render::bootstrap::Bootstrap,
) -> ExitCode {
    use hafw_model::render::bootstrap::{user_data, KeySource};
    let dep = match load(file) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let key = match read_key(key_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match user_data(&dep, &text, node, KeySource::Bytes(&key), opts) {
        Ok(script) => {
            print!("{script}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: error: {e}", file.display());
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// The key file's bytes: a key, not whatever file is named.
fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let max = hafw_daemon::ha::keyfile::MAX_KEY_FILE_LEN;
    let f = std::fs::File::open(path).map_err(|e| {
        format!(
            "cannot read the key file {}: {e}; create it with `hafw keygen {}`",
            path.display(),
            path.display()
        )
    })?;
    let mut key = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut key)
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    if key.len() as u64 > max {
        return Err(format!(
            "the key file {} is longer than {max} bytes: not a key; create one with `hafw keygen --force {}`",
            path.display(),
            path.display()
        ));
    }
    Ok(key)
}
