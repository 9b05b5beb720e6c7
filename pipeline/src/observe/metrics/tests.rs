use std::collections::HashSet;
use std::path::Path;

use radstream_schemas::records::{Feedback, Verdict};

use super::*;

const NOV_28: i64 = 1_795_860_000_000;

/// `docs/metrics.md` as the table says it should be.
fn reference() -> String {
    let mut out = String::from(
        "# Metrics\n\n\
         Every metric radstream exports. Generated from `pipeline/src/observe/metrics.rs` (`ALL`); do not edit by\n\
         hand: after changing a metric, run `RADSTREAM_BLESS=1 cargo test -p radstream-pipeline --lib observe::metrics`.\n\
         Labels take bounded values only; none carries a UID or anything about a patient.\n",
    );
    for (process, title) in [(Process::Worker, "`radstream run` (the workers)"), (Process::Lake, "`radstream lake`")] {
        out.push_str(&format!("\n## {title}\n\n| Name | Type | Labels | Help |\n|---|---|---|---|\n"));
        for def in ALL.iter().filter(|d| d.process == process) {
            let labels = def.labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ");
            out.push_str(&format!("| `{}` | {} | {labels} | {} |\n", def.name, def.kind.as_str(), def.help));
        }
    }
    out
}

#[test]
fn the_metrics_doc_lists_every_metric() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
    let expected = reference();
    if std::env::var_os("RADSTREAM_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "{} is not what pipeline/src/observe/metrics.rs defines; regenerate it with \
         `RADSTREAM_BLESS=1 cargo test -p radstream-pipeline --lib observe::metrics`",
        path.display()
    );
}

#[test]
fn names_are_unique_and_follow_prometheus_conventions() {
    let mut seen = HashSet::new();
    for def in ALL {
        assert!(seen.insert(def.name), "{} is defined twice", def.name);
        assert!(def.name.starts_with("radstream_"), "{}", def.name);
        assert_eq!(def.kind == MetricKind::Counter, def.name.ends_with("_total"), "{}", def.name);
    }
}

#[test]
fn every_metric_is_registered_with_its_definition() {
    let worker = Metrics::new();
    // Touch every labelled metric so that it appears in the exposition.
    let text = worker.render();
    let lake = LakeMetrics::new().render();
    for def in ALL.iter().filter(|d| d.labels.is_empty() || d.name == BUILD_INFO.name) {
        let text = if def.process == Process::Worker { &text } else { &lake };
        assert!(text.contains(&format!("# HELP {} {}\n", def.name, def.help)), "{} in\n{text}", def.name);
        assert!(text.contains(&format!("# TYPE {} {}\n", def.name, def.kind.as_str())), "{}", def.name);
    }
}

#[test]
fn every_operator_metric_has_exactly_one_row_with_its_labels_and_kind() {
    let metrics = Metrics::new();
    for metric in OperatorMetric::ALL {
        let rows: Vec<&MetricDef> = ALL.iter().filter(|d| d.recorded_by_operators == Some(*metric)).collect();
        assert_eq!(rows.len(), 1, "{metric:?} is the metric of {} rows", rows.len());
        let def = rows[0];
        assert_eq!(def.labels, metric.labels(), "{metric:?}: {}", def.name);
        assert_eq!(def.kind, MetricKind::of_value(metric.value()), "{metric:?}: {}", def.name);
        assert_eq!(def.process, Process::Worker, "{metric:?}: operators run in the worker");
        assert_eq!(def_of(*metric).map(|d| d.name), Some(def.name));
        assert!(metrics.recorded.contains_key(metric), "{metric:?} is not registered");
    }
    // A row may not link to a variant the contract does not list (its tests would miss it).
    for def in ALL {
        if let Some(metric) = def.recorded_by_operators {
            assert!(OperatorMetric::ALL.contains(&metric), "{}: {metric:?} is not in OperatorMetric::ALL", def.name);
        }
    }
}

/// The sample line of `def` with every label set to `<label>-value`, as the text format writes
/// it (labels sorted by name).
fn sample(def: &MetricDef, suffix: &str, value: &str) -> String {
    let mut labels: Vec<String> = def.labels.iter().map(|l| format!("{l}=\"{l}-value\"")).collect();
    labels.sort();
    format!("{}{suffix}{{{}}} {value}\n", def.name, labels.join(","))
}

