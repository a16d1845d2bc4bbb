//! Each lab instance's own file system: what its bootstrap and `hafw run`
//! see as `/etc`, `/var` and `/run`, never the host's, and never another
//! lab's.
//!
//! Every program the lab starts inside an instance gets a mount namespace
//! of its own (hafw-kernel's `command` already unshares one, to remount
//! `/sys`) with the same mounts, so they all see one file system:
//! - `/etc` and `/var`: overlays whose lower layer is the host's directory
//!   (read-only to the instance: the shell, the loader, the CA store stay
//!   as on an image) and whose upper layer is the instance's directory in
//!   the lab's state dir. `/etc/hafw`, `/var/lib/hafw`, `/var/log/hafw` and
//!   the bootstrap log land there. An overlay needs no mount point of its
//!   own, so nothing is created on the host.
//! - `/run`: an empty tmpfs (as at boot) holding the lab state root
//!   ([`crate::lab::STATE_ROOT`], moved in with `open_tree` and
//!   `move_mount`: the harness's control sockets and logs live there) and
//!   `/run/hafw`, bound to the instance's directory. An overlay would not
//!   do for `/run`: a unix socket bound through an overlay refuses
//!   connections made through the upper directory's path.
//! - The host name: a UTS namespace per program, so the bootstrap's
//!   `hostname` changes nothing outside.
//!
//! The host sees the instance's files under [`InstanceFs::host_path`].

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lab::{self, LabError};

