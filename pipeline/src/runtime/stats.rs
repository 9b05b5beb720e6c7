//! Counts and latencies of one run, for the summaries of `radstream demo` and the benchmarks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counts and latencies of one run, for summaries.
#[derive(Debug, Default)]
pub struct RunStats {
    /// Messages read.
    pub received: AtomicU64,
    /// Instances delivered.
    pub delivered: AtomicU64,
    /// Instances dropped on purpose.
    pub dropped: AtomicU64,
    /// Instances dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Delivered instances with at least one finding.
    pub instances_with_findings: AtomicU64,
    /// Delivered instances with at least one critical finding.
    pub critical_instances: AtomicU64,
    /// StudyInstanceUIDs of the delivered instances with a finding (the first 100,000).
    flagged_studies: Mutex<BTreeSet<String>>,
    latencies_ms: Mutex<Vec<f64>>,
    pipeline_ms: Mutex<Vec<f64>>,
}

impl RunStats {
    /// Instances finished, whatever their outcome.
    pub fn finished(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
            + self.dropped.load(Ordering::Relaxed)
            + self.dead_lettered.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..=1) of event-to-outcome latency of delivered instances, in ms.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.latencies_ms.lock().expect("stats lock"), q)
    }

    /// The `q` quantile (0..=1) of Kafka read to PACS acknowledgement (radstream's own share of
    /// the latency, destination included) of delivered instances, in ms.
    pub fn pipeline_quantile_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.pipeline_ms.lock().expect("stats lock"), q)
    }

    /// StudyInstanceUIDs with a finding on a delivered instance (at most the first 100,000).
    pub fn flagged_studies(&self) -> BTreeSet<String> {
        self.flagged_studies.lock().expect("stats lock").clone()
    }

    pub(crate) fn record_findings(&self, results: &radstream_schemas::ModelResults, study_uid: Option<&str>) {
        if results.findings.is_empty() {
            return;
        }
        self.instances_with_findings.fetch_add(1, Ordering::Relaxed);
        if results.findings.iter().any(|f| f.critical) {
            self.critical_instances.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(uid) = study_uid {
            // A summary, not a registry: a long-running worker stops adding.
            let mut studies = self.flagged_studies.lock().expect("stats lock");
            if studies.len() < 100_000 {
                studies.insert(uid.to_string());
            }
        }
    }

    pub(crate) fn record_latency(&self, end_to_end_ms: f64, pipeline_ms: f64) {
        // A summary needs a sample, not every value of a long-running worker.
        for (v, ms) in [(&self.latencies_ms, end_to_end_ms), (&self.pipeline_ms, pipeline_ms)] {
            let mut v = v.lock().expect("stats lock");
            if v.len() < 1_000_000 {
                v.push(ms);
            }
        }
    }
}

fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

#[cfg(test)]
mod tests;
