//! Fleet mode (--redis) with a real redis-server started here on 127.0.0.1: several "hosts"
//! (output directories, each with its own run state and lock) against one fake WeChat. One fetch
//! per refresh window however many runs start at once; Redis stopped mid-run, a leader killed
//! while it holds the lock, followers, a report on one host acted on once for all.

mod common;
mod fake;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A redis-server of our own: a free port on 127.0.0.1, a temp directory, no persistence (a
/// restart comes back empty, as a cache without persistence does).
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// rediss:// only, with the certificates `make_ca` left in `dir`.
    tls: bool,
}

impl Redis {
    /// None (after SKIPPED) without redis-server, outside CI.
    fn start() -> Option<Redis> {
        Redis::start_with(false)
    }

    /// TLS only, with a server certificate for 127.0.0.1 from a CA of its own (`ca.pem` in `dir`).
    fn start_tls() -> Option<Redis> {
        if !require_tool("openssl") {
            return None;
        }
        Redis::start_with(true)
    }

    fn start_with(tls: bool) -> Option<Redis> {
        if !require_tool("redis-server") {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            tls,
        };
        if tls {
            make_certificates(r.dir.path());
        }
        r.restart();
        Some(r)
    }

    fn restart(&mut self) {
        assert!(self.child.is_none());
        let mut cmd = Command::new("redis-server");
        if self.tls {
            let d = self.dir.path();
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args(["--tls-auth-clients", "no", "--tls-cert-file"])
                .arg(d.join("server.pem"))
                .arg("--tls-key-file")
                .arg(d.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(d.join("ca.pem"));
        } else {
            cmd.args(["--port", &self.port.to_string()]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let start = Instant::now();
        while self.try_conn().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9: whatever a client is doing fails at once.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn try_conn(&self) -> Option<redis::Connection> {
        let client = if self.tls {
            let ca = fs::read(self.dir.path().join("ca.pem")).unwrap();
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca),
            };
            redis::Client::build_with_tls(self.url(), certs)
        } else {
            redis::Client::open(self.url())
        };
        let mut c = client
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        redis::cmd("PING").query::<String>(&mut c).ok()?;
        Some(c)
    }

    fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.try_conn().unwrap())
            .unwrap()
    }

    fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query(&mut self.try_conn().unwrap())
            .unwrap()
    }

    /// The fleet's token as Redis holds it.
    fn token(&self, api: &str) -> Option<String> {
        let raw = self.get(&format!("wxtoken:{{{DEFAULT_APPID}}}:{api}:token"))?;
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        Some(v["access_token"].as_str().unwrap().to_string())
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, with the openssl command line.
fn make_certificates(dir: &Path) {
    let run = |args: &str| {
        let out = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    run(&format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=wxtoken-test-CA"
    ));
    run(&format!(
        "req {ec} -keyout server.key -out server.csr -subj /CN=127.0.0.1"
    ));
    fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 2 -extfile ext",
    );
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A host of the fleet: its own directory, run state and lock; legacy API (where one fetch
/// retires the others' token, so coordination matters).
fn host(site: &Site, fake: &FakeWeChat, redis: &Redis) -> Cmd {
    let mut c = site.refresh(fake);
    c.args(&["--api", "legacy", "--redis", &redis.url()]);
    c.args(&["--max-time", "30", "--probe-every", "0"]);
    c
}

fn finish(child: Child) -> common::Run {
    let out = child.wait_with_output().unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::new(),
        elapsed: Duration::ZERO,
    }
}

/// The ticket of this type a host's file holds, if any.
fn ticket_of(site: &Site, ty: &str) -> Option<String> {
    let bytes = fs::read(site.state_dir().join(format!("{ty}_ticket.json"))).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    Some(v["ticket"].as_str().unwrap().to_string())
}

/// The token a host's file holds, if any (panics on a file that is not a complete token file:
/// "no file corrupted").
fn file_token(site: &Site) -> Option<String> {
    let bytes = fs::read(&site.out).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{} is corrupt ({e})", site.out.display()));
    Some(v["access_token"].as_str().unwrap().to_string())
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn three_hosts_twenty_runs_each_at_once_make_one_fetch() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let hosts: Vec<Site> = (0..3).map(|_| Site::new()).collect();
    let start = Instant::now();
    let children: Vec<Child> = (0..20)
        .flat_map(|_| hosts.iter())
        .map(|site| host(site, &fake, &redis).spawn())
        .collect();
    let runs: Vec<_> = children.into_iter().map(finish).collect();
    let took = start.elapsed();
    for r in &runs {
        r.expect(0);
    }
    assert_eq!(
        fake.token_calls(),
        1,
        "one upstream fetch for the whole fleet"
    );
    let token = redis.token("legacy").expect("the fleet's token in Redis");
    assert!(fake.is_valid(&token));
    for site in &hosts {
        assert_eq!(file_token(site).as_deref(), Some(token.as_str()));
    }
    let pttl = redis.pttl(&format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:token"));
    assert!(
        (7_100_000..=7_200_000).contains(&pttl),
        "the key lives as long as the token: {pttl} ms"
    );
    assert_eq!(
        redis.get(&format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:lock")),
        None,
        "the lock was released"
    );
    let took_over = runs
        .iter()
        .filter(|r| r.stderr.contains("from the fleet"))
        .count();
    assert!(took_over >= 2, "the other hosts took the token from Redis");
    show(&format!(
        "fleet: 3 hosts x 20 runs started at once, 1 upstream fetch, all done in {:.2} s",
        took.as_secs_f64()
    ));
}

#[test]
fn redis_stopped_mid_run_keeps_every_file_and_fetches_nothing_then_recovers() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let fake = FakeWeChat::start();
    let hosts: Vec<Site> = (0..3).map(|_| Site::new()).collect();
    for site in &hosts {
        host(site, &fake, &redis).run().expect(0);
    }
    let t1 = redis.token("legacy").unwrap();
    assert_eq!(fake.token_calls(), 1);

    // Host 0 rotates (--force) through a slow WeChat; the others queue behind its lock. Redis dies
    // while host 0's request is in flight.
    fake.set_default(Behaviour::Delay(1500, Box::new(Behaviour::Normal)));
    let leader = host(&hosts[0], &fake, &redis).arg("--force").spawn();
    let lock = format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:lock");
    wait_for("the leader's lock", Duration::from_secs(10), || {
        redis.get(&lock).is_some()
    });
    let others: Vec<Child> = hosts[1..]
        .iter()
        .map(|s| host(s, &fake, &redis).arg("--force").spawn())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    redis.stop();
    let leader = finish(leader);
    leader.expect(75).stderr_has("this host's files only");
    for r in others.into_iter().map(finish) {
        r.expect(75);
    }
    assert_eq!(
        fake.token_calls(),
        2,
        "only the leader's fetch, made before Redis died"
    );
    let t2 = file_token(&hosts[0]).unwrap();
    assert_ne!(t1, t2, "the leader wrote what it fetched");
    for site in &hosts[1..] {
        assert_eq!(file_token(site).as_deref(), Some(t1.as_str()), "kept");
    }

    // Redis still down: every host keeps its file, exits 75, calls nobody; one without a file
    // gets none.
    fake.set_default(Behaviour::Normal);
    for site in &hosts {
        let before = fs::read(&site.out).unwrap();
        host(site, &fake, &redis)
            .run()
            .expect(75)
            .stderr_has("never fetches on its own");
        assert_eq!(fs::read(&site.out).unwrap(), before);
    }
    let newcomer = Site::new();
    host(&newcomer, &fake, &redis).run().expect(75);
    assert!(!newcomer.out.exists());
    assert_eq!(
        fake.token_calls(),
        2,
        "no upstream call while Redis is down"
    );
    // The explicit opt-in fetches on its own, and still says that Redis is down.
    host(&newcomer, &fake, &redis)
        .arg("--redis-fallback-fetch")
        .run()
        .expect(75);
    assert_eq!(fake.token_calls(), 3);
    let t3 = file_token(&newcomer).unwrap();

    // Redis back, empty: the newest token (the opt-in host's) becomes the fleet's without a fetch.
    redis.restart();
    host(&newcomer, &fake, &redis)
        .run()
        .expect(0)
        .stderr_has("published this host's token");
    host(&hosts[0], &fake, &redis).run().expect(0);
    for site in &hosts[1..] {
        host(site, &fake, &redis).run().expect(0);
    }
    assert_eq!(fake.token_calls(), 3, "recovery costs no fetch");
    assert_eq!(redis.token("legacy").as_deref(), Some(t3.as_str()));
    for site in &hosts {
        assert_eq!(file_token(site).as_deref(), Some(t3.as_str()));
    }
    assert!(fake.is_valid(&t3));
    fault(
        "Redis",
        "Redis stopped mid-run, then restarted empty",
        "every host keeps its file, no upstream call while down (opt-in fetches); recovery costs no fetch",
    );
}

#[test]
fn a_failed_publish_is_published_by_the_next_run_without_a_second_fetch() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let fake = FakeWeChat::start();
    let (a, b) = (Site::new(), Site::new());
    fake.set_default(Behaviour::Delay(1000, Box::new(Behaviour::Normal)));
    let leader = host(&a, &fake, &redis).spawn();
    wait_for("the leader's request", Duration::from_secs(10), || {
        fake.token_calls() == 1
    });
    redis.stop();
    finish(leader).expect(75);
    let token = file_token(&a).unwrap();
    redis.restart();
    host(&a, &fake, &redis).run().expect(0);
    host(&b, &fake, &redis).run().expect(0);
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(redis.token("legacy").as_deref(), Some(token.as_str()));
    assert_eq!(file_token(&b).as_deref(), Some(token.as_str()));
}

#[test]
fn a_leader_killed_while_holding_the_lock_is_taken_over_within_its_expiry() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let hosts: Vec<Site> = (0..3).map(|_| Site::new()).collect();
    // The leader's request never gets an answer; WeChat issues nothing for it.
    fake.script(vec![Behaviour::Hang]);
    let lock_for = 6;
    let mut leader = host(&hosts[0], &fake, &redis)
        .args(&["--max-time", &lock_for.to_string()])
        .spawn();
    let started = Instant::now();
    let lock = format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:lock");
    wait_for(
        "the leader's hanging request",
        Duration::from_secs(10),
        || fake.token_calls() == 1,
    );
    assert!(redis.get(&lock).is_some(), "the leader holds the lock");
    // SAFETY: our own child, not yet reaped.
    unsafe { libc::kill(leader.id() as libc::pid_t, libc::SIGKILL) };
    let _ = leader.wait();
    let others: Vec<Child> = hosts[1..]
        .iter()
        .map(|s| host(s, &fake, &redis).spawn())
        .collect();
    let runs: Vec<_> = others.into_iter().map(finish).collect();
    let taken_over = started.elapsed();
    for r in &runs {
        r.expect(0);
    }
    assert!(
        taken_over < Duration::from_secs(lock_for + 3),
        "taken over within the lock's expiry ({lock_for} s): {taken_over:?}"
    );
    assert!(
        taken_over >= Duration::from_millis(lock_for * 1000 - 1500),
        "nobody fetched while the lock was held: {taken_over:?}"
    );
    assert_eq!(
        fake.issued(DEFAULT_APPID),
        1,
        "one token issued in the window"
    );
    assert_eq!(fake.token_calls(), 2, "the hung request and the takeover's");
    let token = redis.token("legacy").unwrap();
    assert_eq!(file_token(&hosts[1]).as_deref(), Some(token.as_str()));
    assert_eq!(file_token(&hosts[2]).as_deref(), Some(token.as_str()));
    // The killed leader's next run mirrors the fleet's token (and removes its temp files).
    host(&hosts[0], &fake, &redis).run().expect(0);
    assert_eq!(file_token(&hosts[0]).as_deref(), Some(token.as_str()));
    assert_eq!(hosts[0].listing(), [".wxtoken.lock", "access_token.json"]);
    fault(
        "kill -9",
        "fleet leader SIGKILLed holding the Redis lock",
        &format!(
            "taken over within the lock's expiry ({:.1} s), one token issued, the killed host mirrors it",
            taken_over.as_secs_f64()
        ),
    );
    assert_eq!(fake.token_calls(), 2);
    show(&format!(
        "fleet: leader killed holding the lock ({lock_for} s), taken over after {:.2} s",
        taken_over.as_secs_f64()
    ));
}

