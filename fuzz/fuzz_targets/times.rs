//! The time arithmetic every decision goes through: clock::secs_until and clock::implausible.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxtoken::api::MAX_EXPIRES_IN;
use wxtoken::clock::{CLOCK_SLACK, implausible, secs_until};
use wxtoken_fuzz::assert_tidy;

fuzz_target!(|data: [u64; 4]| {
    let [expires_in, expires_at, refreshed_at, now] = data;
    for (a, b) in [
        (expires_at, now),
        (now, expires_at),
        (refreshed_at, now),
        (expires_at, refreshed_at),
    ] {
        let d = i128::from(a) - i128::from(b);
        assert_eq!(
            i128::from(secs_until(a, b)),
            d.clamp(i64::MIN.into(), i64::MAX.into())
        );
        assert_eq!(secs_until(a, b) > 0, a > b);
    }
    // Also near the file's own times, where the decisions change.
    let near = [
        (
            expires_in % (2 * MAX_EXPIRES_IN),
            expires_at,
            refreshed_at,
            now,
        ),
        (
            expires_in % (2 * MAX_EXPIRES_IN),
            refreshed_at.wrapping_add(expires_at % (2 * MAX_EXPIRES_IN)),
            refreshed_at,
            refreshed_at
                .wrapping_add(now % (4 * MAX_EXPIRES_IN))
                .wrapping_sub(2 * MAX_EXPIRES_IN),
        ),
    ];
    for (expires_in, expires_at, refreshed_at, now) in near {
        match implausible(expires_in, expires_at, refreshed_at, now) {
            None => {
                assert!((1..=MAX_EXPIRES_IN).contains(&expires_in));
                assert!(
                    (1..=MAX_EXPIRES_IN as i64).contains(&secs_until(expires_at, refreshed_at))
                );
                assert!(secs_until(refreshed_at, now) <= CLOCK_SLACK as i64);
                assert!(secs_until(expires_at, now) <= (expires_in + CLOCK_SLACK) as i64);
                // Time passing makes a record expire, never unbelievable.
                for later in [
                    now.saturating_add(1),
                    now.saturating_add(MAX_EXPIRES_IN),
                    u64::MAX,
                ] {
                    assert_eq!(
                        implausible(expires_in, expires_at, refreshed_at, later),
                        None
                    );
                }
            }
            Some(why) => assert_tidy(&why),
        }
    }
});
