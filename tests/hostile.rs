//! Issue #15: a hostile member of the readers' group, a clock step or a killed run must not make a
//! dead token look fresh. Each test here failed on the code before its fix.

mod common;
mod fake;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn status(site: &Site) -> Cmd {
    Cmd::new(&["status", "--out", site.out.to_str().unwrap()])
}

/// Runs `c` under another program (faketime, strace), without asserting its status.
fn run_under(c: &mut Cmd, prefix: &[&str]) -> Run {
    let start = Instant::now();
    let out = c
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .command_with_prefix(prefix)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// `c` with the host clock `secs` ahead.
fn at(c: &mut Cmd, secs: u64) -> Run {
    run_under(c, &["faketime", "-f", &format!("+{secs}")])
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Runs `c` under strace, which kills it (SIGKILL) at its second rename(2): for a legacy
/// `--force` run, after the run state recorded the fetch and WeChat answered, as the token file
/// is renamed into place. `faketime`: the clock offset to run it under.
fn kill_at_the_token_rename(c: &mut Cmd, faketime: Option<&str>) -> Run {
    let mut prefix = vec![
        "strace",
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "trace=rename,renameat,renameat2",
        "-e",
        "inject=rename,renameat,renameat2:signal=KILL:when=2",
    ];
    if let Some(offset) = faketime {
        prefix.extend(["faketime", "-f", offset]);
    }
    run_under(c, &prefix)
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Defect 1. A member of the readers' group reports the current (live) token every 31 s. Before,
/// reports and periodic probes shared 500 probes a day: after ~4.3 h neither probed, and a token
/// WeChat revoked was served with exit 0 all day. Now reports have a budget of their own and the
/// periodic probe keeps its share.
#[test]
fn a_reader_reporting_every_31_s_cannot_switch_the_periodic_probe_off() {
    if !require_tool("faketime") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let token = site.token();
    let (step, runs) = (31u64, 560u64);
    let started = Instant::now();
    for i in 1..=runs {
        report(&site, &token).expect(0);
        at(&mut site.refresh(&fake), i * step).expect(0);
    }
    let flood_probes = probes(&fake);
    let st = run_state(&site);
    let (for_reports, periodic) = (
        st["report_probes_today"].as_u64().unwrap_or(0),
        st["periodic_probes_today"].as_u64().unwrap_or(0),
    );
    // Then WeChat revokes the token, and the reader goes on reporting it.
    fake.revoke(&token);
    let t = runs * step + 300;
    let s = at(&mut status(&site), t);
    assert_eq!(s.code, 1, "{}", s.stdout);
    assert!(
        s.stdout.contains("report probe budget is used up"),
        "{}",
        s.stdout
    );
    report(&site, &token).expect(0);
    let prom = site.dir.path().join("wxtoken.prom");
    at(
        site.refresh(&fake)
            .args(&["--metrics", prom.to_str().unwrap()]),
        t,
    )
    .expect(0)
    .stderr_has("WeChat rejects the token in the file");
    assert_ne!(site.token(), token);
    assert!(fake.is_valid(&site.token()), "the revoked token was kept");
    let metrics = fs::read_to_string(&prom).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wxtoken_probe_budget_remaining{")
                && l.contains("kind=\"report\"}")
                && l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wxtoken_probe_budget_remaining{")
                && l.contains("kind=\"periodic\"}")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    show(&format!(
        "MEASURED report flood: {runs} reports of the live token {step} s apart ({:.1} h of \
         clock, {:.1} s of runs): {flood_probes} probes, {for_reports} for reports (their budget), \
         {periodic} periodic; then the revoked token was found by the periodic probe and replaced",
        (runs * step) as f64 / 3600.0,
        started.elapsed().as_secs_f64()
    ));
    assert!(for_reports <= 200 && flood_probes <= 260, "{flood_probes}");
    fault(
        "reader",
        "a reader reports the live token every 31 s for 4.8 h (faketime), then WeChat revokes it",
        "reports stop at their own budget (200/24 h, status WARNING, metric 0); the periodic probe \
         still runs, finds it dead, a new token",
    );
}

/// Defect 2. A reader wedges requests/ with 100,000 directories the service cannot remove (mode
/// 0700, a file inside), then the live token is revoked and an app reports it. Before: every run
/// walked 10,000 of them, left them all, the report could stay unseen, and requests/ stayed
/// non-empty (wxtoken.path restarting the service until its trigger limit).
#[test]
fn a_report_is_seen_through_100000_debris_entries_and_requests_is_left_empty() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    // On a tmpfs when there is a roomy one: 200,000 inodes are made and removed in seconds there,
    // not minutes (a container's 64 MiB /dev/shm would fill up).
    let roomy = |path: &str| {
        let c = std::ffi::CString::new(path).unwrap();
        // SAFETY: statvfs is plain data; all-zero is a valid value, filled in by the call.
        let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid C string and out-pointer.
        let ok = unsafe { libc::statvfs(c.as_ptr(), &mut v) } == 0;
        ok && (v.f_bavail as u64) * (v.f_frsize as u64) >= 1 << 30 && v.f_favail >= 400_000
    };
    let shm = if roomy("/dev/shm") {
        tempfile::tempdir_in("/dev/shm")
    } else {
        Err(std::io::Error::other("no roomy tmpfs"))
    };
    let site = match shm {
        Ok(dir) => {
            let secret = dir.path().join("secret");
            fs::copy(&site.secret, &secret).unwrap();
            fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
            let out = dir.path().join("state").join("access_token.json");
            Site { dir, secret, out }
        }
        Err(_) => site,
    };
    site.refresh(&fake).run().expect(0);
    let token = site.token();
    let requests = site.state_dir().join("requests");
    let hostile = is_root();
    let made = Instant::now();
    for i in 0..100_000 {
        let d = requests.join(format!("junk{i:06}"));
        fs::create_dir(&d).unwrap();
        fs::write(d.join("x"), "").unwrap();
        if hostile {
            // Another user's (nobody's), as a member of the readers' group would leave it.
            std::os::unix::fs::chown(d.join("x"), Some(65534), Some(65534)).unwrap();
            std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
        }
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
    }
    show(&format!(
        "made 100,000 debris entries in {:.1} s",
        made.elapsed().as_secs_f64()
    ));
    fake.revoke(&token);
    report(&site, &token).expect(0);
    let r = site.refresh(&fake).args(&["--probe-every", "0"]).run();
    r.expect(0)
        .stderr_has("WeChat rejects the token in the file");
    let acted = r.elapsed;
    assert_ne!(site.token(), token);
    assert!(fake.is_valid(&site.token()));
    let left = fs::read_dir(&requests).unwrap().count();
    assert_eq!(left, 0, "requests/ must be empty after a run");
    assert_eq!(mode(&requests), 0o1730);
    let aside = site.state_dir().join(".requests.old");
    assert_eq!(
        mode(&aside) & 0o077,
        0,
        "set aside out of the readers' reach"
    );
    let s = status(&site).run();
    assert_eq!(s.code, 1, "{}", s.stdout);
    assert!(s.stdout.contains("cannot remove"), "{}", s.stdout);
    if hostile {
        assert!(s.stdout.contains("owned by nobody"), "{}", s.stdout);
    }
    // The next report is one lookup away too, and the debris stays where it was put.
    let again = site.token();
    fake.revoke(&again);
    // Past the 30 s WeChat wants between two force_refresh calls, and between two report probes.
    let state = site.state_dir().join(".wxtoken-state.json");
    edit(&state, |v| {
        v["last_probe_at"] = (now() - 60).into();
        v["force_refresh_at"] = serde_json::json!([]);
    });
    report(&site, &again).expect(0);
    let r = site.refresh(&fake).args(&["--probe-every", "0"]).run();
    r.expect(0)
        .stderr_has("WeChat rejects the token in the file");
    assert_eq!(fs::read_dir(&requests).unwrap().count(), 0);
    show(&format!(
        "MEASURED a report behind 100,000 debris entries in requests/: acted on (probe, \
         force_refresh, write) in {:.3} s, the debris set aside; the next report in {:.3} s \
         (debug build; cargo test --test hostile a_report_is_seen -- --nocapture)",
        acted.as_secs_f64(),
        r.elapsed.as_secs_f64()
    ));
    fault(
        "reader",
        "100,000 directories a reader made in requests/ (mode 0700, a file inside), then a report \
         of the revoked token",
        "the report is acted on, requests/ left empty (debris set aside in .requests.old), \
         status WARNING naming the owner",
    );
}

/// Defect 3. Every path wxtoken writes must be its own: refresh refuses a collision (78) before
/// anything is fetched, check fails the item.
#[test]
fn wxtokens_own_files_cannot_be_outputs_or_metrics() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let calls = fake.token_calls();
    let d = site.state_dir();
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();
    let other = site.dir.path().join("other");
    fs::create_dir(&other).unwrap();
    let o = |name: &str| other.join(name).to_str().unwrap().to_string();
    let spelled_otherwise = format!("{}/../state/access_token.json", d.display());
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("out", vec!["--out".into(), p(".wxtoken-state.json")]),
        (
            "out",
            vec![
                "--add-out".into(),
                p("jsapi_ticket.json"),
                "--ticket".into(),
                "jsapi".into(),
            ],
        ),
        ("metrics", vec!["--metrics".into(), p("access_token.json")]),
        (
            "metrics",
            vec!["--metrics".into(), p(".wxtoken-state.json")],
        ),
        ("metrics", vec!["--metrics".into(), p(".wxtoken.lock")]),
        ("metrics", vec!["--metrics".into(), p("requests")]),
        ("metrics", vec!["--metrics".into(), spelled_otherwise]),
        (
            "metrics",
            vec![
                "--add-out".into(),
                o("token.txt"),
                "--metrics".into(),
                o(".wxtoken.lock"),
            ],
        ),
    ];
    for (item, extra) in cases {
        for sub in [&["refresh"][..], &["check", "--unit", "none"][..]] {
            let mut c = Cmd::new(sub);
            c.args(&[
                "--appid",
                DEFAULT_APPID,
                "--api-base",
                &fake.base_url(),
                "--secret-file",
                site.secret.to_str().unwrap(),
                "--out",
                site.out.to_str().unwrap(),
            ]);
            for pair in extra.chunks(2) {
                match pair[0].as_str() {
                    "--add-out" => c.add("--out", &pair[1]),
                    "--ticket" => c.add("--ticket", &pair[1]),
                    flag => c.set(flag, &pair[1]),
                };
            }
            let out = c.command().output().unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert_eq!(
                out.status.code(),
                Some(78),
                "{sub:?} {extra:?}:\n{stdout}{stderr}"
            );
            if sub[0] == "refresh" {
                assert!(stderr.contains("a path of its own"), "{extra:?}: {stderr}");
                assert!(stderr.contains(DEFAULT_APPID), "{extra:?}: {stderr}");
            } else {
                let fail = format!("FAIL {item}: ");
                assert!(
                    stdout
                        .lines()
                        .any(|l| l.starts_with(&fail) && l.contains("a path of its own")),
                    "{extra:?}:\n{stdout}"
                );
            }
        }
    }
    assert_eq!(fake.token_calls(), calls, "nothing fetched");
    // A metrics file of its own is fine.
    site.refresh(&fake)
        .args(&["--metrics", &o("wxtoken.prom"), "--force"])
        .run()
        .expect(0);
    fault(
        "config",
        "--out or --metrics naming wxtoken's own files (the run state, a ticket file, the lock, \
         requests/, the token file spelled through ..)",
        "exit 78 before any fetch naming both roles; check FAILs the out or metrics item",
    );
}

/// Defect 4. A legacy run is killed after WeChat issued its new token (which retires the file's
/// 300 s later) and before the rename; then WeChat answers 500. Before, the failed runs kept the
/// file claiming ~7200 s for a token that dies at +300 s.
#[test]
fn a_failed_run_after_a_killed_legacy_fetch_brings_the_expiry_down() {
    if !require_tool("strace") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    let old = site.token();
    let killed = kill_at_the_token_rename(
        site.refresh(&fake).args(&["--api", "legacy", "--force"]),
        None,
    );
    assert_ne!(killed.code, 0, "{}", killed.stderr);
    assert_eq!(site.token(), old, "killed before the rename");
    assert_ne!(fake.current_token(DEFAULT_APPID).unwrap(), old);
    assert!(site.left() > 7000);
    let error = Behaviour::Status(500, vec![], "oops".into());
    fake.script(vec![error; 8]);
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(75);
    let left = site.left();
    assert!((290..=300).contains(&left), "the file claims {left} s");
    assert_eq!(site.read()["expire_time"], site.read()["expires_at"]);
    assert_eq!(site.token(), old);
    let s = status(&site).run();
    assert_ne!(s.code, 0, "{}", s.stdout);
    fault(
        "kill -9",
        "legacy run SIGKILLed between the fetch and the rename (strace inject), then HTTP 500",
        "exit 75, the file's expires_at brought down to the fetch + 300 s",
    );
}

/// Defect 5. The same kill under a clock 1 h ahead, then the clock corrected: the recorded
/// retirement lies in the future. Before, the file was rewritten to claim 3,900 s for a token
/// that dies at +300 s.
#[test]
fn a_retirement_recorded_under_a_clock_ahead_is_clamped() {
    if !require_tool("strace") || !require_tool("faketime") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    let old = site.token();
    let killed = kill_at_the_token_rename(
        site.refresh(&fake).args(&["--api", "legacy", "--force"]),
        Some("+1h"),
    );
    assert_ne!(killed.code, 0, "{}", killed.stderr);
    assert_eq!(site.token(), old);
    let at = run_state(&site)["retiring"]["at"].as_u64().unwrap();
    assert!(at > now() + 3000, "faketime did not apply: {at}");
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    // Either replaced, or claiming no more than the retirement leaves.
    assert!(
        site.token() != old || site.left() <= 300,
        "the old token, claiming {} s",
        site.left()
    );
    fake.advance(301);
    assert!(fake.is_valid(&site.token()), "a dead token in the file");
    fault(
        "clock",
        "legacy run SIGKILLed after its fetch under a clock 1 h ahead, then the clock corrected",
        "the retirement is clamped to now: the next run refetches, the file valid after 301 s",
    );
}

/// Defect 6. A refresh under a clock 100 s ahead, then `--force-new` with the clock right. Before:
/// "still fresh", exit 0, nothing rotated.
#[test]
fn force_new_after_a_small_clock_step_back_rotates() {
    if !require_tool("faketime") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run_succeeding_at("+100");
    let old = site.token();
    let r = site.refresh(&fake).arg("--force-new").run();
    assert!(
        r.code != 0 || fake.force_refresh_calls() == 1,
        "{}",
        r.stderr
    );
    r.expect(0).stderr_has("refreshed");
    assert_eq!(fake.force_refresh_calls(), 1);
    assert_ne!(site.token(), old);
    assert!(!fake.is_valid(&old));
    fault(
        "clock",
        "--force-new after a refresh under a clock 100 s ahead",
        "rotated (one force_refresh), never a quiet \"still fresh\"",
    );
}

/// Defect 7. The stable API hands out a different token only when the old one is revoked or in
/// its last 300 s: the file's then lives at most 300 s more, whatever its expires_at says.
/// Before, a new token with the same lifetime was refused as "sooner", exit 75.
#[test]
fn a_different_stable_token_with_an_equal_lifetime_replaces_the_files() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let old = site.token();
    // The file's expiry a few seconds later than the one a fetch now gets (refreshed in the same
    // second as far as WeChat's 7200 s go).
    let n = now();
    edit(&site.out, |v| {
        v["expires_at"] = (n + 7250).into();
        v["refreshed_at"] = (n + 50).into();
    });
    let new = fake.stable_force_out_of_band(DEFAULT_APPID);
    site.refresh(&fake).arg("--force").run().expect(0);
    assert_eq!(site.token(), new);
    assert!(fake.is_valid(&site.token()) && !fake.is_valid(&old));
    // "Sooner" is not said of an equal time: a legacy token living exactly as long as the one its
    // fetch retired is kept, in words that say so.
    let legacy = Site::new();
    legacy
        .refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    fake.script(vec![Behaviour::Token("80_equal".into(), 300)]);
    let r = legacy
        .refresh(&fake)
        .args(&["--api", "legacy", "--force"])
        .run();
    r.expect(75).stderr_has("no later than the one in");
    assert!(!r.stderr.contains("sooner"), "{}", r.stderr);
    fault(
        "upstream",
        "stable: the file's token revoked out of band, --force gets a new one with the same \
         expires_in",
        "the new token replaces the file (the old lives at most 300 s), exit 0",
    );
}

/// Defect 8. `--mode 0660` is for the token files; the run state and the lock are the
/// refresher's own and never writable by the readers.
#[test]
fn the_run_state_and_lock_are_never_group_writable() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--mode", "0660"])
        .run()
        .expect(0);
    let state = site.state_dir().join(".wxtoken-state.json");
    let lock = site.state_dir().join(".wxtoken.lock");
    assert_eq!(mode(&site.out), 0o660, "the token file has --mode");
    assert_eq!(mode(&state), 0o640, "the run state");
    assert_eq!(mode(&lock) & 0o022, 0, "the lock");
    // Left writable by an older wxtoken, or by hand: the next run takes it back.
    fs::set_permissions(&state, fs::Permissions::from_mode(0o666)).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o666)).unwrap();
    site.refresh(&fake)
        .args(&["--mode", "0660"])
        .run()
        .expect(0)
        .stderr_has("still fresh");
    assert_eq!(mode(&state) & 0o022, 0, "the run state");
    assert_eq!(mode(&lock) & 0o022, 0, "the lock");
    fault(
        "reader",
        "--mode 0660; the run state and the lock made 0666 by hand",
        "run state 0640, lock without group or other write, token files 0660",
    );
}

