//! `--on-change` hooks, run by the real binary against the fake WeChat: on change only, in order,
//! after the rename; never the token or the secret in their argv or environment; a failure keeps
//! the files, sets the exit status and is retried; a hanging hook is killed within --max-time.
//! Then contrib/hooks/ against a real MariaDB and memcached started here on 127.0.0.1, read by a
//! PHP reader written like seed 003.

mod common;
mod fake;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An executable script at `dir/name`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

fn state(site: &Site) -> serde_json::Value {
    serde_json::from_slice(&fs::read(site.state_dir().join(".wxtoken-state.json")).unwrap())
        .unwrap()
}

#[test]
fn hooks_run_on_change_only_in_order_after_the_rename() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let log = site.dir.path().join("hook.log");
    // Each records what changed, the digest of the token file as it saw it, and its arguments.
    let record = |name: &str| {
        script(
            site.dir.path(),
            name,
            &format!(
                "#!/bin/sh\nprintf '{name} %s %s %s\\n' \"$WXTOKEN_CHANGED\" \
                 \"$(sha256sum < \"$WXTOKEN_FILE\" | cut -c1-64)\" \"$*\" >> {}\n",
                log.display()
            ),
        )
    };
    let (a, b) = (record("a"), record("b"));
    // The variable: commands separated by an unquoted ';' or a newline; quoted ';' and ',' are
    // ordinary characters.
    let hooks = format!("{} 'x;y' ;\n{} p,q", a.display(), b.display());
    let refresh = || {
        let mut c = site.refresh(&fake);
        c.args(&["--api", "legacy"])
            .env("WXTOKEN_ON_CHANGE", &hooks);
        c
    };
    let file_digest = || sha256_hex(&fs::read(&site.out).unwrap());

    refresh()
        .run()
        .expect(0)
        .stderr_has("hook a delivered token");
    let first = file_digest();
    assert_eq!(
        lines(&log),
        [
            format!("a token {first} x;y"),
            format!("b token {first} p,q")
        ],
        "both hooks, in order, each seeing the file as renamed into place"
    );

    let r = refresh().run();
    r.expect(0).stderr_has("still fresh");
    assert!(!r.stderr.contains("hook"), "{}", r.stderr);
    assert_eq!(lines(&log).len(), 2, "a fresh run runs no hook");

    refresh().arg("--force").run().expect(0);
    let second = file_digest();
    assert_ne!(first, second);
    assert_eq!(
        lines(&log)[2..],
        [
            format!("a token {second} x;y"),
            format!("b token {second} p,q")
        ]
    );

    // A ticket alone changing (here: appearing) runs the hooks too, and says so.
    refresh().args(&["--ticket", "jsapi"]).run().expect(0);
    assert_eq!(fake.token_calls(), 2, "the token did not change");
    assert_eq!(
        lines(&log)[4..],
        [
            format!("a jsapi_ticket {second} x;y"),
            format!("b jsapi_ticket {second} p,q")
        ]
    );
    refresh().args(&["--ticket", "jsapi"]).run().expect(0);
    assert_eq!(lines(&log).len(), 6, "nothing changed: no hook");
}

