//! `wxtoken check [--online]`: the configuration as the service will see it, item by item.
//!
//! Every item is checked and reported, not only the first problem: the settings by `config::validate`, the very
//! pass a refresh makes, and here only what needs this host (files and directories as the
//! service's user, the unit's writable paths, the trust store, hook programs) or the network
//! (`--online`: WeChat, the fleet's Redis). Nothing is written: the write test is a temp file
//! created and removed the way a refresh prepares one (atomic.rs), the token files are never
//! touched, no lock is taken, and `--online` keeps what it fetched to itself.

use std::fmt::Display;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::accounts;
use crate::cli::{CheckArgs, RefreshArgs};
use crate::clock::{secs_until, unix_now};
use crate::config::fleet::FleetConfig;
use crate::config::{self, Config};
use crate::deadline::Deadline;
use crate::error::Result;
use crate::fleet::Fleet;
use crate::logging::{mask, register_token, scrub};
use crate::store::atomic::{Pending, check_regular, dir_of};
use crate::store::run_state::STATE_NAME;
use crate::store::{self, Format, LOCK_NAME};
use crate::tickets;
use crate::trust;
use crate::wechat::{Client, Context, Probe, Purpose};

/// The lines printed so far and how many of each.
struct Tally {
    failed: u32,
    passed: u32,
    skipped: u32,
}

impl Tally {
    fn line(&mut self, tag: &str, item: &str, text: impl Display) {
        // Every message is built from names and paths, never from the secret; scrub anyway, as
        // the logger does, so that no future message can leak it.
        let text = scrub(&text.to_string());
        let mut out = std::io::stdout().lock();
        // A closed pipe (`wxtoken check | head -3`) is not worth a panic.
        let _ = writeln!(out, "{tag} {item}: {text}").and_then(|()| out.flush());
    }
    fn pass(&mut self, item: &str, text: impl Display) {
        self.passed += 1;
        self.line("PASS", item, text);
    }
    fn fail(&mut self, item: &str, text: impl Display) {
        self.failed += 1;
        self.line("FAIL", item, text);
    }
    fn skip(&mut self, item: &str, text: impl Display) {
        self.skipped += 1;
        self.line("SKIP", item, text);
    }
}

pub fn run(args: &CheckArgs) -> Result<ExitCode> {
    let a = &args.refresh;
    let mut r = Tally {
        failed: 0,
        passed: 0,
        skipped: 0,
    };
    // SAFETY: these calls only read the process's credentials.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let user = accounts::user_or_id(euid);
    r.line(
        "INFO",
        "user",
        format!(
            "checking as user {user} (uid {euid}), group {} (gid {egid}): run this as the \
             service's user to see what it sees",
            accounts::group_or_id(egid)
        ),
    );

    // Every setting as a refresh checks it (config::validate); what follows adds only what
    // needs this host as the service's user, or the network.
    let checked = config::validate(a);
    for f in &checked.findings {
        match &f.outcome {
            Ok(text) => match (f.item, &f.file) {
                ("secret", Some(path)) => r.pass(f.item, format!("{text}{}", owner(path))),
                ("group", _) if a.group.is_none() => {
                    r.pass(f.item, format!("{text} ({})", accounts::group_or_id(egid)))
                }
                ("on-change", Some(program)) => match runnable(program, &user) {
                    Ok(()) => r.pass(f.item, text),
                    Err(why) => r.fail(f.item, why),
                },
                _ => r.pass(f.item, text),
            },
            Err(e) => r.fail(f.item, e),
        }
        if f.item == "ca-file" {
            check_trust(&mut r, &checked);
        }
    }
    let gid = checked.gid;
    let units = if args.unit == "none" {
        r.skip(
            "unit",
            "--unit none: the unit's writable paths are not checked",
        );
        None
    } else {
        match Units::load(&args.unit_root, &args.unit) {
            Ok(found) if found.files.is_empty() => {
                r.skip(
                    "unit",
                    format!(
                        "no unit file {} under {} (systemd-analyze cat-config found none): not \
                         installed here, or give --unit NAME",
                        found.name,
                        args.unit_root.display(),
                    ),
                );
                None
            }
            Ok(found) => Some(found),
            Err(why) => {
                r.skip("unit", why);
                None
            }
        }
    };
    for dir in directories(a, gid) {
        check_dir(&mut r, &dir, units.as_ref(), &user);
    }
    if args.online {
        online(&mut r, args, &checked);
    }
    let code = if r.failed > 0 { 78 } else { 0 };
    r.line(
        "INFO",
        "result",
        format!(
            "{} failed, {} passed, {} skipped: exit {code}",
            r.failed, r.passed, r.skipped
        ),
    );
    Ok(ExitCode::from(code))
}

