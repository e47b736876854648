//! Fleet mode (`--redis URL`): Redis as the coordinator of the hosts that serve one account.
//!
//! Per account (the namespace `wxtoken:{APPID}:API`, the appid in braces: the keys' hash tag)
//! Redis holds:
//! - `…:token`: the fleet's token, the same JSON as the `.json` file, expiring with the token;
//! - `…:lock`: the host allowed to fetch now (SET NX PX with a value unique to the run, deleted
//!   by its owner only, through a script; it expires with the holder's `--max-time`, so a host
//!   killed while holding it blocks the others for that long at most);
//! - `…:probe`: the last verdict a host got from WeChat on the fleet's token (so that periodic
//!   probes are made for the fleet, not per host, and a dead token is known to all);
//! - `…:report`: an app's report that WeChat rejected the token, forwarded by a follower;
//! - `…:ticket:{type}` and `…:lock:ticket:{type}`: each JS-SDK ticket, on its own clock, the same
//!   way as the token;
//! - `…:force`: the account's force_refresh calls of the last day (one budget for all hosts);
//! - `…:probe-turn`: when a host last took the fleet's turn to probe.
//!
//! Times stored there are on Redis's clock (TIME): hosts whose clocks disagree still agree on
//! what is fresh. Each run converts them to its own clock for its files.
//!
//! Every run reads them, writes its local files from the fleet's token (local readers keep the
//! file interface), and only the lock holder fetches, after re-reading Redis: a token someone else
//! published meanwhile is taken instead. Every write of the token is a compare-and-swap on the value
//! the run decided from, so a decision made on an old token never overwrites a newer one.

use std::time::Duration;

use log::{debug, warn};
use redis::{Client, Connection, ConnectionInfo, FromRedisValue, IntoConnectionInfo, RedisError};
use serde::{Deserialize, Serialize};

use crate::api::{Api, TicketType, validate_token};
use crate::clock::{implausible, secs_until, unix_now, unix_now_ms};
use crate::config::fleet::{FleetConfig, SentinelSpec, node_addr};
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
/// The largest value read from a fleet key as it is: what a file may hold (64 KiB). A larger one
/// (written by something other than wxtoken) is never transferred: scripts name it by its SHA-1
/// (`!oversized:…`), which is also what a compare-and-swap on it compares.
pub const VALUE_CAP: usize = crate::store::atomic::READ_CAP as usize;
/// `capped(v)`: the value, or its name when it is larger than VALUE_CAP (ARGV[1] of each script
/// that reads a fleet key).
const CAPPED: &str = "local function capped(v) \
                        if v and #v > tonumber(ARGV[1]) then \
                          return '!oversized:' .. redis.sha1hex(v) end \
                        return v end ";
/// Redis's clock (TIME: the fleet's clock), then the token, the last probe and a forwarded
/// report (each capped), and how many force_refresh calls the fleet made since ARGV[2] (ms).
const READ: &str = "local t = redis.call('TIME') \
                    local since = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2]) \
                                  - 86400000 \
                    local n = redis.call('ZCOUNT', KEYS[4], since, '+inf') \
                    return {capped(redis.call('GET', KEYS[1])), \
                            capped(redis.call('GET', KEYS[2])), \
                            capped(redis.call('GET', KEYS[3])), \
                            string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000)), \
                            tostring(n)}";
/// The fleet's probe turn: KEYS[1] holds when (ms, Redis's clock plus ARGV[2]) the last turn
/// was taken; a new one is given ARGV[1] ms later (or at once when the recorded time lies ahead).
const PROBE_TURN: &str = "local t = redis.call('TIME') \
                          local now = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2]) \
                          local last = tonumber(redis.call('GET', KEYS[1]) or '') \
                          if last and last <= now and now - last < tonumber(ARGV[1]) then \
                            return 0 end \
                          redis.call('SET', KEYS[1], string.format('%d', now), 'PX', ARGV[1]) \
                          return 1";
/// A fleet key, capped.
const GET: &str = "return capped(redis.call('GET', KEYS[1]))";
/// Sets KEYS[1] to ARGV[3] (PX ARGV[4]) only while it holds ARGV[2] ('' = absent; a value over
/// the cap compares as its name).
const SWAP: &str = "local cur = capped(redis.call('GET', KEYS[1])) \
                    if (cur == false and ARGV[2] == '') or cur == ARGV[2] then \
                      redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) return 1 end \
                    return 0";
