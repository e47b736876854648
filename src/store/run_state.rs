//! The refresher's memory between runs, kept beside the token in `.wxtoken-state.json`: which
//! account owns the directory, what the last probe found, the force_refresh budget, and a fetch
//! that may have retired the file's token without its successor being written.
//!
//! The token file is the readers' contract and says nothing about these; they are what lets a run
//! know that "7200 s left on paper" is not the truth.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use log::warn;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::atomic::{Found, read_capped, write_atomic};
use crate::vocab::secs_until;

pub const STATE_NAME: &str = ".wxtoken-state.json";
/// WeChat allows 20 force_refresh calls a day, at least 30 s apart.
pub const FORCE_PER_DAY: usize = 20;
pub const FORCE_MIN_GAP: u64 = 30;
/// get_api_domain_ip has a daily quota of its own (1000 a day, as WeChat staff answered in the
/// developer community; not in the reference docs). Half of it for probes, whatever apps report.
pub const PROBES_PER_DAY: u64 = 500;
const DAY: u64 = 86_400;

/// A fetch that retires the token it replaces: a legacy (or WeCom) fetch kills it `grace` (300 s)
/// after `at`, a force_refresh at once. Recorded before the request and cleared once the new token
/// is written, so a run killed in between (kill -9, SIGTERM, a failed write) leaves the truth behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retiring {
    pub digest: String,
    pub at: u64,
    pub grace: u64,
}

/// What one run came to, for `status` and monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outcome {
    pub at: u64,
    /// "refreshed", "fresh" or "failed".
    pub result: String,
    pub exit: u8,
    /// "temporary", "configuration", "cannot write" for a failure.
    pub class: String,
    pub errcode: Option<i64>,
    /// The error (one line, no secret, tokens masked), empty on success.
    pub message: String,
    /// The base URL that answered the last token fetch: this run's, else the one before it
    /// (carried over, so a fallback base in use shows between refreshes too).
    pub base: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunState {
    /// The account that owns this directory: one directory, one owner.
    pub appid: String,
    pub last_probe_at: u64,
    /// "alive", "dead" or "unknown: why".
    pub last_probe: String,
    /// Digest of a token a probe (or WeChat at a ticket call) found dead.
    pub dead: Option<String>,
    pub retiring: Option<Retiring>,
    /// force_refresh calls made within the last day (unix seconds).
    pub force_refresh_at: Vec<u64>,
    /// A report that matched the current token but came within the probe rate limit: the next run
    /// probes it.
    pub pending_report: Option<String>,
    pub reports_consumed: u64,
    pub last_report_at: u64,
    /// When the owner's token in this directory expires: another account may take the
    /// directory over only after that.
    pub token_expires_at: u64,
    /// Probes made since `probe_day_start` (a rolling window of one day).
    pub probe_day_start: u64,
    pub probes_today: u64,
    /// The last run's outcome. A fresh tick that changes nothing else is saved only when this is
    /// older than 600 s (the metrics file has every run's).
    pub last_run: Option<Outcome>,
    pub last_error: Option<Outcome>,
    pub last_success_at: u64,
    pub consecutive_failures: u32,
    /// Upstream token requests made (every attempt counts), for metrics.
    pub token_fetches: u64,
    pub probes: u64,
    /// Failed runs by "class/errcode" ("temporary/-", "configuration/40164"), for metrics.
    pub failures: std::collections::BTreeMap<String, u64>,
    /// Unix milliseconds when this state last published a fetched token: a run that started
    /// before that (and waited for the lock) takes that token instead of fetching again.
    pub refreshed_ms: u64,
    /// What each `--on-change` hook last delivered successfully: per command, per item ("token",
    /// "jsapi_ticket", ...) a digest of its value and expiry. A hook runs while this differs from
    /// what the files hold: after a change, after its own failure, once when newly configured.
    pub hooks_delivered: BTreeMap<String, BTreeMap<String, String>>,
    /// Hooks whose last run failed, retried on every run until they succeed.
    pub hooks_pending: Vec<PendingHook>,
    /// What the last run saw of the fleet (`--redis`), for `status` and `--metrics`.
    pub fleet: Option<FleetSeen>,
}

