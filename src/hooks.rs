//! Runs the `--on-change` hooks and remembers what each has delivered.
//!
//! Where the token goes beyond wxtoken's own files: a database row, a cache key, a reload.
//! One entry point, [`deliver`], called once per run after the token and the
//! tickets are written, under the lock.
//!
//! A hook runs while what it last delivered (kept in the run state, per hook) differs from what
//! the files hold: after a change, after its own failure, once when newly configured. It gets the
//! paths and times in its environment, never the token or the secret: it reads the file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use crate::api::digest;
use crate::clock::{secs_until, unix_now};
use crate::config::Config;
use crate::config::hooks::Hook;
use crate::deadline::Deadline;
use crate::error::{Error, Kind, Result};
use crate::logging::register_token;
use crate::store::TokenFile;
use crate::store::run_state::{PendingHook, RunState};
use crate::tickets;

/// A hook never runs longer than this, nor past the run's `--max-time`.
pub const HOOK_TIME_LIMIT: Duration = Duration::from_secs(30);
/// Lines of a hook's output (stdout and stderr each) that reach the log; the rest is counted.
const MAX_LOGGED_LINES: usize = 100;
const MAX_LINE: usize = 1000;
/// Variables a hook inherits besides the `WXTOKEN_*` settings (the secret's never among them).
const INHERITED: &[&str] = &[
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME",
];
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The token or one ticket, as the files hold it now.
struct Item {
    /// "token", "jsapi_ticket", ...: the words of WXTOKEN_CHANGED and the keys in the run state.
    name: String,
    /// The variable naming its file: WXTOKEN_FILE, WXTOKEN_JSAPI_TICKET_FILE, ...
    var: String,
    path: PathBuf,
    /// Of its value and expiry: a hook delivers both.
    digest: String,
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn items(cfg: &Config, token: &TokenFile) -> Vec<Item> {
    let mut items = vec![Item {
        name: "token".into(),
        var: "WXTOKEN_FILE".into(),
        path: absolute(&cfg.store.primary),
        digest: digest(&format!("{} {}", token.access_token, token.expires_at)),
    }];
    for &ty in &cfg.tickets {
        let path = tickets::path_for(cfg.store.dir(), ty);
        // A ticket that failed to come is not delivered; the hook gets it once it exists.
        let Some(t) = tickets::read(&path).filter(|t| t.appid == cfg.appid) else {
            continue;
        };
        register_token(&t.ticket);
        let name = format!("{}_ticket", ty.name());
        items.push(Item {
            var: format!("WXTOKEN_{}_FILE", name.to_ascii_uppercase()),
            name,
            path: absolute(&path),
            digest: digest(&format!("{} {}", t.ticket, t.expires_at)),
        });
    }
    items
}

/// Runs, in order, every hook that has not delivered what the files hold now. Called once per run
/// after every file is written, under the lock (so a hook never overwrites a newer token with an
/// older one). A failed hook is logged, stays pending in `st` and runs again on the next run; the
/// later hooks still run. Err: 78 when a hook could not be started or exited 78, else 75.
pub fn deliver(
    cfg: &Config,
    st: &mut RunState,
    token: &TokenFile,
    deadline: &Deadline,
) -> Result<()> {
    let configured = |cmd: &str| cfg.hooks.iter().any(|h| h.text == cmd);
    st.hooks_delivered.retain(|cmd, _| configured(cmd));
    st.hooks_pending.retain(|p| configured(&p.command));
    if cfg.hooks.is_empty() {
        return Ok(());
    }
    register_token(&token.access_token);
    let items = items(cfg, token);
    let now_delivered: BTreeMap<String, String> = items
        .iter()
        .map(|i| (i.name.clone(), i.digest.clone()))
        .collect();
    let mut failures: Vec<(&Hook, Error)> = Vec::new();
    let due: Vec<(&Hook, String)> = cfg
        .hooks
        .iter()
        .filter_map(|hook| {
            let before = st.hooks_delivered.get(&hook.text);
            let changed: Vec<&str> = items
                .iter()
                .filter(|i| before.and_then(|b| b.get(&i.name)) != Some(&i.digest))
                .map(|i| i.name.as_str())
                .collect();
            if changed.is_empty() {
                debug!("hook {}: nothing changed since it last ran", hook.name());
                return None;
            }
            Some((hook, changed.join(",")))
        })
        .collect();
    let count = due.len();
    for (i, (hook, changed)) in due.into_iter().enumerate() {
        // Each hook gets its share of what is left, so one that hangs cannot take the time of the
        // ones after it; a hook that ends early leaves its unused share to them.
        let share = deadline.remaining() / (count - i) as u32;
        let env = environment(cfg, token, &items, &changed);
        match run(hook, &env, deadline, share) {
            Ok(took) => {
                info!(
                    "hook {} delivered {changed} in {:.2} s",
                    hook.name(),
                    took.as_secs_f64()
                );
                st.hooks_delivered
                    .insert(hook.text.clone(), now_delivered.clone());
                st.hooks_pending.retain(|p| p.command != hook.text);
            }
            Err(e) => {
                error!(
                    "--on-change hook {}: {e}; the files stay as written, it runs again on the \
                     next run",
                    hook.text
                );
                let token_digest = digest(&token.access_token);
                let since = st
                    .hooks_pending
                    .iter()
                    .find(|p| p.command == hook.text && p.token == token_digest)
                    .map_or_else(unix_now, |p| p.since);
                st.hooks_pending.retain(|p| p.command != hook.text);
                st.hooks_pending.push(PendingHook {
                    command: hook.text.clone(),
                    token: token_digest,
                    since,
                    error: e.message.clone(),
                });
                failures.push((hook, e));
            }
        }
    }
    let Some((first, e)) = failures.first() else {
        return Ok(());
    };
    let kind = if failures.iter().any(|(_, e)| e.kind == Kind::Config) {
        Kind::Config
    } else {
        Kind::TempFail
    };
    Err(Error::new(
        kind,
        format!(
            "the files are written, but {} of {} --on-change hooks failed ({}: {}); a failed hook \
             runs again on the next run",
            failures.len(),
            cfg.hooks.len(),
            first.text,
            e.message
        ),
    ))
}

/// What a hook sees: the locale and PATH, the admin's `WXTOKEN_*` settings (their hooks'
/// settings among them) but WXTOKEN_SECRET_FILE, and the variables below. Never
/// CREDENTIALS_DIRECTORY, and no variable whose value holds the secret or the token.
fn environment(
    cfg: &Config,
    token: &TokenFile,
    items: &[Item],
    changed: &str,
) -> Vec<(OsString, OsString)> {
    let mut set: Vec<(String, OsString)> = vec![
        ("WXTOKEN_APPID".into(), cfg.appid.clone().into()),
        ("WXTOKEN_API".into(), cfg.api.name().into()),
        (
            "WXTOKEN_EXPIRES_AT".into(),
            token.expires_at.to_string().into(),
        ),
        (
            "WXTOKEN_EXPIRES_IN".into(),
            secs_until(token.expires_at, unix_now())
                .max(0)
                .to_string()
                .into(),
        ),
        ("WXTOKEN_CHANGED".into(), changed.into()),
    ];
    set.extend(
        items
            .iter()
            .map(|i| (i.var.clone(), i.path.clone().into_os_string())),
    );
    let carries = |v: &OsString| {
        let v = v.as_encoded_bytes();
        [cfg.secret.as_bytes(), token.access_token.as_bytes()]
            .iter()
            .any(|needle| !needle.is_empty() && v.windows(needle.len()).any(|w| w == *needle))
    };
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, v)| {
            let Some(k) = k.to_str() else { return false };
            let wanted = INHERITED.contains(&k)
                || k.starts_with("LC_")
                || (k.starts_with("WXTOKEN_")
                    && k != "WXTOKEN_SECRET_FILE"
                    && !k.ends_with("_TICKET_FILE")
                    && !set.iter().any(|(s, _)| s == k));
            wanted && !carries(v)
        })
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    env.extend(set.into_iter().map(|(k, v)| (k.into(), v)));
    env
}

