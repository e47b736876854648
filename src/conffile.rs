//! `--config FILE`: the units' settings file, read as systemd's `EnvironmentFile=` reads it.
//!
//! Without systemd (the cron file on a host without it) nothing reads `/etc/wxtoken/wxtoken.conf`
//! into the environment, so wxtoken reads it itself. Syntax as systemd's parser (env-file.c):
//! `KEY=VALUE` lines; blank lines and lines starting with `#` or `;` ignored (a comment ending in
//! a backslash goes on to the next line); blanks around the key and before the value ignored;
//! a value in `'single'` quotes is literal; in `"double"` quotes a backslash escapes `"`, `\`,
//! `` ` ``, `$` and a newline, and is kept before any other character; unquoted, a backslash
//! escapes the next character (a trailing one joins the next line) and trailing blanks are cut;
//! no `$` expansion. Stricter than systemd, which skips such lines with a warning: a line
//! without `=`, a key that is not a variable name, a key wxtoken does not know, an unterminated
//! quote, or a value its flag would refuse is an error naming the file and line (exit 78), since
//! a typo must not be silently ignored.
//!
//! Precedence: a flag, then its `WXTOKEN_*` variable, then the file: each value becomes the
//! default of the clap argument whose variable is the key, in every subcommand that has it. The
//! values are never put in the environment, which hooks inherit. The exceptions are the settings
//! wxtoken's flags do not cover but that systemd would have put in the environment for it and the
//! shipped hooks: `RUST_LOG`, the proxy variables, `SSL_CERT_FILE`/`SSL_CERT_DIR`, and the hooks'
//! `WXTOKEN_MEMCACHED`, `WXTOKEN_MYSQL_CNF`, `WXTOKEN_MYSQL_TABLE`; they are set in this process's
//! environment when not set already (the variable wins). The secret never goes in this file: a
//! `WXTOKEN_SECRET` (or any other key naming a secret or password) is refused, and so is a value
//! that looks like one (a word of 32 or more letters and digits, like an AppSecret or a WeCom
//! corpsecret); the secret has its own file, `WXTOKEN_SECRET_FILE`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The variable that names the file when `--config` is not given.
pub const ENV: &str = "WXTOKEN_CONFIG";

/// Keys read from the environment by wxtoken's code or by the shipped hooks rather than by a
/// flag: a value from the file is put in the environment, unless the variable is set already.
pub const ENVIRONMENT_KEYS: &[&str] = &[
    "RUST_LOG",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "WXTOKEN_MEMCACHED",
    "WXTOKEN_MYSQL_CNF",
    "WXTOKEN_MYSQL_TABLE",
];

