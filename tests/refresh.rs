//! `wxtoken refresh` end to end: the real binary against the fake WeChat API on 127.0.0.1.

mod common;
mod fake;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;

fn stable_token_calls(fake: &FakeWeChat) -> usize {
    fake.calls("/cgi-bin/stable_token")
}

#[test]
fn stable_happy_path_writes_the_contract() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let run = site.refresh(&fake).run();
    run.expect(0)
        .stderr_has("refreshed")
        .stderr_has("(stable), expires in 7200 s");
    assert_eq!(stable_token_calls(&fake), 1);

    let v = site.read();
    let token = v["access_token"].as_str().unwrap();
    assert!(
        fake.is_valid(token),
        "the fake does not know the written token"
    );
    assert_eq!(v["expires_in"], 7200);
    let expires_at = v["expires_at"].as_u64().unwrap();
    assert_eq!(v["expire_time"].as_u64(), Some(expires_at));
    assert_eq!(expires_at - v["refreshed_at"].as_u64().unwrap(), 7200);
    assert_eq!(v["appid"], DEFAULT_APPID);
    assert_eq!(v["api"], "stable");

    let mode = fs::metadata(&site.out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert_eq!(site.listing(), [".wxtoken.lock", "access_token.json"]);

    // The request is the documented stable_token POST in normal mode.
    let req = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/cgi-bin/stable_token")
        .unwrap();
    assert_eq!(req.method, "POST");
    let body = req.json().unwrap();
    assert_eq!(body["force_refresh"], false);
    assert_eq!(body["grant_type"], "client_credential");
    assert_eq!(body["appid"], DEFAULT_APPID);
}

#[test]
fn legacy_and_wecom_happy_paths() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0)
        .stderr_has("(legacy)");
    assert_eq!(fake.calls("/cgi-bin/token"), 1);
    let legacy = site.token();
    assert!(fake.is_valid(&legacy));
    assert_eq!(site.read()["api"], "legacy");

    // Switching API is a refresh even though the file is fresh.
    site.refresh(&fake)
        .args(&["--api", "wecom"])
        .run()
        .expect(0)
        .stderr_has("(wecom)");
    assert_eq!(fake.calls("/cgi-bin/gettoken"), 1);
    let req = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/cgi-bin/gettoken")
        .unwrap();
    assert_eq!(req.param("corpid").as_deref(), Some(DEFAULT_APPID));
    assert_eq!(req.param("corpsecret").as_deref(), Some(DEFAULT_SECRET));
    let v = site.read();
    assert_eq!(v["api"], "wecom");
    assert_ne!(v["access_token"].as_str().unwrap(), legacy);
    assert!(fake.is_valid(v["access_token"].as_str().unwrap()));
}

#[test]
fn fresh_file_means_no_call_and_force_means_one() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    let before = fs::read(&site.out).unwrap();

    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0)
        .stderr_has("still fresh, ");
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(
        fs::read(&site.out).unwrap(),
        before,
        "a fresh file must not be rewritten"
    );

    site.refresh(&fake)
        .args(&["--api", "legacy", "--force"])
        .run()
        .expect(0);
    assert_eq!(fake.token_calls(), 2);
    assert_ne!(fs::read(&site.out).unwrap(), before);

    // The environment variable works like the flag.
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .env("WXTOKEN_FORCE", "1")
        .run()
        .expect(0);
    assert_eq!(fake.token_calls(), 3);
}

#[test]
fn refreshes_within_the_margin_and_stable_rotation_gives_a_new_token() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let first = site.token();

    // Pretend 6950 s passed for both sides: the fake's clock, and the file's expiry.
    fake.advance(6950);
    let mut v = site.read();
    let now = v["refreshed_at"].as_u64().unwrap();
    for k in ["expires_at", "expire_time"] {
        v[k] = serde_json::json!(now + 250);
    }
    fs::write(&site.out, serde_json::to_vec_pretty(&v).unwrap()).unwrap();

    site.refresh(&fake).run().expect(0).stderr_has("refreshed");
    let second = site.token();
    assert_ne!(
        first, second,
        "in its last 300 s the stable API must hand out a new token"
    );
    assert_eq!(site.read()["expires_in"], 7200);
    assert_eq!(stable_token_calls(&fake), 2);
}

