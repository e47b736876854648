//! The SDK key formats of `--publish`: where each SDK's own cache looks for the token.
//!
//! With the token there, apps built on that SDK find a fresh token and never fetch one themselves (which is what
//! breaks fleets: every fetch from the legacy API retires the token the other hosts hold).
//!
//! Each format reproduces the SDK's key, value encoding and lifetime as its source writes them (the
//! file is named at each format). The TTL is always the token's remaining validity: wxtoken replaces
//! it `--margin` seconds before that, so the SDK never finds its key missing or "expired" and never
//! reaches its own fetch code.
//!
//! EasyWeChat 6 is deliberately absent: its cache key embeds the AppSecret
//! (`easywechat.access_token.{appid}.{secret}.{stable}`), and so does wechatpy's WeCom client
//! (`{corpid}_{secret[:10]}_access_token`); wxtoken never writes a secret into Redis.

use crate::api::{Api, TicketType};
use crate::clock::secs_until;
use crate::error::{Error, Result};
use crate::store::TokenFile;
use crate::store::ticket_file::TicketFile;

/// One key to write: its value and its lifetime in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// wechatpy's `RedisStorage(redis, prefix)` (default prefix `wechatpy`).
    Wechatpy { prefix: String },
    /// silenceper/wechat's `cache.Redis` under a credential key prefix.
    Silenceper { prefix: String },
    /// WxJava's `WxMpRedisConfigImpl(redisOps, keyPrefix)` with a string-valued ops (RedisTemplate,
    /// Jedis).
    Wxjava { prefix: String },
    /// Yii 2's `yii\redis\Cache` (seed 000: `Yii::$app->redis_cache->get('weixin_access_token')`).
    Yii2 { key_prefix: String, key: String },
}

