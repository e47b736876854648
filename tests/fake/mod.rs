//! A fake WeChat / WeCom API server for the integration tests and the `fake-wechat` example.
//!
//! Hand-written HTTP/1.1 on `std::net::TcpListener`: one thread per connection, one request per
//! connection, `Connection: close`. Optional TLS with a fresh self-signed certificate (rcgen +
//! rustls/ring). It only ever binds loopback addresses and never connects anywhere except to
//! itself (to wake its accept loop on drop).
//!
//! Semantics follow /work/shared/wechat-api.md: legacy tokens (`/cgi-bin/token`), stable tokens
//! (`/cgi-bin/stable_token`), WeCom tokens (`/cgi-bin/gettoken`), tickets and the
//! `get_api_domain_ip` validity probe. The fake's clock is FROZEN unless [`FakeWeChat::advance`]
//! moves it (or [`FakeWeChat::set_realtime`] makes it follow the wall clock, as the example does),
//! so `expires_in` values are exact and tests are deterministic.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const DEFAULT_APPID: &str = "wx1234567890abcdef";
pub const DEFAULT_SECRET: &str = "demo-secret-not-a-real-one";

/// Lifetime of every token and ticket the fake issues (seconds).
pub const TOKEN_LIFETIME: u64 = 7200;
/// Overlap window: legacy predecessors stay valid this long; stable tokens rotate when at most
/// this much is left.
pub const OVERLAP: u64 = 300;
/// Upper bound for Hang / Drip / Delay (and anything else that holds a connection).
pub const HOLD_LIMIT: Duration = Duration::from_secs(120);

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const REQUEST_READ_LIMIT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// What the fake does with one token (or, via `script_tickets`, ticket) request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// The documented semantics (see the module docs).
    Normal,
    /// HTTP 200, text/plain, `{"errcode":N,"errmsg":"..."}`.
    Errcode(i64, String),
    /// HTTP 200 `{"access_token":S,"expires_in":N}` exactly as given (JSON-escaped). On ticket
    /// endpoints: `{"errcode":0,"errmsg":"ok","ticket":S,"expires_in":N}`.
    Token(String, i64),
    /// Status, content-type, body, sent verbatim with a correct Content-Length.
    Raw(u16, String, Vec<u8>),
    /// Headers claim Content-Length 200, 20 bytes of JSON follow, then the connection closes.
    Truncated,
    /// The Normal 200 JSON body padded with trailing spaces to this many bytes.
    Oversized(usize),
    /// Reads the request, never answers; holds the socket at most 120 s (or until the peer
    /// closes / the fake is dropped), then closes.
    Hang,
    /// Sends status line and headers of a Normal response at once, then the body ONE byte per
    /// second; stops after 120 s or when the peer goes away.
    Drip,
    /// 302 with `Location: <url>`, empty body.
    Redirect(String),
    /// Status, extra headers (e.g. `Retry-After`) and a text/plain body, verbatim.
    Status(u16, Vec<(String, String)>, String),
    /// Closes the connection without any response.
    Close,
    /// Sleeps N ms (capped at 120 s), then acts as the inner behaviour.
    Delay(u64, Box<Behaviour>),
}

impl Behaviour {
    fn label(&self) -> String {
        match self {
            Behaviour::Normal => "normal".into(),
            Behaviour::Errcode(n, _) => format!("errcode {n}"),
            Behaviour::Token(_, n) => format!("token (expires_in {n})"),
            Behaviour::Raw(s, _, b) => format!("raw {s} ({} bytes)", b.len()),
            Behaviour::Truncated => "truncated".into(),
            Behaviour::Oversized(n) => format!("oversized {n} bytes"),
            Behaviour::Hang => "hang".into(),
            Behaviour::Drip => "drip".into(),
            Behaviour::Redirect(_) => "redirect".into(),
            Behaviour::Status(s, h, _) => format!("status {s} with {} extra header(s)", h.len()),
            Behaviour::Close => "close".into(),
            Behaviour::Delay(ms, b) => format!("delay {ms} ms, then {}", b.label()),
        }
    }
}

/// One recorded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path without the query, e.g. `/cgi-bin/token`.
    pub path: String,
    /// Raw query string (after `?`, not decoded), empty when absent.
    pub query: String,
    /// Header names as sent (compare case-insensitively, or use [`Request::header`]).
    pub headers: Vec<(String, String)>,
    /// Body (after Content-Length / chunked decoding), lossily UTF-8.
    pub body: String,
}

impl Request {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Percent-decoded query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        parse_query(&self.query).remove(name)
    }

    /// The body parsed as JSON, if it parses.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// The fake server. It stops accepting when dropped; connections still held by Hang / Drip /