/// The trust store a refresh would load, read the same way; only plain http (loopback) bases
/// need none.
fn check_trust(r: &mut Tally, checked: &config::Checked) {
    if !checked.needs_trust {
        return;
    }
    let system = trust::system_roots();
    let extra = checked.extra_certs;
    if system.certs.is_empty() && extra == 0 {
        r.fail("trust", trust::missing(&system.source));
    } else {
        r.pass(
            "trust",
            format!(
                "{} root certificate(s) from the system ({}){}",
                system.certs.len(),
                system.source,
                if extra > 0 { ", and --ca-file's" } else { "" }
            ),
        );
    }
}

/// Who owns a file this user read (the secret), as `; USER:GROUP mode 0600`.
fn owner(path: &Path) -> String {
    fs::metadata(path).map_or(String::new(), |m| {
        format!(
            "; {}:{} mode {:04o}",
            accounts::user_or_id(m.uid()),
            accounts::group_or_id(m.gid()),
            m.mode() & 0o7777
        )
    })
}

/// Can this user start a hook's program? A refresh finds out only after it has written a new
/// token (and then exits 78 with the hook pending); the check says so beforehand.
fn runnable(program: &Path, user: &str) -> std::result::Result<(), String> {
    let shown = program.display();
    let meta = match fs::metadata(program) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(format!(
                "{shown} does not exist: install the hook there, or correct --on-change / \
                 WXTOKEN_ON_CHANGE"
            ));
        }
        Err(e) => return Err(format!("{shown} cannot be looked at by user {user}: {e}")),
    };
    if !meta.is_file() {
        return Err(format!(
            "{shown} is not a regular file (a program is expected)"
        ));
    }
    let Ok(c) = std::ffi::CString::new(program.as_os_str().as_bytes()) else {
        return Err(format!("{shown} holds a NUL byte"));
    };
    // SAFETY: a valid NUL-terminated path; faccessat only reads it.
    let ok = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) };
    if ok != 0 {
        return Err(format!(
            "{shown} is not executable by user {user} (chmod +x; every directory on its path \
             must be searchable)"
        ));
    }
    Ok(())
}

/// A directory a refresh writes into, and the files it writes there.
struct Dir {
    path: PathBuf,
    /// Output directories are created (and locked) by refresh; the metrics file's is not.
    outputs: bool,
    files: Vec<(PathBuf, u32, Option<u32>)>,
}

/// Every file a refresh may write, by directory: the outputs, the state and ticket files beside
/// the first .json, the metrics file.
fn directories(a: &RefreshArgs, gid: Option<u32>) -> Vec<Dir> {
    let mut files: Vec<(PathBuf, u32, Option<u32>, bool)> = Vec::new();
    for out in &a.files.outs {
        files.push((out.clone(), a.mode, gid, true));
    }
    let state = a
        .files
        .outs
        .iter()
        .find(|p| Format::of(p).is_ok_and(|f| f == Format::Json));
    if let Some(state) = state {
        let dir = dir_of(state);
        files.push((dir.join(STATE_NAME), a.mode, gid, true));
        for &t in &a.files.tickets {
            files.push((tickets::path_for(dir, t), a.mode, gid, true));
        }
    }
    if let Some(m) = &a.metrics {
        // As metrics::write writes it.
        files.push((m.clone(), 0o644, None, false));
    }
    let mut dirs: Vec<Dir> = Vec::new();
    for (path, mode, gid, outputs) in files {
        let d = dir_of(&path).to_path_buf();
        let i = match dirs.iter().position(|x| x.path == d) {
            Some(i) => i,
            None => {
                dirs.push(Dir {
                    path: d,
                    outputs: false,
                    files: Vec::new(),
                });
                dirs.len() - 1
            }
        };
        dirs[i].outputs |= outputs;
        if !dirs[i].files.iter().any(|(p, _, _)| *p == path) {
            dirs[i].files.push((path, mode, gid));
        }
    }
    dirs
}

