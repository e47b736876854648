//! `wxtoken`: parses the command line, runs the subcommand, and maps its result to an exit status.

use std::process::ExitCode;

use clap::Parser;
use wxtoken::cli::{Cli, Command};

fn main() -> ExitCode {
    // A usage error is printed by clap and exits 2, as every clap/getopt tool does.
    let cli = Cli::parse();
    wxtoken::logging::init();
    let result = match &cli.command {
        Command::Refresh(args) => wxtoken::run::refresh(args),
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
