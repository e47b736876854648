//! The network edge: hostile base URLs, configuration errors found before the lock (on a fresh
//! file too), strict answers, Retry-After, proxies chosen as curl does (through a CONNECT proxy
//! written here, on 127.0.0.1), and the probe API against the fake.

mod common;
mod fake;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

/// Counts the connections made to an address on loopback (it never answers).
struct Listener {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Listener {
    fn on(ip: &str, port: u16) -> Listener {
        Listener::try_on(ip, port).unwrap()
    }

    fn try_on(ip: &str, port: u16) -> Option<Listener> {
        let l = TcpListener::bind((ip, port)).ok()?;
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::spawn(move || {
            for c in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                a.fetch_add(1, Ordering::SeqCst);
                drop(c);
            }
        });
        Some(Listener {
            addr,
            accepted,
            stop,
        })
    }

    fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// A minimal HTTP CONNECT proxy on 127.0.0.1. It tunnels only to loopback addresses given as IP
/// literals (it never resolves a name, so nothing can leave the host) and counts the CONNECTs.
struct ConnectProxy {
    addr: SocketAddr,
    connects: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl ConnectProxy {
    fn start() -> ConnectProxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let connects = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s) = (Arc::clone(&connects), Arc::clone(&stop));
        std::thread::spawn(move || {
            for c in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = c {
                    let n = Arc::clone(&n);
                    std::thread::spawn(move || tunnel(c, &n));
                }
            }
        });
        ConnectProxy {
            addr,
            connects,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn tunnel(mut client: TcpStream, connects: &AtomicUsize) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let reply = |mut c: &TcpStream, status: &str| {
        let _ = c.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    };
    if method != "CONNECT" {
        return reply(&client, "405 Method Not Allowed");
    }
    let Some(to) = target
        .parse::<SocketAddr>()
        .ok()
        .filter(|a| a.ip().is_loopback())
    else {
        return reply(&client, "403 Forbidden");
    };
    connects.fetch_add(1, Ordering::SeqCst);
    let Ok(upstream) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
        return reply(&client, "502 Bad Gateway");
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        let _ = from.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    };
    let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let up = std::thread::spawn(move || pipe(c2, u2));
    pipe(upstream, client);
    let _ = up.join();
}

/// A site whose token file is fresh (one refresh done): a config check that only happens on a
/// fetch would pass unnoticed on the next run.
fn fresh_site(fake: &FakeWeChat) -> Site {
    let site = Site::new();
    site.refresh(fake).run().expect(0);
    site
}

