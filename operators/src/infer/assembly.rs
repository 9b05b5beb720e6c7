//! Series assembly for models of whole series: gathers a series' instances (one partition
//! holds a study, keyed by its StudyInstanceUID, so one worker sees all of a series) and says
//! when the series is complete.
//!
//! A series is run:
//! * as soon as it holds the expected number of instances: from the event
//!   (`expected_series_instances`), else from the header's Number of Series Related Instances
//!   (0020,1209), else its Images in Acquisition (0020,1002);
//! * otherwise once no instance of it has arrived for the quiet time;
//! * early, when the instances held reach `max_held_instances`: the series that waited longest
//!   is run as it is (its result is superseded if more of it arrives).
//!
//! **Late instances.** After a run, the series' slices are retained for `retain_secs` (at most
//! `max_retained_instances` instances over all series, oldest evicted first). An instance of a
//! retained series re-opens it: the series is run again, with every slice, under the same rules,
//! and the new result (`revision` + 1) supersedes the earlier one. An instance of a series whose
//! slices are no longer retained cannot be run with the rest of its series: it is refused with a
//! reason that says how to re-run the series.
//!
//! **Nothing of an incomplete series is committed.** Held envelopes are not answered, so their
//! offsets (and every later one of the partition) stay uncommitted; on shutdown they are
//! abandoned ([`Assembler::drain`]) and read again after the restart, which rebuilds the series.
//! Retained slices are memory only: after a restart an instance of an already processed series
//! starts a new series.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use radstream_kernels::SliceGeometry;
use serde::{Deserialize, Serialize};

use crate::preprocess::Tensor;
use crate::{element_text, ConfigError, Envelope};

fn default_quiet_secs() -> f64 {
    10.0
}
fn default_max_held() -> usize {
    1000
}
fn default_retain_secs() -> u64 {
    600
}
fn default_max_retained() -> usize {
    1000
}

/// When a series is complete, and how much is kept. The `[operators.series]` table of an
/// `infer` operator whose model takes whole series.
#[derive(Debug, Clone, Deserialize, PartialEq, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesConfig {
    /// A series whose expected count is unknown (or not reached) is run once no instance of it
    /// has arrived for this long (seconds, default 10).
    #[serde(default = "default_quiet_secs")]
    pub quiet_secs: f64,
    /// Most instances held in incomplete series (default 1000); at the limit the series that
    /// waited longest is run as it is. Each holds its preprocessed slices (C·H·W·4 bytes per
    /// frame: 256 KiB at 256 × 256). `runtime.max_in_flight` must be larger, or reading stops
    /// until a quiet time ends.
    #[serde(default = "default_max_held")]
    pub max_held_instances: usize,
    /// How long a run series' slices are kept for a re-run when a late instance arrives
    /// (seconds, default 600).
    #[serde(default = "default_retain_secs")]
    pub retain_secs: u64,
    /// Most instances kept of run series (default 1000), oldest series evicted first.
    #[serde(default = "default_max_retained")]
    pub max_retained_instances: usize,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        Self {
            quiet_secs: default_quiet_secs(),
            max_held_instances: default_max_held(),
            retain_secs: default_retain_secs(),
            max_retained_instances: default_max_retained(),
        }
    }
}

impl SeriesConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.quiet_secs.is_finite() && self.quiet_secs > 0.0 && self.quiet_secs <= 86_400.0) {
            return Err(ConfigError::new("quiet_secs", "must be more than 0 and at most 86400 (a day)"));
        }
        if self.max_held_instances == 0 {
            return Err(ConfigError::new("max_held_instances", "must be at least 1"));
        }
        Ok(())
    }

    fn quiet(&self) -> Duration {
        Duration::from_secs_f64(self.quiet_secs)
    }
}

/// A series: its study and series UIDs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    /// StudyInstanceUID.
    pub study: String,
    /// SeriesInstanceUID.
    pub series: String,
}

