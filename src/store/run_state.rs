//! The run state (`.wxtoken-state.json`): the refresher's memory between runs.
//!
//! Which account owns the directory, what the last probe found, the force_refresh budget, and a fetch
//! that may have retired the file's token without its successor being written.
//!
//! The token file is the readers' contract and says nothing about these; they are what lets a run
//! know that "7200 s left on paper" is not the truth.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use log::warn;
use serde::{Deserialize, Serialize};

use crate::clock::secs_until;
use crate::error::Result;
use crate::store::atomic::{Found, read_capped, write_atomic};

pub const STATE_NAME: &str = ".wxtoken-state.json";
/// WeChat allows 20 force_refresh calls a day, at least 30 s apart.
pub const FORCE_PER_DAY: usize = 20;
pub const FORCE_MIN_GAP: u64 = 30;
/// get_api_domain_ip has a daily quota of its own (1000 a day, as WeChat staff answered in the
/// developer community; not in the reference docs). Half of it for probes, whatever apps report,
/// in two shares: any member of the readers' group can make reports, so they must never spend
/// what the periodic probe needs (the default --probe-every 300 makes 288 a day).
pub const PROBES_PER_DAY: u64 = 500;
pub const PERIODIC_PROBES_PER_DAY: u64 = 300;
pub const REPORT_PROBES_PER_DAY: u64 = PROBES_PER_DAY - PERIODIC_PROBES_PER_DAY;
const DAY: u64 = 86_400;

/// What a probe is made for, and so which budget it is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// `--probe-every`: the check for apps that cannot report.
    Periodic,
    /// An app reported the token as rejected.
    Report,
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Periodic => "periodic",
            ProbeKind::Report => "report",
        }
    }

    pub fn per_day(self) -> u64 {
        match self {
            ProbeKind::Periodic => PERIODIC_PROBES_PER_DAY,
            ProbeKind::Report => REPORT_PROBES_PER_DAY,
        }
    }
}

/// A fetch that retires the token it replaces: a legacy (or WeCom) fetch kills it `grace` (300 s)
/// after `at`, a force_refresh at once. Recorded before the request and cleared once the new token
/// is written, so a run killed in between (kill -9, SIGTERM, a failed write) leaves the truth behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retiring {
    pub digest: String,
    pub at: u64,
    pub grace: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Ended {
    /// The file's token stayed (or another host's was taken).
    #[default]
    Fresh,
    Refreshed,
    Failed,
}

impl From<String> for Ended {
    fn from(s: String) -> Self {
        match s.as_str() {
            "refreshed" => Ended::Refreshed,
            "failed" => Ended::Failed,
            _ => Ended::Fresh,
        }
    }
}

impl From<Ended> for String {
    fn from(e: Ended) -> String {
        match e {
            Ended::Fresh => "fresh",
            Ended::Refreshed => "refreshed",
            Ended::Failed => "failed",
        }
        .into()
    }
}

/// What the last probe found (stored as "alive", "dead", "unknown: why", or "" before any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Verdict {
    #[default]
    None,
    Alive,
    Dead,
    /// The probe got no answer that says either: why.
    Unknown(String),
}

impl From<String> for Verdict {
    fn from(s: String) -> Self {
        match s.as_str() {
            "" => Verdict::None,
            "alive" => Verdict::Alive,
            "dead" => Verdict::Dead,
            _ => Verdict::Unknown(s.strip_prefix("unknown: ").unwrap_or(&s).to_string()),
        }
    }
}

impl From<Verdict> for String {
    fn from(v: Verdict) -> String {
        match v {
            Verdict::None => String::new(),
            Verdict::Alive => "alive".into(),
            Verdict::Dead => "dead".into(),
            Verdict::Unknown(why) => format!("unknown: {why}"),
        }
    }
}

/// What one run came to, for `status` and monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Outcome {
    pub at: u64,
    pub result: Ended,
    pub exit: u8,
    /// "temporary", "configuration", "cannot write" for a failure.
    pub class: String,
    pub errcode: Option<i64>,
    /// The error (one line, no secret, tokens masked), empty on success.
    pub message: String,
    /// The part of `message` that says what the admin should do, where it has one.
    pub fix: Option<String>,
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
    pub last_probe: Verdict,
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
    /// Of those, the ones made for app reports and the periodic ones: each kind has its own
    /// budget (a state from an older wxtoken has neither: its window's probes are not charged).
    pub report_probes_today: u64,
    pub periodic_probes_today: u64,
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
    /// What runs could not remove from `requests/` and set aside in `.requests.old`, as the
    /// last look there found it (None: nothing is left there).
    pub requests_stuck: Option<Stuck>,
    /// What the last run saw of the fleet (`--redis`), for `status` and `--metrics`.
    pub fleet: Option<FleetSeen>,
}

