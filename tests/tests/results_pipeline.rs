//! The whole chain on the real stack, results included: route → pseudonymize → preprocess →
//! infer → results → relink → stow → fhir, one worker, against tansu, moto, Orthanc and the
//! Medplum FHIR server.
//!
//! The PACS already holds the original studies (as it would: the modality sent them there).
//! The model runs on pseudonymized instances; its results are re-linked and STOWed, so the
//! radiologist finds, in the original study, one SR, one SEG and one overlay per planted bleed,
//! and the EHR gets one R4 bundle per planted bleed that names the original patient. Replaying
//! the same events (a second consumer group over the same topic) leaves the PACS and the FHIR
//! server with the same objects and resources, none twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dicom_dictionary_std::tags;
use radstream_operators::element_text;
use radstream_pipeline::publish;
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{OutcomeEvent, OutcomeKind};
use radstream_tests::*;
use serde_json::Value;

const SR_CLASS: &str = "1.2.840.10008.5.1.4.1.1.88.34";
const SEG_CLASS: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const SC_CLASS: &str = "1.2.840.10008.5.1.4.1.1.7";
const PATIENT_SYSTEM: &str = "urn:oid:1.2.826.0.1.3680043.8.498.77";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_planted_bleed_gets_an_sr_a_seg_and_an_overlay_in_the_original_study_and_a_bundle_in_the_ehr(
) -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let Some(fhir) = std::env::var("RADSTREAM_TEST_FHIR_URL").ok().filter(|u| !u.is_empty()) else {
        radstream_tests::skip_without("the stack's FHIR server in RADSTREAM_TEST_FHIR_URL (infra/stack.sh up)");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let (key_path, _deid) = deid_key(dir.path(), "results-test")?;
    // The sink STOWs through a recorder, so what the PACS serves is checked against what
    // radstream sent, not against the PACS's own copy.
    let recorder = PacsProxy::start(&stack.pacs(), ProxyOptions { keep_sent: true, ..ProxyOptions::default() }).await?;
    let worker = WorkerConfig::new(&stack, "results", recorder.pacs.clone());
    worker.create_topics(&stack, 3).await?;
    let links = format!("{}-links", worker.topic);
    create_topic_with(&stack.kafka, &links, 1, &[("cleanup.policy", "compact")]).await?;
    let bundles = format!("{}-fhir", worker.topic);
    create_topic(&stack.kafka, &bundles, 1).await?;
    let operators = format!(
        r#"{chain}
[[operators]]
type = "results"
negatives = "drop"

[[operators]]
type = "relink"
link_topic = "{links}"
{stow}
[[operators]]
type = "fhir"
topic = "{bundles}"
patient_identifier_system = "{PATIENT_SYSTEM}"
body_site = {{ system = "SCT", value = "69536005", meaning = "Head" }}

[operators.server]
url = "{fhir}"
retry_deadline_secs = 60
"#,
        chain = model_chain(
            "ct-head-bleed",
            Some(&format!("key_file = \"{}\"\nlink_topic = \"{links}\"", key_path.display()))
        ),
        stow = worker.stow_toml(),
    );
    let toml = worker.toml_with_operators(&operators);
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, &toml)?;

    // Six studies: a head CT with a planted bleed, a clean head CT, CR and MR.
    let opts = SynthOptions { studies: 6, seed: unique_seed(), ..Default::default() };
    let files = dir.path().join("studies");
    let instances = synth::write_to_dir(&opts, &files)?;
    let planted: BTreeMap<String, &synth::SynthInstance> =
        instances.iter().filter(|i| i.lesion.is_some()).map(|i| (i.sop_instance_uid.clone(), i)).collect();
    ensure!(!planted.is_empty(), "synth planted nothing");
    let planted_study = planted.values().next().unwrap().study_instance_uid.clone();
    ensure!(planted.values().all(|i| i.study_instance_uid == planted_study), "one planted study expected");
    let read = |i: &synth::SynthInstance| std::fs::read(files.join(&i.relative_path));
    let header =
        radstream_operators::parse_header(&read(planted.values().next().unwrap())?).map_err(anyhow::Error::msg)?;
    let patient_id = element_text(&header, tags::PATIENT_ID).context("synth wrote no PatientID")?;

    // The PACS holds the original study before the results come.
    let pacs = stack.pacs();
    for instance in instances.iter().filter(|i| i.study_instance_uid == planted_study) {
        upload(&pacs, &read(instance)?).await?;
    }
    let originals: BTreeSet<String> = pacs.study_instances(&planted_study).await?.into_iter().collect();

    let config = worker.parsed()?;
    let published = publish::publish(
        &config.kafka,
        &config.objects,
        publish::collect_files(std::slice::from_ref(&files))?,
        &worker.publish_options(&stack),
        || {},
    )
    .await?;
    let mut run = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "results")?;
    let outcomes = read_outcomes(&stack.kafka, &worker.outcome_topic, published.len(), Duration::from_secs(180))?;
    ensure!(
        outcomes.len() == published.len(),
        "{} outcomes for {} events; worker log tail:\n{}",
        outcomes.len(),
        published.len(),
        run.log_tail()
    );
    check_outcomes(&outcomes, &published, &planted)?;
    // Each delivered instance's outcome says how long it spent in each stage, in chain order.
    let chain = ["route", "pseudonymize", "preprocess", "infer", "results", "relink", "stow", "fhir"];
    for outcome in outcomes.iter().filter(|o| o.outcome == OutcomeKind::Delivered) {
        let stages: Vec<&str> = outcome.stages.iter().map(|s| s.operator.as_str()).collect();
        ensure!(stages == chain, "stages {stages:?}");
        ensure!(
            outcome.stages.iter().all(|s| s.ms >= 0.0 && s.ms <= outcome.pipeline_ms + 1.0),
            "{:?}",
            outcome.stages
        );
    }

    // In the original study: the originals, and per planted bleed one SR, one SEG, one overlay.
    let objects = results_in_study(&pacs, &planted_study, &originals).await?;
    let by_class = |class: &str| objects.iter().filter(|o| o.class == class).count();
    ensure!(
        by_class(SR_CLASS) == planted.len()
            && by_class(SEG_CLASS) == planted.len()
            && by_class(SC_CLASS) == planted.len(),
        "{} SR, {} SEG, {} overlays for {} planted bleeds",
        by_class(SR_CLASS),
        by_class(SEG_CLASS),
        by_class(SC_CLASS),
        planted.len()
    );
    // What WADO-RS serves is what radstream STOWed (every copy it sent, retries included), and
    // radstream STOWed nothing else. Each refers to a planted original, carries the original
    // patient, and is valid DICOM.
    let stowed = recorder.sent_sops();
    let listed: BTreeSet<String> = objects.iter().map(|o| o.sop.clone()).collect();
    ensure!(stowed == listed, "radstream STOWed {stowed:?}; the study holds {listed:?}");
    let mut referenced: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for object in &objects {
        let file = dir.path().join(format!("{}.dcm", object.sop));
        let retrieved = wado_instance(&pacs, &planted_study, &object.series, &object.sop).await?;
        for sent in recorder.sent(&object.sop) {
            ensure_same_object(&sent, &retrieved).with_context(|| format!("WADO-RS of {}", object.sop))?;
        }
        std::fs::write(&file, &retrieved)?;
        assert_dciodvfy_clean(&file)?;
        let read = read_back(&file, &patient_id, &planted_study)?;
        // Of what it references, the original images (not its own series or frame of reference).
        referenced.entry(kind_of(&object.class)).or_default().extend(read.intersection(&originals).cloned());
    }
    let planted_sops: BTreeSet<String> = planted.keys().cloned().collect();
    for (kind, refs) in &referenced {
        ensure!(*refs == planted_sops, "the {kind} objects reference {refs:?}, planted {planted_sops:?}");
    }

    // The EHR: one bundle per planted bleed on the topic, each valid R4, naming the original
    // patient and study; the server holds one DiagnosticReport per bundle.
    let sent = read_topic(&stack.kafka, &bundles, planted.len(), Duration::from_secs(10))?;
    ensure!(sent.len() == planted.len(), "{} bundles on the topic for {} planted bleeds", sent.len(), planted.len());
    let sent: Vec<Value> = sent.iter().map(|b| serde_json::from_slice(b)).collect::<Result<_, _>>()?;
    let mut report_ids = BTreeSet::new();
    for bundle in &sent {
        let report = resource(bundle, "DiagnosticReport")?;
        ensure!(
            report["subject"]["identifier"] == serde_json::json!({ "system": PATIENT_SYSTEM, "value": patient_id }),
            "the report names another patient"
        );
        let study = resource(bundle, "ImagingStudy")?;
        ensure!(study["identifier"][0]["value"] == format!("urn:oid:{planted_study}"), "another study");
        report_ids.insert(identifier_token(report)?);
    }
    ensure!(report_ids.len() == planted.len(), "{} reports for {} planted bleeds", report_ids.len(), planted.len());
    assert_schema_valid(&sent)?;
    let on_server = server_reports(&fhir, &report_ids).await?;
    ensure!(on_server.values().all(|&n| n == 1) && on_server.len() == report_ids.len(), "server: {on_server:?}");

    for kind in ["sr", "seg", "overlay"] {
        let built = run.metric(&format!("radstream_result_objects_total{{kind=\"{kind}\"}}")).await;
        ensure!(built == planted.len() as f64, "{built} {kind} objects built for {} planted bleeds", planted.len());
    }

    // Replay: the same events through a second consumer group.
    run.terminate(Duration::from_secs(30))?;
    let replay = WorkerConfig { group: format!("{}-replay", worker.group), ..worker.clone() };
    let replay_path = dir.path().join("replay.toml");
    std::fs::write(&replay_path, replay.toml_with_operators(&operators))?;
    let again = Worker::start(&replay_path, &stack.orthanc_password, dir.path(), "replay")?;
    let all = read_outcomes(&stack.kafka, &worker.outcome_topic, 2 * published.len(), Duration::from_secs(180))?;
    ensure!(all.len() == 2 * published.len(), "{} outcomes after the replay; log:\n{}", all.len(), again.log_tail());
    check_outcomes(&all[published.len()..], &published, &planted)?;
    let after = results_in_study(&pacs, &planted_study, &originals).await?;
    let sops = |objects: &[StudyObject]| objects.iter().map(|o| o.sop.clone()).collect::<Vec<_>>();
    ensure!(
        sops(&after) == sops(&objects),
        "the replay changed the PACS: {:?} then {:?}",
        sops(&objects),
        sops(&after)
    );
    let on_server = server_reports(&fhir, &report_ids).await?;
    ensure!(on_server.values().all(|&n| n == 1) && on_server.len() == report_ids.len(), "after replay: {on_server:?}");

    for log in [&run.log, &again.log] {
        assert_no_phi("the worker log", &std::fs::read_to_string(log)?)?;
    }
    Ok(())
}

