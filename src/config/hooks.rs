//! The `--on-change` setting: hook commands as an admin writes them, run without a shell.
//!
//! Config checks it; `hooks` runs it.

use std::path::Path;

use crate::error::{Error, Result};

/// One hook: the command as the admin wrote it (its name in the log and the run state) and the
/// words it is run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub text: String,
    pub argv: Vec<String>,
}

impl Hook {
    /// The program's file name: the prefix of its output lines in the log.
    pub fn name(&self) -> &str {
        Path::new(&self.argv[0])
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&self.argv[0])
    }
}

/// The hooks of `--on-change` (repeatable) or `WXTOKEN_ON_CHANGE`, in order. Each value holds one
/// or more commands, separated by an unquoted `;` or a newline. A command is split into words as
/// sh would split it, but nothing is expanded, so every character a shell would treat specially
/// must be quoted; the program is an absolute path. A command given twice runs once.
pub fn parse(specs: &[String]) -> Result<Vec<Hook>> {
    let mut hooks: Vec<Hook> = Vec::new();
    for spec in specs {
        let commands = split(spec).map_err(|why| {
            Error::config(format!(
                "--on-change / WXTOKEN_ON_CHANGE {spec:?}: {why}. Hooks are run without a shell \
                 (no variables, pipes, redirections or globs): quote the character, or run \
                 /bin/sh -c '...'"
            ))
        })?;
        for (text, argv) in commands {
            if !argv[0].starts_with('/') {
                return Err(Error::config(format!(
                    "--on-change / WXTOKEN_ON_CHANGE {text:?}: the program must be an absolute \
                     path (hooks are not looked up in PATH), e.g. /usr/local/lib/wxtoken/hooks/memcached"
                )));
            }
            if !hooks.iter().any(|h| h.argv == argv) {
                hooks.push(Hook { text, argv });
            }
        }
    }
    Ok(hooks)
}

type Commands = Vec<(String, Vec<String>)>;

/// Splits a hook list into commands (unquoted `;` or newline) and words, sh-style without any
/// expansion: what it accepts means the same to sh. Returns each command's text and words.
fn split(spec: &str) -> std::result::Result<Commands, String> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut start = 0;
    let mut chars = spec.char_indices().peekable();
    let end_word = |words: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' => end_word(&mut words, &mut word, &mut in_word),
            ';' | '\n' => {
                end_word(&mut words, &mut word, &mut in_word);
                if !words.is_empty() {
                    commands.push((
                        spec[start..i].trim().to_string(),
                        std::mem::take(&mut words),
                    ));
                }
                start = i + 1;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => word.push(c),
                        None => return Err("a single quote is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some(&(_, n @ ('"' | '\\' | '$' | '`'))) => {
                                word.push(n);
                                chars.next();
                            }
                            Some(&(_, '\n')) => {
                                chars.next();
                            }
                            _ => word.push('\\'),
                        },
                        Some((_, c @ ('$' | '`'))) => {
                            return Err(format!(
                                "{c:?} inside double quotes, which a shell would expand (use \
                                 single quotes for a literal {c})"
                            ));
                        }
                        Some((_, c)) => word.push(c),
                        None => return Err("a double quote is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some((_, '\n')) => {}
                    Some((_, n)) => word.push(n),
                    None => return Err("it ends with a backslash".into()),
                }
            }
            '|' | '&' | '<' | '>' | '(' | ')' | '$' | '`' | '*' | '?' | '[' | '~' | '#' => {
                return Err(format!("unquoted {c:?}"));
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut words, &mut word, &mut in_word);
    if !words.is_empty() {
        commands.push((spec[start..].trim().to_string(), words));
    }
    Ok(commands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(spec: &str) -> Vec<Vec<String>> {
        split(spec).unwrap().into_iter().map(|(_, w)| w).collect()
    }

    #[test]
    fn split_like_sh_without_expansion() {
        assert_eq!(words("/bin/a x  y"), [["/bin/a", "x", "y"]]);
        assert_eq!(
            words("/bin/sh -c 'echo a; echo $HOME' ; /bin/b \"x y\" z\\ w"),
            vec![
                vec!["/bin/sh", "-c", "echo a; echo $HOME"],
                vec!["/bin/b", "x y", "z w"]
            ]
        );
        assert_eq!(words("/a\n\n/b;;"), [["/a"], ["/b"]]);
        assert_eq!(words("/a '' \"\""), [["/a", "", ""]]);
        assert_eq!(words("/a \"q\\\"\\\\x\""), [["/a", "q\"\\x"]]);
        assert_eq!(words("/a x,y"), [["/a", "x,y"]], "commas are ordinary");
        assert!(words("  ").is_empty());
        let texts: Vec<String> = split(" /a 1 ;/b 'x;y' ")
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(texts, ["/a 1", "/b 'x;y'"]);
    }

    #[test]
    fn what_a_shell_would_expand_is_refused() {
        for bad in [
            "/a $HOME",
            "/a \"$HOME\"",
            "/a `id`",
            "/a | /b",
            "/a > f",
            "/a &",
            "/a *",
            "/a ~/x",
            "/a 'open",
            "/a \"open",
            "/a \\",
        ] {
            assert!(split(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn programs_are_absolute_and_deduplicated() {
        let specs = ["/a 1; /a  1".to_string(), "/b".to_string()];
        let hooks = parse(&specs).unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].name(), "a");
        assert!(parse(&["a".to_string()]).is_err());
        assert!(parse(&["sh -c x".to_string()]).is_err());
        assert!(parse(&[String::new()]).unwrap().is_empty());
    }
}
