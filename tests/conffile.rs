//! `--config FILE` / `WXTOKEN_CONFIG` (the settings file read as systemd reads it, for cron hosts)
//! and `--quiet` / `WXTOKEN_QUIET`, run as the real binary against the fake WeChat API.

mod common;
mod fake;

use std::path::{Path, PathBuf};

use common::{Behaviour, Cmd, DEFAULT_APPID, FakeWeChat, Site};

/// Writes `lines` as a settings file in the site's directory and returns its path.
fn conf(site: &Site, name: &str, lines: &[String]) -> PathBuf {
    let path = site.dir.path().join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// What a cron host's /etc/wxtoken/wxtoken.conf holds: the account, the secret file, the output.
fn base_lines(site: &Site, fake: &FakeWeChat, out: &Path) -> Vec<String> {
    vec![
        "# settings of a host without systemd".into(),
        format!("WXTOKEN_APPID={DEFAULT_APPID}"),
        format!("WXTOKEN_API_BASE={}", fake.base_url()),
        format!("WXTOKEN_SECRET_FILE={}", site.secret.display()),
        format!("WXTOKEN_OUT={}", out.display()),
        "WXTOKEN_TIMEOUT=2".into(),
        "WXTOKEN_MAX_TIME=8".into(),
    ]
}

fn refresh_with(config: &Path) -> Cmd {
    let mut c = Cmd::new(&["refresh", "--config", config.to_str().unwrap()]);
    c.env_remove("RUST_LOG");
    c
}

#[test]
fn the_file_alone_configures_a_run() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let file = conf(&site, "wxtoken.conf", &base_lines(&site, &fake, &site.out));
    let r = refresh_with(&file).run();
    r.expect(0);
    assert!(site.out.is_file(), "no token file: {}", r.stderr);
    assert_eq!(fake.token_calls(), 1);
}

#[test]
fn a_flag_beats_the_variable_which_beats_the_file() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let dir = site.dir.path();
    let (from_file, from_env, from_flag) = (
        dir.join("file/access_token.json"),
        dir.join("env/access_token.json"),
        dir.join("flag/access_token.json"),
    );
    let file = conf(&site, "wxtoken.conf", &base_lines(&site, &fake, &from_file));

    // The variable wins over the file.
    refresh_with(&file)
        .env("WXTOKEN_OUT", from_env.to_str().unwrap())
        .run()
        .expect(0);
    assert!(from_env.is_file() && !from_file.exists());

    // The flag wins over both.
    refresh_with(&file)
        .env("WXTOKEN_OUT", from_env.to_str().unwrap())
        .args(&["--out", from_flag.to_str().unwrap()])
        .run()
        .expect(0);
    assert!(from_flag.is_file() && !from_file.exists());

    // WXTOKEN_CONFIG names the file as --config does; alone, the file decides.
    let mut c = Cmd::new(&["refresh"]);
    c.env("WXTOKEN_CONFIG", file.to_str().unwrap())
        .run()
        .expect(0);
    assert!(from_file.is_file());

    // A setting of the file is no default in the environment: a hook does not inherit it, while
    // a hook's own setting (WXTOKEN_MEMCACHED, read by contrib/hooks/memcached) reaches it.
    let env_dump = dir.join("hook-env");
    let mut lines = base_lines(&site, &fake, &from_file);
    lines.push(format!(
        "WXTOKEN_ON_CHANGE=/bin/sh -c 'env >{}'",
        env_dump.display()
    ));
    lines.push("WXTOKEN_MEMCACHED=127.0.0.1:11211".into());
    let file = conf(&site, "hooked.conf", &lines);
    refresh_with(&file).run().expect(0);
    let env = std::fs::read_to_string(&env_dump).expect("the hook ran");
    assert!(env.contains("WXTOKEN_MEMCACHED=127.0.0.1:11211"), "{env}");
    assert!(
        !env.contains("WXTOKEN_TIMEOUT=") && !env.contains("WXTOKEN_API_BASE="),
        "the file's settings leaked into the environment: {env}"
    );
}

#[test]
fn an_unknown_key_or_a_bad_line_is_78_naming_file_and_line() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let mut lines = base_lines(&site, &fake, &site.out);
    lines.push(String::new());
    lines.push("WXTOKEN_MARGN=600".into()); // line 9: a typo
    let file = conf(&site, "typo.conf", &lines);
    let r = refresh_with(&file).run();
    r.expect(78).stderr_has(&format!(
        "{}:9: unknown setting WXTOKEN_MARGN",
        file.display()
    ));
    assert_eq!(fake.token_calls(), 0, "nothing may be fetched");
    assert!(!site.out.exists());

    let mut lines = base_lines(&site, &fake, &site.out);
    lines.insert(3, "WXTOKEN_MARGIN 600".into()); // line 4: no '='
    let file = conf(&site, "noeq.conf", &lines);
    refresh_with(&file)
        .run()
        .expect(78)
        .stderr_has(&format!("{}:4: ", file.display()));

    let mut lines = base_lines(&site, &fake, &site.out);
    lines.push("WXTOKEN_MARGIN=soon".into()); // line 8: a value --margin refuses
    let file = conf(&site, "value.conf", &lines);
    refresh_with(&file).run().expect(78).stderr_has(&format!(
        "{}:8: WXTOKEN_MARGIN: invalid value 'soon'",
        file.display()
    ));

    // `check` reads the same file and refuses it the same way; a good file passes.
    let mut c = Cmd::new(&[
        "check",
        "--unit",
        "none",
        "--config",
        file.to_str().unwrap(),
    ]);
    c.run().expect(78).stderr_has(":8: WXTOKEN_MARGIN");
    let good = conf(&site, "good.conf", &base_lines(&site, &fake, &site.out));
    let mut c = Cmd::new(&[
        "check",
        "--unit",
        "none",
        "--config",
        good.to_str().unwrap(),
    ]);
    let r = c.run();
    r.expect(0);
    assert!(r.stdout.contains("PASS appid"), "{}", r.stdout);

    // A missing file is an error, not an empty configuration.
    let missing = site.dir.path().join("missing.conf");
    refresh_with(&missing)
        .run()
        .expect(78)
        .stderr_has(&format!("--config {}: cannot read it", missing.display()));
}

