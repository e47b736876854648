//! The artifacts every host gets (docs/PACKAGING.md), built by `make` as a release would:
//!
//! - `portable_binary_needs_glibc_2_17_at_most`: `make portable` (cargo zigbuild against glibc
//!   2.17) gives a binary whose every dynamic symbol version (`objdump -T`) and every version it
//!   needs (`readelf -V`) is GLIBC_2.17 or older; the same check finds newer ones in this test
//!   run's own binary (built natively on the host), so it is not vacuous. Prints the size against
//!   the 2.5 MiB goal.
//! - `dist_tarball`: `make dist` gives target/dist/wxtoken-VERSION-x86_64-linux.tar.gz with its
//!   .sha256, holding the portable binary and every file listed in the Makefile; its install.sh
//!   stages exactly the files `make install` stages (same paths, modes, contents), rewrites the
//!   cron file for PREFIX=/usr/local on a host without systemd, and `--uninstall` keeps the
//!   settings.
//! - `rpm_package`: `make rpm`, checked with `rpm -qp` (files, modes, %config(noreplace), the
//!   binary's digest, requires, scriptlets) and rpmlint: only the findings that
//!   packaging/rpm/rpmlint-accepted names and explains pass.
//!
//! They need cargo-zigbuild (`make zig-venv`), binutils, and for the RPM cargo-generate-rpm, rpm
//! and rpmlint; missing, they skip with a reason, and fail under CI=true. The tarball's binary on
//! Debian 11 and under cron: tests/systemd.rs.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

mod pkg;
use pkg::{ZIGBUILD_MISSING, has_command, has_zigbuild, make_in_repo, portable_bin, repo, require};

/// Every `GLIBC_x.y` a binary names in its dynamic symbols and in its version needs.
fn glibc_versions(bin: &Path) -> BTreeSet<(u32, u32)> {
    let mut found = BTreeSet::new();
    for (tool, args) in [("objdump", ["-T"]), ("readelf", ["-V"])] {
        let out = Command::new(tool)
            .args(args)
            .arg(bin)
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(out.status.success(), "{tool} {} failed", bin.display());
        let text = String::from_utf8_lossy(&out.stdout);
        for piece in text.split("GLIBC_").skip(1) {
            let v: String = piece
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            if let (Some(major), Some(minor)) = (parts.next(), parts.next()) {
                found.insert((major, minor));
            }
        }
    }
    found
}

