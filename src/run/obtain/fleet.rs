//! The fleet as a source: the fleet's token becomes this host's before the decision, a fetch
//! happens only under the fleet's lock in Redis and is published there at once, and a host that
//! may not fetch (a follower, or Redis unreachable) keeps what it has or waits for one that may.

use std::path::Path;
use std::time::Duration;

use log::{debug, info, warn};

use crate::api::{TicketType, digest};
use crate::clock::{implausible, secs_until, unix_now};
use crate::config::fleet::FleetConfig;
use crate::error::{Error, Kind, Result};
use crate::fleet::{Fleet, Force, POLL, ProbeRecord, Turn, ticket_key};
use crate::logging::mask;
use crate::plan::{Current, Plan, plan};
use crate::store::TokenFile;
use crate::store::run_state::Verdict;
use crate::tickets::{self, TicketFile};

use super::wechat::Direct;
use super::{Obtained, Source};
use crate::run::Run;

pub struct FleetSource<'a> {
    fc: &'a FleetConfig,
    /// None until `sync` connects, and for the whole run when Redis cannot be reached.
    conn: Option<Fleet>,
    /// How this host calls WeChat when it is the one that may.
    direct: Direct,
    deferred: Option<Error>,
}

impl<'a> FleetSource<'a> {
    pub fn new(fc: &'a FleetConfig) -> Self {
        FleetSource {
            fc,
            conn: None,
            direct: Direct::default(),
            deferred: None,
        }
    }

    /// False for a follower, and for a host that cannot reach Redis (unless it may fall back).
    fn may_fetch(&self) -> bool {
        !self.fc.follower && (self.conn.is_some() || self.fc.fallback_fetch)
    }

    /// A fetch this host may not make: a follower takes the replacement from Redis (there
    /// already, or published within its --max-time); otherwise the file's token is kept while it
    /// is valid, with exit 75, and a run without one fails.
    fn hold(&mut self, run: &mut Run, current: Option<Current>, why: &str) -> Result<Plan> {
        let fc = self.fc;
        if fc.follower
            && let Some(conn) = self.conn.as_mut()
            && let Some(cur) = wait_for_leader(conn, run, why)?
        {
            for path in run.cfg.store.write_token(&cur.file)? {
                info!("wrote {} from the fleet's token", path.display());
            }
            note_same(run, conn);
            let left = cur.left(unix_now());
            return Ok(Plan::Fresh { cur, left });
        }
        let reason = self.deferred.take().unwrap_or_else(|| {
            Error::temp(format!(
                "the fleet's token needs replacing ({why}), and this host is a --follower: it never \
                 fetches. A host of the fleet without --follower refreshes it (is one running, \
                 with --redis {}?)",
                fc.shown
            ))
        });
        let now = unix_now();
        // What the run learnt since the decision (a probe found the token dead) counts.
        let current = current.map(|mut c| {
            c.effective = run.st.effective_expiry(&c.digest, c.file.expires_at, now);
            c
        });
        match current {
            Some(cur) if cur.left(now) > 0 => {
                self.deferred = Some(reason);
                let left = cur.left(now);
                Ok(Plan::Fresh { cur, left })
            }
            other => {
                // A dead token stays in the files (there is no other), but they no longer claim
                // a life it has not: readers see it expired.
                if let Some(cur) = other.filter(|c| c.effective < c.file.expires_at) {
                    let truth = TokenFile {
                        expires_at: cur.effective,
                        ..cur.file
                    };
                    if let Err(e) = run.cfg.store.write_token(&truth) {
                        warn!("{e}");
                    }
                }
                Err(Error::temp(format!(
                    "{}; {} holds no valid token ({why})",
                    reason.message,
                    run.cfg.store.primary.display()
                )))
            }
        }
    }
}

