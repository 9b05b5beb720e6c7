//! The demo model inside a real pipeline run on the real stack (tansu, moto, Orthanc):
//! route → pseudonymize → preprocess → infer → stow. Every CT instance reaches the PACS with the model's
//! results on its outcome record (name, version, SHA-256 of the file that ran); the model flags
//! exactly the slices `synth` planted a bleed on, and nothing in the clean head CT; other
//! modalities are counted drops before the model.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};
use radstream_pipeline::publish;
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{OutcomeEvent, OutcomeKind};
use radstream_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_model_flags_exactly_the_planted_bleeds_and_its_identity_travels_with_the_results() -> Result<()> {
    chain_finds_the_planted_bleeds("tract", "").await
}

/// The same chain with the model in ONNX Runtime (pip's CPU library, opened by the worker
/// process at run time; `device = "auto"` finds no CUDA provider there and says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_chain_on_onnx_runtime_flags_the_same_bleeds() -> Result<()> {
    let Some(lib) = std::env::var("RADSTREAM_ONNXRUNTIME_LIB").ok().filter(|l| !l.is_empty()) else {
        radstream_test_gate::needs_under(
            &["RADSTREAM_REQUIRE_ONNXRUNTIME", radstream_test_gate::REQUIRE_STACK],
            "ONNX Runtime's library in RADSTREAM_ONNXRUNTIME_LIB (pip install onnxruntime)",
            false,
        );
        return Ok(());
    };
    chain_finds_the_planted_bleeds("onnxruntime", &format!("backend = \"onnxruntime\"\nonnxruntime_lib = \"{lib}\""))
        .await
}

