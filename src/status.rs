//! `wxtoken status`: what the files hold and how the last runs went, as a monitoring plugin.
//!
//! For an admin at a terminal and for monitoring (Nagios / Icinga / Zabbix / Sensu plugin conventions). Reads only: no lock,
//! no network, never the token itself on the output.

use std::fmt::Write as _;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::accounts;
use crate::api::digest;
use crate::cli::StatusArgs;
use crate::clock::{implausible, secs_until, unix_now};
use crate::error::Result;
use crate::store::atomic::{Found, dir_of, read_capped};
use crate::store::run_state::{ProbeKind, RunState, Verdict};
use crate::store::{Format, TokenFile, parse_token_file};
use crate::tickets;

/// Monitoring-plugin states, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }
}

/// What status found: the worst level, the reasons, and the figures for perfdata and JSON.
#[derive(Debug)]
pub struct Report {
    pub level: Level,
    pub reasons: Vec<String>,
    pub remaining: Option<i64>,
    pub last_refresh: Option<u64>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub appid: Option<String>,
    pub api: Option<String>,
    pub tickets: Vec<(String, Option<i64>)>,
    /// The base URL that answered the last token fetch.
    pub last_base: Option<String>,
    /// What the last run saw of the fleet (`--redis`).
    pub fleet: Option<crate::store::run_state::FleetSeen>,
}

impl Report {
    fn raise(&mut self, level: Level, why: String) {
        // UNKNOWN is not "worse" than CRITICAL for an admin: a known outage wins over a doubt.
        let rank = |l: Level| match l {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Unknown => 2,
            Level::Critical => 3,
        };
        if rank(level) > rank(self.level) {
            self.level = level;
        }
        self.reasons.push(why);
    }
}

pub fn run(args: &StatusArgs) -> Result<ExitCode> {
    // A warning threshold below the critical one would never warn: a usage error, UNKNOWN.
    if args.warn < args.crit {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "WXTOKEN UNKNOWN - --warn {} is below --crit {}: give a warning threshold at least \
             the critical one (defaults 180 and 60)",
            args.warn, args.crit
        )
        .and_then(|()| out.flush());
        return Ok(ExitCode::from(Level::Unknown as u8));
    }
    let report = inspect(args);
    let text = if args.json {
        render_json(&report, args)
    } else {
        render_line(&report, args)
    };
    // A closed pipe (`wxtoken status | head -0`) is not an error worth a panic or a message.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(ExitCode::from(report.level as u8))
}

