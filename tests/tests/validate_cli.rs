//! `radstream validate` refuses, with exit status 2 and the key named, the configs that would
//! break at-least-once delivery or send data where it must not go: Kafka client properties that
//! contradict the pipeline's own, sinks in the wrong place around `pseudonymize`, timeouts of 0
//! and topic names Kafka refuses. No servers: the binary only reads the file.

use radstream_tests::{lossy_text, path_str, run_radstream};

const KAFKA: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
input_topic = "dicom.instances"
"#;

const ROUTE: &str = r#"
[[operators]]
type = "route"
default_action = "forward"
default_branch = "all"
"#;

const PSEUDONYMIZE: &str = r#"
[[operators]]
type = "pseudonymize"
key_file = "/run/secrets/deid.key"
link_topic = "radstream.deid.links"
"#;

const RELINK: &str = r#"
[[operators]]
type = "relink"
link_topic = "radstream.deid.links"
"#;

const STOW: &str = r#"
[[operators]]
type = "stow"
url = "http://127.0.0.1:8042/dicom-web"
"#;

const EXPORT: &str = r#"
[[operators]]
type = "export"
bucket = "research"
"#;

/// Runs `radstream validate` on `text`; its exit status, stdout and stderr.
fn validate(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radstream.toml");
    std::fs::write(&path, text).unwrap();
    let out = run_radstream(&["validate", "--config", path_str(&path)]);
    (out.status.code(), lossy_text(&out.stdout), lossy_text(&out.stderr))
}

fn assert_refused(text: &str, key: &str, says: &str) {
    let (code, _, err) = validate(text);
    assert_eq!(code, Some(2), "refused with exit 2 naming {key}: {err}");
    assert!(err.contains(key), "names {key}: {err}");
    assert!(err.contains(says), "says {says:?}: {err}");
}

#[test]
fn kafka_properties_that_break_at_least_once_are_refused_by_name() {
    let cases = [
        ("consumer", "isolation.level", "read_uncommitted", "read_committed"),
        ("consumer", "auto.offset.reset", "latest", "skip every event"),
        ("consumer", "auto.offset.reset", "error", "stop the partition"),
        ("consumer", "enable.auto.offset.store", "true", "must be false"),
        ("consumer", "auto.commit.enable", "true", "remove it"),
        ("consumer", "auto.commit.interval.ms", "0", "kafka.commit_interval_ms"),
        ("consumer", "group.id", "elsewhere", "kafka.group_id"),
        ("producer", "request.required.acks", "1", "must be all"),
        ("producer", "max.in.flight.requests.per.connection", "10", "between 1 and 5"),
        ("producer", "retries", "0", "at least 1"),
        ("producer", "queuing.strategy", "lifo", "must be fifo"),
        ("producer", "transactional.id", "radstream", "not transactional"),
    ];
    for (section, name, value, says) in cases {
        let text = format!("{KAFKA}\n[kafka.{section}]\n\"{name}\" = \"{value}\"\n{ROUTE}{STOW}");
        assert_refused(&text, &format!("kafka.{section}.\"{name}\""), says);
    }
    let consumer =
        "\n[kafka.consumer]\n\"isolation.level\" = \"read_committed\"\n\"auto.offset.reset\" = \"earliest\"\n";
    let safe = format!("{KAFKA}{consumer}{ROUTE}{STOW}");
    let (code, out, err) = validate(&safe);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("route -> stow"), "{out}");
}

#[test]
fn sinks_around_pseudonymize_are_checked() {
    let good = format!("{KAFKA}{ROUTE}{PSEUDONYMIZE}{EXPORT}{RELINK}{STOW}");
    let (code, out, err) = validate(&good);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("route -> pseudonymize -> export -> relink -> stow"), "{out}");

    // An export before pseudonymize writes identified instances to the research bucket.
    assert_refused(
        &format!("{KAFKA}{ROUTE}{EXPORT}{PSEUDONYMIZE}{EXPORT}"),
        "operators[1].type",
        "not pseudonymized yet",
    );
    // A stow after pseudonymize with no relink stores results under pseudonyms.
    assert_refused(
        &format!("{KAFKA}{ROUTE}{PSEUDONYMIZE}{EXPORT}{STOW}"),
        "operators[3].type",
        "add a `relink` before it",
    );
    // Unless the PACS is said to be one for pseudonymized instances.
    let research = format!("{KAFKA}{ROUTE}{PSEUDONYMIZE}{STOW}\n[chain]\npseudonymized_destinations = [\"stow\"]\n");
    let (code, _, err) = validate(&research);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn timeouts_of_zero_are_refused_by_key() {
    let stow = STOW.replace("dicom-web\"", "dicom-web\"\ntimeout_secs = 0");
    assert_refused(&format!("{KAFKA}{ROUTE}{stow}"), "operators[1].timeout_secs", "between 1 and 3600");
    let relink = RELINK.replace("links\"", "links\"\ncatch_up_timeout_secs = 0");
    assert_refused(&format!("{KAFKA}{relink}{STOW}"), "operators[0].catch_up_timeout_secs", "between 1 and 600");
    let objects = "\n[objects]\ntimeout_secs = 0\n";
    assert_refused(&format!("{KAFKA}{objects}{ROUTE}{STOW}"), "objects.timeout_secs", "between 1 and 3600");
    let runtime = "\n[runtime]\ndrain_deadline_secs = 0\n";
    assert_refused(&format!("{KAFKA}{runtime}{ROUTE}{STOW}"), "runtime.drain_deadline_secs", "at least 1");
    let kafka = KAFKA.replace("instances\"", "instances\"\ncommit_interval_ms = 0");
    assert_refused(&format!("{kafka}{ROUTE}{STOW}"), "kafka.commit_interval_ms", "at least 1");
}

#[test]
fn topic_names_kafka_refuses_are_refused_by_key() {
    let long = "t".repeat(250);
    let kafka = KAFKA.replace("dicom.instances", &long);
    assert_refused(&format!("{kafka}{ROUTE}{STOW}"), "kafka.input_topic", "250 characters");
    let pseudonymize = PSEUDONYMIZE.replace("radstream.deid.links", &long);
    assert_refused(&format!("{KAFKA}{ROUTE}{pseudonymize}{EXPORT}"), "operators[1].link_topic", "250 characters");
    let alert = "\n[[operators]]\ntype = \"alert\"\ntopic = \"critical findings\"\n";
    assert_refused(&format!("{KAFKA}{ROUTE}{alert}{STOW}"), "operators[1].topic", "not a name Kafka accepts");
}
