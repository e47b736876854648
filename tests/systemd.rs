//! The systemd side of wxtoken, checked by the scripts in tests/systemd/:
//!
//! - `make_install_and_uninstall`: PREFIX, DESTDIR, CARGO_TARGET_DIR, ExecStart= rewrite, modes.
//! - `units_verify_and_security`: `systemd-analyze verify` of every unit (templates instantiated)
//!   and `systemd-analyze security --offline=yes` exposure <= 2.0 for every service, also with the
//!   README's drop-in for WXTOKEN_GROUP; prints scores.
//! - `end_to_end_under_systemd_nspawn`: a cached Debian 12 root, `make install DESTDIR=`, booted
//!   with systemd-nspawn against the fake WeChat API; the checks are listed in
//!   tests/systemd/check-inside.sh: timers, path units, runs and their exit statuses, the files'
//!   owners and modes, WXTOKEN_GROUP=www-data with the README's drop-in, and passive refresh (the
//!   fake revokes the token, www-data reports it, wxtoken.path brings a new one: the seconds from
//!   report to new token are printed as "MEASURED ...").
//! - `deb_package_under_systemd_nspawn`: `cargo deb`, then the .deb installed with dpkg inside a
//!   booted container: user created, timer and path unit enabled and started, service not started,
//!   conffile, remove and purge (tests/systemd/check-deb-inside.sh). Needs cargo-deb
//!   (`cargo install cargo-deb`); WXTOKEN_TEST_DEB=0 skips it, in CI too.
//!
//! - `tarball_binary_on_debian_11`, `tarball_install_under_cron_without_systemd`: the release
//!   tarball (`make dist`) in a cached Debian 11 root entered with systemd-nspawn, not booted
//!   (tests/systemd/reach.sh): the portable binary runs where the native one fails with
//!   "GLIBC_2.3x not found", and install.sh without systemd sets up cron, whose run writes the
//!   token and mails nothing. Need cargo-zigbuild (`make zig-venv`) besides the container tools.
//!
//! The container tests leave this machine (debootstrap downloads Debian packages, ~250 MB kept
//! in /var/cache/wxtoken-test): they are `#[ignore]`d, so a plain `cargo test` counts them as
//! ignored, and run with `cargo test -- --include-ignored`, as .ci/run does. A missing tool (or
//! not being root, for them) skips a test with a printed reason; with CI=true it fails it instead,
//! so CI cannot pass without running them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod pkg;
use pkg::{ZIGBUILD_MISSING, has_zigbuild, make_in_repo};

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
    let mut cmd = timeout_cmd(120, &script("make-install.sh"));
    cmd.env("WXTOKEN_GEN_DOCS", gen_docs());
    run_script(TEST, cmd, 120);
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
    cmd.env("WXTOKEN_BIN", env!("CARGO_BIN_EXE_wxtoken"))
        .env("WXTOKEN_GEN_DOCS", gen_docs());
    run_script(TEST, cmd, 120);
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// What the container tests need: root, systemd-nspawn, the cached root `name` (under
/// WXTOKEN_TEST_CACHE) or debootstrap to make it, make.
fn nspawn_requirements_for(test: &str, name: &str) -> bool {
    let cache_root =
        std::env::var("WXTOKEN_TEST_CACHE").unwrap_or_else(|_| "/var/cache/wxtoken-test".into());
    let cached = Path::new(&cache_root).join(name).is_dir();
    require(test, is_root(), "needs root (systemd-nspawn, debootstrap)")
        && require(
            test,
            has_command("systemd-nspawn"),
            "systemd-nspawn is not installed (apt-get install systemd-container)",
        )
        && require(
            test,
            cached || has_command("debootstrap"),
            "debootstrap is not installed and no cached root exists (apt-get install debootstrap)",
        )
        && require(test, has_command("make"), "make is not installed")
}

/// The Debian 12 root the unit and package tests boot.
fn nspawn_requirements(test: &str) -> bool {
    nspawn_requirements_for(test, "bookworm")
}

/// An example's binary (the fake WeChat server, gen-docs). Built every time (a no-op when it is
/// current): a run limited to these tests (`cargo test --test systemd`) does not rebuild examples,
/// and a stale one lacks what the scripts ask of it.
fn example(name: &str) -> PathBuf {
    let bin = profile_dir().join("examples").join(name);
    let mut build = cargo();
    // A shell's environment, not a test's: build scripts watch CARGO_* (ring's), which would make
    // this nested cargo rebuild half the tree.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" {
            build.env_remove(&*k);
        }
    }
    let status = build
        .args(["build", "--example", name])
        .env("CARGO_TARGET_DIR", profile_dir().parent().unwrap())
        .current_dir(repo())
        .status()
        .unwrap_or_else(|e| panic!("run cargo build --example {name}: {e}"));
    assert!(status.success(), "cargo build --example {name} failed");
    assert!(bin.is_file(), "{} missing after the build", bin.display());
    bin
}

fn fake_wechat() -> PathBuf {
    example("fake-wechat")
}

/// Writes the man pages and completions that `make install` and `cargo deb` take (see
/// examples/gen-docs.rs); the scripts run it themselves into their own directories.
fn gen_docs() -> PathBuf {
    example("gen-docs")
}

// Cold: ~35 s of debootstrap plus a few seconds of boot; warm: seconds. The limit leaves room for a
// slow mirror without letting a hang eat CI's time.
const E2E_LIMIT_SECS: u64 = 900;

