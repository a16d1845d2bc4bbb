//! What `hafw run` needs before it touches anything: root, and the nft
//! program. Each refusal names the fix.

use std::path::Path;

use hafw_kernel::nft::NFT;

pub fn check() -> Result<(), String> {
    check_with(effective_uid(), Path::new(NFT))
}

/// [`check`] with its facts given, so each refusal is testable.
pub fn check_with(uid: Option<u32>, nft: &Path) -> Result<(), String> {
    match uid {
        Some(0) => {}
        Some(uid) => {
            return Err(format!(
                "needs root (it changes addresses, routes, sysctls and nftables), but runs as uid {uid}; run it as root, e.g. with sudo"
            ))
        }
        None => {
            return Err(
                "cannot read the effective uid from /proc/self/status; is /proc mounted?".into(),
            )
        }
    }
    if !nft.exists() {
        return Err(format!(
            "{} not found: the ruleset is committed with nft; install the nftables package (apt-get install nftables)",
            nft.display()
        ));
    }
    Ok(())
}

/// The effective uid, read from `/proc/self/status` so no libc binding is
/// needed: its `Uid:` line lists real, effective, saved and fs uids.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_names_its_fix() {
        let e = check_with(Some(1000), Path::new("/usr/sbin/nft")).unwrap_err();
        assert!(e.contains("needs root") && e.contains("sudo"), "{e}");
        let e = check_with(Some(0), Path::new("/nonexistent/nft")).unwrap_err();
        assert!(e.contains("apt-get install nftables"), "{e}");
        assert!(check_with(None, Path::new("/usr/sbin/nft")).is_err());
    }

    #[test]
    fn effective_uid_is_the_second_number() {
        let status = "Name:\thafw\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_effective_uid(status), Some(0));
        assert_eq!(parse_effective_uid("Uid:\t5\t7\t5\t5\n"), Some(7));
        assert_eq!(parse_effective_uid("Name:\tx\n"), None);
    }
}
