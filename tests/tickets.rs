//! JS-SDK tickets: their own clock, their own files, never from an invalid token, and a ticket
//! failure never undoes a good token write.

mod common;
mod fake;

use std::fs;

use common::*;

fn ticket_file(site: &Site, ty: &str) -> std::path::PathBuf {
    site.state_dir().join(format!("{ty}_ticket.json"))
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn jsapi_ticket_is_written_beside_the_token_and_lives_on_its_own_clock() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--ticket", "jsapi"])
        .run()
        .expect(0)
        .stderr_has("refreshed jsapi ticket");
    let path = ticket_file(&site, "jsapi");
    let t = read_json(&path);
    let ticket = t["ticket"].as_str().unwrap();
    assert_eq!(
        Some(ticket.to_string()),
        fake.current_ticket(DEFAULT_APPID, "jsapi")
    );
    assert_eq!(t["expires_in"], 7200);
    assert_eq!(
        t["expires_at"].as_u64().unwrap() - t["refreshed_at"].as_u64().unwrap(),
        7200
    );
    assert_eq!(t["type"], "jsapi");
    assert_eq!(t["expire_time"], t["expires_at"]);
    assert_eq!(fake.calls("/cgi-bin/ticket/getticket"), 1);
    let req = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/cgi-bin/ticket/getticket")
        .unwrap();
    assert_eq!(
        req.param("access_token"),
        Some(site.token()),
        "the ticket must be fetched with the written token"
    );
    assert_eq!(req.param("type").as_deref(), Some("jsapi"));

    // Everything fresh: no call at all.
    site.refresh(&fake)
        .args(&["--ticket", "jsapi"])
        .run()
        .expect(0);
    assert_eq!(fake.token_calls(), 1);
    assert_eq!(fake.calls("/cgi-bin/ticket/getticket"), 1);

    // A token refresh does not drag the ticket along (ticket quotas are small).
    site.refresh(&fake)
        .args(&["--ticket", "jsapi", "--force", "--api", "legacy"])
        .run()
        .expect(0);
    assert_eq!(fake.calls("/cgi-bin/ticket/getticket"), 1);
    assert_eq!(read_json(&path)["ticket"], ticket);
    assert_eq!(
        site.listing(),
        [".wxtoken.lock", "access_token.json", "jsapi_ticket.json"]
    );
}

#[test]
fn an_unchanged_ticket_keeps_its_earliest_expiry() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--ticket", "jsapi"])
        .run()
        .expect(0);
    let path = ticket_file(&site, "jsapi");
    let mut t = read_json(&path);
    // Near its end: the refresher asks again and WeChat answers with the same ticket and a fresh
    // looking expires_in of 7200.
    let soon = t["refreshed_at"].as_u64().unwrap() + 200;
    t["expires_at"] = serde_json::json!(soon);
    fs::write(&path, serde_json::to_vec(&t).unwrap()).unwrap();

    site.refresh(&fake)
        .args(&["--ticket", "jsapi"])
        .run()
        .expect(0)
        .stderr_has("unchanged by WeChat");
    assert_eq!(fake.calls("/cgi-bin/ticket/getticket"), 2);
    let after = read_json(&path);
    assert_eq!(after["ticket"], t["ticket"]);
    assert_eq!(
        after["expires_at"].as_u64(),
        Some(soon),
        "the earliest known expiry must be kept"
    );

    // Once WeChat hands out a different ticket, its own expiry counts. (Two hours later on WeChat's
    // clock the token in the file is dead too: the ticket call says so and the token is renewed.)
    fake.advance(7201);
    site.refresh(&fake)
        .args(&["--ticket", "jsapi"])
        .run()
        .expect(0)
        .stderr_has("refreshed jsapi ticket");
    let newer = read_json(&path);
    assert_ne!(newer["ticket"], t["ticket"]);
    assert_eq!(
        newer["expires_at"].as_u64().unwrap() - newer["refreshed_at"].as_u64().unwrap(),
        7200
    );
}