/// One `KEY=VALUE` of the file, with the line its key is on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parses the text of a settings file. Err: (line, what is wrong).
pub fn parse(text: &str) -> Result<Vec<Setting>, (usize, String)> {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        Single,
        Double,
        DoubleEscape,
        Comment,
        CommentEscape,
    }
    let mut out = Vec::new();
    let mut state = S::PreKey;
    let (mut key, mut value) = (String::new(), String::new());
    let mut key_line = 1;
    let mut line = 1;
    // Length of the value before its trailing unquoted blanks (None: no trailing blanks).
    let mut value_end: Option<usize> = None;
    let mut quote_line = 0;

    let finish = |key: &mut String,
                  value: &mut String,
                  end: &mut Option<usize>,
                  at: usize,
                  out: &mut Vec<Setting>|
     -> Result<(), (usize, String)> {
        if let Some(n) = end.take() {
            value.truncate(n);
        }
        let k = key.trim_end().to_string();
        if !is_name(&k) {
            return Err((at, format!("'{k}' is not a variable name")));
        }
        out.push(Setting {
            key: k,
            value: std::mem::take(value),
            line: at,
        });
        key.clear();
        Ok(())
    };

    for c in text.chars() {
        match state {
            S::PreKey => {
                if c == '#' || c == ';' {
                    state = S::Comment;
                } else if !c.is_ascii_whitespace() {
                    state = S::Key;
                    key_line = line;
                    key.push(c);
                }
            }
            S::Key => {
                if c == '\n' || c == '\r' {
                    return Err((
                        key_line,
                        format!("'{}' has no '=' (KEY=VALUE)", key.trim_end()),
                    ));
                } else if c == '=' {
                    state = S::PreValue;
                    value_end = None;
                } else {
                    key.push(c);
                }
            }
            S::PreValue => {
                if c == '\n' || c == '\r' {
                    finish(&mut key, &mut value, &mut value_end, key_line, &mut out)?;
                    state = S::PreKey;
                } else if c == '\'' {
                    state = S::Single;
                    quote_line = line;
                } else if c == '"' {
                    state = S::Double;
                    quote_line = line;
                } else if c == '\\' {
                    state = S::ValueEscape;
                } else if !c.is_ascii_whitespace() {
                    state = S::Value;
                    value.push(c);
                }
            }
            S::Value => {
                if c == '\n' || c == '\r' {
                    finish(&mut key, &mut value, &mut value_end, key_line, &mut out)?;
                    state = S::PreKey;
                } else if c == '\\' {
                    state = S::ValueEscape;
                    value_end = None;
                } else {
                    value.push(c);
                    if !c.is_ascii_whitespace() {
                        value_end = None;
                    } else if value_end.is_none() {
                        value_end = Some(value.len() - c.len_utf8());
                    }
                }
            }
            S::ValueEscape => {
                state = S::Value;
                // An escaped newline joins the next line; anything else is taken as it is.
                if c != '\n' && c != '\r' {
                    value.push(c);
                }
            }
            S::Single => {
                if c == '\'' {
                    state = S::PreValue;
                } else {
                    value.push(c);
                }
            }
            S::Double => {
                if c == '"' {
                    state = S::PreValue;
                } else if c == '\\' {
                    state = S::DoubleEscape;
                } else {
                    value.push(c);
                }
            }
            S::DoubleEscape => {
                state = S::Double;
                if matches!(c, '"' | '\\' | '`' | '$') {
                    value.push(c);
                } else if c != '\n' {
                    value.push('\\');
                    value.push(c);
                }
            }
            S::Comment => {
                if c == '\\' {
                    state = S::CommentEscape;
                } else if c == '\n' || c == '\r' {
                    state = S::PreKey;
                }
            }
            S::CommentEscape => state = S::Comment,
        }
        if c == '\n' {
            line += 1;
        }
    }
    match state {
        S::Key => {
            return Err((
                key_line,
                format!("'{}' has no '=' (KEY=VALUE)", key.trim_end()),
            ));
        }
        S::Single | S::Double | S::DoubleEscape => {
            return Err((quote_line, "a quote is not closed".to_string()));
        }
        S::PreValue | S::Value | S::ValueEscape => {
            finish(&mut key, &mut value, &mut value_end, key_line, &mut out)?;
        }
        S::PreKey | S::Comment | S::CommentEscape => {}
    }
    Ok(out)
}

/// A variable name as systemd accepts one: letters, digits and `_`, not starting with a digit.
fn is_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why a setting may not be in the file, if it may not: the secret has its own file.
fn refused(s: &Setting) -> Option<String> {
    let k = s.key.to_ascii_uppercase();
    let names_secret = ["SECRET", "PASSWORD", "PASSWD"]
        .iter()
        .any(|w| k.contains(w));
    if names_secret && !k.ends_with("_FILE") {
        return Some(format!(
            "{} is refused: the secret stays in its own file (root:wxtoken 0640, or 0600 for \
             systemd's LoadCredential=), named by WXTOKEN_SECRET_FILE (the Redis password: \
             WXTOKEN_REDIS_PASSWORD_FILE)",
            s.key
        ));
    }
    let secret_like = s
        .value
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .any(|w| {
            w.len() >= 32
                && w.chars().any(|c| c.is_ascii_digit())
                && w.chars().any(|c| c.is_ascii_alphabetic())
        });
    if secret_like {
        return Some(format!(
            "the value of {} looks like a secret (a word of 32 or more letters and digits, like \
             an AppSecret): secrets stay in their own file, named by WXTOKEN_SECRET_FILE",
            s.key
        ));
    }
    None
}

/// The settings file named by `--config FILE` / `--config=FILE` in `args` (up to `--`), else by
/// `WXTOKEN_CONFIG`.
pub fn find_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let b = a.as_encoded_bytes();
        if b == b"--" {
            break;
        }
        if b == b"--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = b.strip_prefix(b"--config=") {
            // SAFETY: the bytes after an ASCII prefix of an OsStr's encoded bytes.
            return Some(PathBuf::from(unsafe {
                OsStr::from_encoded_bytes_unchecked(v)
            }));
        }
    }
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Reads `path` and makes its settings the defaults of `cmd`'s arguments (see the module's doc).
/// Err: the message for exit 78, naming the file and, for a bad line, its number.
pub fn apply(cmd: clap::Command, path: &Path) -> Result<clap::Command, String> {
    let text = std::fs::read(path)
        .map_err(|e| format!("--config {}: cannot read it: {e}", path.display()))?;
    let text = String::from_utf8(text)
        .map_err(|_| format!("--config {}: not UTF-8 text", path.display()))?;
    let at = |line: usize, what: &str| format!("{}:{line}: {what}", path.display());
    let settings = parse(&text).map_err(|(line, what)| at(line, &what))?;
    apply_settings(cmd, &settings, &at)
}

