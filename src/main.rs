//! Parses the command line, runs the subcommand, maps its result to an exit status.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use wxtoken::cli::{Cli, Command};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A usage error is printed by clap and exits 2, as every clap/getopt tool does; for `status`
    // it exits 3, a monitoring plugin's UNKNOWN (2 would read as CRITICAL).
    let usage = wxtoken::cli::usage_exit_code(&args);
    let mut cmd = Cli::command();
    // The settings file's values become the flags' defaults: a flag, then its variable, win.
    if let Some(path) = wxtoken::conffile::find_path(&args) {
        cmd = match wxtoken::conffile::apply(cmd, &path) {
            Ok(cmd) => cmd,
            // A typo in the file must not be ignored: 78, as any configuration error.
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(78);
            }
        };
    }
    let cli = cmd
        .try_get_matches_from_mut(args)
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m))
        .unwrap_or_else(|e| wxtoken::cli::exit_on_parse_error(e.format(&mut cmd), usage));
    // The parser's tree is freed by the process's exit, not node by node: a timer tick lives two
    // milliseconds, and dropping the tree was a tenth of the instructions of a fresh tick.
    std::mem::forget(cmd);
    wxtoken::logging::init(cli.quiet);
    let result = match &cli.command {
        Command::Refresh(r) => match r.every {
            Some(period) => wxtoken::run::every(&r.args, period),
            None => wxtoken::run::refresh(&r.args),
        },
        Command::Status(args) => wxtoken::status::run(args),
        Command::ReportStale(args) => wxtoken::report::run(args),
        Command::Check(args) => wxtoken::check::run(args),
    };
    match result {
        // Each subcommand chooses its own success statuses: refresh 0; status 0 fresh, 1 to 3
        // for the monitoring states; check 0 or 78.
        Ok(code) => code,
        // sysexits.h: 73 cannot create a file, 75 try again later, 78 an admin must fix the
        // configuration. The units retry 75 and 73 and leave 78 failed
        // (RestartPreventExitStatus=78).
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.kind.exit_code())
        }
    }
}
