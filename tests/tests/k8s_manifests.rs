//! The deployment files under `infra/`: the Kubernetes overlays render and validate offline
//! (`infra/k8s/validate.py`), and the Grafana dashboard queries only metrics radstream exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use radstream_tests::{lossy_text, radstream_bin};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Exit status of `validate.py` when kubectl (Debian's kubernetes-client, unpacked by
/// `infra/stack.sh install`) or PyPI's kubernetes-validate is missing.
const MISSING_TOOL: i32 = 3;

#[test]
fn every_overlay_renders_and_validates_against_the_kubernetes_schemas_offline() {
    let python =
        std::env::var("RADSTREAM_TEST_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into());
    let script = repo().join("infra/k8s/validate.py");
    let out = match Command::new(&python).arg(&script).arg("--radstream").arg(radstream_bin()).output() {
        Ok(out) => out,
        Err(e) => {
            radstream_tests::skip_without(&format!("{python}, which cannot run ({e})"));
            return;
        }
    };
    let (stdout, stderr) = (lossy_text(&out.stdout), lossy_text(&out.stderr));
    eprintln!("{stdout}{stderr}");
    if !radstream_test_gate::needs(
        &format!("kubectl and kubernetes-validate (infra/stack.sh install); validate.py says: {}", stderr.trim()),
        out.status.code() != Some(MISSING_TOOL),
    ) {
        return;
    }
    assert!(out.status.success(), "infra/k8s/validate.py failed:\n{stdout}{stderr}");
    assert!(stdout.contains(" checks passed, 0 failed"), "{stdout}");
    // Both overlays really ran `radstream validate` on their rendered config.
    assert_eq!(stdout.matches(": valid (input topic").count(), 2, "{stdout}");
}

/// Every metric name radstream exports: the rows of `docs/metrics.md`, which a unit test keeps
/// equal to the table in `pipeline/src/observe/metrics.rs` that registers them.
fn defined_metrics() -> BTreeSet<String> {
    let page = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("read docs/metrics.md");
    let re = regex::Regex::new(r"(?m)^\| `(radstream_[a-z_]+)` \|").unwrap();
    let names: BTreeSet<String> = re.captures_iter(&page).map(|c| c[1].to_string()).collect();
    assert!(names.len() > 20, "found only {names:?} in docs/metrics.md");
    names
}

fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_parses_and_queries_only_metrics_that_exist() {
    let path = repo().join("infra/grafana/radstream.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the dashboard")).expect("dashboard JSON");
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS", "the data source is an import input");
    let defined = defined_metrics();

    let mut queries = Vec::new();
    exprs(&dashboard["panels"], &mut queries);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let name = regex::Regex::new(r"\bradstream_[a-z_]+").unwrap();
    let mut used = BTreeSet::new();
    for query in &queries {
        for m in name.find_iter(query) {
            let metric = m.as_str();
            // Histograms are queried through their series; counters never have them.
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| metric.strip_suffix(suffix).filter(|b| defined.contains(*b)))
                .unwrap_or(metric);
            assert!(
                defined.contains(base),
                "{metric} (in `{query}`) is not in docs/metrics.md (pipeline/src/observe/metrics.rs)"
            );
            if base != metric {
                assert!(!base.ends_with("_total"), "{metric}: a counter has no {}", &metric[base.len()..]);
            }
            used.insert(base.to_string());
        }
    }
    // What the dashboard is for (issue 7): each of these has a panel.
    for wanted in [
        "radstream_events_received_total",
        "radstream_outcomes_total",
        "radstream_end_to_end_seconds",
        "radstream_operator_batch_duration_seconds",
        "radstream_operator_queue_delay_seconds",
        "radstream_consumer_lag_messages",
        "radstream_dead_letters_total",
        "radstream_model_batch_images",
        "radstream_operator_batch_size",
        "radstream_compute_backend",
        "radstream_destination_requests_total",
        "radstream_result_objects_total",
    ] {
        assert!(used.contains(wanted), "no panel queries {wanted}");
    }
    // The SLO thresholds are drawn on the end-to-end percentiles.
    let text = dashboard.to_string();
    assert!(text.contains(r#""value":2"#) && text.contains(r#""value":30"#), "SLO threshold lines at 2 s and 30 s");
}
