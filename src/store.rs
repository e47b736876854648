//! The token store: the lock, reading the current state, and atomic writes of every output.
//!
//! Readers (PHP, shell, Python) never lock: they open the path and always see either the previous
//! complete file or the new complete file, because a file is only ever replaced by `rename(2)` of a
//! fully written, fsynced temp file in the same directory.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{debug, info, warn};
use serde::{Deserialize, Serialize};

use crate::atomic::{dir_of, write_atomic};
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::vocab::{secs_until, validate_token};

/// The JSON contract (the state wxtoken decides from). Field order is the file's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFile {
    pub access_token: String,
    /// Lifetime WeChat announced when the token was fetched.
    pub expires_in: u64,
    /// Unix seconds after which the token must not be used.
    pub expires_at: u64,
    /// Same as `expires_at`, under the name readers written like the classic PHP samples check.
    #[serde(default)]
    pub expire_time: u64,
    pub refreshed_at: u64,
    pub appid: String,
    pub api: String,
}

impl TokenFile {
    pub fn remaining(&self, now: u64) -> i64 {
        secs_until(self.expires_at, now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Php,
    Txt,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Ok(Format::Json),
            Some("php") => Ok(Format::Php),
            Some("txt") => Ok(Format::Txt),
            _ => Err(Error::config(format!(
                "--out {}: the extension must be .json, .php or .txt (it decides the format)",
                path.display()
            ))),
        }
    }

    pub fn render(self, t: &TokenFile) -> Vec<u8> {
        match self {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(t).expect("plain struct serializes");
                s.push('\n');
                s.into_bytes()
            }
            // Every value was validated to hold no quote or backslash, so single-quoting is safe.
            Format::Php => format!(
                "<?php\n// Written by wxtoken, replaced atomically on every refresh. Do not edit.\n\
                 return array(\n    'access_token' => '{}',\n    'expires_in' => {},\n    \
                 'expires_at' => {},\n    'expire_time' => {},\n    'refreshed_at' => {},\n    \
                 'appid' => '{}',\n    'api' => '{}',\n);\n",
                t.access_token,
                t.expires_in,
                t.expires_at,
                t.expire_time,
                t.refreshed_at,
                t.appid,
                t.api
            )
            .into_bytes(),
            // The token alone, no newline: `$(cat file)` and file_get_contents() need no trimming.
            Format::Txt => t.access_token.clone().into_bytes(),
        }
    }
}

/// Where and how files are written.
#[derive(Debug, Clone)]
pub struct Store {
    /// The first .json output: the state each run reads back.
    pub state: PathBuf,
    pub outs: Vec<(PathBuf, Format)>,
    pub mode: u32,
    pub gid: Option<u32>,
}

/// Held for the whole run; dropping it (or the process dying) releases the flock.
pub struct Lock {
    _file: File,
}

impl Store {
    pub fn new(outs: &[PathBuf], mode: u32, gid: Option<u32>) -> Result<Store> {
        let mut list = Vec::new();
        for path in outs {
            if path.file_name().is_none() || path.as_os_str().is_empty() {
                return Err(Error::config(format!(
                    "--out {}: not a file path",
                    path.display()
                )));
            }
            let format = Format::of(path)?;
            if !list.iter().any(|(p, _)| p == path) {
                list.push((path.clone(), format));
            }
        }
        let state = list
            .iter()
            .find(|(_, f)| *f == Format::Json)
            .map(|(p, _)| p.clone())
            .ok_or_else(|| {
                Error::config("at least one --out must be a .json file: it holds the state each run decides from")
            })?;
        Ok(Store {
            state,
            outs: list,
            mode,
            gid,
        })
    }

    pub fn dir(&self) -> &Path {
        dir_of(&self.state)
    }

    pub fn lock_path(&self) -> PathBuf {
        let mut name = self
            .state
            .file_name()
            .expect("checked in new")
            .to_os_string();
        name.push(".lock");
        self.state.with_file_name(name)
    }