/// The fleet as a run saw it. Times on this host's clock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FleetSeen {
    /// "leader" (may fetch) or "follower".
    pub role: String,
    pub reachable: bool,
    /// Runs in a row that could not reach Redis.
    pub unreachable_runs: u32,
    /// This host's file held the fleet's token when the run ended.
    pub same_token: bool,
    /// Runs in a row that ended with a file token other than the fleet's.
    pub differing_runs: u32,
    /// When the fleet's token was fetched, and by which host (as it named itself).
    pub refreshed_at: u64,
    pub refreshed_by: String,
    /// force_refresh calls the fleet made in the last 24 h (the shared budget).
    pub force_refresh_used: u64,
    /// Redis's clock minus this host's, seconds.
    pub clock_skew: i64,
}

/// A hook that has not delivered the current token yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingHook {
    pub command: String,
    /// Digest of the token it has to deliver (as in reports: hex SHA-256 of the token).
    pub token: String,
    /// First failure for this token.
    pub since: u64,
    pub error: String,
}

impl RunState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_NAME)
    }

    /// The state in `dir`, or a blank one when it is missing or unreadable (a warning says so: a
    /// lost state only costs a probe or a forgotten budget entry, never a wrong token).
    pub fn load(dir: &Path) -> RunState {
        let path = Self::path(dir);
        let bytes = match read_capped(&path) {
            Ok(Found::Bytes(b)) => b,
            Ok(Found::Missing) => return RunState::default(),
            Ok(Found::TooLarge(why)) => {
                warn!("{why}; starting from a blank run state");
                return RunState::default();
            }
            Err(e) => {
                warn!("{e}; starting from a blank run state");
                return RunState::default();
            }
        };
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            warn!(
                "{} is not a wxtoken run state ({e}); starting from a blank one",
                path.display()
            );
            RunState::default()
        })
    }

    /// The state for `status`: None when missing or unreadable, without warnings (status says what
    /// it could not see in its own words).
    pub fn load_quiet(dir: &Path) -> Option<RunState> {
        match read_capped(&Self::path(dir)) {
            Ok(Found::Bytes(b)) => serde_json::from_slice(&b).ok(),
            _ => None,
        }
    }

    pub fn save(&self, dir: &Path, mode: u32, gid: Option<u32>) -> Result<()> {
        let mut s = serde_json::to_string_pretty(self).expect("plain struct serializes");
        s.push('\n');
        write_atomic(&Self::path(dir), s.as_bytes(), mode, gid)?;
        Ok(())
    }

    /// Seconds since the last probe; "never" (u64::MAX) when there was none or its time lies in
    /// the future (a clock step must not postpone probes for good).
    pub fn probed_ago(&self, now: u64) -> u64 {
        if self.last_probe_at == 0 || self.last_probe_at > now {
            u64::MAX
        } else {
            now - self.last_probe_at
        }
    }

    /// When the token with `digest`, which the file says expires at `expires_at`, really stops
    /// working as far as this state knows.
    pub fn effective_expiry(&self, digest: &str, expires_at: u64, now: u64) -> u64 {
        if self.dead.as_deref() == Some(digest) {
            return now.min(expires_at);
        }
        match &self.retiring {
            Some(r) if r.digest == digest => expires_at.min(r.at.saturating_add(r.grace)),
            _ => expires_at,
        }
    }

    /// Forgets force_refresh calls older than a day. Entries in the future (the clock stepped
    /// back) count as now: the budget is never widened by a clock step.
    fn prune_force(&mut self, now: u64) {
        for t in &mut self.force_refresh_at {
            *t = (*t).min(now);
        }
        self.force_refresh_at
            .retain(|&t| secs_until(t.saturating_add(DAY), now) > 0);
    }

    /// Ok(wait seconds) when a force_refresh is allowed (after that wait), else why not.
    pub fn force_allowed(&mut self, now: u64) -> std::result::Result<u64, String> {
        self.prune_force(now);
        if self.force_refresh_at.len() >= FORCE_PER_DAY {
            let oldest = self.force_refresh_at.iter().min().copied().unwrap_or(now);
            return Err(format!(
                "the force_refresh budget is used up: {} calls in the last 24 h (WeChat allows \
                 {FORCE_PER_DAY}); the next is possible in {} s",
                self.force_refresh_at.len(),
                secs_until(oldest.saturating_add(DAY), now).max(0)
            ));
        }
        let last = self.force_refresh_at.iter().max().copied().unwrap_or(0);
        let since = now.saturating_sub(last);
        Ok(FORCE_MIN_GAP.saturating_sub(since).min(FORCE_MIN_GAP))
    }

    /// Is a probe within the daily budget? Opens a new day's window when the last one is over (or
    /// lies in the future: a clock step must not block probes for good).
    pub fn probe_allowed(&mut self, now: u64) -> bool {
        if self.probe_day_start > now || now - self.probe_day_start >= DAY {
            self.probe_day_start = now;
            self.probes_today = 0;
        }
        self.probes_today < PROBES_PER_DAY
    }

    pub fn record_probe(&mut self, now: u64) {
        self.last_probe_at = now;
        self.probes_today += 1;
        self.probes += 1;
    }

    /// Records how a run ended.
    pub fn record_outcome(&mut self, outcome: Outcome) {
        if outcome.result == "failed" {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            let key = format!(
                "{}/{}",
                outcome.class,
                outcome.errcode.map_or("-".to_string(), |c| c.to_string())
            );
            *self.failures.entry(key).or_default() += 1;
            self.last_error = Some(outcome.clone());
        } else {
            self.consecutive_failures = 0;
            self.last_success_at = outcome.at;
        }
        self.last_run = Some(outcome);
    }

    pub fn record_force(&mut self, now: u64) {
        self.prune_force(now);
        self.force_refresh_at.push(now);
    }
}