#[test]
fn a_hook_sees_paths_and_times_never_the_token_or_the_secret() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let d = site.dir.path();
    let creds = d.join("credentials");
    fs::create_dir(&creds).unwrap();
    let hook = script(
        d,
        "dump",
        &format!(
            "#!/bin/sh\nenv > {d}/env\nprintf '%s\\n' \"$0\" \"$@\" > {d}/argv\n\
             ls -l /proc/$$/fd/ > {d}/fds\nreadlink /proc/$$/fd/0 > {d}/stdin\n\
             cat \"$WXTOKEN_FILE\"\necho 'to stderr' >&2\n",
            d = d.display()
        ),
    );
    let r = site
        .refresh(&fake)
        .args(&["--ticket", "jsapi"])
        .add(
            "--on-change",
            &format!("{} one 'two words'", hook.display()),
        )
        .env("WXTOKEN_SECRET_FILE", site.secret.to_str().unwrap())
        .env("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())
        .env("WXTOKEN_MYSQL_CNF", "/etc/wxtoken/mysql.cnf")
        .env("WXTOKEN_LEAK", &format!("x{DEFAULT_SECRET}x"))
        .env("UNRELATED", "hello")
        .run();
    r.expect(0);
    let token = site.token();
    let v = site.read();
    let env = fs::read_to_string(d.join("env")).unwrap();
    let vars: Vec<(&str, &str)> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    assert_eq!(get("WXTOKEN_FILE"), site.out.to_str());
    assert_eq!(
        get("WXTOKEN_JSAPI_TICKET_FILE"),
        site.state_dir().join("jsapi_ticket.json").to_str()
    );
    assert_eq!(get("WXTOKEN_APPID"), Some(DEFAULT_APPID));
    assert_eq!(get("WXTOKEN_API"), Some("stable"));
    assert_eq!(get("WXTOKEN_CHANGED"), Some("token,jsapi_ticket"));
    assert_eq!(
        get("WXTOKEN_EXPIRES_AT"),
        Some(v["expires_at"].to_string().as_str())
    );
    let left: i64 = get("WXTOKEN_EXPIRES_IN").unwrap().parse().unwrap();
    assert!((7190..=7200).contains(&left), "{left}");
    assert_eq!(get("WXTOKEN_MYSQL_CNF"), Some("/etc/wxtoken/mysql.cnf"));
    assert!(get("PATH").is_some());
    for gone in [
        "WXTOKEN_SECRET_FILE",
        "CREDENTIALS_DIRECTORY",
        "WXTOKEN_LEAK",
        "UNRELATED",
    ] {
        assert_eq!(get(gone), None, "{gone} reached the hook");
    }
    let argv = fs::read_to_string(d.join("argv")).unwrap();
    assert_eq!(argv, format!("{}\none\ntwo words\n", hook.display()));
    let fds = fs::read_to_string(d.join("fds")).unwrap();
    for (what, text) in [("env", &env), ("argv", &argv), ("fds", &fds)] {
        assert!(!text.contains(&token), "the token in the hook's {what}");
        assert!(
            !text.contains(DEFAULT_SECRET),
            "the secret in the hook's {what}"
        );
    }
    assert!(
        !fds.contains("secret") && !fds.contains(".wxtoken.lock"),
        "the hook inherited a descriptor: {fds}"
    );
    assert_eq!(
        fs::read_to_string(d.join("stdin")).unwrap().trim(),
        "/dev/null"
    );
    // Its output is logged, prefixed, the token masked like every log line.
    r.stderr_has("hook dump: to stderr")
        .stderr_has("hook dump:   \"access_token\": \"");
    assert!(!r.stderr.contains(&token), "{}", r.stderr);
}

