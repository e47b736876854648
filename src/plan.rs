//! Decides what a run does with the file's token: keep it, probe it, or replace it.
//!
//! From what the file holds, the run state and the apps' reports. Pure: no clock, no I/O.

use crate::clock::secs_until;
use crate::store::TokenFile;
use crate::store::run_state::RunState;

/// The file's token, as far as this run can trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub file: TokenFile,
    pub digest: String,
    /// When it really stops working: the file's `expires_at`, cut short by a recorded fetch that
    /// retired it or a probe that found it dead.
    pub effective: u64,
}

impl Current {
    pub fn left(&self, now: u64) -> i64 {
        secs_until(self.effective, now)
    }
}

/// What the flags ask of this run.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub margin: u64,
    pub force: bool,
    pub force_new: bool,
    pub probe_every: u64,
}

/// What to do with the file's token. A plan holds the token it is about: a fresh or probed
/// token always exists, a fetch may replace one or none.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Fresh {
        cur: Current,
        left: i64,
    },
    /// Ask WeChat whether the token still works; `reported`: an app said it does not.
    Probe {
        cur: Current,
        why: String,
        reported: bool,
    },
    /// `rotate`: the old token must die (force_refresh with the stable API).
    Fetch {
        current: Option<Current>,
        why: String,
        rotate: bool,
    },
}

impl Plan {
    pub fn fetches(&self) -> bool {
        matches!(self, Plan::Fetch { .. })
    }
}

/// The decision, from what the file holds (already checked for plausibility and account), the run
/// state, the requests apps left, and when this run started (ms, before waiting for the lock).
pub fn plan(
    policy: Policy,
    current: Option<Current>,
    st: &RunState,
    reports: &[String],
    started_ms: u64,
    now: u64,
) -> Plan {
    let Some(cur) = current else {
        return Plan::Fetch {
            current: None,
            why: "no usable token file".into(),
            rotate: false,
        };
    };
    let left = cur.left(now);
    if left <= policy.margin as i64 {
        let why = if st.dead.as_deref() == Some(cur.digest.as_str()) {
            "WeChat rejected the token in the file".to_string()
        } else if left <= 0 {
            "the token in the file has expired".to_string()
        } else {
            format!("{left} s left, within the margin of {} s", policy.margin)
        };
        return Plan::Fetch {
            current: Some(cur),
            why,
            rotate: false,
        };
    }
    // A run that queued behind another run's refresh takes its result: N runs started together
    // with --force make one upstream call. A refresh time later than now was written under a
    // clock that ran ahead: it says nothing about this run, whose --force-new must rotate.
    let refreshed_since_start = st.refreshed_ms >= started_ms
        && st.refreshed_ms / 1000 <= now
        && st.token_expires_at == cur.file.expires_at;
    if (policy.force || policy.force_new) && !refreshed_since_start {
        let flag = if policy.force_new {
            "--force-new"
        } else {
            "--force"
        };
        return Plan::Fetch {
            current: Some(cur),
            why: format!("{flag} ({left} s were left)"),
            rotate: policy.force_new,
        };
    }
    let reported =
        reports.contains(&cur.digest) || st.pending_report.as_deref() == Some(cur.digest.as_str());
    if reported {
        return Plan::Probe {
            cur,
            why: "an app reported that WeChat rejected it".into(),
            reported: true,
        };
    }
    if let Some(checked_ago) = periodic_due(policy, &cur, st, now) {
        return Plan::Probe {
            cur,
            why: format!("last checked {checked_ago} s ago"),
            reported: false,
        };
    }
    Plan::Fresh { cur, left }
}