impl Source for FleetSource<'_> {
    /// Connects, and makes the fleet's token this host's (`file`), or offers Redis this host's
    /// when it outlives the fleet's (a fetch whose publish failed, Redis restarted empty). Merges
    /// what other hosts learnt: the last probe, a report. Redis down is not an error here: the
    /// run goes on without fetching and exits 75.
    fn sync(
        &mut self,
        run: &mut Run,
        file: &mut Option<TokenFile>,
        reports: &mut Vec<String>,
        now: u64,
    ) -> Result<()> {
        let cfg = run.cfg;
        let fc = self.fc;
        let connected = Fleet::connect(fc, &run.deadline).and_then(|mut f| {
            let view = f.read(&cfg.appid, cfg.api)?;
            Ok((f, view))
        });
        let (mut fleet, view) = match connected {
            Ok(x) => x,
            Err(e) if e.kind == Kind::TempFail => {
                let what = if fc.fallback_fetch {
                    "with --redis-fallback-fetch it fetches from WeChat on its own if it must"
                } else {
                    "fetched nothing from WeChat: in fleet mode a host never fetches on its own \
                     (--redis-fallback-fetch allows it)"
                };
                warn!("{e}; this host keeps its files and {what}");
                self.deferred = Some(Error::temp(format!(
                    "{e}; this host kept its files and {what}"
                )));
                note_unreachable(run, fc);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        fleet.seen = view.raw.clone();
        let worth = |t: &TokenFile| {
            run.st
                .effective_expiry(&digest(&t.access_token), t.expires_at, now)
        };
        let local = file.as_ref().filter(|t| {
            t.appid == cfg.appid
                && t.api == cfg.api.name()
                && implausible(t.expires_in, t.expires_at, t.refreshed_at, now).is_none()
        });
        let offer = match (view.token.as_ref(), local) {
            // The same token with an expiry no later than the fleet's (a second of slack: the two
            // clocks are compared to the second): this host knows better (a fetch of its own
            // retired it) or the same; keep it.
            (Some(r), Some(l))
                if r.access_token == l.access_token && l.expires_at <= r.expires_at + 1 =>
            {
                None
            }
            // A host that may fetch offers its own token when it outlives the fleet's (its publish
            // failed, Redis lost a write); a follower mirrors the fleet, whatever its file says:
            // it has no token of its own to offer, only one it once took from Redis.
            (Some(r), Some(l))
                if !fc.follower && l.access_token != r.access_token && worth(l) > worth(r) =>
            {
                Some(l.clone())
            }
            (Some(r), _) => {
                info!(
                    "took {} from the fleet (Redis at {}), {} s left",
                    mask(&r.access_token),
                    fleet.shown,
                    secs_until(r.expires_at, now)
                );
                run.st.token_expires_at = r.expires_at;
                run.dirty = true;
                *file = Some(r.clone());
                None
            }
            (None, Some(l)) if worth(l) > now => Some(l.clone()),
            _ => None,
        };
        if let Some(l) = offer.filter(|_| !fc.follower) {
            offer_local(&mut fleet, &l, now)?;
        }
        if let Some(d) = file.as_ref().map(|t| digest(&t.access_token)) {
            if let Some(p) = &view.probe
                && p.digest == d
                && p.at <= now
            {
                if p.at > run.st.last_probe_at {
                    run.st.last_probe_at = p.at;
                    run.dirty = true;
                }
                if !p.alive && run.st.dead.as_deref() != Some(d.as_str()) {
                    warn!(
                        "another host of the fleet found the token dead (probe at {}): replacing it",
                        p.at
                    );
                    run.st.dead = Some(d.clone());
                    run.dirty = true;
                }
            }
            if view.report.as_deref() == Some(d.as_str()) && !reports.contains(&d) {
                info!("another host's app reported the fleet's token as rejected");
                reports.push(d.clone());
            }
            if fc.follower && reports.contains(&d) {
                let left = file.as_ref().map_or(0, |t| secs_until(t.expires_at, now));
                fleet.report(&d, left.max(1) as u64);
                info!(
                    "forwarded an app's report to the fleet: a host without --follower checks it"
                );
            }
        }
        note_sync(run, fc, &fleet, &view, file.as_ref());
        self.conn = Some(fleet);
        Ok(())
    }

    /// A host that may not call WeChat keeps what it has: a fetch becomes "keep the file" while
    /// its token is valid, with exit 75. A follower first waits (within its --max-time) for a host
    /// of the fleet to replace the token: with the same margin, the leaders' timer ticks come
    /// within a minute. A probe is not a fetch: a follower connected to Redis probes (at the
    /// fleet's shared rate), a host that cannot reach Redis does not.
    fn admit(&mut self, run: &mut Run, decision: Plan, now: u64) -> Result<Plan> {
        if self.may_fetch() {
            return Ok(decision);
        }
        match decision {
            Plan::Fetch { current, why, .. } => self.hold(run, current, &why),
            probe @ Plan::Probe { .. } if self.conn.is_some() => Ok(probe),
            Plan::Probe { cur, .. } => {
                let left = cur.left(now);
                Ok(Plan::Fresh { cur, left })
            }
            fresh @ Plan::Fresh { .. } => Ok(fresh),
        }
    }

    /// The verdict goes to the fleet (periodic probes are then made once for all hosts; a dead
    /// token is replaced by whoever runs next).
    fn probe(&mut self, run: &mut Run, cur: Current, why: &str, reported: bool, now: u64) -> Plan {
        if !reported
            && let Some(conn) = self.conn.as_mut()
            && !conn.probe_turn(run.cfg.probe_every)
        {
            debug!("another host of the fleet probes the token now ({why}): not this one");
            let left = cur.left(now);
            return Plan::Fresh { cur, left };
        }
        let probes = run.st.probes;
        let digest = cur.digest.clone();
        let effective = cur.effective;
        let kept = cur.clone();
        let decision = self.direct.probe(run, cur, why, reported, now);
        let alive = match run.st.last_probe {
            Verdict::Alive => Some(true),
            Verdict::Dead => Some(false),
            Verdict::None | Verdict::Unknown(_) => None,
        };
        if run.st.probes != probes
            && let Some(alive) = alive
            && let Some(conn) = self.conn.as_mut()
        {
            let at = run.st.last_probe_at;
            let rec = ProbeRecord {
                digest: digest.clone(),
                at,
                alive,
            };
            conn.record_probe(&rec, secs_until(effective, at).max(1) as u64);
            if alive {
                conn.clear_report(&digest);
            }
        }
        match decision {
            // A host that does not fetch waits for one that does (the verdict above tells it),
            // or keeps the file with exit 75, its expiry written down to the truth (dead now).
            Plan::Fetch { current, why, .. } if !self.may_fetch() => {
                match self.hold(run, current, &why) {
                    Ok(plan) => plan,
                    Err(e) => {
                        self.deferred = Some(e);
                        let mut cur = kept;
                        cur.effective =
                            run.st
                                .effective_expiry(&cur.digest, cur.file.expires_at, now);
                        Plan::Probe { cur, why, reported }
                    }
                }
            }
            other => other,
        }
    }

    /// Only under the fleet's lock, and only if Redis still holds the token this run decided
    /// from. A token another host published meanwhile is taken instead (and decided on again,
    /// once per change). The new token goes to this host's files first, then to Redis before the
    /// lock is released (a host that takes the lock next must find it there, or it would fetch
    /// again); a failed publish is reported (75), never followed by a second fetch.
    fn token(
        &mut self,
        run: &mut Run,
        mut current: Option<Current>,
        why: &str,
        rotate: bool,
    ) -> Result<Obtained> {
        if !self.may_fetch() {
            return Err(Error::temp(format!(
                "the token needs replacing ({why}), and this host does not fetch (--follower, or \
                 Redis at {} unreachable without --redis-fallback-fetch)",
                self.fc.shown
            )));
        }
        let Some(conn) = self.conn.as_mut() else {
            // Redis unreachable and --redis-fallback-fetch: this host on its own, but never
            // with force_refresh: the account's budget is counted in Redis, which it cannot reach.
            let shown = &self.fc.shown;
            return self.direct.refresh_token_within(
                run,
                current.as_ref(),
                why,
                rotate,
                &mut |run| {
                    Err(Error::temp(format!(
                        "force_refresh not sent for appid {}: the fleet's force_refresh budget is \
                         counted in Redis at {shown}, which this host cannot reach; the next run \
                         that reaches it may",
                        run.cfg.appid
                    )))
                },
            );
        };
        let cfg = run.cfg;
        for _ in 0..3 {
            let seen = conn.seen.clone();
            let raw = match conn.lock_or_change("lock", "token", seen.as_deref())? {
                Turn::Changed(raw) => raw,
                Turn::Ours(value) => {
                    debug!("holding the fleet's lock ({value}): fetching");
                    let result = self.direct.refresh_token_within(
                        run,
                        current.as_ref(),
                        why,
                        rotate,
                        &mut |run| shared_force(conn, run),
                    );
                    if let Ok(got) = &result {
                        let t = &got.token;
                        match conn.publish(t, unix_now()) {
                            Ok(true) => {
                                info!(
                                    "published {} to the fleet (Redis at {})",
                                    mask(&t.access_token),
                                    conn.shown
                                );
                                note_same(run, conn);
                            }
                            Ok(false) => warn!(
                                "Redis at {} held another token by the time this run published \
                                 (this run's lock had expired): kept it; the next runs settle \
                                 which one outlives the other",
                                conn.shown
                            ),
                            Err(e) => {
                                self.deferred = Some(Error::temp(format!(
                                    "{e}: the new token is in this host's files only; the next \
                                     run that reaches Redis publishes it (no second fetch)"
                                )));
                            }
                        }
                    }
                    conn.unlock("lock", &value);
                    return result;
                }
            };
            // The fleet moved on while this run waited: decide again on its token.
            let now = unix_now();
            let Some(cur) = take_fleet_token(conn, run, raw, now) else {
                continue;
            };
            info!(
                "another host published {} meanwhile: taking it instead of fetching",
                mask(&cur.file.access_token)
            );
            run.st.token_expires_at = cur.file.expires_at;
            run.dirty = true;
            let cur = match plan(run.policy_again(), Some(cur), &run.st, &[], 0, now) {
                Plan::Fetch { current: again, .. } => {
                    current = again;
                    continue;
                }
                Plan::Fresh { cur, .. } | Plan::Probe { cur, .. } => cur,
            };
            for path in cfg.store.write_token(&cur.file)? {
                info!("wrote {} from the fleet's token", path.display());
            }
            note_same(run, conn);
            return Ok(Obtained {
                token: cur.file,
                outcome: Ok(()),
                fetched: false,
            });
        }
        Err(Error::temp(
            "the fleet's token kept changing while this run waited; the next run looks again",
        ))
    }

    /// The fleet's ticket of this type goes into this host's file when it outlives the file's
    /// (or corrects its expiry down). Returns what the file holds afterwards.
    fn ticket_sync(
        &mut self,
        run: &mut Run,
        ty: TicketType,
        path: &Path,
        local: Option<TicketFile>,
        now: u64,
    ) -> Option<TicketFile> {
        let cfg = run.cfg;
        let Some(fleet) = self.conn.as_mut() else {
            return local;
        };
        let raw = match fleet.get(&ticket_key(ty)) {
            Ok(raw) => raw,
            Err(e) => {
                warn!("{e}");
                return local;
            }
        };
        let Some(r) = raw.and_then(|raw| fleet.believe_ticket(&raw, ty, &cfg.appid)) else {
            return local;
        };
        let better = local.as_ref().is_none_or(|l| {
            l.appid != cfg.appid
                || (l.ticket != r.ticket && r.expires_at > l.expires_at)
                || (l.ticket == r.ticket && r.expires_at < l.expires_at)
        });
        if !better {
            return local;
        }
        match crate::store::atomic::write_atomic(path, &r.render(), cfg.store.mode, cfg.store.gid) {
            Ok(_) => {
                info!(
                    "took the {} ticket {} from the fleet, {} s left",
                    ty.name(),
                    mask(&r.ticket),
                    secs_until(r.expires_at, now)
                );
                Some(r)
            }
            Err(e) => {
                warn!("{e}");
                local
            }
        }
    }

    /// Only under the fleet's lock for that ticket, and only if Redis holds no fresh one by then
    /// (that one is taken instead); the new ticket goes to this host's file, then to Redis by
    /// compare-and-swap.
    fn ticket(
        &mut self,
        run: &mut Run,
        ty: TicketType,
        token: &str,
        current: Option<&TicketFile>,
    ) -> Result<()> {
        if !self.may_fetch() {
            self.deferred.get_or_insert(Error::temp(format!(
                "the {} ticket needs a fetch, which this host does not make (--follower, or \
                 Redis unreachable): a host of the fleet that may does",
                ty.name()
            )));
            return Ok(());
        }
        let Some(conn) = self.conn.as_mut() else {
            return self.direct.ticket(run, ty, token, current);
        };
        let cfg = run.cfg;
        let name = ticket_key(ty);
        let lock = format!("lock:{name}");
        let path = tickets::path_for(cfg.store.dir(), ty);
        let taken = |conn: &Fleet, raw: &Option<String>| -> Result<bool> {
            let now = unix_now();
            let Some(t) = raw
                .as_deref()
                .and_then(|r| conn.believe_ticket(r, ty, &cfg.appid))
            else {
                return Ok(false);
            };
            if tickets::needs_fetch(&path, Some(&t), &cfg.appid, cfg.margin, now)?.is_some() {
                return Ok(false);
            }
            crate::store::atomic::write_atomic(&path, &t.render(), cfg.store.mode, cfg.store.gid)?;
            info!(
                "another host published the {} ticket {} meanwhile: taking it",
                ty.name(),
                mask(&t.ticket)
            );
            Ok(true)
        };
        let mut seen = conn.get(&name)?;
        if taken(conn, &seen)? {
            return Ok(());
        }
        for _ in 0..3 {
            match conn.lock_or_change(&lock, &name, seen.as_deref())? {
                Turn::Changed(raw) => {
                    if taken(conn, &raw)? {
                        return Ok(());
                    }
                    seen = raw;
                }
                Turn::Ours(value) => {
                    let result = self.direct.ticket(run, ty, token, current);
                    if result.is_ok()
                        && let Some(t) = tickets::read(&path)
                    {
                        let raw = conn.ticket_json(&t);
                        let left = secs_until(t.expires_at, unix_now()).max(1) as u64;
                        match conn.swap(&name, seen.as_deref(), &raw, left * 1000) {
                            Ok(true) => debug!("published the {} ticket to the fleet", ty.name()),
                            Ok(false) => warn!(
                                "Redis held another {} ticket by the time this run published: \
                                 kept it",
                                ty.name()
                            ),
                            Err(e) => {
                                self.deferred.get_or_insert(Error::temp(format!(
                                    "{e}: the new {} ticket is in this host's file only",
                                    ty.name()
                                )));
                            }
                        }
                    }
                    conn.unlock(&lock, &value);
                    return result;
                }
            }
        }
        Err(Error::temp(format!(
            "the fleet's {} ticket kept changing while this run waited; the next run looks again",
            ty.name()
        )))
    }

    fn deferred(&mut self) -> Option<Error> {
        self.deferred.take()
    }

    fn redis(&mut self) -> Option<&mut Fleet> {
        self.conn.as_mut()
    }
}

/// The fleet's stored token `raw`, now what this run decides from (`seen`): Some when it is one
/// this account would serve and believable under the current clock.
fn take_fleet_token(
    conn: &mut Fleet,
    run: &mut Run,
    raw: Option<String>,
    now: u64,
) -> Option<Current> {
    let cfg = run.cfg;
    let token = raw
        .as_deref()
        .and_then(|r| conn.believe(r, &cfg.appid, cfg.api));
    conn.seen = raw;
    token.and_then(|t| run.assess(t, now))
}

/// A follower whose token needs replacing takes the fleet's token if Redis already holds one it
/// may keep (a replacement published before this run looked), else watches it until a leader
/// publishes one, or this run's time is up (None).
fn wait_for_leader(conn: &mut Fleet, run: &mut Run, why: &str) -> Result<Option<Current>> {
    let mut raw = conn.seen.clone();
    let mut first = true;
    loop {
        if first || raw != conn.seen {
            let now = unix_now();
            if let Some(cur) = take_fleet_token(conn, run, raw.clone(), now)
                && let Plan::Fresh { cur, .. } | Plan::Probe { cur, .. } =
                    plan(run.policy_again(), Some(cur), &run.st, &[], 0, now)
            {
                info!(
                    "took {} from the fleet, {} s left",
                    mask(&cur.file.access_token),
                    cur.left(now)
                );
                run.st.token_expires_at = cur.file.expires_at;
                run.dirty = true;
                return Ok(Some(cur));
            }
            if first {
                info!("the fleet's token needs replacing ({why}): waiting for a host that fetches");
            }
            first = false;
        }
        if run.deadline.remaining() <= Duration::from_secs(1) {
            return Ok(None);
        }
        run.deadline.sleep(POLL * 5);
        raw = conn.get("token")?;
    }
}

/// The fleet's share of a force_refresh: one budget for every host of the account, counted in
/// Redis before the call (waiting out WeChat's gap if the run's time allows).
fn shared_force(conn: &mut Fleet, run: &mut Run) -> Result<()> {
    let appid = &run.cfg.appid;
    let refused =
        |why: &str| Error::temp(format!("force_refresh not sent for appid {appid}: {why}"));
    loop {
        let answer = conn.reserve_force().map_err(|e| {
            refused(&format!(
                "{}; a host that cannot count it in the fleet's budget does not make it",
                e.message
            ))
        })?;
        match answer {
            Force::Granted(n) => {
                info!(
                    "force_refresh {n} of {} for the fleet in the last 24 h (Redis at {})",
                    crate::store::run_state::FORCE_PER_DAY,
                    conn.shown
                );
                return Ok(());
            }
            Force::Spent(why) => return Err(refused(&why)),
            Force::Wait(wait) => {
                if wait + Duration::from_secs(1) > run.deadline.remaining() {
                    return Err(refused(&format!(
                        "another host of the fleet made one {} s ago, WeChat wants {} s between \
                         two, and --max-time leaves too little to wait; the next run will",
                        crate::store::run_state::FORCE_MIN_GAP.saturating_sub(wait.as_secs()),
                        crate::store::run_state::FORCE_MIN_GAP
                    )));
                }
                info!(
                    "waiting {} s: WeChat wants 30 s between two force_refresh calls of the fleet",
                    wait.as_secs()
                );
                run.deadline.sleep(wait);
            }
        }
    }
}

/// Records in the run state that this run could not reach Redis (status warns after a few).
fn note_unreachable(run: &mut Run, fc: &FleetConfig) {
    let mut seen = run.st.fleet.clone().unwrap_or_default();
    seen.role = role(fc).into();
    seen.reachable = false;
    seen.unreachable_runs = seen.unreachable_runs.saturating_add(1);
    keep_seen(run, seen);
}

/// Records what this run saw of the fleet once it has synced with it: whether the file now holds
/// the fleet's token, who fetched that and when, the shared budget used.
fn note_sync(
    run: &mut Run,
    fc: &FleetConfig,
    conn: &Fleet,
    view: &crate::fleet::View,
    file: Option<&TokenFile>,
) {
    let mut seen = run.st.fleet.clone().unwrap_or_default();
    seen.role = role(fc).into();
    seen.reachable = true;
    seen.unreachable_runs = 0;
    seen.force_refresh_used = view.forced_today;
    seen.clock_skew = conn.skew;
    // What Redis holds now: the value this run believed, or the one it published over it.
    let (token, refreshed_at, by) = if conn.seen == view.raw {
        match &view.token {
            Some(t) => (
                Some(t.access_token.clone()),
                t.refreshed_at,
                view.refreshed_by.clone(),
            ),
            None => (None, 0, None),
        }
    } else {
        published(conn)
    };
    seen.same_token = token.is_some() && token.as_deref() == file.map(|f| f.access_token.as_str());
    seen.differing_runs = if seen.same_token {
        0
    } else {
        seen.differing_runs.saturating_add(1)
    };
    if token.is_some() {
        seen.refreshed_at = refreshed_at;
        seen.refreshed_by = by.unwrap_or_default();
    }
    keep_seen(run, seen);
}

/// The token this run published (`conn.seen`): the token, when it was fetched (this host's
/// clock) and by which host.
fn published(conn: &Fleet) -> (Option<String>, u64, Option<String>) {
    let v = conn
        .seen
        .as_deref()
        .and_then(|r| serde_json::from_str::<crate::fleet::Stamp>(r).ok())
        .unwrap_or_default();
    (
        Some(v.access_token).filter(|t| !t.is_empty()),
        conn.local(v.refreshed_at),
        Some(crate::text::printable(&v.refreshed_by)).filter(|by| !by.is_empty()),
    )
}

/// The file holds the fleet's token now (this run published it, or took it).
fn note_same(run: &mut Run, conn: &Fleet) {
    let mut seen = run.st.fleet.clone().unwrap_or_default();
    seen.same_token = true;
    seen.differing_runs = 0;
    if let (Some(_), at, by) = published(conn) {
        seen.refreshed_at = at;
        seen.refreshed_by = by.unwrap_or_default();
    }
    keep_seen(run, seen);
}

fn role(fc: &FleetConfig) -> &'static str {
    if fc.follower { "follower" } else { "leader" }
}

/// A changed view is saved with the run state; an unchanged one costs no write.
fn keep_seen(run: &mut Run, seen: crate::store::run_state::FleetSeen) {
    if run.st.fleet.as_ref() != Some(&seen) {
        run.st.fleet = Some(seen);
        run.dirty = true;
    }
}

/// Offers the fleet this host's token, which outlives the one Redis holds (or Redis holds none):
/// under the lock, only if Redis still holds what this run read. Skipped while another host holds
/// the lock (it is about to publish).
fn offer_local(fleet: &mut Fleet, t: &TokenFile, now: u64) -> Result<()> {
    let Some(value) = fleet.try_lock("lock")? else {
        return Ok(());
    };
    let result = fleet.get("token").and_then(|raw| {
        if raw != fleet.seen {
            return Ok(false);
        }
        fleet.publish(t, now)
    });
    fleet.unlock("lock", &value);
    if result? {
        info!(
            "published this host's token {} to the fleet (Redis at {}): Redis held none that \
             outlives it",
            mask(&t.access_token),
            fleet.shown
        );
    }
    Ok(())
}