/// One instance's preprocessed frames and where they lie.
#[derive(Debug, Clone)]
pub struct Slices {
    /// Its SOPInstanceUID.
    pub sop_instance_uid: String,
    /// `[frames, C, H, W]`.
    pub tensor: Arc<Tensor>,
    /// One per frame.
    pub geometry: Arc<[SliceGeometry]>,
}

/// Why a series was run: a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunReason {
    /// It reached its expected count.
    ExpectedCount,
    /// No instance arrived for the quiet time.
    QuietTime,
    /// The held instances reached `max_held_instances`.
    Capacity,
}

impl RunReason {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            RunReason::ExpectedCount => "expected_count",
            RunReason::QuietTime => "quiet_time",
            RunReason::Capacity => "capacity",
        }
    }
}

/// A series ready to run.
#[derive(Debug)]
pub struct SeriesRun {
    /// Which series.
    pub key: SeriesKey,
    /// 1 for its first run, then one more for each re-run.
    pub revision: u32,
    /// Why now.
    pub reason: RunReason,
    /// Every instance's slices: those of earlier runs and the new ones.
    pub slices: Vec<Slices>,
    /// The envelopes not answered yet (the new instances), to forward with the result.
    pub envelopes: Vec<Envelope>,
    /// How many instances were expected, if known.
    pub expected: Option<usize>,
}

impl SeriesRun {
    /// Whether it supersedes an earlier run of the series.
    pub fn is_rerun(&self) -> bool {
        self.revision > 1
    }
}

#[derive(Debug)]
struct Pending {
    envelopes: Vec<Envelope>,
    /// Slices of earlier runs (a re-opened series), by SOPInstanceUID.
    earlier: Vec<Slices>,
    expected: Option<usize>,
    revision: u32,
    last_arrival: Instant,
    first_arrival: Instant,
}

impl Pending {
    fn count(&self) -> usize {
        self.envelopes.len() + self.earlier.len()
    }
}

#[derive(Debug)]
struct Retained {
    slices: Vec<Slices>,
    revision: u32,
    expected: Option<usize>,
    ran_at: Instant,
}

/// What [`Assembler::add`] did with an envelope that cannot be held.
#[derive(Debug)]
pub enum Refused {
    /// It replaced a held envelope of the same instance (a re-delivery); the older one is
    /// returned to be answered as a duplicate.
    Duplicate(Envelope),
    /// Its series was run and its slices are no longer retained.
    Evicted(Envelope, String),
    /// It has no tensor or no geometry (no `preprocess` with a series spec before `infer`).
    NotPrepared(Envelope, String),
}

/// The series being gathered and the slices of those recently run.
#[derive(Debug)]
pub struct Assembler {
    config: SeriesConfig,
    pending: HashMap<SeriesKey, Pending>,
    retained: HashMap<SeriesKey, Retained>,
    /// Series keys that were run and evicted, with when they ran: to tell a late instance of an
    /// evicted series from the first of a new one. Bounded like `retained`, ten times over.
    evicted: HashMap<SeriesKey, Instant>,
    held: usize,
    retained_instances: usize,
}

/// The expected instance count of an envelope's series, if anything says it.
pub fn expected_count(envelope: &Envelope) -> Option<usize> {
    let from_event = envelope.event.expected_series_instances.and_then(|n| usize::try_from(n).ok());
    let from_header = || {
        [tags::NUMBER_OF_SERIES_RELATED_INSTANCES, tags::IMAGES_IN_ACQUISITION]
            .into_iter()
            .find_map(|tag| element_text(envelope.header(), tag)?.parse::<usize>().ok())
    };
    from_event.or_else(from_header).filter(|&n| n > 0)
}

