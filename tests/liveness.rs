//! The file holds a token WeChat accepts, and nothing makes it worse: out-of-band invalidation
//! (reports, probes), clock steps, worse tokens, fetches cut short, concurrency of --force.

mod common;
mod fake;

use std::fs;
use std::time::{Duration, Instant};

use common::{Behaviour, DEFAULT_APPID, FakeWeChat, Site, edit, now, probes, report, run_state};
use serde_json::Value;
use wxtoken::api::digest;

#[test]
fn a_legacy_fetch_by_another_program_is_found_by_the_periodic_probe() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let legacy = |c: &mut common::Cmd| {
        c.args(&["--api", "legacy", "--probe-every", "1"]);
    };
    let mut c = site.refresh(&fake);
    legacy(&mut c);
    c.run().expect(0);
    let mine = site.token();
    // Another program on the account fetches with the legacy API; 5 minutes later ours is dead.
    fake.legacy_fetch_out_of_band(DEFAULT_APPID);
    fake.advance(301);
    assert!(!fake.is_valid(&mine));
    std::thread::sleep(Duration::from_millis(1100));
    let mut c = site.refresh(&fake);
    legacy(&mut c);
    c.run()
        .expect(0)
        .stderr_has("WeChat rejects the token in the file")
        .stderr_has("another program probably fetched a token for this appid with the legacy API");
    assert_eq!(probes(&fake), 1);
    assert_ne!(site.token(), mine);
    assert!(fake.is_valid(&site.token()));
    assert_eq!(run_state(&site)["last_probe"], "dead");
    // Within --probe-every of a probe (or a refresh), no probe is made.
    let mut c = site.refresh(&fake);
    c.args(&["--api", "legacy", "--probe-every", "3600"]);
    c.run().expect(0).stderr_has("still fresh");
    assert_eq!(probes(&fake), 1);
}

