//! wxtoken: one central refresher for a WeChat / WeCom access token, writing a file that local
//! apps read instead of each fetching (and invalidating) tokens themselves.
//!
//! Modules by responsibility: `cli` (flags and `WXTOKEN_*` variables), `config` (checking them),
//! `wechat` (HTTP client, validation, errcodes, retries), `store` (lock, state, atomic writes,
//! formats), `tickets` (JS-SDK tickets on their own clock), `refresh` (the run and its decision), `status` (what the files hold), `logging` (stderr with secrets scrubbed).

pub mod cli;
pub mod config;
pub mod deadline;
pub mod error;
pub mod logging;
pub mod refresh;
pub mod status;
pub mod store;
pub mod tickets;
pub mod wechat;
