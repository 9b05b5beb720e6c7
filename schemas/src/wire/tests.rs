use super::*;
use crate::instance_event::Priority;

/// Looks like patient data; must never appear in an error.
const PHI: &str = "DOE^JOHN";

fn sample_event() -> InstanceEvent {
    InstanceEvent {
        object: ObjectLocation {
            bucket: "incoming".to_owned(),
            key: "studies/1.2.3/1.2.3.4.5.dcm".to_owned(),
            size: Some(524_288),
            etag: Some("9b2cf535f27731c974343645a3985328".to_owned()),
        },
        study_instance_uid: "1.2.840.113619.2.55.3.1".to_owned(),
        series_instance_uid: "1.2.840.113619.2.55.3.1.2".to_owned(),
        sop_instance_uid: "1.2.840.113619.2.55.3.1.2.3".to_owned(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".to_owned(),
        modality: "CT".to_owned(),
        body_part_examined: Some("CHEST".to_owned()),
        instance_number: Some(7),
        expected_series_instances: None,
        priority: Priority::Stat,
        source: Some("CT_SCANNER_1".to_owned()),
        event_time_ms: 1_704_067_200_123,
    }
}

fn decode_instance(format: EventFormat, value: &[u8], schemas: &SchemaSet) -> Result<InstanceEvent, DecodeError> {
    match decode(format, value, schemas)? {
        EventPayload::Instance(event) => Ok(event),
        other => panic!("expected an instance event, got {other:?}"),
    }
}

#[test]
fn v1_schema_matches_the_rust_type_field_for_field() {
    let schema = SchemaSet::v1();
    let Schema::Record(record) = &schema else {
        panic!("v1 is not a record");
    };
    assert_eq!(record.name.fullname(None), "radstream.InstanceEvent");
    assert!(record.doc.is_some());
    let avro_fields: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
    let json = serde_json::to_value(sample_event()).unwrap();
    let mut rust_fields: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted_avro = avro_fields.clone();
    sorted_avro.sort_unstable();
    rust_fields.sort_unstable();
    assert_eq!(sorted_avro, rust_fields);
    assert!(record.fields.iter().all(|f| f.doc.is_some()));
}

#[test]
fn confluent_round_trip_with_registered_id() {
    let mut schemas = SchemaSet::new();
    schemas.insert(42, SchemaSet::v1());
    assert!(schemas.contains(42));
    assert!(!schemas.contains(43));

    let event = sample_event();
    let bytes = encode_confluent(&event, 42, &SchemaSet::v1()).unwrap();
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 42]);
    assert_eq!(confluent_schema_id(&bytes).unwrap(), 42);
    let decoded = decode_instance(EventFormat::ConfluentAvro, &bytes, &schemas).unwrap();
    assert_eq!(decoded, event);

    // All optional fields absent, default priority.
    let mut sparse = sample_event();
    sparse.object.size = None;
    sparse.object.etag = None;
    sparse.body_part_examined = None;
    sparse.instance_number = None;
    sparse.source = None;
    sparse.priority = Priority::Routine;
    sparse.expected_series_instances = Some(120);
    let bytes = encode_confluent(&sparse, 42, &SchemaSet::v1()).unwrap();
    let decoded = decode_instance(EventFormat::ConfluentAvro, &bytes, &schemas).unwrap();
    assert_eq!(decoded, sparse);
}

#[test]
fn unknown_schema_id_is_an_error_unless_a_default_is_set() {
    let bytes = encode_confluent(&sample_event(), 7, &SchemaSet::v1()).unwrap();
    let mut schemas = SchemaSet::new();
    schemas.insert(1, SchemaSet::v1());
    let err = decode(EventFormat::ConfluentAvro, &bytes, &schemas).unwrap_err();
    assert!(matches!(err, DecodeError::UnknownSchemaId(7)), "{err:?}");
    assert!(err.to_string().contains("schema id 7"));

    let with_default = SchemaSet::with_default(SchemaSet::v1());
    assert!(!with_default.contains(7));
    let decoded = decode_instance(EventFormat::ConfluentAvro, &bytes, &with_default).unwrap();
    assert_eq!(decoded, sample_event());
}

/// An older producer schema: no `source`, no `priority`; the reader defaults fill them.
const WRITER_WITHOUT_SOURCE: &str = r#"{
      "type": "record", "name": "InstanceEvent", "namespace": "radstream",
      "fields": [
        {"name": "object", "type": {"type": "record", "name": "ObjectLocation", "fields": [
          {"name": "bucket", "type": "string"},
          {"name": "key", "type": "string"}
        ]}},
        {"name": "study_instance_uid", "type": "string"},
        {"name": "series_instance_uid", "type": "string"},
        {"name": "sop_instance_uid", "type": "string"},
        {"name": "sop_class_uid", "type": "string"},
        {"name": "modality", "type": "string"},
        {"name": "instance_number", "type": ["null", "int"], "default": null},
        {"name": "event_time_ms", "type": "long"},
        {"name": "scanner_serial", "type": "string", "default": ""}
      ]
    }"#;