/// What `apply` does once the file is parsed; `at(line, what)` words an error.
pub fn apply_settings(
    mut cmd: clap::Command,
    settings: &[Setting],
    at: &dyn Fn(usize, &str) -> String,
) -> Result<clap::Command, String> {
    // Every subcommand's arguments, deferred until now, so that each key finds its flag.
    cmd.build();
    let mut seen: Vec<&str> = Vec::new();
    for s in settings {
        if let Some(why) = refused(s) {
            return Err(at(s.line, &why));
        }
        if s.key == ENV {
            return Err(at(
                s.line,
                "WXTOKEN_CONFIG cannot be set in a settings file",
            ));
        }
        if seen.contains(&s.key.as_str()) {
            // systemd takes the last; harmless, but the earlier line is dead: say so.
            return Err(at(s.line, &format!("{} is set twice in this file", s.key)));
        }
        seen.push(&s.key);
        if ENVIRONMENT_KEYS.contains(&s.key.as_str()) {
            if std::env::var_os(&s.key).is_none() {
                // SAFETY: called from main before any thread exists; these variables are read
                // by wxtoken's own code and its hooks, as systemd's EnvironmentFile= sets them.
                unsafe { std::env::set_var(&s.key, &s.value) };
            }
            continue;
        }
        let mut found = false;
        // (subcommand or "" for the top level, argument id)
        let mut targets: Vec<(String, String)> = Vec::new();
        for a in cmd.get_arguments() {
            if a.get_env() == Some(OsStr::new(&s.key)) {
                targets.push((String::new(), a.get_id().to_string()));
            }
        }
        for sc in cmd.get_subcommands() {
            for a in sc.get_arguments() {
                if a.get_env() == Some(OsStr::new(&s.key)) {
                    check_value(a, &s.value).map_err(|e| at(s.line, &format!("{}: {e}", s.key)))?;
                    targets.push((sc.get_name().to_string(), a.get_id().to_string()));
                }
            }
        }
        for (sub, id) in targets {
            found = true;
            // clap (without its "string" feature) keeps defaults as &'static str: a one-shot
            // process leaks these few bytes once.
            let value: &'static str = Box::leak(s.value.clone().into_boxed_str());
            // In place: the command is built, and mut_arg / mut_subcommand would reorder what
            // the parser has already indexed.
            let set = |a: clap::Arg| {
                if a.get_id() == id.as_str() {
                    a.default_value(value)
                } else {
                    a
                }
            };
            cmd = if sub.is_empty() {
                cmd.mut_args(set)
            } else {
                cmd.mut_subcommands(|sc| {
                    if sc.get_name() == sub {
                        sc.mut_args(set)
                    } else {
                        sc
                    }
                })
            };
        }
        if !found {
            return Err(at(
                s.line,
                &format!(
                    "unknown setting {} (a typo? `wxtoken refresh --help` lists each flag's \
                     variable)",
                    s.key
                ),
            ));
        }
    }
    Ok(cmd)
}

