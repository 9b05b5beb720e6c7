//! The SLOs as code in `infra/prometheus`: promtool checks the rule files and runs their unit
//! tests, and a real Prometheus (Debian's `prometheus` package, which `infra/stack.sh install`
//! installs) scrapes a real `radstream run` worker on the test stack and evaluates the rules on
//! what the worker delivered.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use radstream_pipeline::publish::{self, PublishOptions};
use radstream_pipeline::synth::{self, SynthOptions};
use radstream_schemas::{OutcomeKind, Priority};
use radstream_tests::*;

fn prometheus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/prometheus")
}

/// A tool of the `prometheus` package (`promtool`, `prometheus`) from PATH.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Runs `command`; fails with its output unless it exits 0. Returns stdout and stderr.
fn run_ok(command: &mut Command) -> Result<String> {
    let out = command.output().with_context(|| format!("running {command:?}"))?;
    ensure!(out.status.success(), "{command:?} failed:\n{}", show_output(&out));
    Ok(format!("{}{}", lossy_text(&out.stdout), lossy_text(&out.stderr)))
}

/// `infra/prometheus/prometheus.yml` rendered into `dir`: scrape and evaluation every
/// `interval`, the repository's rule files, `targets` as the radstream job's targets.
fn render_config(dir: &Path, interval: &str, targets: &[&str]) -> Result<PathBuf> {
    let template = std::fs::read_to_string(prometheus_dir().join("prometheus.yml"))?;
    let rules = prometheus_dir().join("rules").canonicalize()?;
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let text = template
        .replace("${SCRAPE_INTERVAL}", interval)
        .replace("${RULES_DIR}", path_str(&rules))
        .replace("${RADSTREAM_TARGETS}", &targets.join(", "));
    let unrendered: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with('#') && l.contains("${")).collect();
    ensure!(unrendered.is_empty(), "placeholders the test does not know: {unrendered:?}");
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The rule group names in `infra/prometheus/rules`.
fn rule_group_names() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for file in files_ending(&prometheus_dir().join("rules"), ".rules.yml") {
        let text = std::fs::read_to_string(&file)?;
        names.extend(text.lines().filter_map(|l| l.trim().strip_prefix("- name: ")).map(str::to_string));
    }
    Ok(names)
}

#[test]
fn every_rule_file_passes_promtool_check_and_its_unit_tests() -> Result<()> {
    let Some(promtool) = tool("promtool") else {
        skip_without("promtool (Debian package prometheus)");
        return Ok(());
    };
    let dir = prometheus_dir();
    let rules = files_ending(&dir.join("rules"), ".rules.yml");
    let tests = files_ending(&dir.join("tests"), ".test.yml");
    ensure!(!rules.is_empty() && !tests.is_empty(), "no rule or test files under {}", dir.display());

    // Every rule file is loaded by at least one unit-test file.
    let test_texts = tests.iter().map(std::fs::read_to_string).collect::<std::io::Result<Vec<_>>>()?;
    for rule_file in &rules {
        let name = rule_file.file_name().and_then(|n| n.to_str()).context("rule file name")?;
        ensure!(
            test_texts.iter().any(|t| t.contains(&format!("../rules/{name}"))),
            "{name} has no promtool unit test in infra/prometheus/tests"
        );
    }

    let checked = run_ok(Command::new(&promtool).args(["check", "rules"]).args(&rules))?;
    ensure!(checked.matches("SUCCESS").count() == rules.len(), "promtool check rules:\n{checked}");
    // promtool resolves each test file's rule_files relative to that file.
    let tested = run_ok(Command::new(&promtool).args(["test", "rules"]).args(&tests))?;
    ensure!(tested.matches("SUCCESS").count() == tests.len(), "promtool test rules:\n{tested}");

    // The config template renders into a config that loads every rule file.
    let tmp = tempfile::tempdir()?;
    let config = render_config(tmp.path(), "15s", &["127.0.0.1:9464"])?;
    let checked = run_ok(Command::new(&promtool).args(["check", "config"]).arg(&config))?;
    ensure!(
        checked.contains(&format!("SUCCESS: {} rule files found", rules.len())),
        "promtool check config:\n{checked}"
    );
    Ok(())
}

/// A Prometheus server of this test's own, killed on drop.
struct PrometheusServer {
    child: Child,
    url: String,
    log: PathBuf,
}