#[test]
fn a_stable_token_with_less_than_the_margin_left_is_written_but_exit_75() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fake.script(vec![Behaviour::Token("80_short_lived".into(), 200)]);
    site.refresh(&fake)
        .run()
        .expect(75)
        .stderr_has("only 200 s left");
    assert_eq!(site.token(), "80_short_lived");
}

#[test]
fn many_simultaneous_runs_make_one_upstream_call() {
    let fake = FakeWeChat::start();
    // A slow upstream keeps the first run inside the lock while the others pile up.
    fake.script(vec![Behaviour::Delay(300, Box::new(Behaviour::Normal))]);
    let site = Site::new();
    let children: Vec<_> = (0..32)
        .map(|_| site.refresh(&fake).args(&["--max-time", "30"]).spawn())
        .collect();
    let mut codes = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        codes.push((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    for (code, stderr) in &codes {
        assert_eq!(*code, Some(0), "{stderr}");
    }
    assert_eq!(
        fake.token_calls(),
        1,
        "32 runs at once must make exactly one upstream call"
    );
    let fresh = codes
        .iter()
        .filter(|(_, e)| e.contains("still fresh"))
        .count();
    assert_eq!(fresh, 31);
    assert!(fake.is_valid(&site.token()));
    assert_eq!(site.listing(), [".wxtoken.lock", "access_token.json"]);
    fault(
        "concurrency",
        "32 runs started at once on one output, slow upstream",
        "all exit 0, 1 upstream call, 31 find the file fresh, valid token, no temp file",
    );
}

#[test]
fn falls_back_to_the_next_base_url() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    // A port nobody listens on: bind, note the port, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let bases = format!("http://{dead},{}", fake.base_url());
    site.refresh(&fake)
        .args(&["--api-base", &bases])
        .run()
        .expect(0)
        .stderr_has("refreshed");
    assert_eq!(fake.token_calls(), 1);

    // A 5xx from the first base also moves on to the second.
    let broken = FakeWeChat::start();
    broken.set_default(Behaviour::Raw(
        502,
        "text/html".into(),
        b"<h1>Bad Gateway</h1>".to_vec(),
    ));
    let bases = format!("{},{}", broken.base_url(), fake.base_url());
    site.refresh(&fake)
        .args(&["--api-base", &bases, "--force"])
        .run()
        .expect(0)
        .stderr_has("HTTP 502");
    assert_eq!(broken.token_calls(), 1);
    assert_eq!(fake.token_calls(), 2);
    fault(
        "upstream",
        "first base URL refuses connections / answers HTTP 502",
        "exit 0 from the next base URL, the 502 logged",
    );
}

#[test]
fn text_plain_and_odd_charsets_are_parsed_as_json() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let body = br#"{"access_token":"80_plain_text_token","expires_in":7200}"#.to_vec();
    fake.script(vec![Behaviour::Raw(
        200,
        "text/plain; charset=ISO-8859-1".into(),
        body,
    )]);
    site.refresh(&fake).run().expect(0);
    assert_eq!(site.token(), "80_plain_text_token");
}

