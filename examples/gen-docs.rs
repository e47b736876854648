//! Writes the man pages and shell completions generated from wxtoken's own clap definitions, so
//! they cannot drift from the flags: `cargo run --example gen-docs -- [OUTDIR]` creates
//! OUTDIR/man/wxtoken.1 (+ wxtoken-SUBCOMMAND.1) and OUTDIR/completions/{wxtoken.bash,_wxtoken,
//! wxtoken.fish}. OUTDIR defaults to target/assets in the repository, where `cargo deb` takes them
//! from (Cargo.toml's assets) and `make install` too (its ASSETS); `make` and `make deb` run this.
//! Kept out of the binary, whose size is a goal.
//!
//! Each page has clap_mangen's sections (NAME, SYNOPSIS, DESCRIPTION, OPTIONS, SUBCOMMANDS,
//! VERSION) and four more written here: ENVIRONMENT (every `WXTOKEN_*` variable, taken from the
//! clap arguments' `env`, so it lists exactly what `--help` shows), EXIT STATUS, FILES and
//! EXAMPLES. The exit statuses and the files are written once, in the tables below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{Roff, bold, italic, roman};

/// Exit statuses, by page (the subcommand's name; "wxtoken" for wxtoken.1).
fn exit_statuses(page: &str) -> &'static [(&'static str, &'static str)] {
    const USAGE: (&str, &str) = (
        "2",
        "Usage error: an unknown flag or a bad value (clap's standard status).",
    );
    const CANT_CREATE: (&str, &str) = (
        "73",
        "Cannot write: an output, its lock or temp file (permissions, read-only or full file \
         system, a symlink, FIFO, directory or device at the path). Nothing was fetched; the old \
         file is intact. The systemd unit retries after 30 s.",
    );
    const TEMPFAIL: (&str, &str) = (
        "75",
        "Temporary failure: network, timeout, HTTP 5xx, WeChat busy or over quota, a reply that \
         failed validation, the lock held past --max-time, Redis unreachable in fleet mode, a \
         ticket or an --on-change hook that failed. Try again later: the systemd unit retries \
         after 30 s, refresh --every after 30 s.",
    );
    const CONFIG: (&str, &str) = (
        "78",
        "Configuration error, an admin must act: wrong secret or appid (errcode 40001, 40125, \
         40013), IP not whitelisted (40164: the message names the IP), a missing, unreadable or \
         too-open secret file, a bad setting, an unknown key or malformed line in the --config \
         file, no trust store. The systemd unit is not retried and stays failed until the next \
         tick.",
    );
    match page {
        "refresh" => &[
            (
                "0",
                "The token file holds a token of this appid and API with more than the margin \
                 left, and every --ticket was fine. With --every: SIGTERM or SIGINT ended it \
                 after the current write.",
            ),
            USAGE,
            CANT_CREATE,
            TEMPFAIL,
            CONFIG,
        ],
        "check" => &[
            ("0", "No item failed."),
            USAGE,
            (
                "78",
                "At least one item failed (its line says FAIL and why).",
            ),
        ],
        "report-stale" => &[
            (
                "0",
                "Reported; or the file already holds another token (nothing is reported: read \
                 the file again).",
            ),
            ("2", "Usage error, e.g. a DIGEST that is not 64 hex digits."),
            (
                "73",
                "The request directory beside the token file is missing or not writable (has \
                 wxtoken refresh run there? is this user in the files' group?).",
            ),
            (
                "78",
                "No .json --out, or standard input does not hold a token (DIGEST -).",
            ),
        ],
        "status" => &[
            (
                "0",
                "OK: the token has at least --warn left and the last run succeeded.",
            ),
            (
                "1",
                "WARNING: less than --warn left, the last refreshes failed, or the last probe \
                 found the token dead before its time.",
            ),
            (
                "2",
                "CRITICAL: the token file is missing, corrupt or expired, has less than --crit \
                 left, or WeChat rejects its token; a listed ticket is missing, expired or under \
                 --crit.",
            ),
            (
                "3",
                "UNKNOWN: the file cannot be read (the message names the group to join); or a \
                 usage error, --warn below --crit included, as monitoring plugins do.",
            ),
        ],
        _ => &[
            (
                "0",
                "Success (status: OK; 1 WARNING, 2 CRITICAL, 3 UNKNOWN as a monitoring plugin).",
            ),
            USAGE,
            CANT_CREATE,
            TEMPFAIL,
            CONFIG,
        ],
    }
}

