use super::*;

#[test]
fn findings_are_counted_per_instance_and_studies_once() {
    let finding = |critical| radstream_schemas::FindingRecord {
        label: "intracranial hemorrhage".into(),
        code_system: "SCT".into(),
        code: "1386000".into(),
        frame: 0,
        score: 0.9,
        critical,
    };
    let results = |findings| radstream_schemas::ModelResults {
        model: "ct-head-bleed".into(),
        version: "0.1.0".into(),
        sha256: String::new(),
        findings,
        series: None,
    };
    let stats = RunStats::default();
    stats.record_findings(&results(vec![finding(true)]), Some("1.2.3"));
    stats.record_findings(&results(vec![finding(false), finding(false)]), Some("1.2.3"));
    stats.record_findings(&results(vec![]), Some("1.2.4"));
    assert_eq!(stats.instances_with_findings.load(Ordering::Relaxed), 2);
    assert_eq!(stats.critical_instances.load(Ordering::Relaxed), 1);
    assert_eq!(stats.flagged_studies().into_iter().collect::<Vec<_>>(), ["1.2.3"]);
}
