//! The readers in `contrib/` against files the real `wxtoken` wrote (fake WeChat on 127.0.0.1):
//! each returns exactly the token written and fails clearly on a missing, garbled or expired file.
//! Then torn reads: PHP processes reading in a tight loop while wxtoken rewrites the files. Then
//! the report side: the PHP and Python helpers file `requests/<sha256 of the token>`, and the
//! change contrib/README.md shows for an API call does what it says.
//!
//! Needs `php` (php-cli), `python3` and `sha256sum` (coreutils): SKIPPED without them on a laptop,
//! a failure under CI=true.

mod common;
mod fake;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn root(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// php-cli with every diagnostic on stderr, and OPcache off explicitly (php-cli's default anyway:
/// opcache.enable_cli=0), so `include` reads the file each time.
fn php() -> Command {
    php_niced(0)
}

/// `php()` under `nice -n N` (N > 0): the torn-read probes spin on both cores, and wxtoken, which
/// they are waiting for, should still get the CPU when it runs.
fn php_niced(n: u32) -> Command {
    let mut c = if n == 0 {
        Command::new("php")
    } else {
        let mut c = Command::new("nice");
        c.args(["-n", &n.to_string(), "php"]);
        c
    };
    c.args([
        "-d",
        "error_reporting=-1",
        "-d",
        "display_errors=stderr",
        "-d",
        "log_errors=0",
        "-d",
        "opcache.enable_cli=0",
    ]);
    c.stdin(Stdio::null());
    c
}

fn output(mut c: Command) -> Output {
    // No __pycache__ in contrib/python from importing the reader.
    c.env("PYTHONDONTWRITEBYTECODE", "1");
    c.output().expect("run reader")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The shell one-liner that contrib/README.md shows after `<!-- ... runs this line: NAME -->`,
/// pointed at `dir` instead of /var/lib/wxtoken.
fn readme_line(name: &str, dir: &Path) -> String {
    let readme = fs::read_to_string(root("contrib/README.md")).unwrap();
    let marker = format!("runs this line: {name} -->");
    let after = &readme[readme
        .find(&marker)
        .unwrap_or_else(|| panic!("contrib/README.md lacks {marker:?}"))..];
    let line = after
        .lines()
        .find(|l| l.starts_with("token="))
        .expect("a `token=...` line after the marker");
    assert!(line.contains("/var/lib/wxtoken/"), "{line}");
    line.replace("/var/lib/wxtoken/", &format!("{}/", dir.display()))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Json,
    Php,
    Txt,
    Ticket,
}

struct Reader {
    name: &'static str,
    kind: Kind,
    /// The reader can tell an expired file (the .txt carries no expiry).
    sees_expiry: bool,
    /// Takes a minimum remaining lifetime.
    takes_min: bool,
}

const READERS: &[Reader] = &[
    Reader {
        name: "php-json",
        kind: Kind::Json,
        sees_expiry: true,
        takes_min: true,
    },
    Reader {
        name: "php-include",
        kind: Kind::Php,
        sees_expiry: true,
        takes_min: true,
    },
    Reader {
        name: "php-ticket",
        kind: Kind::Ticket,
        sees_expiry: true,
        takes_min: true,
    },
    Reader {
        name: "ew6-token",
        kind: Kind::Json,
        sees_expiry: true,
        takes_min: true,
    },
    Reader {
        name: "ew45-token",
        kind: Kind::Json,
        sees_expiry: true,
        takes_min: false,
    },
    Reader {
        name: "ew6-ticket",
        kind: Kind::Ticket,
        sees_expiry: true,
        takes_min: true,
    },
    Reader {
        name: "python",
        kind: Kind::Json,
        sees_expiry: true,
        takes_min: true,
    },
    Reader {
        name: "python-cli",
        kind: Kind::Json,
        sees_expiry: true,
        takes_min: true,
    },
    Reader {
        name: "python-ticket",
        kind: Kind::Ticket,
        sees_expiry: true,
        takes_min: true,
    },
    Reader {
        name: "shell-json",
        kind: Kind::Json,
        sees_expiry: true,
        takes_min: false,
    },
    Reader {
        name: "shell-txt",
        kind: Kind::Txt,
        sees_expiry: false,
        takes_min: false,
    },
];

impl Reader {
    /// Runs the reader on `path`; stdout is the value alone on success.
    fn run(&self, path: &Path, min: u64) -> Output {
        let p = path.to_str().unwrap();
        let min_s = min.to_string();
        let py = root("contrib/python");
        match self.name {
            n if n.starts_with("php-") || n.starts_with("ew") => {
                let mut c = php();
                c.arg(root("tests/readers/run.php")).args([n, p, &min_s]);
                output(c)
            }
            "python" | "python-ticket" => {
                let func = if self.name == "python" {
                    "access_token"
                } else {
                    "ticket"
                };
                let mut c = Command::new("python3");
                c.args([
                    "-c",
                    &format!(
                        "import sys; sys.path.insert(0, sys.argv[1])\n\
                         from wxtoken_reader import {func}, WxtokenError\n\
                         try:\n    v = {func}(sys.argv[2], int(sys.argv[3]))\n\
                         except WxtokenError as e:\n    sys.exit('%s' % e)\n\
                         sys.stdout.write(v)"
                    ),
                    py.to_str().unwrap(),
                    p,
                    &min_s,
                ]);
                output(c)
            }
            "python-cli" => {
                let mut c = Command::new("python3");
                c.arg(py.join("wxtoken_reader.py"))
                    .args(["--min-remaining", &min_s, p]);
                let mut o = output(c);
                // The command line ends its one line with a newline, as a shell wants.
                if o.status.success() {
                    assert_eq!(o.stdout.pop(), Some(b'\n'), "python-cli: no final newline");
                }
                o
            }
            "shell-json" | "shell-txt" => {
                assert_eq!(path.file_name().unwrap(), file_name(self.kind));
                let line = readme_line(self.name, path.parent().unwrap());
                let mut c = Command::new("sh");
                c.args(["-c", &format!("{line}\nprintf '%s' \"$token\"")]);
                output(c)
            }
            other => panic!("unknown reader {other}"),
        }
    }

    #[track_caller]
    fn expect_value(&self, path: &Path, want: &str) {
        let o = self.run(path, 0);
        assert!(
            o.status.success(),
            "{} on {}: {:?}\nstderr: {}",
            self.name,
            path.display(),
            o.status,
            text(&o.stderr)
        );
        assert_eq!(
            text(&o.stdout),
            want,
            "{}: not exactly the value written",
            self.name
        );
        assert_eq!(text(&o.stderr), "", "{}: diagnostics on success", self.name);
    }

    /// Fails with a non-zero status, prints no value, and (except the shell lines, whose tools
    /// speak for themselves) says on stderr what is wrong.
    #[track_caller]
    fn expect_failure(&self, path: &Path, min: u64, why: &str, case: &str) {
        let o = self.run(path, min);
        let err = text(&o.stderr);
        assert!(
            !o.status.success(),
            "{} accepted the {case} file {}: printed {:?}",
            self.name,
            path.display(),
            text(&o.stdout)
        );
        assert_eq!(
            text(&o.stdout),
            "",
            "{} printed something on the {case} file",
            self.name
        );
        assert!(
            err.contains("wxtoken"),
            "{} on the {case} file, stderr: {err}",
            self.name
        );
        if self.name.starts_with("shell-") {
            assert_eq!(o.status.code(), Some(1), "{}: {err}", self.name);
        } else {
            assert!(
                err.contains(why),
                "{} on the {case} file: wanted {why:?} in: {err}",
                self.name
            );
            if self.name.starts_with("php-") || self.name.starts_with("ew") {
                // 3 = the documented RuntimeException; anything else is a PHP error or a bug.
                assert_eq!(o.status.code(), Some(3), "{}: {err}", self.name);
            }
        }
    }
}

fn file_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Json => "access_token.json",
        Kind::Php => "access_token.php",
        Kind::Txt => "access_token.txt",
        Kind::Ticket => "jsapi_ticket.json",
    }
}

