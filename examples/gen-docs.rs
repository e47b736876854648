//! Writes the man pages and shell completions generated from wxtoken's own clap definitions, so
//! they cannot drift from the flags: `cargo run --example gen-docs -- OUTDIR` creates
//! OUTDIR/man/wxtoken.1 (+ wxtoken-SUBCOMMAND.1) and OUTDIR/completions/{wxtoken.bash,_wxtoken,wxtoken.fish}.
//! `make install` and the .deb install them; kept out of the binary, whose size is a goal.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "target/assets".into()),
    );
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
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
