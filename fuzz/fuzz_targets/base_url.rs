//! `--api-base`: config::parse_base, which decides where the secret is sent.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use ureq::http::Uri;
use wxtoken::config::parse_base;
use wxtoken::error::Kind;
use wxtoken_fuzz::assert_one_line;

fuzz_target!(|bytes: &[u8]| {
    let Ok(s) = std::str::from_utf8(bytes) else {
        return;
    };
    let b = match parse_base(s) {
        Ok(b) => b,
        Err(e) => {
            assert_eq!(e.kind, Kind::Config);
            return assert_one_line(&e.message);
        }
    };
    // scheme://host[:port] and nothing else: no userinfo, path, query, fragment or oddity that
    // another parser could read differently.
    let rest = if b.https {
        b.url.strip_prefix("https://")
    } else {
        b.url.strip_prefix("http://")
    }
    .unwrap_or_else(|| panic!("{:?}: scheme", b.url));
    assert!(!b.host.is_empty());
    assert!(
        !rest.contains(|c: char| "@/?#\\%\"'<>`{}|^ ".contains(c)
            || c.is_control()
            || !c.is_ascii()),
        "{:?}",
        b.url
    );
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once(']').expect("closing bracket"),
        None => rest.find(':').map_or((rest, ""), |i| rest.split_at(i)),
    };
    assert_eq!(host, b.host);
    if !port.is_empty() {
        let p: u16 = port
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .expect("port");
        assert!(p > 0);
    }
    // Plain http only to this machine: the secret travels in the request.
    if !b.https {
        assert!(
            b.host.eq_ignore_ascii_case("localhost")
                || b.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
            "http to {:?}",
            b.host
        );
    }
    assert!(b.proxy.is_none());
    // The requests built on it go to that host, as the HTTP client parses them.
    let uri: Uri = format!("{}/cgi-bin/token?grant_type=client_credential", b.url)
        .parse()
        .expect("request URL parses");
    let seen = uri.host().expect("host");
    assert_eq!(seen.trim_start_matches('[').trim_end_matches(']'), b.host);
    assert!(uri.authority().is_some_and(|a| !a.as_str().contains('@')));
    // Normal form: parsing it again changes nothing.
    let again = parse_base(&b.url).expect("its own normal form is accepted");
    assert_eq!(
        (again.url, again.host, again.https),
        (b.url.clone(), b.host, b.https)
    );
});
