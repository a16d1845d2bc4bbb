//! First boot: the user data (cloud-init) of one firewall node.
//!
//! [`user_data`] returns a POSIX `sh` script: the node's parameters, the
//! deployment file and the systemd unit as quoted heredocs (nothing in
//! them is expanded), then the body kept in `dist/bootstrap.sh`. The body
//! installs hafw (from a package URL, or checks the image has it), writes
//! `/etc/hafw` (0700), `deployment.toml`, `hafw.env` (`NODE=`), the HA key
//! (0600, root, written via a temporary file and a rename), sets the host
//! name and starts `hafw.service` without waiting for READY. It logs to
//! `/var/log/hafw-bootstrap.log` and stderr (cloud-init's console), stops
//! at the first failure, and may be run again.
//!
//! # How the key gets in, and why
//! [`KeySource::Terraform`] renders a `templatefile()` template:
//! Terraform generates the key (`random_id`, 32 bytes, hashicorp/random)
//! and passes it in as `ha_key_b64`, so one `terraform apply` gives both
//! nodes the same key with nothing to copy by hand. The cost: the key is in
//! the Terraform state and in each instance's user data. The state must be
//! kept as a secret anyway (it holds every resource's attributes); user
//! data can be read by any process on the instance from the metadata
//! service, so the node's own ruleset lets only root reach
//! 100.100.100.200 (`output` chain, counter `metadata_refused`), and root
//! can read the key file anyway. The script installs the same rule in a
//! table of its own (`inet hafw_metadata`) before it writes anything, so
//! the time before hafw starts and after it stops is covered too, until
//! the next reboot (after which hafw's own table covers it once running).
//! Not covered: the user data is served from the instance's first second,
//! before cloud-init runs this script, and after a reboot until hafw runs. The alternative, a secret store (KMS
//! Secrets Manager) read with the instance's RAM role, keeps the key out of
//! the state, but needs a role, a policy, a secret and its rotation per
//! deployment, and the role's credentials are served by the same metadata
//! service, so it needs the same root-only rule. We chose the simpler one;
//! a deployment that cannot keep its state secret should use the store.
//! [`KeySource::Bytes`] embeds a key read from a file (`hafw plan
//! user-data --key-file`), for a script used without Terraform.
//!
//! A template must not contain `${` or `%{` other than its own
//! placeholders ([`TEMPLATE_VARS`]): the body has none, and text from the
//! deployment file has them doubled (`$${`), which `templatefile()` turns
//! back into the original bytes.

use crate::spec::Deployment;

/// The body of every script: `dist/bootstrap.sh`.
pub const BODY: &str = include_str!("../../../../dist/bootstrap.sh");

/// The unit the script installs when neither a package nor the image
/// brought one.
pub const UNIT: &str = include_str!("../../../../dist/hafw.service");

/// The variables a Terraform template expects from `templatefile()`.
pub const TEMPLATE_VARS: [&str; 3] = ["ha_key_b64", "package_url", "package_sha256"];

/// Where hafw comes from on the instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bootstrap {
    /// `None`: the image already has hafw. A URL ending in `.deb` is
    /// installed with apt-get; any other is the binary itself, installed
    /// at `/usr/bin/hafw`. http, https or file.
    pub package_url: Option<String>,
    /// The SHA-256 (hex) the download must have; `None`: not checked.
    pub package_sha256: Option<String>,
}

/// Where the script takes the HA key from.
#[derive(Debug, Clone, Copy)]
pub enum KeySource<'a> {
    /// The key's bytes (a key file's contents), embedded in the script.
    Bytes(&'a [u8]),
    /// A Terraform template: key, package URL and checksum are the
    /// `templatefile()` variables [`TEMPLATE_VARS`]; `Bootstrap` is unused.
    Terraform,
}

/// The fewest key bytes `hafw run` accepts.
const KEY_MIN: usize = 32;