pub const REQUESTS_DIR: &str = "requests";

/// The directory where apps leave requests (see `report`): created on every run if missing, mode
/// 01730 and the outputs' group, so the readers' group may add entries but neither list nor remove
/// other users'. None (with a warning) when it cannot be had: reports are then ignored, the
/// token is still served.
pub fn ensure_requests_dir(dir: &Path, gid: Option<u32>) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    let path = dir.join(REQUESTS_DIR);
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            warn!(
                "{} is not a directory: app reports are ignored until it is removed",
                path.display()
            );
            return None;
        }
        Err(_) => {
            if let Err(e) = fs::DirBuilder::new().mode(0o700).create(&path) {
                warn!(
                    "cannot create the request directory {}: {e}; app reports are ignored",
                    path.display()
                );
                return None;
            }
        }
    }
    // Group and mode on an open descriptor (fchown, fchmod: what the units' system-call filter
    // allows), also for a directory an earlier run made under another group (WXTOKEN_GROUP set or
    // changed since): the readers' group must be able to add requests.
    // SAFETY: getegid has no preconditions and cannot fail.
    let want_gid = gid.unwrap_or_else(|| unsafe { libc::getegid() });
    let fixed = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .and_then(|d| {
            let m = d.metadata()?;
            if m.gid() != want_gid {
                std::os::unix::fs::fchown(&d, None, Some(want_gid))?;
            }
            // After the chown: chown clears set-id bits, and the mode must not depend on umask.
            if m.mode() & 0o7777 != 0o1730 || m.gid() != want_gid {
                d.set_permissions(fs::Permissions::from_mode(0o1730))?;
            }
            Ok(())
        });
    if let Err(e) = fixed {
        warn!(
            "cannot give the request directory {} group {want_gid} and mode 1730: {e}; the readers' \
             group may be unable to report a rejected token",
            path.display()
        );
    }
    Some(path)
}