/// The same file with its expiry moved `secs` seconds into the past.
fn expired_copy(kind: Kind, src: &str, at: u64) -> String {
    match kind {
        Kind::Json | Kind::Ticket => {
            let mut v: serde_json::Value = serde_json::from_str(src).unwrap();
            v["expires_at"] = at.into();
            if v.get("expire_time").is_some() {
                v["expire_time"] = at.into();
            }
            serde_json::to_string_pretty(&v).unwrap() + "\n"
        }
        Kind::Php => {
            src.lines()
                .map(|l| {
                    let t = l.trim_start();
                    if t.starts_with("'expires_at' =>") || t.starts_with("'expire_time' =>") {
                        let key = t.split(" =>").next().unwrap();
                        format!("    {key} => {at},")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
        Kind::Txt => unreachable!("the .txt has no expiry"),
    }
}

/// wxtoken writes .json, .php, .txt and the jsapi ticket; every reader returns exactly what was
/// written and fails on missing, garbled (torn, HTML error page, empty) and expired files.
#[test]
fn every_reader_returns_the_written_token_and_fails_clearly() {
    if !require_tool("php") || !require_tool("python3") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    let dir = site.state_dir();
    site.refresh(&fake)
        .add("--out", dir.join(file_name(Kind::Php)).to_str().unwrap())
        .add("--out", dir.join(file_name(Kind::Txt)).to_str().unwrap())
        .add("--ticket", "jsapi")
        .run()
        .expect(0);
    let token = site.token();
    assert!(fake.is_valid(&token));
    let ticket_json: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join(file_name(Kind::Ticket))).unwrap()).unwrap();
    let ticket = ticket_json["ticket"]
        .as_str()
        .expect("jsapi_ticket.json has a ticket");
    assert_eq!(
        fake.current_ticket(DEFAULT_APPID, "jsapi").as_deref(),
        Some(ticket)
    );
    assert_ne!(ticket, token);

    let bad = tempfile::tempdir().unwrap();
    let n = std::cell::Cell::new(0);
    let mut checked = Vec::new();
    for r in READERS {
        let good = dir.join(file_name(r.kind));
        let want = if r.kind == Kind::Ticket {
            ticket
        } else {
            &token
        };
        r.expect_value(&good, want);

        // Each broken variant keeps the real file name (the shell lines look for it).
        // (Directory names that cannot match an expected message: the messages quote the path.)
        let case_dir = |_case: &str| {
            n.set(n.get() + 1);
            let d = bad.path().join(n.get().to_string());
            fs::create_dir_all(&d).unwrap();
            d.join(file_name(r.kind))
        };
        let written = fs::read_to_string(&good).unwrap();

        r.expect_failure(&case_dir("missing"), 0, "does not exist", "missing");

        let mut garbled = vec![
            ("empty", String::new()),
            (
                "html",
                "<html><body>502 Bad Gateway</body></html>\n".to_string(),
            ),
        ];
        if r.kind != Kind::Txt {
            // A torn write, as seed 002's fopen("w")+fwrite() can leave for a reader.
            garbled.push(("half", written[..written.len() / 2].to_string()));
        }
        for (case, content) in garbled {
            let p = case_dir(case);
            fs::write(&p, content).unwrap();
            let why = match (r.kind, case) {
                (Kind::Php, "half") => "not a valid wxtoken .php file",
                (Kind::Php, _) => "did not return an array",
                _ => "not valid JSON",
            };
            r.expect_failure(&p, 0, why, case);
        }

        if r.sees_expiry {
            let p = case_dir("expired");
            fs::write(&p, expired_copy(r.kind, &written, now() - 30)).unwrap();
            r.expect_failure(&p, 0, "s ago", "expired");
            // Valid for a while still, but not as long as asked for.
            if r.takes_min {
                r.expect_failure(
                    &good,
                    7300,
                    "fewer than the 7300 s asked for",
                    "short-lived",
                );
                r.expect_value(&good, want);
            }
        }

        if !is_root() {
            let p = case_dir("unreadable");
            fs::copy(&good, &p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
            r.expect_failure(&p, 0, "cannot read", "unreadable");
        }
        checked.push(r.name);
    }
    if is_root() {
        show("(unreadable files not checked: root reads everything)");
    }
    show(&format!("readers checked: {}", checked.join(", ")));
}

/// The read side of seeds 001 and 002, with only the path changed as contrib/seeds.md says, takes
/// wxtoken's files as a valid cache: the seed never reaches its own fetch while wxtoken is healthy.
#[test]
fn seed_read_paths_accept_wxtokens_files() {
    if !require_tool("php") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    let php_out = site.state_dir().join(file_name(Kind::Php));
    site.refresh(&fake)
        .add("--out", php_out.to_str().unwrap())
        .run()
        .expect(0);
    let token = site.token();
    for (seed, file) in [("001", &php_out), ("002", &site.out)] {
        let mut c = php();
        c.arg(root("tests/readers/seeds.php")).arg(seed).arg(file);
        let o = output(c);
        assert_eq!(
            o.status.code(),
            Some(0),
            "seed {seed} would fetch a token itself (5) or broke: {}",
            text(&o.stderr)
        );
        assert_eq!(text(&o.stdout), token, "seed {seed}");
        assert_eq!(text(&o.stderr), "", "seed {seed}: PHP diagnostics");
    }
}

/// wx.config() signatures with WeChat's published example (JS-SDK docs, appendix 1), from a
/// ticket file in wxtoken's format.
#[test]
fn jssdk_signature_matches_wechats_example() {
    if !require_tool("php") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jsapi_ticket.json");
    let t = now();
    let file = serde_json::json!({
        "ticket": "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
        "expires_in": 7200, "expires_at": t + 7200, "refreshed_at": t,
    });
    fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let want = "0f9de62fce790f9a083d5c99e95740ceb90c27ed http://mp.weixin.qq.com?params=value \
                1414587457 Wm3WZYTPz0wzccnW wxappid";
    for reader in ["php-jssdk", "ew6-jssdk"] {
        let mut c = php();
        c.arg(root("tests/readers/run.php")).arg(reader).arg(&path);
        let o = output(c);
        assert!(o.status.success(), "{reader}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout), want, "{reader}");
    }
}

const REWRITES: usize = 300;

struct Probe {
    mode: &'static str,
    child: Child,
    ready: PathBuf,
}

/// Kills the PHP readers still running when a test fails half-way.
struct Probes(Vec<Probe>);

impl Drop for Probes {
    fn drop(&mut self) {
        for p in &mut self.0 {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// Four PHP processes read in a tight loop - two `json_decode(file_get_contents())` on the .json,
/// two `include` on the .php with OPcache off - while wxtoken replaces both files 300 times (legacy
/// API + --force: a new token each run). Every read must yield a complete record.
#[test]
fn no_torn_reads_while_wxtoken_rewrites() {
    if !require_tool("php") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    let dir = site.state_dir();
    let php_out = dir.join(file_name(Kind::Php));
    let mut cmd = site.refresh(&fake);
    cmd.add("--out", php_out.to_str().unwrap())
        .args(&["--api", "legacy", "--force"]);
    cmd.run().expect(0);

    let work = tempfile::tempdir().unwrap();
    let stop = work.path().join("stop");
    let mut probes = Probes(
        ["json", "php", "json", "php"]
            .iter()
            .enumerate()
            .map(|(i, &mode)| {
                let file = if mode == "json" { &site.out } else { &php_out };
                let ready = work.path().join(format!("ready{i}"));
                let mut c = php_niced(10);
                c.arg(root("tests/readers/torn.php"))
                    .arg(mode)
                    .arg(file)
                    .arg(&stop)
                    .arg(&ready)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let child = c.spawn().expect("spawn php");
                Probe { mode, child, ready }
            })
            .collect(),
    );

    // Every reader has read once before the first rewrite.
    let t0 = Instant::now();
    while !probes.0.iter().all(|p| p.ready.exists()) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the PHP readers never got going"
        );
        if let Some(i) = probes
            .0
            .iter_mut()
            .position(|p| p.child.try_wait().unwrap().is_some())
        {
            let p = probes.0.swap_remove(i);
            let o = p.child.wait_with_output().unwrap();
            panic!(
                "a PHP reader ({}) exited early: {}{}",
                p.mode,
                text(&o.stdout),
                text(&o.stderr)
            );
        }
        sleep(Duration::from_millis(10));
    }

    let t1 = Instant::now();
    let mut tokens = std::collections::HashSet::new();
    for _ in 0..REWRITES {
        cmd.run().expect(0);
        tokens.insert(site.token());
    }
    let rewrite_time = t1.elapsed();
    assert_eq!(
        tokens.len(),
        REWRITES,
        "every rewrite must bring a new token"
    );
    fs::write(&stop, "").unwrap();

    let (mut json, mut inc) = ((0u64, 0u64, 0u64), (0u64, 0u64, 0u64));
    let mut lines = Vec::new();
    for p in std::mem::take(&mut probes.0) {
        let o = p.child.wait_with_output().unwrap();
        let out = text(&o.stdout);
        assert!(
            o.status.success(),
            "{} reader: {:?}\n{out}{}",
            p.mode,
            o.status,
            text(&o.stderr)
        );
        let field = |k: &str| -> u64 {
            out.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {out:?}"))
                .parse()
                .unwrap()
        };
        let (reads, failed, changes) = (field("reads="), field("failed="), field("changes="));
        lines.push(format!("{}: {}", p.mode, out.trim()));
        assert_eq!(failed, 0, "torn reads: {}\n{}", out.trim(), text(&o.stderr));
        // Proof that the reader was reading while the files changed under it.
        assert!(
            reads >= REWRITES as u64,
            "{} reader: only {reads} reads",
            p.mode
        );
        assert!(
            changes >= 10,
            "{} reader saw only {changes} of {REWRITES} new tokens",
            p.mode
        );
        let acc = if p.mode == "json" {
            &mut json
        } else {
            &mut inc
        };
        acc.0 += reads;
        acc.1 += failed;
        acc.2 += changes;
    }
    show(&format!("per reader: {}", lines.join("; ")));
    show(&format!(
        "torn reads: json {} reads {} failed, php {} reads {} failed, {REWRITES} rewrites in {:.1} s",
        json.0,
        json.1,
        inc.0,
        inc.1,
        rewrite_time.as_secs_f64()
    ));
    assert!(
        json.0 >= 5000,
        "too few json reads ({}) to mean anything",
        json.0
    );
    assert!(
        inc.0 >= 2000,
        "too few php reads ({}) to mean anything",
        inc.0
    );
    assert!(fake.is_valid(&site.token()));
}

// ---- Reporting a rejected token (passive refresh) ------------------------------------------------

/// The request's name as the contract spells it, computed by `sha256sum`, independently of wxtoken
/// and of the helpers under test.
fn sha256sum(token: &str) -> String {
    let o = Command::new("sh")
        .args(["-c", "printf %s \"$1\" | sha256sum", "sh", token])
        .output()
        .expect("run sha256sum");
    assert!(o.status.success(), "sha256sum: {}", text(&o.stderr));
    let hex = text(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(hex.len(), 64, "{hex}");
    hex
}

/// The fenced block that contrib/README.md shows after `<!-- ... runs this block: NAME -->`.
fn readme_block(name: &str) -> String {
    let readme = fs::read_to_string(root("contrib/README.md")).unwrap();
    let marker = format!("runs this block: {name} -->");
    let after = &readme[readme
        .find(&marker)
        .unwrap_or_else(|| panic!("contrib/README.md lacks {marker:?}"))..];
    let mut lines = after.lines().skip_while(|l| !l.starts_with("```")).skip(1);
    let block: Vec<&str> = lines
        .by_ref()
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert!(!block.is_empty(), "empty block {name}");
    block.join("\n") + "\n"
}

#[derive(Clone, Copy, Debug)]
enum Lang {
    Php,
    Python,
}

impl Lang {
    /// tests/readers/report.{php,py} with these arguments, optionally as another user and group.
    fn report(self, args: &[&str], as_user: Option<(u32, u32)>) -> Output {
        let mut c = match as_user {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                    "--clear-groups",
                ]);
                c
            }
            None => Command::new("env"),
        };
        match self {
            Lang::Php => {
                let php = php();
                c.arg(php.get_program()).args(php.get_args());
                c.arg(root("tests/readers/report.php"));
            }
            Lang::Python => {
                // Another user may not reach a python3 in root's home (pyenv): the system's then.
                let python = match as_user {
                    Some(_) => system_python3().expect("checked by the caller"),
                    None => "python3".into(),
                };
                c.arg(python).arg(root("tests/readers/report.py"));
            }
        }
        c.args(args).stdin(Stdio::null());
        output(c)
    }

    /// The helper's answer: true when it says the report is filed.
    #[track_caller]
    fn report_stale(self, token: &str, file: &Path, as_user: Option<(u32, u32)>) -> bool {
        let o = self.report(&["helper", token, file.to_str().unwrap()], as_user);
        assert!(o.status.success(), "{self:?} helper: {}", text(&o.stderr));
        assert_eq!(text(&o.stderr), "", "{self:?} helper: diagnostics");
        match text(&o.stdout).as_str() {
            "true" | "True" => true,
            "false" | "False" => false,
            other => panic!("{self:?} helper returned {other:?}"),
        }
    }
}

fn system_python3() -> Option<PathBuf> {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A request directory as the contract describes it: the files' group may create entries only.
fn make_requests_dir(dir: &Path) -> PathBuf {
    let req = dir.join("requests");
    fs::create_dir(&req).unwrap();
    fs::set_permissions(&req, fs::Permissions::from_mode(0o1730)).unwrap();
    req
}

/// `wxtoken_report_stale()` (PHP) and `report_stale()` (Python) create exactly
/// `requests/<sha256 of the token>` in the directory `wxtoken refresh` made beside the token file,
/// empty; a report already there is fine; the next `wxtoken refresh` consumes it and replaces the
/// (revoked) token. Without the directory (or the right to write in it) they say false and create
/// nothing.
#[test]
fn report_helpers_file_a_request_named_by_the_tokens_sha256() {
    if !require_tool("php") || !require_tool("python3") || !require_tool("sha256sum") {
        return;
    }
    let fake = FakeWeChat::start();
    let mut last = None;
    for lang in [Lang::Php, Lang::Python] {
        // A site each: a directory's reports cost at most one probe per 30 s.
        let site = Site::new();
        // Legacy: a revoked token is replaced by a plain fetch (stable would spend a
        // force_refresh, at most one per 30 s).
        let refresh = || {
            let mut c = site.refresh(&fake);
            c.args(&["--api", "legacy"]);
            c.run()
        };
        refresh().expect(0);
        let dir = site.state_dir();
        let req = dir.join("requests");
        let mode = fs::metadata(&req).map(|m| m.permissions().mode() & 0o7777);
        assert_eq!(mode.ok(), Some(0o1730), "wxtoken refresh makes requests/");

        let token = site.token();
        let want = sha256sum(&token);
        assert!(lang.report_stale(&token, &site.out, None), "{lang:?}");
        assert_eq!(
            listing(&req),
            [want.as_str()],
            "{lang:?}: the request's name"
        );
        assert_eq!(fs::metadata(req.join(&want)).unwrap().len(), 0, "{lang:?}");
        // Another worker reports the same token: filed already, still one request.
        assert!(
            lang.report_stale(&token, &site.out, None),
            "{lang:?}: again"
        );
        assert_eq!(listing(&req), [want.as_str()], "{lang:?}: again");
        // WeChat really revoked it: the next run takes the report and replaces the token.
        fake.revoke(&token);
        refresh().expect(0);
        assert_ne!(site.token(), token, "{lang:?}: the report was not acted on");
        assert!(fake.is_valid(&site.token()), "{lang:?}");
        assert_eq!(
            listing(&req),
            Vec::<String>::new(),
            "{lang:?}: not consumed"
        );

        // A non-token is not reported.
        assert!(!lang.report_stale("", &site.out, None), "{lang:?}: empty");
        assert_eq!(listing(&req), Vec::<String>::new(), "{lang:?}: empty");
        // No request directory (wxtoken too old, or not run yet): false, and nothing created.
        fs::remove_dir(&req).unwrap();
        let before = listing(&dir);
        assert!(
            !lang.report_stale(&token, &site.out, None),
            "{lang:?}: no dir"
        );
        assert_eq!(listing(&dir), before, "{lang:?}: created something");
        refresh().expect(0);
        assert!(req.is_dir(), "the next run makes requests/ again");
        fs::remove_dir(&req).unwrap();
        last = Some(site);
    }
    let site = last.expect("ran");
    let dir = site.state_dir();
    let token = site.token();
    let want = sha256sum(&token);

    if !is_root() {
        show("(reports as another user not checked: needs root for setpriv)");
        return;
    }
    // As production has it: the directory belongs to the refresher's user, its group is the
    // readers' group, mode 01730; the app runs as another user in that group.
    let (owner, group, app) = (4243, 4242, 65534);
    for d in [site.dir.path(), dir.as_path()] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut langs = vec![Lang::Php];
    match system_python3() {
        Some(_) => langs.push(Lang::Python),
        None => show("(Python report as another user not checked: no /usr/bin/python3)"),
    }
    for lang in langs {
        let req = make_requests_dir(&dir);
        std::os::unix::fs::chown(&req, Some(owner), Some(group)).unwrap();
        let member = Some((app, group));
        assert!(
            lang.report_stale(&token, &site.out, member),
            "{lang:?}: member"
        );
        assert!(
            lang.report_stale(&token, &site.out, member),
            "{lang:?}: member again"
        );
        assert_eq!(listing(&req), [want.as_str()], "{lang:?}: member");
        let outsider = Some((app, app));
        assert!(
            !lang.report_stale("another-token", &site.out, outsider),
            "{lang:?}: a user outside the group filed a report"
        );
        assert_eq!(listing(&req), [want.as_str()], "{lang:?}: outsider");
        fs::remove_dir_all(&req).unwrap();
    }
}

/// The change contrib/README.md shows for an API call, run as printed (paths aside) in PHP and
/// Python: on 40001 it files the report for the rejected token, reads the file once more, and
/// retries once only when that gave a newer token.
#[test]
fn documented_report_change_reports_and_retries_once() {
    if !require_tool("php") || !require_tool("python3") || !require_tool("sha256sum") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let old = site.token();
    let dir = site.state_dir();
    let req = dir.join("requests");
    assert!(req.is_dir(), "wxtoken refresh makes requests/");
    let original = fs::read_to_string(&site.out).unwrap();
    let newer_token = format!("{old}NEWER");
    let newer = dir.join("newer.json");
    let file = site.out.to_str().unwrap();

    for (lang, name) in [(Lang::Php, "php-report"), (Lang::Python, "python-report")] {
        let mut code = readme_block(name);
        let swaps: &[(&str, String, usize)] = match lang {
            Lang::Php => &[
                (
                    "wxtoken_access_token()",
                    "wxtoken_access_token($FILE)".into(),
                    2,
                ),
                (
                    "wxtoken_report_stale($token)",
                    "wxtoken_report_stale($token, $FILE)".into(),
                    1,
                ),
            ],
            Lang::Python => &[
                ("access_token()", "access_token(FILE)".into(), 2),
                ("report_stale(token)", "report_stale(token, FILE)".into(), 1),
            ],
        };
        for (from, to, n) in swaps {
            assert_eq!(code.matches(from).count(), *n, "{name}: {from} in:\n{code}");
            code = code.replace(from, to);
        }
        let code_file = dir.join(format!("{name}.code"));
        fs::write(&code_file, &code).unwrap();
        let code_arg = code_file.to_str().unwrap();

        for newer_first in [false, true] {
            fs::write(&site.out, &original).unwrap();
            fs::write(&newer, original.replace(&old, &newer_token)).unwrap();
            let mut args = vec!["snippet", code_arg, file];
            if newer_first {
                args.push(newer.to_str().unwrap());
            }
            let o = lang.report(&args, None);
            assert!(o.status.success(), "{name}: {}", text(&o.stderr));
            assert_eq!(text(&o.stderr), "", "{name}: diagnostics");
            let out = text(&o.stdout);
            let (calls, res) = out.split_once("res=").expect("res= line");
            let calls: Vec<&str> = calls.lines().collect();
            if newer_first {
                assert_eq!(calls, [old.as_str(), &newer_token], "{name}: one retry");
                assert!(res.contains("openid"), "{name}: {res}");
            } else {
                assert_eq!(
                    calls,
                    [old.as_str()],
                    "{name}: no retry with the same token"
                );
                assert!(res.contains("40001"), "{name}: {res}");
            }
            assert_eq!(listing(&req), [sha256sum(&old)], "{name}: the report");
            fs::remove_file(req.join(sha256sum(&old))).unwrap();
        }
    }
}
