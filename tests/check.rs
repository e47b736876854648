//! `wxtoken check [--online]`: every item of the configuration reported (PASS / FAIL / SKIP),
//! exit 0 or 78, nothing written; `--online` makes one fetch and one probe, and none of the
//! fetches that would retire the current token unless asked.

mod common;
mod fake;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// `wxtoken check` with the settings `Site::refresh` gives a refresh.
fn check(site: &Site, fake: &FakeWeChat) -> Cmd {
    let mut c = Cmd::new(&["check"]);
    c.args(&["--appid", DEFAULT_APPID, "--api-base", &fake.base_url()]);
    c.args(&[
        "--secret-file",
        site.secret.to_str().unwrap(),
        "--out",
        site.out.to_str().unwrap(),
    ]);
    c.args(&["--timeout", "2", "--max-time", "8", "--retries", "1"]);
    c
}

fn tagged<'a>(run: &'a Run, tag: &str) -> Vec<&'a str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{tag} ")))
        .collect()
}

#[track_caller]
fn has_line(run: &Run, start: &str, needle: &str) {
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with(start) && l.contains(needle)),
        "no line {start:?} with {needle:?}:\n{}",
        run.stdout
    );
}

/// A systemd tree under the site with the shipped wxtoken.service and, when given, a drop-in.
fn unit_root(site: &Site, dropin: Option<&str>) -> PathBuf {
    let root = site.dir.path().join("root");
    let lib = root.join("usr/lib/systemd/system");
    fs::create_dir_all(&lib).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/wxtoken.service");
    fs::copy(shipped, lib.join("wxtoken.service")).unwrap();
    let d = root.join("etc/systemd/system/wxtoken.service.d");
    let _ = fs::remove_dir_all(&d);
    if let Some(text) = dropin {
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("output.conf"), text).unwrap();
    }
    root
}

/// Everything in the output directory, with contents: what "writes nothing" is checked against.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| {
                let e = e.unwrap();
                let data = if e.file_type().unwrap().is_file() {
                    fs::read(e.path()).unwrap()
                } else {
                    vec![]
                };
                (e.file_name().into_string().unwrap(), data)
            })
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// A TLS fake, a site that trusts it (--ca-file), a token written by a refresh, and a unit whose
/// drop-in lets it write the site's output directory: everything a check can look at, all good.
struct Good {
    fake: FakeWeChat,
    site: Site,
    ca: PathBuf,
    root: PathBuf,
}

impl Good {
    fn new() -> Good {
        let fake = FakeWeChat::start_tls();
        let site = Site::new();
        let ca = site.dir.path().join("ca.pem");
        fs::write(&ca, fake.ca_pem().unwrap()).unwrap();
        site.refresh(&fake)
            .args(&["--ca-file", ca.to_str().unwrap()])
            .run()
            .expect(0);
        let dropin = format!("[Service]\nReadWritePaths={}\n", site.state_dir().display());
        let root = unit_root(&site, Some(&dropin));
        Good {
            fake,
            site,
            ca,
            root,
        }
    }

    fn check(&self) -> Cmd {
        let mut c = check(&self.site, &self.fake);
        c.args(&["--ca-file", self.ca.to_str().unwrap()]);
        c.args(&["--unit-root", self.root.to_str().unwrap()]);
        c
    }
}

