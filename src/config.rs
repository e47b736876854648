//! Turns the command line into a checked configuration. Everything an admin can get wrong is
//! found here, before the lock is taken or WeChat is called, and reported as a config error (78).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::RefreshArgs;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::vocab::{Api, TicketType};

/// The secret file systemd's `LoadCredential=wxtoken-secret:...` provides.
pub const CREDENTIAL_NAME: &str = "wxtoken-secret";
const MAX_SECRET_LEN: u64 = 4096;

pub struct Config {
    pub appid: String,
    pub secret: String,
    /// Where the secret came from, for messages (never the secret itself).
    pub secret_source: String,
    pub api: Api,
    pub bases: Vec<String>,
    pub margin: u64,
    pub force: bool,
    pub force_new: bool,
    /// Probe the token when the last probe is older than this; 0 = only on reports.
    pub probe_every: u64,
    pub timeout: Duration,
    pub max_time: Duration,
    pub retries: u32,
    pub ca_file: Option<PathBuf>,
    pub store: Store,
    pub tickets: Vec<TicketType>,
    pub metrics: Option<PathBuf>,
}

impl Config {
    pub fn from_args(args: &RefreshArgs) -> Result<Config> {
        let appid = check_appid(args.appid.as_deref(), args.api)?;
        let (secret, secret_source) = load_secret(args.secret_file.as_deref())?;
        let bases = check_bases(&args.api_base, args.api)?;
        let gid = args.group.as_deref().map(resolve_group).transpose()?;
        let store = Store::new(&args.files.outs, args.mode, gid)?;
        let mut tickets: Vec<TicketType> = Vec::new();
        for t in &args.files.tickets {
            t.check(args.api)?;
            if !tickets.contains(t) {
                tickets.push(*t);
            }
        }
        Ok(Config {
            appid,
            secret,
            secret_source,
            api: args.api,
            bases,
            margin: args.files.margin,
            force: args.force,
            force_new: args.force_new,
            probe_every: args.probe_every,
            timeout: Duration::from_secs(args.timeout),
            max_time: Duration::from_secs(args.max_time),
            retries: args.retries,
            ca_file: args.ca_file.clone(),
            store,
            tickets,
            metrics: args.metrics.clone(),
        })
    }
}

fn check_appid(appid: Option<&str>, api: Api) -> Result<String> {
    let what = if api == Api::Wecom { "corpid" } else { "appid" };
    let appid = appid.map(str::trim).unwrap_or("");
    if appid.is_empty() {
        return Err(Error::config(format!(
            "no {what}: set --appid or WXTOKEN_APPID (in /etc/wxtoken/wxtoken.conf for the systemd unit)"
        )));
    }
    if appid.len() > 64
        || !appid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::config(format!(
            "the {what} {appid:?} is not valid: expected letters and digits such as wx1234567890abcdef"
        )));
    }
    Ok(appid.to_string())
}

fn load_secret(explicit: Option<&Path>) -> Result<(String, String)> {
    let mut from_credential = false;
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) if Path::new(&dir).join(CREDENTIAL_NAME).exists() => {
                from_credential = true;
                Path::new(&dir).join(CREDENTIAL_NAME)
            }
            _ => {
                return Err(Error::config(format!(
                    "no secret: give --secret-file / WXTOKEN_SECRET_FILE, or run under systemd with \
                     LoadCredential={CREDENTIAL_NAME}:/etc/wxtoken/secret (the secret is never taken from \
                     the command line or the environment)"
                )));
            }
        },
    };
    let shown = path.display().to_string();
    let meta = fs::metadata(&path)
        .map_err(|e| Error::config(format!("cannot read the secret file {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(Error::config(format!(
            "the secret file {shown} is not a regular file"
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(Error::config(format!(
            "the secret file {shown} is readable by other users (mode {mode:04o}); refusing to use it. \
             Fix: chmod o-rwx {shown}   (0600 or 0400 is typical)"
        )));
    }
    if meta.len() > MAX_SECRET_LEN {
        return Err(Error::config(format!(
            "the secret file {shown} is {} bytes; it should hold only the secret",
            meta.len()
        )));
    }
    let raw = fs::read_to_string(&path)
        .map_err(|e| Error::config(format!("cannot read the secret file {shown}: {e}")))?;
    let secret = raw.trim();
    if secret.is_empty() {
        return Err(Error::config(format!("the secret file {shown} is empty")));
    }
    if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::config(format!(
            "the secret file {shown} holds more than one word; it should hold only the secret"
        )));
    }
    crate::logging::register_secret(secret);
    // systemd's copy under /run/credentials is not what an admin edits: name the source instead.
    let source = if from_credential {
        format!(
            "the file the unit's LoadCredential={CREDENTIAL_NAME}:... names (/etc/wxtoken/secret, or \
             /etc/wxtoken/NAME.secret for wxtoken@NAME)"
        )
    } else {
        shown
    };
    Ok((secret.to_string(), source))
}

fn check_bases(given: &[String], api: Api) -> Result<Vec<String>> {
    let bases: Vec<String> = if given.iter().all(|b| b.trim().is_empty()) {
        api.default_bases().iter().map(|s| s.to_string()).collect()
    } else {
        given
            .iter()
            .map(|b| b.trim())
            .filter(|b| !b.is_empty())
            .map(str::to_string)
            .collect()
    };
    for b in &bases {
        let rest = b
            .strip_prefix("https://")
            .or_else(|| b.strip_prefix("http://"))
            .ok_or_else(|| {
                Error::config(format!(
                    "--api-base {b}: must start with https:// (or http:// for a local test server)"
                ))
            })?;
        if rest.is_empty() || rest.contains(['?', '#', ' ']) {
            return Err(Error::config(format!(
                "--api-base {b}: expected a base URL like https://api.weixin.qq.com"
            )));
        }
        if b.starts_with("http://") && !is_loopback_url(rest) {
            return Err(Error::config(format!(
                "--api-base {b}: plain http would send the secret in clear text; only loopback test servers may use it"
            )));
        }
    }
    Ok(bases)
}

fn is_loopback_url(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A group name from /etc/group, or a number. (NSS-only groups can be given by number.)
fn resolve_group(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let table = fs::read_to_string("/etc/group").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(name, _)| *name == group)
        .and_then(|(_, gid)| gid.parse().ok())
        .ok_or_else(|| {
            Error::config(format!(
                "--group {group}: no such group in /etc/group (give a group name or number)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("127.0.0.1:8808"));
        assert!(is_loopback_url("localhost:1/x"));
        assert!(is_loopback_url("[::1]:80"));
        assert!(!is_loopback_url("api.weixin.qq.com"));
        assert!(!is_loopback_url("10.0.0.1:80"));
    }

    #[test]
    fn appid_checks() {
        assert!(check_appid(Some("wx1234567890abcdef"), Api::Stable).is_ok());
        assert!(check_appid(None, Api::Stable).is_err());
        assert!(check_appid(Some("wx'; rm"), Api::Stable).is_err());
    }
}
