//! One error type for the whole run, whose kind decides the exit status.
//!
//! So systemd (and an admin's
//! script) can tell "try again later" from "a human must fix something" from "cannot write".

use std::fmt;

/// The sysexits.h codes wxtoken uses; `main` maps them to the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// EX_CANTCREAT: the output (or its lock / temp file) cannot be written. The old file is intact.
    CantCreate,
    /// EX_TEMPFAIL: network trouble, WeChat busy or over quota, a reply that failed validation.
    /// The next run (or systemd's `Restart=on-failure`) may succeed without anyone acting.
    TempFail,
    /// EX_CONFIG: something only an admin can fix (secret, appid, IP whitelist, file modes).
    Config,
    /// A ticket call said the access token is invalid (someone else refreshed it, or WeChat
    /// revoked it early). Transient: the caller refreshes the token and tries again.
    TokenRejected,
}

impl Kind {
    /// How status and metrics name it.
    pub fn class(self) -> &'static str {
        match self {
            Kind::CantCreate => "cannot write",
            Kind::TempFail | Kind::TokenRejected => "temporary",
            Kind::Config => "configuration",
        }
    }

    pub fn exit_code(self) -> u8 {
        match self {
            Kind::CantCreate => 73,
            Kind::TempFail | Kind::TokenRejected => 75,
            Kind::Config => 78,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// The WeChat errcode behind it, when WeChat answered with one (for status and metrics).
    pub errcode: Option<i64>,
    /// What the admin should do, when the message ends with it (status shows it alone, after
    /// the errcode).
    pub fix: Option<String>,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            errcode: None,
            fix: None,
        }
    }
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(Kind::Config, message)
    }
    pub fn temp(message: impl Into<String>) -> Self {
        Error::new(Kind::TempFail, message)
    }
    pub fn cant_create(message: impl Into<String>) -> Self {
        Error::new(Kind::CantCreate, message)
    }
    pub fn with_fix(self, fix: impl Into<String>) -> Self {
        Error {
            fix: Some(fix.into()),
            ..self
        }
    }
    pub fn with_errcode(self, errcode: i64) -> Self {
        Error {
            errcode: Some(errcode),
            ..self
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
