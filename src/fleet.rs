//! The fleet's Redis client: the account's keys, the lock, compare-and-swap writes.
//!
//! Fleet mode (`--redis URL`): Redis coordinates the hosts that serve one account.
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

use std::time::Duration;

use log::{debug, warn};
use redis::{Client, Connection, FromRedisValue, RedisError};
use serde::{Deserialize, Serialize};

use crate::api::{Api, TicketType, validate_token};
use crate::clock::{implausible, secs_until};
use crate::config::fleet::FleetConfig;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::sdk::Entry;
use crate::store::TokenFile;
use crate::store::ticket_file::TicketFile;

/// One connect or one command. Redis answers in milliseconds on a LAN: a longer wait is an outage,
/// and the run's `--max-time` bounds it anyway.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a host waiting for another's fetch looks again.
pub const POLL: Duration = Duration::from_millis(100);

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
            report: report.filter(|d| crate::api::is_digest(d)),
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
        Some(t)
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
        let left = crate::clock::secs_until(t.expires_at, now);
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
    /// The lock is this run's only when the key, re-read under it, still holds `seen`.
    pub fn lock_or_change(&mut self, lock: &str, name: &str, seen: Option<&str>) -> Result<Turn> {
        loop {
            if let Some(value) = self.try_lock(lock)? {
                let now = self.get(name);
                if now.as_ref().is_ok_and(|now| now.as_deref() == seen) {
                    return Ok(Turn::Ours(value));
                }
                // Published between this run's read and its lock (or unreadable): nothing to
                // fetch, and the lock must not linger until it expires (other hosts would wait
                // on it).
                self.unlock(lock, &value);
                return now.map(Turn::Changed);
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
                return Ok(Turn::Changed(now));
            }
        }
    }
}

/// How a wait for the fleet's lock ended.
pub enum Turn {
    /// The lock is this run's: the value that releases it.
    Ours(String),
    /// Another host published meanwhile: the key's value now (the lock is not held).
    Changed(Option<String>),
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
        t
    })
}