#[test]
fn a_follower_never_fetches() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let (leader, follower) = (Site::new(), Site::new());
    let follow = || {
        let mut c = host(&follower, &fake, &redis);
        c.args(&["--follower", "--probe-every", "60", "--max-time", "3"]);
        c
    };
    follow().run().expect(75).stderr_has("--follower");
    assert!(!follower.out.exists());
    host(&leader, &fake, &redis).run().expect(0);
    follow().run().expect(0).stderr_has("from the fleet");
    let token = file_token(&leader).unwrap();
    assert_eq!(file_token(&follower).as_deref(), Some(token.as_str()));
    // An app on the follower reports the token: a probe is not a fetch, so the follower checks
    // it itself (WeChat still accepts it: kept, and the report is cleared for the fleet).
    Cmd::new(&[
        "report-stale",
        "--out",
        follower.out.to_str().unwrap(),
        &wxtoken::api::digest(&token),
    ])
    .run()
    .expect(0);
    follow().run().expect(0).stderr_has("WeChat accepts it");
    assert_eq!(fake.calls("/cgi-bin/get_api_domain_ip"), 1);
    assert_eq!(fake.token_calls(), 1, "the follower fetched nothing");
    assert_eq!(
        redis.get(&format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:report")),
        None
    );
    // The leader, next, has nothing left to check.
    host(&leader, &fake, &redis).run().expect(0);
    assert_eq!(fake.calls("/cgi-bin/get_api_domain_ip"), 1);
    Cmd::new(&["refresh"])
        .args(&["--follower", "--appid", DEFAULT_APPID])
        .args(&["--secret-file", follower.secret.to_str().unwrap()])
        .run()
        .expect(78)
        .stderr_has("needs --redis");
}

#[test]
fn a_dead_token_reported_on_every_host_is_replaced_once() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let hosts: Vec<Site> = (0..3).map(|_| Site::new()).collect();
    for site in &hosts {
        host(site, &fake, &redis).run().expect(0);
    }
    let old = redis.token("legacy").unwrap();
    fake.revoke(&old);
    for site in &hosts {
        Cmd::new(&[
            "report-stale",
            "--out",
            site.out.to_str().unwrap(),
            &wxtoken::api::digest(&old),
        ])
        .run()
        .expect(0);
    }
    let children: Vec<Child> = hosts
        .iter()
        .map(|s| host(s, &fake, &redis).spawn())
        .collect();
    for r in children.into_iter().map(finish) {
        r.expect(0);
    }
    assert_eq!(fake.token_calls(), 2, "one fetch for the fleet");
    let new = redis.token("legacy").unwrap();
    assert_ne!(new, old);
    assert!(fake.is_valid(&new));
    for site in &hosts {
        assert_eq!(file_token(site).as_deref(), Some(new.as_str()));
    }
}

