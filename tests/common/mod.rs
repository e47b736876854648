//! Runs the real `wxtoken` binary in a temp directory against the fake WeChat API.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // each test crate uses a different part
pub use crate::fake::{Behaviour, DEFAULT_APPID, DEFAULT_SECRET, FakeWeChat};

pub const BIN: &str = env!("CARGO_BIN_EXE_wxtoken");

/// A scratch directory with a secret file (0600) and an output path inside it.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub secret: PathBuf,
    pub out: PathBuf,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, format!("{DEFAULT_SECRET}\n")).unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
        let out = dir.path().join("state").join("access_token.json");
        Site { dir, secret, out }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.out.parent().unwrap().to_path_buf()
    }

    /// `wxtoken refresh` with this site's secret and output, pointed at `fake`, short timeouts.
    pub fn refresh(&self, fake: &FakeWeChat) -> Cmd {
        let mut c = Cmd::new(&["refresh"]);
        c.args(&["--appid", DEFAULT_APPID, "--api-base", &fake.base_url()]);
        c.args(&[
            "--secret-file",
            self.secret.to_str().unwrap(),
            "--out",
            self.out.to_str().unwrap(),
        ]);
        c.args(&["--timeout", "2", "--max-time", "8", "--retries", "1"]);
        c
    }

    pub fn read(&self) -> serde_json::Value {
        serde_json::from_slice(&fs::read(&self.out).unwrap()).unwrap()
    }

    /// Seconds the token file says its token has left (negative when past).
    pub fn left(&self) -> i64 {
        self.read()["expires_at"].as_u64().unwrap() as i64 - wxtoken::clock::unix_now() as i64
    }

    pub fn token(&self) -> String {
        self.read()["access_token"].as_str().unwrap().to_string()
    }

    /// Names in the output directory, sorted, less the run's bookkeeping (`.wxtoken-state.json`,
    /// `requests/`, which tests of their own look at): proves no temp files are left behind.
    pub fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = match fs::read_dir(self.state_dir()) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n != ".wxtoken-state.json" && n != "requests")
                .collect(),
            Err(_) => vec![],
        };
        v.sort();
        v
    }
}

/// A command line under construction. `set` replaces an option given earlier (clap refuses a
/// single-valued flag twice), `arg`/`args` append.
pub struct Cmd {
    argv: Vec<String>,
    envs: Vec<(String, Option<String>)>,
}

impl Cmd {
    pub fn new(args: &[&str]) -> Cmd {
        Cmd {
            argv: args.iter().map(|s| s.to_string()).collect(),
            envs: vec![],
        }
    }

    pub fn arg(&mut self, a: &str) -> &mut Cmd {
        self.argv.push(a.to_string());
        self
    }

    /// Appends, except that a `--flag value` pair whose flag is already present replaces it.
    pub fn args(&mut self, a: &[&str]) -> &mut Cmd {
        let mut i = 0;
        while i < a.len() {
            if a[i].starts_with("--") && i + 1 < a.len() && !a[i + 1].starts_with("--") {
                self.set(a[i], a[i + 1]);
                i += 2;
            } else {
                self.arg(a[i]);
                i += 1;
            }
        }
        self
    }

    pub fn set(&mut self, flag: &str, value: &str) -> &mut Cmd {
        if let Some(pos) = self.argv.iter().position(|x| x == flag) {
            self.argv[pos + 1] = value.to_string();
        } else {
            self.argv.push(flag.to_string());
            self.argv.push(value.to_string());
        }
        self
    }

    /// Appends `--flag value` even when the flag is present (repeatable options).
    pub fn add(&mut self, flag: &str, value: &str) -> &mut Cmd {
        self.argv.push(flag.to_string());
        self.argv.push(value.to_string());
        self
    }

    pub fn env(&mut self, k: &str, v: &str) -> &mut Cmd {
        self.envs.push((k.to_string(), Some(v.to_string())));
        self
    }

