//! Harness for radstream's end-to-end tests: the real stack that `infra/stack.sh up` starts
//! (tansu, moto's S3 server, Orthanc with DICOMweb), worker processes of the real `radstream`
//! binary, and readers of the topics and of the PACS.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub mod chaos;
pub mod hostile;
pub mod pacs_proxy;
pub mod raw_out;

pub use pacs_proxy::{multipart_parts, PacsProxy, ProxyOptions};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::TopicPartitionList;

/// The running test stack, from the environment `infra/stack.sh` writes.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Kafka bootstrap servers.
    pub kafka: String,
    /// S3 endpoint.
    pub s3_endpoint: String,
    /// Test bucket.
    pub bucket: String,
    /// Orthanc base URL (REST API); DICOMweb is under `/dicom-web`.
    pub orthanc_url: String,
    /// Orthanc user.
    pub orthanc_user: String,
    /// Orthanc password.
    pub orthanc_password: String,
    /// `infra/orthanc/run.sh`, for tests that run their own Orthanc.
    pub orthanc_run: PathBuf,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Stack {
    /// The stack, or `None` (a skip, through `radstream_test_gate`) when it is not running. With
    /// `RADSTREAM_REQUIRE_STACK=1` (set by `infra/test.sh`, so by CI) a missing stack panics
    /// instead: end-to-end tests never pass by being skipped there.
    pub fn get() -> Option<Stack> {
        let stack = (|| {
            Some(Stack {
                kafka: var("RADSTREAM_TEST_KAFKA")?,
                s3_endpoint: var("RADSTREAM_TEST_S3_ENDPOINT")?,
                bucket: var("RADSTREAM_TEST_S3_BUCKET")?,
                orthanc_url: var("RADSTREAM_TEST_ORTHANC_URL")?,
                orthanc_user: var("RADSTREAM_TEST_ORTHANC_USER")?,
                orthanc_password: var("RADSTREAM_TEST_ORTHANC_PASSWORD")?,
                orthanc_run: var("RADSTREAM_TEST_ORTHANC_RUN")?.into(),
            })
        })();
        radstream_test_gate::needs(
            "the test stack's environment (run through infra/test.sh, or `eval \"$(infra/stack.sh env)\"`)",
            stack.is_some(),
        );
        stack
    }

    /// A PACS view of the shared Orthanc.
    pub fn pacs(&self) -> Pacs {
        Pacs {
            base: self.orthanc_url.clone(),
            user: self.orthanc_user.clone(),
            password: self.orthanc_password.clone(),
        }
    }
}

/// Fails when `text` holds a synthetic patient name, patient ID or accession number (the shapes
/// `radstream synth` writes), so logs, records and objects are checked for PHI.
pub fn assert_no_phi(what: &str, text: &str) -> Result<()> {
    let ids = regex::Regex::new(r"SYN(A|ALT)?[0-9]{4,}").expect("static pattern");
    anyhow::ensure!(!text.contains("SYNTH^"), "{what} contains a person name");
    anyhow::ensure!(!ids.is_match(text), "{what} contains a patient ID or accession number: {:?}", ids.find(text));
    Ok(())
}

/// The Python interpreter that has the test tools (pydicom, numpy, pylibjpeg):
/// `RADSTREAM_TEST_PYTHON` (which `infra/stack.sh env` sets to its virtualenv where it made one),
/// else `python3` from PATH.
pub fn python() -> String {
    var("RADSTREAM_TEST_PYTHON").unwrap_or_else(|| "python3".into())
}

/// The `data` folder of pydicom's package (its `test_files` and `charset_files`), if
/// [`python`] has pydicom.
pub fn pydicom_data() -> Option<PathBuf> {
    let out = Command::new(python())
        .args(["-c", "import pydicom,os;print(os.path.dirname(pydicom.__file__))"])
        .output()
        .ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("data"))
}

/// The `.dcm` files directly in `dir`, sorted.
pub fn dcm_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "dcm"));
    files.sort();
    files
}

/// Every file below `dir` whose name ends with `suffix`, sorted.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    let mut found = Vec::new();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// Runs the `radstream` binary with `args` (without the caller's `RADSTREAM_LOG`).
pub fn run_radstream(args: &[&str]) -> std::process::Output {
    Command::new(radstream_bin()).args(args).env_remove("RADSTREAM_LOG").output().expect("run radstream")
}