#[test]
fn a_failing_hook_keeps_the_files_sets_the_exit_status_and_is_retried() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let d = site.dir.path();
    let fail = script(
        d,
        "flaky",
        &format!(
            "#!/bin/sh\necho x >> {d}/flaky.count\n[ -e {d}/ok ] || {{ echo 'database down' >&2; exit 3; }}\n",
            d = d.display()
        ),
    );
    let rec = script(
        d,
        "rec",
        &format!("#!/bin/sh\necho x >> {}/rec.count\n", d.display()),
    );
    let refresh = || {
        let mut c = site.refresh(&fake);
        c.add("--on-change", fail.to_str().unwrap())
            .add("--on-change", rec.to_str().unwrap());
        c
    };
    let count = |name: &str| lines(&d.join(name)).len();

    let r = refresh().run();
    r.expect(75)
        .stderr_has("hook flaky: database down")
        .stderr_has("exited with status 3")
        .stderr_has("1 of 2 --on-change hooks failed");
    let token = site.token();
    assert!(fake.is_valid(&token), "the token was written and stays");
    assert_eq!(
        (count("flaky.count"), count("rec.count")),
        (1, 1),
        "the later hook still ran"
    );
    let pending = &state(&site)["hooks_pending"];
    assert_eq!(pending[0]["command"], fail.to_str().unwrap(), "{pending}");
    fault(
        "hook",
        "an --on-change hook exits 3",
        "exit 75 naming it; token written and valid, later hooks still ran, failed hook pending for the next run",
    );

    // status names the hook that has not delivered.
    let st = Cmd::new(&["status", "--out", site.out.to_str().unwrap()]).run();
    assert_eq!(st.code, 1, "{}", st.stdout);
    assert!(
        st.stdout.contains(&format!(
            "the change hook {} has not delivered",
            fail.display()
        )),
        "{}",
        st.stdout
    );

    // The token did not change; the failed hook (only it) runs again.
    refresh().run().expect(75);
    assert_eq!((count("flaky.count"), count("rec.count")), (2, 1));
    assert_eq!(site.token(), token);
    assert_eq!(fake.token_calls(), 1);

    fs::write(d.join("ok"), "").unwrap();
    refresh().run().expect(0);
    assert_eq!(count("flaky.count"), 3);
    assert_eq!(state(&site)["hooks_pending"], serde_json::json!([]));
    refresh().run().expect(0);
    assert_eq!(count("flaky.count"), 3, "delivered: not run again");

    // A hook that cannot be started, or says its configuration is wrong (78): exit 78, files kept.
    let before = fs::read(&site.out).unwrap();
    let not_exec = script(d, "not-exec", "#!/bin/sh\nexit 0\n");
    fs::set_permissions(&not_exec, fs::Permissions::from_mode(0o644)).unwrap();
    let says_78 = script(
        d,
        "says-78",
        "#!/bin/sh\necho 'no WXTOKEN_X set' >&2\nexit 78\n",
    );
    for (hook, msg) in [
        (d.join("missing"), "does not exist".to_string()),
        (not_exec, "is not executable".to_string()),
        (says_78, "exited 78".to_string()),
    ] {
        site.refresh(&fake)
            .add("--on-change", hook.to_str().unwrap())
            .run()
            .expect(78)
            .stderr_has(&msg);
        assert_eq!(fs::read(&site.out).unwrap(), before);
    }
    assert_eq!(fake.token_calls(), 1);
}

#[test]
fn a_hanging_hook_is_killed_within_max_time_with_what_it_started() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let d = site.dir.path();
    let hang = script(
        d,
        "hang",
        &format!(
            "#!/bin/sh\nsleep 300 &\necho $! > {}/hang.pid\nwait\n",
            d.display()
        ),
    );
    let r = site
        .refresh(&fake)
        .set("--max-time", "4")
        .add("--on-change", hang.to_str().unwrap())
        .run();
    r.expect(75)
        .stderr_has("--on-change hook")
        .stderr_has("killed, with every process it started");
    show(&format!(
        "a hanging hook with --max-time 4: the run ended after {:.2} s",
        r.elapsed.as_secs_f64()
    ));
    assert!(r.elapsed < Duration::from_millis(5500), "{:?}", r.elapsed);
    assert!(fake.is_valid(&site.token()));
    let alive = |pidfile: &str| {
        let pid = fs::read_to_string(d.join(pidfile)).unwrap();
        // Killed; a zombie at most until its new parent reaps it.
        fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| !s.contains(") Z "))
    };
    assert!(!alive("hang.pid"), "the hook's child survived");
    fault(
        "hook",
        "an --on-change hook hangs (with a child) past --max-time 4",
        &format!(
            "exit 75 after {:.1} s, hook and child killed, token kept",
            r.elapsed.as_secs_f64()
        ),
    );

    // A hook that exits at once but leaves a child holding its output does not hold the run up:
    // the child is killed when the hook exits.
    let leave = script(
        d,
        "leave",
        &format!(
            "#!/bin/sh\nsleep 300 &\necho $! > {}/leave.pid\nexit 0\n",
            d.display()
        ),
    );
    let r = site
        .refresh(&fake)
        .add("--on-change", leave.to_str().unwrap())
        .run();
    r.expect(0);
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    assert!(!alive("leave.pid"), "the leftover child survived");
}

#[test]
fn hook_commands_a_shell_would_expand_are_refused_before_any_call() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    for (hook, msg) in [
        ("hooks/mysql", "must be an absolute path"),
        ("/bin/echo $HOME", "without a shell"),
        ("/bin/echo a | /bin/cat", "without a shell"),
        ("/bin/echo 'open", "not closed"),
    ] {
        site.refresh(&fake)
            .add("--on-change", hook)
            .run()
            .expect(78)
            .stderr_has(msg);
    }
    assert_eq!(fake.token_calls(), 0);
}