#[test]
fn the_secret_is_refused_in_the_file() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let secret = "0123456789abcdef0123456789abcdef";
    let mut lines = base_lines(&site, &fake, &site.out);
    lines.push(format!("WXTOKEN_SECRET={secret}"));
    let file = conf(&site, "secret.conf", &lines);
    let r = refresh_with(&file).run();
    r.expect(78)
        .stderr_has(&format!("{}:8: WXTOKEN_SECRET is refused", file.display()));
    assert!(!r.stderr.contains(secret), "the secret was logged");

    // A value that looks like an AppSecret, whatever the key.
    let mut lines = base_lines(&site, &fake, &site.out);
    lines.push(format!("WXTOKEN_GROUP={secret}"));
    let file = conf(&site, "secretish.conf", &lines);
    let r = refresh_with(&file).run();
    r.expect(78).stderr_has("looks like a secret");
    assert!(!r.stderr.contains(secret), "the secret was logged");
    assert_eq!(fake.token_calls(), 0);
}

#[test]
fn quotes_comments_and_escapes_as_systemd_reads_them() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let out = site
        .dir
        .path()
        .join("with space/it's \"#1\"/access_token.json");
    let file = conf(
        &site,
        "quoted.conf",
        &[
            "# a comment".into(),
            "; another comment, then a blank line".into(),
            String::new(),
            format!("  WXTOKEN_APPID = \"{DEFAULT_APPID}\"  "),
            format!("WXTOKEN_API_BASE='{}'", fake.base_url()),
            format!("WXTOKEN_SECRET_FILE={}", site.secret.display()),
            // Double quotes keep the blank, the ' and the #, a backslash escapes a ".
            format!(
                "WXTOKEN_OUT=\"{}/with space/it's \\\"#1\\\"/access_token.json\"",
                site.dir.path().display()
            ),
            // Unquoted, a backslash escapes any character.
            "WXTOKEN_MAX_TIME=\\8".into(),
            "# a comment that goes on \\".into(),
            "WXTOKEN_MARGIN=this line is still the comment".into(),
            "WXTOKEN_TIMEOUT=2 ; not a comment: a bad value if it were read".into(),
        ],
    );
    // The last line makes the value "2 ; not a comment...": refused, with its line.
    refresh_with(&file)
        .run()
        .expect(78)
        .stderr_has(":11: WXTOKEN_TIMEOUT: invalid value");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replace(
        "WXTOKEN_TIMEOUT=2 ; not a comment: a bad value if it were read",
        "WXTOKEN_TIMEOUT=2",
    );
    std::fs::write(&file, text).unwrap();
    let r = refresh_with(&file).run();
    r.expect(0);
    assert!(out.is_file(), "no {}: {}", out.display(), r.stderr);
}

#[test]
fn quiet_prints_nothing_on_a_fresh_tick_and_the_error_on_a_failure() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);

    // The control: without --quiet the fresh tick says so.
    let loud = site.refresh(&fake).env_remove("RUST_LOG").run();
    loud.expect(0).stderr_has("still fresh");

    let quiet = site
        .refresh(&fake)
        .env_remove("RUST_LOG")
        .arg("--quiet")
        .run();
    quiet.expect(0);
    assert_eq!(
        (quiet.stdout.as_str(), quiet.stderr.as_str()),
        ("", ""),
        "a healthy quiet tick printed something"
    );
    // WXTOKEN_QUIET and the file's WXTOKEN_QUIET do the same; RUST_LOG=info does not undo it.
    let q = site.refresh(&fake).env("WXTOKEN_QUIET", "1").run();
    assert_eq!((q.code, q.stdout.as_str(), q.stderr.as_str()), (0, "", ""));
    let mut lines = base_lines(&site, &fake, &site.out);
    lines.push("WXTOKEN_QUIET=yes".into());
    let file = conf(&site, "quiet.conf", &lines);
    let q = refresh_with(&file).env("RUST_LOG", "info").run();
    assert_eq!((q.code, q.stdout.as_str(), q.stderr.as_str()), (0, "", ""));

    // A failure still speaks: cron mails it.
    fake.set_default(Behaviour::Errcode(
        40164,
        "invalid ip 203.0.113.9, not in whitelist".into(),
    ));
    let bad = site
        .refresh(&fake)
        .env_remove("RUST_LOG")
        .args(&["--quiet", "--force"])
        .run();
    bad.expect(78)
        .stderr_has("error: WeChat answered errcode 40164");
    assert!(
        !bad.stderr.contains("info:"),
        "info lines under --quiet: {}",
        bad.stderr
    );
}