/// Bytes as text (lossy), for command output.
pub fn lossy_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A path as `&str`, for command arguments (test paths are UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// An output's status, stdout and stderr, for assertion messages.
pub fn show_output(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Reports a test that cannot run here because `what` (a tool, a file) is missing:
/// [`radstream_test_gate::missing`], a logged skip in a developer's shell, a failure under
/// `RADSTREAM_REQUIRE_STACK=1` (CI, where `infra/stack.sh` installs every tool), so no test
/// passes there by being skipped.
pub fn skip_without(what: &str) {
    radstream_test_gate::missing(what);
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// A seed no other test run uses (synthetic UIDs derive from it).
pub fn unique_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 40)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Creates a topic with `partitions` partitions.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    create_topic_with(brokers, topic, partitions, &[]).await
}

/// Creates a topic with `partitions` partitions and topic configs (`cleanup.policy` and the like).
pub async fn create_topic_with(brokers: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let results = admin.create_topics(&[new], &AdminOptions::new()).await?;
    for r in results {
        r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
    }
    Ok(())
}

/// Reads every message of `topic` from the beginning until at least `expected` were read or
/// `timeout` passed, and then on to the end the topic has at that moment (its high
/// watermarks), so more than `expected` shows; returns the values. The partitions are assigned,
/// not subscribed: no consumer group has to form first, and with `expected = 0` the read is
/// still exact (everything the topic holds when it is called).
pub fn read_topic(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Result<Vec<Vec<u8>>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let partitions = partition_count(&consumer, topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let take = |m: rdkafka::message::BorrowedMessage<'_>, out: &mut Vec<Vec<u8>>, next: &mut BTreeMap<i32, i64>| {
        next.insert(m.partition(), m.offset() + 1);
        out.push(m.payload().unwrap_or_default().to_vec());
    };
    let until = Instant::now() + timeout;
    while Instant::now() < until && out.len() < expected {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            take(m?, &mut out, &mut next);
        }
    }
    // Then to the end: every partition up to its high watermark now.
    let ends: BTreeMap<i32, (i64, i64)> = (0..partitions)
        .map(|p| Ok((p, consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?)))
        .collect::<Result<_>>()?;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let done = ends.iter().all(|(p, (low, high))| high <= low || next.get(p).copied().unwrap_or(*low) >= *high);
        if done {
            break;
        }
        anyhow::ensure!(
            Instant::now() < until,
            "reading {topic} to its end ({ends:?}) took more than 30 s: at {next:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            take(m?, &mut out, &mut next);
        }
    }
    Ok(out)
}

fn partition_count(consumer: &BaseConsumer, topic: &str) -> Result<i32> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let t = metadata.topics().iter().find(|t| t.name() == topic).with_context(|| format!("no metadata for {topic}"))?;
    if let Some(e) = t.error() {
        bail!("metadata for {topic}: {e:?}");
    }
    Ok(t.partitions().len() as i32)
}

/// How many messages `topic` holds: the sum of its partitions' high watermarks less their low
/// ones. Exact at the moment it is called, unlike a read with a timeout.
pub fn topic_len(brokers: &str, topic: &str) -> Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let partitions = partition_count(&consumer, topic)?;
    (0..partitions)
        .map(|p| {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            Ok(high - low)
        })
        .sum()
}

/// `n` outcome records read from `topic` within `timeout` (fewer when they did not come).
pub fn read_outcomes(
    brokers: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Result<Vec<radstream_schemas::OutcomeEvent>> {
    let values = read_topic(brokers, topic, n, timeout)?;
    values.iter().map(|v| Ok(serde_json::from_slice(v)?)).collect()
}

/// A new pseudonymization key file `deid.key` in `dir`, and the de-identifier it makes, to
/// compute the pseudonyms a worker with that key writes.
pub fn deid_key(dir: &Path, id: &str) -> Result<(PathBuf, radstream_operators::pseudonymize::Deidentifier)> {
    use radstream_operators::pseudonymize::{DeidKey, Deidentifier, ProfileOptions};
    let text = DeidKey::generate_file_text(id);
    let path = dir.join("deid.key");
    std::fs::write(&path, &text)?;
    Ok((path, Deidentifier::new(DeidKey::parse(&text, id)?, ProfileOptions::default())))
}

/// Committed offsets of `group` on `topic`, by partition.
pub fn committed_offsets(brokers: &str, group: &str, topic: &str, partitions: i32) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(committed.elements().iter().map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1))).collect())
}