#[test]
fn older_writer_schema_resolves_with_reader_defaults() {
    let writer = SchemaSet::parse_schema(WRITER_WITHOUT_SOURCE).unwrap();
    let mut event = sample_event();
    // What the old writer can express; `scanner_serial` (unknown to v1) is dropped.
    event.object.size = None;
    event.object.etag = None;
    event.body_part_examined = None;
    event.source = None;
    event.priority = Priority::Routine;
    event.expected_series_instances = None;
    let mut record = apache_avro::types::Record::new(&writer).unwrap();
    record.put(
        "object",
        apache_avro::types::Value::Record(vec![
            ("bucket".to_owned(), event.object.bucket.clone().into()),
            ("key".to_owned(), event.object.key.clone().into()),
        ]),
    );
    record.put("study_instance_uid", event.study_instance_uid.clone());
    record.put("series_instance_uid", event.series_instance_uid.clone());
    record.put("sop_instance_uid", event.sop_instance_uid.clone());
    record.put("sop_class_uid", event.sop_class_uid.clone());
    record.put("modality", event.modality.clone());
    record.put("instance_number", apache_avro::types::Value::Union(1, Box::new(7i32.into())));
    record.put("event_time_ms", event.event_time_ms);
    record.put("scanner_serial", "SN-1");
    let datum = apache_avro::to_avro_datum(&writer, record).unwrap();
    let mut bytes = vec![0, 0, 0, 0, 3];
    bytes.extend_from_slice(&datum);

    let mut schemas = SchemaSet::new();
    schemas.insert(3, writer);
    let decoded = decode_instance(EventFormat::ConfluentAvro, &bytes, &schemas).unwrap();
    assert_eq!(decoded, event);
}

#[test]
fn incompatible_writer_schema_names_the_field_not_the_value() {
    // `modality` missing with no reader default: resolution must fail.
    let writer =
        SchemaSet::parse_schema(&WRITER_WITHOUT_SOURCE.replace(r#"{"name": "modality", "type": "string"},"#, ""))
            .unwrap();
    let mut record = apache_avro::types::Record::new(&writer).unwrap();
    record.put(
        "object",
        apache_avro::types::Value::Record(vec![("bucket".to_owned(), "b".into()), ("key".to_owned(), "k".into())]),
    );
    record.put("study_instance_uid", PHI);
    record.put("series_instance_uid", "1.2");
    record.put("sop_instance_uid", "1.2.3");
    record.put("sop_class_uid", "1.2.4");
    record.put("instance_number", apache_avro::types::Value::Union(0, Box::new(().into())));
    record.put("event_time_ms", 0i64);
    record.put("scanner_serial", PHI);
    let mut bytes = vec![0, 0, 0, 0, 9];
    bytes.extend_from_slice(&apache_avro::to_avro_datum(&writer, record).unwrap());
    let err = decode(EventFormat::ConfluentAvro, &bytes, &SchemaSet::with_default(writer)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DecodeError::Avro(_)), "{err:?}");
    assert!(text.contains("`modality`"), "{text}");
    assert!(!text.contains(PHI), "{text}");
}

#[test]
fn wrong_writer_schema_for_the_bytes_is_reported_without_values() {
    // v1 bytes decoded with a writer schema that is not what they were written with.
    let bytes = encode_confluent(&sample_event(), 5, &SchemaSet::v1()).unwrap();
    let wrong = SchemaSet::parse_schema(WRITER_WITHOUT_SOURCE).unwrap();
    let err = decode(EventFormat::ConfluentAvro, &bytes, &SchemaSet::with_default(wrong)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DecodeError::Avro(_)), "{err:?}");
    for value in ["CT_SCANNER_1", "CHEST", "1.2.840.113619"] {
        assert!(!text.contains(value), "{text}");
    }
}

#[test]
fn bad_magic_byte_and_short_frames() {
    let schemas = SchemaSet::with_default(SchemaSet::v1());
    let json = encode_json(&sample_event());
    let err = decode(EventFormat::ConfluentAvro, &json, &schemas).unwrap_err();
    assert!(matches!(err, DecodeError::NotConfluentFramed { first_byte: b'{' }), "{err:?}");
    assert!(err.to_string().contains("0x7b"), "{err}");

    let err = confluent_schema_id(&[0, 0, 1]).unwrap_err();
    assert!(matches!(err, DecodeError::TruncatedFrame { len: 3 }), "{err:?}");
    assert!(matches!(decode(EventFormat::ConfluentAvro, &[], &schemas), Err(DecodeError::Empty)));
    assert!(matches!(decode(EventFormat::Json, &[], &schemas), Err(DecodeError::Empty)));

    // A header with a datum cut short.
    let bytes = encode_confluent(&sample_event(), 1, &SchemaSet::v1()).unwrap();
    let err = decode(EventFormat::ConfluentAvro, &bytes[..20], &schemas).unwrap_err();
    assert!(matches!(err, DecodeError::Avro(_)), "{err:?}");
}

