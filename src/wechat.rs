//! The WeChat / WeCom HTTP client: requests, answers judged, errcodes classified, retries.
//!
//! WeChat answers errors with HTTP 200 and an `errcode` body, often as `text/plain`, so bodies are
//! parsed as JSON whatever the Content-Type and the decision is made on `errcode`, never on
//! `errmsg` (it carries a variable `rid:` suffix).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use log::{debug, warn};
use serde_json::{Map, Value};
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::api::{Api, MAX_EXPIRES_IN, validate_token};
use crate::config::{Base, Config};
use crate::deadline::Deadline;
use crate::error::{Error, Kind, Result};
use crate::logging::register_token;
use crate::text::{printable, url_encode};
use crate::trust;

/// WeChat bodies are 100-200 bytes; anything this large is not a token answer.
pub const MAX_BODY: u64 = 64 * 1024;

/// A token (or ticket) as WeChat handed it out, already validated.
#[derive(Debug, Clone)]
pub struct Grant {
    pub value: String,
    pub expires_in: u64,
    /// The base URL that answered (for monitoring: a fallback in use says the first is down).
    pub base: String,
}

/// What `get_api_domain_ip` says about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// WeChat accepted it.
    Alive,
    /// WeChat rejected it: 40001 (invalid or not the latest), 40014 (invalid), 42001 (expired).
    Dead { errcode: i64, errmsg: String },
    /// No verdict: network, HTTP errors, another errcode (-1 busy, 45009 quota...).
    Unknown(String),
}

/// One API call, described without its base URL. `shown` is what logs and errors may print: the
/// path without the query, which for the legacy and WeCom APIs holds the secret.
pub struct Call {
    pub shown: &'static str,
    pub path_and_query: String,
    pub json_body: Option<String>,
}

/// What is being fetched: errcodes mean different things for a token and a ticket call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Token,
    Ticket,
}

/// What the admin is told alongside an errcode.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub appid: &'a str,
    pub api: Api,
    pub secret_source: &'a str,
    pub purpose: Purpose,
}

/// What an HTTP 200 answer to a token or ticket call means: see [`judge_grant`].
#[derive(Debug)]
pub enum Answer {
    /// A grant that passed validation; its `base` is empty (the caller knows who answered).
    Granted(Grant),
    /// Transient: the next base URL or round may succeed.
    Retry(String),
    /// Final: retrying cannot help within this run.
    Stop(Error),
}

/// A request that brought no HTTP 200 body to judge.
struct Tls {
    agent: Agent,
    /// How many root certificates it trusts (the system's and --ca-file's).
    roots: usize,
    /// Where the system's were looked for.
    source: String,
}

enum NoAnswer {
    /// Transient: the next base URL or round may succeed.
    Retry(String),
    /// Transient, and the server asked (Retry-After on 429/503) to wait this many seconds.
    Wait(String, u64),
}

pub struct Client {
    /// Built at the first request: loading the system's trust store is most of the cost of a
    /// run that finds the file fresh, and such a run makes no request.
    tls: OnceLock<Tls>,
    bases: Vec<Base>,
    timeout: Duration,
    retries: u32,
    ca_certs: Vec<Certificate<'static>>,
}

impl Client {
    /// Cheap: everything it needs was read and checked by [`Config`].
    pub fn new(cfg: &Config) -> Client {
        Client {
            tls: OnceLock::new(),
            bases: cfg.bases.clone(),
            timeout: cfg.timeout,
            retries: cfg.retries,
            ca_certs: cfg.ca_certs.clone(),
        }
    }

