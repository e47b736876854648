//! WeChat's APIs as wxtoken serves them: which API, which ticket, what a valid token looks like.

use crate::error::{Error, Result};

/// WeChat says to reserve 512 characters; allow twice that, refuse anything longer.
pub const MAX_TOKEN_LEN: usize = 1024;
/// The longest lifetime WeChat grants (token and ticket APIs: 7200 s): anything longer is a lie.
pub const MAX_EXPIRES_IN: u64 = 7_200;
/// How long a token stays usable after a legacy (or WeCom) fetch issued its successor.
pub const OVERLAP: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// POST /cgi-bin/stable_token (normal mode): every caller gets the same token; recommended.
    Stable,
    /// GET /cgi-bin/token: every fetch issues a new token and retires the old one after 5 minutes.
    Legacy,
    /// GET /cgi-bin/gettoken on the WeCom host; --appid is the corpid, the secret the corpsecret.
    Wecom,
}

impl Api {
    pub const ALL: [Api; 3] = [Api::Stable, Api::Legacy, Api::Wecom];

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketType {
    /// JS-SDK signature ticket (Official Account: getticket?type=jsapi; WeCom: get_jsapi_ticket).
    Jsapi,
    /// Card ticket, Official Accounts only (getticket?type=wx_card).
    WxCard,
    /// WeCom agent JS-SDK ticket (ticket/get?type=agent_config).
    AgentConfig,
}

impl TicketType {
    pub const ALL: [TicketType; 3] = [
        TicketType::Jsapi,
        TicketType::WxCard,
        TicketType::AgentConfig,
    ];

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