/// High watermarks of `topic`, by partition.
pub fn high_watermarks(brokers: &str, topic: &str, partitions: i32) -> Result<BTreeMap<i32, i64>> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    (0..partitions).map(|p| Ok((p, consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?.1))).collect()
}

/// A DICOMweb PACS (Orthanc) seen through QIDO-RS.
#[derive(Debug, Clone)]
pub struct Pacs {
    /// Base URL (Orthanc's REST root; DICOMweb under `/dicom-web`).
    pub base: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
}

impl Pacs {
    /// The DICOMweb root.
    pub fn dicomweb(&self) -> String {
        format!("{}/dicom-web", self.base)
    }

    /// SOPInstanceUIDs of a study as QIDO-RS lists them (with repeats, if the PACS repeated any).
    pub async fn study_instances(&self, study_uid: &str) -> Result<Vec<String>> {
        let url = format!("{}/studies/{study_uid}/instances?includefield=00080018", self.dicomweb());
        let resp = reqwest::Client::new()
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .header("Accept", "application/dicom+json")
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT || resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !resp.status().is_success() {
            bail!("QIDO-RS {url}: HTTP {}", resp.status());
        }
        let body: serde_json::Value = resp.json().await?;
        let items = body.as_array().context("QIDO-RS answer is not a JSON array")?;
        Ok(items.iter().filter_map(|i| i["00080018"]["Value"][0].as_str().map(str::to_string)).collect())
    }

