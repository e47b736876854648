//! Fleet mode in the run: the fleet's token becomes this host's before the decision, a fetch
//! happens only under the fleet's lock, and a host that may not fetch holds what it has.

use std::path::Path;
use std::time::Duration;

use log::{debug, info, warn};

use crate::error::{Error, Kind, Result};
use crate::fleet::{Fleet, POLL, ProbeRecord, believe_ticket, ticket_key};
use crate::logging::mask;
use crate::plan::{Current, Plan, Policy, plan};
use crate::store::TokenFile;
use crate::tickets::{self, TicketFile};
use crate::vocab::{TicketType, digest, implausible, secs_until, unix_now};

use super::Run;

/// A fetched token (or the fleet's), its outcome, and whether this run fetched it.
type Refreshed = (TokenFile, Result<()>, bool);

impl Run<'_> {
    /// False for a follower, and for a host that cannot reach Redis (unless it may fall back).
    pub(crate) fn may_call_wechat(&self) -> bool {
        match &self.cfg.fleet {
            None => true,
            Some(fc) => !fc.follower && (self.fleet.is_some() || fc.fallback_fetch),
        }
    }

    /// Fleet mode, before any decision: connects, and makes the fleet's token this host's
    /// (`file`), or offers Redis this host's when it outlives the fleet's (a fetch whose publish
    /// failed, Redis restarted empty). Merges what other hosts learnt: the last probe, a report.
    /// Redis down is not an error here: the run goes on without fetching and exits 75.
    pub(crate) fn fleet_sync(
        &mut self,
        file: &mut Option<TokenFile>,
        reports: &mut Vec<String>,
        now: u64,
    ) -> Result<()> {
        let cfg = self.cfg;
        let Some(fc) = &cfg.fleet else {
            return Ok(());
        };
        let connected = Fleet::connect(fc, &self.deadline).and_then(|mut f| {
            let view = f.read(&cfg.appid, cfg.api, now)?;
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
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        fleet.seen = view.raw.clone();
        let worth = |t: &TokenFile| {
            self.st
                .effective_expiry(&digest(&t.access_token), t.expires_at, now)
        };
        let local = file.as_ref().filter(|t| {
            t.appid == cfg.appid
                && t.api == cfg.api.name()
                && implausible(t.expires_in, t.expires_at, t.refreshed_at, now).is_none()
        });
        let offer = match (view.token.as_ref(), local) {
            // The same token with an expiry no later than the fleet's: this host knows better
            // (a fetch of its own retired it) or the same; keep it.
            (Some(r), Some(l))
                if r.access_token == l.access_token && l.expires_at <= r.expires_at =>
            {
                None
            }
            (Some(r), Some(l)) if l.access_token != r.access_token && worth(l) > worth(r) => {
                Some(l.clone())
            }
            (Some(r), _) => {
                info!(
                    "took {} from the fleet (Redis at {}), {} s left",
                    mask(&r.access_token),
                    fleet.shown,
                    secs_until(r.expires_at, now)
                );
                self.st.token_expires_at = r.expires_at;
                self.dirty = true;
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
                if p.at > self.st.last_probe_at {
                    self.st.last_probe_at = p.at;
                    self.dirty = true;
                }
                if !p.alive && self.st.dead.as_deref() != Some(d.as_str()) {
                    warn!(
                        "another host of the fleet found the token dead (probe at {}): replacing it",
                        p.at
                    );
                    self.st.dead = Some(d.clone());
                    self.dirty = true;
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
        self.fleet = Some(fleet);
        Ok(())
    }

    /// A run that may not call WeChat (follower, Redis down) keeps what it has: a probe is
    /// skipped, a fetch becomes "keep the file" while its token is valid, with exit 75. A
    /// follower first waits (within its --max-time) for a host of the fleet to replace the token:
    /// with the same margin, the leaders' timer ticks come within a minute.
    pub(crate) fn hold(
        &mut self,
        decision: Plan,
        current: Option<Current>,
        now: u64,
    ) -> Result<(Plan, Option<Current>)> {
        let why = match decision {
            Plan::Fetch { why, .. } => why,
            Plan::Probe { .. } => {
                let left = current.as_ref().map_or(0, |c| c.left(now));
                return Ok((Plan::Fresh { left }, current));
            }
            fresh => return Ok((fresh, current)),
        };
        let fc = self.cfg.fleet.as_ref().expect("held only in fleet mode");
        if fc.follower
            && self.fleet.is_some()
            && let Some(cur) = self.wait_for_leader(&why)?
        {
            return Ok((
                Plan::Fresh {
                    left: cur.left(unix_now()),
                },
                Some(cur),
            ));
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
        match current.filter(|c| c.left(now) > 0) {
            Some(c) => {
                self.deferred = Some(reason);
                Ok((Plan::Fresh { left: c.left(now) }, Some(c)))
            }
            None => Err(Error::temp(format!(
                "{}; {} holds no valid token ({why})",
                reason.message,
                self.cfg.store.state.display()
            ))),
        }
    }

    /// The fleet's stored token `raw`, now what this run decides from (`seen`): Some when it is
    /// one this account would serve and believable under the current clock.
    fn take_fleet_token(&mut self, raw: Option<String>, now: u64) -> Option<Current> {
        let cfg = self.cfg;
        let fleet = self.fleet.as_mut().expect("fleet mode");
        let token = raw
            .as_deref()
            .and_then(|r| fleet.believe(r, &cfg.appid, cfg.api, now));
        fleet.seen = raw;
        token.and_then(|t| self.assess(t, now))
    }

    /// A follower whose token needs replacing watches the fleet's token until a leader publishes
    /// one it may keep, or this run's time is up (None).
    fn wait_for_leader(&mut self, why: &str) -> Result<Option<Current>> {
        let cfg = self.cfg;
        let policy = Policy {
            margin: cfg.margin,
            force: false,
            force_new: false,
            probe_every: cfg.probe_every,
        };
        info!("the fleet's token needs replacing ({why}): waiting for a host that fetches");
        while self.deadline.remaining() > Duration::from_secs(1) {
            self.deadline.sleep(POLL * 5);
            let fleet = self.fleet.as_mut().expect("fleet mode");
            let raw = fleet.get("token")?;
            if raw == fleet.seen {
                continue;
            }
            let now = unix_now();
            let Some(cur) = self.take_fleet_token(raw, now) else {
                continue;
            };
            if !matches!(
                plan(policy, Some(&cur), &self.st, &[], 0, now),
                Plan::Fetch { .. }
            ) {
                info!(
                    "took {} from the fleet, {} s left",
                    mask(&cur.file.access_token),
                    cur.left(now)
                );
                self.st.token_expires_at = cur.file.expires_at;
                self.dirty = true;
                return Ok(Some(cur));
            }
        }
        Ok(None)
    }

    /// After a probe this run made: the verdict goes to the fleet (periodic probes are then made
    /// once for all hosts; a dead token is replaced by whoever runs next).
    pub(crate) fn fleet_probed(&mut self, cur: &Current) {
        let alive = match self.st.last_probe.as_str() {
            "alive" => true,
            "dead" => false,
            _ => return,
        };
        let at = self.st.last_probe_at;
        let Some(fleet) = self.fleet.as_mut() else {
            return;
        };
        let rec = ProbeRecord {
            digest: cur.digest.clone(),
            at,
            alive,
        };
        fleet.record_probe(&rec, cur.left(at).max(1) as u64);
        if alive {
            fleet.clear_report(&cur.digest);
        }
    }

    /// A fetch in fleet mode: only under the fleet's lock, and only if Redis still holds the
    /// token this run decided from. A token another host published meanwhile is taken instead
    /// (and decided on again, once per change). The new token goes to this host's files first,
    /// then to Redis; a failed publish is reported (75), never followed by a second fetch.
    pub(crate) fn fleet_refresh(
        &mut self,
        mut current: Option<Current>,
        why: &str,
        rotate: bool,
        policy: Policy,
    ) -> Result<Refreshed> {
        let cfg = self.cfg;
        for _ in 0..3 {
            let fleet = self.fleet.as_mut().expect("fleet mode");
            let mut held = None;
            let seen = fleet.seen.clone();
            let news = fleet.lock_or_change("lock", "token", seen.as_deref(), &mut held);
            let raw = match news {
                Err(e) => {
                    if let Some(v) = held {
                        fleet.unlock("lock", &v);
                    }
                    return Err(e);
                }
                Ok(Some(raw)) => raw,
                Ok(None) => {
                    let value = held.expect("Ok(None) means the lock is ours");
                    debug!("holding the fleet's lock ({value}): fetching");
                    let result = self.refresh_token(current.as_ref(), why, rotate);
                    let fleet = self.fleet.as_mut().expect("fleet mode");
                    if let Ok((t, _)) = &result {
                        match fleet.publish(t, unix_now()) {
                            Ok(true) => info!(
                                "published {} to the fleet (Redis at {})",
                                mask(&t.access_token),
                                fleet.shown
                            ),
                            Ok(false) => warn!(
                                "Redis at {} held another token by the time this run published \
                                 (this run's lock had expired): kept it; the next runs settle \
                                 which one outlives the other",
                                fleet.shown
                            ),
                            Err(e) => {
                                self.deferred = Some(Error::temp(format!(
                                    "{e}: the new token is in this host's files only; the next \
                                     run that reaches Redis publishes it (no second fetch)"
                                )));
                            }
                        }
                    }
                    let fleet = self.fleet.as_mut().expect("fleet mode");
                    fleet.unlock("lock", &value);
                    return result.map(|(t, o)| (t, o, true));
                }
            };
            // The fleet moved on while this run waited: decide again on its token.
            let now = unix_now();
            let Some(cur) = self.take_fleet_token(raw, now) else {
                continue;
            };
            info!(
                "another host published {} meanwhile: taking it instead of fetching",
                mask(&cur.file.access_token)
            );
            self.st.token_expires_at = cur.file.expires_at;
            self.dirty = true;
            let again = Policy {
                force: false,
                force_new: false,
                ..policy
            };
            if let Plan::Fetch { .. } = plan(again, Some(&cur), &self.st, &[], 0, now) {
                current = Some(cur);
                continue;
            }
            for path in cfg.store.publish(&cur.file)? {
                info!("wrote {} from the fleet's token", path.display());
            }
            return Ok((cur.file, Ok(()), false));
        }
        Err(Error::temp(
            "the fleet's token kept changing while this run waited; the next run looks again",
        ))
    }
}

impl Run<'_> {
    /// Fleet mode: the fleet's ticket of this type goes into this host's file when it outlives
    /// the file's (or corrects its expiry down). Returns what the file holds afterwards.
    pub(crate) fn fleet_ticket_sync(
        &mut self,
        ty: TicketType,
        path: &Path,
        local: Option<TicketFile>,
        now: u64,
    ) -> Option<TicketFile> {
        let cfg = self.cfg;
        let fleet = self.fleet.as_mut()?;
        let raw = match fleet.get(&ticket_key(ty)) {
            Ok(raw) => raw,
            Err(e) => {
                warn!("{e}");
                return local;
            }
        };
        let Some(r) = raw.and_then(|raw| believe_ticket(&raw, ty, &cfg.appid, now)) else {
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

    /// Fleet mode: a ticket fetch only under the fleet's lock for that ticket, and only if Redis
    /// holds no fresh one by then (that one is taken instead); the new ticket goes to this host's
    /// file, then to Redis by compare-and-swap.
    pub(crate) fn fleet_ticket(
        &mut self,
        ty: TicketType,
        token: &str,
        current: Option<&TicketFile>,
    ) -> Result<()> {
        let cfg = self.cfg;
        let name = ticket_key(ty);
        let lock = format!("lock:{name}");
        let path = tickets::path_for(cfg.store.dir(), ty);
        let taken = |raw: &Option<String>| -> Result<bool> {
            let now = unix_now();
            let Some(t) = raw
                .as_deref()
                .and_then(|r| believe_ticket(r, ty, &cfg.appid, now))
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
        let fleet = self.fleet.as_mut().expect("fleet mode");
        let mut seen = fleet.get(&name)?;
        if taken(&seen)? {
            return Ok(());
        }
        for _ in 0..3 {
            let fleet = self.fleet.as_mut().expect("fleet mode");
            let mut held = None;
            match fleet.lock_or_change(&lock, &name, seen.as_deref(), &mut held) {
                Err(e) => {
                    if let Some(v) = held {
                        fleet.unlock(&lock, &v);
                    }
                    return Err(e);
                }
                Ok(Some(raw)) => {
                    if taken(&raw)? {
                        return Ok(());
                    }
                    seen = raw;
                }
                Ok(None) => {
                    let value = held.expect("Ok(None) means the lock is ours");
                    let result = self.ticket(ty, token, current);
                    let fleet = self.fleet.as_mut().expect("fleet mode");
                    if result.is_ok()
                        && let Some(t) = tickets::read(&path)
                    {
                        let raw = serde_json::to_string(&t).expect("plain struct serializes");
                        let left = secs_until(t.expires_at, unix_now()).max(1) as u64;
                        match fleet.swap(&name, seen.as_deref(), &raw, left * 1000) {
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
                    let fleet = self.fleet.as_mut().expect("fleet mode");
                    fleet.unlock(&lock, &value);
                    return result;
                }
            }
        }
        Err(Error::temp(format!(
            "the fleet's {} ticket kept changing while this run waited; the next run looks again",
            ty.name()
        )))
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
