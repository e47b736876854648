//! One `wxtoken refresh` run: lock, read, decide, obtain, deliver.

mod deliver;
mod every;
mod obtain;

pub use every::every;

use std::process::ExitCode;

use log::{debug, error, info, warn};

use self::deliver::{Delivery, Sink};
use self::obtain::{Obtained, Source};
use crate::api::{Api, digest};
use crate::cli::RefreshArgs;
use crate::clock::{implausible, secs_until, unix_now, unix_now_ms};
use crate::config::Config;
use crate::deadline::Deadline;
use crate::error::{Error, Kind, Result};
use crate::logging::register_token;
use crate::plan::{Current, Plan, Policy, plan};
use crate::store::TokenFile;
use crate::store::run_state::{self, Ended, RunState};
use crate::tickets;
use crate::wechat::{Context, Purpose};

/// At most one probe per this many seconds on behalf of app reports: a flood of reports (even of
/// the current token) costs one probe per interval, never a fetch without a probe.
pub(crate) const REPORT_PROBE_INTERVAL: u64 = 30;

/// Why WeChat would have killed a token early, in words an admin can act on.
pub(crate) fn likely_cause(api: Api) -> &'static str {
    match api {
        Api::Legacy => {
            "another program probably fetched a token for this appid with the legacy API (each \
             such fetch retires the previous token 5 minutes later): find it and make it read \
             this file instead"
        }
        Api::Stable => {
            "WeChat revoked it, or another program called stable_token with force_refresh:true"
        }
        Api::Wecom => "WeCom invalidated it early, or another program fetched one for this app",
    }
}

pub fn refresh(args: &RefreshArgs) -> Result<ExitCode> {
    // Before the lock: a run that waits for another's refresh must see that refresh as "after
    // it started".
    let started_ms = unix_now_ms();
    let cfg = Config::from_args(args)?;
    let deadline = Deadline::after(cfg.max_time);
    let store = &cfg.store;
    let lock = store.lock(&deadline)?;
    let mut names = store.names();
    names.extend(cfg.tickets.iter().map(|t| t.file_name()));
    names.push(run_state::STATE_NAME.to_string());
    lock.remove_stale_temps(&names);
    if let Some(metrics) = &cfg.metrics
        && let Some(name) = metrics.file_name().and_then(|n| n.to_str())
    {
        crate::store::remove_stale_temps_in(
            crate::store::atomic::dir_of(metrics),
            &[name.to_string()],
        );
    }

    let dir = store.dir().to_path_buf();
    let requests = run_state::ensure_requests_dir(&dir, store.gid);
    let mut st = RunState::load(&dir);
    let now = unix_now();
    let file = store.read_primary();
    claim_directory(&cfg, &mut st, file.as_ref(), now)?;
    let mut run = Run {
        cfg: &cfg,
        deadline,
        st,
        dirty: RunState::writable_by_others(&dir),
        fetched: false,
        base: None,
    };
    let mut source = obtain::for_config(&cfg);
    let mut sinks = deliver::for_config(&cfg);
    let result = execute(
        &mut run,
        source.as_mut(),
        &mut sinks,
        file,
        requests.as_deref(),
        started_ms,
        now,
    );
    drop((source, sinks));
    run.record(&result);
    if let Some(path) = &cfg.metrics {
        run.write_metrics(path);
    }
    result
}

/// One directory, one owner. Two accounts writing into one directory would overwrite each other's
/// tickets and state on every run, each run "succeeding": refuse while the other account's token
/// is alive, take over (with a warning) once it has expired.
fn claim_directory(
    cfg: &Config,
    st: &mut RunState,
    file: Option<&TokenFile>,
    now: u64,
) -> Result<()> {
    let dir = cfg.store.dir();
    let (other, until) = if !st.appid.is_empty() && st.appid != cfg.appid {
        (st.appid.clone(), st.token_expires_at)
    } else if let Some(f) = file.filter(|f| f.appid != cfg.appid) {
        let plausible = implausible(f.expires_in, f.expires_at, f.refreshed_at, now).is_none();
        (f.appid.clone(), if plausible { f.expires_at } else { 0 })
    } else {
        st.appid = cfg.appid.clone();
        return Ok(());
    };
    let left = secs_until(until, now);
    if left > 0 {
        return Err(Error::config(format!(
            "{} is in use by appid {other}, whose token there is valid for {left} s more; refusing to \
             write appid {}'s files into it. One directory serves one account: give each its own \
             (--out /var/lib/wxtoken/NAME/access_token.json, as the wxtoken@NAME units do). If this \
             directory really moves to {}, delete {} and the token files in it",
            dir.display(),
            cfg.appid,
            cfg.appid,
            RunState::path(dir).display()
        )));
    }
    warn!(
        "taking over {} from appid {other}, whose token there has expired",
        dir.display()
    );
    *st = RunState {
        appid: cfg.appid.clone(),
        ..RunState::default()
    };
    Ok(())
}

