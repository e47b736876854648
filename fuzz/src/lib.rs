//! Invariants the fuzz targets share.

/// A message for the log or stderr: one line, nothing a terminal or a log parser would act on.
pub fn assert_one_line(msg: &str) {
    assert!(!msg.trim().is_empty(), "empty message");
    assert!(msg.len() <= 1024, "a message of {} bytes", msg.len());
    assert!(
        !msg.chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
        "control character in the message {msg:?}"
    );
}

/// A message built from validated values only (numbers, appids, fixed words): one line, and
/// no run of spaces left by a broken string continuation.
pub fn assert_tidy(msg: &str) {
    assert_one_line(msg);
    assert!(
        !msg.contains("  "),
        "a run of spaces in the message {msg:?}"
    );
}

/// What wxtoken writes as an appid (config::check_appid's rule), stated apart from the code.
pub fn is_appid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