// ---- seed 003: contrib/hooks against real MariaDB and memcached ------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process started for one test, killed at the end.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SMALL_INNODB: [&str; 2] = ["--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M"];

fn root_user() -> Vec<&'static str> {
    if is_root() {
        vec!["--user=root"]
    } else {
        vec![]
    }
}

fn start_mariadb() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .args(root_user())
        .args(SMALL_INNODB)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let child = Command::new("mariadbd")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.path().join("sock").display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!("--log-error={}", dir.path().join("err").display()))
        .arg(format!("--port={port}"))
        .args(["--bind-address=127.0.0.1", "--skip-log-bin"])
        .args(root_user())
        .args(SMALL_INNODB)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port, dir };
    wait_until("mariadbd", || root_sql(&server, "SELECT 1").is_ok());
    server
}

/// SQL as the server's root, over its socket.
fn root_sql(db: &Server, sql: &str) -> Result<String, String> {
    let out = Command::new("mysql")
        .arg("--no-defaults")
        .arg(format!("--socket={}", db.dir.path().join("sock").display()))
        .args(["-uroot", "--batch", "--skip-column-names", "-e", sql])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn start_memcached() -> Server {
    let port = free_port();
    let mut c = Command::new("memcached");
    c.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]);
    if is_root() {
        c.args(["-u", "root"]);
    }
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("memcached", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Server {
        child,
        port,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// memcached's own view of an item: its remaining TTL (meta get), None on a miss.
fn memcached_ttl(mc: &Server, key: &str) -> Option<i64> {
    let mut s = TcpStream::connect(("127.0.0.1", mc.port)).unwrap();
    s.write_all(format!("mg {key} t\r\nquit\r\n").as_bytes())
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let first = reply.lines().next().unwrap_or("");
    if first.starts_with("EN") {
        return None;
    }
    let t = first.split(' ').find_map(|f| f.strip_prefix('t'));
    Some(t.unwrap_or_else(|| panic!("mg: {reply}")).parse().unwrap())
}

fn php_has(ext: &str) -> bool {
    let found = Command::new("php")
        .arg("-m")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == ext));
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the PHP extension {ext} is required under CI=true but is not installed");
        }
        show(&format!(
            "SKIPPED: the PHP extension {ext} is not installed"
        ));
    }
    found
}

/// The seed-003-style reader: Ok(token) when the seed would use it, Err(status) otherwise (5: it
/// would fetch from WeChat itself).
struct Seed003 {
    mysql: String,
    memcache: String,
    dir: PathBuf,
}

impl Seed003 {
    fn command(&self, args: &[&str], now: Option<u64>) -> Command {
        let mut c = Command::new("php");
        // All diagnostics but E_DEPRECATED: php-memcache itself triggers one on PHP 8.2 (its
        // Memcache::connect creates a dynamic property).
        c.args(["-d", "error_reporting=24575", "-d", "display_errors=stderr"])
            .arg(Path::new(ROOT).join("tests/readers/seed003.php"))
            .args(args)
            .current_dir(&self.dir)
            .env("SEED_MYSQL", &self.mysql)
            .env("SEED_MYSQL_PASSWORD", PASSWORD)
            .env("SEED_MEMCACHE", &self.memcache)
            .env("SEED_APPID", DEFAULT_APPID)
            .stdin(Stdio::null());
        if let Some(n) = now {
            c.env("SEED_NOW", n.to_string());
        }
        c
    }

    fn read(&self, args: &[&str], now: Option<u64>) -> Result<String, i32> {
        let out = self.command(args, now).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "PHP diagnostics for {args:?}"
        );
        match out.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            c => Err(c.unwrap_or(-1)),
        }
    }

    /// All three stores, read as the seed reads them.
    fn all(&self, now: Option<u64>) -> [Result<String, i32>; 3] {
        [
            self.read(&["mysql"], now),
            self.read(&["memcache"], now),
            self.read(&["file"], now),
        ]
    }
}