/// The files wxtoken reads and writes: the same list on every page.
const FILES: &[(&str, &str)] = &[
    (
        "/etc/wxtoken/wxtoken.conf",
        "Settings: WXTOKEN_*=value lines, read by the systemd units (EnvironmentFile=) and by \
         --config. No secret: WXTOKEN_SECRET_FILE names the secret file. An instance wxtoken@NAME \
         reads /etc/wxtoken/NAME.conf.",
    ),
    (
        "/etc/wxtoken/secret",
        "The AppSecret (WeCom: the corpsecret) alone: root 0600 under systemd (handed over as the \
         credential wxtoken-secret), the service user's 0600 under cron. Instances: \
         /etc/wxtoken/NAME.secret.",
    ),
    (
        "/var/lib/wxtoken/access_token.json",
        "The token (default --out), wxtoken:wxtoken 0640 in a 0750 directory: members of group \
         wxtoken read it. Instances: /var/lib/wxtoken/NAME/.",
    ),
    (
        "/var/lib/wxtoken/TYPE_ticket.json",
        "A JS-SDK ticket (--ticket TYPE), beside the token file.",
    ),
    (
        "/var/lib/wxtoken/requests/",
        "Apps' reports of a rejected token (mode 01730): an empty file named after the token's \
         SHA-256.",
    ),
    (
        "/var/lib/wxtoken/.wxtoken-state.json",
        "The run state beside the token file: the last runs, probes, budgets; read by status.",
    ),
    (
        "/var/lib/wxtoken/.wxtoken.lock",
        "The lock (flock) each run takes in each output directory, mode 0600.",
    ),
    (
        "wxtoken.timer, wxtoken.path, wxtoken.service",
        "The systemd units: a run every minute, and one when a report appears in requests/; \
         wxtoken@NAME.timer, .path, .service for more accounts.",
    ),
    (
        "/etc/cron.d/wxtoken",
        "On hosts without systemd: refresh --config /etc/wxtoken/wxtoken.conf --quiet every \
         minute, as user wxtoken.",
    ),
    (
        "/usr/share/doc/wxtoken/README.md",
        "The full documentation (/usr/local/share/doc/wxtoken/README.md after make install).",
    ),
];

/// Examples, by page: (what it does, the command).
fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "refresh" => &[
            (
                "A run with the systemd unit's settings, user and secret:",
                "systemctl start wxtoken.service",
            ),
            (
                "By hand, as any user, with its own files:",
                "wxtoken refresh --appid wx1234567890abcdef --secret-file ~/secret \
                 --out ~/wx/access_token.json",
            ),
            (
                "What /etc/cron.d/wxtoken runs every minute, as user wxtoken:",
                "wxtoken refresh --config /etc/wxtoken/wxtoken.conf --quiet",
            ),
            (
                "A container sidecar: a run every 60 s in the foreground until SIGTERM:",
                "wxtoken refresh --every 60",
            ),
            (
                "Rotate the token now (after a leak):",
                "wxtoken refresh --config /etc/wxtoken/wxtoken.conf --force-new",
            ),
        ],
        "status" => &[
            (
                "The plugin line and state (as a member of group wxtoken):",
                "wxtoken status --ticket jsapi",
            ),
            (
                "Settings from the configuration file, thresholds of its own:",
                "wxtoken status --config /etc/wxtoken/wxtoken.conf --warn 600 --crit 300",
            ),
            ("One JSON object:", "wxtoken status --json"),
        ],
        "report-stale" => &[
            (
                "The token itself on standard input, as the web server's user:",
                "printf '%s' \"$token\" | runuser -u www-data -- wxtoken report-stale -",
            ),
            (
                "The token's SHA-256, for an instance's file:",
                "wxtoken report-stale --out /var/lib/wxtoken/shop/access_token.json DIGEST",
            ),
        ],
        "check" => &[
            (
                "As the systemd service would run it (as root):",
                "systemd-run --quiet --pipe --wait -p User=wxtoken -p \
                 LoadCredential=wxtoken-secret:/etc/wxtoken/secret -p \
                 EnvironmentFile=/etc/wxtoken/wxtoken.conf /usr/bin/wxtoken check --online",
            ),
            (
                "On a cron host, as the service's user:",
                "runuser -u wxtoken -- wxtoken check --config /etc/wxtoken/wxtoken.conf \
                 --online --unit none",
            ),
        ],
        _ => &[
            (
                "Refresh now under systemd:",
                "systemctl start wxtoken.service",
            ),
            ("Is the token fresh?", "wxtoken status"),
            (
                "Check the configuration (see wxtoken-check(1) for the service's view):",
                "wxtoken check --config /etc/wxtoken/wxtoken.conf",
            ),
        ],
    }
}

