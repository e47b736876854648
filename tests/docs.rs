//! The man pages and completions come from the clap definitions (examples/gen-docs.rs), so every
//! flag the binary takes is documented and completed; the README is checked for its structure (a
//! table of contents that resolves, the production recipe before the reference, short table cells)
//! and for naming every flag and variable `--help` shows.

mod common;
mod fake;

use std::process::Command;

fn flags_of(sub: &str) -> Vec<String> {
    let out = Command::new(common::BIN)
        .args([sub, "--help"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .filter(|w| w != "--help")
        .collect()
}

const SUBCOMMANDS: [&str; 4] = ["refresh", "status", "report-stale", "check"];

/// Runs examples/gen-docs.rs into a temp directory. Through cargo, so the generator is built from
/// the current definitions (a filtered `cargo test --test docs` does not rebuild examples).
fn gen_docs() -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let ok = common::nested_cargo()
        .args(["run", "--quiet", "--example", "gen-docs", "--"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(ok.success());
    out
}

#[test]
fn man_pages_and_completions_cover_every_flag() {
    let out = gen_docs();
    let read = |p: &str| std::fs::read_to_string(out.path().join(p)).unwrap();
    let bash = read("completions/wxtoken.bash");
    let zsh = read("completions/_wxtoken");
    let fish = read("completions/wxtoken.fish");
    for sub in SUBCOMMANDS {
        let page = read(&format!("man/wxtoken-{sub}.1"));
        let flags = flags_of(sub);
        assert!(!flags.is_empty());
        for f in flags {
            // roff escapes '-' as '\-'.
            let roff = f.replace('-', "\\-");
            assert!(page.contains(&roff), "wxtoken-{sub}.1 lacks {f}");
            assert!(bash.contains(&f), "bash completion lacks {f}");
            assert!(zsh.contains(&f), "zsh completion lacks {f}");
            assert!(fish.contains(f.trim_start_matches('-')), "fish lacks {f}");
        }
    }
    assert!(
        read("man/wxtoken.1").contains("78"),
        "exit statuses in wxtoken(1)"
    );
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(out.path().join("completions/wxtoken.bash"))
        .status()
        .unwrap();
    assert!(syntax.success(), "bash completion does not parse");
}

/// The `WXTOKEN_*` names in a text, each once, in order of appearance.
fn wxtoken_variables(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (i, _) in text.match_indices("WXTOKEN_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let name = name.trim_end_matches('_').to_string();
        if name.len() > "WXTOKEN_".len() && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

fn help_of(sub: &str) -> String {
    let out = Command::new(common::BIN)
        .args([sub, "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "wxtoken {sub} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The text of a man page's section, from `.SH NAME` to the next `.SH`.
fn man_section<'a>(page: &'a str, name: &str) -> Option<&'a str> {
    let start = page.lines().position(|l| {
        l.trim_end() == format!(".SH \"{name}\"") || l.trim_end() == format!(".SH {name}")
    })?;
    let lines: Vec<&str> = page.lines().collect();
    let first = lines[start + 1..].first()?;
    let from = first.as_ptr() as usize - page.as_ptr() as usize;
    let to = lines[start + 1..]
        .iter()
        .find(|l| l.starts_with(".SH"))
        .map(|l| l.as_ptr() as usize - page.as_ptr() as usize)
        .unwrap_or(page.len());
    Some(&page[from..to])
}

#[test]
fn man_pages_have_environment_exit_status_files_and_examples() {
    let out = gen_docs();
    let read = |p: &str| std::fs::read_to_string(out.path().join(p)).unwrap();
    let pages = std::iter::once("wxtoken".to_string())
        .chain(SUBCOMMANDS.iter().map(|s| format!("wxtoken-{s}")));
    for page in pages {
        let text = read(&format!("man/{page}.1"));
        for section in ["ENVIRONMENT", "EXIT STATUS", "FILES", "EXAMPLES"] {
            let body = man_section(&text, section)
                .unwrap_or_else(|| panic!("{page}.1 has no {section} section"));
            assert!(body.trim().len() > 20, "{page}.1: {section} is empty");
        }
        let exit = man_section(&text, "EXIT STATUS").unwrap();
        assert!(
            exit.contains("\\fB0\\fR"),
            "{page}.1: no status 0 in EXIT STATUS"
        );
        let files = man_section(&text, "FILES").unwrap();
        assert!(
            files.contains("/etc/wxtoken/wxtoken.conf"),
            "{page}.1: FILES"
        );
    }
    // Every variable `--help` names (the flags' [env: ...] and the hooks' variables) is in the
    // ENVIRONMENT section of the subcommand's page, and of wxtoken.1.
    let top = read("man/wxtoken.1");
    let top_env = man_section(&top, "ENVIRONMENT").unwrap();
    for sub in SUBCOMMANDS {
        let page = read(&format!("man/wxtoken-{sub}.1"));
        let env = man_section(&page, "ENVIRONMENT").unwrap();
        let vars = wxtoken_variables(&help_of(sub));
        if sub == "refresh" {
            assert!(
                vars.len() > 20,
                "refresh --help names its variables: {vars:?}"
            );
        }
        for v in vars {
            assert!(env.contains(&v), "wxtoken-{sub}.1's ENVIRONMENT lacks {v}");
            assert!(top_env.contains(&v), "wxtoken.1's ENVIRONMENT lacks {v}");
        }
    }
    // Exit statuses as the code has them.
    let refresh = read("man/wxtoken-refresh.1");
    let exit = man_section(&refresh, "EXIT STATUS").unwrap();
    for code in ["0", "2", "73", "75", "78"] {
        assert!(
            exit.contains(&format!("\\fB{code}\\fR")),
            "refresh: no {code}"
        );
    }
    let status = read("man/wxtoken-status.1");
    let exit = man_section(&status, "EXIT STATUS").unwrap();
    for code in ["0", "1", "2", "3"] {
        assert!(
            exit.contains(&format!("\\fB{code}\\fR")),
            "status: no {code}"
        );
    }
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The README's lines outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// (level, text, anchor) of every heading, anchors as GitHub makes them: lower case, every
/// character but letters, digits, '-', '_' and spaces dropped, spaces made '-', and a repeated
/// anchor suffixed -1, -2...
fn headings(text: &str) -> Vec<(usize, String, String)> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for l in prose_lines(text) {
        let level = l.chars().take_while(|c| *c == '#').count();
        if level == 0 || level > 6 || !l[level..].starts_with(' ') {
            continue;
        }
        let title = l[level..].trim().to_string();
        let base: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.iter().filter(|s| **s == base).count();
        seen.push(base.clone());
        let anchor = if n == 0 { base } else { format!("{base}-{n}") };
        out.push((level, title, anchor));
    }
    out
}

/// The `#anchor` targets of the links in a text.
fn anchor_links(text: &str) -> Vec<String> {
    text.match_indices("](#")
        .map(|(i, _)| {
            text[i + 3..]
                .chars()
                .take_while(|c| *c != ')')
                .collect::<String>()
        })
        .collect()
}

#[test]
fn readme_contents_and_every_anchor_resolve() {
    let text = readme();
    let heads = headings(&text);
    let anchors: Vec<&str> = heads.iter().map(|(_, _, a)| a.as_str()).collect();
    // The table of contents: the section right after the title, linking every top-level section.
    let contents = text
        .split("\n## Contents\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README has a '## Contents' section");
    let toc = anchor_links(contents);
    for (level, title, anchor) in &heads {
        if *level == 2 && title != "Contents" {
            assert!(
                toc.contains(anchor),
                "the contents lack '## {title}' (#{anchor})"
            );
        }
    }
    // Every link to a heading, in the contents or elsewhere, lands on one.
    for link in anchor_links(&text) {
        assert!(
            anchors.contains(&link.as_str()),
            "#{link} is not a heading's anchor; the headings' anchors: {anchors:?}"
        );
    }
}

#[test]
fn readme_puts_production_before_the_reference() {
    let heads = headings(&readme());
    let sections: Vec<&str> = heads
        .iter()
        .filter(|(level, _, _)| *level == 2)
        .map(|(_, title, _)| title.as_str())
        .collect();
    let at = |title: &str| {
        sections
            .iter()
            .position(|s| s.starts_with(title))
            .unwrap_or_else(|| panic!("no '## {title}' in {sections:?}"))
    };
    // What it is, the contents, the quick start, production: then the reference sections.
    assert_eq!(at("Contents"), 0, "{sections:?}");
    assert_eq!(at("Quick start"), 1, "{sections:?}");
    assert_eq!(at("Production"), 2, "{sections:?}");
    for reference in [
        "Settings",
        "Exit status",
        "Files",
        "Install",
        "Monitoring",
        "Development",
    ] {
        assert!(
            at(reference) > at("Production"),
            "{reference} before Production"
        );
    }
    // The module list is one section near the end, where it can be replaced as a whole.
    assert_eq!(at("Development"), sections.len() - 1, "{sections:?}");
}

#[test]
fn readme_table_cells_stay_short() {
    let text = readme();
    for l in prose_lines(&text) {
        let row = l.trim();
        if !row.starts_with('|') {
            continue;
        }
        // Cells are split at '|' but not at an escaped '\|'.
        let mut cell = String::new();
        let mut prev = ' ';
        let mut cells = Vec::new();
        for c in row.chars() {
            if c == '|' && prev != '\\' {
                cells.push(std::mem::take(&mut cell));
            } else {
                cell.push(c);
            }
            prev = c;
        }
        for cell in cells {
            let n = cell.trim().chars().count();
            assert!(
                n <= 300,
                "a table cell of {n} characters (at most 300): {cell}"
            );
        }
    }
}

#[test]
fn readme_names_every_flag_and_variable() {
    let text = readme();
    for sub in SUBCOMMANDS {
        for flag in flags_of(sub) {
            assert!(
                text.contains(&flag),
                "the README does not mention {sub} {flag}"
            );
        }
        for var in wxtoken_variables(&help_of(sub)) {
            assert!(
                text.contains(&var),
                "the README does not mention {var} ({sub})"
            );
        }
    }
    // Facts the README states, as the code has them.
    for fact in [
        "/etc/wxtoken/wxtoken.conf",
        "/var/lib/wxtoken/access_token.json",
        "glibc 2.17",
        "docs/PACKAGING.md",
        "docs/PERFORMANCE.md",
        "docs/RELIABILITY.md",
        "contrib/seeds.md",
    ] {
        assert!(text.contains(fact), "the README lacks {fact}");
    }
}
