//! The one pass over the settings that `refresh` and `check` both make.
//!
//! Through [`Config::from_args`] for `refresh`, directly for `check`: every item is checked, each problem is kept with the item it belongs
//! to, and a [`Config`] is built only when there is none. `check` prints the findings and adds
//! only what needs this host or the network; it never checks an item a second way.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::{Api, TicketType};
use crate::cli::RefreshArgs;
use crate::config::fleet;
use crate::config::hooks::{self, Hook};
use crate::config::{
    Base, Config, base_list, check_appid, check_group_usable, load_ca_file, no_proxy_matches,
    parse_base, proxy_choice, read_credential, resolve_group, secret_path, user_name,
};
use crate::error::{Error, Result};
use crate::store::atomic::dir_of;
use crate::store::run_state::{self, RunState};
use crate::store::{LOCK_NAME, Store};

/// What one item of the configuration was found to be.
#[derive(Debug)]
pub struct Finding {
    /// The setting, named as `wxtoken check` names it: `appid`, `secret`, `base`, `redis`...
    pub item: &'static str,
    /// What was found (for a PASS line), or what is wrong and what to do about it.
    pub outcome: std::result::Result<String, Error>,
    /// The file the item names (the secret, a hook's program), for the checks `wxtoken check`
    /// makes on this host as the service's user.
    pub file: Option<PathBuf>,
}

