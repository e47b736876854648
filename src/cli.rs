//! The command line: every flag, each also a `WXTOKEN_*` variable (never the secret).
//!
//! The `WXTOKEN_*` variables are how the systemd units configure wxtoken; the secret is deliberately NOT one of them (argv and the
//! environment are visible to other processes and end up in logs).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::api::{Api, TicketType};

pub const DEFAULT_OUT: &str = "/var/lib/wxtoken/access_token.json";

#[derive(Debug, Parser)]
#[command(
    name = "wxtoken",
    version,
    about = "Keeps one WeChat / WeCom access token fresh in a file that local apps read",
    after_help = "Exit status: 0 ok, 2 usage, 73 output not writable, 75 temporary failure \
                  (try again), 78 configuration error (an admin must act)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Read settings from FILE as systemd's EnvironmentFile= does (/etc/wxtoken/wxtoken.conf on a
    /// host without systemd): a flag, then its variable, then the file. Unknown keys are refused.
    #[arg(long, global = true, env = crate::conffile::ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log warnings and errors only: a healthy run prints nothing (for cron).
    #[arg(short, long, global = true, env = "WXTOKEN_QUIET",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
}

// Parsed once per process: the size of the biggest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
// A timer tick parses `refresh` alone: the other subcommands' arguments are built only when one
// of them is run (or by `Command::build`, for `--config` and the man pages).
#[command(defer = true)]
pub enum Command {
    /// Refresh the token file if it is missing, stale or close to expiry (run by the timer).
    Refresh(RefreshCmd),
    /// Check the token file, the ticket files and the last runs, as a monitoring plugin: exit 0 OK,
    /// 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Reads only: no lock, no network, never the token.
    Status(StatusArgs),
    /// Tell the refresher that WeChat rejected a token (errcode 40001, 42001 or 40014). Needs no
    /// privilege beyond reading the token file: it leaves a request in the request directory
    /// beside the output, which wxtoken.path turns into a refresh run within seconds.
    ReportStale(ReportArgs),
    /// Check the configuration as the service will see it (takes refresh's flags and variables):
    /// one PASS / FAIL / SKIP line per item, every item checked. Exit 0 when nothing failed, 78
    /// otherwise. Writes nothing (the write test creates and removes a temp file).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct RefreshCmd {
    #[command(flatten)]
    pub args: RefreshArgs,

    /// Stay in the foreground and run every SECONDS, each run exactly a timer's (same lock,
    /// decisions and files), for supervisors and containers without systemd. A report of the
    /// current token is acted on within a second; SIGTERM or SIGINT ends it after the run under
    /// way (exit 0); a temporary failure is retried 30 s later; a configuration error exits 78.
    #[arg(long, env = "WXTOKEN_EVERY", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub every: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub refresh: RefreshArgs,

    /// Also fetch a token (stable API, normal mode: harmless) and probe it, writing nothing. With
    /// --api legacy or wecom a fetch would retire the current token, so the token in the file is
    /// only probed, unless --yes-retire-current-token is given too.
    #[arg(long)]
    pub online: bool,

    /// With --online and --api legacy or wecom: fetch anyway, although the fetch retires the token
    /// the file holds (and any other program's for this appid) 5 minutes later.
    #[arg(long, requires = "online")]
    pub yes_retire_current_token: bool,

    /// The systemd unit that runs refresh with these settings: its StateDirectory= and
    /// ReadWritePaths= (drop-ins included) must cover every output directory. wxtoken@NAME for an
    /// instance; "none" skips this item.
    #[arg(long, value_name = "NAME", default_value = "wxtoken.service")]
    pub unit: String,

    /// Look for the unit files under this directory instead of / (e.g. a DESTDIR staging).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub unit_root: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The token file the rejected token came from.
    #[arg(long = "out", env = "WXTOKEN_OUT", value_name = "PATH", value_delimiter = ',',
          default_value = DEFAULT_OUT)]
    pub outs: Vec<PathBuf>,

    /// Hex SHA-256 of the rejected token (PHP: hash('sha256', $token)); "-" reads the token
    /// itself from standard input and hashes it.
    #[arg(value_name = "DIGEST", value_parser = parse_digest)]
    pub digest: String,
}

/// The files a run writes and `status` reads, and when a token counts as fresh.
#[derive(Debug, Args)]
pub struct Files {
    /// Token file to write; repeat (or comma-separate in the variable) for more. The format follows
    /// the extension: .json (the contract), .php (returns an array), .txt (the token alone).
    #[arg(long = "out", env = "WXTOKEN_OUT", value_name = "PATH", value_delimiter = ',',
          default_value = DEFAULT_OUT)]
    pub outs: Vec<PathBuf>,

    /// Also keep a JS-SDK ticket fresh in TYPE_ticket.json beside the token file; repeat for more
    /// (jsapi, wx_card for Official Accounts; jsapi, agent_config for WeCom).
    #[arg(
        long = "ticket",
        env = "WXTOKEN_TICKETS",
        value_name = "TYPE",
        value_delimiter = ',',
        value_enum
    )]
    pub tickets: Vec<TicketType>,

    /// A token is fresh while more than this many seconds of validity remain; `refresh` renews it
    /// (and each ticket) once no more than this is left.
    #[arg(long, env = "WXTOKEN_MARGIN", value_name = "SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=7000))]
    pub margin: u64,
}