    /// Instances per study for every study in `expected`; returns UID → times listed.
    pub async fn count_instances(&self, studies: impl IntoIterator<Item = &String>) -> Result<HashMap<String, usize>> {
        let mut counts = HashMap::new();
        for study in studies {
            for sop in self.study_instances(study).await? {
                *counts.entry(sop).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    /// The Part-10 bytes of an instance, by SOPInstanceUID (Orthanc's REST API).
    pub async fn instance_file(&self, sop_uid: &str) -> Result<Vec<u8>> {
        let client = reqwest::Client::new();
        let found: Vec<String> = client
            .post(format!("{}/tools/find", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .json(&serde_json::json!({"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = found.first().with_context(|| format!("the PACS has no instance {sop_uid}"))?;
        let bytes = client
            .get(format!("{}/instances/{id}/file", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok(bytes.to_vec())
    }

    /// Whether the PACS answers.
    pub async fn is_up(&self) -> bool {
        reqwest::Client::new()
            .get(format!("{}/system", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }
}

/// The `radstream` binary built beside the test executables.
pub fn radstream_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // Beside a benchmark binary (target/<profile>/), else one up from a test (…/deps/).
    let beside = exe.parent().map(|d| d.join("radstream")).filter(|b| b.exists());
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = beside.unwrap_or_else(|| dir.join("radstream"));
    assert!(bin.exists(), "{} is missing: build it first (cargo build --workspace; infra/test.sh does)", bin.display());
    bin
}

/// What a worker's config needs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Input topic.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
    /// Outcome topic.
    pub outcome_topic: String,
    /// S3 endpoint.
    pub s3_endpoint: String,
    /// PACS.
    pub pacs: Pacs,
    /// STOW retry deadline.
    pub stow_retry_deadline_secs: u64,
    /// Extra TOML lines for the `[kafka]` section (for example the event format).
    pub kafka_extra: String,
    /// Extra TOML lines for the `[runtime]` section.
    pub runtime_extra: String,
    /// Extra TOML lines for the `stow` operator.
    pub stow_extra: String,
}

impl WorkerConfig {
    /// A worker config for a fresh topic set on `stack`, writing to `pacs`.
    pub fn new(stack: &Stack, name: &str, pacs: Pacs) -> Self {
        let topic = unique(name);
        Self {
            brokers: stack.kafka.clone(),
            group: format!("{topic}-group"),
            dead_letter_topic: format!("{topic}-dlq"),
            outcome_topic: format!("{topic}-outcomes"),
            topic,
            s3_endpoint: stack.s3_endpoint.clone(),
            pacs,
            stow_retry_deadline_secs: 120,
            kafka_extra: String::new(),
            runtime_extra: String::new(),
            stow_extra: String::new(),
        }
    }

    /// Creates the input topic (`partitions`), the dead-letter and the outcome topics (one
    /// partition each) on `stack`.
    pub async fn create_topics(&self, stack: &Stack, partitions: i32) -> Result<()> {
        create_topic(&stack.kafka, &self.topic, partitions).await?;
        create_topic(&stack.kafka, &self.dead_letter_topic, 1).await?;
        create_topic(&stack.kafka, &self.outcome_topic, 1).await
    }

    /// The TOML text: the default chain (route, then STOW to the PACS).
    pub fn toml(&self) -> String {
        let operators = format!(
            r#"
[[operators]]
type = "route"
default_action = "forward"
default_branch = "all"

[[operators.rules]]
name = "no-secondary-capture"
sop_class = ["1.2.840.10008.5.1.4.1.1.7"]
action = "drop"

{stow}"#,
            stow = self.stow_toml()
        );
        self.toml_with_operators(&operators)
    }

    /// A `stow` operator entry for the PACS, with its basic auth.
    pub fn stow_toml(&self) -> String {
        format!(
            r#"
[[operators]]
type = "stow"
url = "{pacs}"
retry_deadline_secs = {deadline}
initial_backoff_ms = 100
max_backoff_ms = 2000
{stow_extra}

[operators.auth]
kind = "basic"
username = "{user}"
password_env = "RADSTREAM_TEST_PACS_PASSWORD"
"#,
            pacs = self.pacs.dicomweb(),
            deadline = self.stow_retry_deadline_secs,
            user = self.pacs.user,
            stow_extra = self.stow_extra,
        )
    }

    /// The TOML text with `operators` (`[[operators]]` entries) as the chain.
    pub fn toml_with_operators(&self, operators: &str) -> String {
        format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"
input_topic = "{topic}"
dead_letter_topic = "{dlq}"
outcome_topic = "{outcomes}"
session_timeout_ms = 6000
commit_interval_ms = 500
{kafka_extra}

# tansu answers a fetch only when fetch.wait.max.ms has passed, even when data is there
# (Apache Kafka answers at once), so the default 500 ms would add up to 500 ms per event.
[kafka.consumer]
"fetch.wait.max.ms" = "10"

[objects]
kind = "s3"
endpoint = "{s3}"
path_style = true
max_retries = 2
timeout_secs = 10

[runtime]
drain_deadline_secs = 20
{runtime_extra}
{operators}"#,
            brokers = self.brokers,
            group = self.group,
            topic = self.topic,
            dlq = self.dead_letter_topic,
            outcomes = self.outcome_topic,
            s3 = self.s3_endpoint,
            kafka_extra = self.kafka_extra,
            runtime_extra = self.runtime_extra,
        )
    }

    /// Writes the config into `dir`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(format!("{}.toml", self.topic));
        std::fs::write(&path, self.toml())?;
        Ok(path)
    }

    /// How the tests publish to this worker's topic: objects into the stack's bucket under the
    /// topic's name, routine priority, source `E2E_TEST`.
    pub fn publish_options(&self, stack: &Stack) -> radstream_pipeline::publish::PublishOptions {
        radstream_pipeline::publish::PublishOptions {
            bucket: stack.bucket.clone(),
            prefix: self.topic.clone(),
            priority: radstream_schemas::Priority::Routine,
            source: Some("E2E_TEST".into()),
            concurrency: 8,
            skip_events: false,
        }
    }

    /// The parsed config (for in-process publishing).
    pub fn parsed(&self) -> Result<radstream_pipeline::config::Config> {
        Ok(radstream_pipeline::config::Config::from_toml_str(&self.toml(), Path::new("test.toml"), Vec::new())?)
    }
}

/// `route` (everything forwarded) then `preprocess` with `models/<model>.preprocess.toml` on
/// `device`: the chain of the tests that decode on the stack, without its sink.
pub fn preprocess_chain(model: &str, device: &str) -> String {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../models/{model}.preprocess.toml"));
    format!(
        r#"
[[operators]]
type = "route"
default_action = "forward"
default_branch = "all"

[[operators]]
type = "preprocess"
spec_file = "{spec}"
device = "{device}"
"#,
        spec = spec.display()
    )
}

/// The `[[operators]]` of a chain that runs one of the repository's models
/// (`models/<model>.preprocess.toml` and `.model.toml`): route (everything), pseudonymize when
/// `pseudonymize` gives its settings (`key_file = "..."`, ...), preprocess, and infer with
/// `max_batch = 4`, last, so that lines appended to the text are more keys of infer until the
/// next `[[operators]]`.
pub fn model_chain(model: &str, pseudonymize: Option<&str>) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pseudonymize = pseudonymize
        .map(|settings| format!("\n[[operators]]\ntype = \"pseudonymize\"\n{settings}\n"))
        .unwrap_or_default();
    format!(
        r#"
[[operators]]
type = "route"
default_action = "forward"
default_branch = "all"
{pseudonymize}
[[operators]]
type = "preprocess"
spec_file = "{spec}"

[[operators]]
type = "infer"
model = "{manifest}"
max_batch = 4
"#,
        spec = repo.join(format!("models/{model}.preprocess.toml")).display(),
        manifest = repo.join(format!("models/{model}.model.toml")).display(),
    )
}

/// A `radstream run` worker process.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    /// Its metrics address.
    pub metrics: String,
    /// Its log file.
    pub log: PathBuf,
}

impl Worker {
    /// Starts `radstream run --config <config>` with JSON logs to a file in `dir`.
    pub fn start(config: &Path, pacs_password: &str, dir: &Path, name: &str) -> Result<Worker> {
        let metrics = format!("127.0.0.1:{}", free_port());
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(radstream_bin())
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env("RADSTREAM_TEST_PACS_PASSWORD", pacs_password)
            .env("RADSTREAM__METRICS__LISTEN", &metrics)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .context("starting radstream run")?;
        Ok(Worker { child, metrics, log })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no draining, no commit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        Command::new("kill").args(["-TERM", &self.pid().to_string()]).status()?;
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > until {
                self.kill();
                bail!("worker did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// One metric value (summed over label sets) from `/metrics`, or 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        metric_at(&self.metrics, name).await
    }

    /// HTTP status of `/readyz` (0 when the endpoint does not answer).
    pub async fn readyz(&self) -> u16 {
        match reqwest::get(format!("http://{}/readyz", self.metrics)).await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// The end of the log so far, for failure messages (`RADSTREAM_TEST_LOG_LINES` lines, 40
    /// by default).
    pub fn log_tail(&self) -> String {
        let keep = var("RADSTREAM_TEST_LOG_LINES").and_then(|v| v.parse().ok()).unwrap_or(40);
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(keep)..].join("\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill();
        }
    }
}

/// One metric value (summed over label sets) from the `/metrics` of `addr`, or 0 when absent.
pub async fn metric_at(addr: &str, name: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An Orthanc of a test's own (for outage tests), run by `infra/orthanc/run.sh`.
#[derive(Debug)]
pub struct OwnOrthanc {
    child: Option<Child>,
    /// Its PACS view.
    pub pacs: Pacs,
    port: u16,
    dir: PathBuf,
    run: PathBuf,
}

impl OwnOrthanc {
    /// Starts an Orthanc on a free port with its data in `dir`, and waits until it answers.
    pub async fn start(stack: &Stack, dir: &Path) -> Result<OwnOrthanc> {
        let port = free_port();
        let pacs =
            Pacs { base: format!("http://127.0.0.1:{port}"), user: "radstream".into(), password: "outage-test".into() };
        let mut me = OwnOrthanc { child: None, pacs, port, dir: dir.to_path_buf(), run: stack.orthanc_run.clone() };
        me.restart().await?;
        Ok(me)
    }

    /// Starts (again) on the same port and data.
    pub async fn restart(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("orthanc.log"))?;
        let child = Command::new("bash")
            .arg(&self.run)
            .args(["--http-port", &self.port.to_string(), "--dir"])
            .arg(&self.dir)
            .args(["--user", &self.pacs.user, "--password", &self.pacs.password])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(60);
        while !self.pacs.is_up().await {
            if Instant::now() > until {
                bail!("own Orthanc did not come up on port {}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Stops it hard (an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnOrthanc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `check` is true, polling; fails with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + timeout;
    while !check().await {
        if Instant::now() > until {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
