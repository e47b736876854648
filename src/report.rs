//! `wxtoken report-stale`: an app tells the refresher that WeChat rejected a token.
//!
//! The app cannot write the token file, so it leaves a request: an empty file named after the
//! token's SHA-256 in the request directory beside the output. The refresher acts on it only if
//! the digest names the token the file holds now, and probes before it fetches.

use std::process::ExitCode;

use crate::cli::ReportArgs;
use crate::error::{Error, Result};

pub fn run(_args: &ReportArgs) -> Result<ExitCode> {
    Err(Error::config("report-stale is not built yet"))
}