/// Delay notice within ~100 ms and close.
pub struct FakeWeChat {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
}

struct Shared {
    stop: AtomicBool,
    log: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler thread must not wedge the tests.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenKind {
    Legacy,
    Stable,
    WeCom,
}

struct TokenInfo {
    appid: String,
    kind: TokenKind,
    expires_at: u64,
    /// Cut short by a newer token (legacy) or force_refresh (stable): once dead, report 40001
    /// ("invalid or not latest") rather than 42001 ("expired").
    superseded: bool,
    /// Revoked by WeChat (see [`FakeWeChat::revoke`]): every API rejects it with 40001, yet stable
    /// normal mode keeps handing it out until it expires or a force_refresh replaces it.
    revoked: bool,
}

struct Clock {
    base: u64,
    offset: u64,
    running_since: Option<Instant>,
}

impl Clock {
    fn now(&self) -> u64 {
        self.base + self.offset + self.running_since.map_or(0, |t| t.elapsed().as_secs())
    }
}

struct State {
    accounts: HashMap<String, String>,
    token_queue: VecDeque<Behaviour>,
    token_default: Behaviour,
    ticket_queue: VecDeque<Behaviour>,
    ticket_default: Behaviour,
    probe_queue: VecDeque<Behaviour>,
    probe_default: Behaviour,
    requests: Vec<Request>,
    token_calls: usize,
    clock: Clock,
    tokens: HashMap<String, TokenInfo>,
    stable_current: HashMap<String, String>,
    last_issued: HashMap<String, String>,
    /// (appid, type) -> (ticket, expires_at). Types: jsapi, wx_card, corp_jsapi, agent_config.
    tickets: HashMap<(String, String), (String, u64)>,
    rng: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TicketKind {
    /// `/cgi-bin/ticket/getticket?type=jsapi|wx_card`
    Mp,
    /// WeCom `/cgi-bin/get_jsapi_ticket`
    CorpJsapi,
    /// WeCom `/cgi-bin/ticket/get?type=agent_config`
    Agent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Token(TokenKind),
    Ticket(TicketKind),
    DomainIp,
    NotFound,
}

fn classify(path: &str) -> Endpoint {
    match path {
        "/cgi-bin/token" => Endpoint::Token(TokenKind::Legacy),
        "/cgi-bin/stable_token" => Endpoint::Token(TokenKind::Stable),
        "/cgi-bin/gettoken" => Endpoint::Token(TokenKind::WeCom),
        "/cgi-bin/ticket/getticket" => Endpoint::Ticket(TicketKind::Mp),
        "/cgi-bin/get_jsapi_ticket" => Endpoint::Ticket(TicketKind::CorpJsapi),
        "/cgi-bin/ticket/get" => Endpoint::Ticket(TicketKind::Agent),
        "/cgi-bin/get_api_domain_ip" => Endpoint::DomainIp,
        _ => Endpoint::NotFound,
    }
}

static SEED_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FakeWeChat {
    /// Plain HTTP on 127.0.0.1 (ephemeral port), default account added.
    pub fn start() -> FakeWeChat {
        FakeWeChat::start_on("127.0.0.1:0", false).expect("start fake WeChat (http)")
    }

    /// HTTPS on 127.0.0.1 with a fresh self-signed certificate (SANs localhost, 127.0.0.1, ::1).
    pub fn start_tls() -> FakeWeChat {
        FakeWeChat::start_on("127.0.0.1:0", true).expect("start fake WeChat (https)")
    }

    /// Binds `addr` (which must resolve to loopback addresses only, else `InvalidInput`),
    /// default account added.
    pub fn start_on(addr: &str, tls: bool) -> io::Result<FakeWeChat> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr}: resolves to no address"),
            ));
        }
        if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to listen on non-loopback address {bad}"),
            ));
        }
        let listener = TcpListener::bind(&addrs[..])?;
        let local = listener.local_addr()?;

        let (tls_config, ca_pem) = if tls {
            let (cfg, pem) = make_tls_config()?;
            (Some(cfg), Some(pem))
        } else {
            (None, None)
        };

        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1_700_000_000);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ SEED_COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (u64::from(local.port()) << 48);

        let mut accounts = HashMap::new();
        accounts.insert(DEFAULT_APPID.to_string(), DEFAULT_SECRET.to_string());
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            log: AtomicBool::new(false),
            state: Mutex::new(State {
                accounts,
                token_queue: VecDeque::new(),
                token_default: Behaviour::Normal,
                ticket_queue: VecDeque::new(),
                ticket_default: Behaviour::Normal,
                probe_queue: VecDeque::new(),
                probe_default: Behaviour::Normal,
                requests: Vec::new(),
                token_calls: 0,
                clock: Clock {
                    base: now_unix,
                    offset: 0,
                    running_since: None,
                },
                tokens: HashMap::new(),
                stable_current: HashMap::new(),
                last_issued: HashMap::new(),
                tickets: HashMap::new(),
                rng: seed,
            }),
        });

        let acc_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("fake-wechat-accept".into())
            .spawn(move || accept_loop(listener, acc_shared, tls_config))?;

        Ok(FakeWeChat {
            shared,
            addr: local,
            tls,
            ca_pem,
        })
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT` (`[::1]` for IPv6).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        match self.addr {
            SocketAddr::V4(a) => format!("{scheme}://{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("{scheme}://[{}]:{}", a.ip(), a.port()),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The self-signed certificate (PEM) when started with TLS; use it as a CA file.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Adds (or replaces the secret of) an account. WeCom corpid/corpsecret use the same table.
    pub fn add_account(&self, appid: &str, secret: &str) {
        self.shared
            .lock()
            .accounts
            .insert(appid.to_string(), secret.to_string());
    }

    /// Removes every account (including the default one).
    pub fn clear_accounts(&self) {
        self.shared.lock().accounts.clear();
    }

    /// Queues behaviours for token requests (legacy, stable, WeCom): each pops one; when the
    /// queue is empty the default behaviour applies. Appends to what is already queued.
    pub fn script(&self, behaviours: Vec<Behaviour>) {
        self.shared.lock().token_queue.extend(behaviours);
    }

    /// What token requests get once the queue is empty (initially Normal).
    pub fn set_default(&self, b: Behaviour) {
        self.shared.lock().token_default = b;
    }

    /// Same as [`FakeWeChat::script`] for the ticket endpoints.
    pub fn script_tickets(&self, behaviours: Vec<Behaviour>) {
        self.shared.lock().ticket_queue.extend(behaviours);
    }

    /// Queues behaviours for `get_api_domain_ip` (the validity probe); Normal once it is empty.
    pub fn script_probes(&self, behaviours: Vec<Behaviour>) {
        self.shared.lock().probe_queue.extend(behaviours);
    }

    /// What probes get once their queue is empty (initially Normal): an outage, say.
    pub fn set_probe_default(&self, b: Behaviour) {
        self.shared.lock().probe_default = b;
    }

    /// Same as [`FakeWeChat::set_default`] for the ticket endpoints.
    pub fn set_ticket_default(&self, b: Behaviour) {
        self.shared.lock().ticket_default = b;
    }

    /// Requests that reached a token endpoint (any method, any outcome).
    pub fn token_calls(&self) -> usize {
        self.shared.lock().token_calls
    }

    /// Requests that reached a ticket endpoint (any outcome).
    pub fn ticket_calls(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| matches!(classify(&r.path), Endpoint::Ticket(_)))
            .count()
    }

    /// Requests whose path (without query) equals `path`.
    pub fn calls(&self, path: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Every request that was read completely, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// Does the fake consider this access token usable now?
    pub fn is_valid(&self, token: &str) -> bool {
        let st = self.shared.lock();
        let now = st.clock.now();
        st.tokens
            .get(token)
            .is_some_and(|t| now < t.expires_at && !t.revoked)
    }

    /// WeChat revokes a token early (out of band): APIs answer 40001 for it, but stable normal
    /// mode still returns it as current (only `force_refresh:true` replaces it).
    pub fn revoke(&self, token: &str) {
        if let Some(t) = self.shared.lock().tokens.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Another program fetches a token for `appid` with the legacy API, exactly as a request to
    /// `/cgi-bin/token` would (the previous legacy tokens die 5 minutes later). Returns it.
    pub fn legacy_fetch_out_of_band(&self, appid: &str) -> String {
        let mut st = self.shared.lock();
        let now = st.clock.now();
        for t in st.tokens.values_mut() {
            if t.appid == appid && t.kind == TokenKind::Legacy && now + OVERLAP < t.expires_at {
                t.expires_at = now + OVERLAP;
                t.superseded = true;
            }
        }
        st.issue_token(appid, TokenKind::Legacy)
    }

    /// Another program calls the stable API with `force_refresh:true` for `appid`: the current
    /// stable token dies at once. Returns the new one.
    pub fn stable_force_out_of_band(&self, appid: &str) -> String {
        let mut st = self.shared.lock();
        let now = st.clock.now();
        if let Some(cur) = st.stable_current.get(appid).cloned()
            && let Some(old) = st.tokens.get_mut(&cur)
            && old.expires_at > now
        {
            old.expires_at = now;
            old.superseded = true;
        }
        let token = st.issue_token(appid, TokenKind::Stable);
        st.stable_current.insert(appid.to_string(), token.clone());
        token
    }

    /// Stable-token requests that asked for `force_refresh:true`.
    pub fn force_refresh_calls(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| {
                r.path == "/cgi-bin/stable_token"
                    && r.json()
                        .and_then(|v| v.get("force_refresh").and_then(|f| f.as_bool()))
                        == Some(true)
            })
            .count()
    }

    /// Tokens issued for this appid/corpid so far (a request that hung or failed issued none).
    pub fn issued(&self, appid: &str) -> usize {
        self.shared
            .lock()
            .tokens
            .values()
            .filter(|t| t.appid == appid)
            .count()
    }

    /// Seconds of validity left for this token (None if unknown or dead).
    pub fn remaining(&self, token: &str) -> Option<u64> {
        let st = self.shared.lock();
        let now = st.clock.now();
        st.tokens
            .get(token)
            .filter(|t| now < t.expires_at)
            .map(|t| t.expires_at - now)
    }

    /// The token most recently issued for this appid/corpid (any kind: legacy, stable or WeCom),
    /// whether or not it is still valid; None if none was issued. A stable-token call that
    /// returned the same token again does not change it.
    pub fn current_token(&self, appid: &str) -> Option<String> {
        self.shared.lock().last_issued.get(appid).cloned()
    }

    /// The ticket held for (appid, type) if still valid; type is one of `jsapi`, `wx_card`,
    /// `corp_jsapi` (WeCom get_jsapi_ticket), `agent_config`.
    pub fn current_ticket(&self, appid: &str, ticket_type: &str) -> Option<String> {
        let st = self.shared.lock();
        let now = st.clock.now();
        st.tickets
            .get(&(appid.to_string(), ticket_type.to_string()))
            .filter(|(_, exp)| now < *exp)
            .map(|(t, _)| t.clone())
    }

    /// The fake's clock jumps forward.
    pub fn advance(&self, secs: u64) {
        self.shared.lock().clock.offset += secs;
    }

    /// The fake's clock (unix-like seconds: wall time at start + advances).
    pub fn now(&self) -> u64 {
        self.shared.lock().clock.now()
    }

    /// When on, the clock also follows real elapsed time (for the demo). Off by default.
    pub fn set_realtime(&self, on: bool) {
        let mut st = self.shared.lock();
        let clock = &mut st.clock;
        match (on, clock.running_since) {
            (true, None) => clock.running_since = Some(Instant::now()),
            (false, Some(t)) => {
                clock.offset += t.elapsed().as_secs();
                clock.running_since = None;
            }
            _ => {}
        }
    }

    /// When on, one line per request goes to stderr (method, path, behaviour; never secrets).
    pub fn set_log(&self, on: bool) {
        self.shared.log.store(on, Ordering::Relaxed);
    }
}

impl Drop for FakeWeChat {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop; it sees the flag and exits, dropping the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn make_tls_config() -> io::Result<(Arc<rustls::ServerConfig>, String)> {
    let other = |e: &dyn std::fmt::Display| io::Error::other(e.to_string());
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| other(&e))?;
    let pem = ck.cert.pem();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| other(&e))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| other(&e))?;
    Ok((Arc::new(cfg), pem))
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: Option<Arc<rustls::ServerConfig>>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let tcp = match incoming {
            Ok(s) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        let _ = std::thread::Builder::new()
            .name("fake-wechat-conn".into())
            .spawn(move || {
                let _ = tcp.set_nodelay(true);
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
                let conn = match tls {
                    None => Conn::Plain(tcp),
                    Some(cfg) => match rustls::ServerConnection::new(cfg) {
                        Ok(sc) => Conn::Tls(Box::new(rustls::StreamOwned::new(sc, tcp))),
                        Err(_) => return,
                    },
                };
                handle(conn, &shared);
            });
    }
}

// ---------------------------------------------------------------------------------------------
// Connection I/O

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }

    /// Orderly end: TLS close_notify, FIN, then drain what the peer still sends (bounded), so
    /// the kernel does not answer unread data with an RST that could destroy our response.
    fn finish(mut self) {
        if let Conn::Tls(s) = &mut self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.flush();
        let tcp = self.tcp();
        let _ = tcp.shutdown(Shutdown::Write);
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut buf = [0u8; 4096];
        let mut reader = tcp;
        while Instant::now() < deadline {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => break,
            }
        }
    }

    /// Abrupt end: no close_notify, just close the socket.
    fn abort(self) {
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

enum ReadError {
    /// Peer went away, timed out, TLS failure, or the fake is stopping: just drop the socket.
    Gone,
    /// Malformed request: answer 400.
    Bad(&'static str),
    /// Headers or body too large: answer 413 / 431.
    TooLarge(u16),
}

struct RequestReader<'a> {
    conn: &'a mut Conn,
    stop: &'a AtomicBool,
    buf: Vec<u8>,
    pos: usize,
    deadline: Instant,
}

impl RequestReader<'_> {
    /// Appends at least one byte to `buf`.
    fn more(&mut self) -> Result<(), ReadError> {
        let mut chunk = [0u8; 8192];
        loop {
            if Instant::now() > self.deadline || self.stop.load(Ordering::Relaxed) {
                return Err(ReadError::Gone);
            }
            match self.conn.read(&mut chunk) {
                Ok(0) => return Err(ReadError::Gone),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => return Err(ReadError::Gone),
            }
        }
    }

    fn ensure(&mut self, n: usize) -> Result<(), ReadError> {
        while self.buf.len() - self.pos < n {
            self.more()?;
        }
        Ok(())
    }

    /// One CRLF-terminated line starting at `pos` (consumed), without the CRLF.
    fn line(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                let line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 2;
                return Ok(line);
            }
            if self.buf.len() - self.pos > max {
                return Err(ReadError::Bad("line too long"));
            }
            self.more()?;
        }
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        self.ensure(n)?;
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(v)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_request(conn: &mut Conn, stop: &AtomicBool) -> Result<Request, ReadError> {
    let mut r = RequestReader {
        conn,
        stop,
        buf: Vec::new(),
        pos: 0,
        deadline: Instant::now() + REQUEST_READ_LIMIT,
    };
    let head_end = loop {
        if let Some(i) = find(&r.buf, b"\r\n\r\n") {
            break i;
        }
        if r.buf.len() > MAX_HEAD {
            return Err(ReadError::TooLarge(431));
        }
        r.more()?;
    };
    let head = String::from_utf8_lossy(&r.buf[..head_end]).into_owned();
    r.pos = head_end + 4;

    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
        _ => return Err(ReadError::Bad("bad request line")),
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Bad("unsupported HTTP version"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(ReadError::Bad("bad header line"));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };

    // Absolute-form target (proxy style): keep only path + query.
    let mut target = target;
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            target = rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };

    if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        let _ = r.conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        let _ = r.conn.flush();
    }

    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let line = r.line(1024)?;
            let line = String::from_utf8_lossy(&line);
            let size_str = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|_| ReadError::Bad("bad chunk size"))?;
            if size == 0 {
                // Trailers up to an empty line.
                for _ in 0..64 {
                    if r.line(8192)?.is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(ReadError::TooLarge(413));
            }
            body.extend(r.take(size)?);
            if !r.take(2)?.eq(b"\r\n") {
                return Err(ReadError::Bad("bad chunk terminator"));
            }
        }
        body
    } else if let Some(cl) = get("content-length") {
        let n: usize = cl
            .parse()
            .map_err(|_| ReadError::Bad("bad Content-Length"))?;
        if n > MAX_BODY {
            return Err(ReadError::TooLarge(413));
        }
        r.take(n)?
    } else {
        Vec::new()
    };

    Ok(Request {
        method: method.to_string(),
        path,
        query,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Responses

struct Reply {
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: "text/plain".into(),
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    fn head(&self, content_length: usize) -> Vec<u8> {
        let mut h = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            content_length
        );
        for (k, v) in &self.headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    fn send(&self, mut conn: Conn) {
        let mut out = self.head(self.body.len());
        out.extend_from_slice(&self.body);
        if conn.write_all(&out).and_then(|_| conn.flush()).is_ok() {
            conn.finish();
        } else {
            conn.abort();
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn errcode_body(code: i64, msg: &str) -> String {
    format!(r#"{{"errcode":{code},"errmsg":{}}}"#, js(msg))
}

fn token_body(token: &str, expires_in: i64) -> String {
    format!(
        r#"{{"access_token":{},"expires_in":{expires_in}}}"#,
        js(token)
    )
}

fn wecom_token_body(token: &str, expires_in: i64) -> String {
    format!(
        r#"{{"errcode":0,"errmsg":"ok","access_token":{},"expires_in":{expires_in}}}"#,
        js(token)
    )
}

fn ticket_body(ticket: &str, expires_in: i64) -> String {
    format!(
        r#"{{"errcode":0,"errmsg":"ok","ticket":{},"expires_in":{expires_in}}}"#,
        js(ticket)
    )
}

/// Sleeps up to `total` (capped at HOLD_LIMIT) in short slices; false if the fake is stopping.
fn sleep_bounded(total: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + total.min(HOLD_LIMIT);
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(POLL));
    }
}

// ---------------------------------------------------------------------------------------------
// Request handling

fn handle(mut conn: Conn, shared: &Shared) {
    let req = match read_request(&mut conn, &shared.stop) {
        Ok(r) => r,
        Err(ReadError::Gone) => return conn.abort(),
        Err(ReadError::Bad(why)) => {
            let mut r = Reply::json(errcode_body(-1, why));
            r.status = 400;
            return r.send(conn);
        }
        Err(ReadError::TooLarge(status)) => {
            let mut r = Reply::json(errcode_body(-1, "request too large"));
            r.status = status;
            return r.send(conn);
        }
    };
    let endpoint = classify(&req.path);
    let behaviour = {
        let mut st = shared.lock();
        st.requests.push(req.clone());
        match endpoint {
            Endpoint::Token(_) => {
                st.token_calls += 1;
                match st.token_queue.pop_front() {
                    Some(b) => b,
                    None => st.token_default.clone(),
                }
            }
            Endpoint::Ticket(_) => match st.ticket_queue.pop_front() {
                Some(b) => b,
                None => st.ticket_default.clone(),
            },
            Endpoint::DomainIp => match st.probe_queue.pop_front() {
                Some(b) => b,
                None => st.probe_default.clone(),
            },
            _ => Behaviour::Normal,
        }
    };
    if shared.log.load(Ordering::Relaxed) {
        eprintln!(
            "fake-wechat: {} {} -> {}",
            req.method,
            req.path,
            behaviour.label()
        );
    }
    act(conn, shared, &req, endpoint, behaviour);
}

fn act(mut conn: Conn, shared: &Shared, req: &Request, endpoint: Endpoint, b: Behaviour) {
    match b {
        Behaviour::Normal => normal(shared, req, endpoint).send(conn),
        Behaviour::Errcode(code, msg) => Reply::json(errcode_body(code, &msg)).send(conn),
        Behaviour::Token(s, n) => {
            let body = match endpoint {
                Endpoint::Ticket(_) => ticket_body(&s, n),
                _ => token_body(&s, n),
            };
            Reply::json(body).send(conn)
        }
        Behaviour::Raw(status, ctype, body) => Reply {
            status,
            content_type: ctype,
            headers: Vec::new(),
            body,
        }
        .send(conn),
        Behaviour::Truncated => {
            let mut out = Reply::json(String::new()).head(200);
            out.extend_from_slice(&br#"{"access_token":"80_"#[..20]);
            let _ = conn.write_all(&out);
            let _ = conn.flush();
            conn.abort();
        }
        Behaviour::Oversized(size) => {
            let reply = normal(shared, req, endpoint);
            let mut body = reply.body;
            if body.len() < size {
                body.resize(size, b' ');
            }
            let mut out = reply_head_200(body.len());
            out.extend_from_slice(&body);
            let deadline = Instant::now() + HOLD_LIMIT;
            for chunk in out.chunks(64 * 1024) {
                if Instant::now() > deadline
                    || shared.stop.load(Ordering::Relaxed)
                    || conn.write_all(chunk).is_err()
                {
                    return conn.abort();
                }
            }
            let _ = conn.flush();
            conn.finish();
        }
        Behaviour::Hang => {
            let start = Instant::now();
            let _ = conn.tcp().set_read_timeout(Some(POLL));
            let mut buf = [0u8; 1024];
            while start.elapsed() < HOLD_LIMIT && !shared.stop.load(Ordering::Relaxed) {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            conn.abort();
        }
        Behaviour::Drip => {
            let reply = normal(shared, req, endpoint);
            let start = Instant::now();
            if conn
                .write_all(&reply.head(reply.body.len()))
                .and_then(|_| conn.flush())
                .is_err()
            {
                return conn.abort();
            }
            for byte in &reply.body {
                if !sleep_bounded(Duration::from_secs(1), &shared.stop)
                    || start.elapsed() >= HOLD_LIMIT
                    || conn.write_all(&[*byte]).and_then(|_| conn.flush()).is_err()
                {
                    return conn.abort();
                }
            }
            conn.finish();
        }
        Behaviour::Redirect(url) => Reply {
            status: 302,
            content_type: "text/plain".into(),
            headers: vec![("Location".into(), url)],
            body: Vec::new(),
        }
        .send(conn),
        Behaviour::Status(status, headers, body) => Reply {
            status,
            content_type: "text/plain".into(),
            headers,
            body: body.into_bytes(),
        }
        .send(conn),
        Behaviour::Close => conn.abort(),
        Behaviour::Delay(ms, inner) => {
            if sleep_bounded(Duration::from_millis(ms), &shared.stop) {
                act(conn, shared, req, endpoint, *inner);
            } else {
                conn.abort();
            }
        }
    }
}

fn reply_head_200(len: usize) -> Vec<u8> {
    Reply::json(String::new()).head(len)
}

fn normal(shared: &Shared, req: &Request, endpoint: Endpoint) -> Reply {
    let mut st = shared.lock();
    let body = match endpoint {
        Endpoint::Token(TokenKind::Legacy) => st.legacy(req),
        Endpoint::Token(TokenKind::Stable) => st.stable(req),
        Endpoint::Token(TokenKind::WeCom) => st.wecom(req),
        Endpoint::Ticket(kind) => st.ticket(req, kind),
        Endpoint::DomainIp => st.domain_ip(req),
        Endpoint::NotFound => {
            let mut r = Reply::json(errcode_body(-1, "not found"));
            r.status = 404;
            return r;
        }
    };
    Reply::json(body)
}

fn parse_query(q: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(percent_decode(k))
            .or_insert_with(|| percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => {
                    out.push(v);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

type ApiResult<T> = Result<T, String>;

impl State {
    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn random_chars(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| ALPHABET[(self.next_u64() & 63) as usize] as char)
            .collect()
    }

    /// An error body with a realistic, variable `rid:` suffix (branch on errcode, not errmsg).
    fn err(&mut self, code: i64, msg: &str) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        let rid = format!("{:08x}-{:08x}-{:08x}", a as u32, (a >> 32) as u32, b as u32);
        errcode_body(code, &format!("{msg} rid: {rid}"))
    }

    fn issue_token(&mut self, appid: &str, kind: TokenKind) -> String {
        let now = self.clock.now();
        let mut token = String::new();
        for _ in 0..16 {
            let n = 80 + self.next_u64() % 20;
            let tail = self.random_chars(132);
            token = format!("{n}_{tail}");
            if !self.tokens.contains_key(&token) {
                break;
            }
        }
        self.tokens.insert(
            token.clone(),
            TokenInfo {
                appid: appid.to_string(),
                kind,
                expires_at: now + TOKEN_LIFETIME,
                superseded: false,
                revoked: false,
            },
        );
        self.last_issued.insert(appid.to_string(), token.clone());
        token
    }

    fn check_account(&mut self, appid: &str, secret: &str) -> ApiResult<()> {
        match self.accounts.get(appid) {
            None => Err(self.err(40013, "invalid appid")),
            Some(s) if s != secret => Err(self.err(
                40001,
                "invalid credential, access_token is invalid or not latest",
            )),
            Some(_) => Ok(()),
        }
    }

    fn legacy(&mut self, req: &Request) -> String {
        self.legacy_inner(req).unwrap_or_else(|e| e)
    }

    fn legacy_inner(&mut self, req: &Request) -> ApiResult<String> {
        let q = parse_query(&req.query);
        let appid = nonempty(q.get("appid")).ok_or_else(|| self.err(41002, "appid missing"))?;
        let secret =
            nonempty(q.get("secret")).ok_or_else(|| self.err(41004, "appsecret missing"))?;
        if q.get("grant_type").map(String::as_str) != Some("client_credential") {
            return Err(self.err(40002, "invalid grant_type"));
        }
        self.check_account(&appid, &secret)?;
        let now = self.clock.now();
        for t in self.tokens.values_mut() {
            if t.appid == appid && t.kind == TokenKind::Legacy && now + OVERLAP < t.expires_at {
                t.expires_at = now + OVERLAP;
                t.superseded = true;
            }
        }
        let token = self.issue_token(&appid, TokenKind::Legacy);
        Ok(token_body(&token, TOKEN_LIFETIME as i64))
    }

    fn stable(&mut self, req: &Request) -> String {
        self.stable_inner(req).unwrap_or_else(|e| e)
    }

    fn stable_inner(&mut self, req: &Request) -> ApiResult<String> {
        if req.method != "POST" {
            return Err(self.err(43002, "require POST method"));
        }
        let v: serde_json::Value = match serde_json::from_str(&req.body) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => return Err(self.err(47001, "data format error")),
        };
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let appid =
            nonempty(field("appid").as_ref()).ok_or_else(|| self.err(41002, "appid missing"))?;
        let secret = nonempty(field("secret").as_ref())
            .ok_or_else(|| self.err(41004, "appsecret missing"))?;
        if field("grant_type").as_deref() != Some("client_credential") {
            return Err(self.err(40002, "invalid grant_type"));
        }
        self.check_account(&appid, &secret)?;
        let force = v
            .get("force_refresh")
            .and_then(|x| x.as_bool())
            .unwrap_or(false);
        let now = self.clock.now();
        let current = self.stable_current.get(&appid).cloned();
        if force {
            if let Some(old) = current.as_ref().and_then(|c| self.tokens.get_mut(c))
                && old.expires_at > now
            {
                old.expires_at = now;
                old.superseded = true;
            }
        } else if let Some(cur) = &current
            && let Some(info) = self.tokens.get(cur)
            && info.expires_at > now + OVERLAP
        {
            let left = info.expires_at - now;
            return Ok(token_body(cur, left as i64));
        }
        let token = self.issue_token(&appid, TokenKind::Stable);
        self.stable_current.insert(appid, token.clone());
        Ok(token_body(&token, TOKEN_LIFETIME as i64))
    }

    fn wecom(&mut self, req: &Request) -> String {
        self.wecom_inner(req).unwrap_or_else(|e| e)
    }

    fn wecom_inner(&mut self, req: &Request) -> ApiResult<String> {
        let q = parse_query(&req.query);
        let corpid = nonempty(q.get("corpid")).ok_or_else(|| self.err(41002, "corpid missing"))?;
        let secret =
            nonempty(q.get("corpsecret")).ok_or_else(|| self.err(41004, "corpsecret missing"))?;
        match self.accounts.get(&corpid) {
            None => return Err(self.err(40013, "invalid corpid")),
            Some(s) if *s != secret => return Err(self.err(40001, "invalid secret")),
            Some(_) => {}
        }
        let token = self.issue_token(&corpid, TokenKind::WeCom);
        Ok(wecom_token_body(&token, TOKEN_LIFETIME as i64))
    }

    /// The appid a usable token belongs to, else the 41001 / 40001 / 42001 error body.
    fn check_token(&mut self, q: &HashMap<String, String>) -> ApiResult<String> {
        let token = nonempty(q.get("access_token"))
            .ok_or_else(|| self.err(41001, "access_token missing"))?;
        let now = self.clock.now();
        match self.tokens.get(&token) {
            Some(t) if now < t.expires_at && !t.revoked => Ok(t.appid.clone()),
            Some(t) if !t.superseded && !t.revoked => Err(self.err(42001, "access_token expired")),
            _ => Err(self.err(
                40001,
                "invalid credential, access_token is invalid or not latest",
            )),
        }
    }

    fn ticket(&mut self, req: &Request, kind: TicketKind) -> String {
        self.ticket_inner(req, kind).unwrap_or_else(|e| e)
    }

    fn ticket_inner(&mut self, req: &Request, kind: TicketKind) -> ApiResult<String> {
        let q = parse_query(&req.query);
        let appid = self.check_token(&q)?;
        let ty = q.get("type").map(String::as_str).unwrap_or_default();
        let ty = match (kind, ty) {
            (TicketKind::Mp, "jsapi" | "wx_card") => ty.to_string(),
            (TicketKind::CorpJsapi, _) => "corp_jsapi".to_string(),
            (TicketKind::Agent, "agent_config") => ty.to_string(),
            _ => return Err(self.err(40097, "invalid args")),
        };
        let now = self.clock.now();
        let key = (appid, ty);
        if let Some((t, exp)) = self.tickets.get(&key)
            && now < *exp
        {
            // Suspected real behaviour: same ticket, but expires_in is the full lifetime again.
            return Ok(ticket_body(t, TOKEN_LIFETIME as i64));
        }
        let ticket = self.random_chars(86);
        self.tickets
            .insert(key, (ticket.clone(), now + TOKEN_LIFETIME));
        Ok(ticket_body(&ticket, TOKEN_LIFETIME as i64))
    }

    fn domain_ip(&mut self, req: &Request) -> String {
        let q = parse_query(&req.query);
        match self.check_token(&q) {
            Ok(_) => r#"{"ip_list":["127.0.0.1"]}"#.to_string(),
            Err(e) => e,
        }
    }
}

fn nonempty(v: Option<&String>) -> Option<String> {
    v.filter(|s| !s.is_empty()).cloned()
}