#[test]
fn a_report_of_the_current_token_probes_then_replaces_a_dead_one() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let old = site.token();
    // WeChat revokes it; stable normal mode would keep handing it out.
    fake.revoke(&old);
    // Fifty workers saw 40001 and report it.
    for _ in 0..50 {
        report(&site, &old).expect(0);
    }
    site.refresh(&fake)
        .args(&["--probe-every", "0"])
        .run()
        .expect(0)
        .stderr_has("WeChat rejects the token in the file")
        .stderr_has("force_refresh");
    assert_eq!(probes(&fake), 1, "one probe for fifty reports");
    assert_eq!(fake.force_refresh_calls(), 1, "one forced rotation");
    let new = site.token();
    assert_ne!(new, old);
    assert!(fake.is_valid(&new));
    common::fault(
        "upstream",
        "token revoked by WeChat (40001), fifty apps report it",
        "1 probe, 1 force_refresh, a new valid token, exit 0",
    );
    // The requests were consumed: the next run does nothing upstream.
    let calls = fake.requests().len();
    site.refresh(&fake)
        .args(&["--probe-every", "0"])
        .run()
        .expect(0)
        .stderr_has("still fresh");
    assert_eq!(fake.requests().len(), calls);
    assert_eq!(
        run_state(&site)["force_refresh_at"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn reports_of_other_tokens_cost_nothing_and_a_live_token_is_kept() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let token = site.token();
    // A report of a token the file no longer holds: not even a request is left.
    let r = report(&site, "80_an_older_token");
    r.expect(0);
    assert!(
        r.stderr.contains("already holds another token"),
        "{}",
        r.stderr
    );
    // A flood of bogus requests straight into the directory (an app without the helper).
    let requests = site.state_dir().join("requests");
    for i in 0..1000 {
        fs::write(requests.join(digest(&format!("bogus{i}"))), "").unwrap();
    }
    fs::write(requests.join("not-a-digest"), "").unwrap();
    site.refresh(&fake)
        .args(&["--probe-every", "0"])
        .run()
        .expect(0)
        .stderr_has("named no token the file holds now");
    assert_eq!(probes(&fake), 0, "bogus reports cost no probe");
    assert_eq!(fs::read_dir(&requests).unwrap().count(), 0, "all consumed");
    // A report of the live token: one probe, the token is kept.
    report(&site, &token).expect(0);
    site.refresh(&fake)
        .args(&["--probe-every", "0"])
        .run()
        .expect(0)
        .stderr_has("but WeChat accepts it");
    assert_eq!(probes(&fake), 1);
    assert_eq!(site.token(), token);
    assert_eq!(fake.token_calls(), 1);
    // Reported again at once: rate-limited (no probe), remembered for the next run.
    report(&site, &token).expect(0);
    site.refresh(&fake)
        .args(&["--probe-every", "0"])
        .run()
        .expect(0)
        .stderr_has("the next run");
    assert_eq!(probes(&fake), 1);
    assert_eq!(run_state(&site)["pending_report"], digest(&token));
    assert_eq!(run_state(&site)["reports_consumed"], 1003);
}

/// What a careless app (or an intruder in the readers' group) can plant in requests/ instead of
/// an empty file: a directory, a symlink to a directory elsewhere. Each is taken as a request and
/// removed without following the link; what cannot be removed is set aside (requests/ is left
/// empty) and reported in one warning.
#[test]
fn planted_directories_and_symlinks_in_requests_are_removed_not_followed() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let token = site.token();
    let requests = site.state_dir().join("requests");
    // mkdir instead of touch, named like a report of the live token.
    fs::create_dir(requests.join(digest(&token))).unwrap();
    // A symlink to a directory with a file in it: following it would delete the victim's file
    // or fail on the directory.
    let victim = site.dir.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("keep"), "x").unwrap();
    std::os::unix::fs::symlink(&victim, requests.join(digest("linked"))).unwrap();
    std::os::unix::fs::symlink(victim.join("keep"), requests.join("file-link")).unwrap();
    // Directories with something inside: not removable, however many.
    for i in 0..3 {
        let d = requests.join(format!("full{i}"));
        fs::create_dir(&d).unwrap();
        fs::write(d.join("x"), "").unwrap();
    }
    let r = site.refresh(&fake).args(&["--probe-every", "0"]).run();
    r.expect(0).stderr_has("but WeChat accepts it");
    assert_eq!(
        probes(&fake),
        1,
        "the directory counted as a report of the live token"
    );
    assert_eq!(
        fs::read_dir(&requests).unwrap().count(),
        0,
        "requests/ left empty"
    );
    let aside = site.state_dir().join(".requests.old");
    let copies: Vec<_> = fs::read_dir(&aside)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let mut left: Vec<String> = fs::read_dir(&copies[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["full0", "full1", "full2"], "the rest is removed");
    assert_eq!(fs::read_to_string(victim.join("keep")).unwrap(), "x");
    assert!(victim.is_dir(), "the link's target is untouched");
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("cannot remove"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning per run:\n{}", r.stderr);
    assert!(
        warnings[0].contains("3 entries") && warnings[0].contains("rm -r"),
        "{}",
        warnings[0]
    );
    assert_eq!(run_state(&site)["reports_consumed"], 6);
    assert_eq!(run_state(&site)["requests_stuck"]["entries"], 3);
    // Emptied by hand (as root would): the next look finds nothing and forgets it.
    for d in &left {
        fs::remove_dir_all(copies[0].join(d)).unwrap();
    }
    let n = now();
    edit(&site.state_dir().join(".wxtoken-state.json"), |v| {
        v["requests_stuck"]["swept_at"] = (n - 3600).into();
    });
    site.refresh(&fake)
        .args(&["--probe-every", "0"])
        .run()
        .expect(0);
    assert!(!aside.exists(), "the empty set-aside place is removed");
    assert!(run_state(&site)["requests_stuck"].is_null());
}

#[test]
fn report_stale_checks_its_argument_and_reads_a_token_on_stdin() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let out = site.out.to_str().unwrap();
    common::Cmd::new(&["report-stale", "--out", out, "xyz"])
        .run()
        .expect(2);
    let mut child = common::Cmd::new(&["report-stale", "--out", out, "-"])
        .command()
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{}", site.token()).unwrap();
    assert!(child.wait().unwrap().success());
    let left: Vec<String> = fs::read_dir(site.state_dir().join("requests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, [digest(&site.token())]);
    // No request directory (wxtoken never ran here): a clear error, exit 73.
    let elsewhere = site.dir.path().join("none").join("access_token.json");
    common::Cmd::new(&[
        "report-stale",
        "--out",
        elsewhere.to_str().unwrap(),
        &digest("x"),
    ])
    .run()
    .expect(73)
    .stderr_has("wxtoken refresh creates that directory");
}

#[test]
fn a_stable_force_refresh_by_someone_else_is_replaced_without_forcing() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let old = site.token();
    fake.stable_force_out_of_band(DEFAULT_APPID);
    report(&site, &old).expect(0);
    site.refresh(&fake)
        .run()
        .expect(0)
        .stderr_has("force_refresh:true");
    assert_eq!(
        fake.force_refresh_calls(),
        0,
        "normal mode already had a new one"
    );
    assert!(fake.is_valid(&site.token()));
}

#[test]
fn times_a_clock_cannot_have_written_are_not_fresh() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let n = now();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "expires_at 10^18",
            Box::new(|v| v["expires_at"] = 1_000_000_000_000_000_000u64.into()),
        ),
        (
            "expires_at 2^63",
            Box::new(|v| v["expires_at"] = (1u64 << 63).into()),
        ),
        (
            "expires_at u64::MAX",
            Box::new(|v| v["expires_at"] = u64::MAX.into()),
        ),
        (
            "refreshed_at 3 h ahead",
            Box::new(move |v| {
                v["refreshed_at"] = (n + 3 * 3600).into();
                v["expires_at"] = (n + 3 * 3600 + 7200).into();
            }),
        ),
        (
            "more left than granted",
            Box::new(move |v| {
                v["expires_in"] = 600.into();
                v["expires_at"] = (n + 7000).into();
                v["refreshed_at"] = (n - 100).into();
            }),
        ),
    ];
    for (what, f) in cases {
        edit(&site.out, f);
        let calls = fake.token_calls();
        site.refresh(&fake)
            .run()
            .expect(0)
            .stderr_has("not trusting its token");
        assert_eq!(fake.token_calls(), calls + 1, "{what}: no fetch");
        let left = site.left();
        assert!((7000..=7200).contains(&left), "{what}: {left} s left");
        common::fault(
            "clock",
            &format!("token file from a clock ahead: {what}"),
            "not trusted: refetched at once, 7000 to 7200 s left",
        );
    }
}

