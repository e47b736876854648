//! One `wxtoken refresh` run: lock, decide, fetch, validate, publish; then the tickets.

use std::process::ExitCode;

use log::{debug, error, info, warn};

use crate::cli::RefreshArgs;
use crate::config::Config;
use crate::deadline::Deadline;
use crate::error::{Error, Kind, Result};
use crate::logging::{mask, register_token};
use crate::store::TokenFile;
use crate::tickets::{self, TicketFile};
use crate::vocab::{Api, TicketType, unix_now};
use crate::wechat::{Client, Context, Purpose};

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The file holds a usable token for this account with more than the margin left.
    Fresh {
        left: i64,
    },
    Refresh {
        why: String,
    },
}

pub fn decide(
    state: Option<&TokenFile>,
    appid: &str,
    api: Api,
    margin: u64,
    force: bool,
    now: u64,
) -> Decision {
    let Some(t) = state else {
        return Decision::Refresh {
            why: "no valid token file yet".into(),
        };
    };
    let left = t.remaining(now);
    let why = if t.appid != appid {
        format!("the file holds a token of appid {}", t.appid)
    } else if t.api != api.name() {
        format!("the file holds a token from the {} API", t.api)
    } else if left <= 0 {
        "the token in the file has expired".into()
    } else if left <= margin as i64 {
        format!("{left} s left, within the margin of {margin} s")
    } else if force {
        format!("--force ({left} s were left)")
    } else {
        return Decision::Fresh { left };
    };
    Decision::Refresh { why }
}

pub fn run(args: &RefreshArgs) -> Result<ExitCode> {
    let cfg = Config::from_args(args)?;
    let deadline = Deadline::after(cfg.max_time);
    let store = &cfg.store;
    // Everything below happens under the lock: N runs started together queue here, and each
    // re-reads the file after the one before it, so only the first calls WeChat.
    let _lock = store.lock(&deadline)?;
    let mut names = store.names();
    names.extend(cfg.tickets.iter().map(|t| t.file_name()));
    store.remove_stale_temps(&names);

    let mut run = Run {
        cfg: &cfg,
        deadline,
        client: None,
    };
    let state = store.read_state();
    let (mut token, mut outcome, mut fetched) = match decide(
        state.as_ref(),
        &cfg.appid,
        cfg.api,
        cfg.margin,
        cfg.force,
        unix_now(),
    ) {
        Decision::Fresh { left } => {
            let state = state.expect("fresh implies a state");
            register_token(&state.access_token);
            // Outputs added to the configuration since the last refresh, or deleted by hand,
            // are rendered from the state without calling WeChat.
            for path in store.publish(&state)? {
                info!("wrote {} from the current token", path.display());
            }
            info!(
                "still fresh, {left} s left ({} {}, {})",
                cfg.appid,
                cfg.api.name(),
                store.state.display()
            );
            (state, Ok(()), false)
        }
        Decision::Refresh { why } => {
            let (t, outcome) = run.refresh_token(&why)?;
            (t, outcome, true)
        }
    };

    // Tickets only ever use a token that was validated and published above. A ticket failure
    // never undoes the token write: it is logged and decides the exit status if the token's
    // own outcome was fine.
    let mut ticket_error: Option<Error> = None;
    for &ty in &cfg.tickets {
        let current = tickets::read(&tickets::path_for(store.dir(), ty));
        let Some(why) = tickets::needs_fetch(current.as_ref(), &cfg.appid, cfg.margin, unix_now())
        else {
            debug!("{} ticket still fresh", ty.name());
            continue;
        };
        debug!("fetching the {} ticket: {why}", ty.name());
        let mut result = run.ticket(ty, &token.access_token, current.as_ref());
        if matches!(&result, Err(e) if e.kind == Kind::TokenRejected) && !fetched {
            // WeChat's advice: refresh passively when an API reports the token invalid (another
            // program fetched one for this appid, or WeChat revoked it early). Once per run.
            warn!(
                "{}; refreshing the token and trying again",
                result.as_ref().unwrap_err()
            );
            let (t, o) = run.refresh_token("WeChat rejected the current token")?;
            (token, outcome, fetched) = (t, o, true);
            result = run.ticket(ty, &token.access_token, current.as_ref());
        }
        if let Err(e) = result {
            error!("{} ticket not refreshed: {e}", ty.name());
            ticket_error.get_or_insert(e);
        }
    }
    outcome?;
    match ticket_error {
        Some(e) => Err(Error {
            message: format!("the token is fine, but a ticket failed: {}", e.message),
            ..e
        }),
        None => Ok(ExitCode::SUCCESS),
    }
}