/// Lists and removes the requests apps left in `dir` (names: hex SHA-256 of a rejected token).
/// At most `MAX_REQUESTS` are looked at per run, so a flood costs a bounded directory walk.
/// Returns how many requests were consumed and the distinct digests among them.
pub fn consume_requests(dir: &Path) -> (u64, Vec<String>) {
    const MAX_REQUESTS: usize = 10_000;
    let Ok(entries) = fs::read_dir(dir) else {
        return (0, Vec::new());
    };
    let (mut count, mut digests) = (0, Vec::new());
    let (mut stuck, mut first_stuck) = (0u64, None);
    for entry in entries.flatten().take(MAX_REQUESTS) {
        count += 1;
        let name = entry.file_name().to_string_lossy().into_owned();
        // The entry's own type (never a symlink's target): a symlink is unlinked, not followed.
        // An empty directory (mkdir instead of touch) goes too; anything left keeps the path unit
        // starting the service.
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir(entry.path()),
            _ => fs::remove_file(entry.path()),
        };
        if let Err(e) = removed {
            stuck += 1;
            first_stuck.get_or_insert_with(|| format!("{name}: {e}"));
        }
        let name = name.to_ascii_lowercase();
        if crate::vocab::is_digest(&name) && !digests.contains(&name) {
            digests.push(name);
        }
    }
    if let Some(first) = first_stuck {
        // One line per run, however many: a flood must not flood the journal.
        warn!(
            "cannot remove {stuck} of {count} request(s) in {} (first: {first}); while one is \
             there, wxtoken.path starts the service again until its trigger limit: remove them \
             as root (rm -r {}/*), then `systemctl restart wxtoken.path` (or wxtoken@NAME.path)",
            dir.display(),
            dir.display()
        );
    }
    (count, digests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_budget() {
        let mut s = RunState::default();
        let now = 1_000_000;
        assert_eq!(s.force_allowed(now), Ok(0));
        s.record_force(now - 10);
        assert_eq!(s.force_allowed(now), Ok(20));
        s.force_refresh_at = (0..20).map(|i| now - 3600 - i).collect();
        assert!(s.force_allowed(now).is_err());
        // A day later the budget is back.
        assert_eq!(s.force_allowed(now + DAY), Ok(0));
        // Entries from a clock that ran ahead count as now, not as "long ago".
        let mut s = RunState {
            force_refresh_at: vec![now + 5000],
            ..RunState::default()
        };
        assert_eq!(s.force_allowed(now), Ok(FORCE_MIN_GAP));
    }

    #[test]
    fn probe_budget() {
        let now = 1_000_000;
        let mut s = RunState::default();
        for _ in 0..PROBES_PER_DAY {
            assert!(s.probe_allowed(now));
            s.record_probe(now);
        }
        assert!(!s.probe_allowed(now + 100));
        assert!(s.probe_allowed(now + DAY));
        s.probes_today = PROBES_PER_DAY;
        s.probe_day_start = now + 5 * DAY;
        assert!(
            s.probe_allowed(now),
            "a window from a clock that ran ahead is reopened"
        );
    }

    #[test]
    fn effective_expiry() {
        let mut s = RunState::default();
        assert_eq!(s.effective_expiry("d", 9000, 1000), 9000);
        s.retiring = Some(Retiring {
            digest: "d".into(),
            at: 1000,
            grace: 300,
        });
        assert_eq!(s.effective_expiry("d", 9000, 1000), 1300);
        assert_eq!(s.effective_expiry("other", 9000, 1000), 9000);
        s.dead = Some("d".into());
        assert_eq!(s.effective_expiry("d", 9000, 1000), 1000);
    }
}