fn check_dir(r: &mut Tally, dir: &Dir, units: Option<&Units>, user: &str) {
    let shown = dir.path.display();
    if let Some(units) = units {
        units.check(r, &dir.path);
    }
    match fs::metadata(&dir.path) {
        Ok(m) if m.is_dir() => {
            if let Err(e) = store::refuse_root_in_foreign_dir(&dir.path) {
                return r.fail("dir", e);
            }
            let owner = format!(
                "{}:{} mode {:04o}",
                accounts::user_or_id(m.uid()),
                accounts::group_or_id(m.gid()),
                m.mode() & 0o7777
            );
            let lock = if dir.outputs {
                match check_lock(&dir.path.join(LOCK_NAME)) {
                    Ok(how) => how,
                    Err(e) => return r.fail("dir", format!("{shown}: {e}")),
                }
            } else {
                ""
            };
            r.pass("dir", format!("{shown}: {owner}{lock}"));
            for (path, mode, gid) in &dir.files {
                check_file(r, path, *mode, *gid, user);
            }
        }
        Ok(_) => r.fail("dir", format!("{shown} is not a directory")),
        Err(e) if e.kind() == ErrorKind::NotFound => missing_dir(r, dir, units, user),
        Err(e) => r.fail("dir", format!("{shown}: {e}")),
    }
}

/// The lock file must be missing (a refresh creates it) or a regular file this user can open.
fn check_lock(path: &Path) -> std::result::Result<&'static str, String> {
    check_regular(path).map_err(|e| e.message)?;
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(_) => Ok("; its lock file opens"),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok("; no lock file yet"),
        Err(e) => Err(format!(
            "the lock file {} cannot be opened by this user: {e}. Was refresh run there as \
             another user? Remove it; the next run creates it",
            path.display()
        )),
    }
}

fn missing_dir(r: &mut Tally, dir: &Dir, units: Option<&Units>, user: &str) {
    let shown = dir.path.display();
    if !dir.outputs {
        return r.fail(
            "dir",
            format!("{shown} does not exist, and refresh does not create it (metrics): create it"),
        );
    }
    if let Some(sd) = units.and_then(|u| u.state_dirs.iter().find(|s| **s == dir.path)) {
        return r.pass(
            "dir",
            format!(
                "{shown} does not exist yet: systemd creates it for the service's user when the \
                 unit starts (StateDirectory={})",
                sd.strip_prefix("/var/lib").unwrap_or(sd).display()
            ),
        );
    }
    if let Err(e) = store::refuse_root_creating(&dir.path) {
        return r.fail("dir", e);
    }
    let ancestor = dir
        .path
        .ancestors()
        .skip(1)
        .find(|p| p.as_os_str().is_empty() || p.is_dir())
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("/"));
    if may_write(ancestor) {
        r.pass(
            "dir",
            format!(
                "{shown} does not exist yet; the first refresh creates it (user {user} may write \
                 {})",
                ancestor.display()
            ),
        );
    } else {
        r.fail(
            "dir",
            format!(
                "{shown} does not exist, and user {user} cannot create it ({} is not writable for \
                 it). Create it: install -d -o {user} -m 0750 {shown}",
                ancestor.display()
            ),
        );
    }
}

/// May this process's effective user create entries in `dir`? (access(2) with AT_EACCESS: the
/// effective ids, as a refresh would run; a read-only mount says EROFS.)
fn may_write(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path; faccessat only reads it.
    unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        ) == 0
    }
}