#[test]
fn a_good_setup_passes_every_item_and_writes_nothing() {
    let g = Good::new();
    let before = snapshot(&g.site.state_dir());
    let calls = g.fake.requests().len();
    let run = g.check().run();
    run.expect(0);
    assert!(tagged(&run, "FAIL").is_empty(), "{}", run.stdout);
    assert!(tagged(&run, "SKIP").is_empty(), "{}", run.stdout);
    for (item, needle) in [
        ("PASS appid:", DEFAULT_APPID),
        ("PASS secret:", "mode 0600"),
        ("PASS base:", &format!("{}: direct", g.fake.base_url())),
        ("PASS ca-file:", "1 certificate(s)"),
        ("PASS group:", "this process's group"),
        ("PASS out:", "1 output(s)"),
        ("PASS unit wxtoken.service:", "within its ReadWritePaths="),
        ("PASS dir:", "its lock file opens"),
        ("PASS file:", "access_token.json: a regular file"),
        ("PASS file:", ".wxtoken-state.json: a regular file"),
    ] {
        has_line(&run, item, needle);
    }
    assert!(!run.stdout.contains(DEFAULT_SECRET) && !run.stderr.contains(DEFAULT_SECRET));
    assert_eq!(
        snapshot(&g.site.state_dir()),
        before,
        "check wrote something"
    );
    assert_eq!(
        g.fake.requests().len(),
        calls,
        "an offline check called out"
    );

    // The same settings as variables (as the unit's EnvironmentFile gives them) and the secret
    // as systemd's credential: the same items pass.
    let creds = g.site.dir.path().join("creds");
    fs::create_dir(&creds).unwrap();
    fs::copy(&g.site.secret, creds.join("wxtoken-secret")).unwrap();
    let run = Cmd::new(&["check"])
        .env("WXTOKEN_APPID", DEFAULT_APPID)
        .env("WXTOKEN_API_BASE", &g.fake.base_url())
        .env("WXTOKEN_OUT", g.site.out.to_str().unwrap())
        .env("WXTOKEN_CA_FILE", g.ca.to_str().unwrap())
        .env("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())
        .args(&["--unit-root", g.root.to_str().unwrap()])
        .run();
    run.expect(0);
    has_line(&run, "PASS secret:", "from $CREDENTIALS_DIRECTORY");
    has_line(&run, "PASS ca-file:", "1 certificate(s)");
    has_line(&run, "PASS file:", "access_token.json: a regular file");
    assert_eq!(snapshot(&g.site.state_dir()), before);
}

/// The trust store a refresh would load (no roots are bundled in the binary): reported for https
/// bases, a FAIL (78) when there is none, the fix named.
#[test]
fn the_trust_store_is_checked() {
    let g = Good::new();
    let empty = g.site.dir.path().join("empty.pem");
    fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    let run = g
        .check()
        .env("SSL_CERT_FILE", empty)
        .env_remove("SSL_CERT_DIR")
        .run();
    run.expect(0);
    has_line(&run, "PASS trust:", "0 root certificate(s) from the system");
    has_line(&run, "PASS trust:", ", and --ca-file's");

    let bare = || {
        let mut c = check(&g.site, &g.fake);
        c.args(&["--unit-root", g.root.to_str().unwrap()])
            .env_remove("SSL_CERT_DIR");
        c
    };
    let run = bare().env("SSL_CERT_FILE", empty).run();
    run.expect(78);
    has_line(
        &run,
        "FAIL trust:",
        &format!("SSL_CERT_FILE={empty}: 0 certificate(s)"),
    );
    has_line(&run, "FAIL trust:", "Install the ca-certificates package");
    let run = bare().env("SSL_CERT_FILE", g.ca.to_str().unwrap()).run();
    run.expect(0);
    has_line(
        &run,
        "PASS trust:",
        "1 root certificate(s) from the system (SSL_CERT_FILE=",
    );
}

/// Each broken setting alone: its FAIL line, exit 78, and every other item still reported as on
/// the good setup. Then all of them at once: every one reported, not only the first.
#[test]
fn each_broken_setting_fails_its_own_line_and_the_rest_are_still_checked() {
    let g = Good::new();
    let good = g.check().run();
    good.expect(0);
    let total = tagged(&good, "PASS").len();
    let userinfo = g.fake.base_url().replace("https://", "https://u@");

    type Break = Box<dyn Fn(&Good, &mut Cmd)>;
    let cases: Vec<(&str, &str, Break)> = vec![
        (
            "FAIL secret:",
            "readable by other users (mode 0644)",
            Box::new(|g, _| {
                fs::set_permissions(&g.site.secret, fs::Permissions::from_mode(0o644)).unwrap()
            }),
        ),
        (
            "FAIL secret:",
            "cannot be read",
            Box::new(|g, c| {
                c.set(
                    "--secret-file",
                    g.site.dir.path().join("nope").to_str().unwrap(),
                );
            }),
        ),
        (
            "FAIL base:",
            "user information",
            Box::new(move |_, c| {
                c.set("--api-base", &userinfo);
            }),
        ),
        (
            "FAIL ca-file:",
            "cannot be read",
            Box::new(|g, c| {
                c.set(
                    "--ca-file",
                    g.site.dir.path().join("no.pem").to_str().unwrap(),
                );
            }),
        ),
        (
            "FAIL file:",
            "is a FIFO",
            Box::new(|g, _| {
                fs::remove_file(&g.site.out).unwrap();
                let p = std::ffi::CString::new(g.site.out.to_str().unwrap()).unwrap();
                // SAFETY: a valid NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o644) }, 0);
            }),
        ),
        (
            "FAIL unit wxtoken.service:",
            "no ReadWritePaths= in",
            Box::new(|g, _| {
                unit_root(&g.site, None);
            }),
        ),
    ];
    for (start, needle, apply) in &cases {
        let g = Good::new();
        let mut c = g.check();
        apply(&g, &mut c);
        let run = c.run();
        run.expect(78);
        let fails = tagged(&run, "FAIL");
        assert_eq!(fails.len(), 1, "{start}: {}", run.stdout);
        has_line(&run, start, needle);
        assert_eq!(tagged(&run, "PASS").len(), total - 1, "{}", run.stdout);
        has_line(&run, "INFO result:", "exit 78");
    }

    // All at once, on one site; the secret broken one way only (it is one item).
    let all: Vec<_> = cases
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, c)| c)
        .collect();
    let mut c = g.check();
    for (_, _, apply) in &all {
        apply(&g, &mut c);
    }
    let run = c.run();
    run.expect(78);
    for (start, needle, _) in &all {
        has_line(&run, start, needle);
    }
    assert_eq!(tagged(&run, "FAIL").len(), all.len(), "{}", run.stdout);
    has_line(&run, "PASS appid:", DEFAULT_APPID);
    has_line(&run, "PASS file:", ".wxtoken-state.json");
}

