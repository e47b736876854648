//! The words every other module shares: which API, which ticket, what time it is, what a valid
//! token looks like, how a token is named without being shown. Nothing here depends on another
//! module of the crate, so everything can depend on it without import cycles.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{Error, Result};

/// WeChat says to reserve 512 characters; allow twice that, refuse anything longer.
pub const MAX_TOKEN_LEN: usize = 1024;
/// The longest lifetime WeChat grants (token and ticket APIs: 7200 s): anything longer is a lie.
pub const MAX_EXPIRES_IN: u64 = 7_200;
/// How long a token stays usable after a legacy (or WeCom) fetch issued its successor.
pub const OVERLAP: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// POST /cgi-bin/stable_token (normal mode): every caller gets the same token; recommended.
    Stable,
    /// GET /cgi-bin/token: every fetch issues a new token and retires the old one after 5 minutes.
    Legacy,
    /// GET /cgi-bin/gettoken on the WeCom host; --appid is the corpid, the secret the corpsecret.
    Wecom,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Stable => "stable",
            Api::Legacy => "legacy",
            Api::Wecom => "wecom",
        }
    }

    pub fn default_bases(self) -> &'static [&'static str] {
        match self {
            Api::Stable | Api::Legacy => {
                &["https://api.weixin.qq.com", "https://api2.weixin.qq.com"]
            }
            Api::Wecom => &["https://qyapi.weixin.qq.com"],
        }
    }

    /// Does a plain fetch retire the token handed out before it? (Legacy: yes, 5 minutes later.
    /// WeCom: unconfirmed, so wxtoken assumes the worse.) Stable normal mode never does.
    pub fn fetch_retires_previous(self) -> bool {
        self != Api::Stable
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TicketType {
    /// JS-SDK signature ticket (Official Account: getticket?type=jsapi; WeCom: get_jsapi_ticket).
    Jsapi,
    /// Card ticket, Official Accounts only (getticket?type=wx_card).
    #[value(name = "wx_card")]
    WxCard,
    /// WeCom agent JS-SDK ticket (ticket/get?type=agent_config).
    #[value(name = "agent_config")]
    AgentConfig,
}

impl TicketType {
    pub fn name(self) -> &'static str {
        match self {
            TicketType::Jsapi => "jsapi",
            TicketType::WxCard => "wx_card",
            TicketType::AgentConfig => "agent_config",
        }
    }

    pub fn file_name(self) -> String {
        format!("{}_ticket.json", self.name())
    }

    /// Which ticket types exist for which API.
    pub fn check(self, api: Api) -> Result<()> {
        let ok = match self {
            TicketType::Jsapi => true,
            TicketType::WxCard => api != Api::Wecom,
            TicketType::AgentConfig => api == Api::Wecom,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::config(format!(
                "--ticket {} does not exist for --api {}: Official Accounts have jsapi and wx_card, \
                 WeCom has jsapi and agent_config",
                self.name(),
                api.name()
            )))
        }
    }
}