/// A model of whole series: one report per series (Present for the series with the bleed,
/// Negative for the clean one), and a SEG and an overlay for each slice the model flagged, from
/// that slice's part of the model's 3D mask. The instances themselves are not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_model_reports_each_series_once_and_segments_each_flagged_slice() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir()?;
    let worker = WorkerConfig::new(&stack, "series-results", stack.pacs());
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
type = "preprocess"
spec_file = "{spec}"

[[operators]]
type = "infer"
model = "{manifest}"

[operators.series]
quiet_secs = 5

[[operators]]
type = "results"
{stow}"#,
        spec = repo.join("models/ct-head-bleed-3d.preprocess.toml").display(),
        manifest = repo.join("models/ct-head-bleed-3d.model.toml").display(),
        stow = worker.stow_toml(),
    ));
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, &toml)?;

    let opts = SynthOptions { studies: 4, seed: unique_seed(), ..Default::default() };
    let truth = synth::ground_truth(&opts)?;
    let lesion = truth.studies[0].lesion.clone().context("synth plants a bleed in study 0")?;
    let planted: BTreeSet<String> = lesion.instances.iter().map(|i| i.sop_instance_uid.clone()).collect();
    let (study_a, study_b) = (&truth.studies[0].study_instance_uid, &truth.studies[3].study_instance_uid);
    let files = dir.path().join("studies");
    synth::write_to_dir(&opts, &files)?;
    let config = worker.parsed()?;
    let published = publish::publish(
        &config.kafka,
        &config.objects,
        publish::collect_files(std::slice::from_ref(&files))?,
        &worker.publish_options(&stack),
        || {},
    )
    .await?;
    let run = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "series-results")?;
    let outcomes = read_outcomes(&stack.kafka, &worker.outcome_topic, published.len(), Duration::from_secs(120))?;
    ensure!(outcomes.len() == published.len(), "{} outcomes; log:\n{}", outcomes.len(), run.log_tail());
    ensure!(outcomes.iter().all(|o| o.outcome != OutcomeKind::DeadLettered), "dead letters: {outcomes:?}");

    let pacs = stack.pacs();
    let none = BTreeSet::new();
    let a = results_in_study(&pacs, study_a, &none).await?;
    let b = results_in_study(&pacs, study_b, &none).await?;
    let count = |objects: &[StudyObject], class: &str| objects.iter().filter(|o| o.class == class).count();
    ensure!(
        (count(&a, SR_CLASS), count(&a, SEG_CLASS), count(&a, SC_CLASS), a.len())
            == (1, planted.len(), planted.len(), 1 + 2 * planted.len()),
        "study A holds {a:?} for {} planted slices",
        planted.len()
    );
    ensure!((count(&b, SR_CLASS), b.len()) == (1, 1), "the clean study holds {b:?}");
    for object in a.iter().chain(&b) {
        let file = dir.path().join(format!("{}.dcm", object.sop));
        std::fs::write(&file, pacs.instance_file(&object.sop).await?)?;
        assert_dciodvfy_clean(&file)?;
    }
    // The SEGs and overlays cover exactly the planted slices; the report of A names them.
    for (kind, class) in [("SEG", SEG_CLASS), ("overlay", SC_CLASS), ("SR", SR_CLASS)] {
        let mut refs = BTreeSet::new();
        for object in a.iter().filter(|o| o.class == class) {
            let file = dir.path().join(format!("{}.dcm", object.sop));
            let header = radstream_operators::parse_header(&std::fs::read(&file)?).map_err(anyhow::Error::msg)?;
            let patient = element_text(&header, tags::PATIENT_ID).unwrap_or_default();
            refs.extend(read_back(&file, &patient, study_a)?.intersection(&planted).cloned());
        }
        ensure!(refs == planted, "the {kind} objects reference {refs:?}, planted {planted:?}");
    }
    assert_no_phi("the worker log", &std::fs::read_to_string(&run.log)?)?;
    Ok(())
}