/// One force_refresh for the whole account, within WeChat's budget (ARGV[1] calls a day, ARGV[2]
/// ms apart), on Redis's clock plus ARGV[3] ms (0 but in tests): KEYS[1] is a sorted set of the
/// calls' times (ms). Returns {1, n} when this call is the n-th of the last day (and recorded),
/// {0, wait_ms} when the gap since the last one is too short, {-1, n, ms until a slot frees}
/// when the day's budget is used.
const FORCE: &str = "local t = redis.call('TIME') \
                     local now = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[3]) \
                     local day = 86400000 \
                     redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - day) \
                     local n = redis.call('ZCARD', KEYS[1]) \
                     if n >= tonumber(ARGV[1]) then \
                       local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES') \
                       return {-1, n, tonumber(first[2]) + day - now} end \
                     local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES') \
                     if last[2] then \
                       local wait = tonumber(last[2]) + tonumber(ARGV[2]) - now \
                       if wait > 0 then return {0, wait} end end \
                     redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[4]) \
                     redis.call('PEXPIRE', KEYS[1], day) \
                     return {1, n + 1}";
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

/// What a stored token says beyond the file's JSON (the other fields are skipped).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Stamp {
    pub access_token: String,
    pub refreshed_at: u64,
    pub refreshed_by: String,
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
    /// force_refresh calls the fleet made in the last 24 h (the shared budget).
    pub forced_today: u64,
    /// Which host published the fleet's token (as it named itself), if it said.
    pub refreshed_by: Option<String>,
}

/// A connection to the fleet's Redis for one run.
pub struct Fleet {
    conn: Connection,
    ns: String,
    pub shown: String,
    deadline: Deadline,
    /// The stored token the run based its decision on (what every swap expects).
    pub seen: Option<String>,
    /// The fleet's clock (Redis's TIME) minus this host's, in seconds, as measured at the read.
    /// Times in Redis are on the fleet's clock, times in the files on the host's.
    pub skew: i64,
    /// How to connect again (through Sentinel, after a failover).
    dial: Dial,
}

/// Everything a connection is made from; cloned into the thread that connects.
#[derive(Clone)]
struct Dial {
    info: ConnectionInfo,
    roots: Option<Vec<u8>>,
    sentinel: Option<SentinelSpec>,
    shown: String,
}

/// Does this failure look like a failover (the master gone, demoted, or not yet serving)?
fn failing_over(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("READONLY" | "MASTERDOWN" | "LOADING" | "TRYAGAIN")
        )
}

impl Dial {
    fn client(&self, info: ConnectionInfo) -> redis::RedisResult<Client> {
        match &self.roots {
            Some(pem) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => Client::open(info),
        }
    }