// The shared Files help speaks for refresh, which writes; status only reads.
#[derive(Debug, Args)]
#[command(
    mut_arg("outs", |a| a.help(
        "Token file to check (the first .json; its directory holds the run state and tickets)"
    )),
    mut_arg("tickets", |a| a.help(
        "Also check the JS-SDK ticket file TYPE_ticket.json beside the token file; repeat for more"
    )),
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub files: Files,

    /// WARNING when the token has less than this left. Healthy, it never drops below the margin
    /// minus a timer tick (about 240 s with the defaults).
    #[arg(
        long,
        env = "WXTOKEN_WARN",
        value_name = "SECONDS",
        default_value_t = 180
    )]
    pub warn: u64,

    /// CRITICAL when the token (or a ticket) has less than this left.
    #[arg(
        long,
        env = "WXTOKEN_CRIT",
        value_name = "SECONDS",
        default_value_t = 60
    )]
    pub crit: u64,

    /// One JSON object instead of the plugin line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// AppID of the Official Account / Mini Program (WeCom: the corpid).
    #[arg(long, env = "WXTOKEN_APPID")]
    pub appid: Option<String>,

    /// File holding the AppSecret (WeCom: the corpsecret). Default:
    /// $CREDENTIALS_DIRECTORY/wxtoken-secret when it exists (systemd LoadCredential=).
    #[arg(long, env = "WXTOKEN_SECRET_FILE", value_name = "PATH")]
    pub secret_file: Option<PathBuf>,

    #[command(flatten)]
    pub files: Files,

    /// Which token API to call.
    #[arg(long, env = "WXTOKEN_API", value_enum, default_value_t = Api::Stable)]
    pub api: Api,

    /// Base URLs, comma-separated, tried in order when one is unreachable or fails
    /// [default: https://api.weixin.qq.com,https://api2.weixin.qq.com; wecom: https://qyapi.weixin.qq.com]
    #[arg(
        long,
        env = "WXTOKEN_API_BASE",
        value_name = "URL[,URL...]",
        value_delimiter = ','
    )]
    pub api_base: Vec<String>,

    /// Fetch now even when the file is still fresh (stable: WeChat returns the same token until
    /// its last 5 minutes). A run that waited for another run's refresh does not fetch again.
    #[arg(long, env = "WXTOKEN_FORCE", value_parser = clap::builder::BoolishValueParser::new())]
    pub force: bool,

    /// Rotate now: stable asks for force_refresh:true (a new token, the old one dies at once;
    /// WeChat allows 20 a day, 30 s apart, and wxtoken keeps to that); legacy and WeCom fetch.
    #[arg(long, env = "WXTOKEN_FORCE_NEW", value_parser = clap::builder::BoolishValueParser::new())]
    pub force_new: bool,

    /// Check with WeChat (GET /cgi-bin/get_api_domain_ip) that the token still works when the
    /// last check is older than this, so a token killed by another program is replaced even when
    /// no app reports it. 0: only on reports. 300 costs at most 288 probes a day.
    #[arg(long, env = "WXTOKEN_PROBE_EVERY", value_name = "SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub probe_every: u64,

    /// Limit for one HTTP request (connect, TLS, whole response).
    #[arg(long, env = "WXTOKEN_TIMEOUT", value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,

    /// Upper bound for the whole run: lock wait, retries and fallback bases included.
    #[arg(long, env = "WXTOKEN_MAX_TIME", value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_time: u64,

    /// How many times a failed round over all base URLs is repeated (with backoff).
    #[arg(long, env = "WXTOKEN_RETRIES", value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,

    /// Also write Prometheus metrics (text format, atomically) to this file after every run, e.g.
    /// /var/lib/prometheus/node-exporter/wxtoken.prom for node_exporter's textfile collector.
    #[arg(long, env = "WXTOKEN_METRICS", value_name = "PATH")]
    pub metrics: Option<PathBuf>,

    /// Extra trusted CA certificates (PEM), e.g. a TLS-inspecting proxy's; added to the system's.
    #[arg(long, env = "WXTOKEN_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Mode of the written files, in octal.
    #[arg(long, env = "WXTOKEN_MODE", value_name = "OCTAL", default_value = "0640",
          value_parser = parse_mode)]
    pub mode: u32,

    /// Group of the written files: a group name or number. Default: the process's group.
    #[arg(long, env = "WXTOKEN_GROUP", value_name = "GROUP")]
    pub group: Option<String>,

    /// Command run after the token or a ticket changed (repeatable; hooks run in order). Not run
    /// by a shell: split into words like sh, nothing expanded, the program an absolute path. In
    /// the variable, separate commands with an unquoted ';' or a newline. It gets WXTOKEN_FILE,
    /// WXTOKEN_APPID, WXTOKEN_EXPIRES_AT... in its environment, never the token or the secret.
    #[arg(long = "on-change", env = "WXTOKEN_ON_CHANGE", value_name = "CMD")]
    pub on_change: Vec<String>,

    /// Fleet mode: coordinate with the other hosts of this account through Redis
    /// (redis://HOST[:PORT][/DB], rediss:// for TLS; a user name may come before an @, never a
    /// password). One host fetches per refresh window; every host writes its files from Redis.
    #[arg(long, env = "WXTOKEN_REDIS", value_name = "URL")]
    pub redis: Option<String>,

    /// File holding the Redis password. Default: $CREDENTIALS_DIRECTORY/wxtoken-redis-password when
    /// it exists (systemd LoadCredential=). Never on the command line, in the URL or a variable.
    #[arg(long, env = "WXTOKEN_REDIS_PASSWORD_FILE", value_name = "PATH")]
    pub redis_password_file: Option<PathBuf>,

    /// Never call WeChat: only mirror the fleet's token from Redis into this host's files
    /// (staging and test hosts that share the production appid).
    #[arg(long, env = "WXTOKEN_FOLLOWER", value_parser = clap::builder::BoolishValueParser::new())]
    pub follower: bool,

    /// When Redis cannot be reached, fetch from WeChat on this host's own (off by default: with
    /// the legacy or WeCom API a lone fetch retires the token every other host serves).
    #[arg(long, env = "WXTOKEN_REDIS_FALLBACK_FETCH",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub redis_fallback_fetch: bool,

    /// Also keep the token in Redis where an SDK's cache looks for it: wechatpy[:PREFIX],
    /// silenceper[:PREFIX], wxjava[:PREFIX], yii2[:KEYPREFIX[:KEY]] (repeatable; needs --redis).
    #[arg(
        long = "publish",
        env = "WXTOKEN_PUBLISH",
        value_name = "FORMAT[:...]",
        value_delimiter = ','
    )]
    pub publish: Vec<String>,
}