/// What is at `path` now, and whether this user can replace it: a temp file beside it, created
/// exactly as a refresh prepares one (name, mode, group, reserved space), then removed.
fn check_file(r: &mut Tally, path: &Path, mode: u32, gid: Option<u32>, user: &str) {
    let now = match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => format!("a regular file of {} bytes", m.len()),
        // A special file: the error below says what it is.
        Ok(_) => String::new(),
        Err(_) => "missing (a refresh writes it)".into(),
    };
    match Pending::create(path, mode, gid) {
        Ok(pending) => {
            drop(pending);
            let group = gid.map_or(String::new(), |g| {
                format!(", group {}", accounts::group_or_id(g))
            });
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            r.pass(
                "file",
                format!(
                    "{}: {now}; user {user} can replace it (temp file .{name}.XXXXXX.tmp with \
                     mode {mode:04o}{group} created and removed)",
                    path.display()
                ),
            )
        }
        Err(e) if now.is_empty() => r.fail("file", e),
        Err(e) => r.fail("file", format!("{e} (as user {user})")),
    }
}

/// What a unit and its drop-ins say about where the service may write. Only `StateDirectory=`,
/// `ReadWritePaths=` and `ProtectSystem=` of the `[Service]` section are read: the lines that
/// decide it for wxtoken's own units.
struct Units {
    name: String,
    /// The unit file, then its drop-ins in the order systemd applies them.
    files: Vec<PathBuf>,
    /// Absolute: /var/lib/ + each StateDirectory= entry.
    state_dirs: Vec<PathBuf>,
    read_write: Vec<PathBuf>,
    protect_system: String,
}

impl Units {
    /// The unit's files as systemd itself finds them: `systemd-analyze --root=ROOT cat-config`
    /// resolves the search path, drop-in overrides and their order without a running manager
    /// (`systemctl show` needs one, and systemd 252's `systemctl cat` refuses --root). Err: why
    /// the unit cannot be checked here.
    fn load(root: &Path, unit: &str) -> std::result::Result<Units, String> {
        let name = if unit.contains('.') {
            unit.to_string()
        } else {
            format!("{unit}.service")
        };
        // wxtoken@shop.service: the template wxtoken@.service, instance "shop" (for %i).
        let (template, instance) = match name.split_once('@') {
            Some((head, tail)) => match tail.rsplit_once('.') {
                Some((inst, suffix)) if !inst.is_empty() => {
                    (Some(format!("{head}@.{suffix}")), inst.to_string())
                }
                _ => (None, String::new()),
            },
            None => (None, String::new()),
        };
        let mut own = cat_config(root, &name)?;
        let from_template = match &template {
            Some(t) => cat_config(root, t)?,
            None => Vec::new(),
        };
        // The instance's own file if there is one, else the template's; the drop-ins of both
        // apply, ordered by file name as systemd orders them.
        let is_dropin = |p: &Path| {
            p.parent()
                .is_some_and(|d| d.extension().is_some_and(|x| x == "d"))
        };
        let (mut dropins, fragments): (Vec<_>, Vec<_>) = own
            .drain(..)
            .chain(from_template)
            .partition(|(p, _)| is_dropin(p));
        dropins.sort_by(|(a, _), (b, _)| a.file_name().cmp(&b.file_name()));
        let mut u = Units {
            name,
            files: Vec::new(),
            state_dirs: Vec::new(),
            read_write: Vec::new(),
            protect_system: "no".into(),
        };
        if let Some(fragment) = fragments.into_iter().next() {
            for (path, text) in std::iter::once(fragment).chain(dropins) {
                u.parse(&text, &instance);
                u.files.push(path);
            }
        }
        Ok(u)
    }

    fn parse(&mut self, text: &str, instance: &str) {
        let expand = |w: &str| {
            let w = w.trim_matches(|c| c == '"' || c == '\'');
            w.replace("%i", instance)
                .replace("%I", instance)
                .replace("%%", "%")
        };
        let mut in_service = false;
        let mut joined = String::new();
        for raw in text.lines() {
            let line = raw.trim();
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(head) = line.strip_suffix('\\') {
                joined.push_str(head);
                joined.push(' ');
                continue;
            }
            joined.push_str(line);
            let line = std::mem::take(&mut joined);
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if !in_service {
                continue;
            }
            let value = value.trim();
            match key.trim() {
                // An empty assignment resets the list, as in systemd.
                "StateDirectory" if value.is_empty() => self.state_dirs.clear(),
                "StateDirectory" => {
                    for w in value.split_whitespace() {
                        // "dir:symlink" (systemd 254+): the directory is the part before ':'.
                        let w = expand(w);
                        let dir = w.split(':').next().unwrap_or_default();
                        self.state_dirs.push(Path::new("/var/lib").join(dir));
                    }
                }
                "ReadWritePaths" if value.is_empty() => self.read_write.clear(),
                "ReadWritePaths" => {
                    for w in value.split_whitespace() {
                        // "-": ignored when missing; "+": relative to RootDirectory= (unused).
                        let w = expand(w);
                        self.read_write
                            .push(PathBuf::from(w.trim_start_matches(['-', '+'])));
                    }
                }
                "ProtectSystem" => self.protect_system = value.to_string(),
                _ => {}
            }
        }
    }

