//! One validation path: every configuration error `refresh` refuses with 78 is a FAIL line of
//! `wxtoken check` for the same item, with the same words, and `check --online` names the items
//! it did not go online for. Several errors at once are all reported, by both.

mod common;
mod fake;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The settings of `Site::refresh`, as a list a case can change.
fn settings(site: &Site, fake: &FakeWeChat) -> Vec<String> {
    [
        "--appid",
        DEFAULT_APPID,
        "--api-base",
        &fake.base_url(),
        "--secret-file",
        site.secret.to_str().unwrap(),
        "--out",
        site.out.to_str().unwrap(),
        "--timeout",
        "2",
        "--max-time",
        "8",
        "--retries",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Replaces the value of `flag`, or drops the flag when `value` is None.
fn set(argv: &mut Vec<String>, flag: &str, value: Option<&str>) {
    let i = argv.iter().position(|a| a == flag).unwrap();
    match value {
        Some(v) => argv[i + 1] = v.to_string(),
        None => {
            argv.drain(i..i + 2);
        }
    }
}

fn add(argv: &mut Vec<String>, more: &[&str]) {
    argv.extend(more.iter().map(|s| s.to_string()));
}

fn command(sub: &[&str], argv: &[String], env: &[(&str, &str)]) -> Cmd {
    let mut all: Vec<&str> = sub.to_vec();
    all.extend(argv.iter().map(String::as_str));
    let mut c = Cmd::new(&all);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn lines<'a>(run: &'a Run, tag: &str) -> Vec<&'a str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{tag} ")))
        .collect()
}

/// A port on 127.0.0.1 where nothing listens (bound, then let go).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type Apply = fn(&Site, &FakeWeChat, &mut Vec<String>, &mut Vec<(&'static str, &'static str)>);

/// A broken setting: the item `check` reports it under, words both commands say, and whether
/// only this host can tell (then the configuration itself is sound and `--online` goes on).
struct Case {
    item: &'static str,
    words: &'static str,
    host_only: bool,
    apply: Apply,
}

fn case(item: &'static str, words: &'static str, apply: Apply) -> Case {
    Case {
        item,
        words,
        host_only: false,
        apply,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("appid", "no appid: set --appid", |_, _, a, _| {
            set(a, "--appid", None)
        }),
        case("appid", "is not valid", |_, _, a, _| {
            set(a, "--appid", Some("wx'; rm -rf /"))
        }),
        case("secret", "cannot be read", |s, _, a, _| {
            let gone = s.dir.path().join("no-secret");
            set(a, "--secret-file", Some(gone.to_str().unwrap()))
        }),
        case(
            "secret",
            "is readable by other users (mode 0644)",
            |s, _, _, _| fs::set_permissions(&s.secret, fs::Permissions::from_mode(0o644)).unwrap(),
        ),
        case("base", "a path is not allowed", |_, f, a, _| {
            set(a, "--api-base", Some(&format!("{}/cgi-bin", f.base_url())))
        }),
        case("base", "plain http would send the secret", |_, _, a, _| {
            set(a, "--api-base", Some("http://api.weixin.qq.com"))
        }),
        case("base", "is a SOCKS proxy", |_, _, _, e| {
            e.push(("ALL_PROXY", "socks5://127.0.0.1:1080"))
        }),
        case("ca-file", "(--ca-file) cannot be read", |s, _, a, _| {
            let gone = s.dir.path().join("no-ca.pem");
            add(a, &["--ca-file", gone.to_str().unwrap()])
        }),
        case(
            "ticket",
            "--ticket agent_config does not exist for --api stable",
            |_, _, a, _| add(a, &["--ticket", "agent_config"]),
        ),
        case("group", "--group wxtoken-no-such-group", |_, _, a, _| {
            add(a, &["--group", "wxtoken-no-such-group"])
        }),
        case("out", "the extension must be .json", |s, _, a, _| {
            let xml = s.state_dir().join("access_token.xml");
            set(a, "--out", Some(xml.to_str().unwrap()))
        }),
        case("follower", "--follower needs --redis URL", |_, _, a, _| {
            add(a, &["--follower"])
        }),
        case("publish", "--publish needs --redis URL", |_, _, a, _| {
            add(a, &["--publish", "yii2"])
        }),
        case(
            "redis-fallback-fetch",
            "--redis-fallback-fetch needs --redis URL",
            |_, _, a, _| add(a, &["--redis-fallback-fetch"]),
        ),
        case("redis", "--redis holds a password", |_, _, a, _| {
            add(a, &["--redis", "redis://:pw@127.0.0.1:6390/0"])
        }),
        case("follower", "contradict each other", |_, _, a, _| {
            let url = format!("redis://127.0.0.1:{}", closed_port());
            add(
                a,
                &["--redis", &url, "--follower", "--redis-fallback-fetch"],
            )
        }),
        case("publish", "unknown format \"memcached\"", |_, _, a, _| {
            let url = format!("redis://127.0.0.1:{}", closed_port());
            add(a, &["--redis", &url, "--publish", "memcached"])
        }),
        case("redis-password", "the Redis password file", |s, _, a, _| {
            let pw = s.dir.path().join("redis-password");
            fs::write(&pw, "pw\n").unwrap();
            fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).unwrap();
            let url = format!("redis://127.0.0.1:{}", closed_port());
            add(a, &["--redis", &url, "--redis-password-file"]);
            add(a, &[pw.to_str().unwrap()]);
        }),
        case("on-change", "must be an absolute path", |_, _, a, _| {
            add(a, &["--on-change", "myhook.sh"])
        }),
        case("on-change", "run without a shell", |_, _, a, _| {
            add(a, &["--on-change", "a | b"])
        }),
        Case {
            host_only: true,
            ..case(
                "on-change",
                "/nonexistent/hook does not exist",
                |_, _, a, _| add(a, &["--on-change", "/nonexistent/hook"]),
            )
        },
    ]
}

