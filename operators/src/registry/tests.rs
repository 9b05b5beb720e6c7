//! The compliance test: every registered operator, through its example config
//! ([`OperatorSpec::example`]), is checked for what the contract asks of all of them. A new
//! operator gets these checks by being registered.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use radstream_schemas::ObjectLocation;

use super::*;
use crate::contract::services::{ObjectWriter, ServiceError, TableFollower, TableReader, TableSubscriber, TopicWriter};
use crate::contract::Envelope;
use crate::test_support::header_only_part10;

/// The key the pseudonymize example names (`key_env`), in the key file format.
const DEID_KEY: &str =
    "id = \"compliance\"\nsecret = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n";

/// Side outputs that succeed at once and keep nothing.
struct Accepting;

#[async_trait]
impl TopicWriter for Accepting {
    async fn send(&self, _: &str, _: &str, _: Vec<u8>) -> Result<(), ServiceError> {
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for Accepting {
    async fn put(&self, _: &str, _: &str, _: Vec<Bytes>) -> Result<(), ServiceError> {
        Ok(())
    }
}

#[async_trait]
impl TableFollower for Accepting {
    async fn catch_up(&self, _: Duration) -> Result<(), ServiceError> {
        Ok(())
    }
}

impl TableReader for Accepting {
    fn follow(&self, _: &str, _: Arc<dyn TableSubscriber>) -> Result<Arc<dyn TableFollower>, ServiceError> {
        Ok(Arc::new(Accepting))
    }
}

fn context() -> BuildContext {
    BuildContext {
        topics: Some(Arc::new(Accepting)),
        objects: Some(Arc::new(Accepting)),
        tables: Some(Arc::new(Accepting)),
        ..BuildContext::default()
    }
}

/// The example as a whole `[[operators]]` entry.
fn entry(kind: &str, example: &str) -> String {
    format!("type = \"{kind}\"\n{example}")
}

fn parse(kind: &str, toml_text: &str) -> OperatorConfig {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("{kind}: the example does not parse: {e}\n{toml_text}"))
}

/// Every string that names a file (a path starting with `/`, `./` or `../`, which is how the
/// examples write them) made to name one that does not exist, so that a `validate` that reads
/// files fails.
fn without_files(value: &mut toml::Value) {
    match value {
        toml::Value::String(s) if s.starts_with('/') || s.starts_with("./") || s.starts_with("../") => {
            let name = s.rsplit('/').next().unwrap_or_default().to_string();
            *s = format!("/nonexistent/radstream-compliance/{name}");
        }
        toml::Value::Table(table) => table.iter_mut().for_each(|(_, value)| without_files(value)),
        toml::Value::Array(items) => items.iter_mut().for_each(without_files),
        _ => {}
    }
}

fn envelopes() -> Vec<Envelope> {
    (1..=3)
        .map(|i| {
            let location = ObjectLocation { bucket: "in".into(), key: format!("ct/{i}.dcm"), size: None, etag: None };
            let object = header_only_part10(&format!("1.2.826.0.1.3680043.8.498.{i}"), "CT");
            Envelope::from_part10(i, location, object).unwrap()
        })
        .collect()
}

#[test]
fn every_kind_is_registered_once_under_its_serde_name() {
    let kinds: Vec<&str> = OperatorConfig::examples().iter().map(|(kind, _)| *kind).collect();
    let mut unique = kinds.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), kinds.len(), "a kind is registered twice: {kinds:?}");
    assert!(kinds.contains(&"tag"), "the test-only example operator is registered");
}

/// One test for all operators, so that the environment variables it sets and removes are not
/// read by another test of this module at the same time.
#[tokio::test]
async fn every_registered_operator_keeps_the_contract() {
    for (kind, example) in OperatorConfig::examples() {
        let config = parse(kind, &entry(kind, example));
        assert_eq!(config.kind(), kind, "{kind}: KIND differs from the registry's name for it");

        // (a) Unknown fields are refused, by name.
        let unknown = entry(kind, &format!("compliance_unknown_field = 1\n{example}"));
        let error = toml::from_str::<OperatorConfig>(&unknown).expect_err(&format!("{kind}: an unknown field passed"));
        assert!(
            error.to_string().contains("compliance_unknown_field"),
            "{kind}: the error does not name the field: {error}"
        );

        // (b) `validate` is pure: it passes with no file and no secret there. (It is not timed: a
        // speed check belongs in a benchmark, and a network call would need a runtime it lacks.)
        std::env::remove_var("RADSTREAM_TEST_SECRET");
        std::env::remove_var("RADSTREAM_TEST_DEID_KEY");
        let mut table: toml::Value = toml::from_str(&entry(kind, example)).unwrap();
        without_files(&mut table);
        let detached: OperatorConfig = table.try_into().unwrap_or_else(|e| panic!("{kind}: {e}"));
        detached.validate().unwrap_or_else(|e| panic!("{kind}: validate failed without files or secrets: {e}"));
        config.validate().unwrap_or_else(|e| panic!("{kind}: the example does not validate: {e}"));

        // (c) The config round-trips through TOML.
        let written = toml::to_string(&config).unwrap_or_else(|e| panic!("{kind}: cannot be written as TOML: {e}"));
        assert_eq!(parse(kind, &written), config, "{kind}: changed on the way through TOML:\n{written}");
        let tag = toml::from_str::<toml::Table>(&written).unwrap().get("type").cloned();
        assert_eq!(tag, Some(toml::Value::String(kind.to_string())), "{kind}: written under another type");

        // (d) The built operator returns every envelope it is given, each with an outcome, or
        // holds it until it is closed.
        std::env::set_var("RADSTREAM_TEST_SECRET", "test-secret");
        std::env::set_var("RADSTREAM_TEST_DEID_KEY", DEID_KEY);
        let mut operator =
            config.build(&context()).unwrap_or_else(|e| panic!("{kind}: the example does not build: {e}"));
        assert_eq!(operator.is_sink(), config.is_sink(), "{kind}: the operator and its spec disagree on is_sink");
        let processed = tokio::time::timeout(Duration::from_secs(60), operator.process_batch(envelopes()))
            .await
            .unwrap_or_else(|_| panic!("{kind}: a batch took over a minute"));
        let held = operator.on_close().await;
        let mut tickets: Vec<u64> =
            processed.iter().map(|p| p.envelope.ticket).chain(held.iter().map(|e| e.ticket)).collect();
        tickets.sort_unstable();
        assert_eq!(tickets, [1, 2, 3], "{kind}: envelopes were lost or duplicated");

        // Readiness: only sinks probe a destination.
        if config.readiness().is_some() {
            assert!(config.is_sink(), "{kind}: only a sink has a destination to probe");
        }
    }
}