/// The value as the argument's own parser takes it (each part, for a comma-separated one), so a
/// bad value is reported with its line rather than as a bad default.
fn check_value(a: &clap::Arg, value: &str) -> Result<(), String> {
    let parts: Vec<&str> = match a.get_value_delimiter() {
        Some(d) => value.split(d).collect(),
        None => vec![value],
    };
    // The argument's parser (type, range, possible values) alone, on a command of its own.
    let probe = clap::Command::new("wxtoken").no_binary_name(true).arg(
        clap::Arg::new("value")
            .long("value")
            .action(clap::ArgAction::Set)
            .value_parser(a.get_value_parser().clone()),
    );
    for p in parts {
        probe
            .clone()
            .try_get_matches_from([format!("--value={p}")])
            .map_err(|e| {
                let e = e.to_string();
                let e = e.strip_prefix("error: ").unwrap_or(&e);
                let e = e.lines().next().unwrap_or("");
                e.replace(" for '--value <value>'", "").to_string()
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|s| (s.key, s.value))
            .collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn comments_blank_lines_and_blanks_around_the_key() {
        let text = "# a comment\n; another\n\n  A = 1 \n\tB=two words  \n";
        assert_eq!(kv(text), pairs(&[("A", "1"), ("B", "two words")]));
    }

    #[test]
    fn quotes_as_systemd_reads_them() {
        assert_eq!(kv("A='x y # z'"), pairs(&[("A", "x y # z")]));
        assert_eq!(
            kv(r#"A="a \"q\" \$HOME \\ \n""#),
            pairs(&[("A", r#"a "q" $HOME \ \n"#)])
        );
        // No $ expansion, quotes joined, a quote inside an unquoted value kept.
        assert_eq!(kv("A=$HOME"), pairs(&[("A", "$HOME")]));
        assert_eq!(kv("A='a' \"b\""), pairs(&[("A", "ab")]));
        assert_eq!(kv("A=x\"y\""), pairs(&[("A", "x\"y\"")]));
        // A quoted value keeps its blanks; an empty one is empty.
        assert_eq!(
            kv("A='  '\nB=\nC=\"\""),
            pairs(&[("A", "  "), ("B", ""), ("C", "")])
        );
    }

    #[test]
    fn backslashes_as_systemd_reads_them() {
        assert_eq!(kv(r"A=a\ b\#c"), pairs(&[("A", "a b#c")]));
        // A trailing backslash joins the next line, in a value and in a double-quoted value.
        assert_eq!(
            kv("A=one\\\ntwo\nB=3"),
            pairs(&[("A", "onetwo"), ("B", "3")])
        );
        assert_eq!(kv("A=\"x\\\ny\""), pairs(&[("A", "xy")]));
        // ...and in a comment: the next line is comment too.
        assert_eq!(kv("# c \\\nB=hidden\nC=1"), pairs(&[("C", "1")]));
        // A newline inside quotes is part of the value.
        assert_eq!(kv("A='1\n2'\nB=3"), pairs(&[("A", "1\n2"), ("B", "3")]));
    }

    #[test]
    fn malformed_lines_name_their_number() {
        assert_eq!(parse("A=1\n\nWXTOKEN_APPID\n").unwrap_err().0, 3);
        assert_eq!(parse("A=1\n1A=2\n").unwrap_err().0, 2);
        assert_eq!(parse("A=1\nB-C=2\n").unwrap_err().0, 2);
        let (line, what) = parse("A=1\nB='open\n\n").unwrap_err();
        assert_eq!((line, what.as_str()), (2, "a quote is not closed"));
        assert_eq!(parse("A=1\nno_equals_at_end").unwrap_err().0, 2);
    }

    #[test]
    fn line_numbers_count_continued_lines() {
        let s = parse("A='x\ny'\n# c\nB=1\n").unwrap();
        assert_eq!((s[0].line, s[1].line), (1, 4));
    }

    #[test]
    fn secrets_are_refused() {
        let s = |k: &str, v: &str| Setting {
            key: k.into(),
            value: v.into(),
            line: 1,
        };
        assert!(refused(&s("WXTOKEN_SECRET", "x")).is_some());
        assert!(refused(&s("WXTOKEN_REDIS_PASSWORD", "x")).is_some());
        assert!(refused(&s("WXTOKEN_SECRET_FILE", "/etc/wxtoken/secret")).is_none());
        assert!(refused(&s("WXTOKEN_APPID", "wx1234567890abcdef")).is_none());
        // An AppSecret's 32 hex digits, a WeCom corpsecret's 43 characters, in any key.
        assert!(refused(&s("WXTOKEN_APPID", "0123456789abcdef0123456789abcdef")).is_some());
        assert!(
            refused(&s(
                "WXTOKEN_ON_CHANGE",
                "/bin/x --key=Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789_-abcd"
            ))
            .is_some()
        );
        assert!(
            refused(&s(
                "WXTOKEN_ON_CHANGE",
                "/usr/lib/wxtoken/hooks/mysql-wx_token; /usr/lib/wxtoken/hooks/memcached"
            ))
            .is_none()
        );
    }

    #[test]
    fn config_is_found_in_argv_before_the_environment() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            find_path(&a(&["wxtoken", "refresh", "--config", "/x.conf"])),
            Some(PathBuf::from("/x.conf"))
        );
        assert_eq!(
            find_path(&a(&["wxtoken", "--config=/y.conf", "check"])),
            Some(PathBuf::from("/y.conf"))
        );
    }
}