/// The whole clock story with a real clock step: a run with the host clock 3 h ahead (libfaketime),
/// then the clock is corrected.
#[test]
fn a_run_under_a_clock_three_hours_ahead_is_corrected_afterwards() {
    if !common::require_tool("faketime") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run_succeeding_at("+3h");
    let skewed = site.read()["expires_at"].as_u64().unwrap();
    assert!(skewed > now() + 3 * 3600, "faketime did not apply");
    site.refresh(&fake)
        .run()
        .expect(0)
        .stderr_has("the clock stepped back");
    let left = site.left();
    assert!(
        (7000..=7200).contains(&left),
        "{left} s left after the clock came back"
    );
    common::fault(
        "clock",
        "host clock stepped 3 h forward for one run (libfaketime), then back",
        "the run ahead succeeds; the next one says the clock stepped back and refetches: 7000 to 7200 s left",
    );
}

#[test]
fn a_fetched_token_never_replaces_a_better_one() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let token = site.token();
    // --force with 7200 s left; WeChat answers with another token, living 1 s. The stable API
    // hands out another token only when the file's is revoked or in its last 300 s: the file is
    // kept, saying so.
    fake.script(vec![Behaviour::Token("80_short".into(), 1)]);
    site.refresh(&fake)
        .arg("--force")
        .run()
        .expect(75)
        .stderr_has("sooner than the one in");
    assert_eq!(site.token(), token);
    assert!(site.left() <= 300, "{} s left", site.left());
    // A normal refresh with 250 s left.
    let n = now();
    edit(&site.out, |v| {
        v["expires_at"] = (n + 250).into();
        v["refreshed_at"] = (n + 250 - 7200).into();
    });
    let before = fs::read(&site.out).unwrap();
    fake.script(vec![Behaviour::Token("80_short".into(), 1)]);
    site.refresh(&fake)
        .run()
        .expect(75)
        .stderr_has("kept the file");
    assert_eq!(fs::read(&site.out).unwrap(), before);
}

