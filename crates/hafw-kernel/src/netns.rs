//! Named network namespaces, the way `ip netns add/del/list` keeps them: a
//! file under `/run/netns/` with the namespace bind-mounted on it, so
//! `ip netns exec NAME` and `ip netns list` see what this module creates.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::{Error, Result};

/// Where iproute2 keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Creates namespace `name` (like `ip netns add`). Fails with EEXIST when it
/// already exists.
pub fn create(name: &str) -> Result<()> {
    let path = path(name)?;
    let object = format!("netns {name}");
    prepare_run_dir().map_err(|e| Error::io("prepare", NETNS_DIR, e))?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)
        .map_err(|e| Error::io("create netns", object.clone(), e))?;
    // unshare() moves only the calling thread; a throwaway thread keeps every
    // other thread (tokio workers included) in the namespace it was in.
    let bind_path = path.clone();
    let made = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        // /proc/self would name the main thread's namespace, not this one's.
        mount(
            Some("/proc/thread-self/ns/net"),
            &bind_path,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("namespace creation thread panicked")));
    if let Err(e) = made {
        let _ = fs::remove_file(&path);
        return Err(Error::io("create netns", object, e));
    }
    Ok(())
}

/// Deletes namespace `name` (like `ip netns del`). A missing namespace is not
/// an error. The namespace itself lives on while a process or socket holds it.
pub fn delete(name: &str) -> Result<()> {
    let path = path(name)?;
    let object = format!("netns {name}");
    match umount2(&path, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (a half-created namespace); ENOENT: gone.
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::io("unmount netns", object, e.into())),
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("delete netns", object, e)),
    }
}

/// The names under `/run/netns`, sorted (what `ip netns list` shows).
pub fn list() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list netns", NETNS_DIR, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list netns", NETNS_DIR, e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Whether namespace `name` exists.
pub fn exists(name: &str) -> Result<bool> {
    Ok(path(name)?.exists())
}

/// Opens the namespace file, for `setns` or a link's `IFLA_NET_NS_FD`.
pub fn open(name: &str) -> Result<File> {
    let path = path(name)?;
    File::open(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::NotFound {
                op: "open netns",
                object: format!("netns {name}"),
            }
        } else {
            Error::io("open netns", format!("netns {name}"), e)
        }
    })
}

/// `/run/netns/NAME`, after checking that NAME is a plain file name.
pub fn path(name: &str) -> Result<PathBuf> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        Some("must be a plain file name (no '/', not '.' or '..')")
    } else if name.len() > 255 {
        Some("longer than 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::invalid("namespace name", name, reason)),
        None => Ok(PathBuf::from(NETNS_DIR).join(name)),
    }
}

/// Makes `/run/netns` a shared mount point, as iproute2 does, so a namespace
/// mounted here shows up in mount namespaces created later (`ip netns exec`
/// unshares one).
fn prepare_run_dir() -> io::Result<()> {
    static PREPARED: Mutex<bool> = Mutex::new(false);
    let mut prepared = PREPARED.lock().unwrap_or_else(|p| p.into_inner());
    if *prepared {
        return Ok(());
    }
    fs::create_dir_all(NETNS_DIR)?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    let make_shared = || mount(None::<&str>, NETNS_DIR, Some("none"), shared, None::<&str>);
    if let Err(e) = make_shared() {
        // EINVAL: not a mount point yet; bind it onto itself first.
        if e != nix::errno::Errno::EINVAL {
            return Err(e.into());
        }
        mount(
            Some(NETNS_DIR),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
        make_shared()?;
    }
    *prepared = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_names_that_escape_the_directory() {
        for bad in ["", ".", "..", "a/b", "../etc"] {
            assert!(path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(path("vpc").unwrap(), PathBuf::from("/run/netns/vpc"));
    }
}