impl Sdk {
    pub fn name(&self) -> &'static str {
        match self {
            Sdk::Wechatpy { .. } => "wechatpy",
            Sdk::Silenceper { .. } => "silenceper",
            Sdk::Wxjava { .. } => "wxjava",
            Sdk::Yii2 { .. } => "yii2",
        }
    }

    /// `FORMAT[:PREFIX]`, or for yii2 `yii2[:KEYPREFIX[:KEY]]`.
    pub fn parse(spec: &str, api: Api) -> Result<Sdk> {
        let spec = spec.trim();
        let (format, rest) = match spec.split_once(':') {
            Some((f, r)) => (f, Some(r)),
            None => (spec, None),
        };
        let bad = |why: String| Error::config(format!("--publish {spec:?}: {why}"));
        let check = |what: &str, s: &str| -> Result<String> {
            // A key is a Redis key: printable ASCII without blanks keeps it the same in redis-cli,
            // the SDK's configuration and this setting.
            if s.bytes().all(|b| b.is_ascii_graphic()) && s.len() <= 200 {
                Ok(s.to_string())
            } else {
                Err(bad(format!(
                    "the {what} {s:?} must be printable ASCII without blanks"
                )))
            }
        };
        let prefix = |default: &str| match rest {
            Some(p) if !p.is_empty() => check("prefix", p),
            _ => Ok(default.to_string()),
        };
        let no_wecom = |why: &str| {
            if api == Api::Wecom {
                Err(bad(format!("not for WeCom: {why}")))
            } else {
                Ok(())
            }
        };
        match format {
            "wechatpy" => {
                no_wecom(
                    "wechatpy's WeCom client puts the first 10 characters of the corpsecret in \
                     its key, which wxtoken never writes into Redis",
                )?;
                Ok(Sdk::Wechatpy {
                    prefix: prefix("wechatpy")?,
                })
            }
            "silenceper" => Ok(Sdk::Silenceper {
                prefix: prefix(if api == Api::Wecom {
                    "gowechat_work_"
                } else {
                    "gowechat_officialaccount_"
                })?,
            }),
            "wxjava" => {
                no_wecom("WxJava's WeCom storage (WxCpRedisConfigImpl) is not supported yet")?;
                Ok(Sdk::Wxjava {
                    prefix: prefix("wx")?,
                })
            }
            "yii2" => {
                let (key_prefix, key) = match rest {
                    None => ("", "weixin_access_token"),
                    Some(r) => match r.split_once(':') {
                        Some((p, k)) if !k.is_empty() => (p, k),
                        Some((p, _)) => (p, "weixin_access_token"),
                        None => (r, "weixin_access_token"),
                    },
                };
                let key_prefix = if key_prefix.is_empty() {
                    String::new()
                } else {
                    check("keyPrefix", key_prefix)?
                };
                Ok(Sdk::Yii2 {
                    key_prefix,
                    key: check("cache key", key)?,
                })
            }
            "easywechat" => Err(bad(
                "EasyWeChat 6 puts the AppSecret in its cache key, which wxtoken never writes into \
                 Redis; give EasyWeChat wxtoken's token through a custom AccessToken class instead \
                 (contrib/easywechat6/WxtokenAccessToken.php)"
                    .into(),
            )),
            other => Err(bad(format!(
                "unknown format {other:?}: expected wechatpy, silenceper, wxjava or yii2"
            ))),
        }
    }

    /// The keys this format holds for `token`, at `now`. Empty when the token has no time left
    /// (an expired key would only make the SDK fetch).
    pub fn entries(&self, appid: &str, api: Api, token: &TokenFile, now: u64) -> Vec<Entry> {
        let left = secs_until(token.expires_at, now);
        if left <= 0 {
            return Vec::new();
        }
        let ttl_ms = left as u64 * 1000;
        let entry = |key: String, value: String| Entry { key, value, ttl_ms };
        let t = &token.access_token;
        match self {
            // wechatpy/session/redisstorage.py: key "{prefix}:{key}", value json.dumps(value).
            // wechatpy/client/base.py: keys "{appid}_access_token" (set with ttl=expires_in) and,
            // since 2.0, "{appid}_access_token_expires_at" (an int); it fetches when that is no
            // more than 60 s away, or (1.8, which keeps expires_at in memory) when the key is gone.
            Sdk::Wechatpy { prefix } => vec![
                entry(format!("{prefix}:{appid}_access_token"), format!("\"{t}\"")),
                entry(
                    format!("{prefix}:{appid}_access_token_expires_at"),
                    token.expires_at.to_string(),
                ),
            ],
            // silenceper/wechat credential/default_access_token.go: "%s_access_token_%s" (prefix,
            // appid) for the default handle, "%s_stable_access_token_%s" for StableAccessToken,
            // the raw token as value (cache/redis.go: SETEX); a missing key makes it fetch.
            Sdk::Silenceper { prefix } => {
                let mut v = vec![entry(format!("{prefix}_access_token_{appid}"), t.clone())];
                if api != Api::Wecom {
                    v.push(entry(
                        format!("{prefix}_stable_access_token_{appid}"),
                        t.clone(),
                    ));
                }
                v
            }
            // WxJava weixin-java-mp config/impl/WxMpRedisConfigImpl.java: "%s:access_token:%s"
            // (keyPrefix, appid), the raw token (common/redis/RedisTemplateWxRedisOps, Jedis...);
            // isAccessTokenExpired() when the key's TTL is under 2 s.
            Sdk::Wxjava { prefix } => {
                vec![entry(format!("{prefix}:access_token:{appid}"), t.clone())]
            }
            // yiisoft/yii2 framework/caching/Cache.php: buildKey() and set(): the value is PHP
            // serialize([$value, $dependency]); yiisoft/yii2-redis src/Cache.php: SET key value PX.
            // Seed 000's $value is json_encode() of WeChat's answer plus "time": valid while
            // time() - time < expires_in - 10.
            Sdk::Yii2 { key_prefix, key } => {
                let json = format!(
                    "{{\"access_token\":\"{}\",\"expires_in\":{},\"time\":{}}}",
                    // json_encode() escapes '/' by default.
                    t.replace('/', "\\/"),
                    token.expires_at.saturating_sub(token.refreshed_at),
                    token.refreshed_at
                );
                vec![entry(
                    yii2_key(key_prefix, key),
                    php_serialize_cached(&json),
                )]
            }
        }
    }
}

impl Sdk {
    /// The keys this format holds for a JS-SDK ticket (none where the SDK keeps none of this type
    /// in Redis, or under a key wxtoken does not know).
    pub fn ticket_entries(
        &self,
        appid: &str,
        api: Api,
        ty: TicketType,
        ticket: &TicketFile,
        now: u64,
    ) -> Vec<Entry> {
        let left = secs_until(ticket.expires_at, now);
        if left <= 0 || api == Api::Wecom {
            return Vec::new();
        }
        let entry = |key: String, value: String| Entry {
            key,
            value,
            ttl_ms: left as u64 * 1000,
        };
        let t = &ticket.ticket;
        match (self, ty) {
            // wechatpy/client/api/jsapi.py get_jsapi_ticket() / get_jsapi_card_ticket(): the
            // ticket (JSON string) and its expiry (an int); fetched again once that is past.
            (Sdk::Wechatpy { prefix }, TicketType::Jsapi | TicketType::WxCard) => {
                let name = if ty == TicketType::Jsapi {
                    "jsapi_ticket"
                } else {
                    "jsapi_card_ticket"
                };
                vec![
                    entry(format!("{prefix}:{appid}_{name}"), format!("\"{t}\"")),
                    entry(
                        format!("{prefix}:{appid}_{name}_expires_at"),
                        ticket.expires_at.to_string(),
                    ),
                ]
            }
            // silenceper/wechat credential/default_js_ticket.go: "%s_jsapi_ticket_%s".
            (Sdk::Silenceper { prefix }, TicketType::Jsapi) => {
                vec![entry(format!("{prefix}_jsapi_ticket_{appid}"), t.clone())]
            }
            // WxMpRedisConfigImpl: "%s:ticket:key:%s:%s" (keyPrefix, appid, TicketType code).
            (Sdk::Wxjava { prefix }, TicketType::Jsapi | TicketType::WxCard) => vec![entry(
                format!("{prefix}:ticket:key:{appid}:{}", ty.name()),
                t.clone(),
            )],
            _ => Vec::new(),
        }
    }
}

