//! A fake WeChat / WeCom API on loopback, for demos and manual testing of wxtoken.
//!
//! cargo run --example fake-wechat -- [--listen 127.0.0.1:8808] [--account APPID:SECRET]...
//!     [--tls --ca-out PATH] [--exit-after SECS] [--quiet]
//!
//! Prints exactly one line to stdout, `fake WeChat API listening on http://127.0.0.1:8808`
//! (https with --tls), then serves until killed or until --exit-after seconds (default 3600)
//! have passed. Unlike in the tests, the fake's clock follows real time. One line per request
//! goes to stderr unless --quiet.

#[path = "../tests/fake/mod.rs"]
mod fake;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: fake-wechat [--listen ADDR:PORT] [--account APPID:SECRET]... \
[--tls [--ca-out PATH]] [--exit-after SECS] [--quiet]
  --listen      loopback address to bind (default 127.0.0.1:8808; non-loopback is refused)
  --account     account to accept, repeatable (default wx1234567890abcdef:demo-secret-not-a-real-one)
  --tls         serve HTTPS with a fresh self-signed certificate (SANs localhost, 127.0.0.1, ::1)
  --ca-out      with --tls: write that certificate (PEM) here, for wxtoken's CA-file option
  --exit-after  exit after this many seconds (default 3600)
  --quiet       do not log requests to stderr";

struct Args {
    listen: String,
    accounts: Vec<(String, String)>,
    tls: bool,
    ca_out: Option<String>,
    exit_after: u64,
    quiet: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        listen: "127.0.0.1:8808".into(),
        accounts: Vec::new(),
        tls: false,
        ca_out: None,
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

    let server = match fake::FakeWeChat::start_on(&args.listen, args.tls) {
        Ok(s) => s,
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

    let mut out = std::io::stdout().lock();
    if writeln!(out, "fake WeChat API listening on {}", server.base_url())
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