#[test]
fn redis_settings_are_checked_before_anything() {
    let site = Site::new();
    let fake = FakeWeChat::start();
    let run = |url: &str| {
        let mut c = site.refresh(&fake);
        c.args(&["--redis", url]);
        c.run()
    };
    let r = run("redis://:hunter2@127.0.0.1:1");
    r.expect(78).stderr_has("--redis-password-file");
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    run("rediss://127.0.0.1:1/#insecure").expect(78);
    let mut c = site.refresh(&fake);
    c.args(&["--publish", "wechatpy"]);
    c.run().expect(78).stderr_has("needs --redis");
    let mut c = site.refresh(&fake);
    c.args(&["--redis", "redis://127.0.0.1:1", "--publish", "easywechat"]);
    c.run().expect(78).stderr_has("AppSecret");
    // Nothing listens there: 75, and no fetch on its own.
    run("redis://127.0.0.1:1").expect(75);
    assert_eq!(fake.token_calls(), 0);
    // The password file gets the secret file's checks.
    let pw = site.dir.path().join("redis-password");
    fs::write(&pw, "pw\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = site.refresh(&fake);
    c.args(&["--redis", "redis://127.0.0.1:1"])
        .args(&["--redis-password-file", pw.to_str().unwrap()]);
    c.run().expect(78).stderr_has("readable by other users");
    assert!(!Path::new(&site.out).exists());
}

#[test]
fn a_wrong_redis_password_is_a_configuration_error() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let site = Site::new();
    let mut c = redis.try_conn().unwrap();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("right-password")
        .query::<()>(&mut c)
        .unwrap();
    let pw = site.dir.path().join("redis-password");
    let with = |p: &str| {
        fs::write(&pw, p).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
        let mut c = host(&site, &fake, &redis);
        c.args(&["--redis-password-file", pw.to_str().unwrap()]);
        c.run()
    };
    let r = with("wrong-password");
    r.expect(78).stderr_has("password");
    assert!(!r.stderr.contains("wrong-password"), "{}", r.stderr);
    assert_eq!(fake.token_calls(), 0);
    // From the systemd credential directory by default.
    fs::write(&pw, "right-password").unwrap();
    let creds = site.dir.path().join("creds");
    fs::create_dir(&creds).unwrap();
    fs::copy(&pw, creds.join("wxtoken-redis-password")).unwrap();
    host(&site, &fake, &redis)
        .env("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())
        .run()
        .expect(0);
    assert_eq!(fake.token_calls(), 1);
}

/// The Python of a venv with the real wechatpy (PyPI) and redis packages: .ci/run makes it with
/// `python3 -m venv target/wechatpy-venv && target/wechatpy-venv/bin/pip install wechatpy==1.8.18
/// redis`; elsewhere WXTOKEN_TEST_WECHATPY names one. None (after SKIPPED) when there is none.
fn wechatpy_python() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("WXTOKEN_TEST_WECHATPY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wechatpy-venv/bin/python")
        });
    let ok = Command::new(&path)
        .args(["-c", "import wechatpy, redis"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{} with wechatpy and redis is required under CI=true",
                path.display()
            );
        }
        show(&format!(
            "SKIPPED: no venv with wechatpy at {} (WXTOKEN_TEST_WECHATPY)",
            path.display()
        ));
        return None;
    }
    Some(path)
}

/// An app on wechatpy 1.8 with RedisStorage calls an API: it must use the token wxtoken put in
/// wechatpy's key, and never run its own fetch (pointed at the fake, so that one would show).
const WECHATPY_APP: &str = r#"
import json, sys
import redis
from wechatpy import WeChatClient
from wechatpy.session.redisstorage import RedisStorage

port, appid, base = sys.argv[1], sys.argv[2], sys.argv[3]
client = WeChatClient(appid, "not-the-secret", session=RedisStorage(redis.Redis(port=int(port))))
client.API_BASE_URL = base + "/cgi-bin/"
fetches = []
def fetch():
    fetches.append(1)
    return client._fetch_access_token(
        url=base + "/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": appid, "secret": "x"})
client.fetch_access_token = fetch
answer = client.get("get_api_domain_ip")
ticket = client.jsapi.get_jsapi_ticket()
print(json.dumps({"token": client.access_token, "fetches": len(fetches), "answer": answer,
                  "ticket": ticket}))
"#;

#[test]
#[ignore = "needs the real wechatpy in target/wechatpy-venv (as .ci/run makes it): cargo test -- --include-ignored"]
fn wechatpy_uses_the_published_token_and_never_fetches() {
    let Some(redis) = Redis::start() else { return };
    let Some(python) = wechatpy_python() else {
        return;
    };
    let fake = FakeWeChat::start();
    let site = Site::new();
    host(&site, &fake, &redis)
        .args(&["--publish", "wechatpy", "--ticket", "jsapi"])
        .run()
        .expect(0)
        .stderr_has("SDK key");
    let token = file_token(&site).unwrap();
    let ticket = ticket_of(&site, "jsapi").unwrap();
    let key = format!("wechatpy:{DEFAULT_APPID}_access_token");
    assert_eq!(redis.get(&key), Some(format!("\"{token}\"")));
    let calls = fake.token_calls();
    let ticket_calls = fake.ticket_calls();
    let mut cmd = Command::new(&python);
    cmd.args(["-c", WECHATPY_APP, &redis.port.to_string(), DEFAULT_APPID])
        .arg(fake.base_url());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().to_lowercase().ends_with("_proxy") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fetches"], 0, "wechatpy fetched a token of its own");
    assert_eq!(v["token"].as_str(), Some(token.as_str()));
    assert_eq!(v["answer"]["ip_list"][0], "127.0.0.1", "{v}");
    assert_eq!(v["ticket"].as_str(), Some(ticket.as_str()));
    assert_eq!(fake.token_calls(), calls);
    assert_eq!(
        fake.ticket_calls(),
        ticket_calls,
        "wechatpy fetched a ticket of its own"
    );
    let used = fake
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/cgi-bin/get_api_domain_ip")
        .unwrap();
    assert_eq!(used.param("access_token").as_deref(), Some(token.as_str()));

    // The key deleted by hand (or evicted): the next run puts it back, without a fetch.
    redis::cmd("DEL")
        .arg(&key)
        .query::<()>(&mut redis.try_conn().unwrap())
        .unwrap();
    host(&site, &fake, &redis)
        .args(&["--publish", "wechatpy", "--ticket", "jsapi"])
        .run()
        .expect(0);
    assert_eq!(redis.get(&key), Some(format!("\"{token}\"")));
    assert_eq!(fake.token_calls(), calls);
}

/// What `Yii::$app->redis_cache->get('weixin_access_token')` does with yii\redis\Cache
/// (yiisoft/yii2 framework/caching/Cache.php buildKey() and get(); yiisoft/yii2-redis
/// src/Cache.php getValue(): GET, null is a miss), then seed 000's _checkAccessToken().
const YII2_READER: &str = r#"<?php
$redis = new Redis();
$redis->connect('127.0.0.1', (int) $argv[1]);
$keyPrefix = $argv[2];
$key = $argv[3];
$key = $keyPrefix . (ctype_alnum($key) && strlen($key) <= 32 ? $key : md5($key));
$value = $redis->get($key);
if ($value === false) { fwrite(STDERR, "cache miss: $key\n"); exit(1); }
$value = unserialize((string) $value);
if (!is_array($value)) { fwrite(STDERR, "not Cache::set's array\n"); exit(1); }
$data = $value[0];
$accessToken = json_decode($data, true);
if (time() - $accessToken['time'] < $accessToken['expires_in'] - 10) {
    echo json_encode($accessToken);
    exit(0);
}
fwrite(STDERR, "stale\n");
exit(1);
"#;

