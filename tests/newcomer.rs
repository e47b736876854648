//! The newcomer's path, run as a newcomer would: the README's by-hand block as printed (fake WeChat
//! in the background on a free 127.0.0.1 port, one refresh, the fake stopped) and scripts/demo.sh.
//! Both call `cargo run` / `cargo build` themselves, as the README tells people to.

mod common;
mod fake;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory of this build (`<target>/<profile>/deps/this-test`), so the nested cargo
/// finds what `cargo test` just built instead of building it again elsewhere.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Runs `bash -e -c SCRIPT` in the repository in its own process group, with cargo on PATH and the
/// temp directory in `tmp`; whatever it left running (a fake it failed to stop) is killed after.
fn run_bash(script: &str, tmp: &Path, limit: Duration) -> (Output, bool) {
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = cargo.parent().filter(|d| !d.as_os_str().is_empty()) {
        path = std::env::join_paths(
            std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&path)),
        )
        .unwrap();
    }
    let mut cmd = Command::new("bash");
    cmd.args(["-e", "-c", script])
        .current_dir(repo())
        .env("PATH", path)
        .env("TMPDIR", tmp)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // A shell's environment, not a test's: cargo gives tests CARGO_MANIFEST_DIR, CARGO_PKG_*...,
    // which build scripts watch (ring's), so the nested cargo would rebuild half the tree.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("WXTOKEN_")
            || k.to_lowercase().ends_with("_proxy")
            || (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k == "LD_LIBRARY_PATH"
        {
            cmd.env_remove(&*k);
        }
    }
    cmd.env("CARGO_TARGET_DIR", target_dir());
    let child = cmd.spawn().expect("run bash");
    let pgid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let started = Instant::now();
    let result = rx.recv_timeout(limit);
    // Anything of the group still alive a few seconds on: the block did not stop its fake (or
    // hung). A fake that got SIGTERM just now may take a moment to go.
    // SAFETY: kill(2) on our own child's process group; no memory is involved.
    let alive = || unsafe { libc::kill(-pgid, 0) } == 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let leftovers = alive();
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let out = match result {
        Ok(out) => out.expect("wait for bash"),
        Err(_) => panic!(
            "the block did not finish within {:?} (started {:?} ago)",
            limit,
            started.elapsed()
        ),
    };
    (out, leftovers)
}

fn readme_block(name: &str) -> String {
    let out = Command::new("bash")
        .arg(repo().join("tests/systemd/readme-block.sh"))
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_readmes_by_hand_block_runs_as_pasted() {
    let block = readme_block("by-hand");
    let tmp = tempfile::tempdir().unwrap();
    let (out, leftovers) = run_bash(&block, tmp.path(), Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the block failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // What `cat` showed (after the block's progress lines) is the token file the refresh wrote.
    let json = stdout
        .find("\n{")
        .map(|i| &stdout[i + 1..])
        .unwrap_or_else(|| panic!("no token file in stdout:\n{stdout}\n{stderr}"));
    let file: serde_json::Value = serde_json::from_str(json.trim())
        .unwrap_or_else(|e| panic!("stdout is not the token file ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(file["appid"], common::DEFAULT_APPID);
    assert!(file["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(stderr.contains("refreshed"), "{stderr}");
    // The newcomer is told what takes two minutes the first time.
    assert!(stdout.contains("cargo is compiling"), "{stdout}");
    // The fake ran on a port of its choosing, and the block stopped it.
    let addr = stdout
        .lines()
        .find_map(|l| l.split("listens on http://").nth(1))
        .unwrap_or_else(|| panic!("no URL of the fake in:\n{stdout}"))
        .trim()
        .to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // The scratch directory held the secret: nothing of it is left in the temp directory.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "the block left {left:?} behind");
    assert!(!leftovers, "the block left a process running");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the fake still listens on {addr}"
    );
}

#[test]
fn the_demo_shows_the_good_files_again_after_the_wrong_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, leftovers) = run_bash("exec scripts/demo.sh", tmp.path(), Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo.sh failed ({}):\n{stdout}",
        out.status
    );
    assert!(!leftovers, "demo.sh left a process running");
    let (first, after) = stdout
        .split_once("(exit status 78)")
        .unwrap_or_else(|| panic!("no wrong-secret run in:\n{stdout}"));
    let token_in = |text: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix("\"access_token\": \""))
            .map(|t| t.trim_end_matches([',', '"']).to_string())
    };
    let good = token_in(first).expect("the token file shown before");
    assert_eq!(
        token_in(after).as_deref(),
        Some(good.as_str()),
        "the token file is shown again after the failed run, unchanged:\n{after}"
    );
    assert!(after.contains("jsapi_ticket.json"), "{after}");
    assert!(after.contains("byte for byte"), "{after}");
}
