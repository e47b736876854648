//! The systemd side of wxtoken, checked by the scripts in tests/systemd/:
//!
//! - `make_install_and_uninstall`: PREFIX, DESTDIR, CARGO_TARGET_DIR, ExecStart= rewrite, modes.
//! - `units_verify_and_security`: `systemd-analyze verify` of every unit (templates instantiated)
//!   and `systemd-analyze security --offline=yes` exposure <= 2.0 for every service; prints scores.
//! - `end_to_end_under_systemd_nspawn`: a cached Debian 12 root, `make install DESTDIR=`, booted
//!   with systemd-nspawn against the fake WeChat API; the checks are listed in
//!   tests/systemd/check-inside.sh.
//!
//! A missing tool (or not being root, for the end-to-end test) skips a test with a printed reason;
//! with CI=true it fails it instead, so CI cannot pass without running them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Writes straight to the process's stderr, past the test harness's capture, so the scores and the
/// end-to-end findings show in every `cargo test` log, not only for failures.
fn show(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = err.write_all(b"\n");
    }
}

/// Returns true when the test may go on; otherwise skips (prints why) or, in CI, panics.
fn require(test: &str, ok: bool, reason: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("{test}: {reason} (CI=true: a missing requirement is a failure)");
    }
    show(&format!("SKIPPED {test}: {reason}"));
    false
}

fn has_command(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .any(|dir| dir.join(name).is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo().join("tests/systemd").join(name)
}

/// `target/<profile>` of this build, found from the test executable (`target/<profile>/deps/…`), so
/// CARGO_TARGET_DIR and profiles are honoured.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// Runs a check script (under `timeout`), shows its output, and fails the test when it fails.
fn run_script(test: &str, mut cmd: Command, limit_secs: u64) {
    let started = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{test}: cannot run {cmd:?}: {e}"));
    let mut text = format!(
        "==== {test} ({:.0} s, limit {limit_secs} s)\n",
        started.elapsed().as_secs_f64()
    );
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    show(&text);
    match out.status.code() {
        Some(0) => {}
        Some(124) | Some(137) => panic!("{test}: timed out after {limit_secs} s"),
        _ => panic!("{test}: failed ({}); see the output above", out.status),
    }
}

fn timeout_cmd(limit_secs: u64, script_path: &Path) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "15", &limit_secs.to_string(), "bash"])
        .arg(script_path);
    cmd
}

#[test]
fn make_install_and_uninstall() {
    const TEST: &str = "make_install_and_uninstall";
    if !require(TEST, has_command("make"), "make is not installed") {
        return;
    }
    run_script(TEST, timeout_cmd(120, &script("make-install.sh")), 120);
}

#[test]
fn units_verify_and_security() {
    const TEST: &str = "units_verify_and_security";
    let ok = require(
        TEST,
        has_command("systemd-analyze"),
        "systemd-analyze is not installed (apt-get install systemd)",
    ) && require(TEST, has_command("make"), "make is not installed");
    if !ok {
        return;
    }
    let mut cmd = timeout_cmd(120, &script("verify.sh"));
    cmd.env("WXTOKEN_BIN", env!("CARGO_BIN_EXE_wxtoken"));
    run_script(TEST, cmd, 120);
}

#[test]
fn end_to_end_under_systemd_nspawn() {
    const TEST: &str = "end_to_end_under_systemd_nspawn";
    let cache_root =
        std::env::var("WXTOKEN_TEST_CACHE").unwrap_or_else(|_| "/var/cache/wxtoken-test".into());
    let cached = Path::new(&cache_root).join("bookworm").is_dir();
    let ok = require(TEST, is_root(), "needs root (systemd-nspawn, debootstrap)")
        && require(
            TEST,
            has_command("systemd-nspawn"),
            "systemd-nspawn is not installed (apt-get install systemd-container)",
        )
        && require(
            TEST,
            cached || has_command("debootstrap"),
            "debootstrap is not installed and no cached root exists (apt-get install debootstrap)",
        )
        && require(TEST, has_command("make"), "make is not installed");
    if !ok {
        return;
    }

    // `cargo test` builds the examples; a run limited to this test (`--test systemd`) does not.
    let fake = profile_dir().join("examples/fake-wechat");
    if !fake.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", "fake-wechat"])
            .current_dir(repo())
            .status()
            .expect("run cargo build --example fake-wechat");
        assert!(status.success(), "cargo build --example fake-wechat failed");
    }
    assert!(fake.is_file(), "{} missing after the build", fake.display());

    // Cold: ~40 s of debootstrap plus a few seconds of boot; warm: seconds. The limit leaves room
    // for a slow mirror without letting a hang eat CI's time.
    let limit = 900;
    let mut cmd = timeout_cmd(limit, &script("e2e.sh"));
    cmd.env("WXTOKEN_BIN", env!("CARGO_BIN_EXE_wxtoken"))
        .env("WXTOKEN_FAKE_BIN", &fake);
    run_script(TEST, cmd, limit);
}