/// Every transient failure: exit 75, the old token kept, nothing left behind, bounded time. A
/// legacy fetch that got no usable answer may still have issued a token (which retires the file's
/// 300 s later): the file then says so.
#[test]
fn transient_failures_exit_75_and_keep_the_old_file() {
    let big = "x".repeat(100_000);
    let cases: Vec<(&str, Behaviour, usize)> = vec![
        (
            "HTTP 500",
            Behaviour::Raw(500, "text/plain".into(), b"oops".to_vec()),
            4,
        ),
        (
            "empty body",
            Behaviour::Raw(200, "text/html; charset=gbk".into(), vec![]),
            4,
        ),
        (
            "not JSON",
            Behaviour::Raw(200, "text/plain".into(), b"<html>busy</html>".to_vec()),
            4,
        ),
        ("truncated", Behaviour::Truncated, 4),
        ("oversized", Behaviour::Oversized(1 << 20), 4),
        ("closed", Behaviour::Close, 4),
        (
            "system busy",
            Behaviour::Errcode(-1, "system error".into()),
            4,
        ),
        (
            "per-minute quota",
            Behaviour::Errcode(45011, "api minute-quota reach limit".into()),
            4,
        ),
        (
            "quote in token",
            Behaviour::Token("80_abc'; system('id'); '".into(), 7200),
            4,
        ),
        (
            "newline in token",
            Behaviour::Token("80_abc\nmalicious".into(), 7200),
            4,
        ),
        (
            "dollar in token",
            Behaviour::Token("80_$(reboot)".into(), 7200),
            4,
        ),
        ("token too long", Behaviour::Token(big, 7200), 4),
        ("empty token", Behaviour::Token(String::new(), 7200), 4),
        ("expires_in 0", Behaviour::Token("80_ok".into(), 0), 4),
        (
            "expires_in too big",
            Behaviour::Token("80_ok".into(), 86_401),
            4,
        ),
        (
            "expires_in negative",
            Behaviour::Token("80_ok".into(), -5),
            4,
        ),
        (
            "expires_in string",
            Behaviour::Raw(
                200,
                "text/plain".into(),
                br#"{"access_token":"80_ok","expires_in":"7200"}"#.to_vec(),
            ),
            4,
        ),
        (
            "no token, no errcode",
            Behaviour::Raw(200, "text/plain".into(), br#"{"hello":1}"#.to_vec()),
            4,
        ),
        (
            "redirect",
            Behaviour::Redirect("http://127.0.0.1:9/steal".into()),
            4,
        ),
        // The daily quota is not retried: the next run can't do better before tomorrow.
        (
            "daily quota",
            Behaviour::Errcode(45009, "reach max api daily quota limit".into()),
            1,
        ),
    ];
    for (name, behaviour, expected_calls) in cases {
        let fake = FakeWeChat::start();
        let site = Site::new();
        site.refresh(&fake)
            .args(&["--api", "legacy"])
            .run()
            .expect(0);
        let before = site.read();
        let listing = site.listing();

        fake.set_default(behaviour);
        let run = site
            .refresh(&fake)
            .args(&["--api", "legacy", "--force", "--retries", "1"])
            .run();
        assert_eq!(run.code, 75, "{name}: exit status; stderr:\n{}", run.stderr);
        let mut after = site.read();
        let left = site.left();
        assert!(
            (290..=300).contains(&left),
            "{name}: the file claims {left} s"
        );
        for field in ["expires_at", "expire_time", "expires_time"] {
            after[field] = before[field].clone();
        }
        assert_eq!(after, before, "{name}: the old file changed");
        assert_eq!(site.listing(), listing, "{name}: files left behind");
        // 1 good call + the failing ones (2 rounds × 1 base, except where not retried).
        let expected = 1 + if expected_calls == 1 { 1 } else { 2 };
        assert_eq!(fake.token_calls(), expected, "{name}: upstream calls");
        assert!(
            run.elapsed < Duration::from_secs(8),
            "{name}: took {:?}",
            run.elapsed
        );
        assert!(
            run.stderr.lines().any(|l| l.starts_with("error: ")),
            "{name}: no error line:\n{}",
            run.stderr
        );
        fault(
            "upstream",
            &format!("{name} (legacy, --force)"),
            &format!(
                "exit 75, old token kept (its expires_at lowered to the fetch + 300 s), no temp file, {expected} upstream calls in all, error line"
            ),
        );
    }
}

#[test]
fn errcodes_in_the_log_and_the_reported_ip() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fake.set_default(Behaviour::Errcode(
        40164,
        "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: 6561-2b".into(),
    ));
    let run = site.refresh(&fake).run();
    run.expect(78)
        .stderr_has("errcode 40164")
        .stderr_has("IP 203.0.113.7")
        .stderr_has("IP whitelist");
    assert_eq!(fake.token_calls(), 1, "config errors are not retried");
    assert!(!site.out.exists());
    fault(
        "upstream",
        "errcode 40164 (IP not whitelisted)",
        "exit 78, log names the IP and the whitelist page, 1 call (no retry), no file",
    );
}

