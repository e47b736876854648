//! wxtoken: one central refresher for a WeChat / WeCom access token, writing a file that local
//! apps read instead of each fetching (and invalidating) tokens themselves.
//!
//! Data flows one way: `cli` (flags and `WXTOKEN_*` variables) → `config` (checked settings) →
//! `refresh` (the run and its decision) → `wechat` (HTTP client), `store` (lock, state, formats),
//! `tickets`, then `hooks` and `sdk` (where the token goes beyond the files); `fleet` (Redis) coordinates
//! hosts around the decision. Below them all: `atomic` (the safe write and the safe read), `vocab` (API and
//! ticket kinds, the clock, token validation), `deadline`, `error`, `logging`.

pub mod accounts;
pub mod api;
pub mod check;
pub mod cli;
pub mod clock;
pub mod conffile;
pub mod config;
pub mod deadline;
pub mod error;
pub mod fleet;
pub mod hooks;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run;
pub mod sdk;
pub mod status;
pub mod store;
pub mod text;
pub mod tickets;
pub mod trust;
pub mod wechat;