/// The user data of `node`: `file_text` is the deployment file as written
/// (embedded byte for byte), `dep` its parsed form.
pub fn user_data(
    dep: &Deployment,
    file_text: &str,
    node: &str,
    key: KeySource<'_>,
    opts: &Bootstrap,
) -> Result<String, String> {
    let n = dep.node(node).ok_or_else(|| {
        format!("no [[node]] named `{node}` in the deployment; use one of its node names")
    })?;
    check_host_name(node)?;
    if !n.key_file.starts_with('/') || n.key_file.chars().any(char::is_control) {
        return Err(format!(
            "node `{node}`: key_file {:?} must be an absolute path without control characters, e.g. /etc/hafw/ha.key",
            n.key_file
        ));
    }
    let template = matches!(key, KeySource::Terraform);
    let (key_v, url_v, sha_v) = match key {
        KeySource::Terraform => (
            "'${ha_key_b64}'".to_string(),
            "'${package_url}'".to_string(),
            "'${package_sha256}'".to_string(),
        ),
        KeySource::Bytes(bytes) => {
            if bytes.len() < KEY_MIN {
                return Err(format!(
                    "the key file holds {} bytes, fewer than {KEY_MIN}; create one with `hafw keygen FILE`",
                    bytes.len()
                ));
            }
            let url = opts.package_url.as_deref().unwrap_or("");
            let sha = opts.package_sha256.as_deref().unwrap_or("");
            check_url(url, sha)?;
            let hex64 = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
            if !sha.is_empty() && !hex64 {
                return Err(format!(
                    "--package-sha256 {sha:?} is not a SHA-256: give 64 hex digits (sha256sum FILE)"
                ));
            }
            (
                sh_quote(&base64(bytes)),
                sh_quote(url),
                sh_quote(&sha.to_ascii_lowercase()),
            )
        }
    };
    // Text that comes from the file is escaped for a template; the
    // placeholders above are not.
    let lit = |s: &str| {
        if template {
            template_escape(s)
        } else {
            s.to_string()
        }
    };
    let mut out = String::new();
    out.push_str("#!/bin/sh\n");
    out.push_str(&format!(
        "# hafw first boot of node {node} (deployment {}), rendered by hafw plan.\n",
        lit(&one_line(&dep.name))
    ));
    out.push_str("# It holds the pair's HA key: treat it as a secret.\n");
    out.push_str(&format!("HAFW_NODE={}\n", sh_quote(node)));
    out.push_str(&format!("HAFW_KEY_FILE={}\n", lit(&sh_quote(&n.key_file))));
    out.push_str(&format!("HAFW_KEY_B64={key_v}\n"));
    out.push_str(&format!("HAFW_PACKAGE_URL={url_v}\n"));
    out.push_str(&format!("HAFW_PACKAGE_SHA256={sha_v}\n"));
    let trim = !file_text.is_empty() && !file_text.ends_with('\n');
    out.push_str(&format!("HAFW_DEPLOYMENT_TRIM={}\n", u8::from(trim)));
    heredoc_function(
        &mut out,
        "hafw_deployment",
        "HAFW_DEPLOYMENT_EOF",
        &lit(file_text),
    );
    heredoc_function(&mut out, "hafw_unit", "HAFW_UNIT_EOF", &lit(UNIT));
    // The body's own first line is its shebang: ours is already written.
    let body = BODY.split_once('\n').map_or(BODY, |(_, rest)| rest);
    out.push_str(body);
    // The cloud takes at most 32 KB of raw user data. A template's size is
    // the script's less the key (44 base64 characters) and the package URL
    // and checksum, which Terraform fills in.
    let filled = if template {
        out.len() + 44 + opts.package_url.as_ref().map_or(0, String::len) + 64
    } else {
        out.len()
    };
    if filled > USER_DATA_MAX {
        return Err(format!(
            "the user data of node `{node}` is {filled} bytes, more than the cloud's {USER_DATA_MAX}: \
             the deployment file is embedded whole, so shorten it (comments, [lab]) or put it in the image"
        ));
    }
    Ok(out)
}

/// ECS: "The maximum size of the raw data is 32 KB" (RunInstances UserData).
pub const USER_DATA_MAX: usize = 32 * 1024;

/// `name() { cat <<'DELIM' ... DELIM }`, with a delimiter no line of
/// `text` equals.
fn heredoc_function(out: &mut String, name: &str, delim: &str, text: &str) {
    let mut d = delim.to_string();
    let mut n = 0;
    while text.lines().any(|l| l == d) {
        n += 1;
        d = format!("{delim}_{n}");
    }
    out.push_str(&format!("{name}() {{\n\tcat <<'{d}'\n"));
    out.push_str(text);
    if !text.ends_with('\n') && !text.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!("{d}\n}}\n"));
}

/// A node name is the host name (ECS `host_name` too) and `NODE=` in a
/// systemd environment file: letters, digits, inner `-` and `.`, no empty
/// label between dots, up to 63 characters.
pub fn check_host_name(node: &str) -> Result<(), String> {
    // ECS host names are 2 to 64 characters; DNS labels at most 63.
    let ok = node.len() >= 2
        && node.len() <= 63
        && node.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node `{node}` cannot be a host name: use letters, digits and inner `-` or `.` only (2 to 63) in [[node]] name and its cloud.instance"
        ))
    }
}

fn check_url(url: &str, sha256: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    if url.starts_with("http://") && sha256.is_empty() {
        return Err(format!(
            "--package-url {url:?} is plain http: anyone on the path could replace what the node runs as root; use https, or give --package-sha256"
        ));
    }
    let scheme_ok = ["http://", "https://", "file://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "--package-url {url:?}: give an http, https or file URL without spaces"
        ));
    }
    Ok(())
}

/// `s` as one single-quoted sh word.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` with every `${` and `%{` doubled, so `templatefile()` gives back `s`.
pub fn template_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if (c == '$' || c == '%') && chars.peek() == Some(&'{') {
            out.push(c);
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Standard base64 (RFC 4648, with padding): the script decodes it with
/// coreutils' `base64 -d`, and Terraform's `random_id.b64_std` is the same.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
