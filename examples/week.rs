//! A week of timer ticks, simulated: the real wxtoken binary against the fake WeChat, with the
//! host clock moved by libfaketime and the fake's clock moved to match.
//!
//!   cargo build --release && cargo run --release --example week -- target/release/wxtoken [DAYS]
//!
//! Per API mode (stable, legacy): a tick every 60 s as wxtoken.timer does, a retry 30 s after a
//! failed tick as the unit's Restart=on-failure does, 1 % of ticks failing at random (WeChat busy:
//! every request of the tick, probes included, answered errcode -1), one 30-minute outage (every
//! request answered 503) that begins when the file's token has 10 minutes left, so that the whole
//! refresh window and the token's end fall inside it, and two out-of-band invalidations a day that
//! nobody reports (another program's legacy fetch, or someone's force_refresh). Between ticks the
//! token in the file is asked to the fake every 10 s: the share of those samples in which WeChat
//! accepts it is the availability. Prints a Markdown table (docs/PERFORMANCE.md has the last run).

#[path = "../tests/fake/mod.rs"]
mod fake;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fake::{Behaviour, DEFAULT_APPID, DEFAULT_SECRET, FakeWeChat};

const TICK: u64 = 60;
const RETRY: u64 = 30;
const SAMPLE: u64 = 10;
const PROBE_EVERY: u64 = 300;
const MARGIN: u64 = 300;
const OUTAGE: u64 = 30 * 60;
const OUTAGE_LEAD: u64 = 600;

/// A small deterministic generator (splitmix64): the same draws every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn libfaketime() -> PathBuf {
    for p in [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    eprintln!("libfaketime not found: apt-get install faketime");
    std::process::exit(2);
}

fn wall() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[derive(Default)]
struct Tally {
    runs: u64,
    failed_runs: u64,
    /// Token requests WeChat answered with a token: what the daily quota counts. (A request
    /// answered 503 or -1 is counted in the fake's total only.)
    answered_calls: u64,
    /// Ticks whose requests were all answered errcode -1 (outside the outage).
    failing_ticks: u64,
    /// Samples inside the outage in which the file's token was not accepted: the outage is longer
    /// than the margin, so the token runs out in it.
    outage_invalid: u64,
    samples: u64,
    valid: u64,
    /// Samples outside the windows the goal excuses (an outage longer than the margin, and the
    /// probe interval after an invalidation nobody reported).
    counted: u64,
    counted_valid: u64,
}

