//! The `preprocess` operator inside a real pipeline run on the real stack (tansu, moto, Orthanc):
//! route → preprocess → stow. CT instances are decoded and preprocessed on the CPU (there is
//! no GPU here, so `device = "auto"` must fall back and say so in the metrics) and reach the
//! PACS; instances of other modalities are intentional, counted drops; a CT whose pixel data
//! cannot be decoded (its JPEG 2000 "codestream" is noise, without the SOC and SIZ markers every
//! codestream opens with, so malformed since issue 16's stream-header checks) is dead-lettered as
//! `malformed_dicom` with a reason naming the object
//! and the transfer syntax, and nothing else.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{ensure, Result};
use dicom_core::value::PixelFragmentSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use radstream_pipeline::publish;
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{DeadLetter, ErrorClass, ObjectLocation};
use radstream_tests::*;

/// A CT instance whose JPEG 2000 "codestream" is noise: it parses, but cannot be decoded.
fn undecodable_ct(sop: &str, study: &str, series: &str) -> Vec<u8> {
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let number = |tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    let mut dataset = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop),
        text(tags::STUDY_INSTANCE_UID, VR::UI, study),
        text(tags::SERIES_INSTANCE_UID, VR::UI, series),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        number(tags::SAMPLES_PER_PIXEL, 1),
        number(tags::ROWS, 64),
        number(tags::COLUMNS, 64),
        number(tags::BITS_ALLOCATED, 16),
        number(tags::BITS_STORED, 16),
        number(tags::HIGH_BIT, 15),
        number(tags::PIXEL_REPRESENTATION, 1),
    ]);
    let noise: Vec<u8> = (0..512u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    dataset.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PixelFragmentSequence::new(Vec::<u32>::new(), vec![noise])));
    let file = dataset
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::JPEG2000_LOSSLESS)
                .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ct_is_preprocessed_on_the_cpu_other_modalities_dropped_undecodable_dead_lettered() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    // The sink stores through a proxy that counts each store the PACS reports.
    let proxy = PacsProxy::start(&stack.pacs(), ProxyOptions::default()).await?;
    let worker = WorkerConfig::new(&stack, "preprocess", proxy.pacs.clone());
    worker.create_topics(&stack, 3).await?;
    let toml =
        worker.toml_with_operators(&format!("{}{}", preprocess_chain("ct-head-bleed", "auto"), worker.stow_toml()));
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, &toml)?;

    // Synthetic studies (CT, CR and MR), plus one CT that cannot be decoded.
    let files = dir.path().join("studies");
    synth::write_to_dir(&SynthOptions { studies: 3, seed: unique_seed(), ..Default::default() }, &files)?;
    let config = worker.parsed()?;
    let opts = worker.publish_options(&stack);
    let published =
        publish::publish(&config.kafka, &config.objects, publish::collect_files(&[files])?, &opts, || {}).await?;
    let ct: HashSet<String> =
        published.iter().filter(|p| p.event.modality == "CT").map(|p| p.event.sop_instance_uid.clone()).collect();
    let others = published.len() - ct.len();
    ensure!(!ct.is_empty() && others > 0, "the synthetic studies should hold CT and other modalities");

    let template = published.iter().find(|p| p.event.modality == "CT").unwrap().event.clone();
    let bad_key = format!("{}/undecodable/j2k-noise.dcm", worker.topic);
    let bad_loc = ObjectLocation { bucket: stack.bucket.clone(), key: bad_key.clone(), size: None, etag: None };
    let bad_sop = "2.25.4444";
    let bytes = undecodable_ct(bad_sop, &template.study_instance_uid, &template.series_instance_uid);
    radstream_pipeline::objects::ObjectFetcher::new(config.objects.clone())
        .put(&bad_loc, bytes::Bytes::from(bytes))
        .await
        .map_err(|e| anyhow::anyhow!(e.reason))?;
    let mut bad = template.clone();
    bad.object = bad_loc;
    bad.sop_instance_uid = bad_sop.into();
    let producer: rdkafka::producer::FutureProducer =
        radstream_pipeline::kafka::producer_config(&stack.kafka, &Default::default()).create()?;
    publish::send_event(&producer, &worker.topic, config.kafka.format, &bad).await?;

    let run = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "preprocess")?;
    let total = (published.len() + 1) as f64;
    let finished = wait_until(Duration::from_secs(120), "every event finished", || async {
        run.metric("radstream_outcomes_total").await >= total
    })
    .await;
    if finished.is_err() {
        eprintln!("--- worker log tail ---\n{}", run.log_tail());
    }
    finished?;

    // Every CT instance in the PACS once; nothing else of these studies.
    let studies: HashSet<String> = published.iter().map(|p| p.event.study_instance_uid.clone()).collect();
    let counts = stack.pacs().count_instances(&studies).await?;
    let in_pacs: HashSet<String> = counts.keys().cloned().collect();
    ensure!(in_pacs == ct, "the PACS should hold exactly the {} CT instances, holds {}", ct.len(), in_pacs.len());
    // Orthanc keeps one copy per SOP Instance UID: only the proxy can see one sent twice.
    proxy.ensure_each_stored_once(&ct)?;

    // Other modalities: intentional drops, counted under the preprocess rule.
    let metrics = reqwest::get(format!("http://{}/metrics", run.metrics)).await?.text().await?;
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("radstream_events_dropped_total") && l.contains("rule=\"preprocess_modality\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    ensure!(dropped == Some(others as f64), "{others} drops expected under preprocess_modality:\n{metrics}");

    // No GPU here: the CPU, with the reason, once.
    let backend: Vec<&str> = metrics.lines().filter(|l| l.starts_with("radstream_compute_backend{")).collect();
    ensure!(backend.len() == 1, "one compute backend series expected: {backend:?}");
    ensure!(
        backend[0].contains("backend=\"cpu\"")
            && backend[0].contains("operator=\"preprocess\"")
            && (backend[0].contains("reason=\"gpu_unavailable\"") || backend[0].contains("reason=\"cuda_not_built\""))
            && backend[0].ends_with(" 1"),
        "{backend:?}"
    );
    let log = std::fs::read_to_string(&run.log)?;
    ensure!(
        log.lines().filter(|l| l.contains("running on the CPU")).count() == 1,
        "the fallback is said once in the log"
    );

    // The undecodable CT: one dead letter that names the object and the transfer syntax.
    let letters: Vec<DeadLetter> = read_topic(&stack.kafka, &worker.dead_letter_topic, 1, Duration::from_secs(30))?
        .iter()
        .map(|v| Ok(serde_json::from_slice(v)?))
        .collect::<Result<_>>()?;
    ensure!(letters.len() == 1, "one dead letter expected: {letters:?}");
    let letter = &letters[0];
    ensure!(letter.error_class == ErrorClass::MalformedDicom, "{letter:?}");
    ensure!(letter.reason.contains("does not start with SOC and SIZ"), "{}", letter.reason);
    ensure!(letter.operator == "preprocess", "{letter:?}");
    ensure!(
        letter.reason.contains(&bad_key) && letter.reason.contains("1.2.840.10008.1.2.4.90"),
        "the reason names the object and the transfer syntax: {}",
        letter.reason
    );
    assert_no_phi("the dead letter", &serde_json::to_string(letter)?)?;
    assert_no_phi("the worker log", &log)?;
    Ok(())
}
