//! Text from outside made safe for a one-line message, and values made safe for a URL query.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// How much of a text from outside a message quotes.
pub const SHOWN_MAX: usize = 200;

/// Text from outside (an errmsg from the network, a parser's complaint quoting a file, a
/// command-line value) as a message may quote it: one line, control characters and line
/// separators escaped, cut after about [`SHOWN_MAX`] bytes. The logger escapes control
/// characters again on output, but messages also reach the run state, `status` and hooks.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for c in text.trim().chars() {
        if out.len() >= SHOWN_MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Everything but RFC 3986's unreserved characters is escaped: a secret or token is a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_characters() {
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn outside_text_is_printable_on_one_short_line() {
        assert_eq!(
            printable(" invalid appid rid: 65a1 \n"),
            "invalid appid rid: 65a1"
        );
        // A newline must not forge a log line; DEL and line separators are escaped too.
        assert_eq!(
            printable("invalid appid\n[ERROR] forged\u{7f}\u{2028}x"),
            "invalid appid\\n[ERROR] forged\\u{7f}\\u{2028}x"
        );
        let long = printable(&"é".repeat(10_000));
        assert!(
            long.len() <= SHOWN_MAX + 5 && long.ends_with("..."),
            "{long}"
        );
    }
}