fn slices_of(envelope: &Envelope) -> Result<Slices, String> {
    let key = envelope.object_key();
    let tensor = envelope.tensor.clone().ok_or_else(|| {
        format!("{key}: no input tensor: put a `preprocess` operator with the model's series spec before `infer`")
    })?;
    let geometry = envelope.geometry.clone().ok_or_else(|| {
        format!("{key}: no slice positions: the `preprocess` before `infer` must use the model's series spec")
    })?;
    if geometry.len() != tensor.shape()[0] {
        return Err(format!("{key}: {} slice positions for {} frames", geometry.len(), tensor.shape()[0]));
    }
    Ok(Slices { sop_instance_uid: envelope.event.sop_instance_uid.clone(), tensor, geometry })
}

impl Assembler {
    /// An empty assembler.
    pub fn new(config: SeriesConfig) -> Self {
        Self {
            config,
            pending: HashMap::new(),
            retained: HashMap::new(),
            evicted: HashMap::new(),
            held: 0,
            retained_instances: 0,
        }
    }

    /// The most instances it holds (`max_held_instances`).
    pub fn max_held(&self) -> usize {
        self.config.max_held_instances
    }

    /// Instances held in incomplete series.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Series being gathered.
    pub fn pending_series(&self) -> usize {
        self.pending.len()
    }

    /// Adds an instance. `Ok(runs)`: it is held, and these series are now ready (its own when
    /// it completed it, the longest waiting when the held instances reached the limit).
    pub fn add(&mut self, envelope: Envelope, now: Instant) -> Result<Vec<SeriesRun>, Box<Refused>> {
        if let Err(why) = slices_of(&envelope) {
            return Err(Box::new(Refused::NotPrepared(envelope, why)));
        }
        let key = SeriesKey {
            study: envelope.event.study_instance_uid.clone(),
            series: envelope.event.series_instance_uid.clone(),
        };
        self.expire(now);
        let expected = expected_count(&envelope);
        if !self.pending.contains_key(&key) {
            let pending = match self.retained.remove(&key) {
                Some(r) => {
                    self.retained_instances -= r.slices.len();
                    Pending {
                        envelopes: Vec::new(),
                        earlier: r.slices,
                        expected: r.expected,
                        revision: r.revision + 1,
                        last_arrival: now,
                        first_arrival: now,
                    }
                }
                None => {
                    if let Some(ran_at) = self.evicted.get(&key) {
                        let ago = now.saturating_duration_since(*ran_at).as_secs();
                        let why = format!(
                            "{}: instance of series {} arrived after the series was run ({ago} s ago) and its \
                             slices are no longer kept (series.retain_secs = {}, series.max_retained_instances = \
                             {}); re-send every instance of the series to run it whole",
                            envelope.object_key(),
                            key.series,
                            self.config.retain_secs,
                            self.config.max_retained_instances
                        );
                        return Err(Box::new(Refused::Evicted(envelope, why)));
                    }
                    Pending {
                        envelopes: Vec::new(),
                        earlier: Vec::new(),
                        expected: None,
                        revision: 1,
                        last_arrival: now,
                        first_arrival: now,
                    }
                }
            };
            self.pending.insert(key.clone(), pending);
        }
        let pending = self.pending.get_mut(&key).expect("inserted above");
        pending.last_arrival = now;
        if expected.is_some() {
            pending.expected = expected;
        }
        let sop = envelope.event.sop_instance_uid.clone();
        pending.earlier.retain(|s| s.sop_instance_uid != sop);
        let duplicate = match pending.envelopes.iter().position(|e| e.event.sop_instance_uid == sop) {
            Some(i) => Some(std::mem::replace(&mut pending.envelopes[i], envelope)),
            None => {
                pending.envelopes.push(envelope);
                self.held += 1;
                None
            }
        };
        let mut runs = Vec::new();
        if pending.expected.is_some_and(|n| pending.count() >= n) {
            runs.push(self.take(&key, RunReason::ExpectedCount));
        }
        while self.held > self.config.max_held_instances {
            let Some(oldest) = self.pending.iter().min_by_key(|(_, p)| p.first_arrival).map(|(k, _)| k.clone()) else {
                break;
            };
            runs.push(self.take(&oldest, RunReason::Capacity));
        }
        match duplicate {
            Some(older) if runs.is_empty() => Err(Box::new(Refused::Duplicate(older))),
            Some(older) => {
                // Rare: a re-delivered copy that also completed the series. The older copy is
                // forwarded with the run's result, like the newer one.
                runs.last_mut().expect("not empty").envelopes.push(older);
                Ok(runs)
            }
            None => Ok(runs),
        }
    }