/// Everything an admin must fix: exit 78, not retried, the old file byte-identical.
#[test]
fn config_errors_exit_78_without_retry() {
    let cases: Vec<(&str, i64)> = vec![
        ("stable", 40001),
        ("stable", 40013),
        ("stable", 40125),
        ("legacy", 61004),
        ("stable", 40243),
        ("stable", 41002),
        ("stable", 41004),
        ("stable", 89501),
        ("stable", 89503),
        ("wecom", 40091),
        ("wecom", 60020),
    ];
    for (api, code) in cases {
        let fake = FakeWeChat::start();
        let site = Site::new();
        site.refresh(&fake).args(&["--api", api]).run().expect(0);
        let before = fs::read(&site.out).unwrap();
        fake.set_default(Behaviour::Errcode(code, format!("error {code} rid: 1234")));
        let run = site.refresh(&fake).args(&["--api", api, "--force"]).run();
        assert_eq!(run.code, 78, "errcode {code}: stderr:\n{}", run.stderr);
        assert!(
            run.stderr.contains(&format!("errcode {code}")),
            "{code}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(DEFAULT_APPID),
            "{code}: appid not named: {}",
            run.stderr
        );
        assert_eq!(fake.token_calls(), 2, "errcode {code} must not be retried");
        assert_eq!(fs::read(&site.out).unwrap(), before);
        assert_eq!(site.listing(), [".wxtoken.lock", "access_token.json"]);
        fault(
            "upstream",
            &format!("errcode {code} ({api})"),
            "exit 78 naming errcode and appid, not retried, old file kept",
        );
    }
}

#[test]
fn wrong_secret_against_the_fake_semantics() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fs::write(&site.secret, "not-the-secret").unwrap();
    site.refresh(&fake)
        .run()
        .expect(78)
        .stderr_has("errcode 40001")
        .stderr_has(site.secret.to_str().unwrap());
}

#[test]
fn secret_file_problems_are_config_errors() {
    let fake = FakeWeChat::start();
    let site = Site::new();

    fs::set_permissions(&site.secret, fs::Permissions::from_mode(0o644)).unwrap();
    let path = site.secret.to_str().unwrap();
    site.refresh(&fake)
        .run()
        .expect(78)
        .stderr_has(&format!("chmod o-rwx {path}"));

    fs::set_permissions(&site.secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&site.secret, "\n").unwrap();
    site.refresh(&fake).run().expect(78).stderr_has("is empty");

    let mut c = site.refresh(&fake);
    c.args(&["--secret-file", "/nonexistent/secret"]);
    c.run().expect(78).stderr_has("/nonexistent/secret");

    // No --secret-file and no systemd credential.
    let mut c = Cmd::new(&[
        "refresh",
        "--appid",
        DEFAULT_APPID,
        "--api-base",
        &fake.base_url(),
    ]);
    c.args(&["--out", site.out.to_str().unwrap()]);
    c.run().expect(78).stderr_has("no secret");

    // A missing appid.
    let mut c = Cmd::new(&["refresh", "--api-base", &fake.base_url()]);
    c.args(&["--secret-file", path, "--out", site.out.to_str().unwrap()]);
    c.run().expect(78).stderr_has("WXTOKEN_APPID");
    assert_eq!(fake.token_calls(), 0);
    assert!(!site.out.exists());
    fault(
        "filesystem",
        "secret file world-readable, empty or missing",
        "exit 78 naming the file and the fix, 0 upstream calls",
    );
}

