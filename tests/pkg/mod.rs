//! What the packaging tests share (tests/portable.rs, tests/systemd.rs): the CI rule for missing
//! tools, `make` targets run from the repository, the portable binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Writes straight to the process's stderr, past the test harness's capture.
pub fn show(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = err.write_all(b"\n");
    }
}

/// Returns true when the test may go on; otherwise skips (prints why) or, in CI, panics.
pub fn require(test: &str, ok: bool, reason: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("{test}: {reason} (CI=true: a missing requirement is a failure)");
    }
    show(&format!("SKIPPED {test}: {reason}"));
    false
}

pub fn has_command(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .any(|dir| dir.join(name).is_file())
    })
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>` of this build, found from the test executable (`target/<profile>/deps/…`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// The CARGO_TARGET_DIR of this build.
pub fn target_dir() -> PathBuf {
    profile_dir().parent().unwrap().to_path_buf()
}

/// `make TARGET...` in the repository with this build's CARGO_TARGET_DIR, from a shell's
/// environment: build scripts watch CARGO_* (ring's), which would make
/// the nested cargo rebuild half the tree.
pub fn make_in_repo(targets: &[&str]) -> Command {
    let mut cmd = Command::new("make");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_") && k != "CARGO_HOME" {
            cmd.env_remove(&*k);
        }
    }
    cmd.arg("-s")
        .args(targets)
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(repo())
        .stdin(Stdio::null());
    cmd
}

pub const ZIGBUILD_MISSING: &str = "cargo-zigbuild is not installed (make zig-venv: ziglang and \
     cargo-zigbuild from PyPI into target/zig-venv; or cargo install cargo-zigbuild)";

/// `make portable` finds cargo-zigbuild on PATH or in target/zig-venv (`make zig-venv`).
pub fn has_zigbuild() -> bool {
    has_command("cargo-zigbuild") || repo().join("target/zig-venv/bin/cargo-zigbuild").is_file()
}

/// The portable binary (`make portable`: cargo zigbuild against glibc 2.17), built or brought up
/// to date now, as the tarball, the .deb and the RPM carry it.
pub fn portable_bin(test: &str) -> PathBuf {
    let started = Instant::now();
    let out = make_in_repo(&["portable"])
        .output()
        .expect("run make portable");
    show(&format!(
        "==== {test}: make portable ({:.0} s)\n{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout)
    ));
    assert!(
        out.status.success(),
        "make portable failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir().join("x86_64-unknown-linux-gnu/release/wxtoken")
}
