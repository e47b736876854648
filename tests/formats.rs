//! Several outputs under one lock: .json (the contract), .php (returns an array), .txt (the token).

mod common;
mod fake;

use std::fs;

use common::*;

#[test]
fn json_php_and_txt_are_written_together() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let dir = site.state_dir();
    let php = dir.join("access_token.php");
    let txt = dir.join("access_token.txt");
    site.refresh(&fake)
        .add("--out", php.to_str().unwrap())
        .add("--out", txt.to_str().unwrap())
        .run()
        .expect(0);
    let token = site.token();
    let v = site.read();
    assert_eq!(
        fs::read_to_string(&txt).unwrap(),
        token,
        "the .txt holds the token alone"
    );
    let php_src = fs::read_to_string(&php).unwrap();
    assert!(php_src.starts_with("<?php\n"));
    assert!(php_src.contains(&format!("'access_token' => '{token}',")));
    assert!(php_src.contains(&format!("'expires_at' => {},", v["expires_at"])));
    assert!(php_src.contains(&format!("'expire_time' => {},", v["expires_at"])));
    assert!(php_src.trim_end().ends_with(");"));
    assert_eq!(
        site.listing(),
        [
            ".wxtoken.lock",
            "access_token.json",
            "access_token.php",
            "access_token.txt"
        ]
    );

    // An output deleted by hand (or newly configured) is rendered from the fresh state, no call.
    fs::remove_file(&php).unwrap();
    let mut c = site.refresh(&fake);
    c.add("--out", php.to_str().unwrap())
        .add("--out", txt.to_str().unwrap());
    c.run().expect(0).stderr_has("still fresh");
    assert_eq!(fake.token_calls(), 1);
    assert!(fs::read_to_string(&php).unwrap().contains(&token));

    // The variable takes a comma-separated list.
    let out_list = format!("{},{}", site.out.display(), txt.display());
    let mut argv_without_out = Cmd::new(&["refresh"]);
    argv_without_out
        .args(&["--appid", DEFAULT_APPID, "--api-base", &fake.base_url()])
        .args(&["--secret-file", site.secret.to_str().unwrap(), "--force"])
        .env("WXTOKEN_OUT", &out_list)
        .run()
        .expect(0);
    assert_eq!(fs::read_to_string(&txt).unwrap(), site.token());
}

#[test]
fn the_json_state_is_required_and_extensions_are_checked() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let php = site.state_dir().join("t.php");
    site.refresh(&fake)
        .args(&["--out", php.to_str().unwrap()])
        .run()
        .expect(78)
        .stderr_has(".json");
    let odd = site.state_dir().join("t.yaml");
    site.refresh(&fake)
        .add("--out", odd.to_str().unwrap())
        .run()
        .expect(78)
        .stderr_has("t.yaml");
    assert_eq!(fake.token_calls(), 0);
}

#[test]
fn a_json_written_before_expire_time_existed_gets_it() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake).run().expect(0);
    let mut v = site.read();
    v.as_object_mut().unwrap().remove("expire_time");
    fs::write(&site.out, serde_json::to_vec(&v).unwrap()).unwrap();
    site.refresh(&fake)
        .run()
        .expect(0)
        .stderr_has("still fresh");
    assert_eq!(site.read()["expire_time"], v["expires_at"]);
    assert_eq!(fake.token_calls(), 1);
}
