//! `wxtoken status`: a monitoring plugin's view of the files and the last runs.
//! Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one line with perfdata, or JSON.

mod common;
mod fake;

use std::fs;
use std::os::unix::process::CommandExt;

use common::*;
use serde_json::Value;

fn status(site: &Site, extra: &[&str]) -> Run {
    let mut c = Cmd::new(&["status", "--out", site.out.to_str().unwrap()]);
    c.args(extra);
    c.run()
}

fn now() -> u64 {
    wxtoken::clock::unix_now()
}

fn set_left(site: &Site, left: u64) {
    let mut v = site.read();
    let n = now();
    v["expires_at"] = (n + left).into();
    v["refreshed_at"] = (n + left - 7200).into();
    fs::write(&site.out, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn ok_warning_critical_from_the_token_file() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let r = status(&site, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stdout.starts_with("WXTOKEN CRITICAL - no token file"),
        "{}",
        r.stdout
    );

    site.refresh(&fake).run().expect(0);
    let token = site.token();
    let r = status(&site, &[]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.starts_with("WXTOKEN OK - 7"), "{}", r.stdout);
    assert!(r.stdout.contains(" | remaining=7"), "{}", r.stdout);
    assert!(
        r.stdout.contains("s;180:;60: consecutive_failures=0"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stdout.lines().count(), 1);
    assert!(
        !r.stdout.contains(&token[..20]),
        "the token is never printed"
    );

    set_left(&site, 150);
    let r = status(&site, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.starts_with("WXTOKEN WARNING - only 1"),
        "{}",
        r.stdout
    );
    let r = status(&site, &["--warn", "100", "--crit", "50"]);
    assert_eq!(r.code, 0, "{}", r.stdout);

    set_left(&site, 30);
    let r = status(&site, &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);

    let mut v = site.read();
    v["expires_at"] = (now() - 10).into();
    v["refreshed_at"] = (now() - 7210).into();
    fs::write(&site.out, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = status(&site, &[]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("the token has expired"), "{}", r.stdout);

    fs::write(&site.out, b"{\"access_token\": 1").unwrap();
    let r = status(&site, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("is not a wxtoken token file"),
        "{}",
        r.stdout
    );
    // status only reads: nothing says the file is being replaced.
    assert!(!r.stderr.contains("replacing"), "{}", r.stderr);
    assert!(!r.stdout.contains("replacing"), "{}", r.stdout);

    // A clock that stepped back since the write: not believed.
    site.refresh(&fake).run().expect(0);
    let mut v = site.read();
    v["refreshed_at"] = (now() + 3 * 3600).into();
    v["expires_at"] = (now() + 3 * 3600 + 7200).into();
    fs::write(&site.out, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = status(&site, &[]);
    assert_eq!(r.code, 2);
    assert!(r.stdout.contains("cannot be believed"), "{}", r.stdout);

    // Tickets: a missing one is CRITICAL.
    site.refresh(&fake).run().expect(0);
    let r = status(&site, &["--ticket", "wx_card"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("no valid wx_card ticket file"),
        "{}",
        r.stdout
    );
    assert_eq!(fake.calls("/cgi-bin/get_api_domain_ip"), 0);
}

#[test]
fn failed_runs_and_dead_tokens_are_named_as_an_admin_acts_on_them() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    fake.set_default(Behaviour::Errcode(
        40164,
        "invalid ip 203.0.113.9 ipv6 ::ffff:203.0.113.9, not in whitelist".into(),
    ));
    for _ in 0..3 {
        site.refresh(&fake).arg("--force").run().expect(78);
    }
    let r = status(&site, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("last 3 refreshes failed: errcode 40164, IP 203.0.113.9 is not on the"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("consecutive_failures=3"), "{}", r.stdout);

    fake.set_default(Behaviour::Errcode(
        45009,
        "reach max api daily quota limit".into(),
    ));
    site.refresh(&fake).arg("--force").run().expect(75);
    let r = status(&site, &["--json"]);
    assert_eq!(r.code, 1);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"], "WARNING");
    assert!(v["remaining"].as_i64().unwrap() > 7000);
    assert!(v["last_refresh"].as_u64().unwrap() > 0);
    assert!(v["last_error"].as_str().unwrap().contains("45009"));
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("daily quota used up"),
        "{v}"
    );

    // A success clears the failures.
    fake.set_default(Behaviour::Normal);
    site.refresh(&fake).arg("--force").run().expect(0);
    assert_eq!(status(&site, &[]).code, 0);

    // Another program rotated the token: the probe finds it dead, wxtoken replaces it, status
    // says so.
    fake.stable_force_out_of_band(DEFAULT_APPID);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    site.refresh(&fake)
        .args(&["--probe-every", "1"])
        .run()
        .expect(0);
    let r = status(&site, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("rotated by another program"),
        "{}",
        r.stdout
    );
}

#[test]
fn unreadable_is_unknown_and_says_who_could_read_it() {
    if !is_root() {
        show("SKIPPED: needs root to run status as another user");
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    fs::set_permissions(
        &site.out,
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    // The directories up to the file must be passable for "nobody" to reach the file itself.
    for d in [site.dir.path(), &site.state_dir()] {
        fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let out = Cmd::new(&["status", "--out", site.out.to_str().unwrap()])
        .command()
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.starts_with("WXTOKEN UNKNOWN - cannot read"),
        "{stdout}"
    );
    assert!(stdout.contains("permission denied"), "{stdout}");
    // The file is root:root: joining group root is never the advice, the file's group is.
    assert!(!stdout.contains("usermod -aG root"), "{stdout}");
    assert!(stdout.contains("--group GROUP"), "{stdout}");
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' status --out '{}' --json | head -c0; echo \"${{PIPESTATUS:-}}\"",
            BIN,
            site.out.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    // Nor a death by SIGPIPE: the monitoring system still gets the plugin's exit status. (The
    // child starts with SIGPIPE at its default, as from a shell.)
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = std::process::Command::new(BIN)
        .args(["status", "--out", site.out.to_str().unwrap()])
        .stdout(writer)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    common::fault(
        "process",
        "`status` writing into a pipe whose reader has gone (SIGPIPE at its default)",
        "no panic, no message, the plugin's exit status (0) kept: no death by SIGPIPE",
    );
}

/// A fallback in use shows in `status --json` as `last_base`, also after later runs that found
/// the file fresh and called nobody.
#[test]
fn json_names_the_base_that_answered_the_last_fetch() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    // A port nobody listens on: bind, note the port, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let bases = format!("http://{dead},{}", fake.base_url());
    let last_base = || {
        let r = status(&site, &["--json"]);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v["last_base"].clone()
    };
    site.refresh(&fake)
        .args(&["--api-base", &bases])
        .run()
        .expect(0);
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(last_base(), Value::from(fake.base_url()));
    site.refresh(&fake)
        .args(&["--api-base", &bases, "--probe-every", "0"])
        .run()
        .expect(0)
        .stderr_has("still fresh");
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(last_base(), Value::from(fake.base_url()));
}

/// Monitoring reads exit 2 as CRITICAL: a mistyped status command line is UNKNOWN (3), like every
/// monitoring plugin's usage error; the other subcommands keep clap's 2.
#[test]
fn usage_errors_and_contradicting_thresholds_are_unknown() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let r = status(&site, &["--no-such-flag"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let r = status(&site, &["--warn", "soon"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert_eq!(Cmd::new(&["refresh", "--no-such-flag"]).run().code, 2);
    assert_eq!(Cmd::new(&["status", "--help"]).run().code, 0);

    // A warning threshold below the critical one would never warn.
    let r = status(&site, &["--warn", "50", "--crit", "100"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(
        r.stdout
            .starts_with("WXTOKEN UNKNOWN - --warn 50 is below --crit 100"),
        "{}",
        r.stdout
    );
    assert_eq!(status(&site, &["--warn", "100", "--crit", "100"]).code, 0);
}

#[test]
fn status_help_speaks_of_reading_not_writing() {
    let r = Cmd::new(&["status", "--help"]).run();
    assert_eq!(r.code, 0);
    for refresh_words in ["Token file to write", "keep a JS-SDK ticket fresh"] {
        assert!(!r.stdout.contains(refresh_words), "{}", r.stdout);
    }
    assert!(r.stdout.contains("Token file to check"), "{}", r.stdout);
    // refresh's own help is unchanged.
    let r = Cmd::new(&["refresh", "--help"]).run();
    assert!(r.stdout.contains("Token file to write"), "{}", r.stdout);
}

/// A failure's cause is shown whole, not cut at a fixed length in mid-sentence.
#[test]
fn the_last_failure_is_quoted_whole() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    // Nothing listens on port 1: the fleet is unreachable, the host fetches nothing.
    site.refresh(&fake)
        .args(&["--redis", "redis://127.0.0.1:1", "--force"])
        .run()
        .expect(75);
    let r = status(&site, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "in fleet mode a host never fetches on its own (--redis-fallback-fetch allows it) |"
        ),
        "{}",
        r.stdout
    );
}

/// A dead verdict without a time has no age ("1796396391 s ago" was the clock itself).
#[test]
fn a_probe_without_a_time_has_no_age() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let state = site.state_dir().join(".wxtoken-state.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    v["last_probe"] = "dead".into();
    v["last_probe_at"] = 0.into();
    fs::write(&state, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = status(&site, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("the last probe found the token dead"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("s ago"), "{}", r.stdout);
}
