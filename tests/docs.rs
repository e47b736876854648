//! The man pages and completions come from the clap definitions (examples/gen-docs.rs), so every
//! flag the binary takes is documented and completed.

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

#[test]
fn man_pages_and_completions_cover_every_flag() {
    // Through cargo, so the generator is built from the current definitions (a filtered
    // `cargo test --test docs` does not rebuild examples).
    let out = tempfile::tempdir().unwrap();
    let ok = common::nested_cargo()
        .args(["run", "--quiet", "--example", "gen-docs", "--"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(ok.success());
    let read = |p: &str| std::fs::read_to_string(out.path().join(p)).unwrap();
    let bash = read("completions/wxtoken.bash");
    let zsh = read("completions/_wxtoken");
    let fish = read("completions/wxtoken.fish");
    for sub in ["refresh", "status", "report-stale", "check"] {
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
