//! The checked configuration a run works from, and the checks each setting needs.
//!
//! Everything an admin can get wrong is found here, before the lock is taken or WeChat is called, and reported as a config error (78).

pub mod fleet;
pub mod hooks;
pub mod validate;

use std::fs::{self, Metadata};
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::debug;
use ureq::Proxy;
use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem};

use crate::api::{Api, TicketType, is_appid};
use crate::cli::RefreshArgs;
use crate::config::hooks::Hook;
pub use crate::config::validate::{Checked, Finding, Problems, validate};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::text::printable;

/// The secret file systemd's `LoadCredential=wxtoken-secret:...` provides.
pub const CREDENTIAL_NAME: &str = "wxtoken-secret";
const MAX_SECRET_LEN: u64 = 4096;
/// Debian's whole system bundle is ~220 KiB; a CA file is a few certificates.
const MAX_CA_FILE_LEN: u64 = 4 * 1024 * 1024;

/// A checked base URL: `scheme://host[:port]`, nothing else, and the proxy that reaches it.
#[derive(Debug, Clone)]
pub struct Base {
    /// Normalised, without a trailing slash: `https://api.weixin.qq.com`.
    pub url: String,
    pub https: bool,
    /// The host as the URL names it, IPv6 without brackets.
    pub host: String,
    /// Chosen from the environment as curl would (see [`choose_proxy`]); None: direct.
    pub proxy: Option<Proxy>,
}

pub struct Config {
    pub appid: String,
    pub secret: String,
    /// Where the secret came from, for messages (never the secret itself).
    pub secret_source: String,
    pub api: Api,
    pub bases: Vec<Base>,
    pub margin: u64,
    pub force: bool,
    pub force_new: bool,
    /// Probe the token when the last probe is older than this; 0 = only on reports.
    pub probe_every: u64,
    pub timeout: Duration,
    pub max_time: Duration,
    pub retries: u32,
    /// The certificates of `--ca-file`, read and checked here so that a bad file fails every run,
    /// not only the one that fetches. The system's store is loaded only when a request is made.
    pub ca_certs: Vec<Certificate<'static>>,
    pub store: Store,
    pub tickets: Vec<TicketType>,
    pub hooks: Vec<Hook>,
    pub metrics: Option<std::path::PathBuf>,
    /// Fleet mode (--redis): None for a host on its own.
    pub fleet: Option<crate::config::fleet::FleetConfig>,
}

impl Config {
    /// The checked configuration, or every problem found (not only the first), each with its item.
    pub fn from_args(args: &RefreshArgs) -> std::result::Result<Config, Problems> {
        let checked = validate(args);
        match checked.config {
            Some(config) => Ok(config),
            None => Err(checked.problems()),
        }
    }
}

pub fn check_appid(appid: Option<&str>, api: Api) -> Result<String> {
    let what = if api == Api::Wecom { "corpid" } else { "appid" };
    let appid = appid.map(str::trim).unwrap_or("");
    if appid.is_empty() {
        return Err(Error::config(format!(
            "no {what}: set --appid or WXTOKEN_APPID (in /etc/wxtoken/wxtoken.conf for the systemd unit)"
        )));
    }
    if !is_appid(appid) {
        return Err(Error::config(format!(
            "the {what} {appid:?} is not valid: expected letters and digits such as wx1234567890abcdef"
        )));
    }
    Ok(appid.to_string())
}

/// Where the secret is read from: `--secret-file`, else systemd's credential when it exists
/// (true: from `$CREDENTIALS_DIRECTORY`).
pub fn secret_path(explicit: Option<&Path>) -> Result<(PathBuf, bool)> {
    match explicit {
        Some(p) => Ok((p.to_path_buf(), false)),
        None => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) if Path::new(&dir).join(CREDENTIAL_NAME).exists() => {
                Ok((Path::new(&dir).join(CREDENTIAL_NAME), true))
            }
            _ => Err(Error::config(format!(
                "no secret: give --secret-file / WXTOKEN_SECRET_FILE, or run under systemd with \
                 LoadCredential={CREDENTIAL_NAME}:/etc/wxtoken/secret (the secret is never taken from \
                 the command line or the environment)"
            ))),
        },
    }
}