    /// Can the service write `dir`, as far as these lines say?
    fn check(&self, r: &mut Tally, dir: &Path) {
        let files = self
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" + ");
        let item = format!("unit {}", self.name);
        // The service's working directory is /.
        let abs = Path::new("/").join(dir);
        if self.protect_system != "strict" {
            return r.pass(
                &item,
                format!(
                    "{}: ProtectSystem={} (not strict) in {files}: not made read-only by systemd",
                    dir.display(),
                    self.protect_system
                ),
            );
        }
        if let Some(sd) = self.state_dirs.iter().find(|s| abs.starts_with(s)) {
            return r.pass(
                &item,
                format!(
                    "{}: within its StateDirectory {}",
                    dir.display(),
                    sd.display()
                ),
            );
        }
        if let Some(rw) = self.read_write.iter().find(|p| abs.starts_with(p)) {
            return r.pass(
                &item,
                format!(
                    "{}: within its ReadWritePaths= {}",
                    dir.display(),
                    rw.display()
                ),
            );
        }
        let state = self
            .state_dirs
            .iter()
            .map(|s| s.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let state = if state.is_empty() { "none" } else { &state };
        r.fail(
            &item,
            format!(
                "{} is outside its StateDirectory ({state}) and no ReadWritePaths= in {files} \
                 covers it: with ProtectSystem=strict the service cannot write there. Add a \
                 drop-in: mkdir -p /etc/systemd/system/{name}.d && printf \
                 '[Service]\\nReadWritePaths={}\\n' >> /etc/systemd/system/{name}.d/output.conf \
                 && systemctl daemon-reload",
                dir.display(),
                abs.display(),
                name = self.name,
            ),
        );
    }
}