#[test]
#[ignore = "boots Debian roots with systemd-nspawn (root; debootstrap keeps ~250 MB in /var/cache/wxtoken-test): cargo test -- --include-ignored"]
fn end_to_end_under_systemd_nspawn() {
    const TEST: &str = "end_to_end_under_systemd_nspawn";
    if !nspawn_requirements(TEST) {
        return;
    }
    let mut cmd = timeout_cmd(E2E_LIMIT_SECS, &script("e2e.sh"));
    cmd.arg("make")
        .env("WXTOKEN_BIN", env!("CARGO_BIN_EXE_wxtoken"))
        .env("WXTOKEN_GEN_DOCS", gen_docs())
        .env("WXTOKEN_FAKE_BIN", fake_wechat());
    run_script(TEST, cmd, E2E_LIMIT_SECS);
}

#[test]
#[ignore = "boots Debian roots with systemd-nspawn (root; debootstrap keeps ~250 MB in /var/cache/wxtoken-test): cargo test -- --include-ignored"]
fn deb_package_under_systemd_nspawn() {
    const TEST: &str = "deb_package_under_systemd_nspawn";
    if std::env::var("WXTOKEN_TEST_DEB").is_ok_and(|v| v == "0") {
        show(&format!("SKIPPED {TEST}: WXTOKEN_TEST_DEB=0"));
        return;
    }
    let has_cargo_deb = cargo()
        .args(["deb", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !(nspawn_requirements(TEST)
        && require(
            TEST,
            has_cargo_deb,
            "cargo-deb is not installed (cargo install cargo-deb --locked; or WXTOKEN_TEST_DEB=0)",
        )
        && require(TEST, has_zigbuild(), ZIGBUILD_MISSING))
    {
        return;
    }

    // `make deb`: the portable build (cargo zigbuild, glibc 2.17; about 1.5 min on 2 cores from
    // scratch), the man pages and completions where Cargo.toml's assets take them from, then
    // cargo-deb, which prints the path of the .deb as its last line.
    let started = Instant::now();
    let out = make_in_repo(&["deb"]).output().expect("run make deb");
    show(&format!(
        "==== {TEST}: make deb ({:.0} s)\n{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.trim_start().starts_with("Compiling"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    assert!(out.status.success(), "make deb failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .unwrap_or_else(|| panic!("no .deb path in cargo deb's output: {stdout}"))
        .to_string();

    let mut cmd = timeout_cmd(E2E_LIMIT_SECS, &script("e2e.sh"));
    cmd.args(["deb", &deb])
        .env("WXTOKEN_FAKE_BIN", fake_wechat());
    run_script(TEST, cmd, E2E_LIMIT_SECS);
}

/// `make dist` once for this test binary: the release tarball both reach tests unpack.
fn dist_tarball(test: &str) -> PathBuf {
    static DIST: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIST.get_or_init(|| {
        let started = Instant::now();
        let out = make_in_repo(&["dist"]).output().expect("run make dist");
        show(&format!(
            "==== {test}: make dist ({:.0} s)\n{}",
            started.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&out.stdout)
        ));
        assert!(
            out.status.success(),
            "make dist failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = stdout
            .lines()
            .find_map(|l| l.split(": ").next().filter(|p| p.ends_with(".tar.gz")))
            .unwrap_or_else(|| panic!("no tarball in make dist's output: {stdout}"));
        repo().join(path)
    })
    .clone()
}

/// What the reach tests need: the Debian 11 root, and cargo-zigbuild (the tarball's portable
/// binary).
fn reach_requirements(test: &str) -> bool {
    nspawn_requirements_for(test, "bullseye-cron")
        && require(test, has_zigbuild(), ZIGBUILD_MISSING)
}

// Cold: ~40 s of debootstrap (bullseye minbase + cron, ~140 MB kept); the cron test waits up to
// 75 s for cron's minute.
const REACH_LIMIT_SECS: u64 = 600;

/// The tarball's binary on Debian 11 (glibc 2.31): `--version`, a refresh against the fake, and
/// the control: this run's natively built binary (glibc 2.36's symbols) fails there with
/// "GLIBC_2.3x not found" (tests/systemd/reach.sh, reach-inside.sh).
#[test]
#[ignore = "boots Debian roots with systemd-nspawn (root; debootstrap keeps ~250 MB in /var/cache/wxtoken-test): cargo test -- --include-ignored"]
fn tarball_binary_on_debian_11() {
    const TEST: &str = "tarball_binary_on_debian_11";
    if !reach_requirements(TEST) {
        return;
    }
    let tarball = dist_tarball(TEST);
    let mut cmd = timeout_cmd(REACH_LIMIT_SECS, &script("reach.sh"));
    cmd.arg("portable")
        .arg(&tarball)
        .arg(env!("CARGO_BIN_EXE_wxtoken"))
        .env("WXTOKEN_FAKE_BIN", fake_wechat());
    run_script(TEST, cmd, REACH_LIMIT_SECS);
}

/// The tarball's install.sh on Debian 11 where systemd does not run: the user and group
/// (groupadd/useradd), /var/lib/wxtoken, /etc/cron.d/wxtoken; Debian's cron started there writes
/// the token (wxtoken:wxtoken 0640) within ~70 s and mails nothing (a stand-in sendmail keeps what
/// cron sends; a canary job's mail proves it would see one).
#[test]
#[ignore = "boots Debian roots with systemd-nspawn (root; debootstrap keeps ~250 MB in /var/cache/wxtoken-test): cargo test -- --include-ignored"]
fn tarball_install_under_cron_without_systemd() {
    const TEST: &str = "tarball_install_under_cron_without_systemd";
    if !reach_requirements(TEST) {
        return;
    }
    let tarball = dist_tarball(TEST);
    let mut cmd = timeout_cmd(REACH_LIMIT_SECS, &script("reach.sh"));
    cmd.arg("cron")
        .arg(&tarball)
        .env("WXTOKEN_FAKE_BIN", fake_wechat());
    run_script(TEST, cmd, REACH_LIMIT_SECS);
}