/// A credential file (the AppSecret, the Redis password): one word, not readable by "other",
/// registered with the logger so that it never appears in a message. `what` names it in errors.
pub fn read_credential(path: &Path, what: &str) -> Result<String> {
    let shown = path.display().to_string();
    let (meta, raw) = read_small_file(path, MAX_SECRET_LEN)
        .map_err(|why| Error::config(format!("the {what} file {shown} {why}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(Error::config(format!(
            "the {what} file {shown} is readable by other users (mode {mode:04o}); refusing to use it. \
             Fix: chmod o-rwx {shown}   (0600 or 0400 is typical)"
        )));
    }
    let raw = String::from_utf8(raw).map_err(|_| {
        Error::config(format!(
            "the {what} file {shown} is not UTF-8 text; it should hold only the {what}"
        ))
    })?;
    // Windows editors (Notepad) start UTF-8 files with a byte order mark; it is not part of
    // the secret, and sent along it makes WeChat answer "wrong secret".
    let raw = match raw.strip_prefix('\u{feff}') {
        Some(rest) => {
            debug!("the {what} file {shown} starts with a UTF-8 byte order mark; ignoring it");
            rest
        }
        None => raw.as_str(),
    };
    let secret = raw.trim();
    if secret.is_empty() {
        return Err(Error::config(format!("the {what} file {shown} is empty")));
    }
    if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::config(format!(
            "the {what} file {shown} holds more than one word; it should hold only the {what}"
        )));
    }
    crate::logging::register_secret(secret);
    Ok(secret.to_string())
}

/// Reads a small regular file, never blocking: a FIFO or device swapped in for it is refused at
/// once (O_NONBLOCK makes the open of a FIFO without a writer return; fstat then tells) instead
/// of holding the run past --max-time. Symlinks are followed: admins and systemd credentials use
/// them. The error completes "the ... file PATH ...".
fn read_small_file(path: &Path, cap: u64) -> std::result::Result<(Metadata, Vec<u8>), String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot be read: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let mut data = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if data.len() as u64 > cap {
        return Err(format!("is larger than {cap} bytes"));
    }
    Ok((meta, data))
}

/// The certificates of `--ca-file`. Read here, once, so that a missing or empty file fails the
/// run that meets it, not a run two hours later when the token is due.
pub fn load_ca_file(path: &Path) -> Result<(Vec<Certificate<'static>>, Vec<u8>)> {
    let shown = path.display();
    let (_, pem) = read_small_file(path, MAX_CA_FILE_LEN)
        .map_err(|why| Error::config(format!("the CA file {shown} (--ca-file) {why}")))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::config(format!(
            "the CA file {shown} (--ca-file) holds no PEM certificate (-----BEGIN CERTIFICATE-----); \
             give the CA certificate of the TLS-inspecting proxy, or drop --ca-file"
        )));
    }
    debug!("{} certificate(s) from the CA file {shown}", certs.len());
    Ok((certs, pem))
}

/// Checks one `--api-base` with a real URI parser. Refused: userinfo (`http://127.0.0.1:1@evil`
/// names the host after the `@`), a path, query or fragment (the API paths are appended), schemes
/// other than https, and plain http to anything but a loopback host (the secret travels in the
/// request). The proxy is chosen later, by [`validate`].
pub fn parse_base(s: &str) -> Result<Base> {
    let s = s.trim();
    let bad = |why: &str| {
        Error::config(format!(
            "--api-base {}: {why}; expected a base URL like https://api.weixin.qq.com",
            printable(&format!("{s:?}"))
        ))
    };
    // The parser drops a fragment silently; a '?' with nothing after it leaves no query.
    if s.contains('#') {
        return Err(bad("a fragment (#...) is not allowed"));
    }
    if s.contains('?') {
        return Err(bad("a query (?...) is not allowed"));
    }
    let uri: Uri = s
        .parse()
        .map_err(|e| bad(&format!("not a valid URL ({e})")))?;
    let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => return Err(bad(&format!("the scheme {other}:// is not supported"))),
        None => return Err(bad("it must start with https://")),
    };
    let authority = uri.authority().ok_or_else(|| bad("it names no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad(
            "user information (user@ or user:password@) is not allowed: the request would go to \
             the host after the @",
        ));
    }
    let host = authority.host();
    // Without userinfo the authority is the host, then ":port" or nothing. (The parser's own
    // port() is None for an out-of-range port, which would then be passed on as written.)
    let port = &authority.as_str()[host.len()..];
    if !port.is_empty() {
        let digits = port
            .strip_prefix(':')
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()));
        match digits.and_then(|p| p.parse::<u16>().ok()) {
            Some(p) if p != 0 => {}
            _ => return Err(bad("the port is not a number from 1 to 65535")),
        }
    }
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
        Some(_) => return Err(bad("the host is not a valid IPv6 address")),
        None if is_dns_name(host) || host.parse::<std::net::Ipv4Addr>().is_ok() => host,
        None => return Err(bad("the host is not a valid host name or IP address")),
    };
    if !matches!(uri.path(), "" | "/") {
        return Err(bad(
            "a path is not allowed (wxtoken appends /cgi-bin/... itself)",
        ));
    }
    if !https && !is_loopback_host(host) {
        return Err(bad(
            "plain http would send the secret in clear text; only loopback test servers \
             (127.0.0.0/8, [::1], localhost) may use http://",
        ));
    }
    Ok(Base {
        url: format!(
            "{}://{}",
            if https { "https" } else { "http" },
            authority.as_str()
        ),
        https,
        host: host.to_string(),
        proxy: None,
    })
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The base URLs as given (`--api-base`), else the API's defaults.
pub fn base_list(given: &[String], api: Api) -> Vec<&str> {
    let given: Vec<&str> = given
        .iter()
        .map(|b| b.trim())
        .filter(|b| !b.is_empty())
        .collect();
    if given.is_empty() {
        api.default_bases().to_vec()
    } else {
        given
    }
}

