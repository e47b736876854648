//! Obtain: one interface for where a token or ticket comes from, two sources behind it.
//!
//! The sources: WeChat directly, or the fleet of hosts that share a token through Redis. The run
//! never asks which one it has.

mod fleet;
mod wechat;

use std::path::Path;

use crate::api::TicketType;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::plan::{Current, Plan};
use crate::store::TokenFile;
use crate::tickets::TicketFile;

use super::Run;

/// The token a run ends with, how that went, and whether this run fetched it.
pub struct Obtained {
    pub token: TokenFile,
    /// Err when the token was written but is not good enough for exit 0 (no more than the
    /// margin left): tickets and hooks still use it.
    pub outcome: Result<()>,
    pub fetched: bool,
}

/// The run asks a source at each step; a source that cannot act at a step says so by what it
/// returns, never by the run asking which kind of source it is.
pub trait Source {
    /// Before the decision: what others know that the file does not (another host's newer token,
    /// its probe verdict, a report forwarded to the fleet).
    fn sync(
        &mut self,
        _run: &mut Run,
        _file: &mut Option<TokenFile>,
        _reports: &mut Vec<String>,
        _now: u64,
    ) -> Result<()> {
        Ok(())
    }

    /// The plan as this host may carry it out (a host that may not call WeChat keeps what it
    /// has, or waits for a host that may).
    fn admit(&mut self, _run: &mut Run, plan: Plan, _now: u64) -> Result<Plan> {
        Ok(plan)
    }

    /// Asks WeChat whether `cur` still works: Fresh or Fetch.
    fn probe(&mut self, run: &mut Run, cur: Current, why: &str, reported: bool, now: u64) -> Plan;

    /// A token better than `current` (None: the file holds none), written to the files.
    fn token(
        &mut self,
        run: &mut Run,
        current: Option<Current>,
        why: &str,
        rotate: bool,
    ) -> Result<Obtained>;

    /// Before a ticket's decision: what the file at `path` should hold now.
    fn ticket_sync(
        &mut self,
        _run: &mut Run,
        _ty: TicketType,
        _path: &Path,
        local: Option<TicketFile>,
        _now: u64,
    ) -> Option<TicketFile> {
        local
    }

    /// A new ticket of type `ty`, fetched with `token`, written to its file.
    fn ticket(
        &mut self,
        run: &mut Run,
        ty: TicketType,
        token: &str,
        current: Option<&TicketFile>,
    ) -> Result<()>;

    /// A failure that decides the exit status once the run has done what it still could.
    fn deferred(&mut self) -> Option<Error> {
        None
    }

    /// The fleet's Redis connection, for the SDK keys the token is delivered to.
    fn redis(&mut self) -> Option<&mut Fleet> {
        None
    }
}

/// The source the configuration asks for.
pub fn for_config(cfg: &Config) -> Box<dyn Source + '_> {
    match &cfg.fleet {
        Some(fc) => Box::new(fleet::FleetSource::new(fc)),
        None => Box::new(wechat::Direct::default()),
    }
}