/// Defect 9. A hook that hangs gets its share of the time left, not all of it: the later hooks
/// still run. A killed run's temp file beside the metrics file is removed.
#[test]
fn a_hanging_hook_leaves_the_later_hooks_their_share_and_metrics_temps_go() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let d = site.dir.path();
    let hang = script(d, "hang", "#!/bin/sh\nexec sleep 300\n");
    let marker = d.join("marked");
    let mark = script(
        d,
        "mark",
        &format!("#!/bin/sh\ntouch {}\n", marker.display()),
    );
    let prom_dir = d.join("prom");
    fs::create_dir(&prom_dir).unwrap();
    let stale = prom_dir.join(".wxtoken.prom.AbC123.tmp");
    let foreign = prom_dir.join(".other.prom.AbC123.tmp");
    fs::write(&stale, "half a metrics file").unwrap();
    fs::write(&foreign, "someone else's").unwrap();
    let r = site
        .refresh(&fake)
        .set("--max-time", "6")
        .add("--on-change", hang.to_str().unwrap())
        .add("--on-change", mark.to_str().unwrap())
        .args(&["--metrics", prom_dir.join("wxtoken.prom").to_str().unwrap()])
        .run();
    r.expect(75).stderr_has("1 of 2 --on-change hooks failed");
    assert!(marker.exists(), "the second hook never ran:\n{}", r.stderr);
    assert!(r.elapsed < Duration::from_millis(6500), "{:?}", r.elapsed);
    assert!(
        !stale.exists(),
        "the killed run's metrics temp file is left"
    );
    assert!(foreign.exists(), "another file's temp was removed");
    assert!(prom_dir.join("wxtoken.prom").exists());
    fault(
        "hook",
        "the first of two --on-change hooks hangs (--max-time 6)",
        "it is killed at its share of the time left; the second runs; exit 75",
    );
}