/// What the sink sends is what the PACS gives back: the result objects of a planted slice,
/// made by the `results` step and STOWed by the `stow` sink, are found by QIDO-RS under the
/// source's StudyInstanceUID and retrieved by WADO-RS byte for byte as they were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stowed_result_objects_come_back_by_wado_rs_byte_for_byte() -> Result<()> {
    use radstream_operators::{BuildContext, Operator, Outcome};
    let Some(stack) = Stack::get() else { return Ok(()) };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = radstream_operators::infer::LoadedModel::load(&repo.join("models/ct-head-bleed.model.toml"))?;
    let opts = SynthOptions { studies: 1, seed: unique_seed(), ..Default::default() };
    let slice = synth::generate(&opts).find(|i| i.lesion.is_some()).context("a planted slice")?;
    let study = slice.study_instance_uid.clone();
    let location = radstream_schemas::ObjectLocation {
        bucket: "test".into(),
        key: slice.relative_path.clone(),
        size: None,
        etag: None,
    };
    let mut envelope = radstream_operators::Envelope::from_part10(1, location, slice.bytes.clone().into())
        .map_err(anyhow::Error::msg)?;
    let tensor = radstream_operators::preprocess::preprocess_object(&model.manifest().input, envelope.object())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    envelope.results = Some(std::sync::Arc::new(model.infer(&tensor, 8)?));

    let mut step = radstream_operators::results::ResultsConfig::default().build()?;
    let mut done = step.process_batch(vec![envelope]).await;
    let processed = done.pop().context("the step answers")?;
    ensure!(matches!(processed.outcome, Outcome::Forward), "{:?}", processed.outcome);
    let sent = processed.envelope.outputs.clone().context("result objects")?;
    ensure!(sent.objects.len() == 3, "SR, SEG and overlay expected, got {}", sent.objects.len());

    let pacs = stack.pacs();
    let mut config = radstream_operators::stow::StowConfig::new(pacs.dicomweb());
    config.auth = radstream_operators::stow::StowAuth::Basic {
        username: pacs.user.clone(),
        password_env: Some("RADSTREAM_TEST_ORTHANC_PASSWORD".into()),
        password_file: None,
    };
    let mut sink = config.build(&BuildContext::default())?;
    let stored = sink.process_batch(vec![processed.envelope]).await;
    ensure!(matches!(stored[0].outcome, Outcome::Forward), "{:?}", stored[0].outcome);

    let found = results_in_study(&pacs, &study, &BTreeSet::new()).await?;
    ensure!(found.len() == 3, "QIDO-RS lists {found:?} under the source's study");
    for object in &sent.objects {
        let listed = found.iter().find(|o| o.sop == object.sop_instance_uid).context("listed by QIDO-RS")?;
        ensure!(listed.series == object.series_instance_uid);
        let back = wado_instance(&pacs, &study, &object.series_instance_uid, &object.sop_instance_uid).await?;
        ensure!(back == object.bytes[..], "WADO-RS gave other bytes for the {}", object.kind.as_str());
    }
    Ok(())
}