fn context(cfg: &Config) -> Context<'_> {
    Context {
        appid: &cfg.appid,
        api: cfg.api,
        secret_source: &cfg.secret_source,
        purpose: Purpose::Token,
    }
}

/// What one run carries between the token and the ticket steps.
struct Run<'a> {
    cfg: &'a Config,
    deadline: Deadline,
    /// Built on first use: a run that finds everything fresh never loads the trust store.
    client: Option<Client>,
}

impl Run<'_> {
    fn client(&mut self) -> Result<&Client> {
        if self.client.is_none() {
            let c = self.cfg;
            self.client = Some(Client::new(c));
        }
        Ok(self.client.as_ref().expect("just set"))
    }

    /// Fetches, validates and publishes a new token. The inner result is Err when the token was
    /// written but has no more than the margin left (exit 75, but tickets may still use it).
    fn refresh_token(&mut self, why: &str) -> Result<(TokenFile, Result<()>)> {
        debug!("refreshing: {why}");
        let cfg = self.cfg;
        let deadline = self.deadline;
        let ctx = context(cfg);
        let grant = self
            .client()?
            .fetch_token(&ctx, &cfg.secret, false, &deadline)?;
        register_token(&grant.value);
        let now = unix_now();
        let fresh = TokenFile {
            access_token: grant.value,
            expires_in: grant.expires_in,
            expires_at: now + grant.expires_in,
            expire_time: now + grant.expires_in,
            refreshed_at: now,
            appid: cfg.appid.clone(),
            api: cfg.api.name().to_string(),
        };
        cfg.store.publish(&fresh)?;
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

    fn ticket(&mut self, ty: TicketType, token: &str, current: Option<&TicketFile>) -> Result<()> {
        let cfg = self.cfg;
        let deadline = self.deadline;
        let ctx = context(cfg);
        let client = self.client()?;
        tickets::refresh_one(client, &ctx, ty, token, current, &cfg.store, &deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(expires_at: u64) -> TokenFile {
        TokenFile {
            access_token: "t".into(),
            expires_in: 7200,
            expires_at,
            expire_time: expires_at,
            refreshed_at: 0,
            appid: "wxa".into(),
            api: "stable".into(),
        }
    }

    #[test]
    fn decisions() {
        let now = 1_000_000;
        let d = |s: Option<&TokenFile>, force| decide(s, "wxa", Api::Stable, 300, force, now);
        assert!(matches!(d(None, false), Decision::Refresh { .. }));
        assert_eq!(
            d(Some(&file(now + 301)), false),
            Decision::Fresh { left: 301 }
        );
        assert!(matches!(
            d(Some(&file(now + 300)), false),
            Decision::Refresh { .. }
        ));
        assert!(matches!(
            d(Some(&file(now - 5)), false),
            Decision::Refresh { .. }
        ));
        assert!(matches!(
            d(Some(&file(now + 5000)), true),
            Decision::Refresh { .. }
        ));
        assert!(matches!(
            decide(Some(&file(now + 5000)), "wxb", Api::Stable, 300, false, now),
            Decision::Refresh { .. }
        ));
        assert!(matches!(
            decide(Some(&file(now + 5000)), "wxa", Api::Legacy, 300, false, now),
            Decision::Refresh { .. }
        ));
    }
}