/// Each error alone: refresh exits 78 saying it; check exits 78 with one FAIL line, for the
/// item, saying the same; check --online says which item kept it offline.
#[test]
fn every_error_refresh_refuses_is_a_fail_line_of_check_for_its_item() {
    let fake = FakeWeChat::start();
    for c in cases() {
        let site = Site::new();
        let mut argv = settings(&site, &fake);
        let mut env = Vec::new();
        (c.apply)(&site, &fake, &mut argv, &mut env);
        let what = format!("{} ({})", c.item, c.words);

        let refresh = command(&["refresh"], &argv, &env).run();
        assert_eq!(refresh.code, 78, "refresh, {what}:\n{}", refresh.stderr);
        assert!(
            refresh.stderr.contains(c.words),
            "refresh, {what}:\n{}",
            refresh.stderr
        );
        assert!(
            !refresh.stderr.contains(":pw@"),
            "refresh quoted a password:\n{}",
            refresh.stderr
        );

        let check = command(&["check", "--unit", "none"], &argv, &env).run();
        assert_eq!(check.code, 78, "check, {what}:\n{}", check.stdout);
        let fails = lines(&check, "FAIL");
        assert_eq!(fails.len(), 1, "check, {what}:\n{}", check.stdout);
        let want = format!("FAIL {}: ", c.item);
        assert!(
            fails[0].starts_with(&want) && fails[0].contains(c.words),
            "check, {what}:\n{}",
            check.stdout
        );
        assert!(!check.stdout.contains(":pw@"), "{}", check.stdout);

        let online = command(&["check", "--unit", "none", "--online"], &argv, &env).run();
        assert_eq!(
            online.code, 78,
            "check --online, {what}:\n{}",
            online.stdout
        );
        let skip = format!(
            "SKIP online: not attempted: the configuration has errors ({})",
            c.item
        );
        assert_eq!(
            online.stdout.lines().any(|l| l == skip),
            !c.host_only,
            "check --online, {what}:\n{}",
            online.stdout
        );
    }
}