/// The proxy curl would use for `base`: nothing when NO_PROXY / no_proxy matches the host;
/// else for https `https_proxy`, then `HTTPS_PROXY`; for http only `http_proxy` (curl ignores
/// `HTTP_PROXY`, which a web server may set from a request's `Proxy:` header); then `all_proxy`,
/// then `ALL_PROXY`. The first variable that is set decides, and set but empty means direct.
/// ureq's own choice (ALL_PROXY first, HTTP_PROXY for https too) is not used.
pub fn choose_proxy(base: &Base, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Proxy>> {
    Ok(proxy_choice(base, env)?.map(|(_, proxy)| proxy))
}

/// [`choose_proxy`]'s choice and the variable it came from.
pub fn proxy_choice(
    base: &Base,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(&'static str, Proxy)>> {
    if let Some(list) = env("no_proxy").or_else(|| env("NO_PROXY"))
        && no_proxy_matches(&list, &base.host)
    {
        debug!("{}: direct, NO_PROXY matches", base.url);
        return Ok(None);
    }
    let names: &[&str] = if base.https {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "all_proxy", "ALL_PROXY"]
    };
    let Some((name, value)) = names
        .iter()
        .find_map(|&n| env(n).map(|v| (n, v.trim().to_string())))
    else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    let proxy = parse_proxy(name, &value)?;
    if let Some(password) = proxy.password() {
        crate::logging::register_secret(password);
    }
    debug!(
        "{}: through the proxy {}:{} (from {name})",
        base.url,
        proxy.host(),
        proxy.port()
    );
    Ok(Some((name, proxy)))
}

/// An HTTP CONNECT proxy URL as curl reads it (no scheme means http://). The message never
/// repeats a proxy password.
fn parse_proxy(name: &str, value: &str) -> Result<Proxy> {
    let url = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let shown = match url.rsplit_once('@') {
        Some((head, host)) => format!("{}://…@{host}", head.split("://").next().unwrap_or("")),
        None => url.clone(),
    };
    let bad = |why: &str| {
        Error::config(format!(
            "the proxy {name}={shown} {why}. Give an HTTP proxy like http://proxy.example:3128, \
             or unset {name}"
        ))
    };
    let uri: Uri = url.parse().map_err(|_| bad("is not a valid URL"))?;
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        Some(s) if s.starts_with("socks") => {
            return Err(bad(
                "is a SOCKS proxy; wxtoken speaks only to HTTP proxies (CONNECT)",
            ));
        }
        _ => return Err(bad("has a scheme other than http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("names no host"));
    }
    Proxy::new(&url).map_err(|e| bad(&format!("is refused ({e})")))
}

/// curl's NO_PROXY rules: `*` alone matches everything; otherwise a comma-separated list where a
/// name matches itself and its subdomains (a leading or trailing dot is ignored), and an IP
/// address, optionally with /bits, matches the hosts given as IP addresses in that range.
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let ip = host.parse::<IpAddr>().ok();
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    list.split(',')
        .map(|t| t.trim_matches([' ', '\t']))
        .filter(|t| !t.is_empty())
        .any(|token| match ip {
            Some(ip) => ip_in(ip, token),
            None => {
                let t = token.strip_suffix('.').unwrap_or(token);
                let t = t.strip_prefix('.').unwrap_or(t).to_ascii_lowercase();
                !t.is_empty()
                    && (name == t
                        || name
                            .strip_suffix(&t)
                            .is_some_and(|head| head.ends_with('.')))
            }
        })
}

fn ip_in(ip: IpAddr, token: &str) -> bool {
    let (net, bits) = match token.split_once('/') {
        Some((n, b)) => match b.parse::<u32>() {
            Ok(b) => (n, Some(b)),
            Err(_) => return false,
        },
        None => (token, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width);
    if bits > width {
        return false;
    }
    let shift = width - bits;
    shift >= 128 || (a >> shift) == (b >> shift)
}

/// A group name (any NSS source: files, LDAP, sssd), or a number.
pub fn resolve_group(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    crate::accounts::group_id(group).ok_or_else(|| {
        Error::config(format!(
            "--group {group}: no such group (give a group name or number)"
        ))
    })
}

/// fchown to a group needs root (CAP_CHOWN) or membership; found here, not at the first refresh
/// two hours from now, after every retry failed the same way.
pub fn check_group_usable(group: &str, gid: u32) -> Result<()> {
    // SAFETY: these calls only read the process's credentials.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if group_usable(gid, euid, egid, &supplementary_groups()) {
        return Ok(());
    }
    let user = user_name(euid).unwrap_or_else(|| euid.to_string());
    Err(Error::config(format!(
        "--group {group}: user {user} is not a member of group {group} (gid {gid}), so it cannot \
         give the files that group. Fix: for the systemd unit, a drop-in (systemctl edit \
         wxtoken.service) with SupplementaryGroups={group}; by hand: usermod -aG {group} {user}, \
         then log in again"
    )))
}

fn group_usable(gid: u32, euid: u32, egid: u32, groups: &[u32]) -> bool {
    euid == 0 || gid == egid || groups.contains(&gid)
}

fn supplementary_groups() -> Vec<u32> {
    // SAFETY: getgroups writes at most `n` entries into a buffer of that many.
    unsafe {
        let n = libc::getgroups(0, std::ptr::null_mut());
        if n <= 0 {
            return Vec::new();
        }
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let got = libc::getgroups(n, groups.as_mut_ptr());
        groups.truncate(got.max(0) as usize);
        groups
    }
}

pub fn user_name(uid: u32) -> Option<String> {
    crate::accounts::user_name(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_base_urls_are_refused() {
        // A hostile value is quoted short and escaped, never whole.
        let long = format!("https://{}", "\u{1}".repeat(2000));
        let e = parse_base(&long).unwrap_err();
        assert!(e.message.len() < 500, "{} bytes", e.message.len());
        assert!(
            e.message.contains("\\u{1}") && e.message.contains("..."),
            "{e}"
        );
        for (url, why) in [
            ("http://127.0.0.1:1@example.invalid", "user information"),
            ("https://user:pw@api.weixin.qq.com", "user information"),
            ("http://user@127.0.0.1:8808", "user information"),
            ("http://127.0.0.1.evil.example", "plain http"),
            ("http://localhost.evil", "plain http"),
            ("http://127.0.0.1.nip.io:80", "plain http"),
            ("http://10.0.0.1", "plain http"),
            ("http://[::ffff:127.0.0.1]", "plain http"),
            ("http://api.weixin.qq.com", "plain http"),
            ("http://0x7f.0.0.1", "plain http"),
            ("http://127.1", "plain http"),
            ("https://api.weixin.qq.com/cgi-bin", "a path"),
            ("http://127.0.0.1:8808/x", "a path"),
            ("https://api.weixin.qq.com//", "a path"),
            ("https://api.weixin.qq.com?x=1", "a query"),
            ("https://api.weixin.qq.com/?", "a query"),
            ("https://api.weixin.qq.com#frag", "a fragment"),
            ("ftp://api.weixin.qq.com", "scheme"),
            ("file:///etc/passwd", ""),
            ("javascript:alert(1)", ""),
            ("api.weixin.qq.com", ""),
            ("https://", ""),
            ("https://:443", ""),
            ("https://api.weixin.qq.com:", "port"),
            ("https://api.weixin.qq.com:0", "port"),
            ("https://api.weixin.qq.com:99999", "port"),
            ("https://api.weixin.qq.com:+443", "port"),
            ("http://127.0.0.1:08808x", ""),
            ("https://api weixin.qq.com", ""),
            ("https://api.weixin.qq.com\\@evil", ""),
            ("https://%61pi.weixin.qq.com", ""),
            ("https://api.weixin.qq.com%2f@evil", ""),
            ("https://api_x.weixin.qq.com", "host"),
            ("https://[::1", ""),
            ("https://a..b", "host"),
        ] {
            let e = parse_base(url)
                .err()
                .unwrap_or_else(|| panic!("{url} was accepted"));
            assert_eq!(e.kind, crate::error::Kind::Config, "{url}");
            assert!(e.message.contains(why), "{url}: {}", e.message);
        }
    }

    #[test]
    fn good_base_urls_are_normalised() {
        for (url, want, https, host) in [
            (
                "https://api.weixin.qq.com",
                "https://api.weixin.qq.com",
                true,
                "api.weixin.qq.com",
            ),
            (
                "https://api2.weixin.qq.com/",
                "https://api2.weixin.qq.com",
                true,
                "api2.weixin.qq.com",
            ),
            (
                "HTTPS://sh.api.weixin.qq.com:443",
                "https://sh.api.weixin.qq.com:443",
                true,
                "sh.api.weixin.qq.com",
            ),
            (
                "http://127.0.0.1:8808",
                "http://127.0.0.1:8808",
                false,
                "127.0.0.1",
            ),
            (
                "http://127.8.9.10:1/",
                "http://127.8.9.10:1",
                false,
                "127.8.9.10",
            ),
            ("http://[::1]:8808", "http://[::1]:8808", false, "::1"),
            (
                "http://localhost:8808",
                "http://localhost:8808",
                false,
                "localhost",
            ),
            (
                "https://203.0.113.7",
                "https://203.0.113.7",
                true,
                "203.0.113.7",
            ),
        ] {
            let b = parse_base(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (b.url.as_str(), b.https, b.host.as_str()),
                (want, https, host)
            );
        }
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn proxy_for(url: &str, vars: &[(&str, &str)]) -> Option<String> {
        let base = parse_base(url).unwrap();
        choose_proxy(&base, &env_of(vars))
            .unwrap()
            .map(|p| format!("{}:{}", p.host(), p.port()))
    }

    #[test]
    fn proxies_are_chosen_as_curl_does() {
        let https = "https://api.weixin.qq.com";
        let http = "http://127.0.0.1:8808";
        assert_eq!(proxy_for(https, &[]), None);
        assert_eq!(
            proxy_for(https, &[("HTTPS_PROXY", "http://p:1")]).as_deref(),
            Some("p:1")
        );
        // Lowercase first, as curl.
        assert_eq!(
            proxy_for(
                https,
                &[("HTTPS_PROXY", "http://up:1"), ("https_proxy", "low:2")]
            )
            .as_deref(),
            Some("low:2")
        );
        // The scheme's own variable beats ALL_PROXY (ureq's default order is the reverse).
        assert_eq!(
            proxy_for(
                https,
                &[("ALL_PROXY", "http://all:1"), ("HTTPS_PROXY", "http://s:2")]
            )
            .as_deref(),
            Some("s:2")
        );
        assert_eq!(
            proxy_for(https, &[("ALL_PROXY", "http://all:1")]).as_deref(),
            Some("all:1")
        );
        assert_eq!(
            proxy_for(
                https,
                &[("all_proxy", "http://a:1"), ("ALL_PROXY", "http://b:1")]
            )
            .as_deref(),
            Some("a:1")
        );
        // HTTP_PROXY / http_proxy are never used for https.
        assert_eq!(
            proxy_for(
                https,
                &[("HTTP_PROXY", "http://h:1"), ("http_proxy", "h:2")]
            ),
            None
        );
        // Set but empty: direct, no fallback to ALL_PROXY.
        assert_eq!(
            proxy_for(https, &[("https_proxy", ""), ("ALL_PROXY", "http://a:1")]),
            None
        );
        // http: lowercase http_proxy only.
        assert_eq!(proxy_for(http, &[("HTTP_PROXY", "http://h:1")]), None);
        assert_eq!(proxy_for(http, &[("HTTPS_PROXY", "http://h:1")]), None);
        assert_eq!(
            proxy_for(http, &[("http_proxy", "http://h:1")]).as_deref(),
            Some("h:1")
        );
        assert_eq!(
            proxy_for(http, &[("ALL_PROXY", "http://a:3")]).as_deref(),
            Some("a:3")
        );
        // No scheme means http://, default port 80.
        assert_eq!(
            proxy_for(https, &[("HTTPS_PROXY", "proxy.example")]).as_deref(),
            Some("proxy.example:80")
        );
        // NO_PROXY bypasses; no_proxy first.
        let p = ("HTTPS_PROXY", "http://p:1");
        assert_eq!(proxy_for(https, &[p, ("NO_PROXY", "weixin.qq.com")]), None);
        assert_eq!(proxy_for(https, &[p, ("no_proxy", "*")]), None);
        assert_eq!(
            proxy_for(
                https,
                &[p, ("no_proxy", "other.example"), ("NO_PROXY", "*")]
            )
            .as_deref(),
            Some("p:1")
        );
    }

    #[test]
    fn refused_proxy_urls() {
        let base = parse_base("https://api.weixin.qq.com").unwrap();
        for (value, why) in [
            ("socks5://127.0.0.1:1080", "SOCKS"),
            ("socks5h://u:secretpw@127.0.0.1:1080", "SOCKS"),
            ("ftp://127.0.0.1:21", "scheme"),
            ("http://", "valid URL"),
            ("http://[::1", "valid URL"),
        ] {
            let e = choose_proxy(&base, &env_of(&[("HTTPS_PROXY", value)])).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Config);
            assert!(e.message.contains(why), "{value}: {}", e.message);
            assert!(e.message.contains("HTTPS_PROXY"), "{}", e.message);
            assert!(!e.message.contains("secretpw"), "{}", e.message);
        }
    }

    #[test]
    fn no_proxy_lists() {
        let m = no_proxy_matches;
        assert!(m("*", "api.weixin.qq.com"));
        assert!(m(" * ", "127.0.0.1"));
        assert!(!m("a.example,*", "api.weixin.qq.com"), "curl: * only alone");
        assert!(m("weixin.qq.com", "api.weixin.qq.com"));
        assert!(m(".weixin.qq.com", "api.weixin.qq.com"));
        assert!(m("weixin.qq.com.", "weixin.qq.com"));
        assert!(m("WEIXIN.qq.com", "api.weixin.qq.com"));
        assert!(m("x.example, api.weixin.qq.com ,y", "api.weixin.qq.com"));
        assert!(!m("xin.qq.com", "api.weixin.qq.com"));
        assert!(!m("api.weixin.qq.com", "weixin.qq.com"));
        assert!(!m("", "api.weixin.qq.com"));
        assert!(m("127.0.0.1", "127.0.0.1"));
        assert!(m("127.0.0.0/8", "127.5.6.7"));
        assert!(!m("127.0.0.0/8", "128.0.0.1"));
        assert!(!m("0.0.1", "127.0.0.1"), "no suffix match for addresses");
        assert!(m("::1", "::1"));
        assert!(m("fe80::/10", "fe80::1"));
        assert!(!m("localhost", "127.0.0.1"), "names are not resolved");
    }

    #[test]
    fn group_membership() {
        assert!(group_usable(33, 0, 0, &[]), "root may use any group");
        assert!(group_usable(33, 1000, 33, &[]));
        assert!(group_usable(33, 1000, 1000, &[4, 33]));
        assert!(!group_usable(33, 1000, 1000, &[4, 24]));
    }

    #[test]
    fn small_file_reads_refuse_fifos_and_big_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer forever.
        let e = read_small_file(&fifo, 4096).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        fs::write(&big, vec![b'a'; 4097]).unwrap();
        assert!(
            read_small_file(&big, 4096)
                .unwrap_err()
                .contains("larger than 4096")
        );
        fs::write(&big, vec![b'a'; 4096]).unwrap();
        assert_eq!(read_small_file(&big, 4096).unwrap().1.len(), 4096);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        assert!(
            read_small_file(&link, 4096).is_ok(),
            "symlinks are followed"
        );
    }

    #[test]
    fn appid_checks() {
        assert!(check_appid(Some("wx1234567890abcdef"), Api::Stable).is_ok());
        assert!(check_appid(None, Api::Stable).is_err());
        assert!(check_appid(Some("wx'; rm"), Api::Stable).is_err());
    }
}
