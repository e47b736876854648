//! Fleet mode (`--redis URL`): Redis as the coordinator of the hosts that serve one account.
//!
//! Per account (the namespace `wxtoken:{appid}:{api}`) Redis holds:
//! - `…:token`: the fleet's token, the same JSON as the `.json` file, expiring with the token;
//! - `…:lock`: the host allowed to fetch now (SET NX PX with a value unique to the run, deleted
//!   by its owner only, through a script; it expires with the holder's `--max-time`, so a host
//!   killed while holding it blocks the others for that long at most);
//! - `…:probe`: the last verdict a host got from WeChat on the fleet's token (so that periodic
//!   probes are made for the fleet, not per host, and a dead token is known to all);
//! - `…:report`: an app's report that WeChat rejected the token, forwarded by a follower;
//! - `…:ticket:{type}` and `…:lock:ticket:{type}`: each JS-SDK ticket, on its own clock, the same
//!   way as the token.
//!
//! Every run reads them, writes its local files from the fleet's token (local readers keep the
//! file interface), and only the lock holder fetches, after re-reading Redis: a token someone else
//! published meanwhile is taken instead. Every write of the token is a compare-and-swap on the value
//! the run decided from, so a decision made on an old token never overwrites a newer one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{debug, info, warn};
use redis::{
    Client, Connection, ConnectionAddr, ConnectionInfo, FromRedisValue, IntoConnectionInfo,
    RedisError,
};
use serde::{Deserialize, Serialize};

use crate::cli::RefreshArgs;
use crate::deadline::Deadline;
use crate::error::{Error, Kind, Result};
use crate::logging::mask;
use crate::refresh::{Current, Plan, Policy, Run, plan};
use crate::sdk::{Entry, Sdk};
use crate::store::TokenFile;
use crate::tickets::{self, TicketFile};
use crate::vocab::{Api, TicketType, digest, implausible, secs_until, unix_now, validate_token};

/// The Redis password systemd's `LoadCredential=wxtoken-redis-password:...` provides.
pub const PASSWORD_CREDENTIAL: &str = "wxtoken-redis-password";
/// One connect or one command. Redis answers in milliseconds on a LAN: a longer wait is an outage,
/// and the run's `--max-time` bounds it anyway.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a host waiting for another's fetch looks again.
const POLL: Duration = Duration::from_millis(100);

/// Deletes the lock only while it still holds this run's value: a lock that expired and was taken
/// by another host is not ours to delete.
const UNLOCK: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                        return redis.call('DEL', KEYS[1]) else return 0 end";
/// Sets KEYS[1] to ARGV[2] (PX ARGV[3]) only while it holds ARGV[1] ('' = absent).
const SWAP: &str = "local cur = redis.call('GET', KEYS[1]) \
                    if (cur == false and ARGV[1] == '') or cur == ARGV[1] then \
                      redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end \
                    return 0";
/// Deletes KEYS[1] only while it holds ARGV[1].
const DELETE_IF: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                           return redis.call('DEL', KEYS[1]) else return 0 end";
/// The SDK keys (KEYS[2..]) with values and PX (ARGV[2..], in pairs), written only while the
/// fleet's token (KEYS[1]) is still ARGV[1] (so a host that read an older token never puts it
/// back), and only where they differ. Returns how many were written, -1 when the token moved on.
const SDK_KEYS: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end \
                        local n = 0 \
                        for i = 2, #KEYS do \
                          local v = ARGV[2 * i - 2] \
                          if redis.call('GET', KEYS[i]) ~= v then \
                            redis.call('SET', KEYS[i], v, 'PX', ARGV[2 * i - 1]) n = n + 1 end \
                        end \
                        return n";

/// The checked `--redis` settings.
pub struct FleetConfig {
    /// The URL as given (it holds no password), for messages.
    pub shown: String,
    info: ConnectionInfo,
    /// For rediss:// with --ca-file: the system's bundle plus that file (the redis crate takes
    /// roots in place of the system's, wxtoken's --ca-file adds to them).
    tls_roots: Option<Vec<u8>>,
    pub follower: bool,
    pub fallback_fetch: bool,
    pub publish: Vec<Sdk>,
    /// `wxtoken:{appid}:{api}`, plus a fingerprint of the corpsecret for WeCom (one corp, many
    /// apps, each with its own token).
    pub namespace: String,
}