#[test]
fn a_legacy_fetch_cuts_the_old_token_to_five_minutes() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    let old = site.token();
    // The new legacy token would live 200 s; the old one, retired by this very fetch, 300 s.
    fake.script(vec![Behaviour::Token("80_short".into(), 200)]);
    site.refresh(&fake)
        .args(&["--api", "legacy", "--force"])
        .run()
        .expect(75)
        .stderr_has("kept the file");
    assert_eq!(site.token(), old);
    let left = site.left();
    assert!(
        (295..=300).contains(&left),
        "the file must say when the old token dies: {left}"
    );
}

/// SIGTERM while a legacy fetch is in flight: WeChat issued a token (retiring the file's) that
/// never reached the file. The next run knows the file's token now dies within 5 minutes.
#[test]
fn a_legacy_fetch_killed_before_the_write_is_remembered() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    let old = site.token();
    fake.script(vec![Behaviour::Delay(2000, Box::new(Behaviour::Normal))]);
    let mut child = site
        .refresh(&fake)
        .args(&["--api", "legacy", "--force"])
        .spawn();
    let start = Instant::now();
    while fake.token_calls() < 2 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    // The fake finishes the request it was delaying: a new token exists, ours retires.
    std::thread::sleep(Duration::from_millis(2300));
    assert_ne!(fake.current_token(DEFAULT_APPID).unwrap(), old);
    assert_eq!(site.token(), old);
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0)
        .stderr_has("refreshed");
    assert_eq!(fake.token_calls(), 3);
    fake.advance(301);
    assert!(fake.is_valid(&site.token()));
    common::fault(
        "SIGTERM",
        "SIGTERM while a legacy fetch is in flight (WeChat issued a token the run never wrote)",
        "old file kept; the next run knows the old token retires and fetches: valid after 301 s",
    );
}

#[test]
fn fifty_runs_with_force_make_one_call() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    // The first run holds the lock for 3 s: every other run has started by then (even on a
    // loaded machine), so all of them queue behind its refresh.
    fake.script(vec![Behaviour::Delay(3000, Box::new(Behaviour::Normal))]);
    let children: Vec<_> = (0..50)
        .map(|_| {
            site.refresh(&fake)
                .args(&[
                    "--api",
                    "legacy",
                    "--force",
                    "--max-time",
                    "30",
                    "--timeout",
                    "10",
                ])
                .spawn()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        if err.contains("refreshed") {
            common::show(&err);
        }
    }
    assert_eq!(fake.token_calls(), 2, "1 before, 1 for fifty --force runs");
    assert!(fake.is_valid(&site.token()));
}

#[test]
fn force_new_rotates_within_the_budget() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let old = site.token();
    // --force on stable: the same token (normal mode).
    site.refresh(&fake).arg("--force").run().expect(0);
    assert_eq!(site.token(), old);
    site.refresh(&fake).arg("--force-new").run().expect(0);
    let new = site.token();
    assert_ne!(new, old);
    assert!(!fake.is_valid(&old) && fake.is_valid(&new));
    assert_eq!(fake.force_refresh_calls(), 1);
    // A second one within 30 s and too short a --max-time to wait: refused, nothing sent.
    site.refresh(&fake)
        .args(&["--force-new", "--max-time", "5"])
        .run()
        .expect(75)
        .stderr_has("30 s between two");
    assert_eq!(fake.force_refresh_calls(), 1);
    // The day's budget used up (20): refused with the time until the next.
    let state = site.state_dir().join(".wxtoken-state.json");
    let n = now();
    edit(&state, |v| {
        v["force_refresh_at"] = (0..20).map(|i| n - 100 - i).collect::<Vec<u64>>().into();
    });
    site.refresh(&fake)
        .arg("--force-new")
        .run()
        .expect(75)
        .stderr_has("budget is used up");
    assert_eq!(fake.force_refresh_calls(), 1);
    assert_eq!(site.token(), new);
}