    fn tls(&self) -> &Tls {
        self.tls.get_or_init(|| {
            // Plain http goes only to this machine (config.rs); nothing to verify unless a base or
            // its proxy speaks TLS, so the store (146 roots parsed on Debian) is not read.
            let tls = |b: &Base| {
                b.https
                    || b.proxy
                        .as_ref()
                        .is_some_and(|p| p.protocol() == ureq::ProxyProtocol::Https)
            };
            let system = if self.bases.iter().any(tls) {
                trust::system_roots()
            } else {
                trust::Roots {
                    certs: Vec::new(),
                    source: "not read: no base URL or proxy uses TLS".into(),
                }
            };
            debug!("trust store: {}", system.source);
            let mut roots = system.certs;
            roots.extend(self.ca_certs.iter().cloned());
            let count = roots.len();
            let agent = Agent::config_builder()
                // Errors are classified from status and body here, not by the client.
                .http_status_as_error(false)
                // A redirect is not WeChat: never follow one (it could lead the secret elsewhere).
                .max_redirects(0)
                .user_agent(concat!("wxtoken/", env!("CARGO_PKG_VERSION")))
                // ureq would pick a proxy from the environment in its own order (ALL_PROXY first,
                // HTTP_PROXY for https); each base carries curl's choice instead (config.rs).
                .proxy(None)
                .tls_config(
                    TlsConfig::builder()
                        .unversioned_rustls_crypto_provider(Arc::new(
                            rustls::crypto::ring::default_provider(),
                        ))
                        .root_certs(RootCerts::Specific(Arc::new(roots)))
                        .build(),
                )
                .build()
                .into();
            Tls {
                agent,
                roots: count,
                source: system.source,
            }
        })
    }

    /// Err (78) when `base` needs TLS and no root certificate was found: no answer could be
    /// verified, and only an admin can add a trust store.
    fn check_trust(&self, base: &Base) -> Result<()> {
        if !base.https {
            return Ok(());
        }
        let tls = self.tls();
        if tls.roots > 0 {
            return Ok(());
        }
        Err(Error::config(format!(
            "{}: {}",
            base.url,
            trust::missing(&tls.source)
        )))
    }

    /// Fetches an access token with the configured API. `force_refresh` asks the stable API for a
    /// new token (the current one dies at once; 20 a day); legacy and WeCom always issue one.
    pub fn fetch_token(
        &self,
        ctx: &Context<'_>,
        secret: &str,
        force_refresh: bool,
        deadline: &Deadline,
    ) -> Result<Grant> {
        let call = match ctx.api {
            Api::Stable => Call {
                shown: "POST /cgi-bin/stable_token",
                path_and_query: "/cgi-bin/stable_token".into(),
                json_body: Some(
                    serde_json::json!({
                        "grant_type": "client_credential",
                        "appid": ctx.appid,
                        "secret": secret,
                        "force_refresh": force_refresh,
                    })
                    .to_string(),
                ),
            },
            Api::Legacy => Call {
                shown: "GET /cgi-bin/token",
                path_and_query: format!(
                    "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
                    url_encode(ctx.appid),
                    url_encode(secret)
                ),
                json_body: None,
            },
            Api::Wecom => Call {
                shown: "GET /cgi-bin/gettoken",
                path_and_query: format!(
                    "/cgi-bin/gettoken?corpid={}&corpsecret={}",
                    url_encode(ctx.appid),
                    url_encode(secret)
                ),
                json_body: None,
            },
        };
        self.fetch_grant(&call, "access_token", ctx, deadline)
    }

    /// Asks WeChat whether `token` still works (`GET /cgi-bin/get_api_domain_ip`, which needs
    /// nothing but a valid token). One attempt per base URL, the next only when one gave no
    /// answer at all; never beyond the deadline.
    pub fn probe(&self, ctx: &Context<'_>, token: &str, deadline: &Deadline) -> Probe {
        register_token(token);
        let call = Call {
            shown: "GET /cgi-bin/get_api_domain_ip",
            path_and_query: format!(
                "/cgi-bin/get_api_domain_ip?access_token={}",
                url_encode(token)
            ),
            json_body: None,
        };
        let mut last =
            String::from("no attempt was made: the run's time budget (--max-time) was used up");
        for base in &self.bases {
            if deadline.exhausted() {
                break;
            }
            if let Err(e) = self.check_trust(base) {
                return Probe::Unknown(e.message);
            }
            let shown = format!("{} on {}", call.shown, base.url);
            let why = match self.request(base, &call, deadline) {
                Ok(body) => match judge_probe(&body, ctx.appid) {
                    Ok(probe) => {
                        debug!("{shown}: {probe:?}");
                        return probe;
                    }
                    Err(why) => why,
                },
                Err(NoAnswer::Retry(why) | NoAnswer::Wait(why, _)) => why,
            };
            warn!("{shown}: {why}");
            last = format!("{shown}: {why}");
        }
        Probe::Unknown(last)
    }