async fn chain_finds_the_planted_bleeds(name: &str, backend_toml: &str) -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model_file = std::fs::read(repo.join("models/demo/ct-head-bleed.onnx"))?;
    let sha256 = radstream_operators::infer::manifest::sha256_hex(&model_file);

    let dir = tempfile::tempdir()?;
    let (key_path, deid) = deid_key(dir.path(), "infer-test")?;
    // The sink stores through a proxy that counts each store the PACS reports.
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let worker = WorkerConfig::new(&stack, &format!("infer-{name}"), proxy.pacs.clone());
    worker.create_topics(&stack, 3).await?;
    let alerts = format!("{}-alerts", worker.topic);
    create_topic(&stack.kafka, &alerts, 1).await?;
    let toml = worker.toml_with_operators(&format!(
        r#"{chain}{backend_toml}

[[operators]]
type = "alert"
topic = "{alerts}"
{stow}
# A research PACS: it receives the pseudonymized instances, no relink.
[chain]
pseudonymized_destinations = ["stow"]
"#,
        chain = model_chain("ct-head-bleed", Some(&format!("key_file = \"{}\"", key_path.display()))),
        stow = worker.stow_toml()
    ));
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, &toml)?;

    // Six studies: study 0 a head CT with a planted bleed, study 3 a clean head CT, CR and MR.
    let opts = SynthOptions { studies: 6, seed: unique_seed(), ..Default::default() };
    let truth = synth::ground_truth(&opts)?;
    let planted: BTreeSet<String> = truth
        .studies
        .iter()
        .filter_map(|study| study.lesion.as_ref())
        .flat_map(|lesion| lesion.instances.iter().map(|i| i.sop_instance_uid.clone()))
        .collect();
    ensure!(!planted.is_empty(), "synth planted nothing");
    let files = dir.path().join("studies");
    synth::write_to_dir(&opts, &files)?;
    let config = worker.parsed()?;
    let publish_opts = worker.publish_options(&stack);
    let published =
        publish::publish(&config.kafka, &config.objects, publish::collect_files(&[files])?, &publish_opts, || {})
            .await?;
    let ct: BTreeSet<String> =
        published.iter().filter(|p| p.event.modality == "CT").map(|p| p.event.sop_instance_uid.clone()).collect();

    let run = Worker::start(&config_path, &stack.orthanc_password, dir.path(), name)?;
    let outcomes: Vec<OutcomeEvent> =
        match read_outcomes(&stack.kafka, &worker.outcome_topic, published.len(), Duration::from_secs(120)) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                eprintln!("--- worker log tail ---\n{}", run.log_tail());
                return Err(e);
            }
        };
    ensure!(
        outcomes.len() == published.len(),
        "{} outcomes for {} events; worker log tail:\n{}",
        outcomes.len(),
        published.len(),
        run.log_tail()
    );

    let mut flagged = BTreeSet::new();
    for outcome in &outcomes {
        let sop = outcome.sop_instance_uid.clone().unwrap_or_default();
        if ct.contains(&sop) {
            ensure!(outcome.outcome == OutcomeKind::Delivered, "CT {sop} not delivered: {outcome:?}");
            let results = outcome.results.as_ref().ok_or_else(|| anyhow::anyhow!("CT {sop} has no results"))?;
            ensure!(results.model == "ct-head-bleed" && results.version == "0.1.0", "{results:?}");
            ensure!(results.sha256 == sha256, "the results name another model file: {results:?}");
            if !results.findings.is_empty() {
                ensure!(results.findings.iter().all(|f| f.code_system == "SCT" && f.critical), "{results:?}");
                flagged.insert(sop);
            }
        } else {
            ensure!(outcome.outcome == OutcomeKind::Dropped, "non-CT {sop} should be dropped: {outcome:?}");
            ensure!(outcome.detail.as_deref() == Some("preprocess_modality"), "{outcome:?}");
            ensure!(outcome.results.is_none());
        }
    }
    ensure!(flagged == planted, "flagged {flagged:?}, planted {planted:?}");

    // Each planted slice's critical finding went out on the alert topic once, as STAT. The
    // alert operator sends before the instance moves on, so with every outcome in, every alert
    // is on the topic: its length is exact now, and the read waits for those alerts, not a time.
    let on_topic: i64 = high_watermarks(&stack.kafka, &alerts, 1)?.values().sum();
    ensure!(on_topic == planted.len() as i64, "{on_topic} alerts on {alerts} for {} planted slices", planted.len());
    let sent: Vec<radstream_schemas::CriticalAlert> =
        read_topic(&stack.kafka, &alerts, planted.len(), Duration::from_secs(60))?
            .iter()
            .map(|v| serde_json::from_slice(v))
            .collect::<Result<_, _>>()?;
    let alerted: BTreeSet<String> = sent.iter().map(|a| a.sop_instance_uid.clone()).collect();
    ensure!(sent.len() == planted.len() && alerted == planted, "alerts for {alerted:?}, planted {planted:?}");
    ensure!(sent.iter().all(|a| a.priority == "STAT"
        && a.results.model == "ct-head-bleed"
        && a.results.findings.iter().all(|f| f.critical)));

    // Every CT image went through the model once, in runs of at most max_batch = 4.
    let images = run.metric("radstream_model_batch_images_sum").await;
    let runs = run.metric("radstream_model_run_duration_seconds_count").await;
    ensure!(images == ct.len() as f64, "{images} images through the model for {} CT instances", ct.len());
    ensure!(runs >= (ct.len() as f64 / 4.0).ceil() && runs <= ct.len() as f64, "{runs} model runs");

    // The PACS holds the pseudonymized CT instances, each once.
    let studies: Vec<String> =
        truth.studies.iter().map(|s| deid.pseudonymize_uid(s.study_instance_uid.as_bytes())).collect();
    let counts = stack.pacs().count_instances(&studies).await?;
    let pseudonymized_ct: BTreeSet<String> = ct.iter().map(|sop| deid.pseudonymize_uid(sop.as_bytes())).collect();
    ensure!(
        counts.keys().cloned().collect::<BTreeSet<_>>() == pseudonymized_ct,
        "the PACS should hold exactly the CT instances"
    );
    // Orthanc keeps one copy per SOP Instance UID: only the proxy can see one sent twice.
    proxy.ensure_each_stored_once(&pseudonymized_ct)?;
    let device = if name == "onnxruntime" { "gpu_unavailable" } else { "cpu_requested" };
    let placed = run
        .metric(&format!("radstream_compute_backend{{backend=\"cpu\",operator=\"infer\",reason=\"{device}\"}}"))
        .await;
    ensure!(placed == 1.0, "radstream_compute_backend for infer: {placed}");
    assert_no_phi("the worker log", &std::fs::read_to_string(&run.log)?)?;
    Ok(())
}