/// yii\caching\Cache::buildKey() for a string key: kept when alphanumeric and at most 32 bytes,
/// else its MD5 in hex; then the keyPrefix in front.
pub fn yii2_key(key_prefix: &str, key: &str) -> String {
    if !key.is_empty() && key.len() <= 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        format!("{key_prefix}{key}")
    } else {
        format!("{key_prefix}{}", md5_hex(key.as_bytes()))
    }
}

/// PHP's serialize([$value, null]) for a string $value: what yii\caching\Cache::set() stores.
fn php_serialize_cached(value: &str) -> String {
    format!("a:2:{{i:0;s:{}:\"{value}\";i:1;N;}}", value.len())
}

/// MD5 (RFC 1321), only for yii2's key names: not a security use, and not worth a dependency.
pub fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter()
        .flat_map(|x| x.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> TokenFile {
        TokenFile {
            access_token: "80_AbC-x/y".into(),
            expires_in: 7200,
            expires_at: 1_000_000 + 7200,
            refreshed_at: 1_000_000,
            appid: "wx1234567890abcdef".into(),
            api: "legacy".into(),
        }
    }

    #[test]
    fn md5_matches_rfc_1321() {
        for (input, want) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(md5_hex(input.as_bytes()), want, "{input:?}");
        }
    }

    #[test]
    fn yii2_keys_as_build_key_makes_them() {
        // ctype_alnum fails on '_': hashed, as PHP md5('weixin_access_token').
        assert_eq!(
            yii2_key("", "weixin_access_token"),
            md5_hex(b"weixin_access_token")
        );
        assert_eq!(yii2_key("app1", "token"), "app1token");
        assert_eq!(
            yii2_key("", &"a".repeat(33)),
            md5_hex("a".repeat(33).as_bytes())
        );
    }

    #[test]
    fn formats() {
        let t = token();
        let now = 1_000_000 + 200;
        let e = |s: &str, api| Sdk::parse(s, api).unwrap().entries(&t.appid, api, &t, now);
        let wp = e("wechatpy", Api::Legacy);
        assert_eq!(wp[0].key, "wechatpy:wx1234567890abcdef_access_token");
        assert_eq!(wp[0].value, "\"80_AbC-x/y\"");
        assert_eq!(wp[0].ttl_ms, 7000 * 1000);
        assert_eq!(wp[1].value, "1007200");
        let sp = e("silenceper", Api::Legacy);
        assert_eq!(
            sp[0].key,
            "gowechat_officialaccount__access_token_wx1234567890abcdef"
        );
        assert_eq!(sp[0].value, "80_AbC-x/y");
        assert_eq!(
            sp[1].key,
            "gowechat_officialaccount__stable_access_token_wx1234567890abcdef"
        );
        assert_eq!(
            e("silenceper:gowechat_miniprogram_", Api::Stable)[0].key,
            "gowechat_miniprogram__access_token_wx1234567890abcdef"
        );
        let wc = e("silenceper", Api::Wecom);
        assert_eq!(wc.len(), 1);
        assert_eq!(wc[0].key, "gowechat_work__access_token_wx1234567890abcdef");
        assert_eq!(
            e("wxjava", Api::Stable)[0].key,
            "wx:access_token:wx1234567890abcdef"
        );
        let y = e("yii2", Api::Legacy);
        let json = r#"{"access_token":"80_AbC-x\/y","expires_in":7200,"time":1000000}"#;
        assert_eq!(y[0].key, md5_hex(b"weixin_access_token"));
        assert_eq!(
            y[0].value,
            format!("a:2:{{i:0;s:{}:\"{json}\";i:1;N;}}", json.len())
        );
        assert_eq!(
            e("yii2:myapp_:tok", Api::Legacy)[0].key,
            "myapp_tok",
            "alphanumeric and short: kept"
        );
        assert!(
            Sdk::parse("wechatpy", Api::Stable)
                .unwrap()
                .entries("wx", Api::Stable, &t, t.expires_at)
                .is_empty()
        );
    }

    #[test]
    fn refused_formats() {
        for (spec, api, why) in [
            ("easywechat", Api::Stable, "AppSecret"),
            ("wechatpy", Api::Wecom, "corpsecret"),
            ("nope", Api::Stable, "unknown format"),
            ("wxjava:a b", Api::Stable, "printable"),
        ] {
            let e = Sdk::parse(spec, api).unwrap_err();
            assert!(e.message.contains(why), "{spec}: {}", e.message);
        }
    }
}
