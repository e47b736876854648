//! The `--publish` sink: the token and tickets in the SDKs' own keys in the fleet's Redis.

use log::{debug, error, info};

use crate::clock::unix_now;
use crate::config::fleet::FleetConfig;
use crate::error::Result;
use crate::fleet::{Fleet, ticket_key};
use crate::sdk::{Entry, Sdk};
use crate::store::TokenFile;
use crate::tickets;

use super::{Delivery, Sink};
use crate::run::Run;

/// Writes every `--publish` format's keys for `token` into the fleet's Redis, where they differ.
/// Called once per run after the files and the hooks, with the token the run ends with. Only
/// while Redis holds that same token (checked in the same script that writes): a host whose
/// token is not the fleet's, or that read it before another host replaced it, writes nothing.
pub struct SdkKeys<'a> {
    pub fc: &'a FleetConfig,
}

impl Sink for SdkKeys<'_> {
    fn deliver(&mut self, run: &mut Run, redis: Option<&mut Fleet>, d: &Delivery) -> Result<()> {
        deliver(run.cfg, self.fc, redis, d.token)
    }
}

fn deliver(
    cfg: &crate::config::Config,
    fc: &FleetConfig,
    fleet: Option<&mut Fleet>,
    token: &TokenFile,
) -> Result<()> {
    // Redis down: the run's exit status already says so; the keys are written by the next run.
    let Some(fleet) = fleet else {
        return Ok(());
    };
    let Some(seen) = fleet.seen.clone() else {
        return Ok(());
    };
    let fleet_token = serde_json::from_str::<TokenFile>(&seen).ok();
    if fleet_token.is_none_or(|f| f.access_token != token.access_token) {
        debug!("this host's token is not the fleet's: no SDK keys written");
        return Ok(());
    }
    let now = unix_now();
    let entries: Vec<Entry> = fc
        .publish
        .iter()
        .flat_map(|sdk| sdk.entries(&cfg.appid, cfg.api, token, now))
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let mut written = write(fleet, "token", &seen, &entries)?;
    // Each ticket the same way, guarded by the fleet's copy of that ticket.
    for &ty in &cfg.tickets {
        let Some(local) = tickets::read(&tickets::path_for(cfg.store.dir(), ty)) else {
            continue;
        };
        let name = ticket_key(ty);
        let Some(raw) = fleet.get(&name)? else {
            continue;
        };
        let same = fleet
            .believe_ticket(&raw, ty, &cfg.appid)
            .is_some_and(|t| t.ticket == local.ticket);
        let entries: Vec<Entry> = fc
            .publish
            .iter()
            .flat_map(|sdk| sdk.ticket_entries(&cfg.appid, cfg.api, ty, &local, now))
            .collect();
        if same && !entries.is_empty() {
            written += write(fleet, &name, &raw, &entries)?;
        }
    }
    if written > 0 {
        let names: Vec<&str> = fc.publish.iter().map(Sdk::name).collect();
        info!(
            "wrote {written} SDK key(s) in Redis at {} ({})",
            fleet.shown,
            names.join(", ")
        );
    }
    Ok(())
}

/// Writes one guarded group of SDK keys; the number written (0 when the guard moved on).
fn write(fleet: &mut Fleet, guard: &str, expected: &str, entries: &[Entry]) -> Result<i64> {
    match fleet.write_entries(guard, expected, entries) {
        Ok(-1) => {
            debug!("the fleet's {guard} changed meanwhile: the SDK keys follow it on the next run");
            Ok(0)
        }
        Ok(n) => Ok(n),
        Err(e) => {
            error!("--publish: {e}; the next run writes the SDK keys");
            Err(e)
        }
    }
}