/// Entries in `requests/` that this user cannot remove (a reader's non-empty directory), set
/// aside. Kept in the run state because `status` runs as a reader, who cannot look there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stuck {
    /// Entries found (at least: a look is bounded).
    pub entries: u64,
    /// Their owners' uids, a few at most.
    pub owners: Vec<u32>,
    /// When the set-aside place was last emptied of what could be removed.
    pub swept_at: u64,
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

    /// Saved with the token files' mode and group less any write bit but the owner's: `--mode`
    /// may let the readers write the token files, never the budgets and verdicts runs decide on.
    pub fn save(&self, dir: &Path, mode: u32, gid: Option<u32>) -> Result<()> {
        let mut s = serde_json::to_string_pretty(self).expect("plain struct serializes");
        s.push('\n');
        write_atomic(&Self::path(dir), s.as_bytes(), mode & !0o022, gid)?;
        Ok(())
    }

    /// The state file in `dir` can be written by others than its owner (an older wxtoken wrote
    /// it with a group-writable `--mode`, or a hand did): it must be saved again.
    pub fn writable_by_others(dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(Self::path(dir)).is_ok_and(|m| m.is_file() && m.mode() & 0o022 != 0)
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
            // A fetch recorded in the future was recorded under a clock that ran ahead: it was
            // made no later than now.
            Some(r) if r.digest == digest => expires_at.min(r.at.min(now).saturating_add(r.grace)),
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

    /// Is the current day's window over (or does it lie in the future: a clock step must not
    /// block probes for good)?
    fn probe_window_over(&self, now: u64) -> bool {
        self.probe_day_start > now || now - self.probe_day_start >= DAY
    }

    fn probes_used(&self, kind: ProbeKind) -> u64 {
        match kind {
            ProbeKind::Periodic => self.periodic_probes_today,
            ProbeKind::Report => self.report_probes_today,
        }
    }

    /// Is a probe of this kind within its daily budget? Opens a new day's window when the last
    /// one is over.
    pub fn probe_allowed(&mut self, now: u64, kind: ProbeKind) -> bool {
        if self.probe_window_over(now) {
            self.probe_day_start = now;
            self.probes_today = 0;
            self.report_probes_today = 0;
            self.periodic_probes_today = 0;
        }
        self.probes_used(kind) < kind.per_day()
    }

    /// Probes of this kind left in the current window.
    pub fn probe_budget_left(&self, now: u64, kind: ProbeKind) -> u64 {
        if self.probe_window_over(now) {
            return kind.per_day();
        }
        kind.per_day().saturating_sub(self.probes_used(kind))
    }

    /// When the current window ends (its budgets are back).
    pub fn probe_window_end(&self) -> u64 {
        self.probe_day_start.saturating_add(DAY)
    }

    pub fn record_probe(&mut self, now: u64, kind: ProbeKind) {
        self.last_probe_at = now;
        self.probes_today += 1;
        self.probes += 1;
        match kind {
            ProbeKind::Periodic => self.periodic_probes_today += 1,
            ProbeKind::Report => self.report_probes_today += 1,
        }
    }

    /// Records how a run ended.
    pub fn record_outcome(&mut self, outcome: Outcome) {
        if outcome.result == Ended::Failed {
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
/// Beside `requests/`: what runs could not remove from it, set aside out of the readers' reach.
pub const SET_ASIDE_DIR: &str = ".requests.old";

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

/// Entries of `requests/` (and of what is set aside) looked at per run: a flood costs a bounded
/// directory walk.
const MAX_REQUESTS: usize = 10_000;
/// Copies of `requests/` kept set aside at most. Each holds only what readers put there between
/// two runs that they could not take back; past this many, debris stays in `requests/` (and the
/// warning says so) rather than filling the state directory without end.
const MAX_SET_ASIDE: usize = 100;
/// How often what is set aside is looked at again when nothing new was set aside.
pub const SWEEP_EVERY: u64 = 3600;
/// Owners named per warning.
const MAX_OWNERS: usize = 5;

/// What a run found in `requests/`.
#[derive(Debug, Default)]
pub struct Consumed {
    /// Entries looked at and removed (or set aside).
    pub count: u64,
    /// The distinct digests among their names.
    pub digests: Vec<String>,
    /// What is set aside and cannot be removed, when this run looked (None: it did not look).
    pub stuck: Option<Option<Stuck>>,
}

/// Takes the requests apps left in `dir` (`requests/`; names: hex SHA-256 of a rejected token)
/// and leaves it empty. The names in `wanted` (the digest of the token the file holds) are looked
/// up directly, so no amount of debris can hide a report of the current token; the rest is read
/// in a bounded walk. An entry this user cannot remove (a reader's directory with something in
/// it) would keep `wxtoken.path` starting the service, and hide later reports from the walk: the
/// whole directory is then renamed into `.requests.old` (the service owns `requests/`, so it may
/// move it; the readers cannot reach inside `.requests.old`) and made again, empty. What is set
/// aside is emptied of everything removable when something new is set aside, else hourly
/// (`sweep_due`).
pub fn consume_requests(
    dir: &Path,
    wanted: &[String],
    gid: Option<u32>,
    now: u64,
    sweep_due: bool,
) -> Consumed {
    let mut found = Consumed::default();
    take_wanted(dir, wanted, &mut found);
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    let mut stuck = Walk::default();
    let mut entries = entries.flatten();
    for entry in entries.by_ref().take(MAX_REQUESTS) {
        found.count += 1;
        let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
        stuck.remove(&entry);
        if crate::api::is_digest(&name) && !found.digests.contains(&name) {
            found.digests.push(name);
        }
    }
    let more = entries.next().is_some();
    let parent = dir.parent().unwrap_or(Path::new("."));
    let aside = parent.join(SET_ASIDE_DIR);
    let set_aside = stuck.count > 0 || more;
    // What was set aside before is looked at first: copies emptied since make room for this one.
    let mut left = None;
    if set_aside || sweep_due {
        if aside.symlink_metadata().is_ok() {
            left = sweep(&aside, now);
        }
        found.stuck = Some(None);
    }
    if set_aside {
        match set_aside_requests(dir, &aside, now) {
            Ok(moved) => {
                // A report made between the walk and the rename went with the rest.
                take_wanted(&moved, wanted, &mut found);
                stuck.add_to(&mut left, now);
                if ensure_requests_dir(parent, gid).is_none() {
                    found.stuck = Some(left);
                    return found;
                }
            }
            Err(why) => {
                warn!(
                    "{} holds {} entr{} this user cannot remove{} and it could not be set aside: \
                     {why}. While anything is there, wxtoken.path starts the service again until \
                     its trigger limit; remove them as root (rm -r {}/*), then `systemctl restart \
                     wxtoken.path` (or wxtoken@NAME.path)",
                    dir.display(),
                    stuck.count,
                    if stuck.count == 1 { "y" } else { "ies" },
                    stuck.owned_by(),
                    dir.display()
                );
                stuck.add_to(&mut left, now);
            }
        }
    }
    if found.stuck.is_some() {
        found.stuck = Some(left);
    }
    if let Some(Some(left)) = &found.stuck {
        // One line per run, however many: a flood must not flood the journal.
        warn!(
            "this user cannot remove {} entr{} left in {} (owned by {}; a member of the \
             files' group made them{}): set aside in {}, where apps cannot reach them, and \
             requests/ is empty again. Remove them as root: rm -r {}",
            left.entries,
            if left.entries == 1 { "y" } else { "ies" },
            dir.display(),
            owner_names(&left.owners),
            if stuck.first.is_empty() {
                String::new()
            } else {
                format!("; first: {}", stuck.first)
            },
            aside.display(),
            aside.display()
        );
    }
    found
}

/// The owners' names (uid when there is none), for messages.
pub fn owner_names(owners: &[u32]) -> String {
    let names: Vec<String> = owners
        .iter()
        .map(|&uid| match crate::accounts::user_name(uid) {
            Some(name) => format!("{name} (uid {uid})"),
            None => format!("uid {uid}"),
        })
        .collect();
    names.join(", ")
}

/// Looks up each of `wanted` in `dir` directly and removes it, counting what was there.
fn take_wanted(dir: &Path, wanted: &[String], found: &mut Consumed) {
    for name in wanted {
        let path = dir.join(name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        found.count += 1;
        let _ = if meta.is_dir() {
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        if !found.digests.contains(name) {
            found.digests.push(name.clone());
        }
    }
}

/// What a walk could not remove.
#[derive(Default)]
struct Walk {
    count: u64,
    owners: Vec<u32>,
    first: String,
}

impl Walk {
    /// Removes one entry: its own type, never a symlink's target (a symlink is unlinked, not
    /// followed); an empty directory (mkdir instead of touch) goes too.
    fn remove(&mut self, entry: &fs::DirEntry) {
        use std::os::unix::fs::MetadataExt;
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir(entry.path()),
            _ => fs::remove_file(entry.path()),
        };
        if let Err(e) = removed {
            self.count += 1;
            if self.first.is_empty() {
                self.first = format!("{}: {e}", entry.file_name().to_string_lossy());
            }
            if let Ok(m) = entry.metadata()
                && self.owners.len() < MAX_OWNERS
                && !self.owners.contains(&m.uid())
            {
                self.owners.push(m.uid());
            }
        }
    }

    /// Adds what this walk could not remove to `all`.
    fn add_to(&self, all: &mut Option<Stuck>, now: u64) {
        if self.count == 0 {
            return;
        }
        let all = all.get_or_insert_with(|| Stuck {
            swept_at: now,
            ..Stuck::default()
        });
        all.entries += self.count;
        for uid in &self.owners {
            if all.owners.len() < MAX_OWNERS && !all.owners.contains(uid) {
                all.owners.push(*uid);
            }
        }
    }

    fn owned_by(&self) -> String {
        if self.owners.is_empty() {
            String::new()
        } else {
            format!(" (owned by {})", owner_names(&self.owners))
        }
    }
}

/// Renames `requests` into `aside` (made 0700 if missing) under a name of its own. Err says why
/// not.
fn set_aside_requests(
    requests: &Path,
    aside: &Path,
    now: u64,
) -> std::result::Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match fs::symlink_metadata(aside) {
        Ok(m) if m.is_dir() => {
            if m.mode() & 0o077 != 0 {
                fs::set_permissions(aside, fs::Permissions::from_mode(0o700))
                    .map_err(|e| format!("cannot make {} mode 0700: {e}", aside.display()))?;
            }
        }
        Ok(_) => return Err(format!("{} is not a directory", aside.display())),
        Err(_) => fs::DirBuilder::new()
            .mode(0o700)
            .create(aside)
            .map_err(|e| format!("cannot create {}: {e}", aside.display()))?,
    }
    let kept = fs::read_dir(aside)
        .map_err(|e| format!("cannot read {}: {e}", aside.display()))?
        .take(MAX_SET_ASIDE)
        .count();
    if kept >= MAX_SET_ASIDE {
        return Err(format!(
            "{} already holds {MAX_SET_ASIDE} copies of it, the most wxtoken keeps",
            aside.display()
        ));
    }
    for n in 0..1000u32 {
        let to = aside.join(format!("requests.{now}.{n}"));
        if to.symlink_metadata().is_ok() {
            continue;
        }
        return fs::rename(requests, &to)
            .map(|()| to)
            .map_err(|e| format!("cannot rename it into {}: {e}", aside.display()));
    }
    Err(format!("{} has no free name left", aside.display()))
}

/// Removes from `aside` all this user can (at most MAX_REQUESTS entries looked at), each copy of
/// `requests/` once it is empty, and `aside` itself once it is. Some(what is left) or None.
fn sweep(aside: &Path, now: u64) -> Option<Stuck> {
    let mut walk = Walk::default();
    let mut budget = MAX_REQUESTS;
    let mut partial = false;
    if let Ok(copies) = fs::read_dir(aside) {
        for copy in copies.flatten() {
            if budget == 0 {
                partial = true;
                break;
            }
            if !copy.file_type().is_ok_and(|t| t.is_dir()) {
                walk.remove(&copy);
                budget -= 1;
                continue;
            }
            let before = walk.count;
            if let Ok(entries) = fs::read_dir(copy.path()) {
                let mut entries = entries.flatten();
                for entry in entries.by_ref().take(budget) {
                    budget -= 1;
                    walk.remove(&entry);
                }
                if entries.next().is_some() {
                    partial = true;
                }
            }
            if walk.count == before && !partial {
                let _ = fs::remove_dir(copy.path());
            }
        }
    }
    if walk.count == 0 && !partial && fs::remove_dir(aside).is_ok() {
        return None;
    }
    Some(Stuck {
        entries: walk.count,
        owners: walk.owners,
        swept_at: now,
    })
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
        use ProbeKind::{Periodic, Report};
        let now = 1_000_000;
        let mut s = RunState::default();
        for _ in 0..REPORT_PROBES_PER_DAY {
            assert!(s.probe_allowed(now, Report));
            s.record_probe(now, Report);
        }
        assert!(!s.probe_allowed(now + 100, Report));
        assert_eq!(s.probe_budget_left(now + 100, Report), 0);
        // Reports spent their own share, not the periodic probes'.
        assert!(s.probe_allowed(now + 100, Periodic));
        assert_eq!(s.probe_budget_left(now, Periodic), PERIODIC_PROBES_PER_DAY);
        for _ in 0..PERIODIC_PROBES_PER_DAY {
            assert!(s.probe_allowed(now, Periodic));
            s.record_probe(now, Periodic);
        }
        assert!(!s.probe_allowed(now, Periodic));
        assert_eq!(s.probes_today, PROBES_PER_DAY);
        assert!(s.probe_allowed(now + DAY, Report));
        assert!(s.probe_allowed(now + DAY, Periodic));
        s.report_probes_today = REPORT_PROBES_PER_DAY;
        s.probe_day_start = now + 5 * DAY;
        assert_eq!(s.probe_budget_left(now, Report), REPORT_PROBES_PER_DAY);
        assert!(
            s.probe_allowed(now, Report),
            "a window from a clock that ran ahead is reopened"
        );
    }

    /// A directory with something in it: no user removes it with rmdir, root neither.
    fn debris(dir: &Path) {
        fs::create_dir(dir).unwrap();
        fs::write(dir.join("x"), "").unwrap();
    }

    #[test]
    fn requests_are_left_empty_and_what_is_set_aside_is_bounded() {
        let d = tempfile::tempdir().unwrap();
        let requests = ensure_requests_dir(d.path(), None).unwrap();
        let aside = d.path().join(SET_ASIDE_DIR);
        let wanted = crate::api::digest("live");
        debris(&requests.join("junk"));
        fs::write(requests.join(&wanted), "").unwrap();
        let found = consume_requests(&requests, std::slice::from_ref(&wanted), None, 1000, false);
        assert_eq!(found.digests, std::slice::from_ref(&wanted));
        assert_eq!(fs::read_dir(&requests).unwrap().count(), 0);
        let stuck = found.stuck.unwrap().unwrap();
        assert_eq!((stuck.entries, stuck.swept_at), (1, 1000));
        // The most copies kept: past it, debris stays where it is (and a report is still seen).
        for i in 1..MAX_SET_ASIDE {
            let copy = aside.join(format!("requests.{i}.0"));
            fs::create_dir(&copy).unwrap();
            debris(&copy.join("junk"));
        }
        debris(&requests.join("more"));
        fs::write(requests.join(&wanted), "").unwrap();
        let found = consume_requests(&requests, std::slice::from_ref(&wanted), None, 2000, false);
        assert_eq!(found.digests, std::slice::from_ref(&wanted));
        let left: Vec<_> = fs::read_dir(&requests).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "not set aside past {MAX_SET_ASIDE}");
        assert_eq!(fs::read_dir(&aside).unwrap().count(), MAX_SET_ASIDE);
        // Emptied by hand: the next look removes the empty copies and the place itself.
        for copy in fs::read_dir(&aside).unwrap().flatten() {
            fs::remove_dir_all(copy.path().join("junk")).unwrap();
        }
        let found = consume_requests(&requests, &[], None, 3000, true);
        assert_eq!(
            found.stuck,
            Some(Some(Stuck {
                entries: 1,
                owners: found.stuck.clone().unwrap().unwrap().owners,
                swept_at: 3000
            }))
        );
        assert_eq!(
            fs::read_dir(&aside).unwrap().count(),
            1,
            "only the new copy"
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
        // Recorded under a clock an hour ahead: clamped to now.
        s.retiring.as_mut().unwrap().at = 1000 + 3600;
        assert_eq!(s.effective_expiry("d", 9000, 1000), 1300);
        s.dead = Some("d".into());
        assert_eq!(s.effective_expiry("d", 9000, 1000), 1000);
    }
}