impl PrometheusServer {
    /// Starts `prometheus` on `config` with its database in `dir`, and waits until it is ready.
    async fn start(bin: &Path, config: &Path, dir: &Path) -> Result<PrometheusServer> {
        let listen = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting prometheus")?;
        let server = PrometheusServer { child, url: format!("http://{listen}"), log };
        let ready = wait_until(Duration::from_secs(60), "Prometheus to be ready", || async {
            reqwest::get(format!("{}/-/ready", server.url)).await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        if let Err(e) = ready {
            bail!("{e}; prometheus log:\n{}", server.log_tail());
        }
        Ok(server)
    }

    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<serde_json::Value> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.url), params)?;
        let body: serde_json::Value = reqwest::get(url).await?.json().await?;
        ensure!(body["status"] == "success", "{path}: {body}");
        Ok(body["data"].clone())
    }

    /// An instant query's samples: each sample's labels, and its value.
    async fn query(&self, query: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
        let data = self.api("/api/v1/query", &[("query", query)]).await?;
        let samples = data["result"].as_array().with_context(|| format!("{query}: no result vector: {data}"))?;
        samples
            .iter()
            .map(|s| {
                let labels = serde_json::from_value(s["metric"].clone())?;
                let value = s["value"][1].as_str().context("sample value")?.parse::<f64>()?;
                Ok((labels, value))
            })
            .collect()
    }

    /// An instant query's values by the value of `label`.
    async fn by_label(&self, query: &str, label: &str) -> Result<BTreeMap<String, f64>> {
        Ok(self
            .query(query)
            .await?
            .into_iter()
            .map(|(labels, v)| (labels.get(label).cloned().unwrap_or_default(), v))
            .collect())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Ok(true)`; fails after `timeout` with the last state it
/// reported (`Ok(false)` keeps polling, and so does an error, whose text becomes the state).
async fn poll<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(bool, String)>>,
{
    let until = Instant::now() + timeout;
    loop {
        let state = match check().await {
            Ok((true, _)) => return Ok(()),
            Ok((false, state)) => state,
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > until {
            bail!("timed out after {timeout:?} waiting for {what}; last seen: {state}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

const PRIORITIES: [Priority; 2] = [Priority::Routine, Priority::Stat];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_evaluates_the_slo_rules_on_a_real_worker() -> Result<()> {
    let Some(stack) = Stack::get() else { return Ok(()) };
    let Some(prometheus) = tool("prometheus") else {
        skip_without("prometheus (Debian package prometheus)");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let worker_config = WorkerConfig::new(&stack, "slo", stack.pacs());
    worker_config.create_topics(&stack, 2).await?;
    let config_path = worker_config.write(dir.path())?;
    let parsed = worker_config.parsed()?;
    let worker = Worker::start(&config_path, &stack.orthanc_password, dir.path(), "slo")?;
    let config = render_config(dir.path(), "1s", &[&worker.metrics])?;
    let server = PrometheusServer::start(&prometheus, &config, dir.path()).await?;
    poll(Duration::from_secs(60), "Prometheus to scrape the worker", || async {
        let up = server.by_label("up{job=\"radstream\"}", "job").await?;
        Ok((up.get("radstream") == Some(&1.0), format!("up: {up:?}")))
    })
    .await?;

    // Two waves of one study per priority. The histogram's series appear with the first
    // instance that finishes; only increases Prometheus sees after that count in rate(), so
    // the second wave is what the SLI ratios are made of.
    let mut priority_of_sop: HashMap<String, &'static str> = HashMap::new();
    for wave in 0..2 {
        for priority in PRIORITIES {
            let files_dir = dir.path().join(format!("wave{wave}-{}", priority.as_label()));
            synth::write_to_dir(&SynthOptions { studies: 1, seed: unique_seed(), ..Default::default() }, &files_dir)?;
            let files = publish::collect_files(&[files_dir])?;
            let opts = PublishOptions { priority, ..worker_config.publish_options(&stack) };
            for p in publish::publish(&parsed.kafka, &parsed.objects, files, &opts, || {}).await? {
                priority_of_sop.insert(p.event.sop_instance_uid, priority.as_label());
            }
        }
        let total = priority_of_sop.len() as f64;
        let finished = wait_until(Duration::from_secs(180), &format!("{total} outcomes"), || async {
            worker.metric("radstream_outcomes_total").await >= total
        })
        .await;
        if let Err(e) = finished {
            bail!("{e}; worker log:\n{}", worker.log_tail());
        }
        if wave == 0 {
            poll(Duration::from_secs(60), "the first wave in Prometheus", || async {
                let seen =
                    server.by_label("priority_outcome:radstream_end_to_end_seconds_count:sum", "priority").await?;
                Ok((PRIORITIES.iter().all(|p| seen.contains_key(p.as_label())), format!("{seen:?}")))
            })
            .await?;
        }
    }

    // What the worker did, from its outcome records: delivered instances per priority.
    let total = priority_of_sop.len();
    let outcomes = read_outcomes(&stack.kafka, &worker_config.outcome_topic, total, Duration::from_secs(30))?;
    ensure!(outcomes.len() == total, "{} outcome records for {total} instances", outcomes.len());
    ensure!(outcomes.iter().all(|o| o.outcome != OutcomeKind::DeadLettered), "no dead letters expected");
    let mut delivered: BTreeMap<String, f64> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.outcome == OutcomeKind::Delivered) {
        let sop = o.sop_instance_uid.as_deref().context("a delivered outcome names its instance")?;
        let priority = priority_of_sop.get(sop).with_context(|| format!("outcome for an unpublished {sop}"))?;
        *delivered.entry(priority.to_string()).or_default() += 1.0;
    }
    ensure!(delivered.len() == PRIORITIES.len(), "instances of every priority delivered: {delivered:?}");

    // The recording rules, as Prometheus evaluates them on the scraped worker.
    poll(Duration::from_secs(60), "the recording rules' values", || async {
        let counts = server
            .by_label("priority_outcome:radstream_end_to_end_seconds_count:sum{outcome=\"delivered\"}", "priority")
            .await?;
        let latency_30s = server.by_label("priority:radstream_slo_latency_30s_errors:ratio_rate5m", "priority").await?;
        let availability =
            server.by_label("priority:radstream_slo_availability_errors:ratio_rate5m", "priority").await?;
        let stow =
            server.by_label("destination:radstream_destination_requests_errors:ratio_rate5m", "destination").await?;
        let lag = server
            .by_label(
                &format!("job_topic:radstream_consumer_lag_messages:sum{{topic=\"{}\"}}", worker_config.topic),
                "job",
            )
            .await?;
        let all_zero = |m: &BTreeMap<String, f64>| m.len() == PRIORITIES.len() && m.values().all(|v| *v == 0.0);
        let ok = counts == delivered
            && all_zero(&latency_30s)
            && all_zero(&availability)
            && stow.get("pacs") == Some(&0.0)
            && lag.contains_key("radstream");
        Ok((
            ok,
            format!(
                "delivered {counts:?} (expected {delivered:?}), 30 s latency errors {latency_30s:?}, \
                 availability errors {availability:?}, destination errors {stow:?}, lag {lag:?}"
            ),
        ))
    })
    .await?;

    // Every group is loaded, and every rule in it evaluates without error.
    let groups = rule_group_names()?;
    poll(Duration::from_secs(30), "every rule group loaded and healthy", || async {
        let data = server.api("/api/v1/rules", &[]).await?;
        let loaded = data["groups"].as_array().context("rule groups")?;
        let mut state = Vec::new();
        for name in &groups {
            let Some(group) = loaded.iter().find(|g| g["name"] == name.as_str()) else {
                state.push(format!("{name}: not loaded"));
                continue;
            };
            for rule in group["rules"].as_array().context("rules")? {
                if rule["health"] != "ok" {
                    state.push(format!("{name}/{}: {} {}", rule["name"], rule["health"], rule["lastError"]));
                }
            }
        }
        Ok((state.is_empty(), state.join("; ")))
    })
    .await?;

    // Nothing was dead-lettered or late by 30 s, so those SLOs do not alert.
    let data = server.api("/api/v1/alerts", &[]).await?;
    let firing: Vec<String> = data["alerts"]
        .as_array()
        .context("alerts")?
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or_default().to_string())
        .collect();
    ensure!(
        !firing.iter().any(|a| a.starts_with("RadstreamAvailability") || a.starts_with("RadstreamLatency30s")),
        "alerts firing: {firing:?}"
    );
    Ok(())
}