#[test]
fn a_base_with_userinfo_is_refused_and_nothing_is_contacted() {
    // The old check took the text before the last ':' as the host, so "http://127.0.0.1:1@HOST"
    // passed as loopback and the secret went in clear text to HOST, port 80. Every host here is
    // loopback, so even the old code sends nothing off this machine.
    let after = Listener::on("127.0.0.2", 0);
    let mut bases = vec![
        format!("https://user:pw@{}", after.addr),
        format!("http://user@{}", after.addr),
    ];
    // Port 80 needs root; without it the https case alone shows the connection.
    let port80 = Listener::try_on("127.0.0.3", 80);
    if port80.is_some() {
        bases.push("http://127.0.0.1:1@127.0.0.3".into());
    } else {
        show(
            "a_base_with_userinfo: port 80 not available, the http://127.0.0.1:1@HOST case is skipped",
        );
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    for base in &bases {
        site.refresh(&fake)
            .args(&["--api-base", base])
            .run()
            .expect(78)
            .stderr_has("user information");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(after.count(), 0, "a connection was made");
    assert_eq!(port80.map_or(0, |l| l.count()), 0, "a connection was made");
    assert!(!site.out.exists());
}

#[test]
fn hostile_bases_exit_78_before_any_call_even_when_the_file_is_fresh() {
    let fake = FakeWeChat::start();
    let site = fresh_site(&fake);
    let calls = fake.requests().len();
    let b = fake.base_url();
    for (base, says) in [
        (format!("{b}/cgi-bin"), "a path"),
        (format!("{b}/x/"), "a path"),
        (format!("{b}?appid=x"), "a query"),
        (format!("{b}/#x"), "a fragment"),
        (format!("{b},http://127.0.0.1.evil.example"), "plain http"),
        ("http://localhost.evil".to_string(), "plain http"),
        ("ftp://127.0.0.1".to_string(), "scheme"),
    ] {
        // With and without --force: a refused base is refused whether or not a fetch is due.
        for force in [false, true] {
            let mut c = site.refresh(&fake);
            c.args(&["--api-base", &base]);
            if force {
                c.arg("--force");
            }
            c.run().expect(78).stderr_has(says).stderr_has("--api-base");
        }
    }
    assert_eq!(fake.requests().len(), calls, "the fake was called");
    fault(
        "upstream",
        "hostile --api-base (path, query, fragment, non-loopback plain http, ftp)",
        "exit 78 naming --api-base, with and without --force, 0 requests",
    );
}

#[test]
fn a_missing_or_empty_ca_file_is_78_while_the_file_is_fresh() {
    let fake = FakeWeChat::start();
    let site = fresh_site(&fake);
    let calls = fake.requests().len();
    site.refresh(&fake)
        .args(&["--ca-file", "/nonexistent.pem"])
        .run()
        .expect(78)
        .stderr_has("the CA file /nonexistent.pem (--ca-file) cannot be read");

    let ca = site.dir.path().join("ca.pem");
    fs::write(&ca, "# the proxy's CA goes here\n").unwrap();
    site.refresh(&fake)
        .args(&["--ca-file", ca.to_str().unwrap()])
        .run()
        .expect(78)
        .stderr_has("holds no PEM certificate");

    // A FIFO in its place is refused at once, not read forever.
    fs::remove_file(&ca).unwrap();
    let c = std::ffi::CString::new(ca.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let run = site
        .refresh(&fake)
        .args(&["--ca-file", ca.to_str().unwrap()])
        .run();
    run.expect(78).stderr_has("is not a regular file");
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    assert_eq!(fake.requests().len(), calls);
}

/// Runs `cmd` as user nobody (65534) with no supplementary groups, when we are root.
fn as_nobody(cmd: &Cmd) -> Run {
    let inner = cmd.command();
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
    c.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.stdin(std::process::Stdio::null());
    let start = std::time::Instant::now();
    let out = c.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        elapsed: start.elapsed(),
    }
}

#[test]
fn a_group_the_user_is_not_in_is_78_while_the_file_is_fresh() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    if is_root() {
        if !require_tool("setpriv") {
            return;
        }
        // Root may give any group.
        site.refresh(&fake)
            .args(&["--group", "www-data"])
            .run()
            .expect(0);
        fs::remove_dir_all(site.state_dir()).unwrap();
        for p in [site.dir.path(), &site.secret] {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        }
        as_nobody(&site.refresh(&fake)).expect(0);
        let calls = fake.token_calls();
        let run = as_nobody(site.refresh(&fake).args(&["--group", "www-data"]));
        run.expect(78)
            .stderr_has("--group www-data: user nobody is not a member of group www-data")
            .stderr_has("SupplementaryGroups=www-data")
            .stderr_has("usermod -aG www-data nobody");
        assert_eq!(fake.token_calls(), calls);
        // Its own group is fine.
        as_nobody(site.refresh(&fake).args(&["--group", "nogroup"])).expect(0);
    } else {
        let mine = Command::new("id").arg("-G").output().unwrap().stdout;
        let mine: Vec<u32> = String::from_utf8_lossy(&mine)
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect();
        let other = (0..65534).find(|g| !mine.contains(g)).unwrap();
        site.refresh(&fake).run().expect(0);
        site.refresh(&fake)
            .args(&["--group", &other.to_string()])
            .run()
            .expect(78)
            .stderr_has("is not a member of group");
    }
}

#[test]
fn a_byte_order_mark_in_the_secret_file_is_ignored() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fs::write(&site.secret, format!("\u{feff}{DEFAULT_SECRET}\r\n")).unwrap();
    site.refresh(&fake)
        .env("RUST_LOG", "debug")
        .run()
        .expect(0)
        .stderr_has("byte order mark");
    assert!(fake.is_valid(&site.token()));
    let req = fake.requests().pop().unwrap();
    assert_eq!(req.json().unwrap()["secret"], DEFAULT_SECRET);
    assert_eq!(
        fs::metadata(&site.secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn an_errcode_that_is_not_the_integer_0_is_refused() {
    let good = r#""access_token":"80_plausible_token_value","expires_in":7200"#;
    for errcode in [
        r#""40001""#,
        r#""0""#,
        "0.5",
        "0.0",
        "null",
        "true",
        "[]",
        "{}",
    ] {
        let fake = FakeWeChat::start();
        let site = Site::new();
        let body = format!(r#"{{"errcode":{errcode},"errmsg":"ok",{good}}}"#);
        fake.set_default(Behaviour::Raw(200, "text/plain".into(), body.into_bytes()));
        let run = site
            .refresh(&fake)
            .args(&["--api", "legacy", "--retries", "0"])
            .run();
        run.expect(75).stderr_has("is not an integer");
        assert!(!site.out.exists(), "errcode {errcode}: a token was written");
    }
    // The integer 0 with a token is a success (WeCom answers that way).
    let fake = FakeWeChat::start();
    let site = Site::new();
    let body = format!(r#"{{"errcode":0,"errmsg":"ok",{good}}}"#);
    fake.set_default(Behaviour::Raw(200, "text/plain".into(), body.into_bytes()));
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    assert_eq!(site.token(), "80_plausible_token_value");
    fault(
        "upstream",
        "body: errcode beside a token that is not the integer 0 (\"0\", 0.5, null, true, [], {})",
        "exit 75 \"is not an integer\", nothing written; errcode 0 with a token accepted",
    );
}

/// Found by the fuzz target `answer` (fuzz/): WeChat's errmsg went whole into the error, the
/// journal, the run state and `status` (the logger escapes control characters, but nothing bounded
/// the length: a 60 KB errmsg made two 60 KB log lines).
#[test]
fn an_errmsg_is_quoted_on_one_short_line() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let forged = "[ERROR] wxtoken: refreshed, all is well";
    fake.set_default(Behaviour::Errcode(
        -1,
        format!("system error\n{forged}\u{7f} rid: {}", "x".repeat(60_000)),
    ));
    let run = site
        .refresh(&fake)
        .args(&["--api", "legacy", "--retries", "0"])
        .run();
    run.expect(75)
        .stderr_has(r"(system error\n[ERROR] wxtoken: refreshed, all is well\u{7f} rid: xxx");
    assert!(
        run.stderr.len() < 2_000,
        "{} bytes on stderr",
        run.stderr.len()
    );
    assert!(
        !run.stderr.lines().any(|l| l.starts_with(forged)),
        "{}",
        run.stderr
    );
}

fn retry_after(status: u16, value: &str) -> Behaviour {
    Behaviour::Status(
        status,
        vec![("Retry-After".into(), value.into())],
        r#"{"errcode":-1,"errmsg":"busy"}"#.into(),
    )
}

#[test]
fn retry_after_is_waited_for_before_the_next_attempt() {
    // One base, two rounds: the backoff alone would wait 1 s.
    let fake = FakeWeChat::start();
    let site = Site::new();
    fake.script(vec![retry_after(503, "3")]);
    let run = site.refresh(&fake).args(&["--max-time", "20"]).run();
    run.expect(0).stderr_has("Retry-After 3 s");
    assert_eq!(fake.token_calls(), 2);
    assert!(
        run.elapsed >= Duration::from_millis(2800),
        "{:?}",
        run.elapsed
    );
    assert!(run.elapsed < Duration::from_secs(15), "{:?}", run.elapsed);

    // Two bases: the next base is tried only after the wait (there is no backoff in a round).
    let fake = FakeWeChat::start();
    let site = Site::new();
    fake.script(vec![retry_after(429, "2")]);
    let bases = format!("{0},{0}", fake.base_url());
    let run = site
        .refresh(&fake)
        .args(&["--api-base", &bases, "--retries", "0", "--max-time", "20"])
        .run();
    run.expect(0);
    assert_eq!(fake.token_calls(), 2);
    assert!(
        run.elapsed >= Duration::from_millis(1800),
        "{:?}",
        run.elapsed
    );

    // An HTTP-date is treated as absent: the usual backoff, then success.
    let fake = FakeWeChat::start();
    let site = Site::new();
    fake.script(vec![retry_after(503, "Wed, 21 Oct 2099 07:28:00 GMT")]);
    site.refresh(&fake).run().expect(0);
    assert_eq!(fake.token_calls(), 2);
    fault(
        "upstream",
        "Retry-After on HTTP 503 / 429 (seconds; an HTTP-date)",
        "waited for before the next attempt or base, then exit 0; an HTTP-date falls back to backoff",
    );
}

#[test]
fn retry_after_beyond_max_time_stops_at_once_with_75() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fake.set_default(retry_after(429, "100"));
    let run = site
        .refresh(&fake)
        .args(&["--retries", "3", "--max-time", "8"])
        .run();
    run.expect(75)
        .stderr_has("WeChat asked to wait 100 s")
        .stderr_has("--max-time");
    assert_eq!(fake.token_calls(), 1, "retried against Retry-After");
    assert!(run.elapsed < Duration::from_secs(4), "{:?}", run.elapsed);
    assert!(!site.out.exists());
    fault(
        "upstream",
        "Retry-After 100 s beyond --max-time 8",
        &format!(
            "exit 75 at once ({:.1} s, 1 call), naming the wait and --max-time",
            run.elapsed.as_secs_f64()
        ),
    );
}

/// A TLS fake and a site that trusts it.
fn tls_site() -> (FakeWeChat, Site, String) {
    let fake = FakeWeChat::start_tls();
    let site = Site::new();
    let ca = site.dir.path().join("ca.pem");
    fs::write(&ca, fake.ca_pem().unwrap()).unwrap();
    (fake, site, ca.to_str().unwrap().to_string())
}

fn tls_refresh(fake: &FakeWeChat, site: &Site, ca: &str) -> Cmd {
    let mut c = site.refresh(fake);
    c.args(&["--ca-file", ca, "--force"]);
    c
}

/// A TLS refresh without --ca-file: the trust store is the system's, which these variables
/// select (the developer's own values removed first).
fn system_trust(fake: &FakeWeChat, site: &Site, vars: &[(&str, &str)]) -> Cmd {
    let mut c = site.refresh(fake);
    c.arg("--force")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

#[test]
fn the_system_trust_store_comes_from_ssl_cert_file_or_an_ssl_cert_dir() {
    let (fake, site, ca) = tls_site();
    system_trust(&fake, &site, &[("SSL_CERT_FILE", &ca)])
        .run()
        .expect(0);
    // An OpenSSL hashed directory (openssl rehash names each certificate HHHHHHHH.N), one of a
    // ':'-separated list, as OpenSSL and rustls-native-certs read SSL_CERT_DIR.
    let hashed = site.dir.path().join("certs");
    fs::create_dir(&hashed).unwrap();
    fs::copy(&ca, hashed.join("0a1b2c3d.0")).unwrap();
    let dirs = format!("/nonexistent:{}", hashed.display());
    system_trust(&fake, &site, &[("SSL_CERT_DIR", &dirs)])
        .run()
        .expect(0);
    // A directory of the list that is missing is named in the error; one without certificates
    // (here a file that is not one) leaves nothing to verify with.
    fs::write(hashed.join("0a1b2c3d.0"), "not a certificate\n").unwrap();
    system_trust(&fake, &site, &[("SSL_CERT_DIR", &dirs)])
        .run()
        .expect(78)
        .stderr_has("at '/nonexistent'")
        .stderr_has(&format!("SSL_CERT_DIR={dirs}: 0 certificate(s)"));
    assert_eq!(fake.token_calls(), 2);
}

#[test]
fn without_any_trust_store_https_is_a_config_error_and_nothing_is_sent() {
    let (fake, site, ca) = tls_site();
    let empty = site.dir.path().join("empty.pem");
    fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    // No roots are bundled to fall back on: the admin is told what to install.
    system_trust(&fake, &site, &[("SSL_CERT_FILE", empty)])
        .run()
        .expect(78)
        .stderr_has("no trusted root certificate to verify TLS with")
        .stderr_has(&format!("SSL_CERT_FILE={empty}: 0 certificate(s)"))
        .stderr_has("Install the ca-certificates package");
    assert_eq!(fake.token_calls(), 0);
    assert!(!site.out.exists());
    // --ca-file alone is enough.
    system_trust(&fake, &site, &[("SSL_CERT_FILE", empty)])
        .args(&["--ca-file", &ca])
        .run()
        .expect(0);
    // A run that finds the file fresh never looks for a trust store.
    let mut fresh = site.refresh(&fake);
    fresh.env("SSL_CERT_FILE", empty).run().expect(0);
    // Plain http to a loopback test server needs none either, and does not read one: a system
    // store (146 roots on Debian) is most of a plain refresh's instructions.
    let plain = FakeWeChat::start();
    let site = Site::new();
    system_trust(&plain, &site, &[("SSL_CERT_FILE", empty)])
        .run()
        .expect(0);
    system_trust(&plain, &site, &[("SSL_CERT_FILE", &ca)])
        .env("RUST_LOG", "wxtoken=debug")
        .run()
        .expect(0)
        .stderr_has("trust store: not read: no base URL or proxy uses TLS");
}

#[test]
fn https_proxy_is_used_before_all_proxy_and_http_proxy_never_for_https() {
    let (fake, site, ca) = tls_site();
    let (https, all) = (ConnectProxy::start(), ConnectProxy::start());

    // HTTPS_PROXY wins over ALL_PROXY (ureq on its own would take ALL_PROXY first).
    tls_refresh(&fake, &site, &ca)
        .env("HTTPS_PROXY", &https.url())
        .env("ALL_PROXY", &all.url())
        .run()
        .expect(0);
    assert_eq!((https.connects(), all.connects()), (1, 0));
    assert!(fake.is_valid(&site.token()));

    // ALL_PROXY is the fallback.
    tls_refresh(&fake, &site, &ca)
        .env("ALL_PROXY", &all.url())
        .run()
        .expect(0);
    assert_eq!((https.connects(), all.connects()), (1, 1));

    // HTTP_PROXY / http_proxy are not for https (ureq on its own would use HTTP_PROXY).
    tls_refresh(&fake, &site, &ca)
        .env("HTTP_PROXY", &https.url())
        .env("http_proxy", &https.url())
        .run()
        .expect(0);
    assert_eq!((https.connects(), all.connects()), (1, 1));

    // Proxy credentials never reach the log, whatever RUST_LOG says.
    let with_password = https.url().replace("http://", "http://wx:hunter2@");
    let run = tls_refresh(&fake, &site, &ca)
        .env("https_proxy", &with_password)
        .env("RUST_LOG", "trace")
        .run();
    run.expect(0);
    assert_eq!(https.connects(), 2);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    // ...nor in the Basic encoding of "wx:hunter2".
    assert!(!run.stderr.contains("aHVudGVy"), "{}", run.stderr);
    assert_eq!(fake.token_calls(), 4);
}

#[test]
fn plain_http_bases_use_lowercase_http_proxy_only() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let proxy = ConnectProxy::start();
    let run = |k: &str| {
        site.refresh(&fake)
            .arg("--force")
            .env(k, &proxy.url())
            .run()
            .expect(0);
        proxy.connects()
    };
    // curl ignores HTTP_PROXY (CGI sets it from a request's "Proxy:" header).
    assert_eq!(run("HTTP_PROXY"), 0);
    assert_eq!(run("HTTPS_PROXY"), 0);
    assert_eq!(run("http_proxy"), 1);
    assert_eq!(run("ALL_PROXY"), 2);
}

#[test]
fn no_proxy_bypasses_the_proxy() {
    let (fake, site, ca) = tls_site();
    let proxy = ConnectProxy::start();
    for no_proxy in ["127.0.0.1", "127.0.0.0/8", "example.com, 127.0.0.1", "*"] {
        for var in ["NO_PROXY", "no_proxy"] {
            tls_refresh(&fake, &site, &ca)
                .env("HTTPS_PROXY", &proxy.url())
                .env(var, no_proxy)
                .run()
                .expect(0);
        }
    }
    assert_eq!(proxy.connects(), 0);
    // A list that does not name the host leaves the proxy in use.
    tls_refresh(&fake, &site, &ca)
        .env("HTTPS_PROXY", &proxy.url())
        .env("NO_PROXY", "localhost,.example.com")
        .run()
        .expect(0);
    assert_eq!(proxy.connects(), 1);
}

#[test]
fn a_refused_proxy_url_is_a_clear_config_error() {
    let (fake, site, ca) = tls_site();
    let socks = Listener::on("127.0.0.1", 0);
    for (value, says) in [
        (format!("socks5://{}", socks.addr), "is a SOCKS proxy"),
        (
            format!("socks5h://user:hunter2@{}", socks.addr),
            "is a SOCKS proxy",
        ),
        (
            "ftp://127.0.0.1:21".to_string(),
            "other than http:// or https://",
        ),
        ("http://[::1".to_string(), "is not a valid URL"),
    ] {
        let run = tls_refresh(&fake, &site, &ca)
            .env("HTTPS_PROXY", &value)
            .run();
        run.expect(78).stderr_has("HTTPS_PROXY=").stderr_has(says);
        assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(socks.count(), 0);
    assert_eq!(fake.token_calls(), 0);
}

/// The library's probe and force_refresh, against the fake.
mod probe {
    use super::*;
    use clap::Parser;
    use wxtoken::api::Api;
    use wxtoken::cli::{Cli, Command as Sub};
    use wxtoken::config::Config;
    use wxtoken::deadline::Deadline;
    use wxtoken::wechat::{Client, Context, Probe, Purpose};

    fn config(site: &Site, bases: &str, api: &str) -> Config {
        let cli = Cli::try_parse_from([
            "wxtoken",
            "refresh",
            "--appid",
            DEFAULT_APPID,
            "--secret-file",
            site.secret.to_str().unwrap(),
            "--out",
            site.out.to_str().unwrap(),
            "--api-base",
            bases,
            "--api",
            api,
            "--timeout",
            "2",
            "--retries",
            "0",
        ])
        .unwrap();
        let Sub::Refresh(wxtoken::cli::RefreshCmd { args, .. }) = cli.command else {
            unreachable!()
        };
        Config::from_args(&args).unwrap()
    }

    fn ctx(cfg: &Config) -> Context<'_> {
        Context {
            appid: &cfg.appid,
            api: cfg.api,
            secret_source: &cfg.secret_source,
            purpose: Purpose::Token,
        }
    }

    fn soon() -> Deadline {
        Deadline::after(Duration::from_secs(10))
    }

    #[test]
    fn stable_force_refresh_and_the_probe_verdicts() {
        let fake = FakeWeChat::start();
        let site = Site::new();
        let cfg = config(&site, &fake.base_url(), "stable");
        let (client, ctx) = (Client::new(&cfg), ctx(&cfg));
        let a = client
            .fetch_token(&ctx, &cfg.secret, false, &soon())
            .unwrap();
        assert_eq!(a.base, fake.base_url());
        assert_eq!(client.probe(&ctx, &a.value, &soon()), Probe::Alive);
        let same = client
            .fetch_token(&ctx, &cfg.secret, false, &soon())
            .unwrap();
        assert_eq!(same.value, a.value);
        assert_eq!(fake.force_refresh_calls(), 0);

        let b = client
            .fetch_token(&ctx, &cfg.secret, true, &soon())
            .unwrap();
        assert_ne!(b.value, a.value);
        assert_eq!(fake.force_refresh_calls(), 1);
        assert!(matches!(
            client.probe(&ctx, &a.value, &soon()),
            Probe::Dead { errcode: 40001, .. }
        ));
        assert_eq!(client.probe(&ctx, &b.value, &soon()), Probe::Alive);

        fake.revoke(&b.value);
        assert!(matches!(
            client.probe(&ctx, &b.value, &soon()),
            Probe::Dead { errcode: 40001, .. }
        ));
        // The probe carries the token, and only there.
        let req = fake.requests().pop().unwrap();
        assert_eq!(req.path, "/cgi-bin/get_api_domain_ip");
        assert_eq!(req.param("access_token").as_deref(), Some(b.value.as_str()));
        assert_eq!(req.method, "GET");

        // Expired: 42001.
        let c = client
            .fetch_token(&ctx, &cfg.secret, true, &soon())
            .unwrap();
        fake.advance(7200);
        assert!(matches!(
            client.probe(&ctx, &c.value, &soon()),
            Probe::Dead { errcode: 42001, .. }
        ));
    }

    #[test]
    fn a_legacy_token_dies_300_s_after_another_program_fetched_one() {
        let fake = FakeWeChat::start();
        let site = Site::new();
        let cfg = config(&site, &fake.base_url(), "legacy");
        let (client, ctx) = (Client::new(&cfg), ctx(&cfg));
        assert_eq!(ctx.api, Api::Legacy);
        // force_refresh means nothing to the legacy API: one plain GET.
        let t = client
            .fetch_token(&ctx, &cfg.secret, true, &soon())
            .unwrap();
        assert_eq!(fake.calls("/cgi-bin/token"), 1);
        assert_eq!(fake.force_refresh_calls(), 0);
        assert!(!fake.requests()[0].query.contains("force_refresh"));

        fake.legacy_fetch_out_of_band(DEFAULT_APPID);
        assert_eq!(client.probe(&ctx, &t.value, &soon()), Probe::Alive);
        fake.advance(301);
        assert!(matches!(
            client.probe(&ctx, &t.value, &soon()),
            Probe::Dead { errcode: 40001, .. }
        ));
    }

    #[test]
    fn no_verdict_is_unknown_and_each_base_is_tried_once() {
        let fake = FakeWeChat::start();
        let site = Site::new();
        let two = format!("{0},{0}", fake.base_url());
        let cfg = config(&site, &two, "stable");
        let (client, ctx) = (Client::new(&cfg), ctx(&cfg));
        let t = client
            .fetch_token(&ctx, &cfg.secret, false, &soon())
            .unwrap()
            .value;
        let probes = || fake.calls("/cgi-bin/get_api_domain_ip");

        // WeChat answered, with an errcode that says nothing about the token: no second base.
        for (code, n) in [(-1, 1), (45009, 2), (40013, 3)] {
            fake.script_probes(vec![Behaviour::Errcode(code, "x".into())]);
            match client.probe(&ctx, &t, &soon()) {
                Probe::Unknown(why) => {
                    assert!(why.contains(&format!("errcode {code}")), "{why}");
                    assert!(!why.contains(&t), "{why}");
                }
                other => panic!("errcode {code}: {other:?}"),
            }
            assert_eq!(probes(), n);
        }
        // No answer from the first base: the second one decides.
        fake.script_probes(vec![Behaviour::Status(500, vec![], String::new())]);
        assert_eq!(client.probe(&ctx, &t, &soon()), Probe::Alive);
        assert_eq!(probes(), 5);
        // No answer from either: Unknown, one attempt each.
        fake.script_probes(vec![
            Behaviour::Raw(200, "text/html".into(), b"<html>".to_vec()),
            Behaviour::Raw(200, "text/plain".into(), br#"{"errcode":"0"}"#.to_vec()),
        ]);
        assert!(matches!(client.probe(&ctx, &t, &soon()), Probe::Unknown(_)));
        assert_eq!(probes(), 7);
        // Nothing left of the deadline: no call at all.
        let spent = Deadline::after(Duration::ZERO);
        assert!(matches!(client.probe(&ctx, &t, &spent), Probe::Unknown(_)));
        assert_eq!(probes(), 7);

        // A base that takes the request and never answers: bounded by the deadline, and the
        // second base is not tried with nothing left.
        fake.script_probes(vec![Behaviour::Hang]);
        let start = std::time::Instant::now();
        let verdict = client.probe(&ctx, &t, &Deadline::after(Duration::from_secs(1)));
        assert!(matches!(verdict, Probe::Unknown(_)), "{verdict:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(probes(), 8);
    }
}