    pub fn env_remove(&mut self, k: &str) -> &mut Cmd {
        self.envs.push((k.to_string(), None));
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.argv);
        // Nothing from the developer's environment may steer the binary (or send it to a proxy).
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("WXTOKEN_")
                || k.to_lowercase().ends_with("_proxy")
                || k == "CREDENTIALS_DIRECTORY"
            {
                cmd.env_remove(&k);
            }
        }
        cmd.env("RUST_LOG", "info");
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs the command with the host clock moved by `offset` (libfaketime's `-f` syntax, "+3h"),
    /// the monotonic clock left alone; asserts that it succeeded.
    pub fn run_succeeding_at(&mut self, offset: &str) {
        let run = self
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .command_with_prefix(&["faketime", "-f", offset])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "under faketime {offset}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }

    /// The command run under another program (e.g. `faketime -f +3h`), with this environment.
    pub fn command_with_prefix(&self, prefix: &[&str]) -> Command {
        let inner = self.command();
        let mut cmd = Command::new(prefix[0]);
        cmd.args(&prefix[1..]).arg(BIN).args(inner.get_args());
        cmd.env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        for (k, v) in std::env::vars_os() {
            if inner.get_envs().all(|(ik, _)| ik != k.as_os_str()) {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn run(&mut self) -> Run {
        let start = Instant::now();
        let out: Output = self.command().output().expect("run wxtoken");
        Run {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            elapsed: start.elapsed(),
        }
    }

    pub fn spawn(&mut self) -> Child {
        self.command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wxtoken")
    }
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stderr: String,
    pub stdout: String,
    pub elapsed: Duration,
}

impl Run {
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit status; stderr:\n{}", self.stderr);
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// Prints past the test harness's output capture, so figures a test measured (and skips) show in
/// every `cargo test` log, not only for failures.
pub fn show(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", text.trim_end());
}

/// A row of docs/RELIABILITY.md's fault table (bench/faults.sh collects these lines from the
/// suite's output). Called right after the assertions that prove `outcome`, so the row exists only
/// for a run in which the test got that far: the table cannot claim what the suite did not see.
#[track_caller]
pub fn fault(kind: &str, what: &str, outcome: &str) {
    let file = std::panic::Location::caller().file();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    show(&format!("FAULT|{kind}|{what}|{outcome}|{file}::{test}"));
}

/// A tool a test needs: missing means skip on a laptop, failure under CI.
pub fn require_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} is required under CI=true but is not installed");
        }
        show(&format!("SKIPPED: {name} is not installed"));
    }
    found
}

pub fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// A tmpfs mounted at `path` for the life of the guard (tests of read-only and full disks).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// None (after printing SKIPPED) when this is not root outside CI; panics under CI.
    pub fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        if !is_root() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI runs as root; mounting a tmpfs needs it");
            }
            show("SKIPPED: mounting a tmpfs needs root");
            return None;
        }
        fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount tmpfs on {}", path.display());
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    pub fn remount_ro(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A run measured by wait4(2): its own peak memory, not the whole test process's.
#[derive(Debug)]
pub struct Bounded {
    pub run: Run,
    /// Peak resident set of the wxtoken process, KiB.
    pub max_rss_kib: i64,
    /// Still running at the time limit, so it was killed (SIGKILL).
    pub killed: bool,
}

impl Cmd {
    /// Runs with a ceiling on address space and on wall time, so a run that reads without end
    /// or blocks forever (the bugs some tests look for) fails the test instead of taking the
    /// machine's memory or hanging it.
    pub fn run_bounded(&mut self, kill_after: Duration) -> Bounded {
        run_bounded(self.command(), kill_after)
    }

    /// The command with user and group `id` (supplementary groups dropped, as std does for root).
    pub fn command_as(&self, id: u32) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = self.command();
        cmd.uid(id).gid(id);
        cmd
    }
}

/// Address space allowed to a measured run: far more than wxtoken uses, far less than the machine.
pub const ADDRESS_SPACE_LIMIT: u64 = 1 << 30;

// wait4 reaps the child (std's wait would not report its rusage).
#[allow(clippy::zombie_processes)]
pub fn run_bounded(mut cmd: Command, kill_after: Duration) -> Bounded {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE_LIMIT,
                rlim_max: ADDRESS_SPACE_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wxtoken");
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: our own child, valid pointers. Reaped here, so `child` is never waited on.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert_eq!(r, 0, "wait4: {}", std::io::Error::last_os_error());
        if start.elapsed() > kill_after && !killed {
            // SAFETY: the child is not reaped yet, so the pid is still ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Bounded {
        run: Run {
            code,
            stderr: reader.join().unwrap(),
            stdout: String::new(),
            elapsed,
        },
        max_rss_kib: usage.ru_maxrss,
        killed,
    }
}

/// `cargo` for a test to call (e.g. to run an example), with the environment of a shell rather
/// than a test's: cargo gives tests CARGO_MANIFEST_DIR, CARGO_PKG_*..., which build scripts watch
/// (ring's), so a nested cargo would otherwise rebuild half the tree. Same target directory.
pub fn nested_cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" {
            cmd.env_remove(&*k);
        }
    }
    let exe = std::env::current_exe().unwrap();
    cmd.env("CARGO_TARGET_DIR", exe.ancestors().nth(3).unwrap());
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// Token checks the fake answered (get_api_domain_ip).
pub fn probes(fake: &FakeWeChat) -> usize {
    fake.calls("/cgi-bin/get_api_domain_ip")
}

/// The run state (`.wxtoken-state.json`) beside the site's token file.
pub fn run_state(site: &Site) -> serde_json::Value {
    serde_json::from_slice(&fs::read(site.state_dir().join(".wxtoken-state.json")).unwrap())
        .unwrap()
}

/// Rewrites fields of a JSON file, as a hand (or a clock) could have left them.
pub fn edit(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    f(&mut v);
    fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

pub fn now() -> u64 {
    wxtoken::clock::unix_now()
}

/// What an app does when WeChat answers 40001: `wxtoken report-stale DIGEST`.
pub fn report(site: &Site, token: &str) -> Run {
    Cmd::new(&[
        "report-stale",
        "--out",
        site.out.to_str().unwrap(),
        &wxtoken::api::digest(token),
    ])
    .run()
}
