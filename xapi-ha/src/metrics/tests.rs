//! The exposition of a real pool database and the event handles.

use std::time::Duration;

use uuid::Uuid;
use xha_control::{DropCounters, Latency, LivesetReport, Status, TimeoutsReport};

use super::fixture::{Fixture, host_uuid};
use super::*;
use crate::value::Value;

/// The value of the sample line `name{labels}` (exactly as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, v) = l.rsplit_once(' ')?;
        (name == series).then(|| v.parse().ok())?
    })
}

fn host_series(name: &str, i: usize) -> String {
    format!("{name}{{host=\"{}\",name=\"h{i}\"}}", host_uuid(i))
}

#[test]
fn pool_state_series_follow_the_database() {
    let mut f = Fixture::new(2, 1);
    let v = f.vm("web", 1, "restart");
    let h0 = f.hosts[0];
    f.run(v, h0);
    let _ = f.vm("idle", 1, "");
    f.host_metric(0, "ha_heartbeat_latency_ms", Value::Float(2.5));
    let m = Metrics::default();
    let text = m.exposition(&f.db);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(sample(&text, "xha_liveset_size"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "xha_hosts"), Some(2.0));
    assert_eq!(sample(&text, &host_series("xha_host_live", 1)), Some(1.0));
    assert_eq!(
        sample(&text, &host_series("xha_host_enabled", 0)),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &host_series("xha_host_heartbeat_latency_seconds", 0)),
        Some(0.0025)
    );
    assert_eq!(sample(&text, "xha_master_epoch"), Some(3.0));
    assert_eq!(sample(&text, "xha_ha_enabled"), Some(1.0));
    assert_eq!(sample(&text, "xha_ha_host_failures_to_tolerate"), Some(1.0));
    assert_eq!(sample(&text, "xha_ha_plan_exists_for"), Some(1.0));
    assert_eq!(sample(&text, "xha_ha_overcommitted"), Some(0.0));
    assert_eq!(sample(&text, "xha_vms{power_state=\"Running\"}"), Some(1.0));
    assert_eq!(sample(&text, "xha_vms{power_state=\"Halted\"}"), Some(1.0));
    assert_eq!(sample(&text, "xha_mail_queue_length"), Some(0.0));
    // No xhad report yet: no drop counters.
    assert!(!text.contains("xha_dropped_packets"), "{text}");

    f.host_metric(1, "live", Value::Bool(false));
    let text = m.exposition(&f.db);
    assert_eq!(sample(&text, "xha_liveset_size"), Some(1.0));
    assert_eq!(sample(&text, &host_series("xha_host_live", 1)), Some(0.0));
}

