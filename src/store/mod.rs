//! The token files: their formats, the lock, and writing every output atomically.
//!
//! Readers (PHP, shell, Python) never lock: they open the path and always see either the previous
//! complete file or the new complete file, because a file is only ever replaced by `rename(2)` of a
//! fully written, fsynced temp file in the same directory.

pub mod atomic;
pub mod run_state;
pub mod ticket_file;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{debug, info, warn};
use serde::{Deserialize, Serialize};

use crate::api::{Api, is_appid, validate_token};
use crate::clock::secs_until;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::store::atomic::{
    Found, Pending, check_regular, dir_of, not_regular, read_capped, write_atomic,
};
use crate::text::printable;

/// The JSON contract (the state wxtoken decides from). Field order is the file's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFile {
    pub access_token: String,
    /// Lifetime WeChat announced when the token was fetched.
    pub expires_in: u64,
    /// Unix seconds after which the token must not be used. Written again as `expire_time` (and
    /// `expires_time`) for the readers that check those names: see [`Rendered`].
    pub expires_at: u64,
    pub refreshed_at: u64,
    pub appid: String,
    pub api: String,
}

impl TokenFile {
    pub fn remaining(&self, now: u64) -> i64 {
        secs_until(self.expires_at, now)
    }

    /// The `expires_time` of seed 003's file variant: see [`FETCHED_AT_OFFSET`].
    pub fn expires_time(&self) -> u64 {
        self.expires_at.saturating_sub(FETCHED_AT_OFFSET)
    }
}

/// Seed 003 stores the time it *fetched* a token (`expires_time` in its access_token.json, `expire`
/// in MySQL) and fetches again once `time() > stored + 3600`. Storing `expires_at - 3601` makes
/// that test true from `expires_at` on, the first second the token no longer works (it is valid
/// while now < expires_at), and never before. 3600 would keep a dead token for its last second.
pub const FETCHED_AT_OFFSET: u64 = 3601;

/// The `.json` as written: the contract plus the compatibility names, always derived from
/// `expires_at` (never stored apart from it, so they cannot disagree).
#[derive(Serialize)]
struct Rendered<'a> {
    access_token: &'a str,
    expires_in: u64,
    expires_at: u64,
    expire_time: u64,
    expires_time: u64,
    refreshed_at: u64,
    appid: &'a str,
    api: &'a str,
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
                let r = Rendered {
                    access_token: &t.access_token,
                    expires_in: t.expires_in,
                    expires_at: t.expires_at,
                    expire_time: t.expires_at,
                    expires_time: t.expires_time(),
                    refreshed_at: t.refreshed_at,
                    appid: &t.appid,
                    api: &t.api,
                };
                let mut s = serde_json::to_string_pretty(&r).expect("plain struct serializes");
                s.push('\n');
                s.into_bytes()
            }
            // Every value was validated to hold no quote or backslash, so single-quoting is safe.
            Format::Php => format!(
                "<?php\n// Written by wxtoken, replaced atomically on every refresh. Do not edit.\n\
                 return array(\n    'access_token' => '{}',\n    'expires_in' => {},\n    \
                 'expires_at' => {},\n    'expire_time' => {},\n    'expires_time' => {},\n    \
                 'refreshed_at' => {},\n    'appid' => '{}',\n    'api' => '{}',\n);\n",
                t.access_token,
                t.expires_in,
                t.expires_at,
                t.expires_at,
                t.expires_time(),
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
    /// The first .json output: the one each run reads back and decides from.
    pub primary: PathBuf,
    pub outs: Vec<(PathBuf, Format)>,
    pub mode: u32,
    pub gid: Option<u32>,
}

/// The lock file in each output directory. One per directory, not per output: runs that write into
/// the same directory (several accounts, or the same `--out` set in another order) serialize on it,
/// and one run's stale-temp cleanup cannot delete another's in-flight temp file.
pub const LOCK_NAME: &str = ".wxtoken.lock";

/// Held for the whole run: the flock on `.wxtoken.lock` in every output directory. Dropping it (or
/// the process dying) releases them.
pub struct Lock {
    /// Canonical directories, sorted, each with its open lock file.
    held: Vec<(PathBuf, File)>,
}

impl Lock {
    /// The directories whose lock this run holds (canonical paths).
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.held.iter().map(|(d, _)| d.as_path())
    }

    /// Removes temp files (`.NAME.XXXXXX.tmp`, NAME one of `names`) left by a run that was killed
    /// mid-write. Only in the directories this lock covers, so no live run can be writing them.
    pub fn remove_stale_temps(&self, names: &[String]) {
        for dir in self.dirs() {
            remove_stale_temps_in(dir, names);
        }
    }
}

