//! A ticket file as a run reads it back (tickets::parse, the parser tickets::read uses), and the
//! decisions made from it: needs_fetch and merge.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wxtoken::api::{MAX_EXPIRES_IN, TicketType, validate_token};
use wxtoken::clock::{CLOCK_SLACK, implausible, secs_until};
use wxtoken::error::Kind;
use wxtoken::tickets::{merge, needs_fetch, parse};
use wxtoken::wechat::Grant;
use wxtoken_fuzz::{assert_tidy, is_appid};

const MARGIN: u64 = 300;
const TYPES: [TicketType; 3] = [
    TicketType::Jsapi,
    TicketType::WxCard,
    TicketType::AgentConfig,
];

fuzz_target!(|bytes: &[u8]| {
    let Some(t) = parse(bytes) else { return };
    assert!(validate_token(&t.ticket).is_ok());
    assert!(is_appid(&t.appid), "appid {:?} accepted", t.appid);
    let Some(ty) = TYPES.into_iter().find(|ty| ty.name() == t.ticket_type) else {
        panic!("type {:?} accepted", t.ticket_type);
    };
    let v: serde_json::Value = serde_json::from_slice(&t.render()).expect("rendered JSON parses");
    assert_eq!(v["expire_time"], v["expires_at"]);
    assert_eq!(parse(&t.render()), Some(t.clone()));

    let path = Path::new("/var/lib/wxtoken").join(ty.file_name());
    for now in [
        0,
        t.refreshed_at,
        t.expires_at,
        t.expires_at.saturating_sub(MARGIN),
        1_800_000_000,
        u64::MAX,
    ] {
        let plausible = implausible(t.expires_in, t.expires_at, t.refreshed_at, now).is_none();
        let left = secs_until(t.expires_at, now);
        for appid in [t.appid.as_str(), "wxother"] {
            match needs_fetch(&path, Some(&t), appid, MARGIN, now) {
                // Kept: this account's, believable, and more than the margin left.
                Ok(None) => {
                    assert_eq!(appid, t.appid);
                    assert!(plausible && left > MARGIN as i64);
                    assert!(left <= (MAX_EXPIRES_IN + CLOCK_SLACK) as i64);
                }
                Ok(Some(why)) => assert_tidy(&why),
                // Refused: another account's live ticket.
                Err(e) => {
                    assert!(appid != t.appid && plausible && left > 0, "{e:?}");
                    assert_eq!(e.kind, Kind::Config);
                    assert_tidy(&e.message);
                }
            }
        }
    }

    // WeChat handing out the same ticket again never pushes a known expiry later.
    let now = 1_800_000_000;
    let grant = Grant {
        value: t.ticket.clone(),
        expires_in: 7200,
        base: String::new(),
    };
    let merged = merge(Some(&t), &grant, ty, &t.appid, now);
    assert!(merged.expires_at <= t.expires_at && merged.expires_at <= now + 7200);
    let v: serde_json::Value =
        serde_json::from_slice(&merged.render()).expect("rendered JSON parses");
    assert_eq!(v["expire_time"], v["expires_at"]);
    assert_eq!(parse(&merged.render()), Some(merged));
});
