//! `--metrics PATH`: the run state as Prometheus text, for node_exporter's textfile collector.
//!
//! Exposition format 0.0.4, written atomically after every run for node_exporter's textfile collector. Everything comes from the
//! run state and the files: a metrics file is never a reason to call WeChat.

use std::fmt::Write as _;
use std::path::Path;

use crate::clock::unix_now;
use crate::error::Result;
use crate::store::TokenFile;
use crate::store::atomic::write_atomic;
use crate::store::run_state::{FORCE_PER_DAY, PROBES_PER_DAY, ProbeKind, RunState, Verdict};

/// Label values are the appid and API name (checked to `[A-Za-z0-9_-]`) and fixed words; the
/// escaping is still done as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends one metric family: HELP, TYPE and its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

pub fn render(
    st: &RunState,
    appid: &str,
    api: &str,
    token: Option<&TokenFile>,
    tickets: &[(&str, u64)],
) -> String {
    let id = format!("appid=\"{}\",api=\"{}\"", label(appid), label(api));
    let one = |v: f64| vec![(id.clone(), v)];
    let mut out = String::new();
    let expiry = token.map_or(0, |t| {
        st.effective_expiry(
            &crate::api::digest(&t.access_token),
            t.expires_at,
            unix_now(),
        )
    });
    family(
        &mut out,
        "wxtoken_token_expiry_timestamp_seconds",
        "gauge",
        "When the token in the file stops working (unix time; 0: no token).",
        &one(expiry as f64),
    );
    let tickets: Vec<_> = tickets
        .iter()
        .map(|(ty, at)| (format!("{id},type=\"{}\"", label(ty)), *at as f64))
        .collect();
    family(
        &mut out,
        "wxtoken_ticket_expiry_timestamp_seconds",
        "gauge",
        "When each JS-SDK ticket file's ticket expires (unix time).",
        &tickets,
    );
    let last_run = st.last_run.as_ref().map_or(0, |o| o.at);
    family(
        &mut out,
        "wxtoken_last_run_timestamp_seconds",
        "gauge",
        "When the last refresh run ended.",
        &one(last_run as f64),
    );
    family(
        &mut out,
        "wxtoken_last_success_timestamp_seconds",
        "gauge",
        "When a refresh run last ended with exit status 0.",
        &one(st.last_success_at as f64),
    );
    family(
        &mut out,
        "wxtoken_consecutive_failures",
        "gauge",
        "Refresh runs that failed since the last success.",
        &one(f64::from(st.consecutive_failures)),
    );
    let failures: Vec<_> = st
        .failures
        .iter()
        .map(|(key, n)| {
            let (class, code) = key.split_once('/').unwrap_or((key, "-"));
            (
                format!(
                    "{id},class=\"{}\",errcode=\"{}\"",
                    label(class),
                    label(code)
                ),
                *n as f64,
            )
        })
        .collect();
    family(
        &mut out,
        "wxtoken_failures_total",
        "counter",
        "Failed refresh runs by class (temporary, configuration, cannot write) and WeChat errcode.",
        &failures,
    );
    family(
        &mut out,
        "wxtoken_upstream_token_requests_total",
        "counter",
        "Token requests sent to WeChat (each may include retries over the base URLs).",
        &one(st.token_fetches as f64),
    );
    family(
        &mut out,
        "wxtoken_probes_total",
        "counter",
        "Token checks with get_api_domain_ip.",
        &one(st.probes as f64),
    );
    family(
        &mut out,
        "wxtoken_probe_alive",
        "gauge",
        "What the last probe found: 1 alive, 0 dead, -1 unknown or none yet.",
        &one(match st.last_probe {
            Verdict::Alive => 1.0,
            Verdict::Dead => 0.0,
            Verdict::None | Verdict::Unknown(_) => -1.0,
        }),
    );
    family(
        &mut out,
        "wxtoken_probes_budget_remaining",
        "gauge",
        "Probes left in the current 24-hour window, both budgets together.",
        &one(PROBES_PER_DAY.saturating_sub(st.probes_today) as f64),
    );
    let now = unix_now();
    let budgets: Vec<_> = [ProbeKind::Periodic, ProbeKind::Report]
        .iter()
        .map(|&k| {
            (
                format!("{id},kind=\"{}\"", k.name()),
                st.probe_budget_left(now, k) as f64,
            )
        })
        .collect();
    family(
        &mut out,
        "wxtoken_probe_budget_remaining",
        "gauge",
        "Probes left in the current 24-hour window, per budget: periodic (--probe-every) and \
         report (apps' reports); 0 means that kind of check is off until the window ends.",
        &budgets,
    );
    family(
        &mut out,
        "wxtoken_reports_consumed_total",
        "counter",
        "Stale-token reports from apps consumed.",
        &one(st.reports_consumed as f64),
    );
    let day_ago = unix_now().saturating_sub(86_400);
    let used = st.force_refresh_at.iter().filter(|&&t| t > day_ago).count();
    family(
        &mut out,
        "wxtoken_force_refresh_used",
        "gauge",
        "force_refresh calls in the last 24 h (WeChat allows 20).",
        &one(used as f64),
    );
    family(
        &mut out,
        "wxtoken_force_refresh_budget",
        "gauge",
        "force_refresh calls WeChat allows a day.",
        &one(FORCE_PER_DAY as f64),
    );
    if let Some(f) = &st.fleet {
        fleet(&mut out, &id, f);
    }
    out
}