impl FleetConfig {
    pub fn from_args(
        args: &RefreshArgs,
        appid: &str,
        secret: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Option<FleetConfig>> {
        let url = args.redis.as_deref().map(str::trim).unwrap_or("");
        if url.is_empty() {
            for (set, flag) in [
                (args.follower, "--follower"),
                (args.redis_fallback_fetch, "--redis-fallback-fetch"),
                (!args.publish.is_empty(), "--publish"),
            ] {
                if set {
                    return Err(Error::config(format!(
                        "{flag} needs --redis URL (WXTOKEN_REDIS): it is about the fleet's Redis"
                    )));
                }
            }
            return Ok(None);
        }
        if args.follower && args.redis_fallback_fetch {
            return Err(Error::config(
                "--follower and --redis-fallback-fetch contradict each other: a follower never \
                 fetches from WeChat, not even when Redis is down",
            ));
        }
        let (info, tls) = parse_url(url)?;
        let password = match password_path(args.redis_password_file.as_deref()) {
            Some(p) => Some(crate::config::read_credential(&p, "Redis password")?),
            None => None,
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
        let mut publish = Vec::new();
        for spec in args.publish.iter().filter(|s| !s.trim().is_empty()) {
            let sdk = Sdk::parse(spec, args.api)?;
            if !publish.contains(&sdk) {
                publish.push(sdk);
            }
        }
        let mut namespace = format!("wxtoken:{appid}:{}", args.api.name());
        if args.api == Api::Wecom {
            namespace.push(':');
            namespace.push_str(&digest(&format!("wxtoken-redis-namespace:{secret}"))[..16]);
        }
        Ok(Some(FleetConfig {
            shown: url.to_string(),
            info,
            tls_roots,
            follower: args.follower,
            fallback_fetch: args.redis_fallback_fetch,
            publish,
            namespace,
        }))
    }
}

fn password_path(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit.map(Path::to_path_buf).or_else(|| {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
        let p = Path::new(&dir).join(PASSWORD_CREDENTIAL);
        p.exists().then_some(p)
    })
}

/// `redis://[USER@]HOST[:PORT][/DB]` or `rediss://...`. Refused: a password (it would sit in the
/// unit's environment and in `ps`), a query or fragment (`#insecure` would switch certificate
/// checks off), other schemes. Parsed here rather than by the redis crate's URL parser, which
/// brings the `url` crate and its IDNA machinery (60 KB of the binary) for what is a host, a port
/// and a number; IDNA host names are refused (Redis hosts are ASCII).
pub fn parse_url(url: &str) -> Result<(ConnectionInfo, bool)> {
    let bad = |why: &str| {
        Error::config(format!(
            "--redis: {why}; expected redis://HOST[:PORT][/DB] or rediss://... (a user name may \
             come before an @; the password goes in --redis-password-file)"
        ))
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("not a redis:// URL"));
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "redis" => false,
        "rediss" => true,
        _ => {
            let shown = crate::vocab::printable(scheme);
            return Err(bad(&format!(
                "not a redis:// URL (the scheme {shown}:// is not supported)"
            )));
        }
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hostport) = match authority.rsplit_once('@') {
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
        None => 6379,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
    };
    let db = path.strip_suffix('/').unwrap_or(path);
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
        let user = percent_decode(user).ok_or_else(|| bad("the user name is not valid UTF-8"))?;
        settings = settings.set_username(user);
    }
    let addr = if tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    };
    let info = addr
        .into_connection_info()
        .map_err(|e| bad(&format!("not a valid URL ({e})")))?
        .set_redis_settings(settings);
    Ok((info, tls))
}

/// `%XX` escapes of a URL's user name (an ACL user may be called anything).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The last verdict a host of the fleet got from WeChat on the fleet's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub digest: String,
    pub at: u64,
    pub alive: bool,
}

/// What Redis holds for the account, as one run read it.
#[derive(Debug, Default)]
pub struct View {
    /// The fleet's token, when it is one wxtoken would serve for this account and API.
    pub token: Option<TokenFile>,
    /// The stored value itself: what a compare-and-swap compares with.
    pub raw: Option<String>,
    pub probe: Option<ProbeRecord>,
    pub report: Option<String>,
}

/// A connection to the fleet's Redis for one run.
pub struct Fleet {
    conn: Connection,
    ns: String,
    pub shown: String,
    deadline: Deadline,
    /// The stored token the run based its decision on (what every swap expects).
    pub seen: Option<String>,
}

/// Why a Redis call failed, in the admin's words: credentials are 78, anything else 75.
fn failure(shown: &str, what: &str, e: &RedisError) -> Error {
    let auth = matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"));
    if auth {
        return Error::config(format!(
            "Redis at {shown} refused {what}: {e}. Check the password file (--redis-password-file, \
             or the LoadCredential=wxtoken-redis-password:... of the unit) and the user in the URL \
             and its ACL (it needs GET, SET, DEL, MGET and EVAL on the wxtoken:* keys)"
        ));
    }
    let hint = if shown.starts_with("rediss:") && e.to_string().contains("certificate") {
        " (is the CA that signed the server's certificate in the system's store, or given with \
         --ca-file?)"
    } else {
        ""
    };
    Error::temp(format!("Redis at {shown}: {what} failed: {e}{hint}"))
}

