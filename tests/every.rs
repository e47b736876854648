//! `wxtoken refresh --every SECONDS`: the timer's run in a foreground loop, for supervisors and
//! containers: a report acted on within a second, SIGTERM ends it with 0, a configuration error
//! with 78, a temporary failure does not end it.

mod common;
mod fake;

use std::io::Read;
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use fake::{Behaviour, FakeWeChat};

/// Waits for `what` (checked every 50 ms) at most `limit`; the time it took.
fn within(limit: Duration, mut what: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if what() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn stop(child: &mut Child, signal: i32) -> (i32, String) {
    // SAFETY: kill(2) on the child's pid.
    unsafe { libc::kill(child.id() as i32, signal) };
    let exited = within(Duration::from_secs(10), || {
        child.try_wait().ok().flatten().is_some()
    });
    if exited.is_none() {
        let _ = child.kill();
        panic!("--every did not stop within 10 s of signal {signal}");
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code().unwrap_or(-1), err)
}

#[test]
fn a_report_is_acted_on_within_a_second_and_sigterm_ends_it_with_0() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    // An hour between runs: only the report can bring the second run.
    let mut child = site.refresh(&fake).args(&["--every", "3600"]).spawn();
    let first = within(Duration::from_secs(10), || site.out.exists());
    assert!(first.is_some(), "no token file after the first run");
    let old = site.token();
    fake.revoke(&old);
    Cmd::new(&["report-stale", "--out", site.out.to_str().unwrap()])
        .arg(&wxtoken::api::digest(&old))
        .run()
        .expect(0);
    let took = within(Duration::from_secs(5), || {
        site.out.exists() && site.token() != old
    });
    let Some(took) = took else {
        let _ = child.kill();
        panic!("the report was not acted on within 5 s");
    };
    show(&format!(
        "MEASURED --every: report to new token in {:.2} s",
        took.as_secs_f64()
    ));
    assert!(fake.is_valid(&site.token()));
    let (code, err) = stop(&mut child, libc::SIGTERM);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stopped by a signal"), "{err}");
}

#[test]
fn sigint_ends_it_with_0_too() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let mut child = site.refresh(&fake).args(&["--every", "3600"]).spawn();
    assert!(within(Duration::from_secs(10), || site.out.exists()).is_some());
    let (code, err) = stop(&mut child, libc::SIGINT);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_configuration_error_ends_it_with_78() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let run = site
        .refresh(&fake)
        .args(&["--every", "1", "--appid", "not an appid"])
        .run_bounded(Duration::from_secs(10));
    assert!(!run.killed, "still looping after a configuration error");
    assert_eq!(run.run.code, 78, "{}", run.run.stderr);
}

#[test]
fn a_temporary_failure_does_not_end_it() {
    let fake = FakeWeChat::start();
    fake.set_default(Behaviour::Status(500, vec![], "down".into()));
    let site = Site::new();
    let mut child = site
        .refresh(&fake)
        .args(&["--every", "1", "--retries", "0"])
        .spawn();
    // With WeChat down every run fails (75): the loop goes on and tries again.
    let retried = within(Duration::from_secs(10), || fake.token_calls() >= 3);
    assert!(retried.is_some(), "{} token calls", fake.token_calls());
    assert!(child.try_wait().unwrap().is_none(), "the loop ended");
    fake.set_default(Behaviour::Normal);
    assert!(
        within(Duration::from_secs(5), || site.out.exists()).is_some(),
        "no token once WeChat answered again"
    );
    let (code, _) = stop(&mut child, libc::SIGTERM);
    assert_eq!(code, 0);
}

#[test]
fn zero_is_refused_as_a_usage_error() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).args(&["--every", "0"]).run().expect(2);
}