#[test]
fn a_ticket_failure_keeps_the_token_and_sets_the_exit_status() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fake.script_tickets(vec![Behaviour::Errcode(-1, "system error".into())]);
    fake.set_ticket_default(Behaviour::Errcode(-1, "system error".into()));
    let run = site.refresh(&fake).args(&["--ticket", "jsapi"]).run();
    run.expect(75)
        .stderr_has("ticket failed")
        .stderr_has("errcode -1");
    assert!(fake.is_valid(&site.token()), "the token write stands");
    assert!(!ticket_file(&site, "jsapi").exists());

    // A refused ticket (a character that could inject code into a reader) is not written either.
    let good = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&good)
        .args(&["--ticket", "jsapi"])
        .run()
        .expect(0);
    let before = fs::read(ticket_file(&site, "jsapi")).unwrap();
    let mut t = read_json(&ticket_file(&site, "jsapi"));
    t["expires_at"] = serde_json::json!(0);
    fs::write(ticket_file(&site, "jsapi"), serde_json::to_vec(&t).unwrap()).unwrap();
    let expired = fs::read(ticket_file(&site, "jsapi")).unwrap();
    assert_ne!(before, expired);
    good.set_ticket_default(Behaviour::Token("tk'; echo pwned".into(), 7200));
    site.refresh(&good)
        .args(&["--ticket", "jsapi"])
        .run()
        .expect(75)
        .stderr_has("refused");
    assert_eq!(fs::read(ticket_file(&site, "jsapi")).unwrap(), expired);
    fault(
        "upstream",
        "jsapi ticket call fails / returns a hostile ticket",
        "exit 75, the token file kept valid, the ticket file unchanged",
    );
}

#[test]
fn no_ticket_is_fetched_without_a_valid_token() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    fake.set_default(Behaviour::Errcode(40125, "invalid appsecret".into()));
    site.refresh(&fake)
        .args(&["--ticket", "jsapi", "--ticket", "wx_card"])
        .run()
        .expect(78);
    assert_eq!(fake.ticket_calls(), 0);
    assert_eq!(site.listing(), [".wxtoken.lock"]);
}

#[test]
fn a_token_rejected_by_a_ticket_call_is_refreshed_once() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    let ours = site.token();

    // Another program fetches a legacy token for the same appid; 5 minutes later ours is dead,
    // although the file still says it has hours left.
    let other = Site::new();
    other
        .refresh(&fake)
        .args(&["--api", "legacy"])
        .run()
        .expect(0);
    fake.advance(301);
    assert!(!fake.is_valid(&ours));

    let run = site
        .refresh(&fake)
        .args(&["--api", "legacy", "--ticket", "jsapi"])
        .run();
    run.expect(0).stderr_has("refreshing the token");
    let fresh = site.token();
    assert_ne!(fresh, ours);
    assert!(fake.is_valid(&fresh));
    assert_eq!(fake.calls("/cgi-bin/token"), 3);
    let t = read_json(&ticket_file(&site, "jsapi"));
    assert_eq!(
        Some(t["ticket"].as_str().unwrap().to_string()),
        fake.current_ticket(DEFAULT_APPID, "jsapi")
    );
}

#[test]
fn wecom_tickets_and_type_checks() {
    let fake = FakeWeChat::start();
    let site = Site::new();
    site.refresh(&fake)
        .args(&["--api", "wecom"])
        .env("WXTOKEN_TICKETS", "jsapi,agent_config")
        .run()
        .expect(0);
    assert_eq!(fake.calls("/cgi-bin/get_jsapi_ticket"), 1);
    assert_eq!(fake.calls("/cgi-bin/ticket/get"), 1);
    for (ty, fake_ty) in [("jsapi", "corp_jsapi"), ("agent_config", "agent_config")] {
        let t = read_json(&ticket_file(&site, ty));
        assert_eq!(
            Some(t["ticket"].as_str().unwrap().to_string()),
            fake.current_ticket(DEFAULT_APPID, fake_ty)
        );
    }
    site.refresh(&fake)
        .args(&["--api", "wecom", "--ticket", "wx_card"])
        .run()
        .expect(78)
        .stderr_has("wx_card");
    site.refresh(&fake)
        .args(&["--api", "stable", "--ticket", "agent_config"])
        .run()
        .expect(78);
    Cmd::new(&["refresh", "--ticket", "bogus"]).run().expect(2);
}