/// Planted CT slices delivered, other CT slices dropped as negatives, other modalities dropped
/// before the model.
fn check_outcomes(
    outcomes: &[OutcomeEvent],
    published: &[publish::Published],
    planted: &BTreeMap<String, &synth::SynthInstance>,
) -> Result<()> {
    let ct: BTreeSet<&str> =
        published.iter().filter(|p| p.event.modality == "CT").map(|p| p.event.sop_instance_uid.as_str()).collect();
    for outcome in outcomes {
        let sop = outcome.sop_instance_uid.as_deref().unwrap_or_default();
        if planted.contains_key(sop) {
            ensure!(outcome.outcome == OutcomeKind::Delivered, "planted {sop}: {outcome:?}");
        } else if ct.contains(sop) {
            ensure!(outcome.outcome == OutcomeKind::Dropped, "clean CT {sop}: {outcome:?}");
            ensure!(outcome.detail.as_deref() == Some("no_findings"), "{outcome:?}");
        } else {
            ensure!(outcome.outcome == OutcomeKind::Dropped, "non-CT {sop}: {outcome:?}");
            ensure!(outcome.detail.as_deref() == Some("preprocess_modality"), "{outcome:?}");
        }
    }
    Ok(())
}

/// An instance of the study that is not one of the originals.
#[derive(Debug)]
struct StudyObject {
    sop: String,
    series: String,
    class: String,
}

