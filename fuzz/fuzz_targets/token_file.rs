//! The token file as a run reads it back: store::parse_token_file, the parser read_token_file
//! (refresh, status, report-stale) uses, then what a run does with what it accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxtoken::api::{Api, MAX_EXPIRES_IN, validate_token};
use wxtoken::clock::{CLOCK_SLACK, implausible, secs_until};
use wxtoken::store::{Format, TokenFile, parse_token_file};
use wxtoken_fuzz::{assert_one_line, assert_tidy, is_appid};

fuzz_target!(|bytes: &[u8]| {
    let t = match parse_token_file(bytes) {
        Ok(t) => t,
        Err(why) => return assert_one_line(&why),
    };
    // Only what wxtoken itself writes is accepted.
    assert!(validate_token(&t.access_token).is_ok());
    assert!(is_appid(&t.appid), "appid {:?} accepted", t.appid);
    assert!(
        [Api::Stable, Api::Legacy, Api::Wecom]
            .iter()
            .any(|a| a.name() == t.api),
        "api {:?} accepted",
        t.api
    );
    let v: serde_json::Value =
        serde_json::from_slice(&Format::Json.render(&t)).expect("rendered JSON parses");
    assert_eq!(v["expire_time"], v["expires_at"]);

    // Rendered again (a run re-renders the state into outputs that are missing), it reads back
    // as itself, and its PHP form is inert: the 11 quoted strings (8 keys, 3 values) and nothing
    // that could end or escape one.
    assert_eq!(parse_token_file(&Format::Json.render(&t)), Ok(t.clone()));
    assert_eq!(Format::Txt.render(&t), t.access_token.as_bytes());
    let php = String::from_utf8(Format::Php.render(&t)).expect("PHP file is UTF-8");
    assert_eq!(php.matches('\'').count(), 22, "{php}");
    assert!(!php.contains('\\'), "{php}");

    for now in nows(&t) {
        check_plausibility(&t, now);
    }
});

/// Clocks around the file's own times, and the extremes.
fn nows(t: &TokenFile) -> [u64; 8] {
    [
        0,
        t.refreshed_at,
        t.refreshed_at.saturating_add(CLOCK_SLACK),
        t.refreshed_at.saturating_add(CLOCK_SLACK + 1),
        t.expires_at,
        t.expires_at.saturating_sub(t.expires_in),
        1_800_000_000,
        u64::MAX,
    ]
}

/// A file a run believes cannot promise more than WeChat granted (plus the clock slack), and
/// stays believable as time passes (it only expires).
fn check_plausibility(t: &TokenFile, now: u64) {
    match implausible(t.expires_in, t.expires_at, t.refreshed_at, now) {
        None => {
            assert!((1..=MAX_EXPIRES_IN).contains(&t.expires_in));
            let lifetime = secs_until(t.expires_at, t.refreshed_at);
            assert!((1..=MAX_EXPIRES_IN as i64).contains(&lifetime));
            assert!(secs_until(t.refreshed_at, now) <= CLOCK_SLACK as i64);
            assert!(secs_until(t.expires_at, now) <= (t.expires_in + CLOCK_SLACK) as i64);
            for later in [now.saturating_add(1), now.saturating_add(86_400), u64::MAX] {
                assert_eq!(
                    implausible(t.expires_in, t.expires_at, t.refreshed_at, later),
                    None,
                    "believable at {now}, not at {later}"
                );
            }
        }
        Some(why) => assert_tidy(&why),
    }
}