/// Every configuration problem of a run, each with its item, in the order of the settings.
#[derive(Debug)]
pub struct Problems(pub Vec<(&'static str, Error)>);

impl Problems {
    /// The items with a problem, each once, in order.
    pub fn items(&self) -> Vec<&'static str> {
        let mut items: Vec<&'static str> = Vec::new();
        for (item, _) in &self.0 {
            if !items.contains(item) {
                items.push(item);
            }
        }
        items
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("no configuration problem"),
            // One problem reads as it always did: its own message says what to do.
            [(_, e)] => f.write_str(&e.message),
            all => {
                write!(f, "{} configuration problems, fix each: ", all.len())?;
                for (i, (item, e)) in all.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}[{item}] {}", e.message)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Problems {}

/// A run refuses on any problem; its exit status is the first one's (78: an admin must act).
impl From<Problems> for Error {
    fn from(p: Problems) -> Error {
        let kind =
            p.0.first()
                .map_or(crate::error::Kind::Config, |(_, e)| e.kind);
        Error::new(kind, p.to_string())
    }
}

/// The findings of [`validate`], and the [`Config`] when nothing is wrong.
pub struct Checked {
    pub findings: Vec<Finding>,
    pub config: Option<Config>,
    /// The group the files get when `--group` names one this user may give, for the write tests
    /// of `check` (None: the process's own, also when `--group` is wrong, so that those tests do
    /// not fail again for the reason reported under `group`).
    pub gid: Option<u32>,
    /// Some base URL needs TLS (or could not be read): the system's trust store matters.
    pub needs_trust: bool,
    /// How many certificates `--ca-file` adds to the system's.
    pub extra_certs: usize,
    /// The hooks that parsed, for `check` to look at their programs.
    pub hooks: Vec<Hook>,
}

impl Checked {
    pub(super) fn empty() -> Checked {
        Checked {
            findings: Vec::new(),
            config: None,
            gid: None,
            needs_trust: false,
            extra_certs: 0,
            hooks: Vec::new(),
        }
    }

    pub(super) fn pass(&mut self, item: &'static str, text: impl Into<String>) {
        self.findings.push(Finding {
            item,
            outcome: Ok(text.into()),
            file: None,
        });
    }

    pub(super) fn fail(&mut self, item: &'static str, e: Error) {
        self.findings.push(Finding {
            item,
            outcome: Err(e),
            file: None,
        });
    }

    /// Records `r` under `item` (described by `describe` when good) and hands back its value.
    pub(super) fn take<T>(
        &mut self,
        item: &'static str,
        r: Result<T>,
        describe: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        match r {
            Ok(v) => {
                self.pass(item, describe(&v));
                Some(v)
            }
            Err(e) => {
                self.fail(item, e);
                None
            }
        }
    }

    /// Every problem found, with its item.
    pub fn problems(&self) -> Problems {
        Problems(
            self.findings
                .iter()
                .filter_map(|f| match &f.outcome {
                    Err(e) => Some((f.item, e.clone())),
                    Ok(_) => None,
                })
                .collect(),
        )
    }

    fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.outcome.is_err())
    }
}

/// Checks every setting of `args` and builds the [`Config`] when all are good. Reads the secret,
/// the CA file and the Redis password file; writes nothing and connects nowhere.
pub fn validate(args: &RefreshArgs) -> Checked {
    let mut c = Checked::empty();
    let api = args.api;
    let appid = c.take("appid", check_appid(args.appid.as_deref(), api), |id| {
        format!("{id} ({} API)", api.name())
    });
    let secret = secret(&mut c, args);
    let bases = bases(&mut c, &args.api_base, api, &|k| std::env::var(k).ok());
    let ca = match &args.ca_file {
        None => {
            c.pass("ca-file", "none given: the system's trust store only");
            Some((Vec::new(), None))
        }
        Some(path) => c
            .take("ca-file", load_ca_file(path), |(certs, _)| {
                format!(
                    "{}: {} certificate(s), added to the system's trust store",
                    path.display(),
                    certs.len()
                )
            })
            .map(|(certs, pem)| (certs, Some(pem))),
    };
    c.extra_certs = ca.as_ref().map_or(0, |(certs, _)| certs.len());
    let mut tickets: Vec<TicketType> = Vec::new();
    for &t in &args.files.tickets {
        let r = t.check(api);
        let ok = r.is_ok();
        c.take("ticket", r, |()| {
            format!("{} with the {} API", t.name(), api.name())
        });
        if ok && !tickets.contains(&t) {
            tickets.push(t);
        }
    }
    let gid = group(&mut c, args.group.as_deref());
    c.gid = gid.flatten();
    let for_appid = appid.as_deref().unwrap_or("(no appid)");
    let store = Store::new(&args.files.outs, args.mode, c.gid)
        .and_then(|s| distinct(&own_paths(&s, &tickets), for_appid).map(|()| s));
    let store = c.take("out", store, |s| {
        format!(
            "{} output(s); the state and tickets go beside {}",
            s.outs.len(),
            s.primary.display()
        )
    });
    let ca_pem = ca.as_ref().and_then(|(_, pem)| pem.as_deref());
    // The fleet's namespace is made of the appid and the secret; when either is wrong the
    // namespace is never used (no Config is built), the fleet's own settings are still checked.
    let fleet = fleet::check(
        &mut c,
        args,
        appid.as_deref().unwrap_or(""),
        secret.as_ref().map_or("", |(s, _)| s.as_str()),
        ca_pem,
    );
    c.hooks = on_change(&mut c, &args.on_change);
    match &args.metrics {
        None => c.pass("metrics", "none given: no metrics file is written"),
        Some(p) => {
            let mut paths = store
                .as_ref()
                .map_or_else(Vec::new, |s| own_paths(s, &tickets));
            paths.push((p.clone(), "--metrics".into()));
            c.take("metrics", distinct(&paths, for_appid), |()| {
                format!(
                    "{}: Prometheus text format, replaced after every run",
                    p.display()
                )
            });
        }
    }
    if c.failed() {
        return c;
    }
    // Every item without a value has its problem recorded above.
    let (
        Some(appid),
        Some((secret, secret_source)),
        Some(bases),
        Some((ca_certs, _)),
        Some(_),
        Some(store),
        Some(fleet),
    ) = (appid, secret, bases, ca, gid, store, fleet)
    else {
        return c;
    };
    c.config = Some(Config {
        appid,
        secret,
        secret_source,
        api,
        bases,
        margin: args.files.margin,
        force: args.force,
        force_new: args.force_new,
        probe_every: args.probe_every,
        timeout: Duration::from_secs(args.timeout),
        max_time: Duration::from_secs(args.max_time),
        retries: args.retries,
        ca_certs,
        store,
        tickets,
        hooks: c.hooks.clone(),
        metrics: args.metrics.clone(),
        fleet,
    });
    c
}

/// Every path a run writes or keeps (the outputs, the ticket files, the run state, each output
/// directory's lock, the request directory and what is set aside of it), each with what it is.
fn own_paths(store: &Store, tickets: &[TicketType]) -> Vec<(PathBuf, String)> {
    let dir = store.dir();
    let mut paths: Vec<(PathBuf, String)> = Vec::new();
    for (out, _) in &store.outs {
        paths.push((out.clone(), "--out".into()));
    }
    for t in tickets {
        paths.push((
            crate::store::ticket_file::path_for(dir, *t),
            format!("the {} ticket file", t.name()),
        ));
    }
    paths.push((RunState::path(dir), "the run state".into()));
    paths.push((
        dir.join(run_state::REQUESTS_DIR),
        "the request directory".into(),
    ));
    paths.push((
        dir.join(run_state::SET_ASIDE_DIR),
        "where unremovable requests are set aside".into(),
    ));
    for (out, _) in &store.outs {
        let lock = dir_of(out).join(LOCK_NAME);
        if !paths.iter().any(|(p, _)| *p == lock) {
            paths.push((lock, "a lock file".into()));
        }
    }
    paths
}

/// The file a path names, as far as it can be told before anything is written: the canonical
/// directory (when it exists: `..` and links resolved) and the name.
fn file_key(path: &std::path::Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or(abs.clone()),
        _ => abs,
    }
}