fn php_has_redis() -> bool {
    if !require_tool("php") {
        return false;
    }
    let found = Command::new("php").arg("-m").output().is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l == "redis")
    });
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the PHP extension redis (php-redis) is required under CI=true");
        }
        show("SKIPPED: the PHP extension redis is not installed");
    }
    found
}

#[test]
fn seed_000s_yii2_reader_gets_the_published_token() {
    let Some(redis) = Redis::start() else { return };
    if !php_has_redis() {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    let reader = site.dir.path().join("reader.php");
    fs::write(&reader, YII2_READER).unwrap();
    let read = |prefix: &str, key: &str| {
        let out = Command::new("php")
            .arg(&reader)
            .args([&redis.port.to_string(), prefix, key])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    host(&site, &fake, &redis)
        .add("--publish", "yii2")
        .add("--publish", "yii2:app1:token")
        .run()
        .expect(0);
    let file = site.read();
    for got in [read("", "weixin_access_token"), read("app1", "token")] {
        assert_eq!(got["access_token"], file["access_token"]);
        assert_eq!(got["time"], file["refreshed_at"]);
        assert_eq!(got["expires_in"], file["expires_in"]);
    }
    let key = wxtoken::sdk::yii2_key("", "weixin_access_token");
    let pttl = redis.pttl(&key);
    assert!((7_100_000..=7_200_000).contains(&pttl), "{pttl}");
}

#[test]
fn silenceper_and_wxjava_keys_hold_the_raw_token_for_its_lifetime() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let site = Site::new();
    host(&site, &fake, &redis)
        .args(&[
            "--publish",
            "silenceper,wxjava",
            "--ticket",
            "jsapi,wx_card",
        ])
        .run()
        .expect(0);
    let token = file_token(&site).unwrap();
    let jsapi = ticket_of(&site, "jsapi").unwrap();
    let card = ticket_of(&site, "wx_card").unwrap();
    for (key, value) in [
        // silenceper/wechat credential/default_js_ticket.go
        (
            format!("gowechat_officialaccount__jsapi_ticket_{DEFAULT_APPID}"),
            &jsapi,
        ),
        // WxMpRedisConfigImpl's ticket keys, TicketType codes jsapi and wx_card
        (format!("wx:ticket:key:{DEFAULT_APPID}:jsapi"), &jsapi),
        (format!("wx:ticket:key:{DEFAULT_APPID}:wx_card"), &card),
    ] {
        assert_eq!(redis.get(&key).as_ref(), Some(value), "{key}");
        assert!(redis.pttl(&key) > 7_000_000, "{key}");
    }
    for key in [
        // silenceper/wechat credential/default_access_token.go, the official account's prefix
        format!("gowechat_officialaccount__access_token_{DEFAULT_APPID}"),
        format!("gowechat_officialaccount__stable_access_token_{DEFAULT_APPID}"),
        // binarywang/WxJava WxMpRedisConfigImpl with keyPrefix "wx" (the starter's default)
        format!("wx:access_token:{DEFAULT_APPID}"),
    ] {
        assert_eq!(redis.get(&key).as_deref(), Some(token.as_str()), "{key}");
        let pttl = redis.pttl(&key);
        assert!((7_100_000..=7_200_000).contains(&pttl), "{key}: {pttl}");
    }
    // A host that is not the fleet's leader and holds an older token never puts it back.
    let old = token.clone();
    let other = Site::new();
    host(&other, &fake, &redis).run().expect(0);
    host(&site, &fake, &redis).arg("--force").run().expect(0);
    let new = redis.token("legacy").unwrap();
    assert_ne!(new, old);
    host(&other, &fake, &redis)
        .args(&["--publish", "silenceper,wxjava"])
        .run()
        .expect(0);
    assert_eq!(
        redis.get(&format!("wx:access_token:{DEFAULT_APPID}")),
        Some(new)
    );
}

#[test]
fn rediss_with_the_ca_file_and_never_without_verification() {
    let Some(redis) = Redis::start_tls() else {
        return;
    };
    let fake = FakeWeChat::start();
    let site = Site::new();
    let ca = redis.dir.path().join("ca.pem");
    // The server's CA is in no system store: refused (75, nothing fetched), and the message says
    // what to do.
    host(&site, &fake, &redis)
        .run()
        .expect(75)
        .stderr_has("--ca-file");
    assert_eq!(fake.token_calls(), 0);
    host(&site, &fake, &redis)
        .args(&["--ca-file", ca.to_str().unwrap()])
        .run()
        .expect(0)
        .stderr_has("published");
    assert_eq!(
        redis.token("legacy").as_deref(),
        file_token(&site).as_deref()
    );
    // Plain redis:// to a TLS port gets nowhere.
    let mut plain = host(&site, &fake, &redis);
    plain.set("--redis", &format!("redis://127.0.0.1:{}", redis.port));
    plain.run().expect(75);
}

#[test]
fn tickets_are_fetched_once_for_the_fleet_and_mirrored_by_followers() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let hosts: Vec<Site> = (0..3).map(|_| Site::new()).collect();
    let children: Vec<Child> = (0..5)
        .flat_map(|_| hosts.iter())
        .map(|site| {
            let mut c = host(site, &fake, &redis);
            c.args(&["--ticket", "jsapi"]);
            c.spawn()
        })
        .collect();
    for r in children.into_iter().map(finish) {
        r.expect(0);
    }
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(fake.ticket_calls(), 1, "one ticket fetch for the fleet");
    let raw = redis
        .get(&format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:ticket:jsapi"))
        .unwrap();
    let in_redis: serde_json::Value = serde_json::from_str(&raw).unwrap();
    for site in &hosts {
        assert_eq!(
            ticket_of(site, "jsapi").as_deref(),
            in_redis["ticket"].as_str()
        );
    }
    let follower = Site::new();
    host(&follower, &fake, &redis)
        .args(&["--follower", "--ticket", "jsapi"])
        .run()
        .expect(0)
        .stderr_has("took the jsapi ticket");
    assert_eq!(
        ticket_of(&follower, "jsapi").as_deref(),
        in_redis["ticket"].as_str()
    );
    assert_eq!(fake.requests().len(), 2, "the follower called nobody");
}

#[test]
fn a_follower_waits_for_the_leaders_refresh_instead_of_failing() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let (leader, follower) = (Site::new(), Site::new());
    // A token with 400 s left: fresh for the leader (margin 300), due for the follower (450).
    fake.script(vec![Behaviour::Token("short-lived_token".into(), 400)]);
    host(&leader, &fake, &redis).run().expect(0);
    let waiting = host(&follower, &fake, &redis)
        .args(&["--follower", "--margin", "450", "--max-time", "20"])
        .spawn();
    std::thread::sleep(Duration::from_secs(1));
    host(&leader, &fake, &redis).arg("--force").run().expect(0);
    finish(waiting)
        .expect(0)
        .stderr_has("waiting for a host that fetches");
    let token = file_token(&leader).unwrap();
    assert_ne!(token, "short-lived_token");
    assert_eq!(file_token(&follower).as_deref(), Some(token.as_str()));
    assert_eq!(fake.token_calls(), 2, "the leader's two fetches only");
}

