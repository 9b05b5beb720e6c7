//! A model of whole series on the real stack (tansu, moto, Orthanc):
//! route → pseudonymize → preprocess → infer (ct-head-bleed-3d, series assembly) → stow.
//!
//! Study A's axial series arrives without its planted bleed slices: once its quiet time passes
//! it is run as it is (revision 1, nothing found). The bleed slices then arrive late: the
//! series is run again with every slice (revision 2, found, the flagged instances exactly the
//! planted ones), superseding revision 1. Study B, a clean head CT, arrives whole and runs as
//! soon as its expected count (ImagesInAcquisition) is reached, without waiting for the quiet
//! time. Every result carries the model's name, version and hash, and every instance reaches
//! the PACS once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use radstream_pipeline::publish;
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{OutcomeEvent, OutcomeKind};
use radstream_tests::*;

/// Seconds a series without its expected count waits for more instances.
const QUIET_SECS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_part_of_a_series_gets_results_that_supersede_the_first_run() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = repo.join("models/ct-head-bleed-3d.model.toml");
    let sha256 = radstream_operators::infer::manifest::sha256_hex(&std::fs::read(
        repo.join("models/demo/ct-head-bleed-3d.onnx"),
    )?);
    let dir = tempfile::tempdir()?;
    let (key_path, deid) = deid_key(dir.path(), "series-test")?;

    // The sink stores through a proxy that counts each store the PACS reports.
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let worker = WorkerConfig::new(&stack, "series", proxy.pacs.clone());
    worker.create_topics(&stack, 3).await?;
    let toml = worker.toml_with_operators(&format!(
        r#"
[[operators]]
type = "route"
default_action = "drop"

[[operators.rules]]
name = "skip-localizers"
series_description = "(?i)scout|localizer|survey|topogram"
action = "drop"

[[operators.rules]]
name = "head-ct"
modality = ["CT"]
body_part = ["HEAD"]
branch = "head-ct"

[[operators]]
type = "pseudonymize"
key_file = "{key}"

[[operators]]
type = "preprocess"
spec_file = "{spec}"

[[operators]]
type = "infer"
model = "{manifest}"

[operators.series]
quiet_secs = {QUIET_SECS}
{stow}
# A research PACS: it receives the pseudonymized instances, no relink.
[chain]
pseudonymized_destinations = ["stow"]
"#,
        key = key_path.display(),
        spec = repo.join("models/ct-head-bleed-3d.preprocess.toml").display(),
        manifest = manifest.display(),
        stow = worker.stow_toml()
    ));
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, &toml)?;

    // Four studies: study 0 a head CT with a bleed (A), study 3 a clean head CT (B). A seed
    // whose series A also has slices without the bleed (some short series are bleed throughout).
    let keeps_clean_slices = |opts: &SynthOptions| -> Result<bool> {
        let planted = synth::ground_truth(opts)?.studies[0].lesion.as_ref().map_or(0, |l| l.instances.len());
        Ok(synth::generate_studies(opts, 0..1).filter(|i| i.series_instance_count > 1).count() > planted)
    };
    let mut opts = SynthOptions { studies: 4, seed: unique_seed(), ..Default::default() };
    while !keeps_clean_slices(&opts)? {
        opts.seed += 1;
    }
    let truth = synth::ground_truth(&opts)?;
    let lesion = truth.studies[0].lesion.clone().context("synth plants a bleed in study 0")?;
    ensure!(truth.studies[3].lesion.is_none() && truth.studies[3].body_part_examined == "HEAD");
    let planted: BTreeSet<String> = lesion.instances.iter().map(|i| i.sop_instance_uid.clone()).collect();
    let files = dir.path().join("studies");
    let instances = synth::write_to_dir(&opts, &files)?;
    let axial = |study: usize| -> Vec<&synth::SynthInstance> {
        instances
            .iter()
            .filter(|i| i.study_instance_uid == truth.studies[study].study_instance_uid && i.series_instance_count > 1)
            .collect()
    };
    let (series_a, series_b) = (axial(0), axial(3));
    ensure!(series_a.iter().all(|i| i.series_instance_uid == lesion.series_instance_uid));
    ensure!(series_a.len() > planted.len(), "study A must keep slices without the bleed");

    let config = worker.parsed()?;
    let publish_opts = worker.publish_options(&stack);
    let all_files = publish::collect_files(std::slice::from_ref(&files))?;
    let is_late = |relative: &str| planted.iter().any(|sop| relative.ends_with(&format!("/{sop}.dcm")));
    let (late, first): (Vec<_>, Vec<_>) = all_files.into_iter().partition(|(_, key)| is_late(key));
    ensure!(late.len() == planted.len(), "{} late files for {} planted slices", late.len(), planted.len());

    let mut run = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "series")?;
    let published_first = publish::publish(&config.kafka, &config.objects, first, &publish_opts, || {}).await?;
    let read = |n: usize, timeout: Duration| read_outcomes(&stack.kafka, &worker.outcome_topic, n, timeout);
    let outcomes = match read(published_first.len(), Duration::from_secs(120)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("--- worker log tail ---\n{}", run.log_tail());
            return Err(e);
        }
    };
    ensure!(
        outcomes.len() == published_first.len(),
        "{} outcomes for {} events",
        outcomes.len(),
        published_first.len()
    );
    let by_sop: BTreeMap<String, OutcomeEvent> =
        outcomes.into_iter().map(|o| (o.sop_instance_uid.clone().unwrap_or_default(), o)).collect();

    let series_of = |o: &OutcomeEvent| -> Result<radstream_schemas::SeriesRecord> {
        ensure!(o.outcome == OutcomeKind::Delivered, "{o:?}");
        let results = o.results.as_ref().context("a delivered head CT carries results")?;
        ensure!(
            results.model == "ct-head-bleed-3d" && results.version == "0.1.0" && results.sha256 == sha256,
            "{results:?}"
        );
        results.series.clone().context("a series model's result names its series run")
    };
    // B: whole, run as soon as its expected count was reached; nothing found.
    for i in &series_b {
        let o = by_sop.get(&i.sop_instance_uid).context("an outcome for each of B's slices")?;
        let s = series_of(o)?;
        ensure!((s.revision, s.reason.as_str(), s.instances) == (1, "expected_count", series_b.len()), "{s:?}");
        ensure!(o.results.as_ref().unwrap().findings.is_empty(), "the clean head CT was flagged: {o:?}");
    }
    // A without its bleed slices: run after the quiet time; nothing found.
    for i in series_a.iter().filter(|i| !planted.contains(&i.sop_instance_uid)) {
        let o = by_sop.get(&i.sop_instance_uid).context("an outcome for each of A's early slices")?;
        let s = series_of(o)?;
        ensure!((s.revision, s.reason.as_str()) == (1, "quiet_time"), "{s:?}");
        ensure!(s.instances == series_a.len() - planted.len() && s.expected == Some(series_a.len()), "{s:?}");
        ensure!(o.results.as_ref().unwrap().findings.is_empty(), "found a bleed without its slices: {o:?}");
    }
    // Everything else (localizers, CR, MR) is a counted drop at routing.
    for o in by_sop.values() {
        if o.outcome == OutcomeKind::Dropped {
            ensure!(o.detail.as_deref().is_some_and(|d| d == "skip-localizers" || d == "default"), "{o:?}");
        }
    }

    // The late bleed slices: revision 2 over the whole series, found, superseding revision 1.
    let published_late = publish::publish(&config.kafka, &config.objects, late, &publish_opts, || {}).await?;
    let total = published_first.len() + published_late.len();
    let outcomes = read(total, Duration::from_secs(60))?;
    ensure!(outcomes.len() == total, "{} outcomes for {total} events", outcomes.len());
    for o in outcomes.iter().filter(|o| o.sop_instance_uid.as_ref().is_some_and(|s| planted.contains(s))) {
        let s = series_of(o)?;
        ensure!(
            (s.revision, s.reason.as_str(), s.instances, s.slices)
                == (2, "expected_count", series_a.len(), series_a.len()),
            "{s:?}"
        );
        let results = o.results.as_ref().unwrap();
        ensure!(results.findings.len() == 1 && results.findings[0].critical, "{results:?}");
        let flagged: BTreeSet<String> = s.flagged_instances.iter().cloned().collect();
        // Named as the instance's event names it: the results go back to the original study.
        ensure!(flagged == planted, "flagged {flagged:?}, planted {planted:?}");
    }

    // Every head CT slice is in the PACS once, under the pseudonymized study.
    let studies = [0, 3].map(|s| deid.pseudonymize_uid(truth.studies[s].study_instance_uid.as_bytes()));
    let counts = stack.pacs().count_instances(&studies).await?;
    ensure!(counts.len() == series_a.len() + series_b.len(), "{counts:?}");
    // Orthanc keeps one copy per SOP Instance UID: only the proxy can see one sent twice.
    proxy.ensure_each_stored_once(counts.keys())?;
    let runs = run.metric("radstream_series_runs_total").await;
    ensure!(runs == 3.0, "{runs} series runs: B once, A twice");
    assert_no_phi("the worker log", &std::fs::read_to_string(&run.log)?)?;
    run.terminate(Duration::from_secs(30))?;
    Ok(())
}

