//! The `--redis` settings: URL, password file, the host's role and the account's namespace.

use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::api::{Api, digest};
use crate::cli::RefreshArgs;
use crate::config::validate::Checked;
use crate::error::{Error, Result};
use crate::sdk::Sdk;

/// The Redis password systemd's `LoadCredential=wxtoken-redis-password:...` provides.
pub const PASSWORD_CREDENTIAL: &str = "wxtoken-redis-password";
/// The checked `--redis` settings.
pub struct FleetConfig {
    /// The URL as given (it holds no password), for messages.
    pub shown: String,
    pub(crate) info: ConnectionInfo,
    /// For rediss:// with --ca-file: the system's bundle plus that file (the redis crate takes
    /// roots in place of the system's, wxtoken's --ca-file adds to them).
    pub(crate) tls_roots: Option<Vec<u8>>,
    /// redis+sentinel://: the sentinels to ask for the master (`info` then holds the master's
    /// user, password and database).
    pub(crate) sentinel: Option<SentinelSpec>,
    pub follower: bool,
    pub fallback_fetch: bool,
    pub publish: Vec<Sdk>,
    /// `wxtoken:{APPID}:API` (the braces are Redis's hash tag), plus a fingerprint of the corpsecret for WeCom (one corp, many
    /// apps, each with its own token).
    pub namespace: String,
}

impl FleetConfig {
    /// The `--redis` settings alone, every problem in the error: for a caller that needs only
    /// the fleet (a refresh gets them from [`crate::config::Config::from_args`]).
    pub fn from_args(
        args: &RefreshArgs,
        appid: &str,
        secret: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Option<FleetConfig>> {
        let mut c = Checked::empty();
        check(&mut c, args, appid, secret, ca_pem).ok_or_else(|| c.problems().into())
    }
}

/// Checks the `--redis` settings into `c`, each under its own item: `redis` (the URL),
/// `redis-password`, `follower`, `redis-fallback-fetch`, `publish`. Some(None): no fleet;
/// None: a problem is recorded. `appid` and `secret` make the account's namespace.
pub(super) fn check(
    c: &mut Checked,
    args: &RefreshArgs,
    appid: &str,
    secret: &str,
    ca_pem: Option<&[u8]>,
) -> Option<Option<FleetConfig>> {
    let url = args.redis.as_deref().map(str::trim).unwrap_or("");
    if url.is_empty() {
        let mut ok = true;
        for (set, item, flag) in [
            (args.follower, "follower", "--follower"),
            (
                args.redis_fallback_fetch,
                "redis-fallback-fetch",
                "--redis-fallback-fetch",
            ),
            (!args.publish.is_empty(), "publish", "--publish"),
        ] {
            if set {
                c.fail(
                    item,
                    Error::config(format!(
                        "{flag} needs --redis URL (WXTOKEN_REDIS): it is about the fleet's Redis"
                    )),
                );
                ok = false;
            }
        }
        c.pass(
            "redis",
            "none given: this host fetches on its own, in no fleet",
        );
        return ok.then_some(None);
    }
    let mut ok = true;
    if args.follower && args.redis_fallback_fetch {
        c.fail(
            "follower",
            Error::config(
                "--follower and --redis-fallback-fetch contradict each other: a follower never \
                 fetches from WeChat, not even when Redis is down",
            ),
        );
        ok = false;
    }
    let role = if args.follower {
        "a follower: never calls WeChat, mirrors the fleet's token"
    } else if args.redis_fallback_fetch {
        "fetches when the fleet needs it, and on its own when Redis is unreachable"
    } else {
        "fetches when the fleet needs it, never on its own when Redis is unreachable"
    };
    let parsed = c.take("redis", parse_any(url), |(_, tls, sentinel)| {
        let how = if *tls { "TLS" } else { "plain TCP" };
        let via = match sentinel {
            Some(s) => format!(
                ", the master {} as {} sentinel(s) name it",
                s.master,
                s.nodes.len()
            ),
            None => String::new(),
        };
        format!("{url} ({how}{via}); this host {role}")
    });
    let password = match password_path(args.redis_password_file.as_deref()) {
        Some(p) => c
            .take(
                "redis-password",
                super::read_credential(&p, "Redis password"),
                |_| {
                    format!(
                        "{}: readable by this user, not by others; one word (not shown)",
                        p.display()
                    )
                },
            )
            .map(Some),
        None => {
            c.pass(
                "redis-password",
                "none: Redis is used without AUTH (--redis-password-file, or the unit's \
                 LoadCredential=wxtoken-redis-password:...)",
            );
            Some(None)
        }
    };
    let mut publish = Vec::new();
    for spec in args.publish.iter().filter(|s| !s.trim().is_empty()) {
        let parsed = Sdk::parse(spec, args.api);
        let Some(sdk) = c.take("publish", parsed, |sdk| {
            format!(
                "{spec}: the token also goes where {}'s cache reads it",
                sdk.name()
            )
        }) else {
            ok = false;
            continue;
        };
        if !publish.contains(&sdk) {
            publish.push(sdk);
        }
    }
    let (Some((info, tls, sentinel)), Some(password), true) = (parsed, password, ok) else {
        return None;
    };
    // No CLIENT SETINFO at connect: one round trip (and one timeout) less, and nothing for an
    // older Redis to refuse.
    let mut redis = info.redis_settings().clone().set_skip_set_lib_name();
    if let Some(pw) = password {
        redis = redis.set_password(pw);
    }
    let info = info.set_redis_settings(redis);
    let tls_roots = match (tls, ca_pem) {
        (true, Some(extra)) => {
            let mut pem = crate::trust::system_bundle_pem();
            pem.push(b'\n');
            pem.extend_from_slice(extra);
            Some(pem)
        }
        _ => None,
    };
    // The appid is the keys' hash tag: a Redis Cluster (or a proxy that shards) keeps one
    // account's keys, which one script touches together, in one slot.
    let mut namespace = format!("wxtoken:{{{appid}}}:{}", args.api.name());
    if args.api == Api::Wecom {
        namespace.push(':');
        namespace.push_str(&digest(&format!("wxtoken-redis-namespace:{secret}"))[..16]);
    }
    Some(Some(FleetConfig {
        shown: url.to_string(),
        info,
        tls_roots,
        sentinel,
        follower: args.follower,
        fallback_fetch: args.redis_fallback_fetch,
        publish,
        namespace,
    }))
}

fn password_path(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit.map(Path::to_path_buf).or_else(|| {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
        let p = Path::new(&dir).join(PASSWORD_CREDENTIAL);
        p.exists().then_some(p)
    })
}

/// Where the fleet's Redis is found through Redis Sentinel: the sentinels' addresses and the
/// name of the master they watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelSpec {
    pub nodes: Vec<(String, u16)>,
    pub master: String,
}