#[test]
fn a_redis_that_accepts_and_never_answers_costs_seconds_not_the_run() {
    // Accepts connections (the backlog does it) and never reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let fake = FakeWeChat::start();
    let site = Site::new();
    let mut c = site.refresh(&fake);
    c.args(&["--api", "legacy", "--redis", &url, "--max-time", "30"]);
    let r = c.run_bounded(Duration::from_secs(40));
    assert!(!r.killed);
    r.run.expect(75);
    assert!(
        r.run.elapsed < Duration::from_secs(4),
        "one Redis timeout (2 s), not --max-time: {:?}",
        r.run.elapsed
    );
    assert_eq!(fake.token_calls(), 0);
    fault(
        "Redis",
        "Redis accepts connections and never answers",
        &format!(
            "exit 75 after {:.1} s (one 2 s timeout), 0 upstream calls",
            r.run.elapsed.as_secs_f64()
        ),
    );
    show(&format!(
        "fleet: a silent Redis ended the run after {:.2} s (exit 75)",
        r.run.elapsed.as_secs_f64()
    ));
}

#[test]
fn a_revoked_stable_token_costs_the_fleet_one_force_refresh() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let hosts: Vec<Site> = (0..3).map(|_| Site::new()).collect();
    let stable = |site: &Site| {
        let mut c = host(site, &fake, &redis);
        c.args(&["--api", "stable"]);
        c
    };
    for site in &hosts {
        stable(site).run().expect(0);
    }
    assert_eq!(
        fake.token_calls(),
        1,
        "one host fetched, the others took it"
    );
    let old = redis.token("stable").unwrap();
    // WeChat revokes it: normal mode keeps handing it out, only force_refresh replaces it.
    fake.revoke(&old);
    for site in &hosts {
        Cmd::new(&["report-stale", "--out", site.out.to_str().unwrap()])
            .arg(&wxtoken::api::digest(&old))
            .run()
            .expect(0);
    }
    let children: Vec<Child> = hosts.iter().map(|s| stable(s).spawn()).collect();
    for r in children.into_iter().map(finish) {
        r.expect(0);
    }
    assert_eq!(
        fake.force_refresh_calls(),
        1,
        "one forced rotation for the fleet"
    );
    let new = redis.token("stable").unwrap();
    assert!(fake.is_valid(&new));
    for site in &hosts {
        assert_eq!(file_token(site).as_deref(), Some(new.as_str()));
    }
}

/// A run that read the fleet's token, then took the lock only after another host had published
/// a new one, has nothing to fetch: it must release the lock at once, not leave it to expire with
/// its --max-time (every host needing a refresh meanwhile would wait on it, and the run itself,
/// deciding again, would wait on its own lock). Found as a rare failure of
/// `three_hosts_twenty_runs_each_at_once_make_one_fetch` once runs got faster.
#[test]
fn a_lock_taken_after_the_token_changed_is_released_at_once() {
    use clap::Parser;
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let cli = wxtoken::cli::Cli::try_parse_from([
        "wxtoken",
        "refresh",
        "--appid",
        DEFAULT_APPID,
        "--api",
        "legacy",
        "--redis",
        &url,
    ])
    .unwrap();
    let wxtoken::cli::Command::Refresh(wxtoken::cli::RefreshCmd { args, .. }) = cli.command else {
        unreachable!()
    };
    let fc =
        wxtoken::config::fleet::FleetConfig::from_args(&args, DEFAULT_APPID, DEFAULT_SECRET, None)
            .unwrap()
            .unwrap();
    let deadline = wxtoken::deadline::Deadline::after(Duration::from_secs(5));
    use wxtoken::fleet::{Fleet, Turn};
    let mut fleet = Fleet::connect(&fc, &deadline).unwrap();
    // This run saw no token; another host publishes one before the run takes the lock.
    let key = |name: &str| format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:{name}");
    redis::cmd("SET")
        .arg(key("token"))
        .arg("published meanwhile")
        .query::<()>(&mut redis.try_conn().unwrap())
        .unwrap();
    let news = fleet.lock_or_change("lock", "token", None).unwrap();
    assert!(
        matches!(&news, Turn::Changed(Some(v)) if v == "published meanwhile"),
        "reported as held"
    );
    assert_eq!(redis.get(&key("lock")), None, "the lock lingers");
    // With the key as the run saw it, the lock is the run's, and stays until it lets it go.
    let news = fleet
        .lock_or_change("lock", "token", Some("published meanwhile"))
        .unwrap();
    let Turn::Ours(value) = news else {
        panic!("not held")
    };
    assert_eq!(redis.get(&key("lock")).as_deref(), Some(value.as_str()));
    fleet.unlock("lock", &value);
    assert_eq!(redis.get(&key("lock")), None);
}

/// Runs `cmd` with the host clock `host` seconds ahead (libfaketime, monotonic clock left alone)
/// and the fleet's clock (Redis's TIME, through the debug builds' WXTOKEN_TEST_FLEET_CLOCK) `fleet`
/// seconds ahead: how the tests move a fleet through hours in seconds.
fn run_at(cmd: &mut Cmd, host: i64, fleet: i64) -> common::Run {
    let out = cmd
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("WXTOKEN_TEST_FLEET_CLOCK", &fleet.to_string())
        .command_with_prefix(&["faketime", "-f", &format!("{host:+}s")])
        .output()
        .unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::new(),
        elapsed: Duration::ZERO,
    }
}

/// Redis's clock (unix seconds), as the fleet reads it.
fn redis_now(redis: &Redis) -> u64 {
    let (secs, _): (u64, u64) = redis::cmd("TIME")
        .query(&mut redis.try_conn().unwrap())
        .unwrap();
    secs
}

/// A token value for the fleet's key, as a host (or an impostor) would write it.
fn token_json(
    token: &str,
    appid: &str,
    expires_in: u64,
    refreshed_at: u64,
    lifetime: u64,
) -> String {
    serde_json::json!({
        "access_token": token,
        "expires_in": expires_in,
        "expires_at": refreshed_at + lifetime,
        "expire_time": refreshed_at + lifetime,
        "refreshed_at": refreshed_at,
        "appid": appid,
        "api": "legacy",
    })
    .to_string()
}