/// Removes the temp files (`.NAME.XXXXXX.tmp`, NAME one of `names`) in `dir`. Only for files that
/// no run can be writing now: those of the directories whose lock this run holds, and files only
/// runs holding that lock write (the `--metrics` file of this configuration).
pub fn remove_stale_temps_in(dir: &Path, names: &[String]) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !names.iter().any(|n| is_temp_of(name, n)) {
            continue;
        }
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

/// `.NAME.XXXXXX.tmp`, exactly as [`crate::store::atomic::Pending`] names its temp files.
fn is_temp_of(entry: &str, name: &str) -> bool {
    entry
        .strip_prefix('.')
        .and_then(|r| r.strip_prefix(name))
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(".tmp"))
        .is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Every output's temp file, created under the lock before any upstream call by
/// [`Store::prepare`]. A run that gets one knows it can write everything it is about to fetch.
/// Temp files not committed are removed when this is dropped.
#[derive(Debug)]
pub struct Prepared {
    primary: PathBuf,
    outs: Vec<(PathBuf, Format)>,
    mode: u32,
    gid: Option<u32>,
    pending: Vec<Pending>,
}

impl Prepared {
    /// Replaces `path` with `content` through its prepared temp file: write, truncate, fsync,
    /// rename, fsync of the directory. Ok(false) when the file already held exactly this (nothing
    /// written). A path not prepared, or already committed once in this run, gets a new temp
    /// file here (as [`write_atomic`] does).
    pub fn commit(&mut self, path: &Path, content: &[u8]) -> Result<bool> {
        match self.pending.iter().position(|p| p.path() == path) {
            Some(i) => self.pending.swap_remove(i).commit(content),
            None => write_atomic(path, content, self.mode, self.gid),
        }
    }

    /// Commits every token output (the .json state first: if a later output fails, the next
    /// run finds a fresh state and renders the rest). Returns the paths written.
    pub fn commit_token(&mut self, t: &TokenFile) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (path, format) in primary_first(&self.primary, &self.outs) {
            if self.commit(&path, &format.render(t))? {
                written.push(path);
            }
        }
        Ok(written)
    }
}

fn primary_first(state: &Path, outs: &[(PathBuf, Format)]) -> Vec<(PathBuf, Format)> {
    let (json, rest): (Vec<_>, Vec<_>) = outs.iter().cloned().partition(|(p, _)| p == state);
    json.into_iter().chain(rest).collect()
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
        let primary = list
            .iter()
            .find(|(_, f)| *f == Format::Json)
            .map(|(p, _)| p.clone())
            .ok_or_else(|| {
                Error::config("at least one --out must be a .json file: it holds the state each run decides from")
            })?;
        Ok(Store {
            primary,
            outs: list,
            mode,
            gid,
        })
    }

    /// The state's directory: ticket files (and the run's own state) live there.
    pub fn dir(&self) -> &Path {
        dir_of(&self.primary)
    }

    /// Creates the output directories if needed and returns them canonical, sorted and without
    /// duplicates: the order every run takes their locks in, so two runs never wait on each
    /// other crosswise, and one directory spelled two ways is locked once.
    fn lock_dirs(&self) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for (path, _) in &self.outs {
            let dir = dir_of(path);
            ensure_dir(dir)?;
            refuse_root_in_foreign_dir(dir)?;
            dirs.push(fs::canonicalize(dir).map_err(|e| {
                Error::cant_create(format!("cannot use the directory {}: {e}", dir.display()))
            })?);
        }
        dirs.sort();
        dirs.dedup();
        Ok(dirs)
    }

    /// Takes the exclusive flock on `.wxtoken.lock` in every output directory, in sorted order,
    /// waiting at most until the deadline. The lock is a separate file because the outputs are
    /// replaced by rename on every refresh.
    pub fn lock(&self, deadline: &Deadline) -> Result<Lock> {
        let mut held = Vec::new();
        for dir in self.lock_dirs()? {
            let file = lock_one(&dir.join(LOCK_NAME), deadline)?;
            held.push((dir, file));
        }
        Ok(Lock { held })
    }

    /// Under the lock and BEFORE any upstream call: checks that every output and every path in
    /// `extra` (ticket files, the run's state file; each in an output's directory) is missing or
    /// a regular file, and creates each one's temp file with its final mode and group and space
    /// reserved. Err (exit 73) means this run cannot write: it must not call WeChat. Then
    /// [`Prepared::commit_token`] / [`Prepared::commit`] write what was fetched.
    pub fn prepare(&self, extra: &[PathBuf]) -> Result<Prepared> {
        let mut pending: Vec<Pending> = Vec::new();
        for path in self.outs.iter().map(|(p, _)| p).chain(extra) {
            if !pending.iter().any(|p| p.path() == path) {
                pending.push(Pending::create(path, self.mode, self.gid)?);
            }
        }
        Ok(Prepared {
            primary: self.primary.clone(),
            outs: self.outs.clone(),
            mode: self.mode,
            gid: self.gid,
            pending,
        })
    }

    /// Names of the files this store writes (temp files are `.NAME.XXXXXX.tmp`).
    pub fn names(&self) -> Vec<String> {
        self.outs
            .iter()
            .filter_map(|(p, _)| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect()
    }

    /// The current state, or None when it is missing or not something wxtoken would have written
    /// (a special file there is refused later, when the run prepares to write).
    pub fn read_primary(&self) -> Option<TokenFile> {
        // Not warned about twice: the error at prepare time names it.
        check_regular(&self.primary).ok()?;
        read_token_file(&self.primary)
    }

    /// Writes every output that does not already hold exactly this state, the .json state first.
    /// For a state just fetched, use [`Store::prepare`] before the fetch instead.
    pub fn write_token(&self, t: &TokenFile) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (path, format) in primary_first(&self.primary, &self.outs) {
            if write_atomic(&path, &format.render(t), self.mode, self.gid)? {
                written.push(path);
            }
        }
        Ok(written)
    }
}