/// Runs `cmd` as user nobody (65534) with no supplementary groups.
fn as_nobody(cmd: &Cmd) -> Run {
    let inner = cmd.command();
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
    c.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.stdin(std::process::Stdio::null());
    let out = c.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        elapsed: std::time::Duration::ZERO,
    }
}

/// As the service's user would meet them: a group it is not in, a directory it cannot write.
#[test]
fn as_another_user_a_group_not_joined_and_an_unwritable_directory_fail() {
    if !is_root() {
        show("SKIPPED: needs root to run check as another user");
        return;
    }
    if !require_tool("setpriv") {
        return;
    }
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    fs::set_permissions(site.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = site.state_dir();
    for p in [&site.secret, &dir, &site.out, &dir.join(".wxtoken.lock")] {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    let before = snapshot(&dir);
    let mut c = check(&site, &fake);
    c.args(&["--unit", "none"]);
    let run = as_nobody(&c);
    run.expect(0);
    has_line(&run, "INFO user:", "user nobody (uid 65534)");
    has_line(&run, "PASS file:", "user nobody can replace it");

    let mut joined = check(&site, &fake);
    joined.args(&["--unit", "none", "--group", "www-data"]);
    let run = as_nobody(&joined);
    run.expect(78);
    assert_eq!(tagged(&run, "FAIL").len(), 1, "{}", run.stdout);
    has_line(
        &run,
        "FAIL group:",
        "--group www-data: user nobody is not a member of group www-data",
    );
    has_line(&run, "FAIL group:", "SupplementaryGroups=www-data");
    has_line(&run, "PASS file:", "access_token.json");
    has_line(&run, "PASS secret:", "nobody:nogroup mode 0600");

    // The directory back to root (still open to enter): nobody may not create the temp file.
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let run = as_nobody(&c);
    run.expect(78);
    let fails = tagged(&run, "FAIL");
    assert_eq!(fails.len(), 2, "{}", run.stdout);
    has_line(
        &run,
        "FAIL file:",
        &format!("cannot write {}", site.out.display()),
    );
    has_line(&run, "FAIL file:", "Permission denied");
    has_line(&run, "FAIL file:", "(as user nobody)");
    has_line(&run, "FAIL file:", ".wxtoken-state.json");
    has_line(&run, "PASS group:", "nogroup");
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    assert_eq!(snapshot(&dir), before, "check wrote something");
}

/// The unit's writable paths: StateDirectory= covers its own directory, an output elsewhere needs
/// ReadWritePaths= (in the unit or a drop-in, %i expanded for an instance), or it fails with the
/// drop-in to add.
#[test]
fn outputs_outside_the_state_directory_need_read_write_paths() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let root = unit_root(&site, None);
    let mut c = check(&site, &fake);
    c.args(&["--unit-root", root.to_str().unwrap()]);
    let run = c.run();
    run.expect(78);
    assert_eq!(tagged(&run, "FAIL").len(), 1, "{}", run.stdout);
    let dir = site.state_dir();
    has_line(
        &run,
        "FAIL unit wxtoken.service:",
        &format!(
            "{} is outside its StateDirectory (/var/lib/wxtoken)",
            dir.display()
        ),
    );
    has_line(
        &run,
        "FAIL unit wxtoken.service:",
        &format!(
            "printf '[Service]\\nReadWritePaths={}\\n' >> /etc/systemd/system/wxtoken.service.d/",
            dir.display()
        ),
    );
    // The unit's own directory is covered by StateDirectory=.
    let mut inside = Cmd::new(&["check", "--unit-root", root.to_str().unwrap()]);
    inside.args(&[
        "--appid",
        DEFAULT_APPID,
        "--out",
        "/var/lib/wxtoken/access_token.json",
    ]);
    has_line(
        &inside.run(),
        "PASS unit wxtoken.service:",
        "/var/lib/wxtoken: within its StateDirectory /var/lib/wxtoken",
    );
    // A drop-in in /usr/lib that the one in /etc of the same name overrides, as in systemd.
    let lib = root.join("usr/lib/systemd/system/wxtoken.service.d");
    fs::create_dir_all(&lib).unwrap();
    fs::write(
        lib.join("output.conf"),
        format!("[Service]\nReadWritePaths={}\n", dir.display()),
    )
    .unwrap();
    c.run().expect(0);
    let etc = root.join("etc/systemd/system/wxtoken.service.d");
    fs::create_dir_all(&etc).unwrap();
    fs::write(etc.join("output.conf"), "[Service]\nReadWritePaths=/srv\n").unwrap();
    c.run().expect(78);
    // Several paths, "-" prefixes, continued lines; then an empty assignment resets the list.
    fs::write(
        etc.join("output.conf"),
        format!(
            "[Service]\nReadWritePaths=-{} \\\n  /srv\n",
            site.dir.path().display()
        ),
    )
    .unwrap();
    c.run().expect(0);
    fs::write(etc.join("zz-reset.conf"), "[Service]\nReadWritePaths=\n").unwrap();
    c.run().expect(78);

    // An instance: the template's %i, its drop-ins, and the instance's name in the fix.
    let tpl = root.join("usr/lib/systemd/system/wxtoken@.service");
    fs::write(
        &tpl,
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/wxtoken@.service"))
            .unwrap(),
    )
    .unwrap();
    let d = root.join("etc/systemd/system/wxtoken@.service.d");
    fs::create_dir_all(&d).unwrap();
    fs::write(
        d.join("out.conf"),
        format!(
            "[Service]\nReadWritePaths={}/%i\n",
            site.dir.path().display()
        ),
    )
    .unwrap();
    let shop = site.dir.path().join("shop");
    fs::create_dir(&shop).unwrap();
    let mut c = check(&site, &fake);
    c.args(&[
        "--unit-root",
        root.to_str().unwrap(),
        "--unit",
        "wxtoken@shop",
    ]);
    c.set("--out", shop.join("access_token.json").to_str().unwrap());
    let run = c.run();
    run.expect(0);
    has_line(
        &run,
        "PASS unit wxtoken@shop.service:",
        &format!("within its ReadWritePaths= {}", shop.display()),
    );
    c.set("--unit", "wxtoken@other");
    let run = c.run();
    run.expect(78);
    has_line(
        &run,
        "FAIL unit wxtoken@other.service:",
        "outside its StateDirectory (/var/lib/wxtoken/other)",
    );
    has_line(
        &run,
        "FAIL unit wxtoken@other.service:",
        "/etc/systemd/system/wxtoken@other.service.d/",
    );

    // No unit file at all: said, not failed.
    let empty = site.dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    c.set("--unit-root", empty.to_str().unwrap());
    let run = c.run();
    run.expect(0);
    has_line(&run, "SKIP unit:", "no unit file wxtoken@other.service");
}

/// Stable, normal mode: one fetch (force_refresh false) and one probe, and not a byte written,
/// whether a token file exists or not even its directory.
#[test]
fn online_on_stable_fetches_once_probes_once_and_writes_nothing() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let mut c = check(&site, &fake);
    c.args(&["--unit", "none", "--online"]);
    let run = c.run();
    run.expect(0);
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(fake.calls("/cgi-bin/get_api_domain_ip"), 1);
    assert_eq!(fake.force_refresh_calls(), 0);
    assert!(!site.state_dir().exists(), "check created the directory");
    has_line(
        &run,
        "PASS online fetch:",
        "the appid, the secret and this host's IP are accepted",
    );
    has_line(&run, "PASS online probe:", "WeChat accepts");
    let token = fake.current_token(DEFAULT_APPID).unwrap();
    assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token));

    site.refresh(&fake).run().expect(0);
    let before = snapshot(&site.state_dir());
    let (tokens, probes) = (fake.token_calls(), fake.calls("/cgi-bin/get_api_domain_ip"));
    c.run().expect(0);
    assert_eq!(fake.token_calls(), tokens + 1);
    assert_eq!(fake.calls("/cgi-bin/get_api_domain_ip"), probes + 1);
    assert_eq!(
        snapshot(&site.state_dir()),
        before,
        "check --online wrote something"
    );

    // A refusal is a FAIL with WeChat's errcode, and no probe of a token it did not get.
    fake.script(vec![Behaviour::Errcode(
        40164,
        "invalid ip 203.0.113.9 ipv6 ::ffff:203.0.113.9, not in whitelist rid: 1".into(),
    )]);
    let probes = fake.calls("/cgi-bin/get_api_domain_ip");
    let run = c.run();
    run.expect(78);
    has_line(&run, "FAIL online fetch:", "errcode 40164");
    has_line(&run, "FAIL online fetch:", "203.0.113.9");
    assert_eq!(fake.calls("/cgi-bin/get_api_domain_ip"), probes);
    assert_eq!(snapshot(&site.state_dir()), before);
}