fn simulate(bin: &Path, api: &str, days: u64) -> (Tally, usize, usize) {
    let fake = FakeWeChat::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, DEFAULT_SECRET).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = dir.path().join("access_token.json");
    let lib = libfaketime();
    let mut rng = Rng(0x5EED ^ api.len() as u64);
    let t0 = fake.now();
    let end = t0 + days * 86_400;
    // The outage: from day 2 (or the last day) 12:00, at the first moment the file's token has
    // OUTAGE_LEAD left: the refresh window and the token's end lie inside it, and the run after it
    // must fetch.
    let outage_after = t0 + (days.min(2) - 1) * 86_400 + 12 * 3600;
    let mut outage: Option<u64> = None;
    let in_outage = |outage: Option<u64>, t: u64| outage.is_some_and(|o| t >= o && t < o + OUTAGE);
    // Invalidations at 03:17 and 15:43 every day.
    let invalidations: Vec<u64> = (0..days)
        .flat_map(|d| {
            [
                t0 + d * 86_400 + 3 * 3600 + 17 * 60,
                t0 + d * 86_400 + 15 * 3600 + 43 * 60,
            ]
        })
        .collect();
    let mut next_inv = 0;
    let mut tally = Tally::default();
    let mut now = t0;
    let mut next_run = t0;
    // An invalidation excuses [at, at + OVERLAP + PROBE_EVERY + 2 ticks): the legacy overlap, the
    // probe interval and the tick that notices. The outage excuses itself plus a tick to recover.
    let mut excused_until = 0;
    while now < end {
        while next_inv < invalidations.len() && invalidations[next_inv] <= now {
            match api {
                "legacy" => {
                    fake.legacy_fetch_out_of_band(DEFAULT_APPID);
                }
                _ => {
                    fake.stable_force_out_of_band(DEFAULT_APPID);
                }
            }
            excused_until = invalidations[next_inv] + 300 + PROBE_EVERY + 2 * TICK;
            next_inv += 1;
        }
        if now >= next_run {
            let reply = if in_outage(outage, now) {
                Behaviour::Raw(503, "text/plain".into(), b"busy".to_vec())
            } else if rng.next().is_multiple_of(100) {
                tally.failing_ticks += 1;
                // WeChat busy inside an invalidation's window can fail the very probe that would
                // notice it (or the fetch after it): the next tick tries again. A one-tick outage,
                // excused as such.
                if now < excused_until {
                    excused_until += TICK;
                }
                Behaviour::Errcode(-1, "system error".into())
            } else {
                Behaviour::Normal
            };
            let normal = matches!(reply, Behaviour::Normal);
            fake.set_default(reply.clone());
            fake.set_probe_default(reply);
            let calls_before = fake.token_calls();
            let offset = now as i64 - wall() as i64;
            let status = Command::new(bin)
                .args(["refresh", "--appid", DEFAULT_APPID, "--api", api])
                .args(["--api-base", &fake.base_url(), "--secret-file"])
                .arg(&secret)
                .arg("--out")
                .arg(&out)
                .args(["--timeout", "2", "--max-time", "10", "--retries", "0"])
                .args(["--probe-every", &PROBE_EVERY.to_string()])
                .args(["--margin", &MARGIN.to_string()])
                .env_clear()
                .env("LD_PRELOAD", &lib)
                .env("FAKETIME", format!("{offset:+}"))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1")
                .env("RUST_LOG", "error")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            tally.runs += 1;
            let calls = (fake.token_calls() - calls_before) as u64;
            if normal {
                tally.answered_calls += calls;
            }
            fake.set_default(Behaviour::Normal);
            fake.set_probe_default(Behaviour::Normal);
            if status.success() {
                next_run = now - (now - t0) % TICK + TICK;
            } else {
                tally.failed_runs += 1;
                next_run = now + RETRY;
            }
        }
        let file = std::fs::read(&out)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let expires_at = file.as_ref().and_then(|v| v["expires_at"].as_u64());
        if outage.is_none()
            && now >= outage_after
            && expires_at.is_some_and(|e| e <= now + OUTAGE_LEAD)
        {
            outage = Some(now);
        }
        let token = file.and_then(|v| v["access_token"].as_str().map(str::to_string));
        let ok = token.is_some_and(|t| fake.is_valid(&t));
        tally.samples += 1;
        tally.valid += u64::from(ok);
        let outage_excused = outage.is_some_and(|o| now >= o && now < o + OUTAGE + TICK);
        tally.outage_invalid += u64::from(in_outage(outage, now) && !ok);
        if !outage_excused && now >= excused_until {
            tally.counted += 1;
            tally.counted_valid += u64::from(ok);
        }
        fake.advance(SAMPLE);
        now += SAMPLE;
    }
    let token_calls = fake.token_calls();
    let probes = fake.calls("/cgi-bin/get_api_domain_ip");
    (tally, token_calls, probes)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bin = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/release/wxtoken".into()),
    );
    let days: u64 = args.next().map_or(7, |d| d.parse().expect("DAYS"));
    println!(
        "| API | days | runs (failed) | token calls answered / day | probes / day | token accepted, all samples | outside excused windows | busy ticks (-1) | no valid token during the outage |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for api in ["stable", "legacy"] {
        let (t, calls, probes) = simulate(&bin, api, days);
        let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
        println!(
            "| {api} | {days} | {} ({}) | {:.1} ({:.1} with refused) | {:.1} | {:.3} % | {:.3} % ({} of {}) | {} | {} s of {} s |",
            t.runs,
            t.failed_runs,
            t.answered_calls as f64 / days as f64,
            calls as f64 / days as f64,
            probes as f64 / days as f64,
            pct(t.valid, t.samples),
            pct(t.counted_valid, t.counted),
            t.counted_valid,
            t.counted,
            t.failing_ticks,
            t.outage_invalid * SAMPLE,
            OUTAGE
        );
    }
}