fn set_fleet_token(redis: &Redis, value: &str) {
    redis::cmd("SET")
        .arg(format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:token"))
        .arg(value)
        .arg("EX")
        .arg(7200)
        .query::<()>(&mut redis.try_conn().unwrap())
        .unwrap();
}

#[test]
fn forged_oversized_and_foreign_values_in_redis_are_never_adopted() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let (leader, follower) = (Site::new(), Site::new());
    host(&leader, &fake, &redis).run().expect(0);
    host(&follower, &fake, &redis)
        .arg("--follower")
        .run()
        .expect(0);
    let mut good = file_token(&leader).unwrap();
    let now = redis_now(&redis);
    let mut oversized: serde_json::Value =
        serde_json::from_str(&token_json("80_OVERSIZED", DEFAULT_APPID, 7200, now, 7200)).unwrap();
    oversized["padding"] = "x".repeat(70_000).into();
    let bad = [
        (
            "forged: a day's lifetime",
            token_json("80_FORGED", DEFAULT_APPID, 86_400, now, 86_400),
        ),
        (
            "a lifetime over 7200 s",
            token_json("80_LONGER", DEFAULT_APPID, 7300, now, 7300),
        ),
        (
            "written an hour ahead of Redis's clock",
            token_json("80_AHEAD", DEFAULT_APPID, 7200, now + 3600, 7200),
        ),
        ("over 64 KiB", oversized.to_string()),
        (
            "another appid's",
            token_json("80_FOREIGN", "wx00000000000000ff", 7200, now, 7200),
        ),
    ];
    for (what, value) in &bad {
        set_fleet_token(&redis, value);
        host(&follower, &fake, &redis)
            .args(&["--follower", "--max-time", "3"])
            .run()
            .expect(0);
        assert_eq!(
            file_token(&follower).as_deref(),
            Some(good.as_str()),
            "{what}"
        );
        host(&leader, &fake, &redis)
            .run()
            .expect(0)
            .stderr_has(&format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:token"));
        assert_eq!(
            file_token(&leader).as_deref(),
            Some(good.as_str()),
            "{what}"
        );
        assert_eq!(
            redis.token("legacy").as_deref(),
            Some(good.as_str()),
            "{what}: replaced in Redis by the leader's token"
        );
        // A host with no token of its own fetches as if Redis held nothing.
        set_fleet_token(&redis, value);
        let newcomer = Site::new();
        host(&newcomer, &fake, &redis).run().expect(0);
        let got = file_token(&newcomer).unwrap();
        assert!(fake.is_valid(&got), "{what}: {got}");
        assert_eq!(
            redis.token("legacy").as_deref(),
            Some(got.as_str()),
            "{what}"
        );
        // The next round starts from the fleet's real token again.
        host(&leader, &fake, &redis).run().expect(0);
        host(&follower, &fake, &redis)
            .arg("--follower")
            .run()
            .expect(0);
        let now_good = file_token(&leader).unwrap();
        assert!(fake.is_valid(&now_good));
        assert_eq!(file_token(&follower), Some(now_good.clone()));
        good = now_good;
    }
}

/// A token that looks right (this appid, 7200 s, times that agree with Redis's clock) but that
/// WeChat never issued: only a probe tells. A follower probes too, at the fleet's shared rate.
#[test]
fn a_follower_recovers_from_a_forged_token_within_one_probe_interval() {
    let Some(redis) = Redis::start() else { return };
    if !require_tool("faketime") {
        return;
    }
    let fake = FakeWeChat::start();
    let (leader, follower) = (Site::new(), Site::new());
    // The leader never probes on its own: only the follower's probe can find the forgery.
    let lead = |t: i64| run_at(&mut host(&leader, &fake, &redis), t, t);
    let follow = |t: i64, max: &str| {
        let mut c = host(&follower, &fake, &redis);
        c.args(&["--follower", "--probe-every", "60", "--max-time", max]);
        run_at(&mut c, t, t)
    };
    lead(0).expect(0);
    follow(0, "3").expect(0);
    let forged = "80_FORGED_BUT_WELL_FORMED";
    set_fleet_token(
        &redis,
        &token_json(forged, DEFAULT_APPID, 7200, redis_now(&redis), 7200),
    );
    follow(0, "3").expect(0);
    lead(0).expect(0);
    assert_eq!(file_token(&follower).as_deref(), Some(forged));
    // One probe interval later the follower checks it and finds it dead. No host that fetches
    // runs within its --max-time: exit 75, and its file no longer claims a life the token has not.
    fake.advance(61);
    follow(61, "3").expect(75).stderr_has("WeChat rejects");
    let claimed = site_token_json(&follower)["expires_at"].as_u64().unwrap();
    assert!(
        claimed <= wxtoken::clock::unix_now() + 62,
        "the dead token's file says it expires at {claimed}"
    );
    // The leader acts on the fleet's verdict: the follower waiting meanwhile takes its token.
    let mut c = host(&follower, &fake, &redis);
    c.args(&["--follower", "--probe-every", "60", "--max-time", "15"]);
    let waiting = c
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("WXTOKEN_TEST_FLEET_CLOCK", "61")
        .command_with_prefix(&["faketime", "-f", "+61s"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let probe = format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:probe");
    wait_for("the follower's verdict", Duration::from_secs(10), || {
        redis.get(&probe).is_some()
    });
    lead(61).expect(0).stderr_has("found the token dead");
    finish(waiting).expect(0);
    let new = file_token(&leader).unwrap();
    assert!(fake.is_valid(&new));
    assert_eq!(file_token(&follower).as_deref(), Some(new.as_str()));
    assert_eq!(fake.calls("/cgi-bin/get_api_domain_ip"), 1, "one probe");
    assert_eq!(fake.token_calls(), 2);

    // Redis restarted empty while the follower's file held a forgery claiming more life than the
    // leader's token: the follower mirrors the fleet, it has no token of its own to keep.
    let mut forged_file = site_token_json(&follower);
    forged_file["access_token"] = "80_FORGED_IN_THE_FILE".into();
    forged_file["refreshed_at"] = (forged_file["refreshed_at"].as_u64().unwrap() + 100).into();
    forged_file["expires_at"] = (forged_file["expires_at"].as_u64().unwrap() + 100).into();
    forged_file["expire_time"] = forged_file["expires_at"].clone();
    fs::write(&follower.out, forged_file.to_string()).unwrap();
    redis::cmd("FLUSHALL")
        .query::<()>(&mut redis.try_conn().unwrap())
        .unwrap();
    lead(61).expect(0).stderr_has("published this host's token");
    follow(61, "3").expect(0);
    assert_eq!(file_token(&follower).as_deref(), Some(new.as_str()));
}

fn site_token_json(site: &Site) -> serde_json::Value {
    serde_json::from_slice(&fs::read(&site.out).unwrap()).unwrap()
}

/// The leader replaced a token the fleet found dead before the follower's next run: that run
/// takes the replacement from Redis at once instead of waiting for a newer one.
#[test]
fn a_follower_takes_a_replacement_already_in_redis_on_its_first_run() {
    let Some(redis) = Redis::start() else { return };
    let fake = FakeWeChat::start();
    let (leader, follower) = (Site::new(), Site::new());
    // Well formed, a minute ahead (within the clock slack), so it outlives a fresh fetch.
    let forged = "80_FORGED_A_MINUTE_AHEAD";
    set_fleet_token(
        &redis,
        &token_json(forged, DEFAULT_APPID, 7200, redis_now(&redis) + 60, 7200),
    );
    host(&leader, &fake, &redis).run().expect(0);
    host(&follower, &fake, &redis)
        .args(&["--follower", "--max-time", "3"])
        .run()
        .expect(0);
    assert_eq!(file_token(&follower).as_deref(), Some(forged));
    Cmd::new(&["report-stale", "--out", leader.out.to_str().unwrap()])
        .arg(&wxtoken::api::digest(forged))
        .run()
        .expect(0);
    host(&leader, &fake, &redis)
        .run()
        .expect(0)
        .stderr_has("WeChat rejects");
    let new = file_token(&leader).unwrap();
    assert!(fake.is_valid(&new));
    host(&follower, &fake, &redis)
        .args(&["--follower", "--max-time", "3"])
        .run()
        .expect(0);
    assert_eq!(file_token(&follower).as_deref(), Some(new.as_str()));
    assert_eq!(fake.token_calls(), 1);
}

/// WeChat allows 20 force_refresh calls a day per account, 30 s apart, whichever host makes
/// them: three hosts with ten --force-new each, 31 s apart in turn, get 20 through, and the rest
/// exit 75 naming the budget. A host that cannot reach Redis spends none.
#[test]
fn three_hosts_share_one_force_refresh_budget() {
    let Some(redis) = Redis::start() else { return };
    if !require_tool("faketime") {
        return;
    }
    let fake = FakeWeChat::start();
    let hosts: Vec<Site> = (0..3).map(|_| Site::new()).collect();
    let stable = |site: &Site| {
        let mut c = host(site, &fake, &redis);
        c.args(&["--api", "stable", "--max-time", "5"]);
        c
    };
    for site in &hosts {
        stable(site).run().expect(0);
    }
    let mut refused = 0;
    for i in 0..30 {
        let t = 31 * (i + 1);
        fake.advance(31);
        let r = run_at(stable(&hosts[i as usize % 3]).arg("--force-new"), t, t);
        if i < 20 {
            r.expect(0);
        } else {
            r.expect(75).stderr_has("force_refresh budget is used up");
            refused += 1;
        }
    }
    assert_eq!(fake.force_refresh_calls(), 20, "the account's budget");
    assert_eq!(refused, 10);
    // Redis unreachable, fetching on its own: never with force_refresh.
    let mut c = stable(&hosts[0]);
    c.set("--redis", "redis://127.0.0.1:1");
    c.args(&["--redis-fallback-fetch", "--force-new"]);
    fake.advance(31);
    run_at(&mut c, 31 * 31, 31 * 31)
        .expect(75)
        .stderr_has("budget is counted in Redis");
    assert_eq!(fake.force_refresh_calls(), 20);
}

/// Two hosts whose clocks are `skew` s apart, legacy API, 20 timer ticks each (600 s apart on
/// the fleet's clock): the fetches a single host would make (one per window), no token moving
/// back and forth, and every file's token accepted by WeChat after every run.
fn skewed_hosts(skew: i64) {
    let Some(redis) = Redis::start() else { return };
    if !require_tool("faketime") {
        return;
    }
    let fake = FakeWeChat::start();
    let (a, b) = (Site::new(), Site::new());
    let tick = |site: &Site, host_clock: i64, fleet_clock: i64| {
        let mut c = host(site, &fake, &redis);
        c.args(&["--margin", "900", "--max-time", "10"]);
        run_at(&mut c, host_clock, fleet_clock).expect(0);
    };
    let mut seen = Vec::new();
    for k in 0..20i64 {
        let t = 600 * k;
        if k > 0 {
            fake.advance(600);
        }
        // Who runs first alternates: either host may be the one that fetches.
        let order: [(&Site, i64); 2] = if k % 2 == 0 {
            [(&a, t), (&b, t + skew)]
        } else {
            [(&b, t + skew), (&a, t)]
        };
        for (site, clock) in order {
            tick(site, clock, t);
            let token = file_token(site).unwrap();
            assert!(
                fake.is_valid(&token),
                "tick {k}: a host kept a token WeChat no longer accepts"
            );
            if seen.last() != Some(&token) {
                assert!(!seen.contains(&token), "tick {k}: an older token came back");
                seen.push(token);
            }
        }
        assert_eq!(file_token(&a), file_token(&b), "tick {k}");
    }
    // One host alone: a fetch at 0, the next at 6600 (600 s left, within the margin of 900).
    assert_eq!(fake.token_calls(), 2, "one fetch per window");
}

#[test]
fn hosts_300_s_apart_fetch_once_per_window() {
    skewed_hosts(300);
}

#[test]
fn hosts_an_hour_apart_fetch_once_per_window() {
    skewed_hosts(-3600);
}

/// The redis crate resolves the host name with getaddrinfo, which no timeout bounds: a name whose
/// DNS server never answers cost the resolver's retries (10 s and more) whatever --max-time said.
/// Here, in a network and mount namespace of its own (unshare), /etc/resolv.conf names a stub on
/// 127.0.0.1:53 that reads nothing and answers nothing.
#[test]
fn a_redis_name_whose_dns_never_answers_costs_max_time_not_the_resolvers_retries() {
    if !require_tool("unshare") || !require_tool("python3") || !require_tool("ip") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    let dir = site.dir.path();
    let resolv = dir.join("resolv.conf");
    fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:5 attempts:2\n",
    )
    .unwrap();
    let ready = dir.join("stub-ready");
    let script = format!(
        "set -e\nip link set lo up\nmount --bind {} /etc/resolv.conf\n\
         python3 -c 'import socket, sys, time\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind((\"127.0.0.1\", 53))\n\
open(sys.argv[1], \"w\").close()\n\
time.sleep(30)' {} >/dev/null 2>&1 &\n\
         while [ ! -e {} ]; do sleep 0.05; done\nexec \"$@\"\n",
        resolv.display(),
        ready.display(),
        ready.display()
    );
    let mut c = site.refresh(&fake);
    c.args(&["--api", "legacy", "--max-time", "3"]);
    c.set("--redis", "redis://redis.wxtoken-test.example:6379");
    let cmd = c.command_with_prefix(&["unshare", "-r", "-n", "-m", "sh", "-c", &script, "sh"]);
    let r = run_bounded(cmd, Duration::from_secs(40));
    assert!(
        ready.exists(),
        "the DNS stub never started: {}",
        r.run.stderr
    );
    assert!(!r.killed);
    r.run.expect(75).stderr_has("redis.wxtoken-test.example");
    assert!(
        r.run.elapsed < Duration::from_millis(4500),
        "--max-time 3, DNS included: {:?}",
        r.run.elapsed
    );
    assert_eq!(fake.token_calls(), 0);
    show(&format!(
        "fleet: a Redis name whose DNS never answers ended the run after {:.2} s (--max-time 3)",
        r.run.elapsed.as_secs_f64()
    ));
}

fn status_json(site: &Site) -> (i32, serde_json::Value) {
    let r = Cmd::new(&["status", "--json", "--out", site.out.to_str().unwrap()]).run();
    (r.code, serde_json::from_str(&r.stdout).unwrap())
}

#[test]
fn status_and_metrics_show_the_fleet_as_the_last_run_saw_it() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let fake = FakeWeChat::start();
    let (leader, follower) = (Site::new(), Site::new());
    let metrics = follower.dir.path().join("wxtoken.prom");
    let follow = |redis: &Redis| {
        let mut c = host(&follower, &fake, redis);
        c.args(&["--follower", "--max-time", "3"]);
        c.args(&["--metrics", metrics.to_str().unwrap()]);
        c
    };
    host(&leader, &fake, &redis).run().expect(0);
    follow(&redis).run().expect(0);
    let (code, v) = status_json(&follower);
    assert_eq!(code, 0, "{v}");
    let f = &v["fleet"];
    assert_eq!(f["role"], "follower", "{v}");
    assert_eq!(f["redis_reachable"], true);
    assert_eq!(f["same_token"], true);
    assert_eq!(f["last_refresh"], leader.read()["refreshed_at"]);
    assert!(!f["refreshed_by"].as_str().unwrap().is_empty(), "{v}");
    assert_eq!(f["force_refresh_used"], 0);
    let text = fs::read_to_string(&metrics).unwrap();
    for line in [
        "wxtoken_fleet_role{appid=\"wx1234567890abcdef\",api=\"legacy\",role=\"follower\"} 1",
        "wxtoken_fleet_redis_reachable{appid=\"wx1234567890abcdef\",api=\"legacy\"} 1",
        "wxtoken_fleet_token_matches{appid=\"wx1234567890abcdef\",api=\"legacy\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    // Redis holds a token the follower does not believe: one run is a blip, two are a warning.
    let now = redis_now(&redis);
    set_fleet_token(
        &redis,
        &token_json("80_FORGED", DEFAULT_APPID, 86_400, now, 86_400),
    );
    follow(&redis).run().expect(0);
    assert_eq!(status_json(&follower).0, 0);
    follow(&redis).run().expect(0);
    let (code, v) = status_json(&follower);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("not the fleet's for the last 2 runs"),
        "{v}"
    );
    assert!(
        fs::read_to_string(&metrics)
            .unwrap()
            .contains("wxtoken_fleet_token_matches{appid=\"wx1234567890abcdef\",api=\"legacy\"} 0")
    );
    // Redis gone for more than three runs.
    redis.stop();
    for _ in 0..4 {
        follow(&redis).run().expect(75);
    }
    let (code, v) = status_json(&follower);
    assert_eq!(code, 1, "{v}");
    let reasons = v["reasons"].to_string();
    assert!(reasons.contains("unreachable for the last 4 runs"), "{v}");
    assert_eq!(v["fleet"]["redis_reachable"], false);
    assert!(
        fs::read_to_string(&metrics).unwrap().contains(
            "wxtoken_fleet_redis_reachable{appid=\"wx1234567890abcdef\",api=\"legacy\"} 0"
        )
    );
}

/// One master, one replica and three sentinels on 127.0.0.1, each with a free port, in one temp
/// directory; all killed on drop.
struct SentinelSet {
    dir: tempfile::TempDir,
    master: Option<Child>,
    master_port: u16,
    replica: Child,
    replica_port: u16,
    sentinels: Vec<(Child, u16)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn conn_to(port: u16) -> Option<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    c.get_connection_with_timeout(Duration::from_secs(1)).ok()
}

impl SentinelSet {
    fn start() -> Option<SentinelSet> {
        if !require_tool("redis-server") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let server = |port: u16, extra: &[&str]| {
            let data = dir.path().join(port.to_string());
            fs::create_dir(&data).unwrap();
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(&data)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server")
        };
        let master_port = free_port();
        let master = server(master_port, &[]);
        let replica_port = free_port();
        let replicaof = master_port.to_string();
        let replica = server(replica_port, &["--replicaof", "127.0.0.1", &replicaof]);
        let mut set = SentinelSet {
            master: Some(master),
            master_port,
            replica,
            replica_port,
            sentinels: Vec::new(),
            dir,
        };
        wait_for("the replica's link", Duration::from_secs(15), || {
            conn_to(replica_port).is_some_and(|mut c| {
                redis::cmd("INFO")
                    .arg("replication")
                    .query::<String>(&mut c)
                    .is_ok_and(|i| i.contains("master_link_status:up"))
            })
        });
        for _ in 0..3 {
            let port = free_port();
            let conf = set.dir.path().join(format!("sentinel-{port}.conf"));
            fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor mymaster 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds mymaster 1000\n\
                     sentinel failover-timeout mymaster 4000\n",
                    set.dir.path().display()
                ),
            )
            .unwrap();
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server --sentinel");
            set.sentinels.push((child, port));
        }
        // Each sentinel must know the replica and the two other sentinels before a failover can
        // be agreed on (they find each other through the master within a few seconds).
        for &(_, port) in &set.sentinels {
            wait_for(
                "the sentinels to know each other",
                Duration::from_secs(30),
                || {
                    conn_to(port).is_some_and(|mut c| {
                        let others: Vec<redis::Value> = redis::cmd("SENTINEL")
                            .arg("sentinels")
                            .arg("mymaster")
                            .query(&mut c)
                            .unwrap_or_default();
                        let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                            .arg("replicas")
                            .arg("mymaster")
                            .query(&mut c)
                            .unwrap_or_default();
                        others.len() == 2 && replicas.len() == 1
                    })
                },
            );
        }
        Some(set)
    }

    fn url(&self) -> String {
        let nodes: Vec<String> = self
            .sentinels
            .iter()
            .map(|(_, p)| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/mymaster", nodes.join(","))
    }

    /// The master's port as the first sentinel names it.
    fn master_now(&self) -> Option<u16> {
        let mut c = conn_to(self.sentinels[0].1)?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query(&mut c)
            .ok()?;
        Some(port)
    }

    fn kill_master(&mut self) {
        if let Some(mut c) = self.master.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        self.kill_master();
        let _ = self.replica.kill();
        let _ = self.replica.wait();
        for (c, _) in &mut self.sentinels {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Redis Sentinel: the master is killed while a host is fetching (it holds the fleet's lock and
/// has not published yet). Its publish is retried through the sentinels until the replica is
/// promoted; the other hosts, ticking meanwhile, wait for the new master and take that token; one
/// fetch for the window, and every file holds a token WeChat accepts after every run.
#[test]
fn a_fleet_rides_a_sentinel_failover() {
    let Some(mut set) = SentinelSet::start() else {
        return;
    };
    let fake = FakeWeChat::start();
    let hosts: Vec<Site> = (0..3).map(|_| Site::new()).collect();
    let url = set.url();
    let tick = |site: &Site, extra: &[&str]| {
        let mut c = site.refresh(&fake);
        c.args(&["--api", "legacy", "--redis", &url, "--probe-every", "0"]);
        c.args(&["--max-time", "25"]).args(extra);
        c
    };
    let all_valid = |when: &str| {
        for (i, site) in hosts.iter().enumerate() {
            let token = file_token(site).unwrap_or_else(|| panic!("{when}: host {i} has no file"));
            assert!(fake.is_valid(&token), "{when}: host {i}'s token is dead");
        }
    };
    for site in &hosts {
        tick(site, &[]).run().expect(0);
    }
    all_valid("first ticks");
    assert_eq!(fake.token_calls(), 1);
    let key = format!("wxtoken:{{{DEFAULT_APPID}}}:legacy:token");

    fake.set_default(Behaviour::Delay(2000, Box::new(Behaviour::Normal)));
    let leader = tick(&hosts[0], &["--force"]).spawn();
    wait_for("the leader's request", Duration::from_secs(10), || {
        fake.token_calls() == 2
    });
    set.kill_master();
    let killed = Instant::now();
    // The others tick through the failover.
    let mut others_ran = 0;
    let mut leader = Some(leader);
    let mut leader_run = None;
    while leader_run.is_none() || killed.elapsed() < Duration::from_secs(3) {
        for site in &hosts[1..] {
            tick(site, &[]).run().expect(0);
            others_ran += 1;
            all_valid("during the failover");
        }
        if let Some(l) = leader.as_mut()
            && l.try_wait().unwrap().is_some()
        {
            leader_run = Some(finish(leader.take().unwrap()));
        }
    }
    leader_run
        .unwrap()
        .expect(0)
        .stderr_has("asking the sentinels");
    assert_eq!(
        set.master_now(),
        Some(set.replica_port),
        "the sentinels promoted the replica"
    );
    for site in &hosts {
        tick(site, &[]).run().expect(0);
    }
    all_valid("after the failover");
    let published = redis::cmd("GET")
        .arg(&key)
        .query::<Option<String>>(&mut conn_to(set.replica_port).unwrap())
        .unwrap()
        .expect("the token on the new master");
    let published: serde_json::Value = serde_json::from_str(&published).unwrap();
    let token = file_token(&hosts[0]).unwrap();
    assert_eq!(published["access_token"].as_str(), Some(token.as_str()));
    for site in &hosts {
        assert_eq!(file_token(site).as_deref(), Some(token.as_str()));
    }
    assert_eq!(fake.token_calls(), 2, "one fetch for the window");
    assert_ne!(set.master_port, set.replica_port);
    show(&format!(
        "fleet: Sentinel failover ridden: {others_ran} runs of the other hosts meanwhile, one fetch"
    ));
}
