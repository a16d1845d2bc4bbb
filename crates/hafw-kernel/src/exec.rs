//! Running code and programs inside a named namespace without moving any
//! other thread: `setns` changes only the calling thread, so it is only ever
//! called on a thread made for the purpose, or in a child before `exec`.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sched::{setns, CloneFlags};

use crate::{netns, Error, Result};

/// Runs `f` on a fresh OS thread that has entered namespace `ns`, and returns
/// its result. With `ns = None`, `f` runs on the calling thread. Sockets that
/// `f` creates stay in `ns` after it returns; files under `/proc/sys/net`
/// opened by `f` belong to `ns`. A panic in `f` is resumed in the caller.
pub fn in_netns<T: Send>(ns: Option<&str>, f: impl FnOnce() -> T + Send) -> Result<T> {
    let Some(name) = ns else {
        return Ok(f());
    };
    let file = netns::open(name)?;
    std::thread::scope(|scope| {
        let thread = scope.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::io("enter netns", format!("netns {name}"), e.into()))?;
            Ok(f())
        });
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// A [`Command`] whose process runs in namespace `ns`, like
/// `ip netns exec NS program`: the child enters the namespace, gets its own
/// mount namespace and a fresh `/sys` (so `/sys/class/net` shows the
/// namespace's interfaces), then execs `program`. Arguments, environment and
/// stdio are set on the returned command as usual.
pub fn command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Result<Command> {
    let file = netns::open(ns)?;
    // Allocate before fork: only async-signal-safe calls run in pre_exec.
    let (Ok(root), Ok(sys), Ok(sysfs), Ok(none), Ok(source)) = (
        CString::new("/"),
        CString::new("/sys"),
        CString::new("sysfs"),
        CString::new("none"),
        CString::new(ns),
    ) else {
        return Err(Error::invalid("namespace name", ns, "contains a NUL byte"));
    };
    let mut cmd = Command::new(program);
    // SAFETY: the closure only makes raw system calls on data prepared above;
    // it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            check(libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Keep our /sys remount from propagating back to the host.
            check(libc::mount(
                none.as_ptr(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            ))?;
            // Fails harmlessly when nothing is mounted on /sys.
            libc::umount2(sys.as_ptr(), libc::MNT_DETACH);
            check(libc::mount(
                source.as_ptr(),
                sys.as_ptr(),
                sysfs.as_ptr(),
                0,
                std::ptr::null(),
            ))?;
            Ok(())
        });
    }
    Ok(cmd)
}