/// The study's instances other than `originals`, sorted by SOPInstanceUID (QIDO-RS).
async fn results_in_study(pacs: &Pacs, study: &str, originals: &BTreeSet<String>) -> Result<Vec<StudyObject>> {
    let url = format!("{}/studies/{study}/instances?includefield=00080016&includefield=0020000E", pacs.dicomweb());
    let body: Value = reqwest::Client::new()
        .get(&url)
        .basic_auth(&pacs.user, Some(&pacs.password))
        .header("Accept", "application/dicom+json")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let text = |item: &Value, tag: &str| item[tag]["Value"][0].as_str().map(str::to_string);
    let mut objects: Vec<StudyObject> = body
        .as_array()
        .context("QIDO-RS answer is not an array")?
        .iter()
        .filter_map(|item| {
            Some(StudyObject {
                sop: text(item, "00080018")?,
                series: text(item, "0020000E")?,
                class: text(item, "00080016")?,
            })
        })
        .filter(|o| !originals.contains(&o.sop))
        .collect();
    objects.sort_by(|a, b| a.sop.cmp(&b.sop));
    Ok(objects)
}

/// Stores an original instance in Orthanc (its REST API).
async fn upload(pacs: &Pacs, bytes: &[u8]) -> Result<()> {
    reqwest::Client::new()
        .post(format!("{}/instances", pacs.base))
        .basic_auth(&pacs.user, Some(&pacs.password))
        .body(bytes.to_vec())
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// The instance through WADO-RS (PS3.18 10.4), its one part's bytes.
async fn wado_instance(pacs: &Pacs, study: &str, series: &str, sop: &str) -> Result<Vec<u8>> {
    let url = format!("{}/studies/{study}/series/{series}/instances/{sop}", pacs.dicomweb());
    let response = reqwest::Client::new()
        .get(&url)
        .basic_auth(&pacs.user, Some(&pacs.password))
        .header("Accept", "multipart/related; type=\"application/dicom\"")
        .send()
        .await?
        .error_for_status()?;
    let content_type = response.headers()["content-type"].to_str()?.to_string();
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .context("no boundary")?
        .trim_matches('"')
        .to_string();
    let body = response.bytes().await?;
    let parts = multipart_parts(&body, &boundary)?;
    ensure!(parts.len() == 1, "WADO-RS of one instance answered {} parts", parts.len());
    Ok(parts[0].to_vec())
}

/// The bodies of a multipart/related message (RFC 2046 5.1), read here rather than with
/// radstream's own multipart code, whose STOW-RS requests this reads.
/// Fails unless `served` is the object `sent` is: the same data set, element by element (tag,
/// VR and value at every depth, Pixel Data included), under the same transfer syntax, SOP Class
/// and SOP Instance in the file meta. Of group 0002 only the implementation's identity
/// (ImplementationClassUID, ImplementationVersionName), the AE titles and the group length are
/// not compared: PS3.10 7.1 has the writer of a file put its own there, and the file WADO-RS
/// serves was written by the PACS (Orthanc keeps radstream's, but need not).
fn ensure_same_object(sent: &[u8], served: &[u8]) -> Result<()> {
    let open = |bytes: &[u8], what: &str| {
        dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Always)
            .from_reader(bytes)
            .with_context(|| format!("the {what} object is not Part-10"))
    };
    let (a, b) = (open(sent, "sent")?, open(served, "served")?);
    let (ma, mb) = (a.meta(), b.meta());
    ensure!(
        ma.transfer_syntax() == mb.transfer_syntax(),
        "sent as {}, served as {}",
        ma.transfer_syntax(),
        mb.transfer_syntax()
    );
    ensure!(
        (ma.media_storage_sop_class_uid(), ma.media_storage_sop_instance_uid())
            == (mb.media_storage_sop_class_uid(), mb.media_storage_sop_instance_uid()),
        "the file meta names another SOP class or instance"
    );
    match first_difference(&a, &b, "") {
        None => Ok(()),
        Some(difference) => anyhow::bail!("the PACS serves another data set than radstream sent: {difference}"),
    }
}

