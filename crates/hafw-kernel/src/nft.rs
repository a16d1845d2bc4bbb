//! nftables rulesets, applied as text through `nft -f -` inside a namespace.
//! nft parses and checks the whole text and commits it in one transaction:
//! a refused ruleset changes nothing.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::error::in_ns;
use crate::{command, Error, Result};

/// Where Debian's `nftables` package installs nft.
pub const NFT: &str = "/usr/sbin/nft";

/// nftables address families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `ip` (IPv4)
    Ip,
    /// `ip6`
    Ip6,
    /// `inet` (IPv4 and IPv6)
    Inet,
    /// `arp`
    Arp,
    /// `bridge`
    Bridge,
    /// `netdev`
    Netdev,
}

impl Family {
    /// The keyword nft uses.
    pub fn keyword(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Arp => "arp",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
        }
    }
}

/// Applies `ruleset` (nft syntax, as in a file given to `nft -f`) in
/// namespace `ns` (`None`: this process's). On refusal the error carries
/// nft's standard error, which names the offending line.
pub fn apply(ns: Option<&str>, ruleset: &str) -> Result<()> {
    run(ns, &["-f", "-"], Some(ruleset)).map(|_| ())
}

/// `nft list table FAMILY NAME` in namespace `ns`.
pub fn list_table(ns: Option<&str>, family: Family, table: &str) -> Result<String> {
    check_table_name(table)?;
    run(ns, &["list", "table", family.keyword(), table], None)
}

/// `nft -j list table FAMILY NAME` in namespace `ns`: the same listing as
/// JSON (libnftables' schema), counters included.
pub fn list_table_json(ns: Option<&str>, family: Family, table: &str) -> Result<String> {
    check_table_name(table)?;
    run(ns, &["-j", "list", "table", family.keyword(), table], None)
}

fn check_table_name(table: &str) -> Result<()> {
    let valid = !table.is_empty()
        && table
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(Error::invalid(
            "nft table name",
            table,
            "letters, digits, '_' and '-', starting with a letter or '_'",
        ));
    }
    Ok(())
}

/// `nft list ruleset` in namespace `ns`.
pub fn list_ruleset(ns: Option<&str>) -> Result<String> {
    run(ns, &["list", "ruleset"], None)
}

fn run(ns: Option<&str>, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let object = in_ns("nft", ns);
    let mut cmd = match ns {
        Some(ns) => command(ns, NFT)?,
        None => Command::new(NFT),
    };
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            std::io::Error::new(
                e.kind(),
                format!("{NFT} not found; install the nftables package"),
            )
        } else {
            e
        };
        Error::io("start", object.clone(), hint)
    })?;
    let output: std::io::Result<Output> = std::thread::scope(|scope| {
        // Write on another thread so a chatty nft cannot block us on a full pipe.
        let writer = child.stdin.take().map(|mut pipe| {
            let text = stdin.unwrap_or_default();
            scope.spawn(move || pipe.write_all(text.as_bytes()))
        });
        let output = child.wait_with_output();
        if let Some(writer) = writer {
            // nft may exit before reading everything (a fatal error early on):
            // its exit status and stderr tell more than our EPIPE.
            let _ = writer.join();
        }
        output
    });
    let output = output.map_err(|e| Error::io("wait for", object.clone(), e))?;
    if !output.status.success() {
        return Err(Error::Nft {
            ns: ns.map_or("the current netns".to_string(), |n| format!("netns {n}")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
