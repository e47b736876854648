//! wxtoken: one central refresher for a WeChat / WeCom access token that local apps read.
//!
//! Data flows one way, and no module imports one above it:
//! - `cli` (flags and `WXTOKEN_*` variables; `conffile` for `--config`) → `config` (every setting
//!   checked in one pass, `config::validate`, which `check` prints and `refresh` refuses on) →
//! - `run`: lock → read (`store`) → decide (`plan`, pure) → obtain (`run::obtain`: a `Source`,
//!   WeChat directly or the fleet through Redis) → deliver (`run::deliver`: the sinks, hooks and
//!   SDK keys) → the run state and `metrics`. `run::every` repeats that run in the foreground.
//! - `status`, `check` and `report` (report-stale) are the other subcommands.
//!
//! Below them: `wechat` (the HTTP client) and `tickets`; `fleet` (the Redis client) and `sdk`
//! (the SDKs' key formats); `hooks` (running `--on-change` commands); `store` (token files, ticket
//! files, the run state, the lock, atomic writes); `trust` (root certificates); `accounts` (NSS
//! users and groups); `api`, `clock` and `text` (the words everyone shares); `deadline`, `error`,
//! `logging`.

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