/// Variables wxtoken reads that are not flags: (name, meaning, only on pages that call WeChat).
const OTHER_ENV: &[(&str, &str, bool)] = &[
    (
        "RUST_LOG",
        "Log level and module=level directives (default info); --quiet keeps warnings and \
         errors only.",
        false,
    ),
    (
        "CREDENTIALS_DIRECTORY",
        "Set by systemd (LoadCredential=): wxtoken-secret and wxtoken-redis-password there are \
         the default secret and Redis password files.",
        true,
    ),
    (
        "https_proxy, HTTPS_PROXY, http_proxy, all_proxy, ALL_PROXY, no_proxy, NO_PROXY",
        "The HTTP proxy, chosen as curl chooses it (http_proxy only for loopback http:// bases).",
        true,
    ),
    (
        "SSL_CERT_FILE, SSL_CERT_DIR",
        "The trust store, instead of the system's bundle (--ca-file adds to either).",
        true,
    ),
];

/// What an --on-change hook finds in its environment (never the token or the secret).
const HOOK_ENV: &[(&str, &str)] = &[
    ("WXTOKEN_FILE", "absolute path of the .json token file"),
    ("WXTOKEN_APPID, WXTOKEN_API", "the account and the API"),
    (
        "WXTOKEN_EXPIRES_AT",
        "unix seconds when the token stops working",
    ),
    ("WXTOKEN_EXPIRES_IN", "seconds left when the hook starts"),
    (
        "WXTOKEN_CHANGED",
        "what the hook has not delivered yet: token, jsapi_ticket, wx_card_ticket, \
         agent_config_ticket",
    ),
    (
        "WXTOKEN_JSAPI_TICKET_FILE, WXTOKEN_WX_CARD_TICKET_FILE, WXTOKEN_AGENT_CONFIG_TICKET_FILE",
        "each --ticket file that exists",
    ),
];

/// One `WXTOKEN_*` variable of the clap definitions.
struct EnvVar {
    flag: String,
    help: String,
    list: bool,
    default: String,
    pages: Vec<String>,
}

/// The variables of `cmd`'s arguments (and, for wxtoken.1, of every subcommand's), by name.
fn env_vars(cmd: &clap::Command, page: &str, into: &mut BTreeMap<String, EnvVar>) {
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(name) = a.get_env() else { continue };
        let flag = match (a.get_long(), a.get_short()) {
            (Some(l), _) => format!("--{l}"),
            (None, Some(s)) => format!("-{s}"),
            (None, None) => a.get_id().to_string(),
        };
        let v = into
            .entry(name.to_string_lossy().into_owned())
            .or_insert_with(|| EnvVar {
                flag,
                help: a.get_help().map(|h| h.to_string()).unwrap_or_default(),
                list: a.get_value_delimiter().is_some(),
                default: a
                    .get_default_values()
                    .iter()
                    .map(|d| d.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(","),
                pages: Vec::new(),
            });
        v.pages.push(page.to_string());
    }
    if page == "wxtoken" {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            env_vars(sub, sub.get_name(), into);
        }
    }
}