fn parse_digest(s: &str) -> Result<String, String> {
    let d = s.to_ascii_lowercase();
    if d == "-" || crate::api::is_digest(&d) {
        Ok(d)
    } else {
        Err(format!(
            "'{s}' is not a hex SHA-256 of the token (64 hex digits; PHP: hash('sha256', $token)); \
             give - to pass the token itself on stdin"
        ))
    }
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("'{s}' is not an octal mode like 0640"))?;
    if mode > 0o777 {
        return Err(format!(
            "'{s}' has bits beyond 0777; give permission bits only, like 0640"
        ));
    }
    if mode & 0o600 != 0o600 {
        return Err(format!(
            "'{s}' must let the owner read and write (0600 at least)"
        ));
    }
    if mode & 0o002 != 0 {
        return Err(format!(
            "'{s}' would let anyone overwrite the token; use 0640"
        ));
    }
    Ok(mode)
}

/// The exit status for a command-line error: 3 (UNKNOWN) for `status`, which monitoring runs and
/// would otherwise read 2 as CRITICAL; 2 for the others, as clap and getopt tools do.
pub fn usage_exit_code(args: &[std::ffi::OsString]) -> u8 {
    match args.get(1).and_then(|a| a.to_str()) {
        Some("status") => 3,
        _ => 2,
    }
}

/// Prints a parse error (or the help or version asked for) as clap does, and exits: 0 for help
/// and version, `usage` (from [`usage_exit_code`]) for an error.
pub fn exit_on_parse_error(e: clap::Error, usage: u8) -> ! {
    if !e.use_stderr() {
        e.exit();
    }
    let _ = e.print();
    std::process::exit(usage.into())
}

// The domain's enums as command-line values: their names and help live here, so `api` knows
// nothing of clap.
impl clap::ValueEnum for Api {
    fn value_variants<'a>() -> &'a [Self] {
        &Api::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            Api::Stable => {
                "POST /cgi-bin/stable_token (normal mode): every caller gets the same token; \
                 recommended"
            }
            Api::Legacy => {
                "GET /cgi-bin/token: every fetch issues a new token and retires the old one after \
                 5 minutes"
            }
            Api::Wecom => {
                "GET /cgi-bin/gettoken on the WeCom host; --appid is the corpid, the secret the \
                 corpsecret"
            }
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

impl clap::ValueEnum for TicketType {
    fn value_variants<'a>() -> &'a [Self] {
        &TicketType::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            TicketType::Jsapi => {
                "JS-SDK signature ticket (Official Account: getticket?type=jsapi; WeCom: \
                 get_jsapi_ticket)"
            }
            TicketType::WxCard => "Card ticket, Official Accounts only (getticket?type=wx_card)",
            TicketType::AgentConfig => "WeCom agent JS-SDK ticket (ticket/get?type=agent_config)",
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}