/// `redis://[USER@]HOST[:PORT][/DB]` or `rediss://...`. Refused: a password (it would sit in the
/// unit's environment and in `ps`), a query or fragment (`#insecure` would switch certificate
/// checks off), other schemes. Parsed here rather than by the redis crate's URL parser, which
/// brings the `url` crate and its IDNA machinery (60 KB of the binary) for what is a host, a port
/// and a number; IDNA host names are refused (Redis hosts are ASCII).
pub fn parse_url(url: &str) -> Result<(ConnectionInfo, bool)> {
    let (info, tls, sentinel) = parse_any(url)?;
    if sentinel.is_some() {
        return Err(Error::config(
            "--redis: a redis+sentinel:// URL where a plain redis:// one is expected",
        ));
    }
    Ok((info, tls))
}

/// [`parse_url`], and `redis+sentinel://[USER@]HOST[:PORT][,HOST[:PORT]...]/MASTERNAME[/DB]`
/// (`rediss+sentinel://` for TLS to the sentinels and the master; sentinels' port 26379 by
/// default): the ConnectionInfo then holds the master's settings (user, password, database) and
/// the first sentinel's address.
pub fn parse_any(url: &str) -> Result<(ConnectionInfo, bool, Option<SentinelSpec>)> {
    let bad = |why: &str| {
        Error::config(format!(
            "--redis: {why}; expected redis://HOST[:PORT][/DB], rediss://..., or \
             redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/MASTERNAME[/DB] (a user name may come \
             before an @; the password goes in --redis-password-file)"
        ))
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("not a redis:// URL"));
    };
    let (tls, sentinel) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => (false, false),
        "rediss" => (true, false),
        "redis+sentinel" => (false, true),
        "rediss+sentinel" => (true, true),
        _ => {
            let shown = crate::text::printable(scheme);
            return Err(bad(&format!(
                "not a redis:// URL (the scheme {shown}:// is not supported)"
            )));
        }
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hostports) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (Some(user), hostport),
        None => (None, authority),
    };
    if user.is_some_and(|u| u.contains(':')) {
        // Not even the URL in the message: it holds the password.
        return Err(Error::config(
            "--redis holds a password: refusing it (the URL is visible in the environment and to \
             ps). Put the password in a file readable by this user only and name it with \
             --redis-password-file (systemd: LoadCredential=wxtoken-redis-password:/etc/wxtoken/redis-password)",
        ));
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(bad("a query (?...) or fragment (#...) is not allowed"));
    }
    let default_port = if sentinel { 26379 } else { 6379 };
    let mut nodes = Vec::new();
    for hostport in hostports.split(',') {
        nodes.push(host_port(hostport, default_port, &bad)?);
    }
    if !sentinel && nodes.len() > 1 {
        return Err(bad(
            "several hosts are for redis+sentinel:// (the sentinels) only",
        ));
    }
    let (master, db) = if sentinel {
        let (master, db) = path.split_once('/').unwrap_or((path, ""));
        let name_ok = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
        if master.is_empty() || master.len() > 128 || !master.bytes().all(name_ok) {
            return Err(bad(
                "a redis+sentinel:// URL names the master after the sentinels: \
                 /MASTERNAME (letters, digits, - . _)",
            ));
        }
        (Some(master.to_string()), db)
    } else {
        (None, path)
    };
    let db = db.strip_suffix('/').unwrap_or(db);
    let number = db.len() <= 5 && db.bytes().all(|b| b.is_ascii_digit());
    if !db.is_empty() && !number {
        return Err(bad("the path must be a database number such as /0"));
    }
    let mut settings = redis::RedisConnectionInfo::default().set_db(db.parse().unwrap_or(0));
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        // RFC 3986 userinfo: anything else (a space, a control character) must come %-encoded;
        // URL parsers disagree on what they would make of it raw.
        let raw_ok = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b);
        if !user.bytes().all(raw_ok) {
            return Err(bad(
                "the user name holds a character that must be %-encoded (a space or control \
                 character, non-ASCII)",
            ));
        }
        let user = percent_decode_str(user)
            .decode_utf8()
            .map_err(|_| bad("the user name is not valid UTF-8"))?;
        let user = user.into_owned();
        settings = settings.set_username(user);
    }
    let (host, port) = nodes[0].clone();
    let info = node_addr(host, port, tls)
        .into_connection_info()
        .map_err(|e| bad(&format!("not a valid URL ({e})")))?
        .set_redis_settings(settings);
    let spec = master.map(|master| SentinelSpec { nodes, master });
    Ok((info, tls, spec))
}

