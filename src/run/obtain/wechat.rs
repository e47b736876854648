//! WeChat directly as a token source, with the run state kept true at every step.
//!
//! Probes, token fetches and ticket fetches made by this host (a fetch that may retire the file's token is recorded first).

use log::{debug, info, warn};

use crate::api::{Api, OVERLAP, TicketType};
use crate::clock::{secs_until, unix_now, unix_now_ms};
use crate::error::{Error, Kind, Result};
use crate::logging::{mask, register_token};
use crate::plan::periodic_due;
use crate::plan::{Current, Plan};
use crate::store::TokenFile;
use crate::store::run_state::{ProbeKind, Retiring, Verdict};
use crate::tickets::{self, TicketFile};
use crate::wechat::{Client, Grant, Probe};

use super::{Obtained, Source};
use crate::run::{REPORT_PROBE_INTERVAL, Run, context, likely_cause};

/// A budget beyond this host's run state that a force_refresh must also fit in (the fleet's):
/// Err when it does not, and the call is not made.
pub(super) type SharedBudget<'b> = dyn FnMut(&mut Run) -> Result<()> + 'b;

/// This host's own WeChat client, built on first use: a run that finds everything fresh never
/// loads the trust store.
#[derive(Default)]
pub struct Direct {
    client: Option<Client>,
}

impl Source for Direct {
    /// Asks WeChat about the file's token; turns a Probe plan into Fresh or Fetch.
    fn probe(&mut self, run: &mut Run, cur: Current, why: &str, reported: bool, now: u64) -> Plan {
        let left = cur.left(now);
        let probed_ago = run.st.probed_ago(now);
        let periodic_due = periodic_due(run.policy(), &cur, &run.st, now).is_some();
        let rate_limited = reported && probed_ago < REPORT_PROBE_INTERVAL;
        if rate_limited && !periodic_due {
            // Rate limit: remember it, the next run (a minute at most) probes.
            if run.st.pending_report.as_deref() != Some(cur.digest.as_str()) {
                run.st.pending_report = Some(cur.digest.clone());
                run.dirty = true;
            }
            info!(
                "an app reported {} as rejected; probed {probed_ago} s ago, so the next run \
                 checks it",
                mask(&cur.file.access_token)
            );
            return Plan::Fresh { cur, left };
        }
        // The budget it is charged to: the periodic one when that probe is due anyway (the report
        // then costs the reports' budget nothing), else the reports'. A report whose budget is
        // spent never stops a periodic probe that is due.
        let mut kinds = Vec::new();
        if periodic_due || !reported {
            kinds.push(ProbeKind::Periodic);
        }
        if reported && !rate_limited {
            kinds.push(ProbeKind::Report);
        }
        run.dirty = true;
        let Some(kind) = kinds
            .iter()
            .copied()
            .find(|&k| run.st.probe_allowed(now, k))
        else {
            let spent: Vec<String> = kinds
                .iter()
                .map(|k| {
                    format!(
                        "the {} probe budget is used up ({} in 24 h)",
                        k.name(),
                        k.per_day()
                    )
                })
                .collect();
            warn!(
                "not checking the token with WeChat ({why}): {}; get_api_domain_ip has a daily \
                 quota of its own. `wxtoken status` says when it is back",
                spent.join(", and ")
            );
            if reported {
                run.st.pending_report = Some(cur.digest.clone());
            }
            return Plan::Fresh { cur, left };
        };
        register_token(&cur.file.access_token);
        let deadline = run.deadline;
        let ctx = context(run.cfg);
        let result = self
            .client(run.cfg)
            .probe(&ctx, &cur.file.access_token, &deadline);
        run.st.record_probe(now, kind);
        run.dirty = true;
        match result {
            Probe::Alive => {
                run.st.last_probe = Verdict::Alive;
                run.st.pending_report = None;
                if reported {
                    info!(
                        "an app reported {} as rejected, but WeChat accepts it (probe): kept",
                        mask(&cur.file.access_token)
                    );
                } else {
                    debug!("probe ({why}): WeChat accepts the token");
                }
                Plan::Fresh { cur, left }
            }
            Probe::Dead { errcode, errmsg } => {
                run.st.last_probe = Verdict::Dead;
                run.st.dead = Some(cur.digest.clone());
                run.st.pending_report = None;
                warn!(
                    "WeChat rejects the token in the file ({}, errcode {errcode}: {errmsg}) with \
                     {left} s left on paper: {}; fetching a new one",
                    mask(&cur.file.access_token),
                    likely_cause(run.cfg.api)
                );
                Plan::Fetch {
                    current: Some(cur),
                    why: format!("WeChat rejected the token (errcode {errcode})"),
                    rotate: false,
                }
            }
            Probe::Unknown(e) => {
                run.st.last_probe = Verdict::Unknown(e.to_string());
                warn!("could not check the token with WeChat ({why}): {e}; keeping it");
                Plan::Fresh { cur, left }
            }
        }
    }