    /// Calls until an answer carries a valid `field` + `expires_in`, a final error, or the end of
    /// the retry rounds / the deadline.
    pub fn fetch_grant(
        &self,
        call: &Call,
        field: &str,
        ctx: &Context<'_>,
        deadline: &Deadline,
    ) -> Result<Grant> {
        for base in &self.bases {
            self.check_trust(base)?;
        }
        let mut last =
            String::from("no attempt was made: the run's time budget (--max-time) was used up");
        let mut backoff = Duration::from_secs(1);
        // What the last answer's Retry-After asked for: honoured before the next attempt.
        let mut asked = Duration::ZERO;
        'rounds: for round in 0..=self.retries {
            let mut wait = Duration::ZERO;
            if round > 0 {
                wait = backoff;
                backoff *= 2;
            }
            for base in &self.bases {
                wait = wait.max(std::mem::take(&mut asked));
                if !wait.is_zero() {
                    if deadline.exhausted() {
                        break 'rounds;
                    }
                    debug!(
                        "waiting {:.1} s before the next attempt (round {} of {})",
                        wait.as_secs_f32(),
                        round + 1,
                        self.retries + 1
                    );
                    deadline.sleep(std::mem::take(&mut wait));
                }
                if deadline.exhausted() {
                    break 'rounds;
                }
                let shown = format!("{} on {}", call.shown, base.url);
                let failed = match self.request(base, call, deadline) {
                    Ok(body) => match judge_grant(&body, field, ctx) {
                        Answer::Granted(g) => {
                            return Ok(Grant {
                                base: base.url.clone(),
                                ..g
                            });
                        }
                        Answer::Stop(e) => return Err(e),
                        Answer::Retry(why) => NoAnswer::Retry(why),
                    },
                    Err(failed) => failed,
                };
                match failed {
                    NoAnswer::Retry(why) => {
                        warn!("{shown}: {why}");
                        last = format!("{shown}: {why}");
                    }
                    NoAnswer::Wait(why, secs) => {
                        warn!("{shown}: {why}");
                        let left = deadline.remaining();
                        if Duration::from_secs(secs) > left {
                            return Err(Error::temp(format!(
                                "{shown}: {why}: WeChat asked to wait {secs} s before trying again, \
                                 more than the {} s left of this run (--max-time); not retried. \
                                 Nothing was written; the next run will try again",
                                left.as_secs()
                            )));
                        }
                        asked = Duration::from_secs(secs);
                        last = format!("{shown}: {why}");
                    }
                }
            }
        }
        Err(Error::temp(format!(
            "could not get a {field} for appid {} after {} round(s) over {} base URL(s); last error: {last}. \
             Nothing was written; the next run will try again",
            ctx.appid,
            self.retries + 1,
            self.bases.len()
        )))
    }

    /// One HTTP exchange: the body of an HTTP 200 answer, or why there is none.
    fn request(
        &self,
        base: &Base,
        call: &Call,
        deadline: &Deadline,
    ) -> std::result::Result<Vec<u8>, NoAnswer> {
        let url = format!("{}{}", base.url, call.path_and_query);
        let timeout = Some(self.timeout.min(deadline.remaining()));
        let agent = &self.tls().agent;
        let sent = match &call.json_body {
            Some(body) => agent
                .post(&url)
                .config()
                .timeout_global(timeout)
                .proxy(base.proxy.clone())
                .build()
                .header("Content-Type", "application/json")
                .send(body.as_str()),
            None => agent
                .get(&url)
                .config()
                .timeout_global(timeout)
                .proxy(base.proxy.clone())
                .build()
                .call(),
        };
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return Err(NoAnswer::Retry(describe(&e, base))),
        };
        let status = response.status().as_u16();
        let retry_after = match status {
            429 | 503 => response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(retry_after_secs),
            _ => None,
        };
        let body = match response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
        {
            Ok(b) => b,
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                return Err(NoAnswer::Retry(format!(
                    "HTTP {status} with a body over {MAX_BODY} bytes"
                )));
            }
            Err(e) => {
                return Err(NoAnswer::Retry(format!(
                    "HTTP {status}, body unreadable: {}",
                    describe(&e, base)
                )));
            }
        };
        if status != 200 {
            let why = format!("HTTP {status} ({} byte body)", body.len());
            return Err(match retry_after {
                Some(secs) => NoAnswer::Wait(format!("{why}, Retry-After {secs} s"), secs),
                None => NoAnswer::Retry(why),
            });
        }
        Ok(body)
    }
}

