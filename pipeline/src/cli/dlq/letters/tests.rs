use super::*;

#[test]
fn times_are_utc_or_ages() {
    let now = 1_795_850_130_250;
    assert_eq!(parse_time("2026-11-28T07:15:30.25Z", now), Ok(1_795_850_130_250));
    assert_eq!(parse_time("2026-11-28T07:15Z", now), Ok(1_795_850_100_000));
    assert_eq!(parse_time("1970-01-01Z", now), Ok(0));
    assert_eq!(parse_time("30m", now), Ok(now - 1_800_000));
    assert_eq!(parse_time("2d", now), Ok(now - 172_800_000));
    for bad in ["yesterday", "2026-11-28T07:15:30", "5w", "m", "2026-13-01T00:00Z"] {
        assert!(parse_time(bad, now).is_err(), "{bad}");
    }
    assert_eq!(utc(1_795_850_130_250), "2026-11-28T07:15:30.250Z");
}

#[test]
fn filters_combine() {
    let letter = DeadLetter {
        source_topic: "in".into(),
        source_partition: 0,
        source_offset: 1,
        original_value_base64: String::new(),
        original_key: None,
        error_class: ErrorClass::MissingObject,
        reason: "gone".into(),
        operator: "fetch".into(),
        attempts: 1,
        object_key: None,
        sop_instance_uid: None,
        time_ms: 1_000,
    };
    assert!(DlqFilter::default().matches(&letter));
    let class = |c| DlqFilter { classes: vec![c], ..DlqFilter::default() };
    assert!(class(ErrorClass::MissingObject).matches(&letter));
    assert!(!class(ErrorClass::PacsUnavailable).matches(&letter));
    assert!(!DlqFilter { operators: vec!["stow".into()], ..DlqFilter::default() }.matches(&letter));
    assert!(DlqFilter { since_ms: Some(1_000), until_ms: Some(1_001), ..DlqFilter::default() }.matches(&letter));
    assert!(!DlqFilter { until_ms: Some(1_000), ..DlqFilter::default() }.matches(&letter));
}

/// A letter written without its original (too large for the dead-letter topic) stops the whole
/// replay before anything is sent, and says where the original is.
#[test]
fn a_letter_without_its_original_is_not_replayed_and_says_where_it_is() {
    let letter = |original: &str, offset| Located {
        partition: 0,
        offset,
        letter: DeadLetter {
            source_topic: "dicom.instances".into(),
            source_partition: 2,
            source_offset: 77,
            original_value_base64: original.into(),
            original_key: None,
            error_class: ErrorClass::Internal,
            reason: "too large".into(),
            operator: "finish".into(),
            attempts: 1,
            object_key: None,
            sop_instance_uid: None,
            time_ms: 1_000,
        },
    };
    let kafka: KafkaConfig = toml::from_str("brokers = \"b:9092\"\ninput_topic = \"dicom.instances\"").unwrap();
    assert!(check_replayable(&kafka, &[letter("e30=", 4)]).is_ok());
    let refused = check_replayable(&kafka, &[letter("e30=", 4), letter("", 5)]).unwrap_err().to_string();
    assert!(
        refused.contains("/0/5 holds no original message") && refused.contains("dicom.instances/2/77"),
        "{refused}"
    );
}