/// Where two data sets first differ (the path of tags to it), or `None`. Values are not shown:
/// they may hold the (synthetic) patient's identifiers.
fn first_difference(
    a: &dicom_object::InMemDicomObject,
    b: &dicom_object::InMemDicomObject,
    at: &str,
) -> Option<String> {
    use dicom_core::header::Header as _;
    let tags = |o: &dicom_object::InMemDicomObject| o.iter().map(|e| e.tag()).collect::<Vec<_>>();
    let (ta, tb) = (tags(a), tags(b));
    if ta != tb {
        let only = |x: &[dicom_core::Tag], y: &[dicom_core::Tag]| {
            x.iter().filter(|t| !y.contains(t)).copied().collect::<Vec<_>>()
        };
        return Some(format!("{at}: elements only sent {:?}, only served {:?}", only(&ta, &tb), only(&tb, &ta)));
    }
    for (x, y) in a.iter().zip(b.iter()) {
        let here = format!("{at}{}", x.tag());
        if x.vr() != y.vr() {
            return Some(format!("{here}: VR {} sent, {} served", x.vr(), y.vr()));
        }
        match (x.value().items(), y.value().items()) {
            (Some(p), Some(q)) if p.len() == q.len() => {
                if let Some(d) =
                    p.iter().zip(q).enumerate().find_map(|(n, (i, j))| first_difference(i, j, &format!("{here}[{n}]")))
                {
                    return Some(d);
                }
            }
            (Some(p), Some(q)) => return Some(format!("{here}: {} items sent, {} served", p.len(), q.len())),
            _ if x.value() != y.value() => return Some(format!("{here}: another value")),
            _ => {}
        }
    }
    None
}

fn kind_of(class: &str) -> &'static str {
    match class {
        SR_CLASS => "SR",
        SEG_CLASS => "SEG",
        _ => "overlay",
    }
}

