//! `wxtoken status`: an admin's and a monitoring check's view of the files.

mod common;
mod fake;

use common::*;

#[test]
fn status_reports_fresh_due_and_missing() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    let out = site.out.to_str().unwrap().to_string();
    let status = |extra: &[&str]| {
        let mut c = Cmd::new(&["status", "--out", &out]);
        c.args(extra);
        c.run()
    };

    let r = status(&[]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("no valid token file"), "{}", r.stdout);

    site.refresh(&fake)
        .args(&["--ticket", "jsapi"])
        .run()
        .expect(0);
    let token = site.token();
    let r = status(&["--ticket", "jsapi"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(": fresh: token ") && r.stdout.contains(DEFAULT_APPID),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&token[..6]) && !r.stdout.contains(&token),
        "token not masked: {}",
        r.stdout
    );
    assert!(r.stdout.contains("jsapi ticket"), "{}", r.stdout);

    let r = status(&["--margin", "7000"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let mut v = site.read();
    v["expires_at"] = serde_json::json!(v["refreshed_at"].as_u64().unwrap() + 200);
    std::fs::write(&site.out, serde_json::to_vec(&v).unwrap()).unwrap();
    let r = status(&[]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("due for refresh"), "{}", r.stdout);

    let r = status(&["--ticket", "wx_card"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("no valid wx_card ticket file"),
        "{}",
        r.stdout
    );
    assert_eq!(fake.token_calls(), 1, "status never calls WeChat");
}