/// Unix seconds from the host clock. Taken once per decision, before any request, so a slow
/// answer can only make a written expiry earlier than the truth, never later.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix milliseconds, for ordering two runs that fall in the same second.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds from `now` until `at`, negative when past. The one place times are subtracted:
/// saturating, so a hostile `expires_at` (10^18, 2^63, u64::MAX) cannot wrap into "fresh".
pub fn secs_until(at: u64, now: u64) -> i64 {
    let d = i128::from(at) - i128::from(now);
    d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// How far a recorded time may lie ahead of the host clock before the record counts as written
/// under another clock.
pub const CLOCK_SLACK: u64 = 120;

/// Why a recorded lifetime cannot be believed under the current clock, or None when it can.
/// Catches a clock that stepped back since the write (times in the future), an expiry further
/// away than the lifetime WeChat announced, and hostile values (10^18, 2^63) that would otherwise
/// read as "fresh forever".
pub fn implausible(
    expires_in: u64,
    expires_at: u64,
    refreshed_at: u64,
    now: u64,
) -> Option<String> {
    let lifetime = secs_until(expires_at, refreshed_at);
    if !(1..=MAX_EXPIRES_IN as i64).contains(&lifetime)
        || !(1..=MAX_EXPIRES_IN).contains(&expires_in)
    {
        return Some(format!(
            "its lifetime (expires_at - refreshed_at = {lifetime} s, expires_in {expires_in} s) is \
             not between 1 s and {MAX_EXPIRES_IN} s: WeChat grants at most {MAX_EXPIRES_IN} s, so \
             a longer one is a lie"
        ));
    }
    let ahead = secs_until(refreshed_at, now);
    if ahead > CLOCK_SLACK as i64 {
        return Some(format!(
            "it was written {ahead} s in the future by this host's clock: the clock stepped back \
             since (or was wrong then)"
        ));
    }
    let left = secs_until(expires_at, now);
    if left > (expires_in + CLOCK_SLACK) as i64 {
        return Some(format!(
            "it claims {left} s left, more than the {expires_in} s WeChat granted: the clock \
             stepped back since it was written"
        ));
    }
    None
}

/// Tokens and tickets end up inside PHP source, shell command lines and URLs: only characters
/// that are inert in all of them are accepted (real tokens use `[A-Za-z0-9_-]`).
pub fn validate_token(token: &str) -> std::result::Result<(), String> {
    if token.is_empty() {
        return Err("it is empty".into());
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(format!(
            "it is {} bytes long (at most {MAX_TOKEN_LEN})",
            token.len()
        ));
    }
    if let Some(c) = token
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.~+/=".contains(*c)))
    {
        return Err(format!("it contains the character {c:?}"));
    }
    Ok(())
}

/// What an appid (or WeCom corpid) may be: the rule `--appid` is checked by, and that the token
/// and ticket files read back must meet (their appid is printed, compared and rendered).
pub fn is_appid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How much of a text from outside a message quotes.
pub const SHOWN_MAX: usize = 200;

/// Text from outside (an errmsg from the network, a parser's complaint quoting a file, a
/// command-line value) as a message may quote it: one line, control characters and line
/// separators escaped, cut after about [`SHOWN_MAX`] bytes. The logger escapes control
/// characters again on output, but messages also reach the run state, `status` and hooks; the
/// fuzz targets found newlines, DEL characters and 60 KB values quoted whole.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for c in text.trim().chars() {
        if out.len() >= SHOWN_MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Everything but RFC 3986's unreserved characters is escaped: a secret or token is a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// Lowercase hex SHA-256: how apps name a token they saw rejected (`hash('sha256', $token)` in
/// PHP) without handing the token itself around.
pub fn digest(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Is `s` a digest as [`digest`] spells it?
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_charset() {
        assert!(validate_token("80_AbC-def_123").is_ok());
        assert!(validate_token("a+b/c=d.e~f").is_ok());
        for bad in ["", "a'b", "a\"b", "a\nb", "a$b", "a b", "a;b", "a\\b", "é"] {
            assert!(validate_token(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_token(&"a".repeat(1024)).is_ok());
        assert!(validate_token(&"a".repeat(1025)).is_err());
    }

    #[test]
    fn encodes_reserved_characters() {
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn time_differences_saturate() {
        assert_eq!(secs_until(10, 4), 6);
        assert_eq!(secs_until(4, 10), -6);
        assert_eq!(secs_until(u64::MAX, 0), i64::MAX);
        assert_eq!(secs_until(1 << 63, 0), i64::MAX);
        assert_eq!(secs_until(0, u64::MAX), i64::MIN);
    }

    #[test]
    fn implausible_records() {
        let now = 1_000_000;
        // Found by the fuzz target times: broken string continuations left runs of spaces.
        for (expires_in, expires_at, refreshed_at) in [
            (0, now + 10, now),
            (7200, now + 7000, now + 3600),
            (300, now + 7000, now - 10),
        ] {
            let why = implausible(expires_in, expires_at, refreshed_at, now).unwrap();
            assert!(!why.contains("  "), "{why:?}");
        }
        assert_eq!(implausible(7200, now + 7000, now - 200, now), None);
        // A clock 3 h ahead at the write, corrected since.
        assert!(implausible(7200, now + 3 * 3600 + 7000, now + 3 * 3600 - 200, now).is_some());
        assert!(implausible(7200, 1_000_000_000_000_000_000, now, now).is_some());
        assert!(implausible(7200, 1 << 63, now, now).is_some());
        assert!(implausible(7200, u64::MAX, 0, now).is_some());
        assert!(implausible(0, now + 10, now, now).is_some());
        // expires_in smaller than expires_at - now.
        assert!(implausible(300, now + 7000, now - 10, now).is_some());
        // Expired is plausible (it is simply expired).
        assert_eq!(implausible(7200, now - 5, now - 7205, now), None);
    }

    #[test]
    fn outside_text_is_printable_on_one_short_line() {
        assert_eq!(
            printable(" invalid appid rid: 65a1 \n"),
            "invalid appid rid: 65a1"
        );
        // Found by the fuzz target answer: a newline forged a log line, DEL went through raw.
        assert_eq!(
            printable("invalid appid\n[ERROR] forged\u{7f}\u{2028}x"),
            "invalid appid\\n[ERROR] forged\\u{7f}\\u{2028}x"
        );
        let long = printable(&"é".repeat(10_000));
        assert!(
            long.len() <= SHOWN_MAX + 5 && long.ends_with("..."),
            "{long}"
        );
    }

    #[test]
    fn sha256_matches_php_hash() {
        // php -r 'echo hash("sha256", "abc");'
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_digest(&digest("x")));
        assert!(!is_digest("ABC"));
    }
}