/// Runs one hook: stdin /dev/null, its output into the log line by line, in a process group of
/// its own that is killed whole when the time is up, and when it exits (what it left running).
/// Ok(how long it took), or Err naming what went wrong.
fn run(
    hook: &Hook,
    env: &[(OsString, OsString)],
    deadline: &Deadline,
    share: Duration,
) -> std::result::Result<Duration, Error> {
    let limit = HOOK_TIME_LIMIT.min(share);
    if deadline.exhausted() {
        return Err(Error::temp(
            "not started: nothing is left of --max-time after the refresh",
        ));
    }
    let program = &hook.argv[0];
    let mut child = Command::new(program)
        .args(&hook.argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::ENOENT) => format!("{program} does not exist"),
                Some(libc::EACCES) => format!(
                    "{program} is not executable by this user (chmod +x; every directory on its \
                     path must be searchable)"
                ),
                Some(libc::ENOEXEC) => {
                    format!("{program} is not a program (a script needs a #! line)")
                }
                _ => format!("{program}: {e}"),
            };
            Error::config(format!("cannot be started: {why}"))
        })?;
    let start = Instant::now();
    let (tx, rx) = mpsc::channel();
    let pumps = [
        (
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            false,
        ),
        (
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            true,
        ),
    ];
    for (pipe, is_err) in pumps {
        if let Some(pipe) = pipe {
            let tx = tx.clone();
            std::thread::spawn(move || pump(pipe, is_err, &tx));
        }
    }
    drop(tx);
    let pid = child.id() as libc::pid_t;
    let mut output = Output {
        name: hook.name(),
        open: 2,
    };
    let timed_out = loop {
        output.take(&rx, Duration::from_millis(20));
        if has_exited(pid) {
            break false;
        }
        if start.elapsed() >= limit {
            break true;
        }
    };
    // SAFETY: kill(2) on a process group. The hook is not reaped yet (a zombie at most), so the
    // group id is still its pid and cannot name anyone else's processes.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let status = child.wait();
    let took = start.elapsed();
    // Its output is closed once every process holding it is gone: at once, unless something
    // left the group. Do not wait for that.
    let grace = Instant::now() + Duration::from_secs(1);
    while output.open > 0 {
        let left = grace.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        output.take(&rx, left);
    }
    if timed_out {
        let why = if limit < HOOK_TIME_LIMIT {
            "its share of what --max-time left, so that the later hooks still run"
        } else {
            "the hook time limit"
        };
        return Err(Error::temp(format!(
            "still running after {} s ({why}): killed, with every process it started",
            limit.as_secs()
        )));
    }
    match status {
        Ok(s) if s.success() => Ok(took),
        Ok(s) => Err(match (s.code(), s.signal()) {
            (Some(78), _) => {
                Error::config("exited 78 (EX_CONFIG): its own configuration needs an admin")
            }
            (Some(c), _) => Error::temp(format!("exited with status {c}")),
            (None, sig) => Error::temp(format!("killed by signal {}", sig.unwrap_or(0))),
        }),
        Err(e) => Err(Error::temp(format!("cannot wait for it: {e}"))),
    }
}

