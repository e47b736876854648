//! Logging to stderr (journald picks it up) through a filter that scrubs secrets.
//!
//! The legacy and WeCom APIs carry the secret in the URL and the stable API in the request body;
//! HTTP and TLS libraries may log either at trace level. Rather than trusting every library's log
//! statements, every line passes through [`Redacting`], which replaces each registered secret with
//! `***` and each registered token with its masked form, whatever `RUST_LOG` says.

use std::sync::{Mutex, PoisonError};

use log::{Log, Metadata, Record};

/// What every log line is scrubbed of: each secret in every spelling it travels in (replaced by
/// `***`), and the tokens seen (replaced by their masked form).
struct Needles {
    secrets: Vec<String>,
    /// The most recent [`KEPT_TOKENS`]: a process that runs for months (`refresh --every`) sees
    /// a new token every two hours, and a token that old is dead anyway.
    tokens: std::collections::VecDeque<(String, String)>,
}

const KEPT_TOKENS: usize = 32;

static NEEDLES: Mutex<Needles> = Mutex::new(Needles {
    secrets: Vec::new(),
    tokens: std::collections::VecDeque::new(),
});

fn needles() -> std::sync::MutexGuard<'static, Needles> {
    NEEDLES.lock().unwrap_or_else(PoisonError::into_inner)
}

fn add_secret(needle: String) {
    let mut n = needles();
    if !needle.is_empty() && !n.secrets.contains(&needle) {
        n.secrets.push(needle);
        // Longest first, so a spelling that contains another is replaced whole.
        n.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Never let `secret` reach the log, in any of the spellings it travels in.
pub fn register_secret(secret: &str) {
    add_secret(secret.to_string());
    add_secret(crate::text::url_encode(secret));
    if let Ok(json) = serde_json::to_string(secret) {
        add_secret(json.trim_matches('"').to_string());
    }
}

/// Let `token` appear in the log only masked.
pub fn register_token(token: &str) {
    let mut n = needles();
    if token.is_empty() || n.tokens.iter().any(|(t, _)| t == token) {
        return;
    }
    if n.tokens.len() == KEPT_TOKENS {
        n.tokens.pop_front();
    }
    n.tokens.push_back((token.to_string(), mask(token)));
}

/// The first 6 characters and the length: enough to tell tokens apart, useless to an attacker.
pub fn mask(token: &str) -> String {
    let head: String = token.chars().take(6).collect();
    format!("{head}…({} chars)", token.len())
}

pub fn scrub(text: &str) -> String {
    let n = needles();
    let mut out = text.to_string();
    let secrets = n.secrets.iter().map(|s| (s.as_str(), "***"));
    let tokens = n.tokens.iter().map(|(t, m)| (t.as_str(), m.as_str()));
    for (needle, replacement) in secrets.chain(tokens) {
        if out.contains(needle) {
            out = out.replace(needle, replacement);
        }
    }
    out
}

/// ureq's trace level dumps the raw request bytes as hex, 16 bytes a line: the secret would arrive
/// encoded and split across lines, beyond what scrubbing can recognise. Those records are dropped.
fn is_wire_dump(record: &Record<'_>) -> bool {
    record.level() == log::Level::Trace && record.target().starts_with("ureq")
}

struct Redacting {
    filter: env_filter::Filter,
    /// stderr is the journal (`JOURNAL_STREAM` set): each line starts with its syslog priority.
    journal: bool,
    /// --quiet: nothing above warn, whatever RUST_LOG's directives allow.
    cap: log::LevelFilter,
}

impl Log for Redacting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        use std::fmt::Write as _;
        use std::io::Write as _;
        if !self.filter.matches(record) || record.level() > self.cap || is_wire_dump(record) {
            return;
        }
        let mut out = String::new();
        if self.journal {
            let _ = write!(out, "<{}>", priority(record.level()));
        }
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warn",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        out.push_str(level);
        if !record.target().starts_with("wxtoken") {
            let _ = write!(out, " [{}]", record.target());
        }
        out.push_str(": ");
        out.push_str(&one_line(&scrub(&record.args().to_string())));
        out.push('\n');
        // One write per line: lines of concurrent runs never interleave in the journal's stream.
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }

    fn flush(&self) {}
}

/// One line per record, whatever a library or WeChat put in it: an `errmsg` with a newline must not
/// forge a second log line (or a journal priority prefix).
fn one_line(text: &str) -> String {
    if !text.contains(|c: char| c.is_control()) {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => " ".to_string(),
            c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// The syslog priority journald reads from a `<N>` line prefix (sd-daemon(3)).
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Level from `RUST_LOG` (default `info`; `module=level` directives as env_logger reads them).
/// Lines read `level: message`, without timestamps: journald adds its own, and a person at a
/// terminal does not need them for a one-second run. Under systemd (stderr is the journal:
/// `JOURNAL_STREAM` set) each line also starts with its syslog priority, so
/// `journalctl -p err -u wxtoken` finds the errors.
/// `quiet` (--quiet): warnings and errors only, whatever RUST_LOG says.
pub fn init(quiet: bool) {
    let mut builder = env_filter::Builder::new();
    match std::env::var("RUST_LOG") {
        Ok(spec) => builder.parse(&spec),
        Err(_) => builder.filter_level(log::LevelFilter::Info),
    };
    let filter = builder.build();
    let cap = if quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Trace
    };
    let max = filter.filter().min(cap);
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    if log::set_boxed_logger(Box::new(Redacting {
        filter,
        journal,
        cap,
    }))
    .is_ok()
    {
        log::set_max_level(max);
    }
    if max > log::STATIC_MAX_LEVEL {
        // Cargo.toml: release builds compile debug and trace messages out (binary size), so
        // RUST_LOG=debug must not look as if nothing happened.
        log::info!(
            "RUST_LOG asks for {} messages, which this release build leaves out (it logs error, \
             warn and info); `wxtoken check` shows what a run would use, a debug build \
             (cargo build) logs everything",
            max.as_str().to_ascii_lowercase()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_cannot_forge_a_line() {
        assert_eq!(one_line("a\nerror: b"), "a\\nerror: b");
        assert_eq!(one_line("x\r<3>y\u{1b}"), "x\\r<3>y\\u{1b}");
        assert_eq!(one_line("plain"), "plain");
    }
}