    /// Takes the exclusive flock beside the state file, waiting at most until the deadline. The lock
    /// is on a separate file because the output itself is replaced by rename on every refresh.
    pub fn lock(&self, deadline: &Deadline) -> Result<Lock> {
        for (path, _) in &self.outs {
            ensure_dir(dir_of(path))?;
            refuse_root_in_foreign_dir(dir_of(path))?;
        }
        let path = self.lock_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| {
                Error::cant_create(format!(
                    "cannot open the lock file {}: {e}. Check that {} is writable by this user",
                    path.display(),
                    dir_of(&path).display()
                ))
            })?;
        let mut waited = false;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    if waited {
                        debug!("got the lock {}", path.display());
                    }
                    return Ok(Lock { _file: file });
                }
                Err(fs::TryLockError::WouldBlock) => {
                    if !waited {
                        debug!("waiting for another wxtoken run holding {}", path.display());
                        waited = true;
                    }
                    if deadline.exhausted() {
                        return Err(Error::temp(format!(
                            "another wxtoken run held {} for the whole time budget (--max-time); \
                             if none is running, something else holds a flock on it",
                            path.display()
                        )));
                    }
                    deadline.sleep(Duration::from_millis(20));
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(Error::cant_create(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }

    /// Removes temp files left by a run that was killed mid-write. Called under the lock, so no
    /// live run can be writing them.
    pub fn remove_stale_temps(&self, names: &[String]) {
        let mut dirs: Vec<&Path> = self.outs.iter().map(|(p, _)| dir_of(p)).collect();
        dirs.dedup();
        for dir in dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let ours = names
                    .iter()
                    .any(|n| name.starts_with(&format!(".{n}.")) && name.ends_with(".tmp"));
                if ours {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => info!(
                            "removed {} left by an interrupted run",
                            entry.path().display()
                        ),
                        Err(e) => warn!(
                            "cannot remove the stale temp file {}: {e}",
                            entry.path().display()
                        ),
                    }
                }
            }
        }
    }

    /// Names of the files this store writes (temp files are `.NAME.XXXXXX.tmp`).
    pub fn names(&self) -> Vec<String> {
        self.outs
            .iter()
            .filter_map(|(p, _)| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect()
    }

    /// The current state, or None when it is missing or not something wxtoken would have written.
    pub fn read_state(&self) -> Option<TokenFile> {
        read_token_file(&self.state)
    }

    /// Writes every output that does not already hold exactly this state. The .json state goes
    /// first: if a later output fails, the next run finds a fresh state and renders the rest.
    pub fn publish(&self, t: &TokenFile) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        let (json, rest): (Vec<_>, Vec<_>) = self.outs.iter().partition(|(p, _)| *p == self.state);
        for (path, format) in json.into_iter().chain(rest) {
            if write_atomic(path, &format.render(t), self.mode, self.gid)? {
                written.push(path.clone());
            }
        }
        Ok(written)
    }
}

/// A token file as wxtoken wrote it, or None when it is missing or anything else (with a warning).
pub fn read_token_file(path: &Path) -> Option<TokenFile> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return None,
        Err(e) => {
            warn!("cannot read {}: {e}; fetching a new token", path.display());
            return None;
        }
    };
    match serde_json::from_slice::<TokenFile>(&bytes) {
        // Files written before `expire_time` existed get it filled in on the next render.
        Ok(t) if validate_token(&t.access_token).is_ok() => Some(TokenFile {
            expire_time: t.expires_at,
            ..t
        }),
        Ok(_) => {
            warn!(
                "{} holds an access_token wxtoken would refuse; replacing it",
                path.display()
            );
            None
        }
        Err(e) => {
            warn!(
                "{} is not a wxtoken token file ({e}); replacing it",
                path.display()
            );
            None
        }
    }
}

/// An admin running wxtoken by hand as root against the service's directory would leave root-owned
/// files (the lock among them) that the service's user can no longer open: every later timer run
/// would fail. Refuse, and say how to run it instead.
fn refuse_root_in_foreign_dir(dir: &Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let owner = fs::metadata(dir).map(|m| m.uid()).unwrap_or(0);
    if euid == 0 && owner != 0 {
        return Err(Error::config(format!(
            "refusing to write into {} as root: it belongs to uid {owner}, and root-owned files there \
             would lock that user out. Run `systemctl start wxtoken.service` (or wxtoken@NAME), or \
             run as the owner: runuser -u <owner> -- wxtoken ...",
            dir.display()
        )));
    }
    Ok(())
}

fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| {
            Error::cant_create(format!(
                "cannot create the output directory {}: {e}",
                dir.display()
            ))
        })?;
    info!("created {}", dir.display());
    Ok(())
}