/// Has the child exited? Leaves it unreaped (WNOWAIT), so its process group id stays reserved
/// until [`std::process::Child::wait`].
fn has_exited(pid: libc::pid_t) -> bool {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: our own child, a valid out-pointer.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: filled in by waitid (zero when no child has changed state).
    r != 0 || unsafe { info.si_pid() } != 0
}

/// One message from a pump: a line, or the end of a stream with how many lines were not sent.
enum Msg {
    Line { is_err: bool, text: String },
    End { dropped: usize, is_err: bool },
}

/// Reads one of the hook's streams to its end: the first lines go to the log, the rest is only
/// counted, so a hook that floods its output costs bounded memory.
fn pump(mut pipe: Box<dyn Read + Send>, is_err: bool, tx: &mpsc::Sender<Msg>) {
    let mut buf = [0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let (mut cut, mut sent, mut dropped) = (false, 0, 0);
    let mut emit = |line: &mut Vec<u8>, cut: &mut bool| {
        if sent < MAX_LOGGED_LINES {
            let mut text = String::from_utf8_lossy(line)
                .trim_end_matches('\r')
                .to_string();
            if *cut {
                text.push('…');
            }
            let _ = tx.send(Msg::Line { is_err, text });
            sent += 1;
        } else {
            dropped += 1;
        }
        line.clear();
        *cut = false;
    };
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                emit(&mut line, &mut cut);
            } else if line.len() < MAX_LINE {
                line.push(b);
            } else {
                cut = true;
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line, &mut cut);
    }
    let _ = tx.send(Msg::End { dropped, is_err });
}

/// Logs what the pumps send, each line prefixed with the hook's name (and, like every log line,
/// scrubbed of the secret, tokens masked, control characters escaped).
struct Output<'a> {
    name: &'a str,
    open: usize,
}

impl Output<'_> {
    fn take(&mut self, rx: &mpsc::Receiver<Msg>, wait: Duration) {
        if self.open == 0 {
            std::thread::sleep(wait);
            return;
        }
        match rx.recv_timeout(wait) {
            Ok(Msg::Line {
                is_err: false,
                text,
            }) => info!("hook {}: {text}", self.name),
            Ok(Msg::Line { is_err: true, text }) => warn!("hook {}: {text}", self.name),
            Ok(Msg::End { dropped, is_err }) => {
                self.open -= 1;
                if dropped > 0 {
                    let stream = if is_err { "stderr" } else { "stdout" };
                    warn!(
                        "hook {}: {dropped} more lines on {stream} not logged",
                        self.name
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => self.open = 0,
        }
    }
}