/// The files `systemd-analyze cat-config` shows for `name` under `root`, each with its text:
/// the unit file first, then its drop-ins; none when it is not installed there.
fn cat_config(root: &Path, name: &str) -> std::result::Result<Vec<(PathBuf, String)>, String> {
    let out = std::process::Command::new("systemd-analyze")
        .arg(format!("--root={}", root.display()))
        .arg("cat-config")
        .arg(format!("systemd/system/{name}"))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => {
                "systemd-analyze not found (no systemd here?): unit not checked".to_string()
            }
            _ => format!("systemd-analyze cannot be run ({e}): unit not checked"),
        })?;
    if !out.status.success() {
        return Err(format!(
            "systemd-analyze --root={} cat-config systemd/system/{name} failed ({}: {}): unit \
             not checked",
            root.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // Each file is introduced by "# PATH" (PATH under the root); the file's own comments may
    // start with "# /" too, but not with a whole unit path without spaces.
    let prefix = root.to_string_lossy();
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let header = line.strip_prefix("# ").filter(|p| {
            p.starts_with(prefix.as_ref())
                && p.contains("/systemd/system/")
                && !p.contains(char::is_whitespace)
                && Path::new(p).is_file()
        });
        match (header, files.last_mut()) {
            (Some(p), _) => files.push((PathBuf::from(p), String::new())),
            (None, Some((_, text))) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    Ok(files)
}

/// One token fetch and one probe, with the run's own client, writing nothing: no token file, no
/// run state, no lock.
fn online(r: &mut Tally, args: &CheckArgs, checked: &config::Checked) {
    let Some(cfg) = &checked.config else {
        return r.skip(
            "online",
            format!(
                "not attempted: the configuration has errors ({})",
                checked.problems().items().join(", ")
            ),
        );
    };
    let deadline = Deadline::after(cfg.max_time);
    if let Some(fc) = &cfg.fleet {
        online_redis(r, cfg, fc, &deadline);
        if fc.follower {
            return r.skip(
                "online fetch",
                "not made: a --follower never calls WeChat; it mirrors the fleet's token from Redis",
            );
        }
    }
    let client = Client::new(cfg);
    let ctx = Context {
        appid: &cfg.appid,
        api: cfg.api,
        secret_source: &cfg.secret_source,
        purpose: Purpose::Token,
    };
    let api = cfg.api.name();
    let state = cfg.store.primary.display();
    let now = unix_now();
    let file_token = cfg
        .store
        .read_primary()
        .filter(|t| t.appid == cfg.appid && t.api == api);
    let token = if cfg.api.fetch_retires_previous() && !args.yes_retire_current_token {
        r.skip(
            "online fetch",
            format!(
                "not made: with --api {api} every fetch issues a new token and retires the current \
                 one 5 minutes later (the one in {state}, and any other program's for appid {}). \
                 Add --yes-retire-current-token to fetch anyway",
                cfg.appid
            ),
        );
        match file_token {
            Some(t) if secs_until(t.expires_at, now) > 0 => Some(t.access_token),
            _ => {
                r.skip(
                    "online probe",
                    format!(
                        "no unexpired token of appid {} in {state} to probe",
                        cfg.appid
                    ),
                );
                None
            }
        }
    } else {
        match client.fetch_token(&ctx, &cfg.secret, false, &deadline) {
            Ok(g) => {
                register_token(&g.value);
                let retired = if cfg.api.fetch_retires_previous() {
                    match &file_token {
                        Some(_) => format!(
                            ". This fetch retires the token in {state} within 5 minutes: make \
                             the service fetch now (wxtoken refresh --force with its settings)"
                        ),
                        None => ". Any other program's token for this appid dies within 5 minutes"
                            .to_string(),
                    }
                } else {
                    String::new()
                };
                r.pass(
                    "online fetch",
                    format!(
                        "{} issued {} for {} ({api} API), valid {} s: the appid, the secret and \
                         this host's IP are accepted; not written anywhere{retired}",
                        g.base,
                        mask(&g.value),
                        cfg.appid,
                        g.expires_in
                    ),
                );
                Some(g.value)
            }
            Err(e) => {
                r.fail("online fetch", e);
                None
            }
        }
    };
    let Some(token) = token else { return };
    match client.probe(&ctx, &token, &deadline) {
        Probe::Alive => r.pass(
            "online probe",
            format!("WeChat accepts {} (get_api_domain_ip)", mask(&token)),
        ),
        Probe::Dead { errcode, errmsg } => r.fail(
            "online probe",
            format!(
                "WeChat rejects {} (errcode {errcode}: {errmsg})",
                mask(&token)
            ),
        ),
        Probe::Unknown(why) => r.fail("online probe", format!("no verdict: {why}")),
    }
}

/// Connects to the fleet's Redis as a run would and reads the fleet's token, writing nothing: no
/// lock, no publish.
fn online_redis(r: &mut Tally, cfg: &Config, fc: &FleetConfig, deadline: &Deadline) {
    let mut fleet = match Fleet::connect(fc, deadline) {
        Ok(f) => f,
        Err(e) => return r.fail("online redis", e),
    };
    let key = fleet.key("token");
    let now = unix_now();
    match fleet.read(&cfg.appid, cfg.api) {
        Ok(view) => {
            let token = match (&view.token, &view.raw) {
                (Some(t), _) => {
                    register_token(&t.access_token);
                    format!(
                        "a token of appid {}, valid {} s more",
                        cfg.appid,
                        secs_until(t.expires_at, now).max(0)
                    )
                }
                (None, Some(_)) => "a value wxtoken would not serve (a fetch replaces it)".into(),
                (None, None) => "nothing yet (the fleet's first fetch writes it)".into(),
            };
            r.pass(
                "online redis",
                format!("{}: connected and read {key}: {token}", fc.shown),
            )
        }
        Err(e) => r.fail("online redis", e),
    }
}
