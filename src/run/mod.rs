//! One `wxtoken refresh` run: lock, find out what the file's token is really worth, decide,
//! probe or fetch, publish only what is better; then the tickets.

mod fleet;
mod sdk_keys;

use std::process::ExitCode;

use log::{debug, error, info, warn};

use crate::cli::RefreshArgs;
use crate::config::Config;
use crate::deadline::Deadline;
use crate::error::{Error, Kind, Result};
use crate::hooks;
use crate::logging::{mask, register_token};
use crate::plan::{Current, Plan, Policy, plan};
use crate::store::TokenFile;
use crate::store::run_state::{self, Retiring, RunState};
use crate::tickets::{self, TicketFile};
use crate::vocab::{
    Api, OVERLAP, TicketType, digest, implausible, secs_until, unix_now, unix_now_ms,
};
use crate::wechat::{Client, Context, Probe, Purpose};

/// At most one probe per this many seconds on behalf of app reports: a flood of reports (even of
/// the current token) costs one probe per interval, never a fetch without a probe.
pub const REPORT_PROBE_INTERVAL: u64 = 30;

/// Why WeChat would have killed a token early, in words an admin can act on.
fn likely_cause(api: Api) -> &'static str {
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

    let dir = store.dir().to_path_buf();
    let requests = run_state::ensure_requests_dir(&dir, store.gid);
    let mut st = RunState::load(&dir);
    let now = unix_now();
    let file = store.read_state();
    claim_directory(&cfg, &mut st, file.as_ref(), now)?;
    let mut run = Run {
        cfg: &cfg,
        deadline,
        client: None,
        st,
        dirty: false,
        fetched: false,
        base: None,
        fleet: None,
        deferred: None,
    };
    let result = run.execute(file, requests.as_deref(), started_ms, now);
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

fn context(cfg: &Config) -> Context<'_> {
    Context {
        appid: &cfg.appid,
        api: cfg.api,
        secret_source: &cfg.secret_source,
        purpose: Purpose::Token,
    }
}

/// How stale the state file's record of the last run may grow while nothing else changes.
const OUTCOME_HEARTBEAT: u64 = 600;

/// What one run carries between its steps.
pub(crate) struct Run<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) deadline: Deadline,
    /// Built on first use: a run that finds everything fresh never loads the trust store.
    client: Option<Client>,
    pub(crate) st: RunState,
    /// The state changed and must be saved.
    pub(crate) dirty: bool,
    /// A token was fetched and published by this run.
    fetched: bool,
    /// The base URL that answered this run's token fetch.
    base: Option<String>,
    /// Fleet mode: the connection to the fleet's Redis (None when alone, or Redis is down).
    pub(crate) fleet: Option<crate::fleet::Fleet>,
    /// A failure that decides the exit status once the run has done what it still could (Redis
    /// unreachable, a publish to Redis that failed).
    pub(crate) deferred: Option<Error>,
}