/// `Retry-After` in delta-seconds. An HTTP-date is treated as absent (the usual backoff
/// applies): WeChat's servers are not known to send one, and the local clock may be off.
fn retry_after_secs(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse().unwrap_or(u64::MAX))
}

fn describe(e: &ureq::Error, base: &Base) -> String {
    match (e, &base.proxy) {
        (ureq::Error::ConnectProxyFailed(_) | ureq::Error::Io(_), Some(p)) => format!(
            "{e} (through the proxy {}:{}; see HTTPS_PROXY / ALL_PROXY / NO_PROXY)",
            p.host(),
            p.port()
        ),
        _ => describe_direct(e),
    }
}

fn describe_direct(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("timed out ({e})"),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => format!(
            "TLS failed ({e}); if a TLS-inspecting proxy is in the way, give its CA with --ca-file"
        ),
        // rustls failures reach ureq as io errors ("invalid peer certificate: UnknownIssuer").
        _ if e.to_string().contains("certificate") => format!(
            "TLS certificate rejected ({e}); if a TLS-inspecting proxy is in the way, give its CA with --ca-file"
        ),
        _ => e.to_string(),
    }
}

/// The answer's `errcode`: Ok(None) when absent or the integer 0; Err when it is anything but an
/// integer (the string "40001", 0.5, null, true): such an answer is not trusted, token or not.
/// `errmsg` comes [`printable`]: it goes into errors, the journal, the run state and `status`,
/// which must each get one short line whatever WeChat (or a server posing as it) sends.
fn errcode(obj: &Map<String, Value>) -> std::result::Result<Option<(i64, String)>, String> {
    let Some(v) = obj.get("errcode") else {
        return Ok(None);
    };
    let errmsg = printable(obj.get("errmsg").and_then(Value::as_str).unwrap_or(""));
    match v.as_i64() {
        Some(0) => Ok(None),
        Some(code) => Ok(Some((code, errmsg))),
        None => Err(format!(
            "the answer's errcode {} is not an integer (errmsg {errmsg:?}); the answer is refused",
            printable(&v.to_string())
        )),
    }
}

/// The body of an HTTP 200 answer as a JSON object, whatever the Content-Type said.
fn json_object(body: &[u8]) -> std::result::Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("HTTP 200 with an empty body".into());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err("the body is JSON but not an object".into()),
        Err(e) => Err(format!("the body ({} bytes) is not JSON: {e}", body.len())),
    }
}

/// What the body of an HTTP 200 answer to a token or ticket call (`field`: `access_token` or
/// `ticket`) means. The one place such a body is judged: [`Client::fetch_grant`] calls it, and
/// so does the fuzz target `answer` (fuzz/), which checks its invariants on arbitrary bodies.
pub fn judge_grant(body: &[u8], field: &str, ctx: &Context<'_>) -> Answer {
    let obj = match json_object(body) {
        Ok(obj) => obj,
        Err(why) => return Answer::Retry(why),
    };
    match errcode(&obj) {
        Err(why) => return Answer::Retry(why),
        Ok(Some((code, errmsg))) => {
            return match classify(code, &errmsg, ctx) {
                Answer::Stop(e) => Answer::Stop(e.with_errcode(code)),
                other => other,
            };
        }
        Ok(None) => {}
    }
    match grant_from(&obj, field) {
        Ok(g) => Answer::Granted(g),
        Err(why) => Answer::Retry(why),
    }
}