#[test]
fn two_accounts_in_one_directory_are_refused_not_interleaved() {
    let fake = FakeWeChat::start();
    fake.add_account("wxother000000000001", "other-secret");
    let site = Site::new();
    let a = site.state_dir().join("a.json");
    let b = site.state_dir().join("b.json");
    site.refresh(&fake)
        .args(&["--out", a.to_str().unwrap(), "--ticket", "jsapi"])
        .run()
        .expect(0);
    let ticket = site.state_dir().join("jsapi_ticket.json");
    let before = fs::read(&ticket).unwrap();
    let s2 = site.dir.path().join("secret2");
    fs::write(&s2, "other-secret").unwrap();
    fs::set_permissions(&s2, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut c = site.refresh(&fake);
    c.args(&[
        "--appid",
        "wxother000000000001",
        "--secret-file",
        s2.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "--ticket",
        "jsapi",
    ]);
    c.run()
        .expect(78)
        .stderr_has("One directory serves one account");
    assert_eq!(fs::read(&ticket).unwrap(), before);
    assert!(!b.exists());
    // Without the run state (an older wxtoken's directory), the live ticket still protects itself.
    fs::remove_file(site.state_dir().join(".wxtoken-state.json")).unwrap();
    fs::remove_file(&a).unwrap();
    c.run()
        .expect(78)
        .stderr_has("holds a jsapi ticket of appid wx1234567890abcdef");
    assert_eq!(fs::read(&ticket).unwrap(), before);
}

#[test]
fn probes_stay_within_a_daily_budget() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let token = site.token();
    let state = site.state_dir().join(".wxtoken-state.json");
    let n = now();
    edit(&state, |v| {
        v["probe_day_start"] = (n - 3600).into();
        v["probes_today"] = 200.into();
        v["report_probes_today"] = 200.into();
    });
    report(&site, &token).expect(0);
    site.refresh(&fake)
        .run()
        .expect(0)
        .stderr_has("the report probe budget is used up (200 in 24 h)");
    assert_eq!(probes(&fake), 0);
    // Kept for when the budget is back.
    assert_eq!(run_state(&site)["pending_report"], digest(&token));
}

/// With a margin under 5 minutes, a token retired by a recorded legacy fetch can still be "fresh"
/// for a while: the file then says when it really dies.
#[test]
fn a_retired_token_is_published_with_its_real_expiry() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    let state = site.state_dir().join(".wxtoken-state.json");
    let n = now();
    let d = digest(&site.token());
    edit(&state, |v| {
        v["retiring"] = serde_json::json!({"digest": d, "at": n - 10, "grace": 300});
    });
    site.refresh(&fake)
        .args(&["--api", "legacy", "--margin", "60", "--probe-every", "0"])
        .run()
        .expect(0)
        .stderr_has("still fresh, 2");
    assert_eq!(site.read()["expires_at"], n - 10 + 300);
    assert_eq!(fake.token_calls(), 1);
}

/// A run state lost (or from an older wxtoken) while the token lives: the first fresh run
/// re-learns how long the owner's claim on the directory lasts.
#[test]
fn a_lost_run_state_still_protects_the_owners_directory() {
    let fake = FakeWeChat::start();
    fake.add_account("wxother000000000001", "other-secret");
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    fs::remove_file(site.state_dir().join(".wxtoken-state.json")).unwrap();
    site.refresh(&fake)
        .run()
        .expect(0)
        .stderr_has("still fresh");
    // The token file is replaced by another account's run only if the claim is forgotten: remove
    // the token file too, so only the run state can protect the directory.
    let b = site.state_dir().join("b.json");
    let s2 = site.dir.path().join("secret2");
    fs::write(&s2, "other-secret").unwrap();
    fs::set_permissions(&s2, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut c = site.refresh(&fake);
    c.args(&[
        "--appid",
        "wxother000000000001",
        "--secret-file",
        s2.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
    ]);
    c.run()
        .expect(78)
        .stderr_has("is in use by appid wx1234567890abcdef");
}
