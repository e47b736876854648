//! `--redis`: fleet::parse_url, wxtoken's own parser of redis:// URLs, against the redis crate's
//! (the url crate's) reading of the same text as the oracle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redis::{ConnectionAddr, IntoConnectionInfo};
use wxtoken::config::fleet::parse_url;
use wxtoken::error::Kind;
use wxtoken_fuzz::assert_one_line;

fuzz_target!(|bytes: &[u8]| {
    let Ok(s) = std::str::from_utf8(bytes) else {
        return;
    };
    let (info, tls) = match parse_url(s) {
        Ok(v) => v,
        Err(e) => {
            assert_eq!(e.kind, Kind::Config);
            // A URL with a password is refused with a message that quotes nothing of it.
            if let Some((scheme, rest)) = s.split_once("://")
                && ["redis", "rediss"].contains(&scheme.to_ascii_lowercase().as_str())
                && let Some((userinfo, _)) = rest.split('/').next().unwrap().rsplit_once('@')
                && userinfo.contains(':')
            {
                assert!(
                    e.message
                        .starts_with("--redis holds a password: refusing it"),
                    "{s:?}: {:?}",
                    e.message
                );
                assert!(!e.message.contains("://"), "{:?}", e.message);
            }
            return assert_one_line(&e.message);
        }
    };
    // Accepted: no password, query or fragment, a real host and port.
    assert!(!s.contains('?') && !s.contains('#'), "{s:?}");
    assert!(info.redis_settings().password().is_none());
    let (host, port) = match info.addr() {
        ConnectionAddr::Tcp(h, p) => {
            assert!(!tls);
            (h, *p)
        }
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            tls_params,
        } => {
            assert!(tls && !insecure && tls_params.is_none());
            (host, *port)
        }
        other => panic!("{other:?}"),
    };
    assert!(!host.is_empty() && port > 0, "{s:?}");
    assert!(
        host.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b)),
        "{host:?}"
    );
    // What the redis crate makes of the same URL, when it takes it: the same place, database
    // and user.
    let Some(url) = redis::parse_redis_url(s) else {
        return;
    };
    let Ok(theirs) = url.into_connection_info() else {
        return;
    };
    assert_eq!(info.addr(), theirs.addr(), "{s:?}");
    assert_eq!(
        info.redis_settings().db(),
        theirs.redis_settings().db(),
        "{s:?}"
    );
    assert_eq!(
        info.redis_settings().username(),
        theirs.redis_settings().username(),
        "{s:?}"
    );
});
