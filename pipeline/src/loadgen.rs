//! `radstream loadgen`: a steady stream of realistic synthetic studies against a real stack, for
//! scale tests and benchmarks.
//!
//! Studies come from `synth` (CT, CR, MR; fake PHI; planted bleeds in head CT), one after the
//! other. Each CT or MR study draws its series size (instances per series) from a mix like a
//! day's work, between 1 and `max_series_instances`: mostly 20-200, some up to the maximum, a
//! few short ones; radiographs keep one image per series. A share of the studies
//! (`stat_share`) is STAT, the rest ROUTINE; every instance of a study has the study's
//! priority. Each instance is uploaded to the object store and its event produced to the input
//! topic at its due time, `k / rate` seconds after the start for the k-th instance, with at most
//! `concurrency` in flight. When the machine cannot keep the rate, instances go late rather than
//! in bursts, and the summary says how late.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use radstream_schemas::{ObjectLocation, Priority};
use rdkafka::producer::FutureProducer;
use tokio::sync::Semaphore;

use crate::config::{KafkaConfig, ObjectsConfig};
use crate::kafka::config::producer_config;
use crate::objects::ObjectFetcher;
use crate::publish::{event_for, send_event, PublishOptions};
use crate::synth::{self, SynthOptions};

/// What to generate and how fast.
#[derive(Debug, Clone)]
pub struct LoadgenOptions {
    /// Studies to send.
    pub studies: usize,
    /// Instances (events) per second.
    pub rate: f64,
    /// Share of STAT studies, 0 to 1.
    pub stat_share: f64,
    /// Largest series (instances per series) of a CT or MR study.
    pub max_series_instances: usize,
    /// Seed of the studies, the series sizes and the priorities.
    pub seed: u64,
    /// Aim for about this many bytes per instance.
    pub instance_bytes: Option<usize>,
    /// Bucket and key prefix of the objects.
    pub bucket: String,
    /// Key prefix.
    pub prefix: String,
    /// Uploads and events in flight at most.
    pub concurrency: usize,
}

impl LoadgenOptions {
    /// Checks the options.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 100_000.0) {
            return Err(format!("--rate {} must be above 0 and at most 100000 events per second", self.rate));
        }
        if !(0.0..=1.0).contains(&self.stat_share) {
            return Err(format!("--stat-share {} must be between 0 and 1", self.stat_share));
        }
        if !(1..=4096).contains(&self.max_series_instances) {
            return Err(format!("--max-instances {} must be between 1 and 4096", self.max_series_instances));
        }
        if self.studies == 0 {
            return Err("--studies must be at least 1".into());
        }
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        self.synth(None).validate().map_err(|e| e.to_string())
    }

    fn synth(&self, instances_per_series: Option<usize>) -> SynthOptions {
        SynthOptions {
            studies: self.studies,
            seed: self.seed,
            target_instance_bytes: self.instance_bytes,
            instances_per_series,
            ..SynthOptions::default()
        }
    }
}

/// The plan of one study: its series size and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StudyLoad {
    /// Instances per series; `None`: synth's own (one per series, radiographs).
    pub instances_per_series: Option<usize>,
    /// Its priority.
    pub priority: Priority,
}

/// The series size and priority of every study, drawn from the seed.
pub fn plan(opts: &LoadgenOptions) -> anyhow::Result<Vec<StudyLoad>> {
    let truth = synth::ground_truth(&opts.synth(None))?;
    let mut rng = fastrand::Rng::with_seed(opts.seed ^ 0x6c6f_6164_6765_6e00);
    let max = opts.max_series_instances;
    Ok(truth
        .studies
        .iter()
        .map(|study| {
            let instances_per_series = match study.modality.as_str() {
                "CR" | "DX" => None,
                _ => {
                    let (low, high) = match rng.f64() {
                        r if r < 0.1 => (1, 19),
                        r if r < 0.8 => (20, 200),
                        _ => (201, max.max(201)),
                    };
                    Some(rng.usize(low.min(max)..=high.min(max)))
                }
            };
            let priority = if rng.f64() < opts.stat_share { Priority::Stat } else { Priority::Routine };
            StudyLoad { instances_per_series, priority }
        })
        .collect())
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct LoadgenSummary {
    /// Events produced.
    pub events: u64,
    /// Of them, STAT.
    pub stat_events: u64,
    /// Studies sent.
    pub studies: usize,
    /// Of them, STAT.
    pub stat_studies: usize,
    /// Largest series sent.
    pub largest_series: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// How late the latest instance started against its due time.
    pub max_late: Duration,
}

/// Sends the studies at the rate; `progress` is called after each event.
pub async fn run(
    kafka: &KafkaConfig,
    objects: &ObjectsConfig,
    opts: &LoadgenOptions,
    progress: impl Fn() + Send + Sync + 'static,
) -> anyhow::Result<LoadgenSummary> {
    opts.validate().map_err(anyhow::Error::msg)?;
    let studies = plan(opts)?;
    let producer: FutureProducer = producer_config(&kafka.brokers, &kafka.producer).create()?;
    let store = Arc::new(ObjectFetcher::new(objects.clone()));
    let permits = Arc::new(Semaphore::new(opts.concurrency));
    let progress = Arc::new(progress);
    let mut summary = LoadgenSummary { studies: studies.len(), ..LoadgenSummary::default() };
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    let mut k = 0u64;
    for (index, load) in studies.iter().enumerate() {
        summary.stat_studies += usize::from(load.priority == Priority::Stat);
        summary.largest_series = summary.largest_series.max(load.instances_per_series.unwrap_or(1));
        let synth_opts = opts.synth(load.instances_per_series);
        let publish = PublishOptions {
            bucket: opts.bucket.clone(),
            prefix: opts.prefix.clone(),
            priority: load.priority,
            source: Some("LOADGEN".into()),
            concurrency: 1,
            skip_events: false,
        };
        for instance in synth::generate_studies(&synth_opts, index..index + 1) {
            let due = start + Duration::from_secs_f64(k as f64 / opts.rate);
            tokio::time::sleep_until(due.into()).await;
            summary.max_late = summary.max_late.max(Instant::now().saturating_duration_since(due));
            let permit = Arc::clone(&permits).acquire_owned().await.context("the in-flight limit")?;
            while let Some(done) = tasks.try_join_next() {
                done.context("a send task")??;
            }
            let key = format!("{}/{}", opts.prefix.trim_end_matches('/'), instance.relative_path);
            let location = ObjectLocation { bucket: opts.bucket.clone(), key, size: None, etag: None };
            let bytes = Bytes::from(instance.bytes);
            let mut event = event_for(&bytes, location.clone(), &publish)?;
            let (producer, store, topic, format, progress) =
                (producer.clone(), Arc::clone(&store), kafka.input_topic.clone(), kafka.format, Arc::clone(&progress));
            tasks.spawn(async move {
                let _permit = permit;
                event.object.etag = store.put(&location, bytes).await.map_err(|e| anyhow::anyhow!(e.reason))?;
                send_event(&producer, &topic, format, &event).await?;
                progress();
                Ok::<_, anyhow::Error>(())
            });
            summary.events += 1;
            summary.stat_events += u64::from(load.priority == Priority::Stat);
            k += 1;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a send task")??;
    }
    summary.elapsed = start.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests;