#[test]
fn systemd_credential_and_environment_configuration() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let creds = site.dir.path().join("creds");
    fs::create_dir(&creds).unwrap();
    fs::copy(&site.secret, creds.join("wxtoken-secret")).unwrap();
    fs::set_permissions(
        creds.join("wxtoken-secret"),
        fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    Cmd::new(&["refresh"])
        .env("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())
        .env("WXTOKEN_APPID", DEFAULT_APPID)
        .env("WXTOKEN_API_BASE", &fake.base_url())
        .env("WXTOKEN_OUT", site.out.to_str().unwrap())
        .env("WXTOKEN_API", "legacy")
        .env("WXTOKEN_MODE", "0600")
        .run()
        .expect(0);
    assert_eq!(fake.calls("/cgi-bin/token"), 1);
    assert_eq!(
        fs::metadata(&site.out).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn usage_errors_exit_2() {
    Cmd::new(&["refresh", "--api", "nonsense"]).run().expect(2);
    Cmd::new(&["refresh", "--mode", "0666"])
        .run()
        .expect(2)
        .stderr_has("overwrite");
    Cmd::new(&["refresh", "--margin", "abc"]).run().expect(2);
    Cmd::new(&["frobnicate"]).run().expect(2);
    // The secret itself is not an accepted flag.
    Cmd::new(&["refresh", "--secret", "x"]).run().expect(2);
}

#[test]
fn plain_http_is_refused_except_on_loopback() {
    let site = Site::new();
    let fake = FakeWeChat::start();
    let run = site
        .refresh(&fake)
        .args(&["--api-base", "http://api.weixin.qq.com"])
        .run();
    run.expect(78).stderr_has("clear text");
    assert_eq!(fake.token_calls(), 0);
}

#[test]
fn unreachable_hanging_and_dripping_servers_are_bounded() {
    // Hang: the server reads the request and never answers. Drip: one byte a second.
    for behaviour in [Behaviour::Hang, Behaviour::Drip] {
        let fake = FakeWeChat::start();
        fake.set_default(behaviour.clone());
        let site = Site::new();
        let run = site
            .refresh(&fake)
            .args(&["--timeout", "1", "--max-time", "4", "--retries", "5"])
            .run();
        run.expect(75);
        assert!(
            run.elapsed < Duration::from_millis(5500),
            "{behaviour:?}: took {:?}",
            run.elapsed
        );
        assert!(!site.out.exists());
        assert_eq!(site.listing(), [".wxtoken.lock"]);
        fault(
            "upstream",
            &format!("server {behaviour:?} (timeouts; --timeout 1 --max-time 4 --retries 5)"),
            &format!(
                "exit 75 after {:.1} s (< 5.5), no file",
                run.elapsed.as_secs_f64()
            ),
        );
    }
}

#[test]
fn lock_wait_is_bounded_by_max_time() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fs::create_dir_all(site.state_dir()).unwrap();
    let lock = fs::File::create(site.state_dir().join(".wxtoken.lock")).unwrap();
    lock.lock().unwrap();
    let run = site.refresh(&fake).args(&["--max-time", "2"]).run();
    run.expect(75).stderr_has("held");
    assert!(run.elapsed < Duration::from_secs(4));
    assert_eq!(fake.token_calls(), 0);
    fault(
        "concurrency",
        "lock held by another process for longer than --max-time 2",
        &format!(
            "exit 75 naming the held lock after {:.1} s, 0 upstream calls",
            run.elapsed.as_secs_f64()
        ),
    );
}

/// No fetch when the output cannot be written (a full disk and a directory without write
/// permission are in tests/files.rs).
#[test]
fn unwritable_output_exits_73_and_keeps_the_old_file() {
    let fake = FakeWeChat::start();
    let site = Site::new();

    // A path through a regular file can never be created, even by root.
    let blocker = site.dir.path().join("not-a-dir");
    fs::write(&blocker, "x").unwrap();
    let mut c = site.refresh(&fake);
    c.args(&["--out", blocker.join("t.json").to_str().unwrap()]);
    c.run().expect(73).stderr_has("not-a-dir");
    assert_eq!(fake.token_calls(), 0);
    fault(
        "filesystem",
        "missing directory (a path through a regular file)",
        "exit 73 naming the path, 0 upstream calls",
    );

    // Read-only filesystem: the good file stays as it was, and nothing is fetched for it.
    let mnt = site.dir.path().join("ro");
    let Some(fs_ro) = Tmpfs::mount(&mnt, "1m") else {
        return;
    };
    let out = mnt.join("access_token.json");
    let out_s = out.to_str().unwrap();
    site.refresh(&fake)
        .args(&["--out", out_s, "--api", "legacy"])
        .run()
        .expect(0);
    let before = fs::read(&out).unwrap();
    fs_ro.remount_ro();
    let run = site
        .refresh(&fake)
        .args(&["--out", out_s, "--api", "legacy", "--force"])
        .run();
    run.expect(73)
        .stderr_has(&format!("cannot write {out_s}"))
        .stderr_has("Read-only file system");
    assert_eq!(fs::read(&out).unwrap(), before);
    assert_eq!(fake.token_calls(), 1, "fetched a token it could not write");
    fault(
        "filesystem",
        "read-only filesystem (tmpfs remounted ro), --force",
        "exit 73 \"Read-only file system\", old file kept, no fetch",
    );

    // Nothing to write, nothing to fail: the lock needs no write access.
    site.refresh(&fake)
        .args(&["--out", out_s, "--api", "legacy"])
        .run()
        .expect(0)
        .stderr_has("still fresh");
}

#[test]
fn a_corrupt_file_is_replaced_only_by_a_good_token() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fs::create_dir_all(site.state_dir()).unwrap();
    fs::write(&site.out, "{\"access_token\": \"half").unwrap();

    fake.set_default(Behaviour::Errcode(-1, "busy".into()));
    site.refresh(&fake).run().expect(75);
    assert_eq!(
        fs::read_to_string(&site.out).unwrap(),
        "{\"access_token\": \"half"
    );

    fake.set_default(Behaviour::Normal);
    site.refresh(&fake)
        .run()
        .expect(0)
        .stderr_has("not a wxtoken token file");
    assert!(fake.is_valid(&site.token()));
    fault(
        "filesystem",
        "corrupt (half-written) token file",
        "kept while upstream fails (75), replaced by a valid token once it answers",
    );
}

#[test]
fn a_directory_serves_one_account() {
    let fake = FakeWeChat::start();
    fake.add_account("wxother000000000001", "other-secret");
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let before = fs::read(&site.out).unwrap();
    let s2 = site.dir.path().join("secret2");
    fs::write(&s2, "other-secret").unwrap();
    fs::set_permissions(&s2, fs::Permissions::from_mode(0o600)).unwrap();
    let other = |c: &mut common::Cmd| {
        c.args(&[
            "--appid",
            "wxother000000000001",
            "--secret-file",
            s2.to_str().unwrap(),
        ]);
    };
    // While the first account's token lives, the other account is refused, not served, and
    // nothing is overwritten.
    let mut c = site.refresh(&fake);
    other(&mut c);
    c.run()
        .expect(78)
        .stderr_has("is in use by appid wx1234567890abcdef")
        .stderr_has("give each its own");
    assert_eq!(fs::read(&site.out).unwrap(), before);
    assert_eq!(fake.token_calls(), 1);
    // Once it has expired, the directory can change hands.
    let mut v = site.read();
    v["expires_at"] = (v["refreshed_at"].as_u64().unwrap() + 1).into();
    v["expires_in"] = 1.into();
    fs::write(&site.out, v.to_string()).unwrap();
    let state = site.state_dir().join(".wxtoken-state.json");
    let mut st: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    st["token_expires_at"] = v["expires_at"].clone();
    fs::write(&state, st.to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut c = site.refresh(&fake);
    other(&mut c);
    c.run().expect(0).stderr_has("taking over");
    assert_eq!(site.read()["appid"], "wxother000000000001");
}

#[test]
fn self_signed_certificates_are_refused_unless_trusted() {
    let fake = FakeWeChat::start_tls();
    let site = Site::new();
    let run = site.refresh(&fake).run();
    run.expect(75).stderr_has("TLS");
    assert!(!site.out.exists());

    let ca = site.dir.path().join("ca.pem");
    fs::write(&ca, fake.ca_pem().unwrap()).unwrap();
    site.refresh(&fake)
        .args(&["--ca-file", ca.to_str().unwrap()])
        .run()
        .expect(0);
    assert!(fake.is_valid(&site.token()));

    // A CA file without a certificate is a config error, not a silent fallback.
    fs::write(&ca, "nothing here").unwrap();
    site.refresh(&fake)
        .args(&["--ca-file", ca.to_str().unwrap(), "--force"])
        .run()
        .expect(78);
    fault(
        "upstream",
        "TLS: self-signed certificate; CA file without a certificate",
        "exit 75 \"TLS\" and no file; trusted with --ca-file; an empty CA file is 78",
    );
}

#[test]
fn the_secret_never_reaches_the_log_and_the_token_only_masked() {
    for api in ["stable", "legacy", "wecom"] {
        let fake = FakeWeChat::start();
        let site = Site::new();
        let run = site
            .refresh(&fake)
            .args(&["--api", api])
            .env("RUST_LOG", "trace")
            .run();
        run.expect(0);
        let token = site.token();
        assert!(
            run.stderr.lines().count() > 5,
            "trace logging produced almost nothing:\n{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains(DEFAULT_SECRET),
            "{api}: secret in the log:\n{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("demo-secret"),
            "{api}: part of the secret in the log"
        );
        // ...nor in the hex dumps HTTP libraries print at trace level ("demo-s" as hex).
        assert!(
            !run.stderr.contains("6465 6d6f 2d73"),
            "{api}: the secret in a hex dump"
        );
        assert!(
            !run.stderr.contains(&token),
            "{api}: unmasked token in the log"
        );
        assert!(
            run.stderr.contains(&token[..6]),
            "{api}: the masked token should be shown"
        );

        // Failures too: an error path must not print the URL with the secret.
        fake.set_default(Behaviour::Errcode(40125, "invalid appsecret".into()));
        let run = site
            .refresh(&fake)
            .args(&["--api", api, "--force"])
            .env("RUST_LOG", "trace")
            .run();
        run.expect(78);
        assert!(
            !run.stderr.contains(DEFAULT_SECRET),
            "{api}: secret in the error log"
        );
    }
}

#[test]
fn stale_temp_files_of_a_killed_run_are_removed() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fs::create_dir_all(site.state_dir()).unwrap();
    let stale = site.state_dir().join(".access_token.json.Ab12Cd.tmp");
    fs::write(&stale, "{\"access_token\":").unwrap();
    let unrelated = site.state_dir().join(".other.tmp");
    fs::write(&unrelated, "keep").unwrap();
    // Named like ours but not ours (not .NAME.XXXXXX.tmp): an admin's copy stays.
    let lookalike = site.state_dir().join(".access_token.json.old-copy.tmp");
    fs::write(&lookalike, "keep").unwrap();
    site.refresh(&fake)
        .run()
        .expect(0)
        .stderr_has("interrupted run");
    assert!(!stale.exists());
    assert!(
        unrelated.exists() && lookalike.exists(),
        "only wxtoken's own temp files may be removed"
    );
    fault(
        "kill -9",
        "temp file left by a killed run",
        "removed by the next run, lookalike files kept",
    );
}

/// kill -9 at random moments across hundreds of runs: the file is always absent or a complete,
/// valid token file, for a reader polling it the whole time and after every kill.
#[test]
fn kill_9_never_leaves_a_partial_file() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let fake = FakeWeChat::start();
    let site = Site::new();
    let out = site.out.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reader = {
        let (stop, reads, bad, out) = (stop.clone(), reads.clone(), bad.clone(), out.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(bytes) = fs::read(&out) {
                    reads.fetch_add(1, Ordering::Relaxed);
                    let ok = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .is_ok_and(|v| v["access_token"].as_str().is_some_and(|t| !t.is_empty()));
                    if !ok {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (mut killed, mut finished, mut temps_seen) = (0, 0, 0);
    for _ in 0..300 {
        let mut child = site
            .refresh(&fake)
            .args(&["--api", "legacy", "--force"])
            .spawn();
        std::thread::sleep(Duration::from_micros(rand(12_000)));
        match child.try_wait().unwrap() {
            Some(_) => finished += 1,
            None => {
                child.kill().unwrap(); // SIGKILL
                killed += 1;
            }
        }
        child.wait().unwrap();
        if site.listing().iter().any(|n| n.ends_with(".tmp")) {
            temps_seen += 1;
        }
        if out.exists() {
            let v = site.read();
            let token = v["access_token"].as_str().unwrap();
            assert!(!token.is_empty() && v["expires_at"].as_u64().unwrap() > 0);
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let (reads, bad) = (reads.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    show(&format!(
        "kill -9: {killed} runs killed, {finished} finished, {temps_seen} left a temp file; \
         {reads} concurrent reads, {bad} bad"
    ));
    assert_eq!(bad, 0, "a reader saw a partial or empty file");
    assert!(
        killed >= 100,
        "too few runs were killed mid-way ({killed}) for the test to mean much"
    );

    // The next complete run cleans up whatever the killed ones left.
    site.refresh(&fake)
        .args(&["--api", "legacy", "--force"])
        .run()
        .expect(0);
    assert_eq!(site.listing(), [".wxtoken.lock", "access_token.json"]);
    assert!(fake.is_valid(&site.token()));
    fault(
        "kill -9",
        "SIGKILL at random points of 300 refresh runs, a reader looping",
        &format!("{killed} killed, {reads} concurrent reads, 0 partial files; next run cleans up"),
    );
}

#[test]
fn redirects_are_not_followed_and_the_body_limit_is_64_kib() {
    let fake = FakeWeChat::start();
    let elsewhere = FakeWeChat::start();
    let site = Site::new();
    fake.set_default(Behaviour::Redirect(format!(
        "{}/cgi-bin/stable_token",
        elsewhere.base_url()
    )));
    site.refresh(&fake).run().expect(75).stderr_has("HTTP 302");
    assert_eq!(
        elsewhere.requests().len(),
        0,
        "the redirect was followed (with the secret)"
    );

    // Padding a good answer to 60 KiB is still accepted; 64 KiB + 1 is not.
    fake.set_default(Behaviour::Oversized(60 * 1024));
    site.refresh(&fake).run().expect(0);
    fake.set_default(Behaviour::Oversized(64 * 1024 + 1));
    site.refresh(&fake)
        .args(&["--force"])
        .run()
        .expect(75)
        .stderr_has("over 65536 bytes");
    fault(
        "upstream",
        "HTTP 302 redirect; body over 64 KiB",
        "redirect not followed (0 requests elsewhere), exit 75; 60 KiB accepted, 64 KiB + 1 is 75",
    );
}

#[test]
fn root_does_not_write_into_another_users_directory() {
    if !is_root() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI runs as root"
        );
        show("SKIPPED: needs root");
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    fs::create_dir_all(site.state_dir()).unwrap();
    std::os::unix::fs::chown(site.state_dir(), Some(65534), Some(65534)).unwrap();
    let run = site.refresh(&fake).run();
    run.expect(78)
        .stderr_has("refusing to write")
        .stderr_has("systemctl start wxtoken.service");
    assert_eq!(fake.token_calls(), 0);
    assert!(
        site.listing().is_empty(),
        "nothing may be created: {:?}",
        site.listing()
    );
}

/// Before the service ever ran, root running `wxtoken refresh` by hand must not create the
/// service's directory, nor write into it when root made it (root-owned files there would lock
/// the service's user out).
#[test]
fn root_does_not_create_the_service_directory() {
    if !is_root() {
        show("SKIPPED: needs root");
        return;
    }
    let dir = std::path::Path::new("/var/lib/wxtoken");
    if dir.exists() {
        show("SKIPPED: /var/lib/wxtoken exists on this machine");
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--out", "/var/lib/wxtoken/access_token.json"])
        .run()
        .expect(78)
        .stderr_has("refusing to create /var/lib/wxtoken as root")
        .stderr_has("install -d -o wxtoken -g wxtoken -m 0750");
    assert!(!dir.exists());
    assert_eq!(fake.token_calls(), 0);

    // Nor write into it when root owns it (made by hand before the service ever ran): the
    // service's user could not replace those files. (The same test: both use the one path.)
    fs::create_dir_all(dir).unwrap();
    let run = site
        .refresh(&fake)
        .args(&["--out", "/var/lib/wxtoken/access_token.json"])
        .run();
    let listing: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    fs::remove_dir_all(dir).unwrap();
    run.expect(78)
        .stderr_has("refusing to write into /var/lib/wxtoken as root")
        .stderr_has("chown -R wxtoken:wxtoken /var/lib/wxtoken");
    assert!(listing.is_empty(), "root wrote {listing:?}");
    assert_eq!(fake.token_calls(), 0);
}