/// Err naming the first two paths of `paths` that are one file: each would overwrite the other
/// on every run, each run "succeeding".
fn distinct(paths: &[(PathBuf, String)], appid: &str) -> Result<()> {
    let keys: Vec<PathBuf> = paths.iter().map(|(p, _)| file_key(p)).collect();
    for (i, key) in keys.iter().enumerate() {
        if let Some(j) = keys[..i].iter().position(|k| k == key) {
            let ((a, what_a), (b, what_b)) = (&paths[j], &paths[i]);
            let change = if what_b == "--metrics" {
                "--metrics"
            } else {
                "--out (or --ticket)"
            };
            return Err(Error::config(format!(
                "{what_b} {} is the same file as {what_a} {} (appid {appid}): wxtoken would \
                 overwrite one with the other on every run. Every file wxtoken writes needs a \
                 path of its own: change {change}",
                b.display(),
                a.display()
            )));
        }
    }
    Ok(())
}

/// The secret and where it came from, for messages (never the secret itself).
fn secret(c: &mut Checked, args: &RefreshArgs) -> Option<(String, String)> {
    let (path, from_credential) = match secret_path(args.secret_file.as_deref()) {
        Ok(found) => found,
        Err(e) => {
            c.fail("secret", e);
            return None;
        }
    };
    let from = if from_credential {
        "$CREDENTIALS_DIRECTORY, i.e. the unit's LoadCredential="
    } else {
        "--secret-file / WXTOKEN_SECRET_FILE"
    };
    let outcome = match read_credential(&path, "secret") {
        Ok(secret) => Ok(secret),
        Err(e) => Err(Error::new(e.kind, format!("{e} (from {from})"))),
    };
    let secret = c.take("secret", outcome, |_| {
        format!(
            "{} (from {from}): readable by this user, not by others; one word (not shown)",
            path.display()
        )
    });
    if let Some(last) = c.findings.last_mut() {
        last.file = Some(path.clone());
    }
    // systemd's copy under /run/credentials is not what an admin edits: name the source instead.
    let source = if from_credential {
        format!(
            "the file the unit's LoadCredential={}:... names (/etc/wxtoken/secret, or \
             /etc/wxtoken/NAME.secret for wxtoken@NAME)",
            super::CREDENTIAL_NAME
        )
    } else {
        path.display().to_string()
    };
    secret.map(|s| (s, source))
}

