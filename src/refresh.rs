//! One `wxtoken refresh` run: lock, decide, fetch, validate, publish.

use std::time::{SystemTime, UNIX_EPOCH};

use log::{debug, info};

use crate::cli::{Api, RefreshArgs};
use crate::config::Config;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::logging::{mask, register_token};
use crate::store::TokenFile;
use crate::wechat::{Client, Context};

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

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

pub fn run(args: &RefreshArgs) -> Result<()> {
    let cfg = Config::from_args(args)?;
    let deadline = Deadline::after(cfg.max_time);
    let store = &cfg.store;
    // Everything below happens under the lock: N runs started together queue here, and each
    // re-reads the file after the one before it, so only the first calls WeChat.
    let _lock = store.lock(&deadline)?;
    store.remove_stale_temps(&store.names());

    let state = store.read_state();
    let why = match decide(
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
            return Ok(());
        }
        Decision::Refresh { why } => why,
    };
    debug!("refreshing: {why}");

    let client = Client::new(
        cfg.bases.clone(),
        cfg.timeout,
        cfg.retries,
        cfg.ca_file.as_deref(),
    )?;
    let ctx = Context {
        appid: &cfg.appid,
        api: cfg.api,
        secret_source: &cfg.secret_source,
    };
    let grant = client.fetch_token(&ctx, &cfg.secret, &deadline)?;
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
    store.publish(&fresh)?;
    info!(
        "refreshed {} for {} ({}), expires in {} s ({why})",
        mask(&fresh.access_token),
        cfg.appid,
        cfg.api.name(),
        grant.expires_in
    );
    if grant.expires_in <= cfg.margin {
        // Written anyway (a short-lived valid token beats none), but exit 0 promises more than the
        // margin; the stable API hands out a new token only in the last 300 s of the old one.
        return Err(Error::temp(format!(
            "WeChat returned a token with only {} s left, not more than the margin of {} s; \
             the file was updated, the next run will try again",
            grant.expires_in, cfg.margin
        )));
    }
    Ok(())
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
