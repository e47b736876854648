//! The body of an HTTP 200 answer to a token, ticket or probe call: wechat::judge_grant and
//! wechat::judge_probe, the functions the client itself calls.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use wxtoken::api::{Api, MAX_EXPIRES_IN, validate_token};
use wxtoken::error::Kind;
use wxtoken::wechat::{Answer, Context, Probe, Purpose, judge_grant, judge_probe};
use wxtoken_fuzz::assert_one_line;

const APPID: &str = "wx1234567890abcdef";

/// The answer's errcode as the API documentation states it: Ok(None) for none or 0, Ok(code),
/// Err when it is not an integer (nothing trustworthy then).
fn stated_errcode(obj: &Map<String, Value>) -> Result<Option<i64>, ()> {
    match obj.get("errcode") {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(0) => Ok(None),
            Some(code) => Ok(Some(code)),
            None => Err(()),
        },
    }
}

fuzz_target!(|body: &[u8]| {
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Some(obj),
        _ => None,
    };
    let code = obj.as_ref().map(stated_errcode);

    for purpose in [Purpose::Token, Purpose::Ticket] {
        let field = match purpose {
            Purpose::Token => "access_token",
            Purpose::Ticket => "ticket",
        };
        for api in [Api::Stable, Api::Legacy, Api::Wecom] {
            let ctx = Context {
                appid: APPID,
                api,
                secret_source: "/etc/wxtoken/secret",
                purpose,
            };
            // What the answer grants, judged apart: a valid value and lifetime, no errcode.
            let acceptable = obj.as_ref().is_some_and(|o| {
                code == Some(Ok(None))
                    && o.get(field)
                        .and_then(Value::as_str)
                        .is_some_and(|v| validate_token(v).is_ok())
                    && o.get("expires_in")
                        .and_then(Value::as_u64)
                        .is_some_and(|n| (1..=MAX_EXPIRES_IN).contains(&n))
            });
            match judge_grant(body, field, &ctx) {
                Answer::Granted(g) => {
                    let o = obj.as_ref().expect("granted from a JSON object");
                    assert!(acceptable, "granted from {o:?}");
                    assert_eq!(o.get(field), Some(&Value::String(g.value.clone())));
                    assert!(validate_token(&g.value).is_ok());
                    assert!((1..=MAX_EXPIRES_IN).contains(&g.expires_in));
                    assert_eq!(o["expires_in"].as_u64(), Some(g.expires_in));
                    assert!(g.base.is_empty());
                }
                Answer::Stop(e) => {
                    let Some(Ok(Some(code))) = code else {
                        panic!("stopped without a non-zero integer errcode: {e:?}");
                    };
                    assert!(!matches!(code, -1 | 45011), "{code} is retried, not final");
                    assert_eq!(e.errcode, Some(code));
                    let want = match (purpose, code) {
                        (Purpose::Ticket, 40001 | 40014 | 42001) => Kind::TokenRejected,
                        (_, 45009) => Kind::TempFail,
                        _ => Kind::Config,
                    };
                    assert_eq!(e.kind, want, "{e:?}");
                    assert!(e.message.contains(APPID), "{e:?}");
                    assert!(e.message.contains(&format!("errcode {code} ")), "{e:?}");
                    assert_one_line(&e.message);
                }
                Answer::Retry(why) => {
                    assert!(!acceptable, "a valid grant refused: {why}");
                    assert_one_line(&why);
                }
            }
        }
    }

    match judge_probe(body, APPID) {
        Ok(Probe::Alive) => assert_eq!(code, Some(Ok(None))),
        Ok(Probe::Dead { errcode, errmsg }) => {
            assert_eq!(code, Some(Ok(Some(errcode))));
            assert!(matches!(errcode, 40001 | 40014 | 42001));
            if !errmsg.is_empty() {
                assert_one_line(&errmsg);
            }
        }
        Ok(Probe::Unknown(why)) => {
            assert!(matches!(code, Some(Ok(Some(c))) if !matches!(c, 40001 | 40014 | 42001)));
            assert_one_line(&why);
        }
        Err(why) => {
            assert!(
                !matches!(code, Some(Ok(_))),
                "no verdict from {obj:?}: {why}"
            );
            assert_one_line(&why);
        }
    }
});