/// The fleet as the last run saw it (`--redis` only).
fn fleet(out: &mut String, id: &str, f: &crate::store::run_state::FleetSeen) {
    let one = |v: f64| vec![(id.to_string(), v)];
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    family(
        out,
        "wxtoken_fleet_role",
        "gauge",
        "This host's role in the fleet (1 for the role it has: leader fetches, follower never).",
        &[(format!("{id},role=\"{}\"", label(&f.role)), 1.0)],
    );
    family(
        out,
        "wxtoken_fleet_redis_reachable",
        "gauge",
        "Whether the last run reached the fleet's Redis (1) or not (0).",
        &one(flag(f.reachable)),
    );
    family(
        out,
        "wxtoken_fleet_redis_unreachable_runs",
        "gauge",
        "Runs in a row that could not reach the fleet's Redis.",
        &one(f64::from(f.unreachable_runs)),
    );
    family(
        out,
        "wxtoken_fleet_token_matches",
        "gauge",
        "Whether this host's file held the fleet's token when the last run ended (1) or not (0).",
        &one(flag(f.same_token)),
    );
    family(
        out,
        "wxtoken_fleet_token_differing_runs",
        "gauge",
        "Runs in a row that ended with a file token other than the fleet's.",
        &one(f64::from(f.differing_runs)),
    );
    family(
        out,
        "wxtoken_fleet_last_refresh_timestamp_seconds",
        "gauge",
        "When the fleet's token was fetched (this host's clock), by the host in the label.",
        &[(
            format!("{id},by=\"{}\"", label(&f.refreshed_by)),
            f.refreshed_at as f64,
        )],
    );
    family(
        out,
        "wxtoken_fleet_force_refresh_used",
        "gauge",
        "force_refresh calls of the whole fleet in the last 24 h (WeChat allows 20 per account).",
        &one(f.force_refresh_used as f64),
    );
    family(
        out,
        "wxtoken_fleet_clock_skew_seconds",
        "gauge",
        "Redis's clock (the fleet's) minus this host's.",
        &one(f.clock_skew as f64),
    );
}

pub fn write(path: &Path, text: &str) -> Result<()> {
    // 0644: node_exporter runs as its own user; the file holds no secret and no token.
    write_atomic(path, text.as_bytes(), 0o644, None)?;
    Ok(())
}
