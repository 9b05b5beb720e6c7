//! The split deployment on the real stack: an edge pipeline routes and pseudonymizes and hands
//! the pseudonymized instances to a second ("GPU side") pipeline through a topic and a
//! prefix; that pipeline derives a Key Object Selection document from each and sends it back;
//! the edge re-links it and STOW-RSes it. Orthanc must hold every result under the original
//! study and patient, referencing the original series and instances, while the research copy
//! holds only pseudonymized instances, byte-identical to what `radstream deid` writes.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use radstream_operators::pseudonymize::DeidKey;
use radstream_pipeline::publish::{self, PublishOptions};
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{AuditEvent, AuditOutcome, OutcomeEvent, OutcomeKind, Priority};
use radstream_tests::*;

const PARTITIONS: i32 = 3;

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn parse(bytes: &[u8]) -> Result<FileDicomObject<InMemDicomObject>> {
    Ok(dicom_object::OpenFileOptions::new().from_reader(&bytes[128..])?)
}

/// A worker config named `name` reading `input`.
fn worker(stack: &Stack, name: &str, input: Option<&str>, pacs: Pacs) -> WorkerConfig {
    let mut w = WorkerConfig::new(stack, name, pacs);
    if let Some(input) = input {
        w.topic = input.to_string();
        w.group = unique(&format!("{name}-group"));
        w.dead_letter_topic = unique(&format!("{name}-dlq"));
        w.outcome_topic = unique(&format!("{name}-outcomes"));
    }
    w
}

async fn create_topics(stack: &Stack, w: &WorkerConfig) -> Result<()> {
    create_topic(&stack.kafka, &w.topic, PARTITIONS).await?;
    create_topic(&stack.kafka, &w.dead_letter_topic, 1).await?;
    create_topic(&stack.kafka, &w.outcome_topic, 1).await
}

