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