/// Opens and flocks one lock file. O_NOFOLLOW: a link planted there (dangling or not) is refused,
/// never followed to create or lock its target, as root too. O_NONBLOCK: a FIFO cannot hang the
/// open; the fstat then refuses it. Read-only with O_CREAT: flock needs no write access, so on a
/// read-only file system a run still finds a fresh file fresh, and one that must write fails
/// naming the output it cannot write.
fn lock_one(path: &Path, deadline: &Deadline) -> Result<File> {
    check_regular(path)?;
    let file = OpenOptions::new()
        .read(true)
        .mode(0o600)
        .custom_flags(libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match fs::symlink_metadata(path) {
            Ok(meta) if !meta.is_file() => not_regular(path, &meta),
            _ => Error::cant_create(format!(
                "cannot open the lock file {}: {e}. Check that {} is writable by this user",
                path.display(),
                dir_of(path).display()
            )),
        })?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => {
            // Whoever may write the lock file may truncate or replace what runs serialize on.
            if meta.mode() & 0o022 != 0
                && let Err(e) = file.set_permissions(fs::Permissions::from_mode(0o600))
            {
                warn!(
                    "the lock file {} is writable by others (mode {:04o}) and cannot be made 0600:                      {e}; chmod 0600 it",
                    path.display(),
                    meta.mode() & 0o7777
                );
            }
        }
        Ok(meta) => return Err(not_regular(path, &meta)),
        Err(e) => {
            return Err(Error::cant_create(format!(
                "cannot stat the lock file {}: {e}",
                path.display()
            )));
        }
    }
    let mut waited = false;
    loop {
        match file.try_lock() {
            Ok(()) => {
                if waited {
                    debug!("got the lock {}", path.display());
                }
                return Ok(file);
            }
            Err(fs::TryLockError::WouldBlock) => {
                if !waited {
                    info!("waiting for another wxtoken run holding {}", path.display());
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

/// A token file as wxtoken wrote it, or None when it is missing or anything else (with a warning).
pub fn read_token_file(path: &Path) -> Option<TokenFile> {
    load_token_file(path).unwrap_or_else(|e| {
        warn!("{e}");
        None
    })
}

/// Err when the path holds a special file (or cannot be read): a run refuses it when it prepares
/// to write, so the caller decides whether to say so now.
fn load_token_file(path: &Path) -> Result<Option<TokenFile>> {
    let bytes = match read_capped(path)? {
        Found::Bytes(b) => b,
        Found::Missing => return Ok(None),
        // Replaced like a corrupt file: it is a regular file at the configured output path, and
        // readers cannot use it either.
        Found::TooLarge(why) => {
            warn!("{why}; replacing it");
            return Ok(None);
        }
    };
    match parse_token_file(&bytes) {
        Ok(t) => Ok(Some(t)),
        Err(why) => {
            warn!("{} {why}; replacing it", path.display());
            Ok(None)
        }
    }
}

/// A token file's content as wxtoken wrote it; Err completes "PATH ..." with why it is not. The
/// one parser of the state (the fuzz target `token_file` checks its invariants). Every string
/// in it must be one wxtoken could have written: they are printed, compared and rendered again
/// (into PHP source among others).
pub fn parse_token_file(bytes: &[u8]) -> std::result::Result<TokenFile, String> {
    let t = serde_json::from_slice::<TokenFile>(bytes).map_err(|e| {
        format!(
            "is not a wxtoken token file ({})",
            printable(&e.to_string())
        )
    })?;
    if validate_token(&t.access_token).is_err() {
        return Err("holds an access_token wxtoken would refuse".into());
    }
    if !is_appid(&t.appid) || !Api::ALL.iter().any(|a| a.name() == t.api) {
        return Err("holds an appid or api name wxtoken does not write".into());
    }
    Ok(t)
}

/// An admin running wxtoken by hand as root against the service's directory would leave root-owned
/// files (the lock among them) that the service's user can no longer open: every later timer run
/// would fail. Refuse, and say how to run it instead.
pub fn refuse_root_in_foreign_dir(dir: &Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let owner = fs::metadata(dir).map(|m| m.uid()).unwrap_or(0);
    if euid == 0 && dir_in_service_dir(dir) {
        // Even when root owns it (created by hand, or by an older wxtoken run as root): the
        // service's user could not replace what root writes there.
        return Err(Error::config(format!(
            "refusing to write into {} as root: it is the service's directory, and files root \
             writes there lock the service's user out. Run `systemctl start wxtoken.service` (or \
             wxtoken@NAME), or as the service's user: runuser -u wxtoken -- wxtoken ...; if root \
             owns the directory by mistake: chown -R wxtoken:wxtoken {SERVICE_DIR}",
            dir.display()
        )));
    }
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

/// The service's state directory: systemd creates it (StateDirectory=) owned by the service user.
const SERVICE_DIR: &str = "/var/lib/wxtoken";

/// Is `dir` the service's directory or one below it (as written, or through a symlink)?
fn dir_in_service_dir(dir: &Path) -> bool {
    dir.starts_with(SERVICE_DIR) || fs::canonicalize(dir).is_ok_and(|d| d.starts_with(SERVICE_DIR))
}

fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    refuse_root_creating(dir)?;
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

/// Err when this process must not create the missing directory `dir`.
pub fn refuse_root_creating(dir: &Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 && dir.starts_with(SERVICE_DIR) {
        // Created by root, it (and the lock and token in it) would lock the service's user out on
        // its first run.
        return Err(Error::config(format!(
            "refusing to create {} as root: it belongs to the service's user. Run `systemctl start \
             wxtoken.service` (or wxtoken@NAME.service), which creates it as user wxtoken, or \
             create it first: install -d -o wxtoken -g wxtoken -m 0750 {}",
            dir.display(),
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> TokenFile {
        TokenFile {
            access_token: "80_tok".into(),
            expires_in: 7200,
            expires_at: 1_000_000,
            refreshed_at: 992_800,
            appid: "wxa".into(),
            api: "stable".into(),
        }
    }

    #[test]
    fn only_what_wxtoken_writes_is_read_back() {
        assert_eq!(parse_token_file(&Format::Json.render(&file())), Ok(file()));
        // An appid or api no run could have written is refused: a read state is rendered again
        // (into PHP source too) and printed.
        for (appid, api) in [
            ("wx'x", "stable"),
            ("wx\nx", "stable"),
            ("wxa", "st'able"),
            ("", "stable"),
        ] {
            let t = TokenFile {
                appid: appid.into(),
                api: api.into(),
                ..file()
            };
            let why = parse_token_file(&Format::Json.render(&t)).unwrap_err();
            assert!(why.contains("appid or api"), "{why}");
        }
        // A long value is quoted short in the warning.
        let why =
            parse_token_file(format!("\"{}\"", "\u{7f}".repeat(1000)).as_bytes()).unwrap_err();
        assert!(why.len() < 500 && !why.contains('\u{7f}'), "{why}");
    }

    #[test]
    fn compatibility_names_follow_expires_at() {
        let t = TokenFile {
            access_token: "tok".into(),
            expires_in: 7200,
            expires_at: 1_000_000,
            refreshed_at: 992_800,
            appid: "wxa".into(),
            api: "stable".into(),
        };
        let json: serde_json::Value = serde_json::from_slice(&Format::Json.render(&t)).unwrap();
        assert_eq!(json["expire_time"], 1_000_000);
        // Seed 003: time() > expires_time + 3600 from expires_at on.
        assert_eq!(json["expires_time"], 1_000_000 - 3601);
        let php = String::from_utf8(Format::Php.render(&t)).unwrap();
        assert!(php.contains("'expire_time' => 1000000,"), "{php}");
        assert!(php.contains("'expires_time' => 996399,"), "{php}");
    }
}