fn assert_dciodvfy_clean(file: &Path) -> Result<()> {
    let out = Command::new("dciodvfy").arg(file).output().context("dciodvfy (apt-get install dicom3tools)")?;
    let report = format!("{}{}", lossy_text(&out.stdout), lossy_text(&out.stderr));
    ensure!(!report.lines().any(|l| l.starts_with("Error")), "dciodvfy on {}:\n{report}", file.display());
    Ok(())
}

/// Reads the object with pydicom (and highdicom for SR and SEG): it must carry the original
/// patient and study; returns the SOPInstanceUIDs of the source images it references.
fn read_back(file: &Path, patient_id: &str, study: &str) -> Result<BTreeSet<String>> {
    let script = r#"
import sys, pydicom
path, patient, study = sys.argv[1:4]
ds = pydicom.dcmread(path)
assert ds.PatientID == patient, "PatientID not re-linked"
assert ds.StudyInstanceUID == study, "StudyInstanceUID not re-linked"
assert "PatientIdentityRemoved" not in ds or ds.PatientIdentityRemoved != "YES"
refs = set()
def walk(d):
    for e in d:
        if e.tag == 0x00081155:
            refs.add(str(e.value))
        elif e.VR == "SQ":
            for item in e.value:
                walk(item)
walk(ds)
if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34":
    import highdicom
    sr = highdicom.sr.srread(path)
    groups = sr.content.get_image_measurement_groups()
    assert len(groups) == 1 and groups[0].finding_type.value == "1386000", groups
elif ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4":
    import highdicom
    seg = highdicom.seg.Segmentation.from_dataset(ds)
    assert seg.get_segment_numbers() == [1]
    assert seg.pixel_array.any(), "empty segmentation"
else:
    assert ds.BurnedInAnnotation == "YES" and ds.PhotometricInterpretation == "RGB"
refs.discard(ds.SOPInstanceUID)
print("\n".join(sorted(refs)))
"#;
    let out = Command::new(python()).arg("-c").arg(script).arg(file).arg(patient_id).arg(study).output()?;
    ensure!(out.status.success(), "reading {} back failed:\n{}", file.display(), show_output(&out));
    Ok(lossy_text(&out.stdout).lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
}

fn resource<'a>(bundle: &'a Value, kind: &str) -> Result<&'a Value> {
    bundle["entry"]
        .as_array()
        .and_then(|entries| entries.iter().map(|e| &e["resource"]).find(|r| r["resourceType"] == kind))
        .with_context(|| format!("the bundle has no {kind}"))
}

/// `system|value` of a resource's first identifier: the search token.
fn identifier_token(resource: &Value) -> Result<String> {
    let id = &resource["identifier"][0];
    Ok(format!("{}|{}", id["system"].as_str().context("no system")?, id["value"].as_str().context("no value")?))
}

/// How many DiagnosticReports the server holds per identifier token.
async fn server_reports(base: &str, tokens: &BTreeSet<String>) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for token in tokens {
        let mut url = reqwest::Url::parse(&format!("{}/DiagnosticReport", base.trim_end_matches('/')))?;
        url.query_pairs_mut().append_pair("identifier", token);
        let found: Value = reqwest::Client::new()
            .get(url)
            .header("Accept", "application/fhir+json")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        counts.insert(token.clone(), found["entry"].as_array().map_or(0, Vec::len));
    }
    Ok(counts)
}

/// Every bundle validates against the official R4 JSON schema.
fn assert_schema_valid(bundles: &[Value]) -> Result<()> {
    let Some(schema) = std::env::var("RADSTREAM_TEST_FHIR_R4_SCHEMA").ok().filter(|s| !s.is_empty()) else {
        radstream_tests::skip_without("the FHIR R4 JSON schema (RADSTREAM_TEST_FHIR_R4_SCHEMA) for the bundles");
        return Ok(());
    };
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft6Validator(schema)
for bundle in json.load(sys.stdin):
    errors = sorted(validator.iter_errors(bundle), key=str)
    assert not errors, errors[0].message
"#;
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().context("stdin")?, &serde_json::to_vec(bundles)?)?;
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "a bundle is not valid R4:\n{}", show_output(&out));
    Ok(())
}
