//! JS-SDK tickets: when one must be fetched, and the fetch that writes its file.
//!
//! Each ticket lives on its own clock, in its own `TYPE_ticket.json` beside the token
//! file: a ticket is fetched when it is missing or near its own expiry, not on every token
//! refresh (ticket quotas are small; WeCom allows 100 an hour per app).

use std::path::Path;

use log::info;

use crate::api::{Api, TicketType};
use crate::clock::{implausible, secs_until, unix_now};
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::logging::{mask, register_token};
use crate::store::Store;
use crate::store::atomic::Pending;
pub use crate::store::ticket_file::{TicketFile, parse, path_for, read};
use crate::text::url_encode;
use crate::wechat::{Call, Client, Context, Grant, Purpose};

/// The request for one ticket type on one API.
fn call(ty: TicketType, api: Api, token: &str) -> Call {
    let t = url_encode(token);
    let (shown, path_and_query) = match (api, ty) {
        (Api::Wecom, TicketType::AgentConfig) => (
            "GET /cgi-bin/ticket/get",
            format!("/cgi-bin/ticket/get?access_token={t}&type=agent_config"),
        ),
        (Api::Wecom, _) => (
            "GET /cgi-bin/get_jsapi_ticket",
            format!("/cgi-bin/get_jsapi_ticket?access_token={t}"),
        ),
        (_, ty) => (
            "GET /cgi-bin/ticket/getticket",
            format!(
                "/cgi-bin/ticket/getticket?access_token={t}&type={}",
                ty.name()
            ),
        ),
    };
    Call {
        shown,
        path_and_query,
        json_body: None,
    }
}

/// Why this ticket must be fetched now, or None when the file can stay. A live ticket of another
/// account is an error, not a reason: two accounts sharing one directory would overwrite each
/// other's ticket on every run.
pub fn needs_fetch(
    path: &Path,
    current: Option<&TicketFile>,
    appid: &str,
    margin: u64,
    now: u64,
) -> Result<Option<String>> {
    let Some(t) = current else {
        return Ok(Some("no ticket file yet".into()));
    };
    let plausible = implausible(t.expires_in, t.expires_at, t.refreshed_at, now);
    let left = secs_until(t.expires_at, now);
    if t.appid != appid {
        if plausible.is_none() && left > 0 {
            return Err(Error::config(format!(
                "{} holds a {} ticket of appid {}, valid for {left} s more; refusing to overwrite it \
                 with appid {appid}'s. One directory serves one account: give each its own \
                 (--out /var/lib/wxtoken/NAME/access_token.json, as the wxtoken@NAME units do)",
                path.display(),
                t.ticket_type,
                t.appid
            )));
        }
        return Ok(Some(format!(
            "the file holds an expired ticket of appid {}",
            t.appid
        )));
    }
    if let Some(why) = plausible {
        log::warn!("{}: not trusting its ticket: {why}", path.display());
        return Ok(Some("its times cannot be believed".into()));
    }
    Ok((left <= margin as i64).then(|| format!("{left} s left, within the margin of {margin} s")))
}

/// The file to write after a fetch. WeChat may hand out the same ticket again with a fresh-looking
/// `expires_in`; believing it would let readers use a ticket past its real end.
pub fn merge(
    current: Option<&TicketFile>,
    grant: &Grant,
    ty: TicketType,
    appid: &str,
    now: u64,
) -> TicketFile {
    let mut expires_at = now + grant.expires_in;
    if let Some(old) = current.filter(|o| o.ticket == grant.value && o.appid == appid) {
        expires_at = expires_at.min(old.expires_at);
    }
    TicketFile {
        ticket: grant.value.clone(),
        expires_in: grant.expires_in,
        expires_at,
        refreshed_at: now,
        ticket_type: ty.name().to_string(),
        appid: appid.to_string(),
    }
}

/// Fetches one ticket with `token` and writes its file beside the token file. `current` is what
/// that file held (read once by the caller, which decided from it that a fetch is due).
pub fn refresh_one(
    client: &Client,
    ctx: &Context<'_>,
    ty: TicketType,
    token: &str,
    current: Option<&TicketFile>,
    store: &Store,
    deadline: &Deadline,
) -> Result<()> {
    let path = path_for(store.dir(), ty);
    let ctx = Context {
        purpose: Purpose::Ticket,
        ..*ctx
    };
    // Before the fetch: a ticket file that cannot be written costs no quota.
    let pending = Pending::create(&path, store.mode, store.gid)?;
    let grant = client.fetch_grant(&call(ty, ctx.api, token), "ticket", &ctx, deadline)?;
    register_token(&grant.value);
    let now = unix_now();
    let new = merge(current, &grant, ty, ctx.appid, now);
    pending.commit(&new.render())?;
    let left = secs_until(new.expires_at, now);
    if current.is_some_and(|c| c.ticket == new.ticket) {
        info!(
            "{} ticket {} unchanged by WeChat, {left} s left (earliest known expiry kept)",
            ty.name(),
            mask(&new.ticket)
        );
    } else {
        info!(
            "refreshed {} ticket {}, expires in {left} s",
            ty.name(),
            mask(&new.ticket)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> TicketFile {
        crate::store::ticket_file::sample()
    }

    #[test]
    fn another_accounts_live_ticket_is_refused_in_one_tidy_line() {
        let path = Path::new("/var/lib/wxtoken/jsapi_ticket.json");
        let e = needs_fetch(path, Some(&file()), "wxother", 300, 1_000_000).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Config);
        // One tidy line: no run of spaces from a string continuation.
        assert!(!e.message.contains("  "), "{e}");
        assert!(
            e.message.contains("appid wxa") && e.message.contains("wxother"),
            "{e}"
        );
    }
}