pub fn inspect(args: &StatusArgs) -> Report {
    let mut r = Report {
        level: Level::Ok,
        reasons: Vec::new(),
        remaining: None,
        last_refresh: None,
        last_error: None,
        consecutive_failures: 0,
        appid: None,
        api: None,
        tickets: Vec::new(),
        last_base: None,
        fleet: None,
    };
    let Some(path) = args
        .files
        .outs
        .iter()
        .find(|p| Format::of(p).is_ok_and(|f| f == Format::Json))
    else {
        r.raise(
            Level::Unknown,
            "no .json among --out: nothing to inspect".into(),
        );
        return r;
    };
    let now = unix_now();
    let dir = dir_of(path);
    let st = RunState::load_quiet(dir);
    if let Some(st) = &st {
        r.consecutive_failures = st.consecutive_failures;
        r.last_error = st.last_error.as_ref().map(|e| e.message.clone());
        r.last_base = st.last_run.as_ref().and_then(|o| o.base.clone());
        r.fleet = st.fleet.clone();
    }

    if let Err(e) = fs::File::open(path)
        && e.kind() == ErrorKind::PermissionDenied
    {
        r.raise(Level::Unknown, unreadable(path));
        return r;
    }
    match read_quietly(path) {
        Err(why) => r.raise(Level::Critical, why),
        Ok(None) => r.raise(
            Level::Critical,
            format!(
                "no token file {} (has wxtoken refresh run? journalctl -u wxtoken)",
                path.display()
            ),
        ),
        Ok(Some(t)) => {
            r.appid = Some(t.appid.clone());
            r.api = Some(t.api.clone());
            r.last_refresh = Some(t.refreshed_at);
            let d = digest(&t.access_token);
            let effective = st
                .as_ref()
                .map_or(t.expires_at, |s| s.effective_expiry(&d, t.expires_at, now));
            let left = secs_until(effective, now);
            r.remaining = Some(left.max(0));
            if let Some(why) = implausible(t.expires_in, t.expires_at, t.refreshed_at, now) {
                r.raise(
                    Level::Critical,
                    format!("the token file cannot be believed: {why}"),
                );
            } else if st
                .as_ref()
                .is_some_and(|s| s.dead.as_deref() == Some(d.as_str()))
            {
                r.raise(
                    Level::Critical,
                    "WeChat rejects the token in the file (last probe) and no new one could be \
                     fetched yet"
                        .into(),
                );
            } else if left <= 0 {
                r.raise(Level::Critical, "the token has expired".into());
            } else if left < args.crit as i64 {
                r.raise(Level::Critical, format!("only {left} s left"));
            } else if left < args.warn as i64 {
                r.raise(Level::Warning, format!("only {left} s left"));
            }
        }
    }
    if let Some(st) = &st {
        if st.consecutive_failures > 0
            && let Some(e) = &st.last_error
        {
            r.raise(
                Level::Warning,
                format!(
                    "last {} refresh{} failed: {}",
                    st.consecutive_failures,
                    if st.consecutive_failures == 1 {
                        ""
                    } else {
                        "es"
                    },
                    cause(e)
                ),
            );
        }
        for h in &st.hooks_pending {
            r.raise(
                Level::Warning,
                format!(
                    "the change hook {} has not delivered the current token (failing since {} s \
                     ago: {}); it is retried on every run",
                    h.command,
                    now.saturating_sub(h.since),
                    h.error
                ),
            );
        }
        if let Some(stuck) = &st.requests_stuck {
            let aside = dir.join(crate::store::run_state::SET_ASIDE_DIR);
            r.raise(
                Level::Warning,
                format!(
                    "wxtoken cannot remove {} entr{} left in requests/ (owned by {}): a member of \
                     the files' group made them; reports still work. Remove them as root: rm -r {} \
                     (where they are set aside; the log says when there was no room)",
                    stuck.entries,
                    if stuck.entries == 1 { "y" } else { "ies" },
                    crate::store::run_state::owner_names(&stuck.owners),
                    aside.display()
                ),
            );
        }
        for kind in [ProbeKind::Periodic, ProbeKind::Report] {
            if st.probe_budget_left(now, kind) > 0 {
                continue;
            }
            let off = match kind {
                ProbeKind::Periodic => {
                    "the token is not checked with WeChat periodically (--probe-every below 288 s \
                     does this)"
                }
                ProbeKind::Report => {
                    "apps' reports of a rejected token are not checked with WeChat (a member of \
                     the readers' group reporting the live token in a loop does this; the \
                     periodic probe goes on)"
                }
            };
            r.raise(
                Level::Warning,
                format!(
                    "the {} probe budget is used up ({} in 24 h): {off} for {} s more",
                    kind.name(),
                    kind.per_day(),
                    st.probe_window_end().saturating_sub(now)
                ),
            );
        }
        if let Some(f) = &st.fleet {
            fleet_warnings(&mut r, f);
        }
        if st.last_probe == Verdict::Dead {
            // No time recorded (0) or one in the future (a clock step): no age rather than a
            // made-up one.
            let when = if st.last_probe_at == 0 || st.last_probe_at > now {
                String::new()
            } else {
                format!(" ({} s ago)", now - st.last_probe_at)
            };
            r.raise(
                Level::Warning,
                format!(
                    "the last probe{when} found the token dead before its time: rotated by \
                     another program (or revoked); wxtoken fetched a new one. Find the other \
                     program: journalctl -u wxtoken"
                ),
            );
        }
    }
    for &ty in &args.files.tickets {
        let tpath = tickets::path_for(dir, ty);
        let ticket = match read_capped(&tpath) {
            Ok(Found::Bytes(b)) => tickets::parse(&b),
            _ => None,
        };
        match ticket {
            Some(t) => {
                let left = secs_until(t.expires_at, now);
                r.tickets.push((ty.name().to_string(), Some(left.max(0))));
                if left <= 0 {
                    r.raise(
                        Level::Critical,
                        format!("the {} ticket has expired", ty.name()),
                    );
                } else if left < args.crit as i64 {
                    r.raise(
                        Level::Critical,
                        format!("{} ticket: only {left} s left", ty.name()),
                    );
                }
            }
            None => {
                r.tickets.push((ty.name().to_string(), None));
                r.raise(
                    Level::Critical,
                    format!("no valid {} ticket file {}", ty.name(), tpath.display()),
                );
            }
        }
    }
    r
}

/// Runs in a row without Redis before status warns: a blip is no news, a host that stopped
/// following the fleet is.
pub const FLEET_UNREACHABLE_RUNS: u32 = 3;

/// A host that no longer follows its fleet: Redis unreachable for more than a few runs, or a file
/// token other than the fleet's for more than one run.
fn fleet_warnings(r: &mut Report, f: &crate::store::run_state::FleetSeen) {
    if !f.reachable && f.unreachable_runs > FLEET_UNREACHABLE_RUNS {
        r.raise(
            Level::Warning,
            format!(
                "Redis (--redis) was unreachable for the last {} runs: this host ({}) serves its \
                 file but does not follow the fleet; see the runs' errors (journalctl -u wxtoken)",
                f.unreachable_runs, f.role
            ),
        );
    } else if f.reachable && f.differing_runs > 1 {
        r.raise(
            Level::Warning,
            format!(
                "this host's token is not the fleet's for the last {} runs ({}): journalctl -u \
                 wxtoken says why (a token Redis holds that wxtoken does not believe, a follower \
                 waiting for a host that fetches)",
                f.differing_runs, f.role
            ),
        );
    }
}