pub(crate) fn context(cfg: &Config) -> Context<'_> {
    Context {
        appid: &cfg.appid,
        api: cfg.api,
        secret_source: &cfg.secret_source,
        purpose: Purpose::Token,
    }
}

/// How stale the state file's record of the last run may grow while nothing else changes.
const OUTCOME_HEARTBEAT: u64 = 600;

/// What one run carries between its steps, whatever the source: the settings, the time left, and
/// the run state it keeps true at every step.
pub struct Run<'a> {
    cfg: &'a Config,
    deadline: Deadline,
    st: RunState,
    /// The state changed and must be saved.
    dirty: bool,
    /// A token was fetched and published by this run.
    fetched: bool,
    /// The base URL that answered this run's token fetch.
    base: Option<String>,
}

/// Lock → read → decide → obtain → deliver: everything after the directory is claimed.
///
/// The exit status: the token's own outcome first (a fetch that failed, or a token with no more
/// than the margin left), then the source's deferred failure (Redis unreachable, a publish to
/// Redis that failed), then a ticket's, then the sinks' in their order. Each later step still
/// runs after an earlier failure that left a valid token in the files.
fn execute(
    run: &mut Run,
    source: &mut dyn Source,
    sinks: &mut [Box<dyn Sink + '_>],
    mut file: Option<TokenFile>,
    requests: Option<&std::path::Path>,
    started_ms: u64,
    now: u64,
) -> Result<ExitCode> {
    let cfg = run.cfg;
    // A report of the file's token is looked up by its name: no debris can hide it.
    let wanted: Vec<String> = file.iter().map(|f| digest(&f.access_token)).collect();
    let sweep_due = run
        .st
        .requests_stuck
        .as_ref()
        .is_none_or(|s| s.swept_at > now || now - s.swept_at >= run_state::SWEEP_EVERY);
    let taken = requests.map_or_else(run_state::Consumed::default, |dir| {
        run_state::consume_requests(dir, &wanted, cfg.store.gid, now, sweep_due)
    });
    if let Some(stuck) = taken.stuck
        && run.st.requests_stuck != stuck
    {
        run.st.requests_stuck = stuck;
        run.dirty = true;
    }
    let (consumed, mut reports) = (taken.count, taken.digests);
    if consumed > 0 {
        run.st.reports_consumed += consumed;
        run.st.last_report_at = now;
        run.dirty = true;
    }
    source.sync(run, &mut file, &mut reports, now)?;
    let current = file.and_then(|f| run.assess(f, now));
    if consumed > 0 {
        let matching = current
            .as_ref()
            .is_some_and(|c| reports.contains(&c.digest));
        if !matching {
            info!("{consumed} report(s) named no token the file holds now: nothing to do");
        }
    }
    // Decide.
    let mut decision = plan(run.policy(), current, &run.st, &reports, started_ms, now);
    decision = source.admit(run, decision, now)?;
    if let Plan::Probe { cur, why, reported } = decision {
        decision = source.probe(run, cur, &why, reported, now);
    }
    // Obtain.
    let got = match decision {
        Plan::Fresh { cur, left } => run.keep(cur, left)?,
        Plan::Fetch {
            current,
            why,
            rotate,
        } => {
            let known = current.clone();
            source
                .token(run, current, &why, rotate)
                .inspect_err(|_| run.tell_truth(known.as_ref()))?
        }
        Plan::Probe { cur, .. } => {
            // A source answers a probe with Fresh or Fetch; one that could not probe keeps.
            let left = cur.left(now);
            run.keep(cur, left)?
        }
    };
    run.save_state()?;
    let Obtained {
        mut token,
        mut outcome,
        mut fetched,
    } = got;

    // Tickets only ever use a token that was validated and published above. A ticket failure
    // never undoes the token write: it is logged and decides the exit status if the token's own
    // outcome was fine.
    let mut ticket_error: Option<Error> = None;
    for &ty in &cfg.tickets {
        let path = tickets::path_for(cfg.store.dir(), ty);
        let current_ticket = source.ticket_sync(run, ty, &path, tickets::read(&path), unix_now());
        let Some(why) = tickets::needs_fetch(
            &path,
            current_ticket.as_ref(),
            &cfg.appid,
            cfg.margin,
            unix_now(),
        )?
        else {
            debug!("{} ticket still fresh", ty.name());
            continue;
        };
        debug!("{} ticket: {why}", ty.name());
        let mut result = source.ticket(run, ty, &token.access_token, current_ticket.as_ref());
        if matches!(&result, Err(e) if e.kind == Kind::TokenRejected) && !fetched {
            // WeChat's advice: refresh passively when an API reports the token invalid (another
            // program fetched one for this appid, or WeChat revoked it early). Once per run.
            if let Err(e) = &result {
                warn!(
                    "{e}; {}; refreshing the token and trying again",
                    likely_cause(cfg.api)
                );
            }
            let dead = Current {
                digest: digest(&token.access_token),
                effective: now,
                file: token.clone(),
            };
            run.st.dead = Some(dead.digest.clone());
            run.dirty = true;
            let known = Some(dead.clone());
            let again = source
                .token(run, Some(dead), "WeChat rejected the current token", false)
                .inspect_err(|_| run.tell_truth(known.as_ref()))?;
            (token, outcome) = (again.token, again.outcome);
            fetched = true;
            run.save_state()?;
            result = source.ticket(run, ty, &token.access_token, current_ticket.as_ref());
        }
        if let Err(e) = result {
            error!("{} ticket not refreshed: {e}", ty.name());
            ticket_error.get_or_insert(e);
        }
    }

    // Deliver: every sink gets the token the run ends with, after every file above is written,
    // still under the lock. A sink never undoes a write.
    let delivery = Delivery {
        token: &token,
        fetched,
    };
    let mut sink_error: Option<Error> = None;
    for sink in sinks.iter_mut() {
        if let Err(e) = sink.deliver(run, source.redis(), &delivery) {
            sink_error.get_or_insert(e);
        }
    }
    outcome?;
    if let Some(e) = source.deferred() {
        return Err(e);
    }
    if let Some(e) = ticket_error {
        return Err(Error {
            message: format!("the token is fine, but a ticket failed: {}", e.message),
            ..e
        });
    }
    sink_error.map_or(Ok(ExitCode::SUCCESS), Err)
}

impl Run<'_> {
    /// The flags' policy.
    fn policy(&self) -> Policy {
        Policy {
            margin: self.cfg.margin,
            force: self.cfg.force,
            force_new: self.cfg.force_new,
            probe_every: self.cfg.probe_every,
        }
    }

    /// The policy for deciding again on a token another host published: never forced.
    fn policy_again(&self) -> Policy {
        Policy {
            force: false,
            force_new: false,
            ..self.policy()
        }
    }

    /// The file's token stays: the files are rendered from it (outputs added to the
    /// configuration since the last refresh, or deleted by hand, come back without a call to
    /// WeChat), never claiming more than the token is worth.
    fn keep(&mut self, mut cur: Current, left: i64) -> Result<Obtained> {
        let cfg = self.cfg;
        register_token(&cur.file.access_token);
        if cur.effective < cur.file.expires_at {
            // A recorded fetch retired it: readers must not be told more than the truth.
            cur.file.expires_at = cur.effective;
        }
        if self.st.token_expires_at != cur.effective {
            // The owner's claim on the directory lasts as long as its token (a state file lost or
            // written by an older wxtoken learns it here, not at the next fetch).
            self.st.token_expires_at = cur.effective;
            self.dirty = true;
        }
        for path in cfg.store.write_token(&cur.file)? {
            info!("wrote {} from the current token", path.display());
        }
        info!(
            "still fresh, {left} s left ({} {}, {})",
            cfg.appid,
            cfg.api.name(),
            cfg.store.primary.display()
        );
        Ok(Obtained {
            token: cur.file,
            outcome: Ok(()),
            fetched: false,
        })
    }

    /// After a failed fetch: the files keep the token, but never claim more than the run state
    /// knows it is worth (a fetch that retired it, a probe that found it dead). Best effort: the
    /// run fails anyway.
    fn tell_truth(&mut self, cur: Option<&Current>) {
        let Some(cur) = cur else { return };
        let effective = self
            .st
            .effective_expiry(&cur.digest, cur.file.expires_at, unix_now());
        if effective >= cur.file.expires_at {
            return;
        }
        let truth = TokenFile {
            expires_at: effective,
            ..cur.file.clone()
        };
        match self.cfg.store.write_token(&truth) {
            Ok(written) => {
                if !written.is_empty() {
                    warn!(
                        "{}: its token works until {effective}, not {}: expires_at lowered",
                        self.cfg.store.primary.display(),
                        cur.file.expires_at
                    );
                }
                self.st.token_expires_at = effective;
                self.dirty = true;
            }
            Err(e) => warn!("could not lower the file's expires_at to {effective}: {e}"),
        }
    }

    /// Writes how this run ended into the run state (best effort: the exit status says it too).
    fn record(&mut self, result: &Result<ExitCode>) {
        let base = self.base.clone().or_else(|| {
            let last = self.st.last_run.as_ref();
            last.and_then(|o| o.base.clone())
        });
        let outcome = match result {
            Ok(_) => run_state::Outcome {
                at: unix_now(),
                result: if self.fetched {
                    Ended::Refreshed
                } else {
                    Ended::Fresh
                },
                base,
                ..run_state::Outcome::default()
            },
            Err(e) => run_state::Outcome {
                at: unix_now(),
                result: Ended::Failed,
                exit: e.kind.exit_code(),
                class: e.kind.class().into(),
                errcode: e.errcode,
                message: crate::logging::scrub(&e.message),
                fix: e.fix.as_deref().map(crate::logging::scrub),
                base,
            },
        };
        // A timer tick that finds everything as the last run left it changes nothing worth a
        // write: two fsyncs and a rename on every tick are milliseconds on a real disk. Its
        // outcome still reaches the metrics (rendered from memory); the file's `last_run.at` is
        // refreshed at least every OUTCOME_HEARTBEAT.
        let quiet = !self.dirty
            && outcome.result != Ended::Failed
            && self.st.last_run.as_ref().is_some_and(|last| {
                last.at <= outcome.at
                    && outcome.at - last.at < OUTCOME_HEARTBEAT
                    && run_state::Outcome {
                        at: last.at,
                        ..outcome.clone()
                    } == *last
            });
        self.st.record_outcome(outcome);
        if quiet {
            return;
        }
        self.dirty = true;
        if let Err(e) = self.save_state() {
            warn!("could not record this run's outcome: {e}");
        }
    }

    /// The metrics file, from the state and the files as this run left them. Best effort: a
    /// metrics file that cannot be written is logged, never a failed refresh.
    fn write_metrics(&self, path: &std::path::Path) {
        let cfg = self.cfg;
        let token = cfg.store.read_primary();
        let tickets: Vec<_> = cfg
            .tickets
            .iter()
            .filter_map(|&ty| {
                tickets::read(&tickets::path_for(cfg.store.dir(), ty))
                    .map(|t| (ty.name(), t.expires_at))
            })
            .collect();
        let text = crate::metrics::render(
            &self.st,
            &cfg.appid,
            cfg.api.name(),
            token.as_ref().filter(|t| t.appid == cfg.appid),
            &tickets,
        );
        if let Err(e) = crate::metrics::write(path, &text) {
            warn!("could not write the metrics file: {e}");
        }
    }

    pub(crate) fn save_state(&mut self) -> Result<()> {
        if self.dirty {
            let store = &self.cfg.store;
            self.st.save(store.dir(), store.mode, store.gid)?;
            self.dirty = false;
        }
        Ok(())
    }

    /// The file's token if it belongs to this account and API and its times are believable under
    /// the current clock; None (with the reason logged) otherwise.
    pub(crate) fn assess(&mut self, file: TokenFile, now: u64) -> Option<Current> {
        let cfg = self.cfg;
        let path = cfg.store.primary.display();
        if file.appid != cfg.appid || file.api != cfg.api.name() {
            info!(
                "{path} holds a token of appid {} from the {} API; fetching one for {} ({})",
                file.appid,
                file.api,
                cfg.appid,
                cfg.api.name()
            );
            return None;
        }
        if let Some(why) = implausible(file.expires_in, file.expires_at, file.refreshed_at, now) {
            warn!("{path}: not trusting its token: {why}");
            return None;
        }
        let digest = digest(&file.access_token);
        if let Some(r) = self.st.retiring.as_mut()
            && r.at > now
        {
            // Recorded under a clock that ran ahead: the fetch was made no later than now. Kept
            // clamped, so the token's end does not move on with the clock.
            warn!(
                "{path}: a fetch that retires its token is recorded {} s in the future: the clock                  stepped back since; counting it as made now",
                r.at - now
            );
            r.at = now;
            self.dirty = true;
        }
        let effective = self.st.effective_expiry(&digest, file.expires_at, now);
        if effective < file.expires_at
            && let Some(r) = &self.st.retiring
            && r.digest == digest
        {
            info!(
                "a fetch at {} retired the token in {path}: it works until {effective}, not {}",
                r.at, file.expires_at
            );
        }
        Some(Current {
            file,
            digest,
            effective,
        })
    }
}
