use std::process::ExitCode;

use clap::Parser;
use wxtoken::cli::{Cli, Command};

fn main() -> ExitCode {
    // clap prints usage errors itself and exits 2 (EX_USAGE would be 64; 2 is what every
    // clap/getopt tool uses, and the README documents it).
    let cli = Cli::parse();
    wxtoken::logging::init();
    let result = match &cli.command {
        Command::Refresh(args) => wxtoken::refresh::run(args),
        // 0: the token has more than the margin left; 1: it does not (missing, expired, due).
        Command::Status(args) => {
            return if wxtoken::status::run(args) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match result {
        // 0: the file holds a token with more than the margin left.
        Ok(()) => ExitCode::SUCCESS,
        // 73 / 75 / 78 (sysexits.h): cannot write / try again later / an admin must fix config.
        // systemd's unit retries 75 and leaves 78 failed (RestartPreventExitStatus=78).
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.kind.exit_code())
        }
    }
}