fn environment(roff: &mut Roff, cmd: &clap::Command, page: &str) {
    let mut vars = BTreeMap::new();
    env_vars(cmd, page, &mut vars);
    roff.control("SH", ["ENVIRONMENT"]);
    roff.text([roman(
        "Every flag below can be given as its variable (or as a line of the --config file); a \
         flag on the command line wins over the variable, the variable over the file. The secret \
         is never a variable: only the name of its file is.",
    )]);
    for (name, v) in &vars {
        roff.control("TP", []);
        roff.text([bold(name.as_str())]);
        let mut text = format!("{}: {}", v.flag, v.help.trim_end());
        if !text.ends_with('.') {
            text.push('.');
        }
        if v.list {
            text.push_str(" Several values: comma-separated.");
        }
        if !v.default.is_empty() {
            text.push_str(&format!(" Default: {}.", v.default));
        }
        if page == "wxtoken" {
            text.push_str(&format!(" ({})", v.pages.join(", ")));
        }
        roff.text([roman(text)]);
    }
    let calls_wechat = page == "wxtoken" || vars.contains_key("WXTOKEN_API_BASE");
    for (name, text, network) in OTHER_ENV {
        if *network && !calls_wechat {
            continue;
        }
        roff.control("TP", []);
        roff.text([bold(*name)]);
        roff.text([roman(*text)]);
    }
    if vars.values().any(|v| v.flag == "--on-change") {
        roff.control("PP", []);
        roff.text([roman(
            "An --on-change hook gets every WXTOKEN_* setting but WXTOKEN_SECRET_FILE, never the \
             token or the secret, and:",
        )]);
        for (name, text) in HOOK_ENV {
            roff.control("TP", []);
            roff.text([bold(*name)]);
            roff.text([roman(*text)]);
        }
    }
}

fn exit_status(roff: &mut Roff, page: &str) {
    roff.control("SH", ["EXIT STATUS"]);
    for (code, text) in exit_statuses(page) {
        roff.control("TP", []);
        roff.text([bold(*code)]);
        roff.text([roman(*text)]);
    }
}

fn files(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    for (path, text) in FILES {
        roff.control("TP", []);
        roff.text([italic(*path)]);
        roff.text([roman(*text)]);
    }
}

fn examples_section(roff: &mut Roff, page: &str) {
    roff.control("SH", ["EXAMPLES"]);
    for (what, command) in examples(page) {
        roff.control("PP", []);
        roff.text([roman(*what)]);
        roff.control("RS", []);
        roff.control("nf", []);
        roff.text([bold(*command)]);
        roff.control("fi", []);
        roff.control("RE", []);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "wxtoken(1), wxtoken-refresh(1), wxtoken-status(1), wxtoken-report-stale(1), \
         wxtoken-check(1), systemd.exec(5) (EnvironmentFile=), and the README \
         (/usr/share/doc/wxtoken/README.md).",
    )]);
}

/// One page: clap_mangen's sections, then ours (EXTRA, the top-level after_help, is the exit
/// statuses' short form: EXIT STATUS replaces it).
fn write_page(cmd: clap::Command, page: &str, dir: &Path) -> std::io::Result<()> {
    let has_args = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let has_version = cmd.get_version().or(cmd.get_long_version()).is_some();
    let mut ours = Roff::new();
    environment(&mut ours, &cmd, page);
    exit_status(&mut ours, page);
    files(&mut ours);
    examples_section(&mut ours, page);

    let man = Man::new(cmd);
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if has_args {
        man.render_options_section(&mut out)?;
    }
    if has_subcommands {
        man.render_subcommands_section(&mut out)?;
    }
    ours.to_writer(&mut out)?;
    if has_version {
        man.render_version_section(&mut out)?;
    }
    std::fs::write(dir.join(man.get_filename()), out)
}

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/target/assets").into()),
    );
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    // A page of a subcommand that no longer exists must not stay behind to be installed.
    for e in std::fs::read_dir(&man)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "1") {
            std::fs::remove_file(p)?;
        }
    }
    std::fs::create_dir_all(&completions)?;

    let cmd = wxtoken::cli::Cli::command();
    // wxtoken.1 and one page per subcommand (wxtoken-refresh.1, ...), as git and cargo do; built
    // first, so that each subcommand is named wxtoken-NAME and has the global flags.
    let mut top = cmd.clone().disable_help_subcommand(true);
    top.build();
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub.clone(), sub.get_name(), &man)?;
    }
    write_page(top.clone(), "wxtoken", &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "wxtoken", &completions)?;
    }
    let mut names: Vec<_> = std::fs::read_dir(&man)?
        .chain(std::fs::read_dir(&completions)?)
        .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
        .collect();
    names.sort();
    for n in names {
        println!("{n}");
    }
    Ok(())
}