/// Two errors at once: refresh names both in its one error, check fails both items and names
/// both where it does not go online.
#[test]
fn two_errors_are_both_reported_by_refresh_and_by_check() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let mut argv = settings(&site, &fake);
    set(&mut argv, "--appid", None);
    add(&mut argv, &["--follower", "--on-change", "hook"]);
    let refresh = command(&["refresh"], &argv, &[]).run();
    refresh
        .expect(78)
        .stderr_has("3 configuration problems")
        .stderr_has("[appid] no appid: set --appid")
        .stderr_has("[follower] --follower needs --redis URL")
        .stderr_has("[on-change] --on-change / WXTOKEN_ON_CHANGE \"hook\"");
    assert_eq!(fake.token_calls(), 0);

    let check = command(&["check", "--unit", "none", "--online"], &argv, &[]).run();
    check.expect(78);
    let fails = lines(&check, "FAIL");
    assert_eq!(fails.len(), 3, "{}", check.stdout);
    assert!(fails[0].starts_with("FAIL appid: no appid"), "{fails:?}");
    assert!(
        fails[1].starts_with("FAIL follower: --follower"),
        "{fails:?}"
    );
    assert!(fails[2].starts_with("FAIL on-change: "), "{fails:?}");
    assert!(
        check.stdout.contains(
            "SKIP online: not attempted: the configuration has errors (appid, follower, on-change)"
        ),
        "{}",
        check.stdout
    );
    assert_eq!(fake.token_calls(), 0);
}

/// A redis-server of our own on 127.0.0.1, no persistence; killed when dropped.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start(password: &str) -> Option<Redis> {
        if !require_tool("redis-server") {
            return None;
        }
        let port = closed_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                password,
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "no redis-server");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis {
            child,
            port,
            _dir: dir,
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--online` with `--redis` reads the fleet's token: a FAIL when Redis cannot be reached (where
/// refresh exits 75) or refuses the password (where refresh exits 78), a PASS that writes nothing
/// into Redis otherwise; a follower is not sent to WeChat.
#[test]
fn online_reads_the_fleets_redis_and_fails_when_it_cannot() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let mut argv = settings(&site, &fake);
    let down = format!("redis://127.0.0.1:{}", closed_port());
    add(&mut argv, &["--redis", &down]);
    command(&["refresh"], &argv, &[]).run().expect(75);
    let online = ["check", "--unit", "none", "--online"];
    let run = command(&online, &argv, &[]).run();
    run.expect(78);
    let fails = lines(&run, "FAIL");
    assert_eq!(fails.len(), 1, "{}", run.stdout);
    assert!(
        fails[0].starts_with(&format!(
            "FAIL online redis: Redis at {down}: connecting failed"
        )),
        "{}",
        run.stdout
    );
    // Offline, nothing is wrong with these settings.
    command(&["check", "--unit", "none"], &argv, &[])
        .run()
        .expect(0);

    let Some(redis) = Redis::start("right-password") else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}", redis.port);
    set(&mut argv, "--redis", Some(&url));
    let pw = site.dir.path().join("redis-password");
    let with = |password: &str, argv: &[String]| {
        fs::write(&pw, password).unwrap();
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
        let mut argv = argv.to_vec();
        add(&mut argv, &["--redis-password-file", pw.to_str().unwrap()]);
        argv
    };
    let wrong = with("wrong-password", &argv);
    command(&["refresh"], &wrong, &[]).run().expect(78);
    let run = command(&online, &wrong, &[]).run();
    run.expect(78);
    let fails = lines(&run, "FAIL");
    assert_eq!(fails.len(), 1, "{}", run.stdout);
    assert!(
        fails[0].starts_with(&format!("FAIL online redis: Redis at {url} refused")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("wrong-password"), "{}", run.stdout);

    let right = with("right-password", &argv);
    let calls = fake.token_calls();
    let run = command(&online, &right, &[]).run();
    run.expect(0);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("PASS online redis:")
                && l.contains(&format!(
                    "wxtoken:{{{DEFAULT_APPID}}}:stable:token: nothing yet"
                ))),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("right-password"), "{}", run.stdout);
    assert_eq!(fake.token_calls(), calls + 1, "the stable fetch is made");
    // Once a refresh has published the fleet's token, check finds it there; a follower's check
    // reads it and is not sent to WeChat.
    command(&["refresh"], &right, &[]).run().expect(0);
    let mut follower = right.clone();
    add(&mut follower, &["--follower"]);
    let calls = fake.token_calls();
    let run = command(&online, &follower, &[]).run();
    run.expect(0);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("PASS online redis:")
                && l.contains(&format!("a token of appid {DEFAULT_APPID}, valid"))),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("SKIP online fetch: not made: a --follower"),
        "{}",
        run.stdout
    );
    assert_eq!(fake.token_calls(), calls, "a follower's check fetched");
}
