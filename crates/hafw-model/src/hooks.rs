//! `[policy.hooks]`: what a node runs when its HA state changes.
//!
//! In the policy, shared by the pair and carried by config sync, rather
//! than per node: an operator wants the same notification from whichever
//! node changes state, and a hook that only one node has leaves the other
//! node's transitions unseen. The command is a path on each node; whether
//! it exists is checked when the daemon starts (`hafw run` refuses to
//! start without it), not here, since `hafw plan` and config sync read the
//! file on machines that need not have it.

use serde::Deserialize;

use crate::spec::IntervalMs;

/// A hook's time limit when `timeout_ms` is left out.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;

/// The longest `timeout_ms` allowed: hooks run one after the other, so one
/// stuck hook delays every later event by up to this.
pub const MAX_TIMEOUT_MS: u32 = 300_000;

/// The most words of `on_transition` (the command and its arguments).
pub const MAX_ARGS: usize = 64;

/// The longest word of `on_transition`, and the longest `webhook`.
pub const MAX_WORD: usize = 4096;

/// `[policy.hooks]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// `["/absolute/command", "arg", ...]`, run (not through a shell) on
    /// every event with the `HAFW_*` environment and the event's JSON on
    /// stdin.
    pub on_transition: Option<Vec<String>>,
    /// `http://host[:port]/path`: each event's JSON is POSTed there.
    pub webhook: Option<String>,
    /// Each run's limit (the command's process group is killed at it);
    /// left out, [`DEFAULT_TIMEOUT_MS`].
    pub timeout_ms: Option<IntervalMs>,
}

impl Hooks {
    /// Whether anything is to run.
    pub fn any(&self) -> bool {
        self.on_transition.is_some() || self.webhook.is_some()
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(
            self.timeout_ms.map_or(DEFAULT_TIMEOUT_MS, |t| t.get()),
        ))
    }
}

/// A parsed `webhook`: plain HTTP only (hafw carries no TLS client; POST to
/// a local relay for HTTPS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl Webhook {
    /// Parses `http://host[:port][/path]`; the error says what is wrong.
    pub fn parse(url: &str) -> Result<Webhook, String> {
        if url.len() > MAX_WORD {
            return Err(format!("the URL is longer than {MAX_WORD} bytes"));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("the URL holds a space or a control character".into());
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(if url.starts_with("https://") {
                "https is not supported (hafw has no TLS client)".into()
            } else {
                "the URL must start with http://".into()
            });
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("the URL holds user information (`user@`)".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("the port `{p}` is not 1 to 65535"))?;
                (h, port)
            }
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(format!(
                "the host `{host}` is not a name or an IPv4 address"
            ));
        }
        Ok(Webhook {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// Every problem of `hooks`, as (dotted path, message, fix).
pub fn problems(hooks: &Hooks) -> Vec<(String, String, String)> {
    let mut out = vec![];
    let mut err =
        |path: String, message: String, fix: &str| out.push((path, message, fix.to_string()));
    if let Some(cmd) = &hooks.on_transition {
        let path = "policy.hooks.on_transition";
        match cmd.first() {
            None => err(
                path.into(),
                "the hook command is empty".into(),
                "give the command's absolute path first, e.g. [\"/usr/local/bin/notify\", \"arg\"], or remove on_transition",
            ),
            Some(first) if !first.starts_with('/') => err(
                format!("{path}.0"),
                format!("the hook command `{first}` is not an absolute path"),
                "give the command's absolute path, e.g. /usr/local/bin/notify: hooks are not looked up in PATH",
            ),
            Some(_) => {}
        }
        if cmd.len() > MAX_ARGS {
            err(
                path.into(),
                format!(
                    "the hook command has {} words; the limit is {MAX_ARGS}",
                    cmd.len()
                ),
                "pass fewer arguments, or put them in a script",
            );
        }
        for (i, w) in cmd.iter().enumerate() {
            if w.contains('\0') || w.len() > MAX_WORD {
                err(
                    format!("{path}.{i}"),
                    format!("word {i} of the hook command holds a NUL byte or is longer than {MAX_WORD} bytes"),
                    "remove the NUL byte or shorten the word",
                );
            }
        }
    }
    if let Some(url) = &hooks.webhook {
        if let Err(e) = Webhook::parse(url) {
            err(
                "policy.hooks.webhook".into(),
                format!("the webhook `{}` is refused: {e}", url.escape_debug()),
                "use http://HOST[:PORT]/PATH (for https, POST to a local relay)",
            );
        }
    }
    if let Some(t) = hooks.timeout_ms {
        if t.get() > MAX_TIMEOUT_MS {
            err(
                "policy.hooks.timeout_ms".into(),
                format!("a hook timeout of {t} ms is longer than {MAX_TIMEOUT_MS} ms"),
                "set timeout_ms to 300000 or less: hooks run in turn, so a stuck hook holds back the next events",
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls() {
        assert_eq!(
            Webhook::parse("http://10.0.0.9:9000/hafw/events").unwrap(),
            Webhook {
                host: "10.0.0.9".into(),
                port: 9000,
                path: "/hafw/events".into()
            }
        );
        assert_eq!(
            Webhook::parse("http://relay.local").unwrap(),
            Webhook {
                host: "relay.local".into(),
                port: 80,
                path: "/".into()
            }
        );
        for bad in [
            "https://a/",
            "ftp://a/",
            "http://:80/",
            "http://a:0/",
            "http://a:99999/",
            "http://a/ b",
            "http://a/\r\nX-Injected: 1",
            "http://u@a/",
            "http://[::1]/",
        ] {
            assert!(Webhook::parse(bad).is_err(), "{bad}");
        }
    }
}
