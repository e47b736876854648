//! A JS-SDK ticket file: its format, its path, and the one parser that reads it back.

use std::path::{Path, PathBuf};

use log::warn;
use serde::{Deserialize, Serialize};

use crate::api::{TicketType, is_appid, validate_token};
use crate::store::atomic::{Found, read_capped};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TicketFile {
    pub ticket: String,
    /// Lifetime WeChat announced at the last fetch.
    pub expires_in: u64,
    /// Unix seconds; for a ticket WeChat handed out again unchanged, the earliest expiry known.
    /// Written again as `expire_time`, the name JS-SDK sample code checks (as in the token file).
    pub expires_at: u64,
    pub refreshed_at: u64,
    #[serde(rename = "type")]
    pub ticket_type: String,
    pub appid: String,
}

/// The file as written: `expire_time` derived from `expires_at`, never stored apart from it.
#[derive(Serialize)]
struct Rendered<'a> {
    ticket: &'a str,
    expires_in: u64,
    expires_at: u64,
    expire_time: u64,
    refreshed_at: u64,
    #[serde(rename = "type")]
    ticket_type: &'a str,
    appid: &'a str,
}

impl TicketFile {
    fn rendered(&self) -> Rendered<'_> {
        Rendered {
            ticket: &self.ticket,
            expires_in: self.expires_in,
            expires_at: self.expires_at,
            expire_time: self.expires_at,
            refreshed_at: self.refreshed_at,
            ticket_type: &self.ticket_type,
            appid: &self.appid,
        }
    }

    /// One line, as the fleet stores it in Redis.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.rendered()).expect("plain struct serializes")
    }

    pub fn render(&self) -> Vec<u8> {
        let mut s =
            serde_json::to_string_pretty(&self.rendered()).expect("plain struct serializes");
        s.push('\n');
        s.into_bytes()
    }
}

pub fn path_for(dir: &Path, ty: TicketType) -> PathBuf {
    dir.join(ty.file_name())
}

pub fn read(path: &Path) -> Option<TicketFile> {
    let bytes = match read_capped(path) {
        Ok(Found::Bytes(b)) => b,
        Ok(Found::Missing) => return None,
        Ok(Found::TooLarge(why)) => {
            warn!("{why}; replacing it");
            return None;
        }
        // A special file: refused (73) when the run prepares to write, before any fetch.
        Err(e) => {
            warn!("{e}");
            return None;
        }
    };
    let parsed = parse(&bytes);
    if parsed.is_none() {
        warn!(
            "{} is not a wxtoken ticket file; replacing it",
            path.display()
        );
    }
    parsed
}

/// A ticket file's content as wxtoken wrote it, or None. The one parser of ticket files (the
/// fuzz target `ticket_file` checks its invariants).
/// Its appid and type must be ones wxtoken writes: both are printed, in errors among others.
pub fn parse(bytes: &[u8]) -> Option<TicketFile> {
    let t = serde_json::from_slice::<TicketFile>(bytes).ok()?;
    let known_type = TicketType::ALL.iter().any(|ty| ty.name() == t.ticket_type);
    (validate_token(&t.ticket).is_ok() && is_appid(&t.appid) && known_type).then_some(t)
}

/// A ticket file as wxtoken writes it, for the tests of the modules that read one.
#[cfg(test)]
pub(crate) fn sample() -> TicketFile {
    TicketFile {
        ticket: "bxLdik-RX".into(),
        expires_in: 7200,
        expires_at: 1_007_000,
        refreshed_at: 999_800,
        ticket_type: "jsapi".into(),
        appid: "wxa".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> TicketFile {
        sample()
    }

    #[test]
    fn only_what_wxtoken_writes_is_read_back() {
        assert_eq!(parse(&file().render()), Some(file()));
        // The appid and type are printed in errors: only what wxtoken writes is read back.
        for (appid, ty) in [
            ("wx\nx", "jsapi"),
            ("wx'x", "jsapi"),
            ("wxa", "foo"),
            ("wxa", ""),
        ] {
            let t = TicketFile {
                appid: appid.into(),
                ticket_type: ty.into(),
                ..file()
            };
            assert_eq!(parse(&t.render()), None, "{appid:?} {ty:?}");
        }
    }
}