fn delivered(stack: &Stack, w: &WorkerConfig, n: usize) -> Result<Vec<OutcomeEvent>> {
    let outcomes: Vec<OutcomeEvent> = read_topic(&stack.kafka, &w.outcome_topic, n, Duration::from_secs(30))?
        .iter()
        .map(|v| Ok(serde_json::from_slice(v)?))
        .collect::<Result<_>>()?;
    Ok(outcomes.into_iter().filter(|o| o.outcome == OutcomeKind::Delivered).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_pseudonymizes_gpu_side_derives_edge_relinks_into_the_original_study() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let key_path = dir.join("deid.key");
    std::fs::write(&key_path, DeidKey::generate_file_text("split-test"))?;

    // Topics: the edge's input, the hand-off to the GPU side, the results coming back, and
    // the edge-only link (compacted) and audit topics.
    // The return side stores through a proxy that counts each store the PACS reports.
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let edge = worker(&stack, "split-edge", None, stack.pacs());
    let handoff = unique("split-handoff");
    let gpu = worker(&stack, "split-gpu", Some(&handoff), stack.pacs());
    let results = unique("split-results");
    let back = worker(&stack, "split-return", Some(&results), proxy.pacs.clone());
    let links = unique("split-links");
    let audit = unique("split-audit");
    for w in [&edge, &gpu, &back] {
        create_topics(&stack, w).await?;
    }
    create_topic_with(&stack.kafka, &links, 1, &[("cleanup.policy", "compact")]).await?;
    create_topic(&stack.kafka, &audit, 1).await?;
    let research = format!("{}/research/", edge.topic);
    let handoff_prefix = format!("{}/handoff/", edge.topic);
    let results_prefix = format!("{}/results/", edge.topic);

    let edge_toml = edge.toml_with_operators(&format!(
        r#"
[[operators]]
type = "route"
default_action = "forward"
default_branch = "triage"

[[operators]]
type = "pseudonymize"
key_file = "{key}"
link_topic = "{links}"
audit_topic = "{audit}"

[[operators]]
type = "export"
bucket = "{bucket}"
prefix = "{research}"

[[operators]]
type = "export"
bucket = "{bucket}"
prefix = "{handoff_prefix}"
announce_topic = "{handoff}"
"#,
        key = key_path.display(),
        bucket = stack.bucket,
    ));
    let gpu_toml = gpu.toml_with_operators(&format!(
        r#"
[[operators]]
type = "key_object"

[[operators]]
type = "export"
bucket = "{bucket}"
prefix = "{results_prefix}"
announce_topic = "{results}"
"#,
        bucket = stack.bucket,
    ));
    let back_toml = back.toml_with_operators(&format!(
        r#"
[[operators]]
type = "relink"
link_topic = "{links}"
{stow}"#,
        stow = back.stow_toml()
    ));
    let mut workers = Vec::new();
    for (name, toml) in [("edge", &edge_toml), ("gpu", &gpu_toml), ("return", &back_toml)] {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, toml)?;
        workers.push(Worker::start(&path, &stack.orthanc_password, dir, name)?);
    }

    // Three synthetic studies, published to the edge's input.
    let files_dir = dir.join("studies");
    synth::write_to_dir(&SynthOptions { studies: 3, seed: unique_seed(), ..Default::default() }, &files_dir)?;
    let config = edge.parsed()?;
    let files = publish::collect_files(std::slice::from_ref(&files_dir))?;
    let opts = PublishOptions {
        bucket: stack.bucket.clone(),
        prefix: edge.topic.clone(),
        priority: Priority::Routine,
        source: Some("SPLIT_TEST".into()),
        concurrency: 8,
        skip_events: false,
    };
    let published = publish::publish(&config.kafka, &config.objects, files, &opts, || {}).await?;
    let n = published.len();
    // A radiograph study may be a single instance; three studies always give several.
    ensure!(n >= 3, "expected several instances, got {n}");
    let originals: HashMap<String, (String, String)> = published
        .iter()
        .map(|p| {
            (
                p.event.sop_instance_uid.clone(),
                (p.event.study_instance_uid.clone(), p.event.series_instance_uid.clone()),
            )
        })
        .collect();
    let studies: HashSet<String> = originals.values().map(|(s, _)| s.clone()).collect();

    // Every result reaches the PACS under the original study.
    let pacs = stack.pacs();
    let waited = wait_until(Duration::from_secs(240), "every key object in the PACS", || async {
        pacs.count_instances(&studies).await.map(|c| c.len() >= n).unwrap_or(false)
    })
    .await;
    if waited.is_err() {
        for w in &workers {
            eprintln!("--- {} ---\n{}", w.log.display(), w.log_tail());
        }
    }
    waited?;
    let in_pacs = pacs.count_instances(&studies).await?;
    ensure!(in_pacs.len() == n, "one result per instance: {} in the PACS for {n} instances", in_pacs.len());
    // Orthanc keeps one copy per SOP Instance UID, so only the proxy can see a result sent twice.
    proxy.ensure_each_stored_once(in_pacs.keys())?;

    // Each result is a KOS of the original patient, referencing the original series and
    // instance, and carries no pseudonym of them.
    let mut referenced = HashSet::new();
    for sop in in_pacs.keys() {
        let kos = parse(&pacs.instance_file(sop).await?)?;
        ensure!(text(&kos, tags::MODALITY) == "KO", "results are key objects");
        let evidence = kos.element(tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE)?.items().context("evidence")?;
        let study = text(&evidence[0], tags::STUDY_INSTANCE_UID);
        let series = evidence[0].element(tags::REFERENCED_SERIES_SEQUENCE)?.items().context("series")?;
        let series_uid = text(&series[0], tags::SERIES_INSTANCE_UID);
        let sops = series[0].element(tags::REFERENCED_SOP_SEQUENCE)?.items().context("sops")?;
        let source = text(&sops[0], tags::REFERENCED_SOP_INSTANCE_UID);
        let (orig_study, orig_series) =
            originals.get(&source).with_context(|| format!("{source} is not an original"))?;
        ensure!(&study == orig_study && &series_uid == orig_series, "evidence points at the original study and series");
        ensure!(text(&kos, tags::STUDY_INSTANCE_UID) == *orig_study, "filed under the original study");
        ensure!(text(&kos, tags::PATIENT_ID).starts_with("SYN"), "the original patient ID is restored");
        ensure!(text(&kos, tags::PATIENT_NAME).starts_with("SYNTH^"), "the original patient name is restored");
        ensure!(
            kos.element_opt(tags::PATIENT_IDENTITY_REMOVED)?.is_none(),
            "no de-identification mark on a re-linked result"
        );
        referenced.insert(source);
    }
    ensure!(referenced.len() == n, "every instance has its own result");
    for w in [&edge, &gpu, &back] {
        ensure!(delivered(&stack, w, n)?.len() == n, "{}: every event delivered", w.topic);
    }

    // The research copy: pseudonymized only, and byte for byte what `radstream deid` writes.
    let store = std::sync::Arc::new(
        object_store::aws::AmazonS3Builder::from_env()
            .with_endpoint(&stack.s3_endpoint)
            .with_bucket_name(&stack.bucket)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()?,
    );
    let listed: Vec<_> = store.list(Some(&research.trim_end_matches('/').into())).try_collect().await?;
    ensure!(listed.len() == n, "{} research copies for {n} instances", listed.len());
    let mut research_objects = HashMap::new();
    for meta in listed {
        let bytes = store.get(&meta.location).await?.bytes().await?;
        let o = parse(&bytes)?;
        ensure!(text(&o, tags::PATIENT_IDENTITY_REMOVED) == "YES", "{} is marked de-identified", meta.location);
        ensure!(!originals.contains_key(&text(&o, tags::SOP_INSTANCE_UID)), "no original UID in the research copy");
        assert_no_phi(&format!("research copy {}", meta.location), &String::from_utf8_lossy(&bytes))?;
        research_objects.insert(text(&o, tags::SOP_INSTANCE_UID), bytes);
    }
    let cli_out = dir.join("cli-out");
    let status = Command::new(radstream_bin())
        .args(["deid", "--key-file"])
        .arg(&key_path)
        .arg("--out")
        .arg(&cli_out)
        .arg(&files_dir)
        .status()?;
    ensure!(status.success(), "radstream deid failed: {status}");
    let mut compared = 0;
    for entry in walk(&cli_out)? {
        let bytes = Bytes::from(std::fs::read(&entry)?);
        let parsed = parse(&bytes)?;
        let sop = text(&parsed, tags::SOP_INSTANCE_UID);
        let from_pipeline = research_objects.get(&sop).with_context(|| format!("{sop} not in the research copy"))?;
        ensure!(*from_pipeline == bytes, "{}: the pipeline and `radstream deid` differ", entry.display());
        compared += 1;
    }
    ensure!(compared == n, "compared {compared} of {n} outputs");

    // One audit event per instance, without PHI, naming the key.
    let audits: Vec<AuditEvent> = read_topic(&stack.kafka, &audit, n, Duration::from_secs(30))?
        .iter()
        .map(|v| Ok(serde_json::from_slice(v)?))
        .collect::<Result<_>>()?;
    ensure!(audits.len() == n, "{} audit events for {n} instances", audits.len());
    ensure!(audits.iter().all(|a| a.outcome == AuditOutcome::Pseudonymized && a.key_id == "split-test"));
    for raw in read_topic(&stack.kafka, &audit, n, Duration::from_secs(5))? {
        assert_no_phi("an audit event", &String::from_utf8_lossy(&raw))?;
    }
    for w in &mut workers {
        let log = std::fs::read_to_string(&w.log)?;
        assert_no_phi("a worker log", &log)?;
        let status = w.terminate(Duration::from_secs(40))?;
        ensure!(status.success(), "SIGTERM exits 0: {status}");
    }
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    Ok(out)
}