/// Nothing of an incomplete series is committed: a worker stopped while it holds a series
/// leaves those offsets uncommitted, and the next worker of the group rebuilds the series from
/// them and runs it whole when its last instance arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_series_survives_a_restart_uncommitted_and_is_rebuilt() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir()?;
    let worker = WorkerConfig::new(&stack, "series-restart", stack.pacs());
    worker.create_topics(&stack, 2).await?;
    let toml = worker.toml_with_operators(&format!(
        r#"
[[operators]]
type = "preprocess"
spec_file = "{spec}"

[[operators]]
type = "infer"
model = "{manifest}"

[operators.series]
# Longer than the test: only the expected count completes the series.
quiet_secs = 600
{stow}"#,
        spec = repo.join("models/ct-head-bleed-3d.preprocess.toml").display(),
        manifest = repo.join("models/ct-head-bleed-3d.model.toml").display(),
        stow = worker.stow_toml()
    ));
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, &toml)?;

    let opts = SynthOptions { studies: 1, seed: unique_seed(), ..Default::default() };
    let truth = synth::ground_truth(&opts)?;
    let lesion = truth.studies[0].lesion.clone().context("synth plants a bleed in study 0")?;
    let planted: BTreeSet<String> = lesion.instances.iter().map(|i| i.sop_instance_uid.clone()).collect();
    let files = dir.path().join("studies");
    let instances = synth::write_to_dir(&opts, &files)?;
    let series: Vec<&synth::SynthInstance> =
        instances.iter().filter(|i| i.series_instance_uid == lesion.series_instance_uid).collect();
    let last = series.iter().max_by_key(|i| i.instance_number).context("a series")?.sop_instance_uid.clone();
    let in_series = |key: &str| series.iter().any(|i| key.ends_with(&format!("/{}.dcm", i.sop_instance_uid)));
    let (held, late): (Vec<_>, Vec<_>) = publish::collect_files(std::slice::from_ref(&files))?
        .into_iter()
        .filter(|(_, key)| in_series(key))
        .partition(|(_, key)| !key.ends_with(&format!("/{last}.dcm")));
    let config = worker.parsed()?;
    let publish_opts = worker.publish_options(&stack);

    let mut first = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "first")?;
    publish::publish(&config.kafka, &config.objects, held.clone(), &publish_opts, || {}).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while first.metric("radstream_series_held_instances").await != held.len() as f64 {
        ensure!(std::time::Instant::now() < deadline, "the first worker never held the series:\n{}", first.log_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.terminate(Duration::from_secs(30))?;
    let log = std::fs::read_to_string(&first.log)?;
    ensure!(log.contains("held instances left uncommitted"), "{}", first.log_tail());
    let committed = committed_offsets(&stack.kafka, &worker.group, &worker.topic, 2)?;
    ensure!(committed.values().all(|&offset| offset <= 0), "offsets of a held series were committed: {committed:?}");

    let mut second = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "second")?;
    publish::publish(&config.kafka, &config.objects, late, &publish_opts, || {}).await?;
    let outcomes: Vec<OutcomeEvent> =
        match read_outcomes(&stack.kafka, &worker.outcome_topic, series.len(), Duration::from_secs(90)) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                eprintln!("--- second worker log tail ---\n{}", second.log_tail());
                return Err(e);
            }
        };
    ensure!(outcomes.len() == series.len(), "{} outcomes for a series of {}", outcomes.len(), series.len());
    let sops: BTreeSet<String> = outcomes.iter().filter_map(|o| o.sop_instance_uid.clone()).collect();
    ensure!(sops.len() == series.len(), "each instance answered once: {sops:?}");
    for o in &outcomes {
        ensure!(o.outcome == OutcomeKind::Delivered, "{o:?}");
        let results = o.results.as_ref().context("results")?;
        let s = results.series.as_ref().context("a series record")?;
        ensure!((s.revision, s.reason.as_str(), s.instances) == (1, "expected_count", series.len()), "{s:?}");
        ensure!(s.flagged_instances.iter().cloned().collect::<BTreeSet<_>>() == planted, "{s:?}");
    }
    second.terminate(Duration::from_secs(30))?;
    Ok(())
}