/// Each base URL, and the proxy that reaches it, as one `base` item. None when any is wrong.
fn bases(
    c: &mut Checked,
    given: &[String],
    api: Api,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Vec<Base>> {
    let mut bases = Vec::new();
    let mut all = true;
    for s in base_list(given, api) {
        let mut base = match parse_base(s) {
            Ok(b) => b,
            Err(e) => {
                c.needs_trust = true;
                c.fail("base", e);
                all = false;
                continue;
            }
        };
        c.needs_trust |= base.https;
        match proxy_choice(&base, env) {
            Ok(Some((var, proxy))) => {
                c.pass(
                    "base",
                    format!(
                        "{}: through the proxy {}:{} (from {var})",
                        base.url,
                        proxy.host(),
                        proxy.port()
                    ),
                );
                base.proxy = Some(proxy);
            }
            Ok(None) => {
                let bypass = env("no_proxy")
                    .or_else(|| env("NO_PROXY"))
                    .is_some_and(|list| no_proxy_matches(&list, &base.host));
                let how = if bypass {
                    "direct (no_proxy / NO_PROXY matches)"
                } else {
                    "direct (no proxy variable applies)"
                };
                c.pass("base", format!("{}: {how}", base.url));
            }
            Err(e) => {
                let e = Error::new(e.kind, format!("{}: {e}", base.url));
                c.fail("base", e);
                all = false;
                continue;
            }
        }
        bases.push(base);
    }
    all.then_some(bases)
}

/// `--group`: Some(None) when none is given (the process's group), Some(Some(gid)) when it may
/// be given to the files, None when it is wrong.
fn group(c: &mut Checked, group: Option<&str>) -> Option<Option<u32>> {
    let Some(group) = group else {
        // SAFETY: only reads the process's credentials.
        let egid = unsafe { libc::getegid() };
        c.pass(
            "group",
            format!("none given: the files get this process's group, gid {egid}"),
        );
        return Some(None);
    };
    let checked = resolve_group(group).and_then(|gid| check_group_usable(group, gid).map(|()| gid));
    c.take("group", checked, |gid| {
        // SAFETY: only reads the process's credentials.
        let euid = unsafe { libc::geteuid() };
        let user = user_name(euid).unwrap_or_else(|| euid.to_string());
        format!("{group} (gid {gid}): user {user} may give it to the files")
    })
    .map(Some)
}

/// `--on-change`: each value on its own, so that every wrong one is reported; a command given
/// twice runs once.
fn on_change(c: &mut Checked, specs: &[String]) -> Vec<Hook> {
    let mut all: Vec<Hook> = Vec::new();
    for spec in specs {
        let hooks = match hooks::parse(std::slice::from_ref(spec)) {
            Ok(h) => h,
            Err(e) => {
                c.fail("on-change", e);
                continue;
            }
        };
        for hook in hooks {
            if all.iter().any(|h| h.argv == hook.argv) {
                continue;
            }
            c.findings.push(Finding {
                item: "on-change",
                outcome: Ok(format!(
                    "{:?}: {} run without a shell, with {} argument(s), after the token or a \
                     ticket changed",
                    hook.text,
                    hook.argv[0],
                    hook.argv.len() - 1
                )),
                file: Some(PathBuf::from(&hook.argv[0])),
            });
            all.push(hook);
        }
    }
    if specs.iter().all(|s| s.trim().is_empty()) {
        c.pass("on-change", "none given: no hook runs");
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_problem_keeps_its_message_several_are_each_named() {
        let one = Problems(vec![("appid", Error::config("no appid: set --appid"))]);
        assert_eq!(one.to_string(), "no appid: set --appid");
        let two = Problems(vec![
            ("appid", Error::config("no appid: set --appid")),
            ("redis", Error::config("--follower needs --redis URL")),
            ("redis", Error::config("again")),
        ]);
        let e = Error::from(two);
        assert_eq!(e.kind, crate::error::Kind::Config);
        assert!(e.message.starts_with("3 configuration problems"), "{e}");
        assert!(e.message.contains("[appid] no appid: set --appid"), "{e}");
        assert!(e.message.contains("[redis] --follower needs"), "{e}");
        assert_eq!(
            Problems(vec![
                ("appid", Error::config("a")),
                ("redis", Error::config("b")),
                ("appid", Error::config("c")),
            ])
            .items(),
            ["appid", "redis"]
        );
    }
}