/// Some(seconds since the token was last checked: probed, or fetched) when a periodic probe is
/// due: `--probe-every` is on and that long has passed.
pub fn periodic_due(policy: Policy, cur: &Current, st: &RunState, now: u64) -> Option<u64> {
    let checked_ago = st
        .probed_ago(now)
        .min(now.saturating_sub(cur.file.refreshed_at));
    (policy.probe_every > 0 && checked_ago >= policy.probe_every).then_some(checked_ago)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::digest;

    const NOW: u64 = 1_000_000;

    fn cur(expires_at: u64, refreshed_at: u64) -> Current {
        Current {
            file: TokenFile {
                access_token: "t".into(),
                expires_in: 7200,
                expires_at,
                refreshed_at,
                appid: "wxa".into(),
                api: "stable".into(),
            },
            digest: digest("t"),
            effective: expires_at,
        }
    }

    fn policy() -> Policy {
        Policy {
            margin: 300,
            force: false,
            force_new: false,
            probe_every: 300,
        }
    }

    fn fetches(p: &Plan) -> bool {
        p.fetches()
    }

    #[test]
    fn margin_and_expiry() {
        let st = RunState::default();
        let p = |c: Option<Current>| plan(policy(), c, &st, &[], NOW, NOW);
        assert!(fetches(&p(None)));
        assert!(matches!(
            p(Some(cur(NOW + 301, NOW))),
            Plan::Fresh { left: 301, .. }
        ));
        assert!(fetches(&p(Some(cur(NOW + 300, NOW)))));
        assert!(fetches(&p(Some(cur(NOW - 5, NOW - 7205)))));
    }

    #[test]
    fn force_yields_to_a_refresh_made_while_waiting() {
        let force = Policy {
            force: true,
            ..policy()
        };
        let ms = NOW * 1000;
        // Refreshed before this run started: fetch.
        let st = RunState {
            refreshed_ms: ms - 1,
            token_expires_at: NOW + 7000,
            ..RunState::default()
        };
        assert!(fetches(&plan(
            force,
            Some(cur(NOW + 7000, NOW)),
            &st,
            &[],
            ms,
            NOW
        )));
        // Refreshed by the run this one queued behind: take it.
        let st = RunState {
            refreshed_ms: ms + 1,
            ..st
        };
        assert!(!fetches(&plan(
            force,
            Some(cur(NOW + 7000, NOW)),
            &st,
            &[],
            ms,
            NOW + 2
        )));
        let new = Policy {
            force_new: true,
            ..policy()
        };
        // A refresh recorded under a clock 100 s ahead is not one this run queued behind.
        let ahead = RunState {
            refreshed_ms: (NOW + 100) * 1000,
            token_expires_at: NOW + 7000,
            ..RunState::default()
        };
        assert!(fetches(&plan(
            new,
            Some(cur(NOW + 7000, NOW)),
            &ahead,
            &[],
            ms,
            NOW
        )));
        assert_eq!(
            plan(new, Some(cur(NOW + 5000, NOW - 100)), &st, &[], ms + 2, NOW),
            Plan::Fetch {
                current: Some(cur(NOW + 5000, NOW - 100)),
                why: "--force-new (5000 s were left)".into(),
                rotate: true
            }
        );
    }

    #[test]
    fn reports_and_periodic_probes() {
        let c = cur(NOW + 5000, NOW - 100);
        let st = RunState {
            last_probe_at: NOW - 10,
            ..RunState::default()
        };
        // A report of an older token changes nothing.
        let old = vec![digest("older")];
        assert!(matches!(
            plan(policy(), Some(c.clone()), &st, &old, NOW, NOW),
            Plan::Fresh { .. }
        ));
        let this = vec![c.digest.clone()];
        assert!(matches!(
            plan(policy(), Some(c.clone()), &st, &this, NOW, NOW),
            Plan::Probe { reported: true, .. }
        ));
        // Periodic: due once the last probe (or the refresh) is probe_every old.
        let st = RunState {
            last_probe_at: NOW - 300,
            ..RunState::default()
        };
        let c = cur(NOW + 5000, NOW - 1000);
        assert!(matches!(
            plan(policy(), Some(c.clone()), &st, &[], NOW, NOW),
            Plan::Probe {
                reported: false,
                ..
            }
        ));
        let off = Policy {
            probe_every: 0,
            ..policy()
        };
        assert!(matches!(
            plan(off, Some(c.clone()), &st, &[], NOW, NOW),
            Plan::Fresh { .. }
        ));
        // A probe time from a clock that ran ahead does not postpone probes forever.
        let st = RunState {
            last_probe_at: NOW + 100_000,
            ..RunState::default()
        };
        let fresh_file = cur(NOW + 5000, NOW - 1000);
        assert!(matches!(
            plan(policy(), Some(fresh_file.clone()), &st, &[], NOW, NOW),
            Plan::Probe { .. }
        ));
    }
}