fn record_each(metrics: &Metrics, value: f64) {
    for metric in OperatorMetric::ALL {
        let values: Vec<String> = metric.labels().iter().map(|l| format!("{l}-value")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        metrics.record(*metric, &values, value);
    }
}

#[test]
fn recording_each_operator_metric_shows_in_the_exposition() {
    let metrics = Metrics::new();
    record_each(&metrics, 2.0);
    record_each(&metrics, 3.0);
    let text = metrics.render();
    for metric in OperatorMetric::ALL {
        let def = def_of(*metric).unwrap();
        let expected = match def.kind {
            MetricKind::Counter | MetricKind::Gauge => vec![sample(def, "", "5")],
            MetricKind::Histogram => vec![sample(def, "_sum", "5"), sample(def, "_count", "2")],
        };
        for line in expected {
            assert!(text.contains(&line), "{metric:?}: no {line:?} in\n{text}");
        }
    }
    // The buckets of the histograms registered before the others are theirs, not the default.
    assert!(text.contains(r#"radstream_model_batch_images_bucket{model="model-value",le="128"} 2"#), "{text}");
    assert!(text.contains(r#"radstream_model_queue_delay_seconds_bucket{model="model-value",le="0.00005"} 0"#));
}

#[test]
fn gauges_go_down_by_their_delta() {
    let metrics = Metrics::new();
    let labels = ["preprocess", "cuda", "gpu_started"];
    metrics.record(OperatorMetric::ComputeBackend, &labels, 1.0);
    metrics.record(OperatorMetric::ComputeBackend, &labels, -1.0);
    metrics.record(OperatorMetric::ComputeBackend, &["preprocess", "cpu", "gpu_failed"], 1.0);
    let text = metrics.render();
    assert!(
        text.contains(r#"radstream_compute_backend{backend="cuda",operator="preprocess",reason="gpu_started"} 0"#),
        "{text}"
    );
    assert!(text.contains(r#"radstream_compute_backend{backend="cpu",operator="preprocess",reason="gpu_failed"} 1"#));
}

#[test]
fn a_recording_that_does_not_fit_is_dropped_without_a_panic() {
    let metrics = Metrics::new();
    let before = metrics.render();
    // Too few and too many label values.
    metrics.record(OperatorMetric::DestinationRequests, &["pacs"], 1.0);
    metrics.record(OperatorMetric::ModelRunDuration, &["model", "extra"], 1.0);
    metrics.record(OperatorMetric::SeriesHeld, &[], 1.0);
    // Values the kind cannot take.
    metrics.record(OperatorMetric::ResultObjects, &["sr"], -1.0);
    metrics.record(OperatorMetric::ResultObjects, &["sr"], 0.5);
    metrics.record(OperatorMetric::SeriesHeld, &["model"], f64::NAN);
    metrics.record(OperatorMetric::ModelQueueDelay, &["model"], f64::INFINITY);
    assert_eq!(metrics.render(), before);
}

#[test]
fn the_agreement_ratio_is_accepts_over_all_verdicts() {
    let metrics = LakeMetrics::new();
    let verdict = |version: &str, verdict| Feedback {
        sop_uid_pseudo: "2.25.9".into(),
        model: "ct-head-bleed".into(),
        version: version.into(),
        finding_code: "1386000".into(),
        verdict,
        time_ms: NOV_28,
    };
    for v in [Verdict::Accept, Verdict::Accept, Verdict::Reject, Verdict::Modify] {
        metrics.verdict(&verdict("0.1.0", v));
    }
    metrics.verdict(&verdict("0.2.0", Verdict::Accept));
    let text = metrics.render();
    assert!(text.contains(r#"radstream_model_agreement_ratio{model="ct-head-bleed",version="0.1.0"} 0.5"#), "{text}");
    assert!(text.contains(r#"radstream_model_agreement_ratio{model="ct-head-bleed",version="0.2.0"} 1"#), "{text}");
    assert!(
        text.contains(r#"radstream_model_feedback_total{model="ct-head-bleed",verdict="accept",version="0.1.0"} 2"#),
        "{text}"
    );
}