/// The directories an instance writes, as the instance names them.
pub const PRIVATE: [&str; 3] = ["/etc", "/var", "/run"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFs {
    pub lab: String,
    pub instance: String,
    /// `<state dir>/fs/<instance>`.
    pub root: PathBuf,
}

impl InstanceFs {
    pub fn new(lab_name: &str, instance: &str) -> InstanceFs {
        InstanceFs {
            lab: lab_name.to_string(),
            instance: instance.to_string(),
            root: lab::state_dir(lab_name).join("fs").join(instance),
        }
    }

    fn upper(&self, top: &str) -> PathBuf {
        self.root.join(format!("{top}.up"))
    }

    fn work(&self, top: &str) -> PathBuf {
        self.root.join(format!("{top}.work"))
    }

    /// The instance's `/run/hafw` on the host.
    fn run_hafw(&self) -> PathBuf {
        self.root.join("run-hafw")
    }

    /// Where the host sees the instance's file `inside` (an absolute path
    /// under `/etc`, `/var` or `/run/hafw`); None for any other path.
    pub fn host_path(&self, inside: &str) -> Option<PathBuf> {
        if let Some(rest) = inside.strip_prefix("/run/hafw") {
            return Some(self.run_hafw().join(rest.trim_start_matches('/')));
        }
        for top in ["etc", "var"] {
            if let Some(rest) = inside.strip_prefix(&format!("/{top}/")) {
                return Some(self.upper(top).join(rest));
            }
        }
        None
    }

    /// Creates the instance's directories (empty: a fresh image).
    pub fn prepare(&self) -> Result<(), LabError> {
        let mut dirs = vec![self.run_hafw(), self.bin()];
        for top in ["etc", "var"] {
            dirs.push(self.upper(top));
            dirs.push(self.work(top));
        }
        for d in dirs {
            std::fs::create_dir_all(&d).map_err(|e| {
                LabError::Refused(format!(
                    "create the instance directory {}: {e}",
                    d.display()
                ))
            })?;
        }
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(self.run_hafw(), std::fs::Permissions::from_mode(0o700));
        self.hide_host_state()
    }

    /// The overlays show the host's /etc and /var below the instance's own
    /// files. hafw's own directories must not show through: on a host that
    /// runs hafw, the bootstrap would keep the host's deployment file and
    /// the node would run the host's configuration. Each becomes an opaque
    /// directory of the upper layer, so the instance starts with it empty.
    fn hide_host_state(&self) -> Result<(), LabError> {
        for (top, rest) in [
            ("etc", "hafw"),
            ("var", "lib/hafw"),
            ("var", "log/hafw"),
            ("var", "lib/cloud"),
        ] {
            let dir = self.upper(top).join(rest);
            std::fs::create_dir_all(&dir).map_err(|e| {
                LabError::Refused(format!(
                    "create the instance directory {}: {e}",
                    dir.display()
                ))
            })?;
            let path = CString::new(dir.display().to_string())
                .map_err(|_| LabError::Refused("a path holds a NUL byte".into()))?;
            // SAFETY: both strings are NUL-terminated and outlive the call.
            let rc = unsafe {
                libc::setxattr(
                    path.as_ptr(),
                    c"trusted.overlay.opaque".as_ptr(),
                    c"y".as_ptr().cast(),
                    1,
                    0,
                )
            };
            let host = Path::new("/").join(top).join(rest);
            if rc != 0 && host.exists() {
                return Err(LabError::Refused(format!(
                    "cannot hide the host's {} from the lab's instances (setxattr on {}: {}); put the lab's state on a file system with trusted xattrs",
                    host.display(),
                    dir.display(),
                    std::io::Error::last_os_error()
                )));
            }
        }
        Ok(())
    }

    /// A directory first on the instance's PATH: `hafw` (the binary just
    /// built, as on an image that has it) and stand-ins for the host's
    /// service managers, so nothing the bootstrap runs reaches the host's
    /// systemd or D-Bus.
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// Puts `exe` on the instance's PATH as `hafw`, with the stand-ins.
    pub fn install(&self, exe: &Path) -> Result<(), LabError> {
        use std::os::unix::fs::PermissionsExt as _;
        let bin = self.bin();
        let link = bin.join("hafw");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(exe, &link)
            .map_err(|e| LabError::Refused(format!("link {}: {e}", link.display())))?;
        let shims = [
            (
                "hostnamectl",
                "#!/bin/sh\n# lab stand-in: the instance's own UTS namespace\n[ \"$1\" = set-hostname ] && exec hostname \"$2\"\nexit 1\n",
            ),
            (
                "systemctl",
                "#!/bin/sh\necho \"lab: no systemd in an instance (systemctl $*); the lab starts hafw run itself\" >&2\nexit 1\n",
            ),
        ];
        for (name, text) in shims {
            let p = bin.join(name);
            std::fs::write(&p, text)
                .and_then(|_| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)))
                .map_err(|e| LabError::Refused(format!("write {}: {e}", p.display())))?;
        }
        Ok(())
    }

    /// `program` inside the instance: its network namespace `ns`, its own
    /// mount and UTS namespaces with the instance's file system, and PATH
    /// starting with [`InstanceFs::bin`].
    pub fn command(
        &self,
        ns: &str,
        program: impl AsRef<std::ffi::OsStr>,
    ) -> Result<Command, LabError> {
        let mut cmd = hafw_kernel::command(ns, program)
            .map_err(|e| LabError::Refused(format!("enter {ns}: {e}")))?;
        let c = |s: String| {
            CString::new(s).map_err(|_| LabError::Refused("a path holds a NUL byte".into()))
        };
        let p = |p: PathBuf| c(p.display().to_string());
        let overlay = |top: &str| {
            c(format!(
                "lowerdir=/{top},upperdir={},workdir={}",
                self.upper(top).display(),
                self.work(top).display()
            ))
        };
        let (etc, var, run) = (c("/etc".into())?, c("/var".into())?, c("/run".into())?);
        let (etc_opts, var_opts) = (overlay("etc")?, overlay("var")?);
        let (ovl, tmpfs, none) = (c("overlay".into())?, c("tmpfs".into())?, c("none".into())?);
        let tmpfs_opts = c("mode=0755,size=16m".into())?;
        let state = c(lab::STATE_ROOT.into())?;
        let run_hafw = c("/run/hafw".into())?;
        let run_hafw_src = p(self.run_hafw())?;
        let empty = c(String::new())?;
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        cmd.env("PATH", format!("{}:{path}", self.bin().display()));
        // SAFETY: the closure makes raw system calls on data prepared above;
        // it allocates nothing and takes no lock (fork-safe).
        unsafe {
            cmd.pre_exec(move || {
                let check = |rc: libc::c_long| {
                    if rc < 0 {
                        Err(std::io::Error::last_os_error())
                    } else {
                        Ok(rc)
                    }
                };
                check(libc::unshare(libc::CLONE_NEWUTS).into())?;
                let mount = |src: &CString,
                             dst: &CString,
                             fs: &CString,
                             flags,
                             data: *const libc::c_void| {
                    check(libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), flags, data).into())
                };
                mount(&ovl, &etc, &ovl, 0, etc_opts.as_ptr().cast())?;
                mount(&ovl, &var, &ovl, 0, var_opts.as_ptr().cast())?;
                // Keep the lab's state root across the fresh /run.
                let tree = check(libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    state.as_ptr(),
                    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
                ))?;
                mount(
                    &tmpfs,
                    &run,
                    &tmpfs,
                    libc::MS_NOSUID | libc::MS_NODEV,
                    tmpfs_opts.as_ptr().cast(),
                )?;
                check(libc::mkdir(state.as_ptr(), 0o755).into())?;
                check(libc::syscall(
                    libc::SYS_move_mount,
                    tree as libc::c_int,
                    empty.as_ptr(),
                    libc::AT_FDCWD,
                    state.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                ))?;
                libc::close(tree as libc::c_int);
                check(libc::mkdir(run_hafw.as_ptr(), 0o700).into())?;
                mount(
                    &run_hafw_src,
                    &run_hafw,
                    &none,
                    libc::MS_BIND,
                    std::ptr::null(),
                )?;
                Ok(())
            });
        }
        Ok(cmd)
    }
}

// From <linux/mount.h> (not all in the libc crate).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_stay_in_the_instance_directory() {
        let fs = InstanceFs::new("l1", "fw-a");
        let root = lab::state_dir("l1").join("fs/fw-a");
        assert_eq!(
            fs.host_path("/etc/hafw/deployment.toml"),
            Some(root.join("etc.up/hafw/deployment.toml"))
        );
        assert_eq!(
            fs.host_path("/var/log/hafw/audit.jsonl"),
            Some(root.join("var.up/log/hafw/audit.jsonl"))
        );
        assert_eq!(
            fs.host_path("/run/hafw/x.sock"),
            Some(root.join("run-hafw/x.sock"))
        );
        assert_eq!(fs.host_path("/usr/bin/hafw"), None);
        assert_ne!(InstanceFs::new("l2", "fw-a").root, fs.root);
    }
}
