//! `refresh --every SECONDS`: the timer's run, repeated in the foreground.
//!
//! For hosts and containers without systemd. An app's report of the current token is acted on within a
//! second, SIGTERM or SIGINT ends the loop after the run under way.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::{error, info};

use crate::api::digest;
use crate::cli::RefreshArgs;
use crate::config::Config;
use crate::error::{Kind, Result};
use crate::store::atomic::{Found, read_capped};
use crate::store::parse_token_file;
use crate::store::run_state::REQUESTS_DIR;

/// After a temporary failure (75, 73), as the units' `RestartSec=`.
const RETRY: Duration = Duration::from_secs(30);
/// How often the loop looks for a report and a signal while it waits.
const LOOK: Duration = Duration::from_millis(250);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A run is never cut short by SIGTERM or SIGINT (a legacy fetch must reach the file): the
/// signal only ends the loop.
fn catch_stop_signals() {
    let handler: extern "C" fn(libc::c_int) = on_stop;
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe; the
        // sigaction struct is zeroed and then filled as sigaction(2) asks.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Runs `refresh` every `period` until a stop signal (exit 0) or a configuration error (78).
pub fn every(args: &RefreshArgs, period: u64) -> Result<ExitCode> {
    let period = Duration::from_secs(period.max(1));
    // A configuration error ends the loop at once: retrying cannot fix it.
    let watch = Watch::new(&Config::from_args(args)?);
    catch_stop_signals();
    info!(
        "refreshing every {} s; a report in {} is acted on within a second",
        period.as_secs(),
        watch.requests.display()
    );
    while !STOP.load(Ordering::SeqCst) {
        let wait = match super::refresh(args) {
            Ok(_) => period,
            Err(e) if e.kind == Kind::Config => return Err(e),
            Err(e) => {
                error!("{e}; trying again in {} s", RETRY.as_secs());
                RETRY.min(period)
            }
        };
        watch.wait(wait);
    }
    info!("stopped by a signal after the run under way");
    Ok(ExitCode::SUCCESS)
}

/// What the loop looks at between runs: the one name in `requests/` that matters, the digest of
/// the token the file holds now (debris under other names cannot make it run, nor hide a report).
struct Watch {
    primary: PathBuf,
    requests: PathBuf,
}

impl Watch {
    fn new(cfg: &Config) -> Watch {
        Watch {
            primary: cfg.store.primary.clone(),
            requests: cfg.store.dir().join(REQUESTS_DIR),
        }
    }

    fn reported(&self) -> bool {
        // Read without the warnings a run logs: four times a second, a broken file would fill
        // the log (the next run says what is wrong with it).
        let Ok(Found::Bytes(bytes)) = read_capped(&self.primary) else {
            return false;
        };
        parse_token_file(&bytes).is_ok_and(|t| {
            Path::new(&self.requests)
                .join(digest(&t.access_token))
                .symlink_metadata()
                .is_ok()
        })
    }

    /// Until `wait` has passed, a report of the current token arrives, or a stop signal.
    fn wait(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while !STOP.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(LOOK));
            if self.reported() {
                info!("an app reported the current token: running now");
                return;
            }
        }
    }
}
