//! Atomic replacement of a file, and capped reads that refuse what is not a regular file.
//!
//! Readers never see a file half written; a file a hostile or careless hand put there is never
//! followed or read whole. The whole safety story of every file wxtoken writes is in
//! this module (consul-template's `AtomicWrite` is the model; the directory fsync is added).
//!
//! Every path wxtoken reads back or replaces must be missing or a regular file. Anything else (a
//! FIFO would block the run forever, a link to /dev/zero would read until memory runs out, a link
//! elsewhere would be followed or destroyed) is refused with a clear error and left untouched.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// The most wxtoken reads from any file it wrote (a token file is under 2 KiB).
pub const READ_CAP: u64 = 64 * 1024;

/// Space reserved in each temp file before WeChat is called: more than any file wxtoken writes,
/// so a full disk shows up while nothing has been fetched yet.
const RESERVE: i64 = 4096;

/// The directory a file lives in (`.` for a bare name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// What a capped read found at a path.
#[derive(Debug)]
pub enum Found {
    Missing,
    Bytes(Vec<u8>),
    /// A regular file over [`READ_CAP`]: not a file wxtoken wrote, but safe to replace. The
    /// string says so, naming the path and the size, for the caller's log line.
    TooLarge(String),
}

/// Reads a file wxtoken wrote earlier, without following a link, blocking on a FIFO or reading
/// more than [`READ_CAP`]. Err (exit 73) when the path is anything but a regular file or missing.
pub fn read_capped(path: &Path) -> Result<Found> {
    let Some((file, meta)) = open_regular(path)? else {
        return Ok(Found::Missing);
    };
    if meta.len() > READ_CAP {
        return Ok(Found::TooLarge(too_large(path, meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The take() guards against a file that grows after the fstat.
    file.take(READ_CAP + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::cant_create(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > READ_CAP {
        return Ok(Found::TooLarge(too_large(path, bytes.len() as u64)));
    }
    Ok(Found::Bytes(bytes))
}

fn too_large(path: &Path, len: u64) -> String {
    format!(
        "{} is {len} bytes, more than {} KiB: not a file wxtoken wrote",
        path.display(),
        READ_CAP / 1024
    )
}

/// Err unless `path` is missing or a regular file (not following a final symbolic link).
pub fn check_regular(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) => Err(not_regular(path, &meta)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::cant_create(format!(
            "cannot use {}: {e}",
            path.display()
        ))),
    }
}

/// The error for a path that holds something other than a regular file, saying what it is.
pub fn not_regular(path: &Path, meta: &Metadata) -> Error {
    let t = meta.file_type();
    let what = if t.is_symlink() {
        "a symbolic link; wxtoken neither follows nor replaces links"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    };
    Error::cant_create(format!(
        "{} is {what}. wxtoken reads and writes only regular files and leaves this one untouched: \
         remove it, or choose another --out",
        path.display()
    ))
}

/// Opens a regular file for reading; None when missing. lstat first, so a FIFO or a device is
/// never even opened; O_NOFOLLOW|O_NONBLOCK and the fstat close the race with a swap in between.
fn open_regular(path: &Path) -> Result<Option<(File, Metadata)>> {
    check_regular(path)?;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            // ELOOP: swapped for a link since the lstat; the next lstat says so.
            return Err(match fs::symlink_metadata(path) {
                Ok(meta) if !meta.is_file() => not_regular(path, &meta),
                _ => Error::cant_create(format!("cannot read {}: {e}", path.display())),
            });
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::cant_create(format!("cannot stat {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok(Some((file, meta)))
}

/// True when `path` already holds exactly `content` with this mode and group: nothing to write.
fn unchanged(path: &Path, content: &[u8], mode: u32, gid: Option<u32>) -> Result<bool> {
    check_regular(path)?;
    // A file this user cannot read can still be replaced: rename needs only the directory.
    let Ok(Some((file, meta))) = open_regular(path) else {
        return Ok(false);
    };
    if meta.len() != content.len() as u64
        || meta.mode() & 0o7777 != mode
        || gid.is_some_and(|g| meta.gid() != g)
    {
        return Ok(false);
    }
    let mut old = Vec::with_capacity(content.len());
    let read = file.take(READ_CAP + 1).read_to_end(&mut old);
    Ok(read.is_ok() && old == content)
}

/// One output made ready to be replaced: its temp file exists beside it with the final mode and
/// group and space reserved, so the only steps left after a fetch are a write into space already
/// held and a rename. Dropped uncommitted, the temp file is removed.
#[derive(Debug)]
pub struct Pending {
    path: PathBuf,
    mode: u32,
    gid: Option<u32>,
    tmp: NamedTempFile,
}

impl Pending {
    /// Checks that `path` is missing or a regular file, and creates `.NAME.XXXXXX.tmp` beside it
    /// (O_EXCL), fchmod `mode`, fchown `gid`, and reserves a few KiB. Err (exit 73) when any of it
    /// fails; nothing at `path` is touched.
    pub fn create(path: &Path, mode: u32, gid: Option<u32>) -> Result<Pending> {
        check_regular(path)?;
        let fail = |what: &str, e: std::io::Error| cant_write(path, what, e);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .rand_bytes(6)
            .tempfile_in(dir_of(path))
            .map_err(|e| fail("creating a temp file in its directory", e))?;
        // fchmod/fchown on the open file: the final mode regardless of umask, before any byte.
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| fail("setting the mode", e))?;
        if let Some(g) = gid {
            std::os::unix::fs::fchown(tmp.as_file(), None, Some(g))
                .map_err(|e| fail("setting the group", e))?;
        }
        // SAFETY: a valid open descriptor, a non-negative range.
        let rc = unsafe { libc::posix_fallocate(tmp.as_file().as_raw_fd(), 0, RESERVE) };
        // Some file systems (NFS, some FUSE) cannot reserve space: then a full disk is found at
        // the write, after the fetch, as before.
        if rc != 0 && rc != libc::EOPNOTSUPP && rc != libc::EINVAL {
            return Err(fail(
                "reserving space",
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        Ok(Pending {
            path: path.to_path_buf(),
            mode,
            gid,
            tmp,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `content` into the temp file and renames it over the path, durably. Returns false
    /// (and writes nothing) when the file already holds exactly this content, mode and group.
    pub fn commit(self, content: &[u8]) -> Result<bool> {
        let path = &self.path;
        // Also re-checks what is at the path now: a link or FIFO put there since is refused.
        if unchanged(path, content, self.mode, self.gid)? {
            return Ok(false);
        }
        let fail = |what: &str, e: std::io::Error| cant_write(path, what, e);
        let mut tmp = self.tmp;
        tmp.write_all(content).map_err(|e| fail("writing", e))?;
        // The reservation made the file RESERVE bytes long; readers must see the content only.
        tmp.as_file()
            .set_len(content.len() as u64)
            .map_err(|e| fail("truncating", e))?;
        tmp.as_file().sync_all().map_err(|e| fail("fsync", e))?;
        tmp.persist(path)
            .map_err(|e| fail("renaming into place", e.error))?;
        // The rename is only durable once the directory entry is on disk.
        File::open(dir_of(path))
            .and_then(|d| d.sync_all())
            .map_err(|e| fail("fsync of the directory", e))?;
        Ok(true)
    }
}

fn cant_write(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::cant_create(format!(
        "cannot write {} ({what}: {e}); the previous file, if any, is untouched",
        path.display()
    ))
}

/// Replaces `path` with `content` so that a reader sees the old or the new file, never a mix or an
/// empty file, and the new content survives a crash once this returns. Skips the write (returns
/// false) when the file already holds exactly this content with this mode and group. For a write
/// that follows an upstream call, create the [`Pending`] before the call instead.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32, gid: Option<u32>) -> Result<bool> {
    if unchanged(path, content, mode, gid)? {
        return Ok(false);
    }
    Pending::create(path, mode, gid)?.commit(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_read_and_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert!(matches!(read_capped(&p), Ok(Found::Missing)));
        fs::write(&p, b"abc").unwrap();
        assert!(matches!(read_capped(&p), Ok(Found::Bytes(b)) if b == b"abc"));
        File::create(&p).unwrap().set_len(READ_CAP + 1).unwrap();
        assert!(matches!(read_capped(&p), Ok(Found::TooLarge(m)) if m.contains("65537 bytes")));

        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = read_capped(&link).unwrap_err();
        assert!(e.message.contains("symbolic link"), "{e}");
        assert!(e.message.contains(link.to_str().unwrap()), "{e}");
        let e = read_capped(dir.path()).unwrap_err();
        assert!(e.message.contains("a directory"), "{e}");
    }

    #[test]
    fn pending_removes_its_temp_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.json");
        let listing = || fs::read_dir(dir.path()).unwrap().count();
        let pending = Pending::create(&p, 0o640, None).unwrap();
        assert_eq!(listing(), 1);
        drop(pending);
        assert_eq!(listing(), 0);
        assert!(
            Pending::create(&p, 0o640, None)
                .unwrap()
                .commit(b"x")
                .unwrap()
        );
        assert_eq!(fs::read(&p).unwrap(), b"x");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        assert!(!write_atomic(&p, b"x", 0o640, None).unwrap());
        assert_eq!(listing(), 1);
    }
}