#[test]
fn json_round_trip() {
    let event = sample_event();
    let bytes = encode_json(&event);
    let decoded = decode_instance(EventFormat::Json, &bytes, &SchemaSet::new()).unwrap();
    assert_eq!(decoded, event);

    // Optional fields may be absent; priority defaults to ROUTINE.
    let minimal = br#"{"object":{"bucket":"b","key":"k"},"study_instance_uid":"1.2",
            "series_instance_uid":"1.2.3","sop_instance_uid":"1.2.3.4","sop_class_uid":"1.2.5",
            "modality":"MR","event_time_ms":5}"#;
    let decoded = decode_instance(EventFormat::Json, minimal, &SchemaSet::new()).unwrap();
    assert_eq!(decoded.priority, Priority::Routine);
    assert_eq!(decoded.source, None);
    assert_eq!(decoded.object.size, None);
}

#[test]
fn json_errors_do_not_quote_values() {
    // A patient name where a number belongs: serde_json's own message would quote it.
    let mut json = serde_json::to_value(sample_event()).unwrap();
    json["instance_number"] = serde_json::Value::String(PHI.to_owned());
    let bytes = serde_json::to_vec(&json).unwrap();
    let raw = serde_json::from_slice::<InstanceEvent>(&bytes).unwrap_err();
    assert!(raw.to_string().contains(PHI), "the test must exercise a quoting error");

    let err = decode(EventFormat::Json, &bytes, &SchemaSet::new()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DecodeError::Json { category: "data", line: 1, .. }), "{err:?}");
    assert!(!text.contains(PHI), "{text}");
    assert!(!format!("{err:?}").contains(PHI));

    // A missing field is named.
    let mut json = serde_json::to_value(sample_event()).unwrap();
    json.as_object_mut().unwrap().remove("modality");
    json["source"] = serde_json::Value::String(PHI.to_owned());
    let err = decode(EventFormat::Json, &serde_json::to_vec(&json).unwrap(), &SchemaSet::new()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("field `modality` is missing"), "{text}");
    assert!(!text.contains(PHI), "{text}");

    // Syntax errors.
    let err = decode(EventFormat::Json, b"{\"a\": DOE^JOHN}", &SchemaSet::new()).unwrap_err();
    assert!(matches!(err, DecodeError::Json { category: "syntax", .. }), "{err:?}");
    assert!(!err.to_string().contains(PHI));
}

#[test]
fn invalid_uids_are_rejected_without_their_value() {
    let schemas = SchemaSet::new();
    type Corrupt = fn(&mut InstanceEvent);
    let cases: [(&str, Corrupt, &str); 5] = [
        ("sop_instance_uid", |e| e.sop_instance_uid = format!("1.2.{PHI}"), "at byte 4"),
        ("study_instance_uid", |e| e.study_instance_uid.clear(), "is empty"),
        ("series_instance_uid", |e| e.series_instance_uid = "1.".repeat(33), "66 characters"),
        ("sop_class_uid", |e| e.sop_class_uid.push('\0'), "padding"),
        ("object.key", |e| e.object.key.clear(), "is empty"),
    ];
    for (field, corrupt, expected) in cases {
        let mut event = sample_event();
        corrupt(&mut event);
        for (format, bytes) in [
            (EventFormat::Json, encode_json(&event)),
            (EventFormat::ConfluentAvro, encode_confluent(&event, 1, &SchemaSet::v1()).unwrap()),
        ] {
            let schemas = SchemaSet { default: Some(SchemaSet::v1()), ..schemas.clone() };
            let err = decode(format, &bytes, &schemas).unwrap_err();
            let DecodeError::InvalidField { field: f, .. } = &err else {
                panic!("{field}: expected InvalidField, got {err:?}");
            };
            assert_eq!(*f, field);
            let text = err.to_string();
            assert!(text.contains(expected), "{text}");
            assert!(!text.contains(PHI), "{text}");
        }
    }

    // Exactly 64 characters is fine.
    let mut event = sample_event();
    event.sop_instance_uid = format!("1.{}", "2".repeat(62));
    assert_eq!(event.sop_instance_uid.len(), 64);
    assert!(decode(EventFormat::Json, &encode_json(&event), &schemas).is_ok());
}

#[test]
fn invalid_schema_text_is_reported() {
    let err = SchemaSet::parse_schema(r#"{"type": "record", "name": "X"}"#).unwrap_err();
    assert!(matches!(err, DecodeError::Schema(_)), "{err:?}");
}

#[test]
fn event_format_names_match_serde() {
    for format in [EventFormat::ConfluentAvro, EventFormat::Json, EventFormat::S3Notification] {
        let json = serde_json::to_value(format).unwrap();
        assert_eq!(json.as_str(), Some(format.as_str()));
    }
}

#[test]
fn serde_problem_keeps_field_names_only() {
    assert_eq!(serde_problem("missing field `modality`"), "field `modality` is missing");
    let text = serde_problem(&format!("invalid type: string \"{PHI}\", expected i32"));
    assert!(!text.contains(PHI));
    let text = serde_problem(&format!("unknown variant `{PHI}`, expected `ROUTINE`"));
    assert!(!text.contains(PHI));
}
