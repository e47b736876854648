//! `wxtoken status`: what the files hold, for an admin at a terminal or a monitoring check.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::atomic::dir_of;
use crate::cli::StatusArgs;
use crate::error::Result;
use crate::logging::mask;
use crate::store::{Format, read_token_file};
use crate::tickets;
use crate::vocab::{secs_until, unix_now};

/// Prints one line per file to stdout; true when the token has more than the margin left and
/// every listed ticket is unexpired.
pub fn run(args: &StatusArgs) -> Result<ExitCode> {
    Ok(if inspect(args) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn inspect(args: &StatusArgs) -> bool {
    let state: PathBuf = match args
        .files
        .outs
        .iter()
        .find(|p| Format::of(p).is_ok_and(|f| f == Format::Json))
    {
        Some(p) => p.clone(),
        None => {
            println!("no .json among the outputs: nothing to inspect");
            return false;
        }
    };
    let now = unix_now();
    let mut ok = match read_token_file(&state) {
        None => {
            println!(
                "{}: no valid token file (has wxtoken refresh run? see journalctl -u wxtoken)",
                state.display()
            );
            false
        }
        Some(t) => {
            let left = t.remaining(now);
            let verdict = if left > args.files.margin as i64 {
                "fresh"
            } else if left > 0 {
                "due for refresh"
            } else {
                "EXPIRED"
            };
            println!(
                "{}: {verdict}: token {} of {} ({}), {left} s left (expires_at {}), refreshed {} s ago",
                state.display(),
                mask(&t.access_token),
                t.appid,
                t.api,
                t.expires_at,
                now.saturating_sub(t.refreshed_at)
            );
            left > args.files.margin as i64
        }
    };
    for &ty in &args.files.tickets {
        let path = tickets::path_for(dir_of(&state), ty);
        match tickets::read(&path) {
            Some(t) => {
                let left = secs_until(t.expires_at, now);
                println!(
                    "{}: {} ticket {}, {left} s left",
                    path.display(),
                    ty.name(),
                    mask(&t.ticket)
                );
                ok &= left > 0;
            }
            None => {
                println!("{}: no valid {} ticket file", path.display(), ty.name());
                ok = false;
            }
        }
    }
    ok
}
