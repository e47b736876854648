//! `wxtoken report-stale`: an app tells the refresher that WeChat rejected a token.
//!
//! The app cannot write the token file, so it leaves a request: an empty file named after the
//! token's SHA-256 in the request directory beside the output (what the PHP and Python helpers in
//! contrib/ do without running this binary). The refresher acts on it only if the digest names the
//! token the file holds now, and probes WeChat before it fetches.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use crate::api::{digest, validate_token};
use crate::cli::ReportArgs;
use crate::error::{Error, Result};
use crate::store::atomic::dir_of;
use crate::store::run_state::REQUESTS_DIR;
use crate::store::{Format, read_token_file};

pub fn run(args: &ReportArgs) -> Result<ExitCode> {
    let state = args
        .outs
        .iter()
        .find(|p| Format::of(p).is_ok_and(|f| f == Format::Json))
        .ok_or_else(|| Error::config("at least one --out must be the .json token file"))?;
    let wanted = parse_digest(&args.digest)?;

    // A report of a token the file no longer holds would only wake the refresher for nothing.
    if let Some(t) = read_token_file(state)
        && digest(&t.access_token) != wanted
    {
        eprintln!(
            "{} already holds another token (refreshed at {}): read the file again; nothing reported",
            state.display(),
            t.refreshed_at
        );
        return Ok(ExitCode::SUCCESS);
    }
    let dir = dir_of(state).join(REQUESTS_DIR);
    leave_request(&dir, &wanted)?;
    eprintln!(
        "reported {}…: wxtoken checks that token with WeChat and replaces it if it is dead, within \
         seconds under wxtoken.path, else at the next timer tick",
        &wanted[..12]
    );
    Ok(ExitCode::SUCCESS)
}

/// The digest as given, or the digest of the token read from stdin for "-".
fn parse_digest(arg: &str) -> Result<String> {
    if arg == "-" {
        let mut token = String::new();
        std::io::stdin()
            .take(4096)
            .read_to_string(&mut token)
            .map_err(|e| Error::config(format!("cannot read the token from stdin: {e}")))?;
        let token = token.trim();
        validate_token(token)
            .map_err(|why| Error::config(format!("stdin does not hold a token: {why}")))?;
        return Ok(digest(token));
    }
    // The command line checked the form already.
    Ok(arg.to_string())
}

fn leave_request(dir: &Path, digest: &str) -> Result<()> {
    let path = dir.join(digest);
    let made = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o620)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path);
    match made {
        Ok(_) => Ok(()),
        // Another worker reported the same token first (its file, which we may not open).
        Err(_) if path.symlink_metadata().is_ok() => Ok(()),
        Err(e) => Err(Error::cant_create(format!(
            "cannot leave a request in {}: {e}. wxtoken refresh creates that directory (mode 1730, \
             the token file's group); this user must be in that group",
            dir.display()
        ))),
    }
}