/// Legacy: a fetch retires the current token, so --online alone probes the file's token and
/// fetches nothing; --yes-retire-current-token fetches once, says what it costs, writes nothing.
#[test]
fn online_on_legacy_fetches_only_when_told_to_retire_the_current_token() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    let before = snapshot(&site.state_dir());
    let file_token = site.token();
    let mut c = check(&site, &fake);
    c.args(&["--unit", "none", "--api", "legacy", "--online"]);
    let run = c.run();
    run.expect(0);
    assert_eq!(
        fake.token_calls(),
        1,
        "check --online fetched a legacy token"
    );
    assert_eq!(fake.calls("/cgi-bin/get_api_domain_ip"), 1);
    has_line(&run, "SKIP online fetch:", "--yes-retire-current-token");
    has_line(&run, "PASS online probe:", "WeChat accepts");
    assert_eq!(fake.remaining(&file_token), Some(7200));

    // WeCom is treated the same way.
    let run = Cmd::new(&["check", "--unit", "none", "--online", "--api", "wecom"])
        .args(&["--appid", DEFAULT_APPID, "--api-base", &fake.base_url()])
        .args(&["--secret-file", site.secret.to_str().unwrap()])
        .args(&["--out", site.dir.path().join("w/t.json").to_str().unwrap()])
        .run();
    run.expect(0);
    has_line(&run, "SKIP online fetch:", "with --api wecom every fetch");
    has_line(&run, "SKIP online probe:", "no unexpired token");
    assert_eq!(fake.token_calls(), 1);

    c.arg("--yes-retire-current-token");
    let run = c.run();
    run.expect(0);
    assert_eq!(fake.token_calls(), 2);
    assert_eq!(fake.calls("/cgi-bin/get_api_domain_ip"), 2);
    has_line(
        &run,
        "PASS online fetch:",
        &format!(
            "This fetch retires the token in {} within 5 minutes",
            site.out.display()
        ),
    );
    assert_eq!(
        fake.remaining(&file_token),
        Some(300),
        "the fake saw no fetch"
    );
    assert_eq!(
        snapshot(&site.state_dir()),
        before,
        "check --online wrote something"
    );

    // Clap: the confirmation means nothing without --online.
    Cmd::new(&["check", "--yes-retire-current-token"])
        .run()
        .expect(2);
}

/// Where systemd is not installed (cron or container hosts), the unit is not checked and says so;
/// nothing fails for it.
#[test]
fn without_systemd_the_unit_is_skipped() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let root = unit_root(&site, None);
    let mut c = check(&site, &fake);
    c.args(&["--unit-root", root.to_str().unwrap()]);
    // With systemd-analyze this unit fails (outputs outside its StateDirectory, see above).
    c.run().expect(78);
    let empty = site.dir.path().join("no-bin");
    fs::create_dir(&empty).unwrap();
    c.env("PATH", empty.to_str().unwrap());
    let run = c.run();
    run.expect(0);
    has_line(
        &run,
        "SKIP unit:",
        "systemd-analyze not found (no systemd here?): unit not checked",
    );
}
