//! Fast tests of the fake WeChat server itself, with a raw std TcpStream client.

mod fake;

use fake::{Behaviour, DEFAULT_APPID, DEFAULT_SECRET, FakeWeChat};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Resp {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// Sends a raw request, reads until EOF (10 s cap).
fn exchange(f: &FakeWeChat, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(f.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn get(f: &FakeWeChat, target: &str) -> Resp {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\nUser-Agent: selftest\r\n\r\n");
    parse_response(&exchange(f, raw.as_bytes()))
}

fn post(f: &FakeWeChat, target: &str, body: &str) -> Resp {
    let raw = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    parse_response(&exchange(f, raw.as_bytes()))
}

fn legacy(f: &FakeWeChat) -> Value {
    get(
        f,
        &format!(
            "/cgi-bin/token?grant_type=client_credential&appid={DEFAULT_APPID}&secret={DEFAULT_SECRET}"
        ),
    )
    .json()
}

fn stable(f: &FakeWeChat, force: bool) -> Value {
    let body = json!({"grant_type":"client_credential","appid":DEFAULT_APPID,
        "secret":DEFAULT_SECRET,"force_refresh":force});
    post(f, "/cgi-bin/stable_token", &body.to_string()).json()
}

fn tok(v: &Value) -> String {
    v["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {v}"))
        .to_string()
}

fn errcode(v: &Value) -> i64 {
    v["errcode"]
        .as_i64()
        .unwrap_or_else(|| panic!("no errcode in {v}"))
}

fn probe(f: &FakeWeChat, token: &str) -> Value {
    get(
        f,
        &format!("/cgi-bin/get_api_domain_ip?access_token={token}"),
    )
    .json()
}

#[test]
fn stable_token_same_while_valid_then_rotates() {
    let f = FakeWeChat::start();
    let a = stable(&f, false);
    let t1 = tok(&a);
    assert!(t1.len() > 120 && t1.contains('_'), "{t1}");
    assert!(
        t1.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    assert_eq!(a["expires_in"], 7200);
    let r = post(
        &f,
        "/cgi-bin/stable_token",
        &json!({"grant_type":"client_credential","appid":DEFAULT_APPID,"secret":DEFAULT_SECRET})
            .to_string(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(tok(&r.json()), t1);

    f.advance(6000);
    let b = stable(&f, false);
    assert_eq!(tok(&b), t1);
    assert_eq!(b["expires_in"], 1200);

    f.advance(900); // 300 left: rotation
    let c = stable(&f, false);
    let t2 = tok(&c);
    assert_ne!(t2, t1);
    assert_eq!(c["expires_in"], 7200);
    assert!(f.is_valid(&t1) && f.is_valid(&t2));
    assert_eq!(f.current_token(DEFAULT_APPID).as_deref(), Some(t2.as_str()));
    assert_eq!(tok(&stable(&f, false)), t2);

    f.advance(300); // t1 reaches its own expiry
    assert!(!f.is_valid(&t1) && f.is_valid(&t2));
    assert_eq!(errcode(&probe(&f, &t1)), 42001);
    assert_eq!(probe(&f, &t2)["ip_list"][0], "127.0.0.1");
    assert_eq!(f.token_calls(), 5);
    assert_eq!(f.calls("/cgi-bin/stable_token"), 5);
}

#[test]
fn stable_force_refresh_kills_old_token_and_is_independent_of_legacy() {
    let f = FakeWeChat::start();
    let l = tok(&legacy(&f));
    let t1 = tok(&stable(&f, false));
    let t2 = tok(&stable(&f, true));
    assert_ne!(t1, t2);
    assert!(!f.is_valid(&t1));
    assert!(f.is_valid(&t2));
    assert_eq!(errcode(&probe(&f, &t1)), 40001);
    assert_eq!(tok(&stable(&f, false)), t2);
    assert!(f.is_valid(&l), "stable calls must not touch legacy tokens");
    let l2 = tok(&legacy(&f));
    assert!(f.is_valid(&t2), "legacy calls must not touch stable tokens");
    assert!(f.is_valid(&l) && f.is_valid(&l2));
}

#[test]
fn stable_errors() {
    let f = FakeWeChat::start();
    let r = get(&f, "/cgi-bin/stable_token");
    assert_eq!(errcode(&r.json()), 43002);
    assert_eq!(
        errcode(&post(&f, "/cgi-bin/stable_token", "{nope").json()),
        47001
    );
    let cases = [
        (
            json!({"grant_type":"client_credential","secret":"x"}),
            41002,
        ),
        (json!({"grant_type":"client_credential","appid":"x"}), 41004),
        (
            json!({"grant_type":"password","appid":"x","secret":"y"}),
            40002,
        ),
        (
            json!({"grant_type":"client_credential","appid":"wxunknown","secret":"y"}),
            40013,
        ),
        (
            json!({"grant_type":"client_credential","appid":DEFAULT_APPID,"secret":"y"}),
            40001,
        ),
    ];
    for (body, code) in cases {
        let v = post(&f, "/cgi-bin/stable_token", &body.to_string()).json();
        assert_eq!(errcode(&v), code, "{body} -> {v}");
        assert!(v["errmsg"].as_str().unwrap().contains("rid: "));
    }
    assert_eq!(f.token_calls(), 7);
    assert_eq!(f.current_token(DEFAULT_APPID), None);
}

#[test]
fn legacy_token_new_each_call_old_one_lives_300s() {
    let f = FakeWeChat::start();
    let a = legacy(&f);
    assert_eq!(a["expires_in"], 7200);
    assert!(a.get("errcode").is_none());
    let t1 = tok(&a);
    f.advance(100);
    let t2 = tok(&legacy(&f));
    assert_ne!(t1, t2);
    f.advance(299);
    assert!(f.is_valid(&t1));
    f.advance(1);
    assert!(!f.is_valid(&t1));
    assert_eq!(errcode(&probe(&f, &t1)), 40001, "superseded => not latest");
    assert!(f.is_valid(&t2));
    f.advance(7200);
    assert_eq!(errcode(&probe(&f, &t2)), 42001, "natural expiry");
    assert_eq!(errcode(&probe(&f, "80_bogus")), 40001);
    assert_eq!(
        errcode(&get(&f, "/cgi-bin/get_api_domain_ip").json()),
        41001
    );
}

#[test]
fn legacy_errors_in_documented_order_and_percent_decoding() {
    let f = FakeWeChat::start();
    f.add_account("wxother", "s3cret &+=/");
    let cases = [
        ("grant_type=client_credential&secret=x", 41002),
        ("grant_type=client_credential&appid=x", 41004),
        ("appid=x&secret=y", 40002),
        ("grant_type=client_credential&appid=wxnope&secret=y", 40013),
        ("grant_type=client_credential&appid=wxother&secret=y", 40001),
    ];
    for (q, code) in cases {
        let v = get(&f, &format!("/cgi-bin/token?{q}")).json();
        assert_eq!(errcode(&v), code, "{q} -> {v}");
    }
    let v = get(
        &f,
        "/cgi-bin/token?grant_type=client_credential&appid=wxother&secret=s3cret%20%26%2B%3D%2F",
    )
    .json();
    let t = tok(&v);
    assert_eq!(f.current_token("wxother"), Some(t));
    assert_eq!(f.token_calls(), 6);
    let reqs = f.requests();
    assert_eq!(reqs.len(), 6);
    assert_eq!(reqs[5].param("secret").as_deref(), Some("s3cret &+=/"));
    assert_eq!(reqs[5].header("user-agent"), Some("selftest"));
    assert_eq!(reqs[5].method, "GET");
}

#[test]
fn wecom_tokens() {
    let f = FakeWeChat::start();
    f.add_account("ww0123456789", "corp-secret");
    let r = get(
        &f,
        "/cgi-bin/gettoken?corpid=ww0123456789&corpsecret=corp-secret",
    );
    let v = r.json();
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["errmsg"], "ok");
    assert_eq!(v["expires_in"], 7200);
    let t1 = tok(&v);
    f.advance(1000);
    let t2 = tok(&get(
        &f,
        "/cgi-bin/gettoken?corpid=ww0123456789&corpsecret=corp-secret",
    )
    .json());
    assert_ne!(t1, t2);
    f.advance(6199);
    assert!(f.is_valid(&t1) && f.is_valid(&t2));
    f.advance(1);
    assert!(!f.is_valid(&t1) && f.is_valid(&t2));
    let bad = |q: &str| errcode(&get(&f, &format!("/cgi-bin/gettoken?{q}")).json());
    assert_eq!(bad("corpsecret=x"), 41002);
    assert_eq!(bad("corpid=ww0123456789"), 41004);
    assert_eq!(bad("corpid=wwnope&corpsecret=x"), 40013);
    assert_eq!(bad("corpid=ww0123456789&corpsecret=x"), 40001);
}

#[test]
fn tickets_same_within_validity_with_full_expires_in() {
    let f = FakeWeChat::start();
    let t = tok(&stable(&f, false));
    let tick = |ty: &str| {
        get(
            &f,
            &format!("/cgi-bin/ticket/getticket?access_token={t}&type={ty}"),
        )
        .json()
    };
    let a = tick("jsapi");
    assert_eq!(a["errcode"], 0);
    assert_eq!(a["expires_in"], 7200);
    let ja = a["ticket"].as_str().unwrap().to_string();
    let card = tick("wx_card")["ticket"].as_str().unwrap().to_string();
    assert_ne!(ja, card);
    f.advance(3600);
    let b = tick("jsapi");
    assert_eq!(b["ticket"], ja.as_str());
    assert_eq!(
        b["expires_in"], 7200,
        "suspected real behaviour: full lifetime again"
    );
    assert_eq!(f.current_ticket(DEFAULT_APPID, "jsapi"), Some(ja.clone()));
    assert_eq!(errcode(&tick("bogus")), 40097);
    // Token expires at 7200 (stable), ticket at 7200 too: refresh the token first.
    f.advance(3000);
    let t = tok(&stable(&f, false)); // 600 left: same token
    assert_eq!(errcode(&tick("jsapi")), 0);
    f.advance(600);
    assert_eq!(errcode(&tick("jsapi")), 42001);
    let t2 = tok(&stable(&f, false));
    assert_ne!(t, t2);
    let c = get(
        &f,
        &format!("/cgi-bin/ticket/getticket?access_token={t2}&type=jsapi"),
    )
    .json();
    assert_ne!(c["ticket"], ja.as_str(), "ticket expired: new one");
    assert_eq!(f.ticket_calls(), 7);
    assert_eq!(f.token_calls(), 3);

    // WeCom ticket endpoints.
    let w = tok(&get(
        &f,
        &format!("/cgi-bin/gettoken?corpid={DEFAULT_APPID}&corpsecret={DEFAULT_SECRET}"),
    )
    .json());
    let corp = get(&f, &format!("/cgi-bin/get_jsapi_ticket?access_token={w}")).json();
    assert_eq!(corp["errcode"], 0);
    let agent = get(
        &f,
        &format!("/cgi-bin/ticket/get?access_token={w}&type=agent_config"),
    )
    .json();
    assert_eq!(agent["errcode"], 0);
    assert_ne!(corp["ticket"], agent["ticket"]);
    assert_eq!(
        errcode(&get(&f, &format!("/cgi-bin/ticket/get?access_token={w}&type=x")).json()),
        40097
    );
    assert_eq!(
        errcode(&get(&f, "/cgi-bin/get_jsapi_ticket?access_token=nope").json()),
        40001
    );
}

#[test]
fn scripted_behaviours() {
    let f = FakeWeChat::start();
    let weird = "a\"b\nc$d\\e".to_string();
    f.script(vec![
        Behaviour::Errcode(45009, "reach max api daily quota limit".into()),
        Behaviour::Token(weird.clone(), -5),
        Behaviour::Raw(
            503,
            "text/html; charset=gbk".into(),
            b"<html>busy</html>".to_vec(),
        ),
        Behaviour::Redirect("http://127.0.0.1:1/elsewhere".into()),
        Behaviour::Truncated,
        Behaviour::Oversized(1 << 20),
        Behaviour::Close,
        Behaviour::Delay(300, Box::new(Behaviour::Errcode(-1, "system busy".into()))),
    ]);
    let v = legacy(&f);
    assert_eq!(
        v,
        json!({"errcode":45009,"errmsg":"reach max api daily quota limit"})
    );
    let v = legacy(&f);
    assert_eq!(v["access_token"], weird.as_str());
    assert_eq!(v["expires_in"], -5);
    let r = get(&f, "/cgi-bin/gettoken?corpid=x&corpsecret=y");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("text/html; charset=gbk"));
    assert_eq!(r.body, b"<html>busy</html>");
    let r = legacy_raw(&f);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://127.0.0.1:1/elsewhere"));
    assert_eq!(r.header("content-length"), Some("0"));
    let r = legacy_raw(&f);
    assert_eq!(r.header("content-length"), Some("200"));
    assert_eq!(r.body.len(), 20);
    let r = legacy_raw(&f);
    assert_eq!(r.body.len(), 1 << 20);
    assert_eq!(r.header("content-length"), Some("1048576"));
    let big = r.json();
    assert!(f.is_valid(&tok(&big)));
    let raw = exchange(
        &f,
        format!(
            "GET /cgi-bin/token?grant_type=client_credential&appid={DEFAULT_APPID}&secret={DEFAULT_SECRET} HTTP/1.1\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(raw.is_empty(), "Close sends nothing");
    let t0 = Instant::now();
    assert_eq!(errcode(&legacy(&f)), -1);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    // Queue empty: Normal.
    assert!(f.is_valid(&tok(&legacy(&f))));
    // Tickets are not token requests.
    let t = tok(&legacy(&f));
    f.script_tickets(vec![Behaviour::Token("TICKET".into(), 60)]);
    let v = get(
        &f,
        &format!("/cgi-bin/ticket/getticket?access_token={t}&type=jsapi"),
    )
    .json();
    assert_eq!(
        v,
        json!({"errcode":0,"errmsg":"ok","ticket":"TICKET","expires_in":60})
    );
    // set_default applies once the queue is empty.
    f.set_default(Behaviour::Errcode(40164, "invalid ip 127.0.0.1".into()));
    assert_eq!(errcode(&stable(&f, false)), 40164);
    assert_eq!(errcode(&stable(&f, false)), 40164);
    assert_eq!(f.token_calls(), 12);
    // Unknown path.
    let r = get(&f, "/nope?x=1");
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"errcode":-1,"errmsg":"not found"}));
    assert_eq!(f.calls("/nope"), 1);
}

#[test]
fn status_with_headers_and_scripted_probes() {
    let f = FakeWeChat::start();
    f.script(vec![Behaviour::Status(
        429,
        vec![("Retry-After".into(), "7".into())],
        "slow down".into(),
    )]);
    let r = legacy_raw(&f);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.body, b"slow down");
    assert_eq!(f.token_calls(), 1);

    let t = tok(&legacy(&f));
    f.script_probes(vec![
        Behaviour::Errcode(45009, "quota".into()),
        Behaviour::Status(503, vec![], String::new()),
    ]);
    assert_eq!(errcode(&probe(&f, &t)), 45009);
    let r = get(&f, &format!("/cgi-bin/get_api_domain_ip?access_token={t}"));
    assert_eq!(r.status, 503);
    // Queue empty: the real verdict.
    assert_eq!(probe(&f, &t), json!({"ip_list":["127.0.0.1"]}));
    assert_eq!(f.calls("/cgi-bin/get_api_domain_ip"), 3);
    assert_eq!(f.token_calls(), 2, "probes are not token calls");
}

#[test]
fn a_revoked_token_is_40001_not_expired_and_stable_still_hands_it_out() {
    let f = FakeWeChat::start();
    let t = tok(&stable(&f, false));
    f.revoke(&t);
    assert!(!f.is_valid(&t));
    assert_eq!(errcode(&probe(&f, &t)), 40001);
    assert_eq!(tok(&stable(&f, false)), t, "normal mode keeps returning it");
    let new = tok(&stable(&f, true));
    assert_ne!(new, t);
    assert_eq!(probe(&f, &new), json!({"ip_list":["127.0.0.1"]}));
}

fn legacy_raw(f: &FakeWeChat) -> Resp {
    get(
        f,
        &format!(
            "/cgi-bin/token?grant_type=client_credential&appid={DEFAULT_APPID}&secret={DEFAULT_SECRET}"
        ),
    )
}

#[test]
fn hang_and_drip_are_slow_and_bounded_by_the_peer() {
    let f = FakeWeChat::start();
    f.script(vec![Behaviour::Hang, Behaviour::Drip]);
    let req = format!(
        "GET /cgi-bin/token?grant_type=client_credential&appid={DEFAULT_APPID}&secret={DEFAULT_SECRET} HTTP/1.1\r\n\r\n"
    );

    let mut s = TcpStream::connect(f.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let e = s.read(&mut buf).expect_err("Hang must not answer");
    assert!(matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    drop(s);

    let mut s = TcpStream::connect(f.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    while start.elapsed() < Duration::from_millis(2500) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let r = parse_response(&got);
    assert_eq!(r.status, 200);
    let len: usize = r.header("content-length").unwrap().parse().unwrap();
    assert!(len > 100);
    let body_bytes = got.len() - head_end;
    assert!(
        (1..=4).contains(&body_bytes),
        "{body_bytes} body bytes in 2.5 s"
    );
    assert_eq!(f.token_calls(), 2);
}

#[test]
fn chunked_post_body_is_decoded_and_recorded() {
    let f = FakeWeChat::start();
    let body =
        json!({"grant_type":"client_credential","appid":DEFAULT_APPID,"secret":DEFAULT_SECRET})
            .to_string();
    let (a, b) = body.split_at(10);
    let raw = format!(
        "POST /cgi-bin/stable_token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let v = parse_response(&exchange(&f, raw.as_bytes())).json();
    assert!(f.is_valid(&tok(&v)));
    let req = &f.requests()[0];
    assert_eq!(req.body, body);
    assert_eq!(req.json().unwrap()["appid"], DEFAULT_APPID);
    assert_eq!(req.path, "/cgi-bin/stable_token");
    assert_eq!(req.query, "");
}

#[test]
fn tls_with_self_signed_cert() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let f = FakeWeChat::start_tls();
    assert!(f.base_url().starts_with("https://127.0.0.1:"));
    let pem = f.ca_pem().expect("tls has a cert");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for name in ["127.0.0.1", "localhost"] {
        let conn = rustls::ClientConnection::new(
            cfg.clone(),
            ServerName::try_from(name.to_string()).unwrap(),
        )
        .unwrap();
        let tcp = TcpStream::connect(f.local_addr()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let req = format!(
            "GET /cgi-bin/token?grant_type=client_credential&appid={DEFAULT_APPID}&secret={DEFAULT_SECRET} HTTP/1.1\r\nHost: {name}\r\n\r\n"
        );
        tls.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        tls.read_to_end(&mut out).unwrap();
        let v = parse_response(&out).json();
        assert!(f.is_valid(&tok(&v)));
    }
    // Plain HTTP to a TLS port gets nothing useful.
    let raw = exchange(&f, b"GET / HTTP/1.1\r\n\r\n");
    assert!(!raw.starts_with(b"HTTP/1.1 200"));
    assert_eq!(f.token_calls(), 2);
    assert!(FakeWeChat::start().ca_pem().is_none());
}

#[test]
fn refuses_non_loopback_and_stops_on_drop() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let e = FakeWeChat::start_on(addr, false)
            .err()
            .expect("must refuse");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{addr}");
    }
    let f = FakeWeChat::start();
    f.script(vec![Behaviour::Hang]);
    let addr = f.local_addr();
    let mut hung = TcpStream::connect(addr).unwrap();
    hung.write_all(b"GET /cgi-bin/token HTTP/1.1\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(f);
    // The held connection is closed promptly, and new connections are refused.
    hung.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    assert!(matches!(hung.read(&mut buf), Ok(0) | Err(_)));
    assert!(t0.elapsed() < Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(3);
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after drop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
