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
