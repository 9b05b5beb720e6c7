//! The analytics lake on the real stack (tansu, moto, Orthanc): a worker runs the demo model
//! chain (route → pseudonymize → preprocess → infer → stow) on synthetic studies, `radstream
//! lake` turns its outcome topic into Parquet files in the bucket and takes radiologists'
//! verdicts from the feedback topic; DuckDB reads the files back with the Hive partitions.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use radstream_pipeline::publish;
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::records::{Feedback, Verdict};
use radstream_schemas::OutcomeKind;
use radstream_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A `radstream lake` process, killed when dropped.
struct LakeProcess {
    child: Child,
    metrics: String,
    log: PathBuf,
}

impl LakeProcess {
    fn start(config: &Path, dir: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let metrics = format!("127.0.0.1:{}", free_port());
        let log = dir.join("lake.log");
        let child = Command::new(radstream_bin())
            .args(["--log-format", "json", "lake", "--config"])
            .arg(config)
            .env("RADSTREAM__LAKE__METRICS_LISTEN", &metrics)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting radstream lake")?;
        Ok(Self { child, metrics, log })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("radstream lake did not exit within 20 s of SIGTERM")
    }
}

impl Drop for LakeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lake_holds_one_pseudonymized_row_per_instance_and_the_agreement_of_the_feedback() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let (key_path, deid) = deid_key(dir.path(), "lake-test")?;
    let worker = WorkerConfig::new(&stack, "lake", stack.pacs());
    worker.create_topics(&stack, 2).await?;
    let feedback_topic = format!("{}-feedback", worker.topic);
    create_topic(&stack.kafka, &feedback_topic, 1).await?;
    let prefix = format!("{}/", unique("lake"));
    let toml = format!(
        "{}\n[lake]\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\nkey_file = \"{key}\"\nflush_secs = 2\nfeedback_topic = \"{feedback_topic}\"\n",
        worker.toml_with_operators(&format!(
            "{}{}\n[chain]\npseudonymized_destinations = [\"stow\"]\n",
            model_chain("ct-head-bleed", Some(&format!("key_file = \"{}\"", key_path.display()))),
            worker.stow_toml()
        )),
        bucket = stack.bucket,
        key = key_path.display(),
    );
    let config_path = dir.path().join("worker.toml");
    std::fs::write(&config_path, &toml)?;

    let opts = SynthOptions { studies: 4, seed: unique_seed(), ..Default::default() };
    let truth = synth::ground_truth(&opts)?;
    let files = dir.path().join("studies");
    synth::write_to_dir(&opts, &files)?;
    let config = radstream_pipeline::config::Config::from_toml_str(&toml, Path::new("lake.toml"), Vec::new())?;
    let published = publish::publish(
        &config.kafka,
        &config.objects,
        publish::collect_files(&[files])?,
        &worker.publish_options(&stack),
        || {},
    )
    .await?;
    let ct: BTreeSet<String> =
        published.iter().filter(|p| p.event.modality == "CT").map(|p| p.event.sop_instance_uid.clone()).collect();
    ensure!(!ct.is_empty() && ct.len() < published.len(), "synth should make CT and other instances");

    let run = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "worker")?;
    let outcomes = read_outcomes(&stack.kafka, &worker.outcome_topic, published.len(), Duration::from_secs(120))?;
    ensure!(outcomes.len() == published.len(), "{} outcomes; worker log:\n{}", outcomes.len(), run.log_tail());
    let with_model: BTreeSet<String> =
        outcomes.iter().filter(|o| o.results.is_some()).filter_map(|o| o.sop_instance_uid.clone()).collect();
    ensure!(with_model == ct, "the model ran on {with_model:?}, CT is {ct:?}");
    ensure!(outcomes.iter().all(|o| o.results.is_some() || o.outcome == OutcomeKind::Dropped));

    // Four verdicts on CT findings of version 0.1.0: two accepted, one rejected, one modified.
    let mut lake = LakeProcess::start(&config_path, dir.path(), &[])?;
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create()?;
    let verdicts = [Verdict::Accept, Verdict::Reject, Verdict::Accept, Verdict::Modify];
    for (sop, verdict) in ct.iter().cycle().zip(verdicts) {
        let record = Feedback {
            sop_uid_pseudo: deid.pseudonymize_uid(sop.as_bytes()),
            model: "ct-head-bleed".into(),
            version: "0.1.0".into(),
            finding_code: "1386000".into(),
            verdict,
            time_ms: outcomes[0].time_ms,
        };
        let payload = serde_json::to_vec(&record)?;
        producer
            .send(FutureRecord::<(), [u8]>::to(&feedback_topic).payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }

    // Every outcome and verdict reaches an uploaded file (flush_secs = 2).
    let expected_rows = (published.len() + verdicts.len()) as f64;
    let until = Instant::now() + Duration::from_secs(60);
    while metric_at(&lake.metrics, "radstream_lake_rows_total").await < expected_rows {
        ensure!(Instant::now() < until, "the lake did not write {expected_rows} rows; its log:\n{}", lake.log_text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ratio =
        metric_at(&lake.metrics, r#"radstream_model_agreement_ratio{model="ct-head-bleed",version="0.1.0"}"#).await;
    ensure!(ratio == 0.5, "agreement {ratio}, expected 2 accepted of 4");
    let rejected = metric_at(
        &lake.metrics,
        r#"radstream_model_feedback_total{model="ct-head-bleed",verdict="reject",version="0.1.0"}"#,
    )
    .await;
    ensure!(rejected == 1.0, "{rejected} rejections counted");

    // Offsets are committed after the upload: the lake's group is at the end of the outcomes.
    let group = format!("{}-lake", worker.group);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let committed = committed_offsets(&stack.kafka, &group, &worker.outcome_topic, 1)?;
        let ends = high_watermarks(&stack.kafka, &worker.outcome_topic, 1)?;
        if committed == ends {
            break;
        }
        ensure!(Instant::now() < until, "lake group committed {committed:?}, the topic ends at {ends:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Download the lake as it is in the bucket (its paths are the partitions).
    let store = AmazonS3Builder::from_env()
        .with_endpoint(&stack.s3_endpoint)
        .with_allow_http(true)
        .with_bucket_name(&stack.bucket)
        .with_region("us-east-1")
        .build()?;
    let listed: Vec<_> = store.list(Some(&ObjectPath::from(prefix.trim_end_matches('/')))).try_collect().await?;
    let local = dir.path().join("lake");
    let mut keys = Vec::new();
    let originals: Vec<&str> = truth.studies.iter().map(|s| s.study_instance_uid.as_str()).collect();
    for meta in &listed {
        let key = meta.location.as_ref().to_string();
        let bytes = store.get(&meta.location).await?.bytes().await?;
        for uid in originals.iter().copied().chain(published.iter().map(|p| p.event.sop_instance_uid.as_str())) {
            ensure!(!bytes.windows(uid.len()).any(|w| w == uid.as_bytes()), "{key} holds the original UID {uid}");
        }
        let path = local.join(&key[prefix.len()..]);
        std::fs::create_dir_all(path.parent().expect("a key has a folder"))?;
        std::fs::write(&path, &bytes)?;
        keys.push(key[prefix.len()..].to_string());
    }
    ensure!(keys.iter().all(|k| k.ends_with(".parquet")), "{keys:?}");
    ensure!(keys.iter().any(|k| k.contains("/model=ct-head-bleed/")), "{keys:?}");
    ensure!(keys.iter().any(|k| k.contains("/model=none/")), "{keys:?}");
    ensure!(keys.iter().any(|k| k.starts_with("feedback/date=")), "{keys:?}");

    let script = r#"
import duckdb, json, sys
root = sys.argv[1]
c = duckdb.connect()
rows = c.sql(f"""
    SELECT sop_uid_pseudo, study_uid_pseudo, model, model_version, model_sha256, outcome,
           len(findings) AS findings, len(stages) AS stages, CAST(date AS VARCHAR) AS date,
           strftime(time, '%Y-%m-%d') AS time_date, end_to_end_ms
    FROM read_parquet('{root}/date=*/model=*/*.parquet', hive_partitioning = true)
""").fetchall()
feedback = c.sql(f"""
    SELECT verdict, count(*) FROM read_parquet('{root}/feedback/date=*/*.parquet', hive_partitioning = true)
    GROUP BY verdict ORDER BY verdict
""").fetchall()
everything = c.sql(f"SELECT * FROM read_parquet('{root}/**/*.parquet', union_by_name = true)").fetchall()
print(json.dumps({"rows": rows, "feedback": feedback, "everything": str(everything)}, default=str))
"#;
    let out = Command::new(python()).arg("-c").arg(script).arg(&local).output()?;
    ensure!(out.status.success(), "duckdb: {}", show_output(&out));
    let text = String::from_utf8(out.stdout)?;
    for uid in &originals {
        ensure!(!text.contains(uid), "DuckDB's output holds the original StudyInstanceUID {uid}");
    }
    let result: serde_json::Value = serde_json::from_str(&text)?;
    let rows = result["rows"].as_array().context("rows")?;
    ensure!(rows.len() == published.len(), "{} lake rows for {} instances", rows.len(), published.len());
    let pseudo_ct: BTreeSet<String> = ct.iter().map(|sop| deid.pseudonymize_uid(sop.as_bytes())).collect();
    let mut model_rows = BTreeSet::new();
    for row in rows {
        let field = |i: usize| row[i].as_str().unwrap_or_default().to_string();
        ensure!(field(8) == field(9), "the date partition disagrees with the time: {row}");
        ensure!(row[7].as_i64().unwrap_or(0) > 0, "no stage latencies: {row}");
        if field(2) == "ct-head-bleed" {
            ensure!(field(3) == "0.1.0" && field(4).len() == 64 && field(5) == "delivered", "{row}");
            ensure!(model_rows.insert(field(0)), "two rows for one instance: {row}");
        } else {
            ensure!(field(2) == "none" && row[3].is_null() && field(5) == "dropped", "{row}");
        }
        ensure!(field(0).starts_with("2.25.") && field(1).starts_with("2.25."), "{row}");
    }
    ensure!(model_rows == pseudo_ct, "lake rows of the model {model_rows:?}, pseudonymized CT {pseudo_ct:?}");
    ensure!(
        result["feedback"] == serde_json::json!([["accept", 2], ["modify", 1], ["reject", 1]]),
        "feedback in the lake: {}",
        result["feedback"]
    );

    eprintln!("lake files: {keys:?}; {} outcome rows", rows.len());

    let status = lake.terminate()?;
    ensure!(status.success(), "radstream lake exited with {status}; log:\n{}", lake.log_text());
    let mut logs = lake.log_text();

    // A second lake process resumes after the committed offsets (nothing is read twice), and
    // SIGTERM writes what it holds although flush_secs is far off.
    let late_dir = dir.path().join("late");
    std::fs::create_dir_all(&late_dir)?;
    let mut late = LakeProcess::start(&config_path, &late_dir, &[("RADSTREAM__LAKE__FLUSH_SECS", "3600")])?;
    for verdict in [Verdict::Accept, Verdict::Reject] {
        let record = Feedback {
            sop_uid_pseudo: pseudo_ct.iter().next().expect("CT rows").clone(),
            model: "ct-head-bleed".into(),
            version: "0.1.0".into(),
            finding_code: "1386000".into(),
            verdict,
            time_ms: outcomes[0].time_ms,
        };
        producer
            .send(
                FutureRecord::<(), [u8]>::to(&feedback_topic).payload(&serde_json::to_vec(&record)?),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    let until = Instant::now() + Duration::from_secs(30);
    while metric_at(&late.metrics, "radstream_lake_buffered_rows").await < 2.0 {
        ensure!(Instant::now() < until, "the second lake did not read the 2 verdicts; log:\n{}", late.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ratio =
        metric_at(&late.metrics, r#"radstream_model_agreement_ratio{model="ct-head-bleed",version="0.1.0"}"#).await;
    ensure!(ratio == 0.5, "the second process saw other verdicts than its own 2: agreement {ratio}");
    let status = late.terminate()?;
    ensure!(status.success(), "the second lake exited with {status}; log:\n{}", late.log_text());
    let after: Vec<_> = store.list(Some(&ObjectPath::from(prefix.trim_end_matches('/')))).try_collect().await?;
    let new: Vec<String> = after
        .iter()
        .map(|m| m.location.as_ref().to_string())
        .filter(|k| !listed.iter().any(|m| m.location.as_ref() == k))
        .collect();
    ensure!(
        new.len() == 1 && new[0].contains("/feedback/date=") && new[0].ends_with(&format!("-{}-{}.parquet", 4, 5)),
        "SIGTERM should write the 2 buffered verdicts as one file (offsets 4-5): {new:?}"
    );
    let ends = high_watermarks(&stack.kafka, &feedback_topic, 1)?;
    let committed = committed_offsets(&stack.kafka, &group, &feedback_topic, 1)?;
    ensure!(committed == ends, "after SIGTERM the lake committed {committed:?}; the feedback ends at {ends:?}");

    logs.push_str(&late.log_text());
    assert_no_phi("the lake log", &logs)?;
    for uid in &originals {
        ensure!(!logs.contains(uid), "the lake log holds the original StudyInstanceUID {uid}");
    }
    Ok(())
}
