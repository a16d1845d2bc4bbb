//! The pair's pre-shared key file: `hafw keygen` writes it, `hafw run`
//! reads it, and refuses one that others could read or change.

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use hafw_ha::wire::{Psk, PSK_MIN_LEN};

/// What `hafw keygen` writes: as long as the AEAD key.
pub const KEY_LEN: usize = PSK_MIN_LEN;

/// Longest key file read: a key, not a file that happens to be there.
pub const MAX_KEY_FILE_LEN: u64 = 4096;

/// Why a key file is refused: each message names the file, what is wrong
/// and the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the HA key file {}: {source}; create it with `hafw keygen {}` and copy it to both nodes", .path.display(), .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the HA key file {} is not a regular file; create one with `hafw keygen {}`", .path.display(), .path.display())]
    NotAFile { path: PathBuf },
    #[error("the HA key file {} is owned by uid {uid}, not root: anyone who is that user can read or replace the key; run `chown root:root {}`", .path.display(), .path.display())]
    Owner { path: PathBuf, uid: u32 },
    #[error("the HA key file {} has mode {mode:04o}: group or others may use it; run `chmod 600 {}`", .path.display(), .path.display())]
    Mode { path: PathBuf, mode: u32 },
    #[error("the HA key file {} holds {len} bytes, more than a key ({MAX_KEY_FILE_LEN} at most); create one with `hafw keygen --force {}`", .path.display(), .path.display())]
    TooLong { path: PathBuf, len: u64 },
    #[error(transparent)]
    Key(#[from] hafw_ha::wire::PskError),
    #[error("{} exists: keep it, or replace it with `hafw keygen --force {}` (then copy it to the peer)", .path.display(), .path.display())]
    Exists { path: PathBuf },
    #[error("the OS random generator failed ({0}): no key written")]
    Random(getrandom::Error),
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads and checks the key file: a regular file owned by root (or by the
/// user running hafw, who could read it anyway: that lets the tests run
/// unprivileged), with no permission for group or others, of at least
/// [`PSK_MIN_LEN`] bytes that are not one repeated byte. The checks are on
/// the opened file (fstat), not on the path, so the file read is the file
/// checked.
pub fn read(path: &Path) -> Result<Psk, KeyFileError> {
    let read_err = |source| KeyFileError::Read {
        path: path.into(),
        source,
    };
    let mut f = fs::File::open(path).map_err(read_err)?;
    let meta = f.metadata().map_err(read_err)?;
    check(path, &meta, effective_uid())?;
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(64));
    std::io::Read::by_ref(&mut f)
        .take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLong {
            path: path.into(),
            len: meta.len(),
        });
    }
    Ok(Psk::from_file_bytes(&bytes, &path.display().to_string())?)
}

fn check(path: &Path, meta: &fs::Metadata, running_uid: u32) -> Result<(), KeyFileError> {
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile { path: path.into() });
    }
    if meta.uid() != 0 && meta.uid() != running_uid {
        return Err(KeyFileError::Owner {
            path: path.into(),
            uid: meta.uid(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Mode {
            path: path.into(),
            mode,
        });
    }
    Ok(())
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `hafw keygen`: [`KEY_LEN`] bytes from the OS random generator, written
/// with mode 0600 to a new file beside `path`, synced, then moved into
/// place: linked (which refuses an existing file) or, with `force`,
/// renamed over it. A reader never sees a partial key.
pub fn generate(path: &Path, force: bool) -> Result<(), KeyFileError> {
    let write_err = |source| KeyFileError::Write {
        path: path.into(),
        source,
    };
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(KeyFileError::Exists { path: path.into() });
    }
    let mut key = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(key.as_mut()).map_err(KeyFileError::Random)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.as_deref().unwrap_or("key"),
        std::process::id()
    ));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(key.as_ref())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(e));
    }
    let placed = if force {
        fs::rename(&tmp, path)
    } else {
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        linked
    };
    match placed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(KeyFileError::Exists { path: path.into() })
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(write_err(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hafw-keyfile-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("ha.key")
    }

    fn write(path: &Path, bytes: &[u8], mode: u32) {
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn keygen_writes_a_0600_key_of_32_random_bytes_and_never_overwrites() {
        let path = temp("gen");
        generate(&path, false).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let first = fs::read(&path).unwrap();
        assert!(read(&path).is_ok(), "hafw run takes what keygen writes");
        // No overwrite without --force, and the key is untouched.
        let err = generate(&path, false).unwrap_err();
        assert!(matches!(err, KeyFileError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), first);
        // With --force: a new key, still 0600, even over a 0644 file.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        generate(&path, true).unwrap();
        let second = fs::read(&path).unwrap();
        assert_eq!(second.len(), 32);
        assert_ne!(second, first, "two keys from the OS generator are equal");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // No temporary file left behind.
        let left: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1);
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_key_file_others_may_read_is_refused_with_the_fix() {
        let path = temp("mode");
        let key: Vec<u8> = (0u8..32).collect();
        for mode in [0o644, 0o640, 0o604, 0o602, 0o620, 0o610] {
            write(&path, &key, mode);
            let err = read(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::Mode { .. }), "{mode:o}: {err}");
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
        }
        for mode in [0o600, 0o400] {
            write(&path, &key, mode);
            assert!(read(&path).is_ok(), "{mode:o}");
        }
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_short_or_placeholder_key_is_refused_with_the_fix() {
        let path = temp("short");
        write(&path, &[7u8, 1, 2][..], 0o600);
        let text = read(&path).unwrap_err().to_string();
        assert!(text.contains("holds 3 bytes"), "{text}");
        assert!(
            text.contains(&format!("hafw keygen --force {}", path.display())),
            "{text}"
        );
        let short: Vec<u8> = (0u8..31).collect();
        write(&path, &short, 0o600);
        assert!(read(&path).is_err());
        write(&path, &[0u8; 64], 0o600);
        let text = read(&path).unwrap_err().to_string();
        assert!(text.contains("repeats one byte"), "{text}");
        write(&path, &vec![1u8; 5000], 0o600);
        assert!(matches!(read(&path), Err(KeyFileError::TooLong { .. })));
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_key_file_of_another_owner_is_refused() {
        let path = temp("owner");
        write(&path, &(0u8..32).collect::<Vec<_>>(), 0o600);
        let meta = fs::metadata(&path).unwrap();
        // Owned by whoever runs the test: accepted for that user and root,
        // refused for anyone else.
        assert!(check(&path, &meta, meta.uid()).is_ok());
        if meta.uid() != 0 {
            let err = check(&path, &meta, meta.uid() + 1).unwrap_err();
            assert!(matches!(err, KeyFileError::Owner { .. }), "{err}");
        }
        // As root, really give it away, and read it back through `read`.
        if effective_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let err = read(&path).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, KeyFileError::Owner { uid: 65534, .. }),
                "{text}"
            );
            assert!(text.contains("chown root:root"), "{text}");
        }
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_missing_key_file_says_how_to_create_one() {
        let path = temp("missing");
        let text = read(&path).unwrap_err().to_string();
        assert!(
            text.contains(&format!("hafw keygen {}", path.display())),
            "{text}"
        );
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
