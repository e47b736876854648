//! The `--on-change` hooks as a sink of the run.
//!
//! Each hook that has not yet delivered what the files hold
//! runs now (the hooks and their memory of what they delivered live in `crate::hooks`).

use crate::error::Result;
use crate::fleet::Fleet;
use crate::run::Run;

use super::{Delivery, Sink};

/// Always in the list: with no hook configured, it forgets what removed hooks had pending.
pub struct Hooks;

impl Sink for Hooks {
    fn deliver(&mut self, run: &mut Run, _redis: Option<&mut Fleet>, d: &Delivery) -> Result<()> {
        crate::hooks::deliver(run.cfg, &mut run.st, d.token, &run.deadline)
    }
}
