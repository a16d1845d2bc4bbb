//! hafw-model: the deployment file, its validation against the cloud's rules,
//! and the pure renderings derived from it (node plan, nftables ruleset,
//! routes, Terraform). No I/O beyond reading the file.

pub mod addr;
pub mod diag;
pub mod examples;
pub mod hooks;
pub mod logging;
pub mod query;
pub mod render;
pub mod resolve;
pub mod sessions;
pub mod spec;
pub mod validate;

use std::path::Path as FsPath;

pub use diag::{Diagnostic, Diagnostics, Location, Path};
pub use spec::Deployment;

/// Larger files are refused before parsing: a deployment is a few kB, and a
/// bound keeps a mistaken path (a log, an image) from eating memory.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Reads, parses and validates a deployment file. Every problem is returned at
/// once, located; nothing is returned half-valid.
pub fn load(path: &FsPath) -> Result<Deployment, Diagnostics> {
    let file = path.display().to_string();
    let fail = |message: String, fix: &str| Diagnostics {
        file: file.clone(),
        items: vec![Diagnostic::new(Path::root(), message, fix)],
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        fail(
            format!("cannot read the file: {e}"),
            "check the path and permissions",
        )
    })?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(fail(
            format!(
                "the file is {} bytes; a deployment file may be at most {} bytes",
                meta.len(),
                MAX_FILE_BYTES
            ),
            "check that this is the deployment file you meant",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        fail(
            format!("cannot read the file: {e}"),
            "check the path and permissions",
        )
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| fail("the file is not UTF-8 text".into(), "save it as UTF-8 TOML"))?;
    parse(&file, &text)
}

/// Parses and validates deployment text; `file` names it in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Deployment, Diagnostics> {
    let locator = diag::Locator::new(text);
    if text.trim().is_empty() {
        return Err(Diagnostics {
            file: file.into(),
            items: vec![Diagnostic {
                location: Some(Location { line: 1, column: 1 }),
                ..Diagnostic::new(
                    Path::root(),
                    "the file is empty",
                    "start from examples/alicloud-havip.toml",
                )
            }],
        });
    }
    if text.len() > MAX_FILE_BYTES {
        return Err(Diagnostics {
            file: file.into(),
            items: vec![Diagnostic::new(
                Path::root(),
                format!(
                    "the text is {} bytes; the limit is {MAX_FILE_BYTES}",
                    text.len()
                ),
                "check that this is the deployment file you meant",
            )],
        });
    }
    let dep: Deployment = match toml::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            let location = e.span().map(|s| locator.position(s.start));
            // A refused value (not a syntax error) names its field.
            let path = e
                .span()
                .and_then(|s| locator.scalar_path_at(s.start))
                .unwrap_or_else(Path::root);
            let fix = parse_fix(&e, &path);
            return Err(Diagnostics {
                file: file.into(),
                items: vec![Diagnostic {
                    location,
                    ..Diagnostic::new(path, parse_message(&e), fix)
                }],
            });
        }
    };
    let mut items = validate::validate(&dep);
    if items.is_empty() {
        return Ok(dep);
    }
    for d in &mut items {
        d.location = locator.locate(&d.path);
    }
    items.sort_by_key(|d| d.location.map(|l| (l.line, l.column)));
    Err(Diagnostics {
        file: file.into(),
        items,
    })
}

fn parse_message(e: &toml::de::Error) -> String {
    e.message().trim().replace('\n', " ")
}

fn parse_fix(e: &toml::de::Error, path: &Path) -> String {
    let m = e.message();
    if m.contains(spec::ZeroError::MUST) {
        let key = match path.0.last() {
            Some(diag::Seg::Key(k)) => k.as_str(),
            _ => "the key",
        };
        let default = match key {
            "heartbeat_interval_ms" | "miss_count" => "the profile's",
            _ => "its default",
        };
        return format!("set {key} to 1 or more, or leave it out to use {default}");
    }
    if m.contains("unknown field") || m.contains("unknown variant") {
        "use one of the names listed; see examples/alicloud-havip.toml"
    } else if m.contains("missing field") {
        "add the field; see examples/alicloud-havip.toml"
    } else if m.contains("invalid type") {
        "write the value with the type shown; see examples/alicloud-havip.toml"
    } else {
        "correct the value as the message says; see examples/alicloud-havip.toml"
    }
    .to_string()
}