/// The last failure as an admin acts on it: for a WeChat errcode, the code and WeChat's fix;
/// otherwise the whole message (it is one line already, and its end is usually the fix).
fn cause(e: &crate::store::run_state::Outcome) -> String {
    let text = e.message.as_str();
    match e.errcode {
        Some(45009) => "45009 daily quota used up: wait for tomorrow or reset it with clear_quota \
                        (10 a month)"
            .into(),
        Some(code) => format!("errcode {code}, {}", e.fix.as_deref().unwrap_or(text)),
        None => text.to_string(),
    }
}

/// The token file, read without the warnings a refresh logs (status replaces nothing): Ok(None)
/// when missing, Err(what is wrong, naming the file) when it is not a token file wxtoken wrote.
fn read_quietly(path: &Path) -> std::result::Result<Option<TokenFile>, String> {
    match read_capped(path) {
        Ok(Found::Missing) => Ok(None),
        Ok(Found::Bytes(b)) => parse_token_file(&b)
            .map(Some)
            .map_err(|why| format!("{} {why}", path.display())),
        Ok(Found::TooLarge(why)) => Err(why),
        Err(e) => Err(e.message),
    }
}

/// Why this user cannot read `path`, and which users could.
fn unreadable(path: &Path) -> String {
    let mut why = format!("cannot read {}: permission denied", path.display());
    let meta = fs::metadata(path).or_else(|_| fs::metadata(dir_of(path)));
    if let Ok(m) = meta {
        let (owner, group) = (
            accounts::user_or_id(m.uid()),
            accounts::group_or_id(m.gid()),
        );
        let _ = write!(
            why,
            "; it (or its directory) is {owner}:{group} mode {:04o}: ",
            m.mode() & 0o7777
        );
        if m.gid() == 0 {
            // Joining group root would give far more than this file: the file's group is wrong.
            let _ = write!(
                why,
                "run this as {owner}, or give the files a group the readers are in (wxtoken \
                 refresh --group GROUP / WXTOKEN_GROUP, or chgrp GROUP and chmod 0640 on the \
                 file and its directory)"
            );
        } else {
            let _ = write!(
                why,
                "run this as {owner} or a member of group {group} (usermod -aG {group} USER, \
                 then log in again)"
            );
        }
    }
    why
}

fn render_line(r: &Report, args: &StatusArgs) -> String {
    let mut line = format!("WXTOKEN {} - ", r.level.name());
    if r.reasons.is_empty() {
        let _ = write!(line, "{} s left", r.remaining.unwrap_or(0));
        if let (Some(appid), Some(api)) = (&r.appid, &r.api) {
            let _ = write!(line, " ({appid} {api}");
            if let Some(at) = r.last_refresh {
                let _ = write!(line, ", refreshed {} s ago", unix_now().saturating_sub(at));
            }
            line.push(')');
        }
    } else {
        line.push_str(&r.reasons.join("; "));
    }
    // Perfdata: label=value[UOM];warn;crit (monitoring-plugins guidelines); "N:" is the range
    // "alert below N" (a bare N would mean above).
    let _ = write!(
        line,
        " | remaining={}s;{}:;{}: consecutive_failures={}",
        r.remaining.unwrap_or(0),
        args.warn,
        args.crit,
        r.consecutive_failures
    );
    for (name, left) in &r.tickets {
        let _ = write!(
            line,
            " {name}_ticket={}s;;{}:",
            left.unwrap_or(0),
            args.crit
        );
    }
    line.push('\n');
    line
}

fn render_json(r: &Report, args: &StatusArgs) -> String {
    let tickets: serde_json::Map<String, serde_json::Value> = r
        .tickets
        .iter()
        .map(|(n, left)| (n.clone(), json!({ "remaining": left })))
        .collect();
    let v = json!({
        "status": r.level.name(),
        "remaining": r.remaining,
        "last_refresh": r.last_refresh,
        "last_error": r.last_error,
        "consecutive_failures": r.consecutive_failures,
        "reasons": r.reasons,
        "appid": r.appid,
        "api": r.api,
        "warn": args.warn,
        "crit": args.crit,
        "tickets": tickets,
        "last_base": r.last_base,
        "fleet": r.fleet.as_ref().map(|f| json!({
            "role": f.role,
            "redis_reachable": f.reachable,
            "unreachable_runs": f.unreachable_runs,
            "same_token": f.same_token,
            "differing_runs": f.differing_runs,
            "last_refresh": f.refreshed_at,
            "refreshed_by": f.refreshed_by,
            "force_refresh_used": f.force_refresh_used,
            "clock_skew": f.clock_skew,
        })),
    });
    let mut s = serde_json::to_string_pretty(&v).expect("plain value serializes");
    s.push('\n');
    s
}