/// What the body of an HTTP 200 answer to `get_api_domain_ip` says about the token; Err when it
/// says nothing trustworthy. Used by [`Client::probe`] and the fuzz target `answer`.
pub fn judge_probe(body: &[u8], appid: &str) -> std::result::Result<Probe, String> {
    let obj = json_object(body)?;
    Ok(match errcode(&obj)? {
        None => Probe::Alive,
        Some((errcode @ (40001 | 40014 | 42001), errmsg)) => Probe::Dead { errcode, errmsg },
        Some((code, errmsg)) => Probe::Unknown(format!(
            "WeChat answered errcode {code} ({errmsg}) for appid {appid}"
        )),
    })
}

/// The grant in a checked answer; `base` is filled in by the caller, which knows it.
fn grant_from(obj: &Map<String, Value>, field: &str) -> std::result::Result<Grant, String> {
    let value = match obj.get(field) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(format!("the answer's {field} is not a string; refused")),
        None => return Err(format!("the answer has neither {field} nor an errcode")),
    };
    validate_token(value).map_err(|why| format!("the {field} WeChat sent is refused: {why}"))?;
    let expires_in = match obj.get("expires_in").and_then(Value::as_u64) {
        Some(n) if (1..=MAX_EXPIRES_IN).contains(&n) => n,
        _ => {
            return Err(format!(
                "the answer's expires_in {} is not an integer from 1 to {MAX_EXPIRES_IN}; refused",
                obj.get("expires_in")
                    .map_or("(missing)".to_string(), |v| printable(&v.to_string()))
            ));
        }
    };
    Ok(Grant {
        value: value.clone(),
        expires_in,
        base: String::new(),
    })
}

/// Maps a WeChat errcode to what the run does and what the admin is told.
fn classify(code: i64, errmsg: &str, ctx: &Context<'_>) -> Answer {
    let appid = ctx.appid;
    let secret = ctx.secret_source;
    let what = format!("WeChat answered errcode {code} ({errmsg}) for appid {appid}");
    let config = |fix: String| Answer::Stop(Error::config(format!("{what}: {fix}")).with_fix(fix));
    match code {
        -1 => return Answer::Retry(format!("{what}: system busy")),
        45011 => return Answer::Retry(format!("{what}: per-minute API quota hit")),
        45009 => {
            return Answer::Stop(Error::temp(format!(
                "{what}: the daily quota for this API is used up. Not retried: wait until tomorrow, or reset \
                 it with clear_quota (10 per month). Apps keep reading the current file until it expires"
            )));
        }
        _ => {}
    }
    if ctx.purpose == Purpose::Ticket {
        return match code {
            40001 | 40014 | 42001 => Answer::Stop(Error::new(
                Kind::TokenRejected,
                format!("{what}: the access token was rejected while fetching a ticket"),
            )),
            48001 => config(
                "this account is not authorized for the ticket API (check its JS-SDK permissions)"
                    .into(),
            ),
            40097 | 40002 => {
                config("the ticket request was not understood; check --ticket against --api".into())
            }
            _ => Answer::Retry(format!("{what}: unexpected errcode")),
        };
    }
    match code {
        40001 | 40125 | 40091 => config(format!(
            "the secret is wrong. Put the current {} in {secret}{}",
            if ctx.api == Api::Wecom {
                "corpsecret of this WeCom app"
            } else {
                "AppSecret"
            },
            if ctx.api == Api::Wecom {
                ""
            } else {
                " (mp.weixin.qq.com: Settings and Development > Basic Configuration)"
            }
        )),
        40013 => config(format!(
            "the {} is not valid. Check --appid / WXTOKEN_APPID",
            if ctx.api == Api::Wecom {
                "corpid"
            } else {
                "appid"
            }
        )),
        40164 | 61004 | 60020 => {
            let ip = reported_ip(errmsg)
                .map_or("this host's address".to_string(), |ip| format!("IP {ip}"));
            config(format!(
                "{ip} is not on the account's IP whitelist. Add it ({})",
                if ctx.api == Api::Wecom {
                    "WeCom admin console: the app's trusted IPs"
                } else {
                    "mp.weixin.qq.com: Settings and Development > Basic Configuration > IP whitelist"
                }
            ))
        }
        40243 => {
            config("the AppSecret is frozen. Unfreeze or reset it in the admin console".into())
        }
        41002 => config("the appid is missing. Set --appid / WXTOKEN_APPID".into()),
        41004 => config(format!("the secret is missing. Put it in {secret}")),
        89501 | 89503 => config(
            "this IP is waiting for an administrator to confirm it in the WeChat admin console. \
             Approve it; the next run will then succeed"
                .into(),
        ),
        89506 | 89507 => config(
            "an administrator rejected this IP, which is now blocked for a while (1 h or 24 h). \
             Approve the IP in the admin console before the block ends"
                .into(),
        ),
        48002 => {
            config("this API is forbidden for the app. Check the app's API permissions".into())
        }
        40002 | 43002 | 47001 => config(format!(
            "the request was not understood (--api {} against this base URL?). Check --api and --api-base",
            ctx.api.name()
        )),
        _ => Answer::Retry(format!("{what}: unexpected errcode")),
    }
}