/// The database user's password: it needs quoting in the option file.
const PASSWORD: &str = "p;w \"x";

#[test]
fn seed_003_reads_the_valid_token_from_mysql_memcached_and_its_file() {
    if !(require_tool("php")
        && require_tool("mariadbd")
        && require_tool("mariadb-install-db")
        && require_tool("mysql")
        && require_tool("memcached")
        && php_has("mysqli")
        && php_has("memcache"))
    {
        return;
    }
    let db = start_mariadb();
    let mc = start_memcached();
    // The seed's table (its garbled `valure` is the `expire` its code reads) and its two rows,
    // long stale; a user of its own whose password needs quoting.
    root_sql(
        &db,
        "CREATE DATABASE wx; CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'p;w \"x'; \
         GRANT SELECT, INSERT, UPDATE ON wx.* TO 'app'@'127.0.0.1'; \
         CREATE TABLE wx.wx_token (`id` int(1) NOT NULL, `type` varchar(20) NOT NULL, \
         `expire` varchar(16) NOT NULL, `value` varchar(600) NOT NULL, PRIMARY KEY (`id`)) \
         ENGINE=MyISAM DEFAULT CHARSET=utf8; \
         INSERT INTO wx.wx_token VALUES (1, 'access_token', '1425534992', \
         't3oyW9fRnOWKQHQhZXoEHmurpgThhjmnCqTVpaLyUD'), (2, 'jsapi_ticket', '', '');",
    )
    .unwrap();
    let fake = FakeWeChat::start();
    let site = Site::new();
    let d = site.dir.path();
    let cnf = d.join("mysql.cnf");
    let write_cnf = |pw: &str| {
        fs::write(
            &cnf,
            format!(
                "[client]\nhost = 127.0.0.1\nport = {}\nuser = app\npassword = \"{}\"\ndatabase = wx\n",
                db.port,
                pw.replace('"', "\\\"")
            ),
        )
        .unwrap();
        fs::set_permissions(&cnf, fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_cnf(PASSWORD);
    let hooks_dir = Path::new(ROOT).join("contrib/hooks");
    let mysql_hook = hooks_dir.join("mysql-wx_token");
    let mc_hook = hooks_dir.join("memcached");
    let hooks = format!("{}; {}", mysql_hook.display(), mc_hook.display());
    let memcached = format!("127.0.0.1:{}", mc.port);
    let refresh = || {
        let mut c = site.refresh(&fake);
        c.args(&["--api", "legacy", "--ticket", "jsapi"])
            .env("WXTOKEN_ON_CHANGE", &hooks)
            .env("WXTOKEN_MYSQL_CNF", cnf.to_str().unwrap())
            .env("WXTOKEN_MEMCACHED", &memcached);
        c
    };
    let reader = Seed003 {
        mysql: format!("127.0.0.1 {} app wx", db.port),
        memcache: format!("127.0.0.1 {}", mc.port),
        dir: site.state_dir(),
    };
    fs::create_dir_all(&reader.dir).unwrap();
    assert_eq!(
        reader.read(&["mysql"], None),
        Err(5),
        "the seed's old row is stale to the seed"
    );

    let check_current = |why: &str| {
        let token = site.token();
        assert!(fake.is_valid(&token), "{why}");
        for got in reader.all(None) {
            assert_eq!(got.as_deref(), Ok(token.as_str()), "{why}");
        }
        let left = site.read()["expires_at"].as_u64().unwrap() as i64 - now() as i64;
        let ttl = memcached_ttl(&mc, DEFAULT_APPID).expect("the key is set");
        assert!(
            (left - 4..left).contains(&ttl),
            "{why}: memcached TTL {ttl}, token left {left}"
        );
        token
    };
    let r = refresh().run();
    r.expect(0)
        .stderr_has("hook mysql-wx_token: updated `wx_token`: access_token jsapi_ticket")
        .stderr_has("hook memcached: set key");
    let first = check_current("right after the first refresh");
    assert_eq!(
        reader.read(&["mysql", "jsapi_ticket"], None).ok(),
        fake.current_ticket(DEFAULT_APPID, "jsapi"),
        "the seed's jsapi_ticket row"
    );
    assert_eq!(
        root_sql(&db, "SELECT id, type FROM wx.wx_token ORDER BY id").unwrap(),
        "1\taccess_token\n2\tjsapi_ticket\n",
        "updated in place, no rows added"
    );

    // Refreshes while the seed reads in a loop: it never decides to fetch, and every token it
    // got is one WeChat accepts.
    let stop = d.join("stop");
    let looping = reader
        .command(&["loop", stop.to_str().unwrap()], None)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tokens = vec![first];
    for i in 0..4 {
        refresh().arg("--force").run().expect(0);
        tokens.push(check_current(&format!("right after forced refresh {i}")));
    }
    fs::write(&stop, "").unwrap();
    let out = looping.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let mut seen = text.lines();
    let head = seen.next().unwrap();
    show(&format!("seed 003 reader during 4 refreshes: {head}"));
    assert!(head.ends_with(" stale 0"), "{text}");
    let reads: u64 = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(reads >= 30, "{text}");
    for t in seen {
        assert!(
            tokens.iter().any(|k| k == t),
            "a token wxtoken never wrote: {t}"
        );
        assert!(fake.is_valid(t), "the seed read a dead token");
    }

    // The boundary, for each store the seed checks a time in: fresh through expires_at - 1,
    // stale from expires_at on, the second the token stops working.
    let exp = site.read()["expires_at"].as_u64().unwrap();
    for variant in ["mysql", "file"] {
        assert!(reader.read(&[variant], Some(exp - 1)).is_ok(), "{variant}");
        assert_eq!(reader.read(&[variant], Some(exp)), Err(5), "{variant}");
    }

    // A token at its end (crafted): the hooks make every store say "stale" / miss.
    let crafted_dir = d.join("crafted");
    fs::create_dir(&crafted_dir).unwrap();
    let mut v = site.read();
    let at = now();
    v["expires_at"] = at.into();
    let crafted = crafted_dir.join("access_token.json");
    fs::write(&crafted, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let run_hook = |hook: &Path, file: &Path| {
        Command::new(hook)
            .env("WXTOKEN_FILE", file)
            .env("WXTOKEN_MYSQL_CNF", &cnf)
            .env("WXTOKEN_MEMCACHED", &memcached)
            .output()
            .unwrap()
    };
    for hook in [&mysql_hook, &mc_hook] {
        assert!(run_hook(hook, &crafted).status.success());
    }
    assert_eq!(reader.read(&["mysql"], None), Err(5));
    assert_eq!(reader.read(&["memcache"], None), Err(5));
    assert_eq!(memcached_ttl(&mc, DEFAULT_APPID), None, "deleted");
    // memcached drops the token before it dies: 4 s left now, a miss 4 s later.
    v["expires_at"] = (now() + 4).into();
    fs::write(&crafted, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    assert!(run_hook(&mc_hook, &crafted).status.success());
    assert!(reader.read(&["memcache"], None).is_ok());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(reader.read(&["memcache"], None), Err(5));

    // An empty table gets its rows inserted; a database that refuses (wrong password) fails the
    // hook (75), keeps the files and is retried once it works again.
    root_sql(&db, "DELETE FROM wx.wx_token").unwrap();
    write_cnf("wrong");
    refresh()
        .arg("--force")
        .run()
        .expect(75)
        .stderr_has("Access denied");
    let token = site.token();
    assert!(fake.is_valid(&token));
    assert_eq!(reader.read(&["mysql"], None), Err(5), "not there yet");
    write_cnf(PASSWORD);
    refresh().run().expect(0);
    assert_eq!(reader.read(&["mysql"], None), Ok(token.clone()));
    assert_eq!(
        root_sql(&db, "SELECT id, type FROM wx.wx_token ORDER BY id").unwrap(),
        "1\taccess_token\n2\tjsapi_ticket\n"
    );
    // No option file: the hook says so and exits 78, as does wxtoken.
    let out = Command::new(&mysql_hook)
        .env_remove("WXTOKEN_MYSQL_CNF")
        .env("WXTOKEN_FILE", &site.out)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WXTOKEN_MYSQL_CNF is not set"));
}