    /// A connection within what is left of `deadline`. The redis crate resolves host names with
    /// getaddrinfo, which no timeout bounds (a DNS server that never answers costs the
    /// resolver's retries: 10 s and more): the whole connect, name resolution included, runs on
    /// a thread of its own, which the run waits for at most the time left and leaves behind if
    /// it must. Through Sentinel, a failover under way (no master yet) is waited out the same.
    fn open_within(&self, deadline: &Deadline) -> Result<Connection> {
        loop {
            let per_step = step(deadline)?;
            let limit = deadline.remaining();
            let dial = self.clone();
            let result = bounded(limit, move || dial.open(per_step)).unwrap_or_else(|| {
                Err((
                    Error::temp(format!(
                        "Redis at {}: connecting failed: no connection within {:.1} s, the rest of \
                     --max-time (resolving the host name included): check the name in DNS \
                     (getent hosts) and that Redis listens there",
                        self.shown,
                        limit.as_secs_f64()
                    )),
                    false,
                ))
            });
            match result {
                Ok(c) => return Ok(c),
                Err((e, true)) if deadline.remaining() > POLL * 5 => {
                    debug!("{e}; asking the sentinels again");
                    deadline.sleep(POLL * 3);
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// A connection, or why not and whether waiting may help (a sentinel answered: a failover
    /// may be under way; no sentinel answering is an outage like a plain Redis down).
    fn open(&self, per_step: Duration) -> std::result::Result<Connection, (Error, bool)> {
        let Some(spec) = &self.sentinel else {
            return self
                .client(self.info.clone())
                .and_then(|c| c.get_connection_with_timeout(per_step))
                .map_err(|e| (failure(&self.shown, "connecting", &e), false));
        };
        let mut answered = false;
        let tls = matches!(self.info.addr(), redis::ConnectionAddr::TcpTls { .. });
        let armed = |c: &mut Connection| {
            c.set_read_timeout(Some(per_step))
                .and_then(|()| c.set_write_timeout(Some(per_step)))
        };
        let mut why = Vec::new();
        for (host, port) in &spec.nodes {
            let node = format!("{host}:{port}");
            // The sentinels are asked without AUTH: the password is the master's.
            let asked = node_addr(host.clone(), *port, tls)
                .into_connection_info()
                .map(|i| {
                    i.set_redis_settings(
                        redis::RedisConnectionInfo::default().set_skip_set_lib_name(),
                    )
                })
                .and_then(|i| self.client(i))
                .and_then(|c| c.get_connection_with_timeout(per_step))
                .and_then(|mut c| {
                    armed(&mut c)?;
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(&spec.master)
                        .query::<Option<(String, u16)>>(&mut c)
                });
            answered |= asked.is_ok();
            let (mhost, mport) = match asked {
                Ok(Some(a)) => a,
                Ok(None) => {
                    why.push(format!("sentinel {node} knows no master {}", spec.master));
                    continue;
                }
                Err(e) => {
                    why.push(format!("sentinel {node}: {e}"));
                    continue;
                }
            };
            let master = format!("{mhost}:{mport}");
            let conn = node_addr(mhost, mport, tls)
                .into_connection_info()
                .map(|i| i.set_redis_settings(self.info.redis_settings().clone()))
                .and_then(|i| self.client(i))
                .and_then(|c| c.get_connection_with_timeout(per_step));
            let mut conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    let e = failure(
                        &self.shown,
                        &format!("connecting to the master {master}"),
                        &e,
                    );
                    if e.kind == crate::error::Kind::Config {
                        return Err((e, false));
                    }
                    why.push(format!("sentinel {node} named {master}: {}", e.message));
                    continue;
                }
            };
            // A master being demoted answers ROLE with "slave" (the sentinels have not told
            // everyone yet): not the one to write to.
            let role =
                armed(&mut conn).and_then(|()| redis::cmd("ROLE").query::<redis::Value>(&mut conn));
            let is_master = matches!(&role, Ok(redis::Value::Array(items))
                if matches!(items.first(), Some(redis::Value::BulkString(b)) if b == b"master"));
            if is_master {
                debug!("sentinel {node}: the master {} is {master}", spec.master);
                return Ok(conn);
            }
            why.push(format!(
                "sentinel {node} named {master}, which is not a master now"
            ));
        }
        let e = Error::temp(format!(
            "Redis at {}: no master {} found through the sentinels ({}); a failover under way ends \
             within the sentinels' failover-timeout, check them with redis-cli -p PORT sentinel \
             masters",
            self.shown,
            spec.master,
            why.join("; ")
        ));
        Err((e, answered))
    }
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
        let dial = Dial {
            info: fc.info.clone(),
            roots: fc.tls_roots.clone(),
            sentinel: fc.sentinel.clone(),
            shown: fc.shown.clone(),
        };
        let conn = dial.open_within(deadline)?;
        debug!("connected to Redis at {}", fc.shown);
        Ok(Fleet {
            conn,
            ns: fc.namespace.clone(),
            shown: fc.shown.clone(),
            deadline: *deadline,
            seen: None,
            skew: 0,
            dial,
        })
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.ns)
    }