    fn token(
        &mut self,
        run: &mut Run,
        current: Option<Current>,
        why: &str,
        rotate: bool,
    ) -> Result<Obtained> {
        self.refresh_token(run, current.as_ref(), why, rotate)
    }

    fn ticket(
        &mut self,
        run: &mut Run,
        ty: TicketType,
        token: &str,
        current: Option<&TicketFile>,
    ) -> Result<()> {
        let cfg = run.cfg;
        let deadline = run.deadline;
        let ctx = context(cfg);
        let client = self.client(run.cfg);
        tickets::refresh_one(client, &ctx, ty, token, current, &cfg.store, &deadline)
    }
}

impl Direct {
    fn client(&mut self, cfg: &crate::config::Config) -> &Client {
        self.client.get_or_insert_with(|| Client::new(cfg))
    }

    /// Reserves a force_refresh within WeChat's budget (waiting out the 30 s gap if the run's
    /// time allows), then from `shared` (the fleet's budget, for every host of the account), and
    /// records it before the call is made.
    fn reserve_force(&mut self, run: &mut Run, shared: &mut SharedBudget) -> Result<()> {
        let now = unix_now();
        let wait = run.st.force_allowed(now).map_err(|why| {
            Error::temp(format!(
                "force_refresh not sent for appid {}: {why}",
                run.cfg.appid
            ))
        })?;
        if wait > 0 {
            if std::time::Duration::from_secs(wait + 1) > run.deadline.remaining() {
                return Err(Error::temp(format!(
                    "force_refresh not sent for appid {}: WeChat wants 30 s between two, the last \
                     was {} s ago and --max-time leaves too little to wait; the next run will",
                    run.cfg.appid,
                    30 - wait
                )));
            }
            info!("waiting {wait} s: WeChat wants 30 s between two force_refresh calls");
            run.deadline.sleep(std::time::Duration::from_secs(wait));
        }
        shared(run)?;
        run.st.record_force(unix_now());
        run.dirty = true;
        run.save_state()
    }

    /// Fetches a token and publishes it unless the file already holds a better one. The inner
    /// result is Err when the token was written but has no more than the margin left (exit 75,
    /// but tickets may still use it).
    pub(super) fn refresh_token(
        &mut self,
        run: &mut Run,
        current: Option<&Current>,
        why: &str,
        rotate: bool,
    ) -> Result<Obtained> {
        self.refresh_token_within(run, current, why, rotate, &mut |_| Ok(()))
    }

