//! A fake WeChat / WeCom API on loopback, for demos and manual testing of wxtoken.
//!
//! cargo run --example fake-wechat -- [--listen 127.0.0.1:8808] [--account APPID:SECRET]...
//!     [--tls --ca-out PATH] [--control ADDR:PORT] [--exit-after SECS] [--quiet]
//!
//! Prints one line to stdout, `fake WeChat API listening on http://127.0.0.1:8808` (https with
//! --tls), and with --control a second one, `fake WeChat control on http://127.0.0.1:PORT`, then
//! serves until killed or until --exit-after seconds (default 3600) have passed. Unlike in the
//! tests, the fake's clock follows real time. One line per request goes to stderr unless --quiet.
//!
//! The control endpoint (plain HTTP, loopback only) lets a script outside the process play WeChat's
//! part in a scenario, as the tests do through `FakeWeChat`'s methods; values are taken verbatim:
//!
//!   GET /revoke?appid=APPID   WeChat revokes the token it issued last for APPID (APIs answer
//!                             40001 for it, stable normal mode still hands it out); 200 and the
//!                             token, 404 when none was issued
//!   GET /valid?token=TOKEN    200 `valid` or `invalid` (unknown, expired, superseded, revoked)
//!   GET /calls?path=PATH      200 and how many requests for PATH (e.g. /cgi-bin/get_api_domain_ip)
//!                             the API received; /calls?force_refresh=1: stable force_refresh calls
//!   GET /advance?secs=N       the fake's clock jumps N s forward (bench/fleet.sh's simulated day);
//!                             200 and the fake's time

#[path = "../tests/fake/mod.rs"]
mod fake;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: fake-wechat [--listen ADDR:PORT] [--account APPID:SECRET]... \
[--tls [--ca-out PATH]] [--control ADDR:PORT] [--exit-after SECS] [--quiet]
  --listen      loopback address to bind (default 127.0.0.1:8808; non-loopback is refused)
  --account     account to accept, repeatable (default wx1234567890abcdef:demo-secret-not-a-real-one)
  --tls         serve HTTPS with a fresh self-signed certificate (SANs localhost, 127.0.0.1, ::1)
  --ca-out      with --tls: write that certificate (PEM) here, for wxtoken's CA-file option
  --control     also serve the control endpoint (revoke, valid, calls) on this loopback address
  --exit-after  exit after this many seconds (default 3600)
  --quiet       do not log requests to stderr";

struct Args {
    listen: String,
    accounts: Vec<(String, String)>,
    tls: bool,
    ca_out: Option<String>,
    control: Option<String>,
    exit_after: u64,
    quiet: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        listen: "127.0.0.1:8808".into(),
        accounts: Vec::new(),
        tls: false,
        ca_out: None,
        control: None,
        exit_after: 3600,
        quiet: false,
    };
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => Err(format!("{name} needs {what}")),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => args.listen = value("an address")?,
            "--account" => {
                let v = value("APPID:SECRET")?;
                match v.split_once(':') {
                    Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                        args.accounts.push((id.to_string(), secret.to_string()))
                    }
                    _ => return Err(format!("--account wants APPID:SECRET, got {v:?}")),
                }
            }
            "--tls" if inline.is_none() => args.tls = true,
            "--ca-out" => args.ca_out = Some(value("a path")?),
            "--control" => args.control = Some(value("an address")?),
            "--exit-after" => {
                let v = value("a number of seconds")?;
                args.exit_after = v
                    .parse()
                    .map_err(|_| format!("--exit-after wants seconds, got {v:?}"))?;
            }
            "--quiet" if inline.is_none() => args.quiet = true,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    if args.ca_out.is_some() && !args.tls {
        return Err("--ca-out only makes sense with --tls".into());
    }
    Ok(Some(args))
}

fn write_atomically(path: &str, contents: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp-{}", std::process::id());
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Binds the control endpoint; like the API, only on loopback addresses.
fn bind_control(addr: &str) -> std::io::Result<TcpListener> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() || !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr} is not a loopback address"),
        ));
    }
    TcpListener::bind(&addrs[..])
}

fn serve_control(listener: TcpListener, server: Arc<fake::FakeWeChat>) {
    for conn in listener.incoming().flatten() {
        let _ = answer_control(conn, &server);
    }
}

fn answer_control(mut conn: TcpStream, server: &fake::FakeWeChat) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match conn.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
    };
    let (status, body) = match path {
        "/revoke" => match server.current_token(param("appid")) {
            Some(token) => {
                server.revoke(&token);
                ("200 OK", token)
            }
            None => ("404 Not Found", "no token issued for this appid".into()),
        },
        "/valid" if server.is_valid(param("token")) => ("200 OK", "valid".into()),
        "/valid" => ("200 OK", "invalid".into()),
        "/calls" if param("force_refresh") == "1" => {
            ("200 OK", server.force_refresh_calls().to_string())
        }
        "/calls" => ("200 OK", server.calls(param("path")).to_string()),
        "/advance" => match param("secs").parse::<u64>() {
            Ok(secs) => {
                server.advance(secs);
                ("200 OK", server.now().to_string())
            }
            Err(_) => ("400 Bad Request", "secs=N wanted".into()),
        },
        _ => ("404 Not Found", "unknown control request".into()),
    };
    write!(
        conn,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}\n",
        body.len() + 1
    )
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fake-wechat: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let control = match args.control.as_deref().map(bind_control).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fake-wechat: cannot serve the control endpoint: {e}");
            return ExitCode::from(1);
        }
    };
    let server = match fake::FakeWeChat::start_on(&args.listen, args.tls) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("fake-wechat: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    if !args.accounts.is_empty() {
        server.clear_accounts();
        for (id, secret) in &args.accounts {
            server.add_account(id, secret);
        }
    }
    server.set_realtime(true);
    server.set_log(!args.quiet);

    if let (Some(path), Some(pem)) = (&args.ca_out, server.ca_pem()) {
        if let Err(e) = write_atomically(path, &pem) {
            eprintln!("fake-wechat: cannot write {path}: {e}");
            return ExitCode::from(1);
        }
    } else if args.tls {
        eprintln!("fake-wechat: note: --tls without --ca-out; clients will not trust the cert");
    }

    let mut announce = format!("fake WeChat API listening on {}\n", server.base_url());
    if let Some(listener) = control {
        match listener.local_addr() {
            Ok(a) => announce.push_str(&format!("fake WeChat control on http://{a}\n")),
            Err(e) => {
                eprintln!("fake-wechat: control endpoint: {e}");
                return ExitCode::from(1);
            }
        }
        let server = Arc::clone(&server);
        std::thread::spawn(move || serve_control(listener, server));
    }
    let mut out = std::io::stdout().lock();
    if out
        .write_all(announce.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    drop(out);

    std::thread::sleep(Duration::from_secs(args.exit_after));
    drop(server);
    ExitCode::SUCCESS
}