/// The address of one Redis node or sentinel, with TLS (and its certificate checks) or without.
pub fn node_addr(host: String, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

/// One `HOST[:PORT]` of a --redis URL.
fn host_port(
    hostport: &str,
    default_port: u16,
    bad: &dyn Fn(&str) -> Error,
) -> Result<(String, u16)> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address lacks its closing ]"))?;
        let addr: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| bad("the host in [...] is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after the ]"))?),
        };
        (addr.to_string(), port)
    } else {
        // As given: DNS names are case-blind, and the redis crate passes them on unchanged too.
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("it names no host"));
    }
    let name_ok = |b: u8| b.is_ascii_alphanumeric() || b"-._:".contains(&b);
    if !host.bytes().all(name_ok) {
        return Err(bad(
            "the host must be a DNS name (ASCII letters, digits, - and .) or an IP address",
        ));
    }
    // A name whose last label starts with a digit is an IPv4 address to the resolver (inet_aton:
    // "127.1", "0x7f.1"): only the dotted-quad form is taken, so what is shown is what is dialled.
    let last = host.rsplit('.').next().unwrap_or("");
    let numeric = last.starts_with(|c: char| c.is_ascii_digit()) && !host.contains(':');
    if numeric && host.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(bad(
            "the host is neither a DNS name nor an IPv4 address a.b.c.d",
        ));
    }
    if host == "0.0.0.0" || host == "::" {
        return Err(bad("0.0.0.0 and :: name no host to connect to"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn sentinel_urls() {
        let (info, tls, spec) =
            parse_any("redis+sentinel://wx@10.0.0.1,10.0.0.2:26380,[::1]/mymaster/3").unwrap();
        assert!(!tls);
        assert_eq!(
            spec,
            Some(SentinelSpec {
                nodes: vec![
                    ("10.0.0.1".into(), 26379),
                    ("10.0.0.2".into(), 26380),
                    ("::1".into(), 26379)
                ],
                master: "mymaster".into()
            })
        );
        assert_eq!(info.redis_settings().db(), 3);
        assert_eq!(info.redis_settings().username(), Some("wx"));
        let (_, tls, spec) = parse_any("rediss+sentinel://s.example/m").unwrap();
        assert!(tls);
        assert_eq!(spec.unwrap().nodes, [("s.example".to_string(), 26379)]);
        assert!(parse_any("redis://127.0.0.1").unwrap().2.is_none());
        for (url, why) in [
            ("redis+sentinel://u:hunter2@h/m", "holds a password"),
            ("redis+sentinel://h1,h2", "MASTERNAME"),
            ("redis+sentinel://h1,h2/", "MASTERNAME"),
            ("redis+sentinel://h1/m x", "MASTERNAME"),
            ("redis+sentinel://h1/m/x", "database number"),
            ("redis+sentinel://h1,,h2/m", "no host"),
            ("redis+sentinel://h1:0/m", "port"),
            ("redis://h1,h2/0", "sentinel"),
        ] {
            let e = parse_any(url)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert!(e.message.contains(why), "{url}: {}", e.message);
            assert!(!e.message.contains("hunter2"), "{}", e.message);
        }
    }

    #[test]
    fn urls() {
        assert!(parse_url("redis://127.0.0.1:6379").is_ok());
        assert!(parse_url("redis://wxtoken@10.0.0.5/2").is_ok());
        assert!(parse_url("rediss://redis.example:6380/0").unwrap().1);
        // What the redis crate's own URL parser made of the same URLs.
        let (info, tls) = parse_url("redis://wx%40token@[::1]:7000/12").unwrap();
        assert!(!tls);
        assert_eq!(*info.addr(), ConnectionAddr::Tcp("::1".into(), 7000));
        assert_eq!(info.redis_settings().db(), 12);
        assert_eq!(info.redis_settings().username(), Some("wx@token"));
        let (info, _) = parse_url("REDISS://Redis.Example").unwrap();
        assert_eq!(
            *info.addr(),
            ConnectionAddr::TcpTls {
                host: "Redis.Example".into(),
                port: 6379,
                insecure: false,
                tls_params: None
            }
        );
        assert_eq!(info.redis_settings().db(), 0);
        assert_eq!(info.redis_settings().username(), None);
        assert_eq!(
            *parse_url("redis://10.0.0.5/").unwrap().0.addr(),
            ConnectionAddr::Tcp("10.0.0.5".into(), 6379)
        );
        for (url, why) in [
            ("redis://:hunter2@127.0.0.1", "holds a password"),
            ("redis://u:hunter2@127.0.0.1", "holds a password"),
            ("rediss://127.0.0.1/#insecure", "fragment"),
            ("redis://127.0.0.1/?db=1", "query"),
            ("http://127.0.0.1", "not a redis"),
            ("unix:///run/redis.sock", "scheme"),
            ("redis://127.0.0.1/x", "database number"),
            ("redis://127.0.0.1/123456", "database number"),
            ("redis://", "no host"),
            ("redis://u@/0", "no host"),
            ("redis://127.0.0.1:0", "port"),
            ("redis://127.0.0.1:65536", "port"),
            ("redis://127.0.0.1:+1", "port"),
            ("redis://127.0.0.1:", "port"),
            ("redis://[::1", "closing ]"),
            ("redis://[zz]:1", "IPv6"),
            ("redis://[::1]x", "junk"),
            ("redis://0.0.0.0", "no host to connect"),
            ("redis://[::]:6379", "no host to connect"),
            ("redis://rédis.example", "ASCII"),
            ("redis://a b", "ASCII"),
            ("redis://u\n@h", "%-encoded"),
            ("redis://us er@h", "%-encoded"),
            ("redis://127.1", "a.b.c.d"),
            ("redis://0x7f.0.0.1:6379", "a.b.c.d"),
            ("redis://10.0.0.256", "a.b.c.d"),
            ("127.0.0.1:6379", "not a redis"),
        ] {
            let e = parse_url(url)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert_eq!(e.kind, Kind::Config);
            assert!(e.message.contains(why), "{url}: {}", e.message);
            assert!(!e.message.contains("hunter2"), "{}", e.message);
        }
    }
}
