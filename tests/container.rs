//! The container image (packaging/container/Containerfile, built by packaging/container/build.sh
//! as `make image` does), checked by tests/container/run.sh: built with podman FROM scratch into a
//! private store (nothing pulled), its file list exactly the binary, its libraries, the CA bundle
//! and passwd/group/nsswitch.conf (no shell), then run against the fake WeChat API on 127.0.0.1
//! with the secret bind-mounted (10001:10001, 0400) and the token directory a bind-mounted volume:
//! the process runs as uid/gid 10001, the default command (`refresh --every 60`) writes
//! access_token.json as 10001:WXTOKEN_GROUP 0640 and exits 0 on SIGTERM, a world-readable secret is
//! refused with 78. Prints the image's size ("MEASURED").
//!
//! Needs root, podman (apt-get install podman; runc too where crun cannot start containers, see
//! run.sh), make and cargo-zigbuild (the portable binary): `#[ignore]`d, run with
//! `cargo test -- --include-ignored` as .ci/run does. A missing tool skips it with the reason;
//! with CI=true it fails it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

mod pkg;
use pkg::{
    ZIGBUILD_MISSING, has_command, has_zigbuild, portable_bin, profile_dir, repo, require, show,
};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The fake WeChat server, built now (a no-op when current): `cargo test --test container` alone
/// does not build examples. From a shell's environment: build scripts watch CARGO_* (ring's).
fn fake_wechat() -> PathBuf {
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" {
            build.env_remove(&*k);
        }
    }
    let status = build
        .args(["build", "--example", "fake-wechat"])
        .env("CARGO_TARGET_DIR", profile_dir().parent().unwrap())
        .current_dir(repo())
        .status()
        .expect("run cargo build --example fake-wechat");
    assert!(status.success(), "cargo build --example fake-wechat failed");
    let bin = profile_dir().join("examples/fake-wechat");
    assert!(bin.is_file(), "{} missing after the build", bin.display());
    bin
}

/// Root (podman's store, chown of the mounts), podman, make, cargo-zigbuild (the portable binary).
fn requirements(test: &str) -> bool {
    require(test, is_root(), "needs root (podman, chown)")
        && require(
            test,
            has_command("podman"),
            "podman is not installed (apt-get install podman runc)",
        )
        && require(test, has_command("make"), "make is not installed")
        && require(test, has_zigbuild(), ZIGBUILD_MISSING)
}

const LIMIT_SECS: u64 = 300;

#[test]
#[ignore = "builds and runs the container image (podman, root): cargo test -- --include-ignored"]
fn container_image_runs_against_the_fake() {
    const TEST: &str = "container_image_runs_against_the_fake";
    if !requirements(TEST) {
        return;
    }
    let bin = portable_bin(TEST);
    let fake = fake_wechat();

    let started = Instant::now();
    let out = Command::new("timeout")
        .args(["-k", "15", &LIMIT_SECS.to_string(), "bash"])
        .arg(repo().join("tests/container/run.sh"))
        .arg(&bin)
        .env("WXTOKEN_FAKE_BIN", &fake)
        .stdin(Stdio::null())
        .output()
        .expect("run tests/container/run.sh");
    show(&format!(
        "==== {TEST} ({:.1} s, limit {LIMIT_SECS} s)\n{}{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));
    match out.status.code() {
        Some(0) => {}
        Some(124) | Some(137) => panic!("{TEST}: timed out after {LIMIT_SECS} s"),
        _ => panic!("{TEST}: failed ({}); see the output above", out.status),
    }
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "DONE"),
        "{TEST}: the checks did not finish"
    );
}
