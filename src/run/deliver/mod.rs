//! Deliver: one list of sinks, built from the configuration, fed the token the run ends with.
//!
//! The token and ticket files are not sinks: they are written as soon as a token is obtained,
//! because with the legacy API the fetch has already retired the token the files held, and a run
//! killed before writing must leave no file that claims a dead token is alive.

mod hooks;
mod sdk_keys;

use crate::config::Config;
use crate::error::Result;
use crate::fleet::Fleet;
use crate::store::TokenFile;

use super::Run;

/// What every sink is given.
pub struct Delivery<'a> {
    /// The token the files hold at the end of the run.
    pub token: &'a TokenFile,
    /// This run fetched it (rather than keeping or taking it from the fleet).
    #[allow(dead_code)]
    pub fetched: bool,
}

/// A destination for the token. A sink's failure never undoes the files; it decides the exit
/// status after the token's and the tickets' own.
pub trait Sink {
    fn deliver(&mut self, run: &mut Run, redis: Option<&mut Fleet>, d: &Delivery) -> Result<()>;
}

/// The sinks this configuration names, in the order they are fed: the `--on-change` hooks, then
/// the SDK keys in the fleet's Redis (`--publish`).
pub fn for_config(cfg: &Config) -> Vec<Box<dyn Sink + '_>> {
    let mut sinks: Vec<Box<dyn Sink + '_>> = vec![Box::new(hooks::Hooks)];
    if let Some(fc) = cfg.fleet.as_ref().filter(|fc| !fc.publish.is_empty()) {
        sinks.push(Box::new(sdk_keys::SdkKeys { fc }));
    }
    sinks
}
