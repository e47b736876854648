// Entered from the C runtime, without Rust's start-up: src/process.rs does what of it wxtoken
// needs, in a fraction of the time (a timer tick lives two milliseconds).
#![no_main]

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use wxtoken::cli::{Cli, Command};

#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    wxtoken::process::start();
    // SAFETY: argc and argv as the C runtime passes them to main.
    let args = unsafe { wxtoken::process::args(argc, argv) };
    wxtoken::process::finish(run(args))
}

fn run(args: Vec<std::ffi::OsString>) -> ExitCode {
    // clap prints usage errors itself and exits 2 (EX_USAGE would be 64; 2 is what every
    // clap/getopt tool uses, and the README documents it).
    let mut cmd = Cli::command();
    if let Some(path) = wxtoken::conffile::find_path(&args) {
        cmd = match wxtoken::conffile::apply(cmd, &path) {
            Ok(cmd) => cmd,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(78);
            }
        };
    }
    let mut matches = cmd
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|e| e.exit());
    let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut cmd).exit());
    // A one-shot process: the parser's tree (every subcommand's arguments) is freed by the exit,
    // not node by node (5 % of the no-op tick's instructions).
    std::mem::forget((cmd, matches));
    wxtoken::logging::init(cli.quiet);
    let result = match &cli.command {
        Command::Refresh(args) => wxtoken::refresh::run(args),
        Command::Status(args) => wxtoken::status::run(args),
        Command::ReportStale(args) => wxtoken::report::run(args),
        Command::Check(args) => wxtoken::check::run(args),
    };
    match result {
        // Each subcommand picks its own success statuses: refresh 0; status 0 fresh, 1 not.
        Ok(code) => code,
        // 73 / 75 / 78 (sysexits.h): cannot write / try again later / an admin must fix config.
        // systemd's unit retries 75 and 73, and leaves 78 failed (RestartPreventExitStatus=78).
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.kind.exit_code())
        }
    }
}
