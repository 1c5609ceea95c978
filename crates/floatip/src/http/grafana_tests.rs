//! Checks `packaging/grafana/floatip-dashboard.json` against the metrics renderer: every metric a
//! panel or variable queries is one that `GET /metrics` exports.

use std::collections::BTreeSet;

use super::metrics::render;
use super::metrics::tests::{etcd_status, status};

const DASHBOARD: &str = include_str!("../../../../packaging/grafana/floatip-dashboard.json");

/// Every `expr` (panel queries) and `definition` (variable queries) string in the dashboard.
fn queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// The `floatip_...` names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(off) = expr[i..].find("floatip_") {
        let start = i + off;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if !preceded {
            names.insert(expr[start..end].to_string());
        }
        i = end;
    }
    names
}

/// The sample names `render` writes (series lines, not `#` comments), for instances that have every
/// family: a backup (advert age) with a failing check, a master, and an etcd instance with a lease that
/// was once released for unreachability.
fn exported() -> BTreeSet<String> {
    let text = render(&[
        status("files", "BACKUP"),
        status("web", "MASTER"),
        etcd_status("db", "BACKUP", true, true),
    ]);
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("the dashboard is valid JSON");
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "too few queries found: {exprs:?}");
    let exported = exported();
    let mut queried = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "a query on no floatip metric: {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "the dashboard queries {name}, which /metrics does not export (exported: {exported:?})\nin: {expr}"
            );
            queried.insert(name);
        }
    }
    // What the issue asks the dashboard to show.
    for family in [
        "floatip_instance_state",
        "floatip_transitions_total",
        "floatip_master_advert_age_seconds",
        "floatip_adverts_dropped_total",
        "floatip_check_up",
        "floatip_etcd_lease_remaining_seconds",
        "floatip_etcd_reachable",
    ] {
        assert!(
            queried.contains(family),
            "the dashboard does not show {family}"
        );
    }
}

#[test]
fn metric_names_are_read_whole() {
    assert_eq!(
        metric_names("rate(floatip_a_total{x=\"1\"}[5m]) / my_floatip_b + floatip_c"),
        ["floatip_a_total".to_string(), "floatip_c".to_string()].into()
    );
}