#[test]
fn api_requests_count_by_method_and_status_with_unknown_methods_folded() {
    let m = Metrics::default();
    m.api_request("VM.start", None);
    m.api_request("VM.start", None);
    m.api_request("VM.start", Some("VM_BAD_POWER_STATE"));
    m.api_request("session.login_with_password", None);
    m.api_request("no.such<method>", Some("MESSAGE_METHOD_UNKNOWN"));
    m.api_request("another.made_up", Some("MESSAGE_METHOD_UNKNOWN"));
    let text = m.exposition(&Fixture::new(1, 0).db);
    let s = |method: &str, status: &str| {
        sample(
            &text,
            &format!("xha_api_requests_total{{method=\"{method}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(s("VM.start", "success"), Some(2.0), "{text}");
    assert_eq!(s("VM.start", "VM_BAD_POWER_STATE"), Some(1.0));
    assert_eq!(s("session.login_with_password", "success"), Some(1.0));
    assert_eq!(s("unknown", "MESSAGE_METHOD_UNKNOWN"), Some(2.0));
    assert!(!text.contains("no.such"), "{text}");
}

#[test]
fn restart_fence_and_mail_handles_appear_with_their_labels() {
    let m = Metrics::default();
    m.restart(RestartPriority::Restart, RestartOutcome::Started);
    m.restart(RestartPriority::BestEffort, RestartOutcome::GaveUp);
    m.restart_latency(3.0);
    m.restart_latency(40.0);
    m.fence(FenceRule::LeftLiveset);
    m.mail_send_failure(false);
    m.mail_send_failure(true);
    m.mail_send_failure(true);
    let text = m.exposition(&Fixture::new(1, 0).db);
    assert_eq!(
        sample(
            &text,
            "xha_restarts_total{priority=\"restart\",outcome=\"started\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "xha_restarts_total{priority=\"best-effort\",outcome=\"gave_up\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "xha_restart_latency_seconds_count"),
        Some(2.0)
    );
    assert_eq!(sample(&text, "xha_restart_latency_seconds_sum"), Some(43.0));
    assert_eq!(
        sample(&text, "xha_restart_latency_seconds_bucket{le=\"4.0\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "xha_fences_total{rule=\"left_liveset\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "xha_mail_send_failures_total{kind=\"permanent\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "xha_mail_send_failures_total{kind=\"transient\"}"),
        Some(1.0)
    );
}

fn report(liveset: &[Uuid], status: Status, hb_ms: Option<f64>) -> LivesetReport {
    let t = xha_core::Timeouts::derive(Duration::from_secs(10)).expect("timeouts");
    let mut hb = Latency::default();
    if let Some(ms) = hb_ms {
        hb.record(ms);
    }
    let dropped = DropCounters {
        bad_magic: 4,
        forged: 2,
        floors_lowered: 1,
        ..DropCounters::default()
    };
    LivesetReport {
        status,
        pool_generation: Uuid::from_u128(5),
        local_host: liveset.first().copied().unwrap_or(Uuid::from_u128(1)),
        local_index: 0,
        fencing_armed: true,
        watchdog: "supervisor".into(),
        master: liveset.first().copied(),
        master_epoch: 7,
        liveset: liveset.to_vec(),
        hosts: Vec::new(),
        statefile_latency: Latency::default(),
        heartbeat_latency: hb,
        dropped_packets: dropped,
        fence_requests_refused: 0,
        timeouts: TimeoutsReport::from(&t),
        warnings: Vec::new(),
    }
}

#[test]
fn xhad_reports_give_latency_histograms_drops_and_fences() {
    let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let m = Metrics::default();
    m.observe_report(&report(&[a, b, c], Status::Online, Some(2.0)));
    // The same latency again (a report for another reason) is not a new
    // measurement.
    m.observe_report(&report(&[a, b, c], Status::Online, Some(2.0)));
    m.observe_report(&report(&[a, c], Status::Online, Some(300.0)));
    let text = m.exposition(&Fixture::new(1, 0).db);
    assert_eq!(
        sample(&text, "xha_xhad_heartbeat_latency_seconds_count"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "xha_xhad_heartbeat_latency_seconds_bucket{le=\"0.004\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "xha_dropped_packets_total{reason=\"bad-magic\"}"),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "xha_dropped_packets_total{reason=\"forged\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "xha_dropped_packets_total{reason=\"truncated\"}"),
        Some(0.0)
    );
    assert!(!text.contains("reason=\"floors-lowered\""));
    assert_eq!(sample(&text, "xha_replay_floors_lowered_total"), Some(1.0));
    assert_eq!(sample(&text, "xha_xhad_liveset_size"), Some(2.0));
    assert_eq!(sample(&text, "xha_xhad_master_epoch"), Some(7.0));
    assert_eq!(
        sample(&text, "xha_fences_total{rule=\"left_liveset\"}"),
        Some(1.0)
    );
}

#[test]
fn fences_between_reports() {
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let online = report(&[a, b], Status::Online, None);
    let lost_b = report(&[a], Status::Online, None);
    let fenced = report(&[a], Status::Fenced, None);
    assert_eq!(fences_between(None, &online), vec![]);
    assert_eq!(
        fences_between(Some(&online), &lost_b),
        vec![FenceRule::LeftLiveset]
    );
    assert_eq!(fences_between(Some(&lost_b), &lost_b), vec![]);
    assert_eq!(
        fences_between(Some(&lost_b), &fenced),
        vec![FenceRule::Local]
    );
    assert_eq!(fences_between(None, &fenced), vec![FenceRule::Local]);
    // Another HA generation is a new pool: nothing left it.
    let mut other = lost_b.clone();
    other.pool_generation = Uuid::from_u128(6);
    assert_eq!(fences_between(Some(&online), &other), vec![]);
}