impl Run<'_> {
    /// Everything after the directory is claimed: reports, the decision, the fetch, tickets.
    fn execute(
        &mut self,
        mut file: Option<TokenFile>,
        requests: Option<&std::path::Path>,
        started_ms: u64,
        now: u64,
    ) -> Result<ExitCode> {
        let run = self;
        let cfg = run.cfg;
        let store = &cfg.store;
        let (consumed, mut reports) = requests
            .map(run_state::consume_requests)
            .unwrap_or_default();
        if consumed > 0 {
            run.st.reports_consumed += consumed;
            run.st.last_report_at = now;
            run.dirty = true;
        }
        // Fleet mode: the fleet's token (from Redis) becomes this host's, before any decision.
        run.fleet_sync(&mut file, &mut reports, now)?;
        let mut current = file.and_then(|f| run.assess(f, now));
        if consumed > 0 {
            let matching = current
                .as_ref()
                .is_some_and(|c| reports.contains(&c.digest));
            if !matching {
                info!("{consumed} report(s) named no token the file holds now: nothing to do");
            }
        }
        let policy = Policy {
            margin: cfg.margin,
            force: cfg.force,
            force_new: cfg.force_new,
            probe_every: cfg.probe_every,
        };
        let mut decision = plan(policy, current.as_ref(), &run.st, &reports, started_ms, now);
        if !run.may_call_wechat() {
            (decision, current) = run.hold(decision, current, now)?;
        }
        if let Plan::Probe { why, reported } = &decision {
            let cur = current.as_ref().expect("a probe implies a token");
            let probes = run.st.probes;
            decision = run.probe(cur, why, *reported, now);
            if run.st.probes != probes {
                run.fleet_probed(cur);
            }
        }
        let (mut token, mut outcome, mut fetched) = match decision {
            Plan::Fresh { left } => {
                let mut cur = current.expect("fresh implies a token");
                register_token(&cur.file.access_token);
                if cur.effective < cur.file.expires_at {
                    // A recorded fetch retired it: readers must not be told more than the truth.
                    cur.file.expires_at = cur.effective;
                    cur.file.expire_time = cur.effective;
                }
                if run.st.token_expires_at != cur.effective {
                    // The owner's claim on the directory lasts as long as its token (a state file
                    // lost or written by an older wxtoken learns it here, not at the next fetch).
                    run.st.token_expires_at = cur.effective;
                    run.dirty = true;
                }
                // Outputs added to the configuration since the last refresh, or deleted by hand,
                // are rendered from the state without calling WeChat.
                for path in store.publish(&cur.file)? {
                    info!("wrote {} from the current token", path.display());
                }
                info!(
                    "still fresh, {left} s left ({} {}, {})",
                    cfg.appid,
                    cfg.api.name(),
                    store.state.display()
                );
                (cur.file, Ok(()), false)
            }
            Plan::Fetch { why, rotate } if run.fleet.is_some() => {
                run.fleet_refresh(current, &why, rotate, policy)?
            }
            Plan::Fetch { why, rotate } => {
                let (t, o) = run.refresh_token(current.as_ref(), &why, rotate)?;
                (t, o, true)
            }
            Plan::Probe { .. } => unreachable!("resolved above"),
        };
        run.save_state()?;

        // Tickets only ever use a token that was validated and published above. A ticket failure
        // never undoes the token write: it is logged and decides the exit status if the token's
        // own outcome was fine.
        let mut ticket_error: Option<Error> = None;
        for &ty in &cfg.tickets {
            let path = tickets::path_for(store.dir(), ty);
            let mut current_ticket = tickets::read(&path);
            if run.fleet.is_some() {
                current_ticket = run.fleet_ticket_sync(ty, &path, current_ticket, unix_now());
            }
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
            if !run.may_call_wechat() {
                run.deferred.get_or_insert(Error::temp(format!(
                    "the {} ticket needs a fetch ({why}), which this host does not make \
                     (--follower, or Redis unreachable): a host of the fleet that may does",
                    ty.name()
                )));
                continue;
            }
            debug!("fetching the {} ticket: {why}", ty.name());
            let mut result = run.any_ticket(ty, &token.access_token, current_ticket.as_ref());
            if matches!(&result, Err(e) if e.kind == Kind::TokenRejected) && !fetched {
                // WeChat's advice: refresh passively when an API reports the token invalid (another
                // program fetched one for this appid, or WeChat revoked it early). Once per run.
                warn!(
                    "{}; {}; refreshing the token and trying again",
                    result.as_ref().unwrap_err(),
                    likely_cause(cfg.api)
                );
                let dead = Current {
                    digest: digest(&token.access_token),
                    effective: now,
                    file: token.clone(),
                };
                run.st.dead = Some(dead.digest.clone());
                run.dirty = true;
                let why = "WeChat rejected the current token";
                (token, outcome, _) = if run.fleet.is_some() {
                    run.fleet_refresh(Some(dead), why, false, policy)?
                } else {
                    let (t, o) = run.refresh_token(Some(&dead), why, false)?;
                    (t, o, true)
                };
                fetched = true;
                run.save_state()?;
                result = run.any_ticket(ty, &token.access_token, current_ticket.as_ref());
            }
            if let Err(e) = result {
                error!("{} ticket not refreshed: {e}", ty.name());
                ticket_error.get_or_insert(e);
            }
        }
        // Where else the token goes (--on-change hooks): after every file above is written, still
        // under the lock. A hook never undoes a write; its failure decides the exit status only
        // after the token's and the tickets' own (it stays pending in the run state `record` saves).
        let delivered = hooks::deliver(cfg, &mut run.st, &token, &run.deadline);
        // The same, into the SDKs' own keys in the fleet's Redis (--publish).
        let published = sdk_keys::deliver(cfg, run.fleet.as_mut(), &token);
        outcome?;
        if let Some(e) = run.deferred.take() {
            return Err(e);
        }
        if let Some(e) = ticket_error {
            return Err(Error {
                message: format!("the token is fine, but a ticket failed: {}", e.message),
                ..e
            });
        }
        delivered.and(published).map(|()| ExitCode::SUCCESS)
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
                result: if self.fetched { "refreshed" } else { "fresh" }.into(),
                base,
                ..run_state::Outcome::default()
            },
            Err(e) => run_state::Outcome {
                at: unix_now(),
                result: "failed".into(),
                exit: e.kind.exit_code(),
                class: e.kind.class().into(),
                errcode: e.errcode,
                message: crate::logging::scrub(&e.message),
                base,
            },
        };
        // A timer tick that finds everything as the last run left it changes nothing worth a
        // write: two fsyncs and a rename on every tick are milliseconds on a real disk. Its
        // outcome still reaches the metrics (rendered from memory); the file's `last_run.at` is
        // refreshed at least every OUTCOME_HEARTBEAT.
        let quiet = !self.dirty
            && outcome.result != "failed"
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
        let token = cfg.store.read_state();
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

    fn client(&mut self) -> &Client {
        let cfg = self.cfg;
        self.client.get_or_insert_with(|| Client::new(cfg))
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
        let path = cfg.store.state.display();
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

    /// Asks WeChat about the file's token; turns a Probe plan into Fresh or Fetch.
    fn probe(&mut self, cur: &Current, why: &str, reported: bool, now: u64) -> Plan {
        let left = cur.left(now);
        let probed_ago = self.st.probed_ago(now);
        if reported && probed_ago < REPORT_PROBE_INTERVAL {
            // Rate limit: remember it, the next run (a minute at most) probes.
            if self.st.pending_report.as_deref() != Some(cur.digest.as_str()) {
                self.st.pending_report = Some(cur.digest.clone());
                self.dirty = true;
            }
            info!(
                "an app reported {} as rejected; probed {probed_ago} s ago, so the next run \
                 checks it",
                mask(&cur.file.access_token)
            );
            return Plan::Fresh { left };
        }
        if !self.st.probe_allowed(now) {
            self.dirty = true;
            warn!(
                "not checking the token with WeChat ({why}): {} probes in the last 24 h, the most \
                 wxtoken makes (get_api_domain_ip has a daily quota of its own)",
                self.st.probes_today
            );
            if reported {
                self.st.pending_report = Some(cur.digest.clone());
            }
            return Plan::Fresh { left };
        }
        register_token(&cur.file.access_token);
        let deadline = self.deadline;
        let ctx = context(self.cfg);
        let result = self.client().probe(&ctx, &cur.file.access_token, &deadline);
        self.st.record_probe(now);
        self.dirty = true;
        match result {
            Probe::Alive => {
                self.st.last_probe = "alive".into();
                self.st.pending_report = None;
                if reported {
                    info!(
                        "an app reported {} as rejected, but WeChat accepts it (probe): kept",
                        mask(&cur.file.access_token)
                    );
                } else {
                    debug!("probe ({why}): WeChat accepts the token");
                }
                Plan::Fresh { left }
            }
            Probe::Dead { errcode, errmsg } => {
                self.st.last_probe = "dead".into();
                self.st.dead = Some(cur.digest.clone());
                self.st.pending_report = None;
                warn!(
                    "WeChat rejects the token in the file ({}, errcode {errcode}: {errmsg}) with \
                     {left} s left on paper: {}; fetching a new one",
                    mask(&cur.file.access_token),
                    likely_cause(self.cfg.api)
                );
                Plan::Fetch {
                    why: format!("WeChat rejected the token (errcode {errcode})"),
                    rotate: false,
                }
            }
            Probe::Unknown(e) => {
                self.st.last_probe = format!("unknown: {e}");
                warn!("could not check the token with WeChat ({why}): {e}; keeping it");
                Plan::Fresh { left }
            }
        }
    }

    /// Reserves a force_refresh within WeChat's budget (waiting out the 30 s gap if the run's
    /// time allows) and records it before the call is made.
    fn reserve_force(&mut self) -> Result<()> {
        let now = unix_now();
        let wait = self.st.force_allowed(now).map_err(|why| {
            Error::temp(format!(
                "force_refresh not sent for appid {}: {why}",
                self.cfg.appid
            ))
        })?;
        if wait > 0 {
            if std::time::Duration::from_secs(wait + 1) > self.deadline.remaining() {
                return Err(Error::temp(format!(
                    "force_refresh not sent for appid {}: WeChat wants 30 s between two, the last \
                     was {} s ago and --max-time leaves too little to wait; the next run will",
                    self.cfg.appid,
                    30 - wait
                )));
            }
            info!("waiting {wait} s: WeChat wants 30 s between two force_refresh calls");
            self.deadline.sleep(std::time::Duration::from_secs(wait));
        }
        self.st.record_force(unix_now());
        self.dirty = true;
        self.save_state()
    }

    /// Fetches a token and publishes it unless the file already holds a better one. The inner
    /// result is Err when the token was written but has no more than the margin left (exit 75,
    /// but tickets may still use it).
    pub(crate) fn refresh_token(
        &mut self,
        current: Option<&Current>,
        why: &str,
        rotate: bool,
    ) -> Result<(TokenFile, Result<()>)> {
        debug!("refreshing: {why}");
        let cfg = self.cfg;
        let known_dead = current.is_some_and(|c| self.st.dead.as_deref() == Some(&c.digest));
        // A run that could not write what it fetches must not fetch: with the legacy API the
        // fetch alone kills the token the file still holds. (The run state is written, and so
        // proven writable, before the request too.)
        let extra: Vec<_> = cfg
            .tickets
            .iter()
            .map(|&t| tickets::path_for(cfg.store.dir(), t))
            .collect();
        let mut prepared = cfg.store.prepare(&extra)?;
        let mut force = rotate && cfg.api == Api::Stable;
        if force {
            self.reserve_force()?;
        }
        let mut now = unix_now();
        let mut grant = self.fetch(current, force, now)?;
        if !force
            && known_dead
            && cfg.api == Api::Stable
            && current.is_some_and(|c| c.file.access_token == grant.value)
        {
            // Normal mode hands back the token WeChat itself rejects (revoked): only a
            // force_refresh replaces it.
            warn!(
                "the stable API handed back the token WeChat rejects; asking for a new one with \
                 force_refresh"
            );
            self.reserve_force()?;
            force = true;
            now = unix_now();
            grant = self.fetch(current, force, now)?;
        }
        register_token(&grant.value);
        self.base = Some(grant.base.clone());
        let same = current.is_some_and(|c| c.file.access_token == grant.value);
        let new_expiry = now.saturating_add(grant.expires_in);
        if let Some(cur) = current
            && !same
            && new_expiry <= self.current_worth(cur, now)
        {
            return Err(self.keep_better(cur, grant.expires_in, now));
        }
        if same && known_dead {
            return Err(Error::temp(format!(
                "WeChat keeps handing out the token it rejects for appid {} and no forced \
                 rotation is possible now; the next run will try again",
                cfg.appid
            )));
        }
        let fresh = TokenFile {
            access_token: grant.value,
            expires_in: grant.expires_in,
            expires_at: new_expiry,
            expire_time: new_expiry,
            refreshed_at: now,
            appid: cfg.appid.clone(),
            api: cfg.api.name().to_string(),
        };
        prepared.publish(&fresh)?;
        self.st.retiring = None;
        self.st.dead = None;
        self.st.pending_report = None;
        self.st.token_expires_at = new_expiry;
        self.st.refreshed_ms = unix_now_ms();
        self.dirty = true;
        self.fetched = true;
        info!(
            "refreshed {} for {} ({}), expires in {} s ({why})",
            mask(&fresh.access_token),
            cfg.appid,
            cfg.api.name(),
            grant.expires_in
        );
        let outcome = if grant.expires_in <= cfg.margin {
            // Written anyway (a short-lived valid token beats none), but exit 0 promises more than
            // the margin; the stable API hands out a new token only in the last 300 s of the old one.
            Err(Error::temp(format!(
                "WeChat returned a token with only {} s left, not more than the margin of {} s; \
                 the file was updated, the next run will try again",
                grant.expires_in, cfg.margin
            )))
        } else {
            Ok(())
        };
        Ok((fresh, outcome))
    }

    /// One token request. A request that may retire the file's token is recorded in the state
    /// first, so that whatever happens next (kill -9, a failed write) later runs know the truth.
    fn fetch(
        &mut self,
        current: Option<&Current>,
        force: bool,
        now: u64,
    ) -> Result<crate::wechat::Grant> {
        let cfg = self.cfg;
        let before = self.st.retiring.clone();
        if let Some(cur) = current
            && (force || cfg.api.fetch_retires_previous())
        {
            let grace = if force { 0 } else { OVERLAP };
            let at = self
                .st
                .retiring
                .as_ref()
                .filter(|r| r.digest == cur.digest)
                .map_or(now, |r| r.at.min(now));
            self.st.retiring = Some(Retiring {
                digest: cur.digest.clone(),
                at,
                grace: grace.min(before.as_ref().map_or(grace, |r| r.grace)),
            });
            self.dirty = true;
            self.save_state()?;
        }
        let deadline = self.deadline;
        let ctx = context(cfg);
        self.st.token_fetches += 1;
        self.dirty = true;
        let result = self
            .client()
            .fetch_token(&ctx, &cfg.secret, force, &deadline);
        if let Err(e) = &result
            && e.kind == Kind::Config
            && self.st.retiring != before
        {
            // WeChat answered with an error: no token was issued, the old one was not retired.
            self.st.retiring = before;
            self.dirty = true;
            let _ = self.save_state();
        }
        result
    }

    /// When the file's token stops working, given a fetch just made at `now`.
    fn current_worth(&self, cur: &Current, now: u64) -> u64 {
        self.st
            .effective_expiry(&cur.digest, cur.file.expires_at, now)
    }

    /// The fetched token is worse than the file's: keep the file (correcting its expiry if the
    /// fetch cut it short, so readers are not told more than the truth) and say why.
    fn keep_better(&mut self, cur: &Current, expires_in: u64, now: u64) -> Error {
        let worth = self.current_worth(cur, now);
        let mut note = String::new();
        if worth < cur.file.expires_at {
            let corrected = TokenFile {
                expires_at: worth,
                expire_time: worth,
                ..cur.file.clone()
            };
            match self.cfg.store.publish(&corrected) {
                Ok(_) => {
                    self.st.token_expires_at = worth;
                    self.dirty = true;
                    note = format!("; its expires_at now says {worth}: this fetch retires it then");
                }
                Err(e) => note = format!("; correcting its expiry failed: {e}"),
            }
        }
        Error::temp(format!(
            "WeChat returned a token for appid {} that expires in {expires_in} s, sooner than the \
             one in {} ({} s left); kept the file{note}. The next run will try again",
            self.cfg.appid,
            self.cfg.store.state.display(),
            secs_until(worth, now)
        ))
    }

    /// One ticket fetch: through the fleet's lock in fleet mode.
    fn any_ticket(
        &mut self,
        ty: TicketType,
        token: &str,
        current: Option<&TicketFile>,
    ) -> Result<()> {
        if self.fleet.is_some() {
            self.fleet_ticket(ty, token, current)
        } else {
            self.ticket(ty, token, current)
        }
    }

    pub(crate) fn ticket(
        &mut self,
        ty: TicketType,
        token: &str,
        current: Option<&TicketFile>,
    ) -> Result<()> {
        let cfg = self.cfg;
        let deadline = self.deadline;
        let ctx = context(cfg);
        let client = self.client();
        tickets::refresh_one(client, &ctx, ty, token, current, &cfg.store, &deadline)
    }
}