impl Fleet {
    pub fn connect(fc: &FleetConfig, deadline: &Deadline) -> Result<Fleet> {
        let shown = fc.shown.clone();
        let client = match &fc.tls_roots {
            Some(pem) => Client::build_with_tls(
                fc.info.clone(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => Client::open(fc.info.clone()),
        }
        .map_err(|e| failure(&shown, "the connection settings", &e))?;
        let conn = client
            .get_connection_with_timeout(step(deadline)?)
            .map_err(|e| failure(&shown, "connecting", &e))?;
        debug!("connected to Redis at {shown}");
        Ok(Fleet {
            conn,
            ns: fc.namespace.clone(),
            shown,
            deadline: *deadline,
            seen: None,
        })
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.ns)
    }

    fn query<T: FromRedisValue>(&mut self, what: &str, cmd: &redis::Cmd) -> Result<T> {
        let t = step(&self.deadline)?;
        let armed = self
            .conn
            .set_read_timeout(Some(t))
            .and_then(|()| self.conn.set_write_timeout(Some(t)));
        armed
            .and_then(|()| cmd.query(&mut self.conn))
            .map_err(|e| failure(&self.shown, what, &e))
    }

    fn eval<T: FromRedisValue>(
        &mut self,
        what: &str,
        script: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<T> {
        let mut c = redis::cmd("EVAL");
        c.arg(script).arg(keys.len()).arg(keys).arg(args);
        self.query(what, &c)
    }

    /// The token, the last probe and a forwarded report, in one round trip.
    pub fn read(&mut self, appid: &str, api: Api, now: u64) -> Result<View> {
        let keys = [self.key("token"), self.key("probe"), self.key("report")];
        let (raw, probe, report): (Option<String>, Option<String>, Option<String>) =
            self.query("reading the fleet's token", redis::cmd("MGET").arg(&keys))?;
        let token = raw
            .as_deref()
            .and_then(|r| self.believe(r, appid, api, now));
        Ok(View {
            token,
            raw,
            probe: probe.and_then(|p| serde_json::from_str(&p).ok()),
            report: report.filter(|d| crate::vocab::is_digest(d)),
        })
    }

    /// The stored token when wxtoken would serve it: parsable, this account and API, believable
    /// times. Anything else is logged and treated as absent (the next fetch replaces it).
    pub fn believe(&self, raw: &str, appid: &str, api: Api, now: u64) -> Option<TokenFile> {
        let key = self.key("token");
        let t: TokenFile = match serde_json::from_str(raw) {
            Ok(t) => t,
            Err(e) => {
                warn!("Redis {key} is not a wxtoken token ({e}); replacing it");
                return None;
            }
        };
        if let Err(why) = validate_token(&t.access_token) {
            warn!("Redis {key} holds a token wxtoken would refuse ({why}); replacing it");
            return None;
        }
        if t.appid != appid || t.api != api.name() {
            warn!(
                "Redis {key} holds a token of appid {} from the {} API; replacing it",
                t.appid, t.api
            );
            return None;
        }
        if let Some(why) = implausible(t.expires_in, t.expires_at, t.refreshed_at, now) {
            warn!("Redis {key}: not trusting its token: {why}");
            return None;
        }
        crate::logging::register_token(&t.access_token);
        Some(TokenFile {
            expire_time: t.expires_at,
            ..t
        })
    }

    /// Takes the lock `name` ("lock" for the token, "lock:jsapi_ticket"...) for at most what is
    /// left of this run: a holder that dies (kill -9, power loss) releases it by expiry within
    /// its --max-time. Some(value) when taken.
    pub fn try_lock(&mut self, name: &str) -> Result<Option<String>> {
        let ttl = self.deadline.remaining().as_millis().max(1000) as u64;
        let value = format!("{}:{}:{}", hostname(), std::process::id(), random_hex());
        let key = self.key(name);
        let set: Option<String> = self.query(
            "taking the fleet's lock",
            redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("NX")
                .arg("PX")
                .arg(ttl),
        )?;
        Ok(set.map(|_| value))
    }

    /// Best effort: a lock not released expires with this run's --max-time.
    pub fn unlock(&mut self, name: &str, value: &str) {
        let key = self.key(name);
        if let Err(e) = self.eval::<i64>(
            "releasing the fleet's lock",
            UNLOCK,
            &[key],
            &[value.to_string()],
        ) {
            warn!("{e}; it expires by itself");
        }
    }

    pub fn get(&mut self, name: &str) -> Result<Option<String>> {
        let key = self.key(name);
        self.query(&format!("reading {key}"), redis::cmd("GET").arg(key))
    }

    /// Sets the key `name` to `raw` for `ttl_ms` if it still holds `expected` (None: absent).
    pub fn swap(
        &mut self,
        name: &str,
        expected: Option<&str>,
        raw: &str,
        ttl_ms: u64,
    ) -> Result<bool> {
        let swapped: i64 = self.eval(
            &format!("publishing {}", self.key(name)),
            SWAP,
            &[self.key(name)],
            &[
                expected.unwrap_or_default().to_string(),
                raw.to_string(),
                ttl_ms.max(1).to_string(),
            ],
        )?;
        Ok(swapped == 1)
    }

    /// Publishes `t` as the fleet's token if Redis still holds what this run decided from.
    /// Ok(false): someone else's token is there now (it stays).
    pub fn publish(&mut self, t: &TokenFile, now: u64) -> Result<bool> {
        let left = crate::vocab::secs_until(t.expires_at, now);
        if left <= 0 {
            return Ok(false);
        }
        let raw = serde_json::to_string(t).expect("plain struct serializes");
        let seen = self.seen.clone();
        let swapped = self.swap("token", seen.as_deref(), &raw, left as u64 * 1000)?;
        if swapped {
            self.seen = Some(raw);
        }
        Ok(swapped)
    }

    /// Tells the fleet what WeChat said about its token (best effort).
    pub fn record_probe(&mut self, rec: &ProbeRecord, ttl_secs: u64) {
        let value = serde_json::to_string(rec).expect("plain struct serializes");
        self.set_best_effort("recording the probe", "probe", &value, ttl_secs);
    }

    /// Forwards an app's report of the fleet's token to the hosts that may act on it.
    pub fn report(&mut self, digest: &str, ttl_secs: u64) {
        self.set_best_effort("forwarding the report", "report", digest, ttl_secs);
    }

    /// SET the fleet's key `name` to `value` for `ttl_secs` (at least 1 s); a failure is only
    /// logged: these keys speed the fleet up, the files stay right without them.
    fn set_best_effort(&mut self, what: &str, name: &str, value: &str, ttl_secs: u64) {
        let key = self.key(name);
        let r: Result<()> = self.query(
            what,
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl_secs.max(1) * 1000),
        );
        if let Err(e) = r {
            warn!("{e}");
        }
    }

    /// A report answered (WeChat accepts the token): forgotten for the fleet.
    pub fn clear_report(&mut self, digest: &str) {
        let key = self.key("report");
        if let Err(e) = self.eval::<i64>(
            "clearing the report",
            DELETE_IF,
            &[key],
            &[digest.to_string()],
        ) {
            warn!("{e}");
        }
    }

    /// Writes SDK keys while the fleet's key `guard` ("token", "ticket:jsapi") still holds
    /// `expected`, the value they were made from; -1 when it moved on.
    pub fn write_entries(&mut self, guard: &str, expected: &str, entries: &[Entry]) -> Result<i64> {
        let mut keys = vec![self.key(guard)];
        let mut args = vec![expected.to_string()];
        for e in entries {
            keys.push(e.key.clone());
            args.push(e.value.clone());
            args.push(e.ttl_ms.max(1).to_string());
        }
        self.eval("writing the SDK keys", SDK_KEYS, &keys, &args)
    }

    /// Waits (within --max-time) for the lock `lock` or for the key `name` to change from `seen`.
    /// Some(value now) when it changed (someone else published; the lock is not held), None when
    /// the lock is this run's (its value in `held`), after re-reading the key under it.
    pub fn lock_or_change(
        &mut self,
        lock: &str,
        name: &str,
        seen: Option<&str>,
        held: &mut Option<String>,
    ) -> Result<Option<Option<String>>> {
        loop {
            if let Some(value) = self.try_lock(lock)? {
                *held = Some(value);
                let now = self.get(name)?;
                if now.as_deref() == seen {
                    return Ok(None);
                }
                // Published between this run's read and its lock: nothing to fetch, and the
                // lock must not linger until it expires (other hosts would wait on it).
                if let Some(value) = held.take() {
                    self.unlock(lock, &value);
                }
                return Ok(Some(now));
            }
            if self.deadline.remaining() < POLL * 2 {
                let who = self.get(lock).ok().flatten();
                return Err(Error::temp(format!(
                    "{} held the fleet's lock {} in Redis at {} for this run's whole --max-time \
                     and published nothing; it expires by itself, the next run tries again",
                    who.as_deref().unwrap_or("another host"),
                    self.key(lock),
                    self.shown
                )));
            }
            self.deadline.sleep(POLL);
            let now = self.get(name)?;
            if now.as_deref() != seen {
                return Ok(Some(now));
            }
        }
    }
}

/// What one command may take: the Redis timeout or what is left of the run, whichever is less.
fn step(deadline: &Deadline) -> Result<Duration> {
    if deadline.exhausted() {
        return Err(Error::temp(
            "no time left for Redis within --max-time".to_string(),
        ));
    }
    Ok(REDIS_TIMEOUT.min(deadline.remaining()))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "?".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn random_hex() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// The run's side: what `refresh` calls in fleet mode.

/// A fetched token (or the fleet's), its outcome, and whether this run fetched it.
type Refreshed = (TokenFile, Result<()>, bool);

impl Run<'_> {
    /// False for a follower, and for a host that cannot reach Redis (unless it may fall back).
    pub(crate) fn may_call_wechat(&self) -> bool {
        match &self.cfg.fleet {
            None => true,
            Some(fc) => !fc.follower && (self.fleet.is_some() || fc.fallback_fetch),
        }
    }

    /// Fleet mode, before any decision: connects, and makes the fleet's token this host's
    /// (`file`), or offers Redis this host's when it outlives the fleet's (a fetch whose publish
    /// failed, Redis restarted empty). Merges what other hosts learnt: the last probe, a report.
    /// Redis down is not an error here: the run goes on without fetching and exits 75.
    pub(crate) fn fleet_sync(
        &mut self,
        file: &mut Option<TokenFile>,
        reports: &mut Vec<String>,
        now: u64,
    ) -> Result<()> {
        let cfg = self.cfg;
        let Some(fc) = &cfg.fleet else {
            return Ok(());
        };
        let connected = Fleet::connect(fc, &self.deadline).and_then(|mut f| {
            let view = f.read(&cfg.appid, cfg.api, now)?;
            Ok((f, view))
        });
        let (mut fleet, view) = match connected {
            Ok(x) => x,
            Err(e) if e.kind == Kind::TempFail => {
                let what = if fc.fallback_fetch {
                    "with --redis-fallback-fetch it fetches from WeChat on its own if it must"
                } else {
                    "fetched nothing from WeChat: in fleet mode a host never fetches on its own \
                     (--redis-fallback-fetch allows it)"
                };
                warn!("{e}; this host keeps its files and {what}");
                self.deferred = Some(Error::temp(format!(
                    "{e}; this host kept its files and {what}"
                )));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        fleet.seen = view.raw.clone();
        let worth = |t: &TokenFile| {
            self.st
                .effective_expiry(&digest(&t.access_token), t.expires_at, now)
        };
        let local = file.as_ref().filter(|t| {
            t.appid == cfg.appid
                && t.api == cfg.api.name()
                && implausible(t.expires_in, t.expires_at, t.refreshed_at, now).is_none()
        });
        let offer = match (view.token.as_ref(), local) {
            // The same token with an expiry no later than the fleet's: this host knows better
            // (a fetch of its own retired it) or the same; keep it.
            (Some(r), Some(l))
                if r.access_token == l.access_token && l.expires_at <= r.expires_at =>
            {
                None
            }
            (Some(r), Some(l)) if l.access_token != r.access_token && worth(l) > worth(r) => {
                Some(l.clone())
            }
            (Some(r), _) => {
                info!(
                    "took {} from the fleet (Redis at {}), {} s left",
                    mask(&r.access_token),
                    fleet.shown,
                    secs_until(r.expires_at, now)
                );
                self.st.token_expires_at = r.expires_at;
                self.dirty = true;
                *file = Some(r.clone());
                None
            }
            (None, Some(l)) if worth(l) > now => Some(l.clone()),
            _ => None,
        };
        if let Some(l) = offer.filter(|_| !fc.follower) {
            offer_local(&mut fleet, &l, now)?;
        }
        if let Some(d) = file.as_ref().map(|t| digest(&t.access_token)) {
            if let Some(p) = &view.probe
                && p.digest == d
                && p.at <= now
            {
                if p.at > self.st.last_probe_at {
                    self.st.last_probe_at = p.at;
                    self.dirty = true;
                }
                if !p.alive && self.st.dead.as_deref() != Some(d.as_str()) {
                    warn!(
                        "another host of the fleet found the token dead (probe at {}): replacing it",
                        p.at
                    );
                    self.st.dead = Some(d.clone());
                    self.dirty = true;
                }
            }
            if view.report.as_deref() == Some(d.as_str()) && !reports.contains(&d) {
                info!("another host's app reported the fleet's token as rejected");
                reports.push(d.clone());
            }
            if fc.follower && reports.contains(&d) {
                let left = file.as_ref().map_or(0, |t| secs_until(t.expires_at, now));
                fleet.report(&d, left.max(1) as u64);
                info!(
                    "forwarded an app's report to the fleet: a host without --follower checks it"
                );
            }
        }
        self.fleet = Some(fleet);
        Ok(())
    }

    /// A run that may not call WeChat (follower, Redis down) keeps what it has: a probe is
    /// skipped, a fetch becomes "keep the file" while its token is valid, with exit 75. A
    /// follower first waits (within its --max-time) for a host of the fleet to replace the token:
    /// with the same margin, the leaders' timer ticks come within a minute.
    pub(crate) fn hold(
        &mut self,
        decision: Plan,
        current: Option<Current>,
        now: u64,
    ) -> Result<(Plan, Option<Current>)> {
        let why = match decision {
            Plan::Fetch { why, .. } => why,
            Plan::Probe { .. } => {
                let left = current.as_ref().map_or(0, |c| c.left(now));
                return Ok((Plan::Fresh { left }, current));
            }
            fresh => return Ok((fresh, current)),
        };
        let fc = self.cfg.fleet.as_ref().expect("held only in fleet mode");
        if fc.follower
            && self.fleet.is_some()
            && let Some(cur) = self.wait_for_leader(&why)?
        {
            return Ok((
                Plan::Fresh {
                    left: cur.left(unix_now()),
                },
                Some(cur),
            ));
        }
        let reason = self.deferred.take().unwrap_or_else(|| {
            Error::temp(format!(
                "the fleet's token needs replacing ({why}), and this host is a --follower: it never \
                 fetches. A host of the fleet without --follower refreshes it (is one running, \
                 with --redis {}?)",
                fc.shown
            ))
        });
        let now = unix_now();
        match current.filter(|c| c.left(now) > 0) {
            Some(c) => {
                self.deferred = Some(reason);
                Ok((Plan::Fresh { left: c.left(now) }, Some(c)))
            }
            None => Err(Error::temp(format!(
                "{}; {} holds no valid token ({why})",
                reason.message,
                self.cfg.store.state.display()
            ))),
        }
    }

    /// The fleet's stored token `raw`, now what this run decides from (`seen`): Some when it is
    /// one this account would serve and believable under the current clock.
    fn take_fleet_token(&mut self, raw: Option<String>, now: u64) -> Option<Current> {
        let cfg = self.cfg;
        let fleet = self.fleet.as_mut().expect("fleet mode");
        let token = raw
            .as_deref()
            .and_then(|r| fleet.believe(r, &cfg.appid, cfg.api, now));
        fleet.seen = raw;
        token.and_then(|t| self.assess(t, now))
    }

    /// A follower whose token needs replacing watches the fleet's token until a leader publishes
    /// one it may keep, or this run's time is up (None).
    fn wait_for_leader(&mut self, why: &str) -> Result<Option<Current>> {
        let cfg = self.cfg;
        let policy = Policy {
            margin: cfg.margin,
            force: false,
            force_new: false,
            probe_every: cfg.probe_every,
        };
        info!("the fleet's token needs replacing ({why}): waiting for a host that fetches");
        while self.deadline.remaining() > Duration::from_secs(1) {
            self.deadline.sleep(POLL * 5);
            let fleet = self.fleet.as_mut().expect("fleet mode");
            let raw = fleet.get("token")?;
            if raw == fleet.seen {
                continue;
            }
            let now = unix_now();
            let Some(cur) = self.take_fleet_token(raw, now) else {
                continue;
            };
            if !matches!(
                plan(policy, Some(&cur), &self.st, &[], 0, now),
                Plan::Fetch { .. }
            ) {
                info!(
                    "took {} from the fleet, {} s left",
                    mask(&cur.file.access_token),
                    cur.left(now)
                );
                self.st.token_expires_at = cur.file.expires_at;
                self.dirty = true;
                return Ok(Some(cur));
            }
        }
        Ok(None)
    }

    /// After a probe this run made: the verdict goes to the fleet (periodic probes are then made
    /// once for all hosts; a dead token is replaced by whoever runs next).
    pub(crate) fn fleet_probed(&mut self, cur: &Current) {
        let alive = match self.st.last_probe.as_str() {
            "alive" => true,
            "dead" => false,
            _ => return,
        };
        let at = self.st.last_probe_at;
        let Some(fleet) = self.fleet.as_mut() else {
            return;
        };
        let rec = ProbeRecord {
            digest: cur.digest.clone(),
            at,
            alive,
        };
        fleet.record_probe(&rec, cur.left(at).max(1) as u64);
        if alive {
            fleet.clear_report(&cur.digest);
        }
    }

    /// A fetch in fleet mode: only under the fleet's lock, and only if Redis still holds the
    /// token this run decided from. A token another host published meanwhile is taken instead
    /// (and decided on again, once per change). The new token goes to this host's files first,
    /// then to Redis; a failed publish is reported (75), never followed by a second fetch.
    pub(crate) fn fleet_refresh(
        &mut self,
        mut current: Option<Current>,
        why: &str,
        rotate: bool,
        policy: Policy,
    ) -> Result<Refreshed> {
        let cfg = self.cfg;
        for _ in 0..3 {
            let fleet = self.fleet.as_mut().expect("fleet mode");
            let mut held = None;
            let seen = fleet.seen.clone();
            let news = fleet.lock_or_change("lock", "token", seen.as_deref(), &mut held);
            let raw = match news {
                Err(e) => {
                    if let Some(v) = held {
                        fleet.unlock("lock", &v);
                    }
                    return Err(e);
                }
                Ok(Some(raw)) => raw,
                Ok(None) => {
                    let value = held.expect("Ok(None) means the lock is ours");
                    debug!("holding the fleet's lock ({value}): fetching");
                    let result = self.refresh_token(current.as_ref(), why, rotate);
                    let fleet = self.fleet.as_mut().expect("fleet mode");
                    if let Ok((t, _)) = &result {
                        match fleet.publish(t, unix_now()) {
                            Ok(true) => info!(
                                "published {} to the fleet (Redis at {})",
                                mask(&t.access_token),
                                fleet.shown
                            ),
                            Ok(false) => warn!(
                                "Redis at {} held another token by the time this run published \
                                 (this run's lock had expired): kept it; the next runs settle \
                                 which one outlives the other",
                                fleet.shown
                            ),
                            Err(e) => {
                                self.deferred = Some(Error::temp(format!(
                                    "{e}: the new token is in this host's files only; the next \
                                     run that reaches Redis publishes it (no second fetch)"
                                )));
                            }
                        }
                    }
                    let fleet = self.fleet.as_mut().expect("fleet mode");
                    fleet.unlock("lock", &value);
                    return result.map(|(t, o)| (t, o, true));
                }
            };
            // The fleet moved on while this run waited: decide again on its token.
            let now = unix_now();
            let Some(cur) = self.take_fleet_token(raw, now) else {
                continue;
            };
            info!(
                "another host published {} meanwhile: taking it instead of fetching",
                mask(&cur.file.access_token)
            );
            self.st.token_expires_at = cur.file.expires_at;
            self.dirty = true;
            let again = Policy {
                force: false,
                force_new: false,
                ..policy
            };
            if let Plan::Fetch { .. } = plan(again, Some(&cur), &self.st, &[], 0, now) {
                current = Some(cur);
                continue;
            }
            for path in cfg.store.publish(&cur.file)? {
                info!("wrote {} from the fleet's token", path.display());
            }
            return Ok((cur.file, Ok(()), false));
        }
        Err(Error::temp(
            "the fleet's token kept changing while this run waited; the next run looks again",
        ))
    }
}

/// The fleet's key for a ticket type: `ticket:jsapi`, `ticket:wx_card`, `ticket:agent_config`.
pub fn ticket_key(ty: TicketType) -> String {
    format!("ticket:{}", ty.name())
}

/// A stored ticket when wxtoken would serve it: this account and type, believable, not expired.
pub fn believe_ticket(raw: &str, ty: TicketType, appid: &str, now: u64) -> Option<TicketFile> {
    let t: TicketFile = serde_json::from_str(raw).ok()?;
    let usable = validate_token(&t.ticket).is_ok()
        && t.appid == appid
        && t.ticket_type == ty.name()
        && implausible(t.expires_in, t.expires_at, t.refreshed_at, now).is_none()
        && secs_until(t.expires_at, now) > 0;
    usable.then(|| {
        crate::logging::register_token(&t.ticket);
        TicketFile {
            expire_time: t.expires_at,
            ..t
        }
    })
}

impl Run<'_> {
    /// Fleet mode: the fleet's ticket of this type goes into this host's file when it outlives
    /// the file's (or corrects its expiry down). Returns what the file holds afterwards.
    pub(crate) fn fleet_ticket_sync(
        &mut self,
        ty: TicketType,
        path: &Path,
        local: Option<TicketFile>,
        now: u64,
    ) -> Option<TicketFile> {
        let cfg = self.cfg;
        let fleet = self.fleet.as_mut()?;
        let raw = match fleet.get(&ticket_key(ty)) {
            Ok(raw) => raw,
            Err(e) => {
                warn!("{e}");
                return local;
            }
        };
        let Some(r) = raw.and_then(|raw| believe_ticket(&raw, ty, &cfg.appid, now)) else {
            return local;
        };
        let better = local.as_ref().is_none_or(|l| {
            l.appid != cfg.appid
                || (l.ticket != r.ticket && r.expires_at > l.expires_at)
                || (l.ticket == r.ticket && r.expires_at < l.expires_at)
        });
        if !better {
            return local;
        }
        match crate::atomic::write_atomic(path, &r.render(), cfg.store.mode, cfg.store.gid) {
            Ok(_) => {
                info!(
                    "took the {} ticket {} from the fleet, {} s left",
                    ty.name(),
                    mask(&r.ticket),
                    secs_until(r.expires_at, now)
                );
                Some(r)
            }
            Err(e) => {
                warn!("{e}");
                local
            }
        }
    }

    /// Fleet mode: a ticket fetch only under the fleet's lock for that ticket, and only if Redis
    /// holds no fresh one by then (that one is taken instead); the new ticket goes to this host's
    /// file, then to Redis by compare-and-swap.
    pub(crate) fn fleet_ticket(
        &mut self,
        ty: TicketType,
        token: &str,
        current: Option<&TicketFile>,
    ) -> Result<()> {
        let cfg = self.cfg;
        let name = ticket_key(ty);
        let lock = format!("lock:{name}");
        let path = tickets::path_for(cfg.store.dir(), ty);
        let taken = |raw: &Option<String>| -> Result<bool> {
            let now = unix_now();
            let Some(t) = raw
                .as_deref()
                .and_then(|r| believe_ticket(r, ty, &cfg.appid, now))
            else {
                return Ok(false);
            };
            if tickets::needs_fetch(&path, Some(&t), &cfg.appid, cfg.margin, now)?.is_some() {
                return Ok(false);
            }
            crate::atomic::write_atomic(&path, &t.render(), cfg.store.mode, cfg.store.gid)?;
            info!(
                "another host published the {} ticket {} meanwhile: taking it",
                ty.name(),
                mask(&t.ticket)
            );
            Ok(true)
        };
        let fleet = self.fleet.as_mut().expect("fleet mode");
        let mut seen = fleet.get(&name)?;
        if taken(&seen)? {
            return Ok(());
        }
        for _ in 0..3 {
            let fleet = self.fleet.as_mut().expect("fleet mode");
            let mut held = None;
            match fleet.lock_or_change(&lock, &name, seen.as_deref(), &mut held) {
                Err(e) => {
                    if let Some(v) = held {
                        fleet.unlock(&lock, &v);
                    }
                    return Err(e);
                }
                Ok(Some(raw)) => {
                    if taken(&raw)? {
                        return Ok(());
                    }
                    seen = raw;
                }
                Ok(None) => {
                    let value = held.expect("Ok(None) means the lock is ours");
                    let result = self.ticket(ty, token, current);
                    let fleet = self.fleet.as_mut().expect("fleet mode");
                    if result.is_ok()
                        && let Some(t) = tickets::read(&path)
                    {
                        let raw = serde_json::to_string(&t).expect("plain struct serializes");
                        let left = secs_until(t.expires_at, unix_now()).max(1) as u64;
                        match fleet.swap(&name, seen.as_deref(), &raw, left * 1000) {
                            Ok(true) => debug!("published the {} ticket to the fleet", ty.name()),
                            Ok(false) => warn!(
                                "Redis held another {} ticket by the time this run published: \
                                 kept it",
                                ty.name()
                            ),
                            Err(e) => {
                                self.deferred.get_or_insert(Error::temp(format!(
                                    "{e}: the new {} ticket is in this host's file only",
                                    ty.name()
                                )));
                            }
                        }
                    }
                    let fleet = self.fleet.as_mut().expect("fleet mode");
                    fleet.unlock(&lock, &value);
                    return result;
                }
            }
        }
        Err(Error::temp(format!(
            "the fleet's {} ticket kept changing while this run waited; the next run looks again",
            ty.name()
        )))
    }
}

/// Offers the fleet this host's token, which outlives the one Redis holds (or Redis holds none):
/// under the lock, only if Redis still holds what this run read. Skipped while another host holds
/// the lock (it is about to publish).
fn offer_local(fleet: &mut Fleet, t: &TokenFile, now: u64) -> Result<()> {
    let Some(value) = fleet.try_lock("lock")? else {
        return Ok(());
    };
    let result = fleet.get("token").and_then(|raw| {
        if raw != fleet.seen {
            return Ok(false);
        }
        fleet.publish(t, now)
    });
    fleet.unlock("lock", &value);
    if result? {
        info!(
            "published this host's token {} to the fleet (Redis at {}): Redis held none that \
             outlives it",
            mask(&t.access_token),
            fleet.shown
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