/// WeChat names the caller's address in errmsg, e.g. "invalid ip 203.0.113.7 ipv6 ::ffff:...,
/// not in whitelist rid: ...".
fn reported_ip(errmsg: &str) -> Option<std::net::IpAddr> {
    errmsg
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .filter(|w| w.contains('.') || w.matches(':').count() >= 2)
        .find_map(|w| w.trim_matches(|c| c == '.' || c == ':').parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(purpose: Purpose) -> Context<'static> {
        Context {
            appid: "wxa",
            api: Api::Stable,
            secret_source: "/etc/wxtoken/secret",
            purpose,
        }
    }

    #[test]
    fn answers_are_judged_as_the_client_judges_them() {
        let body = br#"{"access_token":"80_tok","expires_in":7200}"#;
        let Answer::Granted(g) = judge_grant(body, "access_token", &ctx(Purpose::Token)) else {
            panic!("refused");
        };
        assert_eq!((g.value.as_str(), g.expires_in), ("80_tok", 7200));
        assert!(matches!(
            judge_grant(body, "ticket", &ctx(Purpose::Ticket)),
            Answer::Retry(_)
        ));
        assert_eq!(judge_probe(body, "wxa"), Ok(Probe::Alive));
        let dead = br#"{"errcode":42001,"errmsg":"access_token expired rid: 1"}"#;
        assert!(matches!(
            judge_probe(dead, "wxa"),
            Ok(Probe::Dead { errcode: 42001, .. })
        ));
    }

    #[test]
    fn text_from_the_answer_is_quoted_on_one_line() {
        // errmsg, errcode and expires_in values are quoted escaped and short: a newline must not
        // forge a log line of its own, nor DEL or 64 KiB get through.
        let cases: [&[u8]; 3] = [
            br#"{"errcode":40013,"errmsg":"invalid appid\n[ERROR] forged"}"#,
            b"{\"errcode\":\"4\x7f\",\"errmsg\":\"x\"}",
            br#"{"access_token":"80_tok","expires_in":"7200\r\n7200"}"#,
        ];
        for body in cases {
            let why = match judge_grant(body, "access_token", &ctx(Purpose::Token)) {
                Answer::Stop(e) => e.message,
                Answer::Retry(why) => why,
                Answer::Granted(g) => panic!("granted {g:?}"),
            };
            assert!(!why.chars().any(char::is_control), "{why:?}");
        }
        let long = format!(r#"{{"errcode":-1,"errmsg":"{}"}}"#, "x".repeat(60_000));
        let Answer::Retry(why) = judge_grant(long.as_bytes(), "access_token", &ctx(Purpose::Token))
        else {
            panic!("not retried");
        };
        assert!(why.len() < 500, "{} bytes", why.len());
        let probe = br#"{"errcode":40001,"errmsg":"invalid\ncredential"}"#;
        let Ok(Probe::Dead { errmsg, .. }) = judge_probe(probe, "wxa") else {
            panic!("not dead");
        };
        assert_eq!(errmsg, "invalid\\ncredential");
    }

    #[test]
    fn ip_from_errmsg() {
        let ip = reported_ip(
            "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: 65a1-2b",
        );
        assert_eq!(ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(reported_ip("not in whitelist"), None);
        assert_eq!(
            reported_ip("invalid ip 2001:db8::1, not in whitelist"),
            Some("2001:db8::1".parse().unwrap())
        );
    }
}
