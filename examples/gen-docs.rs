//! Writes the man pages and shell completions generated from wxtoken's own clap definitions, so
//! they cannot drift from the flags: `cargo run --example gen-docs -- [OUTDIR]` creates
//! OUTDIR/man/wxtoken.1 (+ wxtoken-SUBCOMMAND.1) and OUTDIR/completions/{wxtoken.bash,_wxtoken,
//! wxtoken.fish}. OUTDIR defaults to target/assets in the repository, where `cargo deb` takes them
//! from (Cargo.toml's assets) and `make install` too (its ASSETS); `make` and `make deb` run this.
//! Kept out of the binary, whose size is a goal.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

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
    // wxtoken.1 and one page per subcommand (wxtoken-refresh.1, ...), as git and cargo do.
    clap_mangen::generate_to(cmd.clone(), &man)?;
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
