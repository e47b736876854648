//! Replacing a file so that readers never see it half written, and reading one that a hostile
//! or careless hand may have put there. The whole safety story of every file wxtoken writes is in
//! this module (consul-template's `AtomicWrite` is the model; the directory fsync is added).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// The directory a file lives in (`.` for a bare name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `content` so that a reader sees the old or the new file, never a mix or an
/// empty file, and the new content survives a crash once this returns. Skips the write (returns
/// false) when the file already holds exactly this content with this mode and group.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32, gid: Option<u32>) -> Result<bool> {
    if let Ok(meta) = fs::metadata(path) {
        let same_owner = gid.is_none_or(|g| meta.gid() == g);
        if meta.len() == content.len() as u64
            && meta.permissions().mode() & 0o7777 == mode
            && same_owner
            && fs::read(path).is_ok_and(|old| old == content)
        {
            return Ok(false);
        }
    }
    let dir = dir_of(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let fail = |what: &str, e: std::io::Error| {
        Error::cant_create(format!(
            "cannot write {} ({what}: {e}); the previous file, if any, is untouched",
            path.display()
        ))
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .rand_bytes(6)
        .tempfile_in(dir)
        .map_err(|e| fail("creating a temp file in its directory", e))?;
    // fchmod/fchown on the open file: the final mode regardless of umask, before any byte is in it.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| fail("setting the mode", e))?;
    if let Some(g) = gid {
        std::os::unix::fs::fchown(tmp.as_file(), None, Some(g))
            .map_err(|e| fail("setting the group", e))?;
    }
    tmp.write_all(content).map_err(|e| fail("writing", e))?;
    tmp.as_file().sync_all().map_err(|e| fail("fsync", e))?;
    tmp.persist(path)
        .map_err(|e| fail("renaming into place", e.error))?;
    // The rename is only durable once the directory entry is on disk.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("fsync of the directory", e))?;
    Ok(true)
}

/// Reads a small regular file without following a symlink or blocking on a FIFO; None when it
/// does not exist. (Interim: the files branch replaces this with the shared safe reader.)
pub fn read_small(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::cant_create(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::cant_create(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::cant_create(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut buf = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::cant_create(format!("cannot read {}: {e}", path.display())))?;
    if buf.len() as u64 > max {
        return Err(Error::cant_create(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(Some(buf))
}
