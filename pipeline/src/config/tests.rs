use super::*;

const BASE: &str = r#"
        [kafka]
        brokers = "127.0.0.1:9092"
        input_topic = "dicom.instances"

        [[operators]]
        type = "route"
        default_action = "forward"
        default_branch = "all"

        [[operators]]
        type = "stow"
        url = "http://127.0.0.1:8042/dicom-web"
    "#;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, LoadError> {
    Config::from_toml_str(text, Path::new("test.toml"), env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[test]
fn defaults_and_env_overrides_layer() {
    let c = load(BASE, &[]).unwrap();
    assert_eq!(c.kafka.group_id, "radstream");
    assert_eq!(c.runtime.batch_size, 16);
    let c = load(
        BASE,
        &[
            ("RADSTREAM__KAFKA__GROUP_ID", "workers"),
            ("RADSTREAM__RUNTIME__BATCH_SIZE", "4"),
            ("RADSTREAM__OPERATORS__1__URL", "http://pacs:8042/dicom-web"),
            ("OTHER__KAFKA__GROUP_ID", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(c.kafka.group_id, "workers");
    assert_eq!(c.runtime.batch_size, 4);
    match &c.operators[1] {
        OperatorConfig::Stow(s) => assert_eq!(s.url, "http://pacs:8042/dicom-web"),
        other => panic!("expected stow, got {other:?}"),
    }
}

#[test]
fn a_sink_may_deliver_and_forward_before_the_last_one() {
    let chain = BASE.replace(
            "[[operators]]\n        type = \"stow\"",
            "[[operators]]\n        type = \"export\"\n        bucket = \"exports\"\n\n        [[operators]]\n        type = \"stow\"",
        );
    let c = load(&chain, &[]).unwrap();
    assert_eq!(c.operators.iter().map(|o| o.kind()).collect::<Vec<_>>(), ["route", "export", "stow"]);

    let ends_with_route =
        format!("{BASE}\n[[operators]]\ntype = \"route\"\ndefault_action = \"forward\"\ndefault_branch = \"all\"\n");
    let err = load(&ends_with_route, &[]).unwrap_err();
    assert!(err.to_string().contains("operators[2].type"), "{err}");
    assert!(err.to_string().contains("must end with a sink"), "{err}");

    let looping = chain.replace("bucket = \"exports\"", "bucket = \"exports\"\nannounce_topic = \"dicom.instances\"");
    let err = load(&looping, &[]).unwrap_err();
    assert!(err.to_string().contains("operators[1].announce_topic"), "{err}");
}

#[test]
fn the_lake_section_is_optional_and_checked() {
    assert!(load(BASE, &[]).unwrap().lake.is_none());
    let lake = format!("{BASE}\n[lake]\nbucket = \"lake-bucket\"\nkey_file = \"/keys/deid.key\"\n");
    let c = load(&lake, &[]).unwrap().lake.unwrap();
    assert_eq!((c.prefix.as_str(), c.flush_rows, c.flush_secs), ("lake/", 10_000, 60));
    for (var, value, key) in [
        ("RADSTREAM__LAKE__BUCKET", "Not_A_Bucket", "lake.bucket"),
        ("RADSTREAM__LAKE__PREFIX", "lake", "lake.prefix"),
        ("RADSTREAM__LAKE__FLUSH_ROWS", "0", "lake.flush_rows"),
        ("RADSTREAM__LAKE__FEEDBACK_TOPIC", "radstream.outcomes", "lake.feedback_topic"),
        ("RADSTREAM__LAKE__KEY_ENV", "DEID_KEY", "lake.key_env"),
        ("RADSTREAM__LAKE__METRICS_LISTEN", "nowhere", "lake.metrics_listen"),
    ] {
        let err = load(&lake, &[(var, value)]).unwrap_err();
        assert!(err.to_string().contains(key), "{var}={value}: {err}");
    }
    let err = load(&format!("{BASE}\n[lake]\nbucket = \"lake-bucket\"\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("lake.key_file"), "{err}");
}

#[test]
fn errors_name_the_key() {
    let err = load(BASE, &[("RADSTREAM__RUNTIME__MAX_IN_FLIGHT", "0")]).unwrap_err();
    assert!(err.to_string().contains("runtime.max_in_flight"), "{err}");
    let err = load(BASE, &[("RADSTREAM__OPERATORS__7__URL", "x")]).unwrap_err();
    assert!(err.to_string().contains("RADSTREAM__OPERATORS__7__URL"), "{err}");
    let no_sink = BASE.replace(
        "type = \"stow\"\n        url = \"http://127.0.0.1:8042/dicom-web\"",
        "type = \"route\"\ndefault_action = \"drop\"",
    );
    let err = load(&no_sink, &[]).unwrap_err();
    assert!(err.to_string().contains("operators[1].type"), "the last operator must be a sink: {err}");
    let err = load(&format!("{BASE}\n[runtime]\nbatch_sise = 3\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("batch_sise"), "unknown keys are named: {err}");
    let err = load(&BASE.replace("url = ", "url = 5 #"), &[]).unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
}

#[test]
fn extra_kafka_properties_that_contradict_at_least_once_are_rejected() {
    let text = BASE.replace(
        "input_topic = \"dicom.instances\"",
        "input_topic = \"dicom.instances\"\n        producer = { \"acks\" = \"1\" }",
    );
    let e = load(&text, &[]).unwrap_err().to_string();
    assert!(e.contains("kafka.producer.\"acks\""), "{e}");
    let text = BASE.replace(
        "input_topic = \"dicom.instances\"",
        "input_topic = \"dicom.instances\"\n        consumer = { \"enable.auto.commit\" = \"false\" }",
    );
    let e = load(&text, &[]).unwrap_err().to_string();
    assert!(e.contains("kafka.consumer.\"enable.auto.commit\""), "{e}");
    let text = BASE.replace(
        "input_topic = \"dicom.instances\"",
        "input_topic = \"dicom.instances\"\n        consumer = { \"security.protocol\" = \"SSL\" }",
    );
    assert!(load(&text, &[]).is_ok());
}

#[test]
fn timeouts_and_intervals_of_zero_are_refused_by_key() {
    for (var, key, says) in [
        ("RADSTREAM__OBJECTS__TIMEOUT_SECS", "objects.timeout_secs", "between 1 and 3600"),
        ("RADSTREAM__RUNTIME__DRAIN_DEADLINE_SECS", "runtime.drain_deadline_secs", "at least 1"),
        ("RADSTREAM__KAFKA__COMMIT_INTERVAL_MS", "kafka.commit_interval_ms", "turns committing off"),
        // The operators' own timeouts, under the operator's key path.
        ("RADSTREAM__OPERATORS__1__TIMEOUT_SECS", "operators[1].timeout_secs", "between 1 and 3600"),
        ("RADSTREAM__OPERATORS__1__CONNECT_TIMEOUT_SECS", "operators[1].connect_timeout_secs", "between 1 and 600"),
    ] {
        let err = load(BASE, &[(var, "0")]).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(says), "{var}=0: {err}");
    }
    let err = load(BASE, &[("RADSTREAM__OBJECTS__TIMEOUT_SECS", "3601")]).unwrap_err().to_string();
    assert!(err.contains("objects.timeout_secs"), "{err}");
    assert!(load(BASE, &[("RADSTREAM__OBJECTS__TIMEOUT_SECS", "1")]).is_ok());
}

#[test]
fn the_kafka_topics_may_be_249_characters_and_no_more() {
    let longest = "t".repeat(249);
    assert!(load(BASE, &[("RADSTREAM__KAFKA__OUTCOME_TOPIC", longest.as_str())]).is_ok());
    let longer = "t".repeat(250);
    let err = load(BASE, &[("RADSTREAM__KAFKA__OUTCOME_TOPIC", longer.as_str())]).unwrap_err().to_string();
    assert!(err.contains("kafka.outcome_topic") && err.contains("250 characters"), "{err}");
    let err = load(BASE, &[("RADSTREAM__KAFKA__DEAD_LETTER_TOPIC", "..")]).unwrap_err().to_string();
    assert!(err.contains("kafka.dead_letter_topic"), "{err}");
}
