//! `--metrics PATH`: Prometheus text format, checked with the reference Python parser
//! (prometheus_client, Debian's python3-prometheus-client).

mod common;
mod fake;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Parses the file with prometheus_client and returns "name{sorted labels}" -> value.
fn parse(path: &std::path::Path) -> Option<HashMap<String, f64>> {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "the parser refused the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect(),
    )
}

fn parser_available() -> bool {
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("python3-prometheus-client is required under CI=true");
        }
        show("SKIPPED: python3-prometheus-client is not installed");
    }
    ok
}

#[test]
fn the_metrics_file_parses_and_follows_the_runs() {
    if !parser_available() {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    let prom = site.dir.path().join("wxtoken.prom");
    let with_metrics = |c: &mut Cmd| {
        c.args(&["--metrics", prom.to_str().unwrap(), "--ticket", "jsapi"]);
    };
    let mut c = site.refresh(&fake);
    with_metrics(&mut c);
    c.run().expect(0);
    let m = parse(&prom).unwrap();
    let id = format!("api=stable,appid={DEFAULT_APPID}");
    let expiry = m[&format!("wxtoken_token_expiry_timestamp_seconds{{{id}}}")];
    assert_eq!(expiry as u64, site.read()["expires_at"].as_u64().unwrap());
    assert!(m[&format!("wxtoken_ticket_expiry_timestamp_seconds{{{id},type=jsapi}}")] > 0.0);
    assert_eq!(
        m[&format!("wxtoken_upstream_token_requests_total{{{id}}}")],
        1.0
    );
    assert_eq!(m[&format!("wxtoken_consecutive_failures{{{id}}}")], 0.0);
    assert!(m[&format!("wxtoken_last_success_timestamp_seconds{{{id}}}")] > 0.0);
    assert_eq!(m[&format!("wxtoken_force_refresh_budget{{{id}}}")], 20.0);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(!text.contains(&site.token()), "no token in the metrics");

    // Failures are counted by class and errcode; a probe and a report show too.
    fake.set_default(Behaviour::Errcode(40164, "invalid ip 203.0.113.9".into()));
    for _ in 0..2 {
        let mut c = site.refresh(&fake);
        with_metrics(&mut c);
        c.arg("--force").run().expect(78);
    }
    let m = parse(&prom).unwrap();
    assert_eq!(
        m[&format!("wxtoken_failures_total{{{id},class=configuration,errcode=40164}}")],
        2.0
    );
    assert_eq!(m[&format!("wxtoken_consecutive_failures{{{id}}}")], 2.0);
    fake.set_default(Behaviour::Normal);
    let token = site.token();
    common::Cmd::new(&[
        "report-stale",
        "--out",
        site.out.to_str().unwrap(),
        &wxtoken::api::digest(&token),
    ])
    .run()
    .expect(0);
    let mut c = site.refresh(&fake);
    with_metrics(&mut c);
    c.run().expect(0);
    let m = parse(&prom).unwrap();
    assert_eq!(m[&format!("wxtoken_probes_total{{{id}}}")], 1.0);
    assert_eq!(m[&format!("wxtoken_probe_alive{{{id}}}")], 1.0);
    assert_eq!(m[&format!("wxtoken_reports_consumed_total{{{id}}}")], 1.0);
    assert_eq!(m[&format!("wxtoken_consecutive_failures{{{id}}}")], 0.0);
}

/// The value of one sample line of the metrics file, read without the parser.
fn sample(prom: &std::path::Path, name: &str) -> f64 {
    let text = std::fs::read_to_string(prom).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A timer tick that finds the token fresh and nothing else changed writes nothing (the state file
/// was rewritten with two fsyncs on every tick): the state is saved when something in it changed,
/// a failure always, and its record of the last run at least every 600 s. The metrics follow every
/// run all the same.
#[test]
fn a_quiet_fresh_tick_leaves_the_state_file_alone() {
    use std::os::unix::fs::MetadataExt;
    let fake = FakeWeChat::start();
    let site = Site::new();
    let prom = site.dir.path().join("wxtoken.prom");
    let state = site.state_dir().join(".wxtoken-state.json");
    let tick = || {
        let mut c = site.refresh(&fake);
        c.args(&["--metrics", prom.to_str().unwrap(), "--probe-every", "0"]);
        c
    };
    let saved = || {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        (std::fs::metadata(&state).unwrap().ino(), v)
    };
    tick().run().expect(0);
    assert_eq!(saved().1["last_run"]["result"], "refreshed");
    tick().run().expect(0);
    let (ino, v) = saved();
    assert_eq!(v["last_run"]["result"], "fresh", "a new outcome is saved");
    let first_fresh = v["last_run"]["at"].as_u64().unwrap();

    std::thread::sleep(Duration::from_millis(1100));
    tick().run().expect(0);
    let (ino2, v) = saved();
    assert_eq!(ino2, ino, "a quiet fresh tick rewrote the state file");
    assert_eq!(v["last_run"]["at"].as_u64().unwrap(), first_fresh);
    let last_run = sample(&prom, "wxtoken_last_run_timestamp_seconds");
    assert!(
        last_run as u64 > first_fresh,
        "the metrics did not follow the quiet tick: {last_run} <= {first_fresh}"
    );

    // A failure is always saved, and so is the success after it.
    fake.set_default(Behaviour::Errcode(-1, "system error".into()));
    tick().arg("--force").run().expect(75);
    let (ino3, v) = saved();
    assert_ne!(ino3, ino);
    assert_eq!(v["consecutive_failures"], 1);
    fake.set_default(Behaviour::Normal);
    tick().run().expect(0);
    let (_, v) = saved();
    assert_eq!(v["consecutive_failures"], 0);
    assert_eq!(v["last_run"]["result"], "fresh");

    // The heartbeat: with the clock 11 minutes on, a fresh tick saves its outcome again.
    if !common::require_tool("faketime") {
        return;
    }
    let (ino4, v) = saved();
    let before = v["last_run"]["at"].as_u64().unwrap();
    tick().run_succeeding_at("+11m");
    let (ino5, v) = saved();
    assert_ne!(ino5, ino4, "the heartbeat did not save");
    assert!(v["last_run"]["at"].as_u64().unwrap() >= before + 600);
}
