use std::path::Path;

use super::*;
use crate::config::{Config, LoadError};

const KAFKA: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
input_topic = "dicom.instances"
"#;

/// `[[operators]]` entries by type, with what each needs to pass its own validation.
fn entry(kind: &str) -> String {
    let body = match kind {
        "route" => "default_action = \"forward\"\ndefault_branch = \"all\"",
        "pseudonymize" => "key_file = \"/keys/deid.key\"\nlink_topic = \"links\"",
        "relink" => "link_topic = \"links\"",
        "stow" => "url = \"http://127.0.0.1:8042/dicom-web\"",
        "fhir" => "topic = \"radstream.fhir\"",
        "export" => "bucket = \"exports\"",
        "key_object" | "results" => "",
        other => panic!("no test entry for {other}"),
    };
    format!("\n[[operators]]\ntype = \"{kind}\"\n{body}\n")
}

fn load(kinds: &[&str], more: &str) -> Result<Config, LoadError> {
    let operators: String = kinds.iter().map(|k| entry(k)).collect();
    Config::from_toml_str(&format!("{KAFKA}{operators}{more}"), Path::new("test.toml"), Vec::new())
}

fn refused(kinds: &[&str], more: &str, key: &str, says: &str) {
    let err = load(kinds, more).expect_err(&format!("{kinds:?} {more}")).to_string();
    assert!(err.contains(key), "{kinds:?}: names {key}: {err}");
    assert!(err.contains(says), "{kinds:?}: says {says:?}: {err}");
}

#[test]
fn chains_that_keep_identified_and_pseudonymized_data_apart_pass() {
    for kinds in [
        &["route", "stow"][..],
        &["route", "export", "stow"],
        &["route", "pseudonymize", "export"],
        &["route", "pseudonymize", "export", "export"],
        &["route", "pseudonymize", "results", "relink", "stow", "fhir"],
        &["relink", "stow"],
        &["key_object", "export"],
        &["pseudonymize", "relink", "pseudonymize", "export"],
    ] {
        load(kinds, "").unwrap_or_else(|e| panic!("{kinds:?}: {e}"));
    }
}

#[test]
fn a_sink_before_pseudonymize_is_refused() {
    let says = "would deliver instances that are not pseudonymized yet";
    refused(&["route", "export", "pseudonymize", "export"], "", "operators[1].type", says);
    refused(&["stow", "pseudonymize", "export"], "", "operators[0].type", says);
    refused(&["route", "fhir", "pseudonymize", "export"], "", "operators[1].type", "another group_id");
    // A relink does not make what comes before a later pseudonymize safe to deliver.
    refused(&["pseudonymize", "relink", "stow", "pseudonymize", "export"], "", "operators[2].type", says);
}

#[test]
fn a_clinical_sink_after_pseudonymize_needs_a_relink() {
    let says = "add a `relink` before it";
    refused(&["route", "pseudonymize", "stow"], "", "operators[2].type", says);
    refused(&["route", "pseudonymize", "results", "fhir"], "", "operators[3].type", says);
    refused(&["pseudonymize", "export", "stow"], "", "operators[2].type", "pseudonymized_destinations");
    // The relink must come after the pseudonymize, not before it.
    refused(&["relink", "pseudonymize", "stow"], "", "operators[2].type", says);
    // The stow is covered by the relink, the fhir after it is not.
    refused(&["pseudonymize", "relink", "stow", "pseudonymize", "fhir"], "", "operators[2].type", "not pseudonymized");
}

#[test]
fn a_research_destination_is_said_so_explicitly() {
    let research = "\n[chain]\npseudonymized_destinations = [\"stow\"]\n";
    let c = load(&["route", "pseudonymize", "stow"], research).unwrap();
    assert_eq!(c.chain.pseudonymized_destinations, ["stow"]);
    // It lets only the named type through.
    refused(&["pseudonymize", "stow", "fhir"], research, "operators[2].type", "relink");
    // A listing that permits nothing is stale: refused so it cannot permit a later mistake.
    refused(&["route", "stow"], research, "chain.pseudonymized_destinations[0]", "remove it");
    refused(&["pseudonymize", "relink", "stow"], research, "chain.pseudonymized_destinations[0]", "remove it");
    let export = "\n[chain]\npseudonymized_destinations = [\"export\"]\n";
    refused(&["pseudonymize", "export"], export, "chain.pseudonymized_destinations[0]", "remove it");
    let unknown = "\n[chain]\npseudonymized_destinations = [\"route\"]\n";
    refused(&["route", "pseudonymize", "export"], unknown, "chain.pseudonymized_destinations[0]", "not a sink");
    let typo = "\n[chain]\npseudonymised = [\"stow\"]\n";
    refused(&["route", "stow"], typo, "pseudonymised", "unknown field");
}

#[test]
fn topic_names_follow_kafkas_rules() {
    assert!(check_topic("k", &"a".repeat(MAX_TOPIC_LEN)).is_ok());
    assert!(check_topic("k", "radstream.dead-letter_2").is_ok());
    for bad in ["", ".", "..", "a b", "links/phi", "tópico", "a:b"] {
        let e = check_topic("kafka.input_topic", bad).expect_err(bad);
        assert_eq!(e.key, "kafka.input_topic");
        assert!(e.problem.contains("rename it"), "{e}");
    }
    let e = check_topic("k", &"a".repeat(MAX_TOPIC_LEN + 1)).unwrap_err();
    assert!(e.problem.contains("is 250 characters long"), "{e}");
}

#[test]
fn every_topic_of_the_config_is_checked_with_its_key() {
    let long = "t".repeat(MAX_TOPIC_LEN + 1);
    for (var, key) in [
        ("RADSTREAM__KAFKA__INPUT_TOPIC", "kafka.input_topic"),
        ("RADSTREAM__KAFKA__DEAD_LETTER_TOPIC", "kafka.dead_letter_topic"),
        ("RADSTREAM__KAFKA__OUTCOME_TOPIC", "kafka.outcome_topic"),
        ("RADSTREAM__OPERATORS__1__LINK_TOPIC", "operators[1].link_topic"),
        ("RADSTREAM__OPERATORS__1__AUDIT_TOPIC", "operators[1].audit_topic"),
        ("RADSTREAM__OPERATORS__3__LINK_TOPIC", "operators[3].link_topic"),
        ("RADSTREAM__OPERATORS__5__TOPIC", "operators[5].topic"),
        ("RADSTREAM__OPERATORS__2__TOPIC", "operators[2].topic"),
        ("RADSTREAM__OPERATORS__6__ANNOUNCE_TOPIC", "operators[6].announce_topic"),
    ] {
        let operators: String = ["route", "pseudonymize"].iter().map(|k| entry(k)).collect();
        let text = format!(
            "{KAFKA}{operators}\n[[operators]]\ntype = \"alert\"\ntopic = \"critical\"\n{}{}{}{}",
            entry("relink"),
            entry("stow"),
            entry("fhir"),
            entry("export"),
        );
        let c = Config::from_toml_str(&text, Path::new("test.toml"), Vec::new());
        assert!(c.is_ok(), "{c:?}");
        let env = [(var.to_string(), long.clone())];
        let err = Config::from_toml_str(&text, Path::new("test.toml"), env).unwrap_err().to_string();
        // `export` checks its own topic first, in its own words.
        assert!(err.contains(key) && err.contains("characters"), "{var}: {err}");
    }
}
