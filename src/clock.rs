//! The host clock as wxtoken reads it, and which recorded times it believes under that clock.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::api::MAX_EXPIRES_IN;

/// Unix seconds from the host clock. Taken once per decision, before any request, so a slow
/// answer can only make a written expiry earlier than the truth, never later.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix milliseconds, for ordering two runs that fall in the same second.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Seconds from `now` until `at`, negative when past. The one place times are subtracted:
/// saturating, so a hostile `expires_at` (10^18, 2^63, u64::MAX) cannot wrap into "fresh".
pub fn secs_until(at: u64, now: u64) -> i64 {
    let d = i128::from(at) - i128::from(now);
    d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// How far a recorded time may lie ahead of the host clock before the record counts as written
/// under another clock.
pub const CLOCK_SLACK: u64 = 120;

/// Why a recorded lifetime cannot be believed under the current clock, or None when it can.
/// Catches a clock that stepped back since the write (times in the future), an expiry further
/// away than the lifetime WeChat announced, and hostile values (10^18, 2^63) that would otherwise
/// read as "fresh forever".
pub fn implausible(
    expires_in: u64,
    expires_at: u64,
    refreshed_at: u64,
    now: u64,
) -> Option<String> {
    let lifetime = secs_until(expires_at, refreshed_at);
    if !(1..=MAX_EXPIRES_IN as i64).contains(&lifetime)
        || !(1..=MAX_EXPIRES_IN).contains(&expires_in)
    {
        return Some(format!(
            "its lifetime (expires_at - refreshed_at = {lifetime} s, expires_in {expires_in} s) is \
             not between 1 s and {MAX_EXPIRES_IN} s: WeChat grants at most {MAX_EXPIRES_IN} s, so \
             a longer one is a lie"
        ));
    }
    let ahead = secs_until(refreshed_at, now);
    if ahead > CLOCK_SLACK as i64 {
        return Some(format!(
            "it was written {ahead} s in the future by this host's clock: the clock stepped back \
             since (or was wrong then)"
        ));
    }
    let left = secs_until(expires_at, now);
    if left > (expires_in + CLOCK_SLACK) as i64 {
        return Some(format!(
            "it claims {left} s left, more than the {expires_in} s WeChat granted: the clock \
             stepped back since it was written"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_differences_saturate() {
        assert_eq!(secs_until(10, 4), 6);
        assert_eq!(secs_until(4, 10), -6);
        assert_eq!(secs_until(u64::MAX, 0), i64::MAX);
        assert_eq!(secs_until(1 << 63, 0), i64::MAX);
        assert_eq!(secs_until(0, u64::MAX), i64::MIN);
    }

    #[test]
    fn implausible_records() {
        let now = 1_000_000;
        // Each reason reads as one sentence: no run of spaces from a string continuation.
        for (expires_in, expires_at, refreshed_at) in [
            (0, now + 10, now),
            (7200, now + 7000, now + 3600),
            (300, now + 7000, now - 10),
        ] {
            let why = implausible(expires_in, expires_at, refreshed_at, now).unwrap();
            assert!(!why.contains("  "), "{why:?}");
        }
        assert_eq!(implausible(7200, now + 7000, now - 200, now), None);
        // A clock 3 h ahead at the write, corrected since.
        assert!(implausible(7200, now + 3 * 3600 + 7000, now + 3 * 3600 - 200, now).is_some());
        assert!(implausible(7200, 1_000_000_000_000_000_000, now, now).is_some());
        assert!(implausible(7200, 1 << 63, now, now).is_some());
        assert!(implausible(7200, u64::MAX, 0, now).is_some());
        assert!(implausible(0, now + 10, now, now).is_some());
        // expires_in smaller than expires_at - now.
        assert!(implausible(300, now + 7000, now - 10, now).is_some());
        // Expired is plausible (it is simply expired).
        assert_eq!(implausible(7200, now - 5, now - 7205, now), None);
    }
}
