//! What reaches the journal: priorities, and one line per record whatever WeChat says.

mod common;
mod fake;

use common::{Behaviour, FakeWeChat, Site};

#[test]
fn under_the_journal_each_line_carries_its_syslog_priority() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let ok = site.refresh(&fake).env("JOURNAL_STREAM", "8:12345").run();
    ok.expect(0);
    assert!(
        ok.stderr.lines().all(|l| l.starts_with("<6>info: ")),
        "{}",
        ok.stderr
    );
    fake.set_default(Behaviour::Errcode(
        40164,
        "invalid ip 203.0.113.9, not in whitelist".into(),
    ));
    let bad = site
        .refresh(&fake)
        .arg("--force")
        .env("JOURNAL_STREAM", "8:12345")
        .run();
    bad.expect(78);
    assert!(
        bad.stderr.lines().any(|l| l.starts_with("<3>error: ")),
        "{}",
        bad.stderr
    );
    // Outside the journal: today's plain format.
    let plain = site.refresh(&fake).arg("--force").run();
    assert!(
        plain.stderr.lines().all(|l| !l.starts_with('<')),
        "{}",
        plain.stderr
    );
    assert!(
        plain
            .stderr
            .contains("error: WeChat answered errcode 40164")
    );
}

#[test]
fn an_errmsg_with_a_newline_cannot_forge_a_log_line() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fake.set_default(Behaviour::Errcode(
        40013,
        "invalid appid\n<6>info: refreshed 80_FORGED for wx1234567890abcdef".into(),
    ));
    let r = site.refresh(&fake).env("JOURNAL_STREAM", "8:1").run();
    r.expect(78);
    let forged: Vec<_> = r.stderr.lines().filter(|l| l.contains("FORGED")).collect();
    assert_eq!(forged.len(), 1, "{}", r.stderr);
    assert!(forged[0].starts_with("<3>error: "), "{}", forged[0]);
    assert!(
        forged[0].contains("invalid appid\\n<6>info"),
        "{}",
        forged[0]
    );
}

/// Started with stdout and stderr closed (a careless cron line, `>&-`), a run must not let a file
/// it opens take descriptor 1 or 2: its log lines would be written into that file.
#[test]
fn closed_stdout_and_stderr_never_receive_a_file() {
    use std::os::unix::process::CommandExt;
    let fake = FakeWeChat::start();
    let site = Site::new();
    let mut cmd = site.refresh(&fake).env("RUST_LOG", "debug").command();
    // SAFETY: close(2) only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            libc::close(2);
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    assert_eq!(status.code(), Some(0));
    let token: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&site.out).unwrap()).expect("token file is JSON");
    assert!(token["access_token"].is_string());
    let dir = site.state_dir();
    let state = std::fs::read(dir.join(".wxtoken-state.json")).unwrap();
    serde_json::from_slice::<serde_json::Value>(&state).expect("state file is JSON");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
            assert!(
                !text.contains("info: ") && !text.contains("debug: "),
                "{path:?}: {text}"
            );
        }
    }
    common::fault(
        "process",
        "started with stdout and stderr closed (a cron line's >&- 2>&-), RUST_LOG=debug",
        "exit 0; token and state files valid JSON, no log line in any file of the directory",
    );
}