    /// One command. Through Sentinel, a command that fails as a failover makes commands fail
    /// (the master gone, or demoted: READONLY) is sent again to the master the sentinels name
    /// next, for as long as --max-time allows: a token fetched just before a failover reaches
    /// the new master instead of being fetched again.
    fn query<T: FromRedisValue>(&mut self, what: &str, cmd: &redis::Cmd) -> Result<T> {
        loop {
            let t = step(&self.deadline)?;
            let armed = self
                .conn
                .set_read_timeout(Some(t))
                .and_then(|()| self.conn.set_write_timeout(Some(t)));
            match armed.and_then(|()| cmd.query(&mut self.conn)) {
                Ok(v) => return Ok(v),
                Err(e) if self.dial.sentinel.is_some() && failing_over(&e) => {
                    warn!(
                        "Redis at {}: {what} failed ({e}); asking the sentinels for the master",
                        self.shown
                    );
                    self.conn = self.dial.open_within(&self.deadline)?;
                }
                Err(e) => return Err(failure(&self.shown, what, &e)),
            }
        }
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

    /// A script that reads fleet keys through `capped` (ARGV[1] is the cap, `args` follow).
    fn eval_capped<T: FromRedisValue>(
        &mut self,
        what: &str,
        script: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<T> {
        let mut all = vec![VALUE_CAP.to_string()];
        all.extend_from_slice(args);
        self.eval(what, &format!("{CAPPED}{script}"), keys, &all)
    }

    /// A time on the fleet's clock, as this host's clock reads it.
    pub fn local(&self, fleet: u64) -> u64 {
        shift(fleet, -self.skew)
    }

    /// A time on this host's clock, as the fleet's clock reads it.
    pub fn fleet(&self, local: u64) -> u64 {
        shift(local, self.skew)
    }

    /// Now on the fleet's clock.
    pub fn fleet_now(&self) -> u64 {
        self.fleet(unix_now())
    }

    /// The fleet's clock, the token, the last probe, a forwarded report and the force_refresh
    /// budget used, in one round trip.
    pub fn read(&mut self, appid: &str, api: Api) -> Result<View> {
        let keys = [
            self.key("token"),
            self.key("probe"),
            self.key("report"),
            self.key("force"),
        ];
        let before = unix_now_ms();
        let mut reply: Vec<Option<String>> = self.eval_capped(
            "reading the fleet's token",
            READ,
            &keys,
            &[test_skew_ms().to_string()],
        )?;
        let after = unix_now_ms();
        reply.resize(5, None);
        let number = |v: &Option<String>| v.as_deref().and_then(|n| n.parse::<u64>().ok());
        let (Some(redis_ms), Some(forced_today)) = (number(&reply[3]), number(&reply[4])) else {
            return Err(Error::temp(format!(
                "Redis at {}: reading the fleet's token failed: an answer without Redis's time",
                self.shown
            )));
        };
        let [raw, probe, report, ..] = <[Option<String>; 5]>::try_from(reply).unwrap_or_default();
        // Redis read its clock about halfway through the round trip; rounded to the second.
        let host_ms = (before / 2 + after / 2) as i64;
        let fleet_ms = redis_ms.saturating_add_signed(test_skew_ms()) as i64;
        self.skew = (fleet_ms - host_ms + 500).div_euclid(1000);
        if self.skew.abs() > CLOCK_WARN {
            warn!(
                "this host's clock is {} s {} Redis's at {} (the fleet's clock): the files say \
                 the truth on this host's clock, but check NTP (timedatectl)",
                self.skew.abs(),
                if self.skew > 0 { "behind" } else { "ahead of" },
                self.shown
            );
        }
        let token = raw.as_deref().and_then(|r| self.believe(r, appid, api));
        let refreshed_by = token
            .as_ref()
            .and(raw.as_deref())
            .and_then(|r| serde_json::from_str::<Stamp>(r).ok())
            .map(|s| crate::text::printable(&s.refreshed_by))
            .filter(|by| !by.is_empty());
        let probe = probe
            .and_then(|p| serde_json::from_str::<ProbeRecord>(&p).ok())
            .map(|p| ProbeRecord {
                at: self.local(p.at),
                ..p
            });
        Ok(View {
            token,
            raw,
            probe,
            report: report.filter(|d| crate::api::is_digest(d)),
            forced_today,
            refreshed_by,
        })
    }

    /// The stored token when wxtoken would serve it: parsable, this account and API, times
    /// believable on the fleet's clock (a lifetime WeChat never grants is a lie). Anything else is
    /// logged and treated as absent (the next fetch, or a host's own token, replaces it under the
    /// lock). Returned with its times on this host's clock.
    pub fn believe(&self, raw: &str, appid: &str, api: Api) -> Option<TokenFile> {
        let key = self.key("token");
        if raw.starts_with("!oversized:") {
            warn!(
                "Redis {key} at {} holds a value larger than {VALUE_CAP} bytes: not a wxtoken \
                 token, not read; replacing it",
                self.shown
            );
            return None;
        }
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
                crate::text::printable(&t.appid),
                crate::text::printable(&t.api)
            );
            return None;
        }
        if let Some(why) = implausible(t.expires_in, t.expires_at, t.refreshed_at, self.fleet_now())
        {
            warn!(
                "Redis {key} at {}: not trusting its token for appid {appid} ({why}, on Redis's \
                 clock); this host goes on as if Redis held none, and the value is replaced under \
                 the fleet's lock. If nothing but wxtoken writes there, look for who does",
                self.shown
            );
            return None;
        }
        crate::logging::register_token(&t.access_token);
        let expires_at = self.local(t.expires_at);
        Some(TokenFile {
            expires_at,
            refreshed_at: self.local(t.refreshed_at),
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

    /// A fleet key's value (capped: a larger value comes back as its name).
    pub fn get(&mut self, name: &str) -> Result<Option<String>> {
        let key = self.key(name);
        self.eval_capped(&format!("reading {key}"), GET, &[key], &[])
    }

    /// Sets the key `name` to `raw` for `ttl_ms` if it still holds `expected` (None: absent).
    pub fn swap(
        &mut self,
        name: &str,
        expected: Option<&str>,
        raw: &str,
        ttl_ms: u64,
    ) -> Result<bool> {
        let swapped: i64 = self.eval_capped(
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
        let raw = self.token_json(t);
        let seen = self.seen.clone();
        let swapped = self.swap("token", seen.as_deref(), &raw, left as u64 * 1000)?;
        if swapped {
            self.seen = Some(raw);
        }
        Ok(swapped)
    }

    /// `t` (times on this host's clock) as the fleet stores it: the file's JSON with its times on
    /// the fleet's clock, and the host that published it.
    pub fn token_json(&self, t: &TokenFile) -> String {
        let expires_at = self.fleet(t.expires_at);
        let fleet = TokenFile {
            expires_at,
            refreshed_at: self.fleet(t.refreshed_at),
            ..t.clone()
        };
        let mut raw = serde_json::to_string(&fleet).expect("plain struct serializes");
        // The file's JSON is an object: one more member before its closing brace.
        raw.pop();
        raw.push_str(",\"refreshed_by\":");
        raw.push_str(&serde_json::to_string(&hostname()).expect("a string serializes"));
        raw.push('}');
        raw
    }

    /// `t` (times on this host's clock) as the fleet stores it: times on the fleet's clock.
    pub fn ticket_json(&self, t: &TicketFile) -> String {
        let expires_at = self.fleet(t.expires_at);
        TicketFile {
            expires_at,
            refreshed_at: self.fleet(t.refreshed_at),
            ..t.clone()
        }
        .to_json()
    }

    /// A stored ticket when wxtoken would serve it: this account and type, believable on the
    /// fleet's clock, not expired. Returned with its times on this host's clock.
    pub fn believe_ticket(&self, raw: &str, ty: TicketType, appid: &str) -> Option<TicketFile> {
        let t: TicketFile = serde_json::from_str(raw).ok()?;
        let now = self.fleet_now();
        let usable = validate_token(&t.ticket).is_ok()
            && t.appid == appid
            && t.ticket_type == ty.name()
            && implausible(t.expires_in, t.expires_at, t.refreshed_at, now).is_none()
            && secs_until(t.expires_at, now) > 0;
        usable.then(|| {
            crate::logging::register_token(&t.ticket);
            let expires_at = self.local(t.expires_at);
            TicketFile {
                expires_at,
                refreshed_at: self.local(t.refreshed_at),
                ..t
            }
        })
    }

    /// One force_refresh from the fleet's shared budget (WeChat allows FORCE_PER_DAY a day per
    /// account, FORCE_MIN_GAP s apart, whichever host calls): Granted when this call may be made
    /// now (and is counted), or why not. A Redis failure is an error: a host that cannot count the
    /// call does not make it.
    pub fn reserve_force(&mut self) -> Result<Force> {
        use crate::store::run_state::{FORCE_MIN_GAP, FORCE_PER_DAY};
        let key = self.key("force");
        let member = format!("{}:{}", hostname(), random_hex());
        let r: Vec<i64> = self.eval(
            "counting the fleet's force_refresh",
            FORCE,
            &[key],
            &[
                FORCE_PER_DAY.to_string(),
                (FORCE_MIN_GAP * 1000).to_string(),
                test_skew_ms().to_string(),
                member,
            ],
        )?;
        Ok(match r.as_slice() {
            [1, n, ..] => Force::Granted(*n as u64),
            [0, wait, ..] => Force::Wait(Duration::from_millis((*wait).max(0) as u64)),
            [_, n, free, ..] => Force::Spent(format!(
                "the fleet's force_refresh budget is used up: {n} calls in the last 24 h by the \
                 hosts sharing Redis at {} (WeChat allows {FORCE_PER_DAY} a day per account); \
                 the next is possible in {} s",
                self.shown,
                (*free).max(0) / 1000 + 1
            )),
            _ => Force::Spent("Redis answered the force_refresh count with nonsense".into()),
        })
    }

    /// The fleet's turn to probe: at most one periodic probe per `every` seconds (on the fleet's
    /// clock) for all hosts, taken by whichever host asks first. True when this host may probe
    /// now; a Redis failure is "no" (the next run asks again).
    pub fn probe_turn(&mut self, every: u64) -> bool {
        let key = self.key("probe-turn");
        let r: Result<i64> = self.eval(
            "taking the fleet's probe turn",
            PROBE_TURN,
            &[key],
            &[
                (every.max(1) * 1000).to_string(),
                test_skew_ms().to_string(),
            ],
        );
        match r {
            Ok(n) => n == 1,
            Err(e) => {
                warn!("{e}");
                false
            }
        }
    }

    /// Tells the fleet what WeChat said about its token (best effort).
    pub fn record_probe(&mut self, rec: &ProbeRecord, ttl_secs: u64) {
        let rec = ProbeRecord {
            at: self.fleet(rec.at),
            ..rec.clone()
        };
        let value = serde_json::to_string(&rec).expect("plain struct serializes");
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

/// The fleet's answer to "may this host make a force_refresh call?".
pub enum Force {
    /// Yes: the n-th of the last 24 h, counted.
    Granted(u64),
    /// Not before this wait (WeChat wants FORCE_MIN_GAP s between two).
    Wait(Duration),
    /// No: the day's budget is used up (the message says until when).
    Spent(String),
}

/// How a wait for the fleet's lock ended.
pub enum Turn {
    /// The lock is this run's: the value that releases it.
    Ours(String),
    /// Another host published meanwhile: the key's value now (the lock is not held).
    Changed(Option<String>),
}

/// Runs `f` on a thread of its own and waits at most `limit` for what it returns: None when it
/// has not returned by then (the thread is left to finish or to block; it ends with the process).
pub fn bounded<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    use std::sync::{Arc, Condvar, Mutex};
    // A slot and a bell rather than a channel: the same wait, less code in a binary whose size
    // is a goal.
    let slot = Arc::new((Mutex::new(None), Condvar::new()));
    let theirs = Arc::clone(&slot);
    std::thread::Builder::new()
        .name("redis-connect".into())
        .spawn(move || {
            let (value, bell) = &*theirs;
            *value.lock().unwrap_or_else(|e| e.into_inner()) = Some(f());
            bell.notify_one();
        })
        .ok()?;
    let (value, bell) = &*slot;
    let guard = value.lock().unwrap_or_else(|e| e.into_inner());
    let (mut guard, _) = bell
        .wait_timeout_while(guard, limit, |v| v.is_none())
        .unwrap_or_else(|e| e.into_inner());
    guard.take()
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

/// `t` moved by `by` seconds, saturating.
fn shift(t: u64, by: i64) -> u64 {
    t.saturating_add_signed(by)
}

/// A host clock further than this from Redis's is worth a warning (the fleet keeps working).
const CLOCK_WARN: i64 = 60;

/// Debug builds (the test suite) and the `test-clock` feature (bench/fleet.sh) only: seconds
/// added to Redis's clock, read from WXTOKEN_TEST_FLEET_CLOCK, in ms. The tests move the fleet's
/// clock through hours in seconds; libfaketime cannot be preloaded into redis-server (its jemalloc
/// reads the clock before libfaketime is set up), so the offset is applied where Redis's TIME is
/// read. Release builds read no such variable.
fn test_skew_ms() -> i64 {
    if cfg!(any(debug_assertions, feature = "test-clock")) {
        std::env::var("WXTOKEN_TEST_FLEET_CLOCK")
            .ok()
            .and_then(|v| v.trim().trim_start_matches('+').parse::<i64>().ok())
            .map_or(0, |s| s.saturating_mul(1000))
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_call_is_waited_for_at_most_the_limit() {
        let start = std::time::Instant::now();
        // A resolver that never returns, as getaddrinfo with a DNS server that never answers.
        let got = bounded(Duration::from_millis(300), || {
            std::thread::sleep(Duration::from_secs(3600));
            1
        });
        assert_eq!(got, None);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(bounded(Duration::from_secs(5), || 7), Some(7));
    }

    #[test]
    fn clocks() {
        assert_eq!(shift(1000, -300), 700);
        assert_eq!(shift(100, -300), 0);
        assert_eq!(shift(u64::MAX, 5), u64::MAX);
    }
}