    /// [`Direct::refresh_token`], with every force_refresh also reserved from `shared`.
    pub(super) fn refresh_token_within(
        &mut self,
        run: &mut Run,
        current: Option<&Current>,
        why: &str,
        rotate: bool,
        shared: &mut SharedBudget,
    ) -> Result<Obtained> {
        debug!("refreshing: {why}");
        let cfg = run.cfg;
        let known_dead = current.is_some_and(|c| run.st.dead.as_deref() == Some(&c.digest));
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
            self.reserve_force(run, shared)?;
        }
        let mut now = unix_now();
        let mut grant = self.fetch(run, current, force, now)?;
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
            self.reserve_force(run, shared)?;
            force = true;
            now = unix_now();
            grant = self.fetch(run, current, force, now)?;
        }
        register_token(&grant.value);
        run.base = Some(grant.base.clone());
        let same = current.is_some_and(|c| c.file.access_token == grant.value);
        let new_expiry = now.saturating_add(grant.expires_in);
        if let Some(cur) = current
            && !same
            && new_expiry <= Self::current_worth(run, cur, now, true)
        {
            return Err(self.keep_better(run, cur, grant.expires_in, now));
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
            refreshed_at: now,
            appid: cfg.appid.clone(),
            api: cfg.api.name().to_string(),
        };
        prepared.commit_token(&fresh)?;
        run.st.retiring = None;
        run.st.dead = None;
        run.st.pending_report = None;
        run.st.token_expires_at = new_expiry;
        run.st.refreshed_ms = unix_now_ms();
        run.dirty = true;
        run.fetched = true;
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
        Ok(Obtained {
            token: fresh,
            outcome,
            fetched: true,
        })
    }

    /// One token request. A request that may retire the file's token is recorded in the state
    /// first, so that whatever happens next (kill -9, a failed write) later runs know the truth.
    fn fetch(
        &mut self,
        run: &mut Run,
        current: Option<&Current>,
        force: bool,
        now: u64,
    ) -> Result<Grant> {
        let cfg = run.cfg;
        let before = run.st.retiring.clone();
        if let Some(cur) = current
            && (force || cfg.api.fetch_retires_previous())
        {
            let grace = if force { 0 } else { OVERLAP };
            let at = run
                .st
                .retiring
                .as_ref()
                .filter(|r| r.digest == cur.digest)
                .map_or(now, |r| r.at.min(now));
            run.st.retiring = Some(Retiring {
                digest: cur.digest.clone(),
                at,
                grace: grace.min(before.as_ref().map_or(grace, |r| r.grace)),
            });
            run.dirty = true;
            run.save_state()?;
        }
        let deadline = run.deadline;
        let ctx = context(cfg);
        run.st.token_fetches += 1;
        run.dirty = true;
        let result = self
            .client(cfg)
            .fetch_token(&ctx, &cfg.secret, force, &deadline);
        if let Err(e) = &result
            && e.kind == Kind::Config
            && run.st.retiring != before
        {
            // WeChat answered with an error: no token was issued, the old one was not retired.
            run.st.retiring = before;
            run.dirty = true;
            let _ = run.save_state();
        }
        result
    }

    /// When the file's token stops working, given a fetch just made at `now` that handed out
    /// another token (`replaced`).
    fn current_worth(run: &Run, cur: &Current, now: u64, replaced: bool) -> u64 {
        let worth = run
            .st
            .effective_expiry(&cur.digest, cur.file.expires_at, now);
        if replaced && run.cfg.api == Api::Stable {
            // The stable API hands out another token only when the old one was revoked or is in
            // its last 300 s: the file's lives at most that long, whatever its expires_at says
            // (legacy and WeCom fetches are counted alike through the recorded retirement).
            worth.min(now.saturating_add(OVERLAP))
        } else {
            worth
        }
    }

    /// The fetched token is worse than the file's: keep the file (correcting its expiry if the
    /// fetch cut it short, so readers are not told more than the truth) and say why.
    fn keep_better(&mut self, run: &mut Run, cur: &Current, expires_in: u64, now: u64) -> Error {
        let worth = Self::current_worth(run, cur, now, true);
        let mut note = String::new();
        if worth < cur.file.expires_at {
            let corrected = TokenFile {
                expires_at: worth,
                ..cur.file.clone()
            };
            match run.cfg.store.write_token(&corrected) {
                Ok(_) => {
                    run.st.token_expires_at = worth;
                    run.dirty = true;
                    note = format!("; its expires_at now says {worth}: this fetch retires it then");
                }
                Err(e) => note = format!("; correcting its expiry failed: {e}"),
            }
        }
        let than = if now.saturating_add(expires_in) < worth {
            "sooner than"
        } else {
            "no later than"
        };
        Error::temp(format!(
            "WeChat returned a token for appid {} that expires in {expires_in} s, {than} the one \
             in {} ({} s left); kept the file{note}. The next run will try again",
            run.cfg.appid,
            run.cfg.store.primary.display(),
            secs_until(worth, now)
        ))
    }
}