fn show_versions(v: &BTreeSet<(u32, u32)>) -> String {
    v.iter()
        .map(|(a, b)| format!("GLIBC_{a}.{b}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
#[ignore = "builds the glibc 2.17 binary with cargo-zigbuild (make zig-venv): cargo test -- --include-ignored"]
fn portable_binary_needs_glibc_2_17_at_most() {
    const TEST: &str = "portable_binary_needs_glibc_2_17_at_most";
    if !(require(TEST, has_zigbuild(), ZIGBUILD_MISSING)
        && require(
            TEST,
            has_command("objdump") && has_command("readelf"),
            "objdump/readelf are not installed (apt-get install binutils)",
        )
        && require(TEST, has_command("make"), "make is not installed"))
    {
        return;
    }
    let bin = portable_bin(TEST);
    let versions = glibc_versions(&bin);
    assert!(
        versions.contains(&(2, 2)) || versions.iter().any(|v| *v <= (2, 17)),
        "no GLIBC_ version at all in {}: is it dynamically linked against glibc?",
        bin.display()
    );
    let newer: Vec<_> = versions.iter().filter(|v| **v > (2, 17)).collect();
    assert!(
        newer.is_empty(),
        "{} needs glibc newer than 2.17: {newer:?} (all: {})",
        bin.display(),
        show_versions(&versions)
    );
    // The control: the same check on a binary linked on this host (glibc 2.36 on Debian 12) finds
    // what the portable build avoids.
    let native = glibc_versions(Path::new(env!("CARGO_BIN_EXE_wxtoken")));
    assert!(
        native.iter().any(|v| *v > (2, 17)),
        "the check found nothing newer than 2.17 in the natively built binary either ({}): it \
         would not notice a regression",
        show_versions(&native)
    );
    let size = std::fs::metadata(&bin).unwrap().len();
    pkg::show(&format!(
        "MEASURED portable binary {}: {size} bytes (goal <= 2,621,440: {}), newest {}; native \
         test binary needs {}",
        bin.display(),
        if size <= 2_621_440 { "met" } else { "NOT met" },
        show_versions(&versions).rsplit(' ').next().unwrap_or(""),
        show_versions(&native).rsplit(' ').next().unwrap_or("")
    ));
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(mode path)` of every file and link under `root`, sorted, and the files' contents.
fn tree(root: &Path) -> (Vec<String>, Vec<(String, Vec<u8>)>) {
    let listing = run_ok(
        Command::new("find")
            .arg(".")
            .args(["(", "-type", "f", "-o", "-type", "l", ")"])
            .args(["-printf", "%m %p\\n"])
            .current_dir(root),
    );
    let mut lines: Vec<String> = listing.lines().map(str::to_string).collect();
    lines.sort();
    let contents = lines
        .iter()
        .map(|l| {
            let p = l.split_once(' ').unwrap().1.to_string();
            let bytes = std::fs::read(root.join(&p)).unwrap();
            (p, bytes)
        })
        .collect();
    (lines, contents)
}

fn version() -> String {
    let toml = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    toml.lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("version in Cargo.toml")
        .to_string()
}

#[test]
#[ignore = "builds the glibc 2.17 binary with cargo-zigbuild (make zig-venv): cargo test -- --include-ignored"]
fn dist_tarball() {
    const TEST: &str = "dist_tarball";
    if !(require(TEST, has_zigbuild(), ZIGBUILD_MISSING)
        && require(TEST, has_command("make"), "make is not installed")
        && require(TEST, has_command("sha256sum"), "sha256sum is not installed"))
    {
        return;
    }
    let bin = portable_bin(TEST);
    let out = make_in_repo(&["dist"]).output().expect("run make dist");
    assert!(
        out.status.success(),
        "make dist failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = format!("wxtoken-{}-x86_64-linux", version());
    let dist = repo().join("target/dist");
    let tarball = dist.join(format!("{name}.tar.gz"));
    assert!(tarball.is_file(), "{} missing", tarball.display());
    // The checksum file verifies the tarball, as a downloader would check it.
    let check = run_ok(
        Command::new("sha256sum")
            .args(["-c", &format!("{name}.tar.gz.sha256")])
            .current_dir(&dist),
    );
    assert!(check.contains(": OK"), "sha256sum -c: {check}");

    let work = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .current_dir(work.path()),
    );
    let top = work.path().join(&name);
    let (listing, _) = tree(&top);
    let mut expected: Vec<String> = [
        "755 ./bin/wxtoken",
        "755 ./install.sh",
        "644 ./README.md",
        "644 ./docs/PACKAGING.md",
        "644 ./wxtoken.conf",
        "644 ./cron.d/wxtoken",
        "644 ./systemd/wxtoken.service",
        "644 ./systemd/wxtoken.timer",
        "644 ./systemd/wxtoken.path",
        "644 ./systemd/wxtoken@.service",
        "644 ./systemd/wxtoken@.timer",
        "644 ./systemd/wxtoken@.path",
        "644 ./systemd/wxtoken.sysusers",
        "644 ./completions/wxtoken.bash",
        "644 ./completions/_wxtoken",
        "644 ./completions/wxtoken.fish",
        "755 ./contrib/hooks/memcached",
        "755 ./contrib/hooks/mysql-wx_token",
        "644 ./contrib/php/wxtoken.php",
        "644 ./contrib/python/wxtoken_reader.py",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pages: Vec<String> = listing
        .iter()
        .filter(|l| l.starts_with("644 ./man/man1/wxtoken"))
        .cloned()
        .collect();
    assert!(
        pages.iter().any(|p| p.ends_with("/wxtoken-refresh.1")),
        "no wxtoken-refresh.1 in the tarball: {listing:?}"
    );
    expected.extend(pages);
    expected.sort();
    assert_eq!(listing, expected, "the tarball's files and modes");
    assert_eq!(
        std::fs::read(top.join("bin/wxtoken")).unwrap(),
        std::fs::read(&bin).unwrap(),
        "the tarball's binary is not the portable build"
    );

    // install.sh stages what `make install` stages (systemd host), file for file.
    let staged = work.path().join("from-tarball");
    run_ok(
        Command::new("sh")
            .arg(top.join("install.sh"))
            .arg("--systemd")
            .env("DESTDIR", &staged),
    );
    let by_make = work.path().join("from-make");
    run_ok(
        make_in_repo(&["install"])
            .arg(format!("DESTDIR={}", by_make.display()))
            .arg(format!("BIN={}", bin.display())),
    );
    let (a, a_contents) = tree(&staged);
    let (b, b_contents) = tree(&by_make);
    assert_eq!(a, b, "install.sh and make install stage different files");
    for ((path, x), (_, y)) in a_contents.iter().zip(&b_contents) {
        assert!(x == y, "{path}: install.sh and make install differ");
    }
    let hooks_conf = String::from_utf8_lossy(
        &a_contents
            .iter()
            .find(|(p, _)| p == "./etc/wxtoken/wxtoken.conf")
            .expect("/etc/wxtoken/wxtoken.conf staged")
            .1,
    )
    .into_owned();
    assert!(
        hooks_conf.contains("#WXTOKEN_ON_CHANGE=/usr/local/lib/wxtoken/hooks/memcached"),
        "wxtoken.conf does not name the hooks where PREFIX=/usr/local puts them"
    );
    assert!(
        a.contains(&"755 ./usr/local/lib/wxtoken/hooks/memcached".to_string()),
        "hooks not installed in /usr/local/lib/wxtoken/hooks: {a:?}"
    );

    // A host without systemd: the cron file names the installed binary, and the new settings name
    // the secret file (nothing hands it over as a credential there).
    let cron_root = work.path().join("cron-host");
    run_ok(
        Command::new("sh")
            .arg(top.join("install.sh"))
            .arg("--cron")
            .env("DESTDIR", &cron_root),
    );
    let cron = std::fs::read_to_string(cron_root.join("etc/cron.d/wxtoken")).unwrap();
    let job: Vec<&str> = cron
        .lines()
        .filter(|l| l.starts_with("* * * * *"))
        .collect();
    assert_eq!(
        job,
        [
            "* * * * * wxtoken /usr/local/bin/wxtoken refresh --config /etc/wxtoken/wxtoken.conf --quiet"
        ],
        "the cron job"
    );
    let conf = std::fs::read_to_string(cron_root.join("etc/wxtoken/wxtoken.conf")).unwrap();
    assert!(
        conf.lines()
            .any(|l| l == "WXTOKEN_SECRET_FILE=/etc/wxtoken/secret"),
        "a cron host's wxtoken.conf must name the secret file"
    );
    run_ok(
        Command::new("sh")
            .arg(top.join("install.sh"))
            .args(["--cron", "--uninstall"])
            .env("DESTDIR", &cron_root),
    );
    let (left, _) = tree(&cron_root);
    assert_eq!(
        left,
        ["644 ./etc/wxtoken/wxtoken.conf"],
        "--uninstall leaves the settings only"
    );
}

/// rpmlint from PyPI (`.ci/run`: a venv with Debian's python3-rpm), or one on PATH.
fn rpmlint() -> Option<std::path::PathBuf> {
    let venv = repo().join("target/rpmlint-venv/bin/rpmlint");
    if venv.is_file() {
        Some(venv)
    } else if has_command("rpmlint") {
        Some("rpmlint".into())
    } else {
        None
    }
}

#[test]
#[ignore = "builds the glibc 2.17 binary with cargo-zigbuild (make zig-venv): cargo test -- --include-ignored"]
fn rpm_package() {
    const TEST: &str = "rpm_package";
    let has_generate_rpm = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["generate-rpm", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !(require(TEST, has_zigbuild(), ZIGBUILD_MISSING)
        && require(
            TEST,
            has_generate_rpm,
            "cargo-generate-rpm is not installed (cargo install cargo-generate-rpm --locked)",
        )
        && require(
            TEST,
            has_command("rpm"),
            "rpm is not installed (apt-get install rpm)",
        )
        && require(
            TEST,
            rpmlint().is_some(),
            "rpmlint is not installed (apt-get install python3-rpm; python3 -m venv \
             --system-site-packages target/rpmlint-venv; target/rpmlint-venv/bin/pip install rpmlint)",
        ))
    {
        return;
    }
    let bin = portable_bin(TEST);
    let out = make_in_repo(&["rpm"]).output().expect("run make rpm");
    assert!(
        out.status.success(),
        "make rpm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rpm = repo().join(format!(
        "target/generate-rpm/wxtoken-{}-1.x86_64.rpm",
        version()
    ));
    assert!(rpm.is_file(), "{} missing", rpm.display());
    let q = |args: &[&str]| run_ok(Command::new("rpm").arg("-qp").args(args).arg(&rpm));

    // The files, their modes, and which are %config(noreplace) ("cn") or %doc ("d").
    let files = q(&[
        "--qf",
        "[%{FILEMODES:perms} %{FILEFLAGS:fflags} %{FILENAMES}\\n]",
    ]);
    let mut files: Vec<String> = files
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    files.sort();
    let mut expected: Vec<String> = [
        "-rw-r--r-- cn /etc/wxtoken/wxtoken.conf",
        "-rwxr-xr-x /usr/bin/wxtoken",
        "-rw-r--r-- /usr/lib/systemd/system/wxtoken.service",
        "-rw-r--r-- /usr/lib/systemd/system/wxtoken.timer",
        "-rw-r--r-- /usr/lib/systemd/system/wxtoken.path",
        "-rw-r--r-- /usr/lib/systemd/system/wxtoken@.service",
        "-rw-r--r-- /usr/lib/systemd/system/wxtoken@.timer",
        "-rw-r--r-- /usr/lib/systemd/system/wxtoken@.path",
        "-rw-r--r-- /usr/lib/sysusers.d/wxtoken.conf",
        "-rwxr-xr-x /usr/lib/wxtoken/hooks/memcached",
        "-rwxr-xr-x /usr/lib/wxtoken/hooks/mysql-wx_token",
        "-rw-r--r-- d /usr/share/doc/wxtoken/README.md",
        "-rw-r--r-- d /usr/share/doc/wxtoken/wxtoken.conf.example",
        "-rw-r--r-- d /usr/share/doc/wxtoken/wxtoken.cron",
        "-rw-r--r-- /usr/share/bash-completion/completions/wxtoken",
        "-rw-r--r-- /usr/share/zsh/site-functions/_wxtoken",
        "-rw-r--r-- /usr/share/fish/vendor_completions.d/wxtoken.fish",
        "-rw-r--r-- /usr/share/wxtoken/php/wxtoken.php",
        "-rw-r--r-- /usr/share/wxtoken/python/wxtoken_reader.py",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pages: Vec<String> = files
        .iter()
        .filter(|l| l.contains("/usr/share/man/man1/wxtoken"))
        .cloned()
        .collect();
    assert!(
        pages.contains(&"-rw-r--r-- d /usr/share/man/man1/wxtoken-refresh.1".to_string()),
        "no wxtoken-refresh.1 in the RPM: {files:?}"
    );
    expected.extend(pages);
    expected.sort();
    assert_eq!(
        files, expected,
        "the RPM's files (rpm -qp --qf FILEMODES FILEFLAGS FILENAMES)"
    );
    let listed = q(&["-l"]);
    assert!(
        listed
            .lines()
            .any(|l| l == "/usr/lib/sysusers.d/wxtoken.conf")
    );

    // The binary is the portable build, byte for byte (the digest rpm recorded for it).
    let dump = q(&["--dump"]);
    let digest = dump
        .lines()
        .find_map(|l| l.strip_prefix("/usr/bin/wxtoken "))
        .and_then(|rest| rest.split_whitespace().nth(2))
        .expect("/usr/bin/wxtoken in rpm --dump")
        .to_string();
    let sha = run_ok(Command::new("sha256sum").arg(&bin));
    assert_eq!(
        Some(digest.as_str()),
        sha.split_whitespace().next(),
        "the RPM's binary is not the portable build"
    );

    // Requires: nothing newer than glibc 2.17, and systemd.
    let requires = q(&["--requires"]);
    for l in requires.lines() {
        if let Some(v) = l.split("(GLIBC_").nth(1) {
            let v: Vec<u32> = v
                .trim_end_matches(")(64bit)")
                .split('.')
                .map(|p| p.parse().unwrap_or(0))
                .collect();
            assert!(
                (v[0], v.get(1).copied().unwrap_or(0)) <= (2, 17),
                "requires glibc newer than 2.17: {l}"
            );
        }
    }
    assert!(
        requires.lines().any(|l| l.trim() == "systemd"),
        "{requires}"
    );

    // Scriptlets: the user, enable and start on install, stop and disable on erase.
    let scripts = q(&["--scripts"]);
    // `rpm --scripts` prints each as a "NAME scriptlet (using /bin/sh):" line, then its text.
    let part = |name: &str| -> String {
        let is_header = |l: &str| {
            l.split_whitespace().nth(1) == Some("scriptlet") && l.trim_end().ends_with(':')
        };
        let mut lines = scripts
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{name} scriptlet")));
        let header = lines
            .next()
            .unwrap_or_else(|| panic!("no {name} scriptlet: {scripts}"));
        let body: Vec<&str> = lines.take_while(|l| !is_header(l)).collect();
        format!("{header}\n{}", body.join("\n"))
    };
    let post = part("postinstall");
    for needle in [
        "systemd-sysusers /usr/lib/sysusers.d/wxtoken.conf",
        "useradd -r -g wxtoken",
        "systemctl enable wxtoken.timer wxtoken.path",
        "systemctl start wxtoken.timer wxtoken.path",
    ] {
        assert!(
            post.contains(needle),
            "postinstall lacks {needle:?}: {post}"
        );
    }
    assert!(!post.contains("start wxtoken.service"), "{post}");
    let preun = part("preuninstall");
    for needle in [
        "[ \"$1\" -eq 0 ]",
        "systemctl disable wxtoken.timer wxtoken.path",
        "systemctl stop 'wxtoken.timer'",
    ] {
        assert!(
            preun.contains(needle),
            "preuninstall lacks {needle:?}: {preun}"
        );
    }
    // The scriptlets are valid sh.
    for (name, text) in [("post", &post), ("preun", &preun)] {
        let body: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
        let st = Command::new("sh")
            .args(["-n", "-c", &body])
            .status()
            .unwrap();
        assert!(st.success(), "{name}: sh -n failed");
    }

    // rpmlint: every finding must be one of packaging/rpm/rpmlint-accepted's.
    let accepted_text =
        std::fs::read_to_string(repo().join("packaging/rpm/rpmlint-accepted")).unwrap();
    let accepted: Vec<&str> = accepted_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let lint = Command::new(rpmlint().unwrap()).arg(&rpm).output().unwrap();
    let text =
        String::from_utf8_lossy(&lint.stdout).into_owned() + &String::from_utf8_lossy(&lint.stderr);
    let findings: Vec<&str> = text.lines().filter(|l| l.starts_with("wxtoken")).collect();
    assert!(
        text.contains("1 packages and 0 specfiles checked"),
        "rpmlint did not check the package: {text}"
    );
    let unexpected: Vec<&&str> = findings
        .iter()
        .filter(|l| {
            let name = l
                .split(": ")
                .nth(2)
                .and_then(|r| r.split_whitespace().next());
            !name.is_some_and(|n| accepted.contains(&n))
        })
        .collect();
    pkg::show(&format!(
        "==== {TEST}: rpmlint findings (accepted: packaging/rpm/rpmlint-accepted)\n{}",
        findings.join("\n")
    ));
    assert!(
        unexpected.is_empty(),
        "rpmlint findings not accepted in packaging/rpm/rpmlint-accepted: {unexpected:#?}"
    );
}