    fn take(&mut self, key: &SeriesKey, reason: RunReason) -> SeriesRun {
        let p = self.pending.remove(key).expect("a pending series");
        self.held -= p.envelopes.len();
        let mut slices = p.earlier;
        for envelope in &p.envelopes {
            slices.push(slices_of(envelope).expect("checked when added"));
        }
        SeriesRun {
            key: key.clone(),
            revision: p.revision,
            reason,
            slices,
            envelopes: p.envelopes,
            expected: p.expected,
        }
    }

    /// When the next quiet time ends, if a series is pending.
    pub fn next_due(&self) -> Option<Instant> {
        let quiet = self.config.quiet();
        self.pending.values().map(|p| p.last_arrival + quiet).min()
    }

    /// The series whose quiet time has ended.
    pub fn due(&mut self, now: Instant) -> Vec<SeriesRun> {
        let quiet = self.config.quiet();
        let mut keys: Vec<(Instant, SeriesKey)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.last_arrival + quiet <= now)
            .map(|(k, p)| (p.first_arrival, k.clone()))
            .collect();
        keys.sort_by_key(|(first, _)| *first);
        keys.into_iter().map(|(_, k)| self.take(&k, RunReason::QuietTime)).collect()
    }

    /// Keeps a run series' slices for a re-run.
    pub fn retain(
        &mut self,
        key: SeriesKey,
        slices: Vec<Slices>,
        revision: u32,
        expected: Option<usize>,
        now: Instant,
    ) {
        self.retained_instances += slices.len();
        self.evicted.remove(&key);
        if let Some(old) = self.retained.insert(key, Retained { slices, revision, expected, ran_at: now }) {
            self.retained_instances -= old.slices.len();
        }
        self.expire(now);
    }

    /// Evicts retained series past `retain_secs`, then the oldest while over the limit.
    fn expire(&mut self, now: Instant) {
        let keep = Duration::from_secs(self.config.retain_secs);
        let mut order: Vec<(Instant, SeriesKey)> = self.retained.iter().map(|(k, r)| (r.ran_at, k.clone())).collect();
        order.sort_by_key(|(at, _)| *at);
        for (ran_at, key) in order {
            let old = now.saturating_duration_since(ran_at) > keep;
            if !old && self.retained_instances <= self.config.max_retained_instances {
                break;
            }
            if let Some(r) = self.retained.remove(&key) {
                self.retained_instances -= r.slices.len();
                self.evicted.insert(key, ran_at);
            }
        }
        // Remember evicted series for ten times the retention, at most ten times as many.
        let limit = self.config.max_retained_instances.max(100) * 10;
        if self.evicted.len() > limit {
            let mut order: Vec<(Instant, SeriesKey)> = self.evicted.iter().map(|(k, at)| (*at, k.clone())).collect();
            order.sort_by_key(|(at, _)| *at);
            for (_, key) in order.into_iter().take(self.evicted.len() - limit) {
                self.evicted.remove(&key);
            }
        }
        self.evicted.retain(|_, at| now.saturating_duration_since(*at) <= keep * 10);
    }

    /// Every held envelope, for the runtime to abandon at shutdown (not committed, read again).
    pub fn drain(&mut self) -> Vec<Envelope> {
        self.held = 0;
        self.pending.drain().flat_map(|(_, p)| p.envelopes).collect()
    }
}
