use super::*;
use crate::wire::{decode, EventFormat, EventPayload, SchemaSet};

fn record(event_name: &str, key: &str) -> String {
    format!(
        r#"{{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"{event_name}",
              "eventTime":"2024-01-01T00:00:00.000Z",
              "s3":{{"bucket":{{"name":"incoming"}},
                     "object":{{"key":"{key}","size":123,"eTag":"\"abc\""}}}}}}"#
    )
}

fn notification(records: &[String]) -> Vec<u8> {
    format!(r#"{{"Records":[{}]}}"#, records.join(",")).into_bytes()
}

#[test]
fn url_encoded_key_is_decoded_form_style() {
    let value = notification(&[record("ObjectCreated:Put", "studies/1.2.3/a+b%2Bc.dcm")]);
    let objects = parse(&value).unwrap();
    assert_eq!(
        objects,
        vec![CreatedObject {
            location: ObjectLocation {
                bucket: "incoming".to_owned(),
                key: "studies/1.2.3/a b+c.dcm".to_owned(),
                size: Some(123),
                etag: Some("abc".to_owned()),
            },
            event_time_ms: 1_704_067_200_000,
        }]
    );
    assert_eq!(decode_key("a%2Fb+c.dcm").unwrap(), "a/b c.dcm");
    assert_eq!(decode_key("caf%C3%A9").unwrap(), "café");
    assert_eq!(decode_key("%FF"), None);
}

#[test]
fn only_object_created_records_are_kept() {
    let value = notification(&[
        record("ObjectRemoved:Delete", "gone.dcm"),
        record("ObjectCreated:CompleteMultipartUpload", "big.dcm"),
        record("s3:ObjectCreated:Put", "minio.dcm"),
        record("ObjectRestore:Completed", "restored.dcm"),
    ]);
    let keys: Vec<String> = parse(&value).unwrap().into_iter().map(|o| o.location.key).collect();
    assert_eq!(keys, ["big.dcm", "minio.dcm"]);

    let only_delete = notification(&[record("ObjectRemoved:Delete", "gone.dcm")]);
    assert_eq!(parse(&only_delete).unwrap(), Vec::new());
    let payload = decode(EventFormat::S3Notification, &only_delete, &SchemaSet::new()).unwrap();
    assert_eq!(payload, EventPayload::ObjectsCreated(Vec::new()));
}

#[test]
fn minio_shape_and_aws_test_event() {
    let value = format!(
        r#"{{"EventName":"s3:ObjectCreated:Put","Key":"incoming/x.dcm","Records":[{}]}}"#,
        record("s3:ObjectCreated:Put", "x.dcm")
    );
    let objects = parse(value.as_bytes()).unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].location.display_key(), "incoming/x.dcm");

    let test_event = br#"{"Service":"Amazon S3","Event":"s3:TestEvent",
            "Time":"2024-01-01T00:00:00.000Z","Bucket":"incoming"}"#;
    assert_eq!(parse(test_event).unwrap(), Vec::new());
    let err = parse(br#"{"Service":"Amazon S3"}"#).unwrap_err();
    assert!(err.to_string().contains("`Records`"), "{err}");
}

#[test]
fn missing_or_bad_event_time_names_the_field() {
    let value =
        notification(&[record("ObjectCreated:Put", "k.dcm").replace(r#""eventTime":"2024-01-01T00:00:00.000Z","#, "")]);
    let err = parse(&value).unwrap_err();
    assert!(matches!(err, DecodeError::S3Notification(_)), "{err:?}");
    assert!(err.to_string().contains("record 0: `eventTime` is missing"), "{err}");

    let value = notification(&[
        record("ObjectCreated:Put", "ok.dcm"),
        record("ObjectCreated:Put", "k.dcm").replace("2024-01-01T00:00:00.000Z", "yesterday"),
    ]);
    let err = parse(&value).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("record 1: `eventTime`"), "{text}");
    assert!(!text.contains("yesterday"), "{text}");
}

#[test]
fn missing_key_and_empty_bucket() {
    let value = notification(&[record("ObjectCreated:Put", "k.dcm").replace(r#""key":"k.dcm","#, "")]);
    let err = parse(&value).unwrap_err();
    assert!(err.to_string().contains("`s3.object.key` is missing"), "{err}");

    let value = notification(&[record("ObjectCreated:Put", "k.dcm").replace(r#""name":"incoming""#, r#""name":"""#)]);
    let err = decode(EventFormat::S3Notification, &value, &SchemaSet::new()).unwrap_err();
    assert!(matches!(err, DecodeError::InvalidField { field: "object.bucket", .. }), "{err:?}");
}

#[test]
fn json_errors_do_not_quote_values() {
    let value = br#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"object":{"size":"DOE^JOHN"}}}]}"#;
    let err = parse(value).unwrap_err();
    assert!(matches!(err, DecodeError::Json { document: "S3 event notification", category: "data", .. }), "{err:?}");
    assert!(!err.to_string().contains("DOE^JOHN"), "{err}");
}

#[test]
fn event_time_parses_to_epoch_millis() {
    let cases = [
        ("1970-01-01T00:00:00Z", 0),
        ("2024-01-01T00:00:00.000Z", 1_704_067_200_000),
        ("2024-01-01T00:00:00Z", 1_704_067_200_000),
        // `date -u -d '2024-02-29T12:34:56.789+02:00' +%s%3N`
        ("2024-02-29T12:34:56.789+02:00", 1_709_202_896_789),
        ("2024-02-29t10:34:56.789123456z", 1_709_202_896_789),
        ("2024-02-29T05:04:56.7-05:30", 1_709_202_896_700),
        ("2000-03-01T00:00:00Z", 951_868_800_000),
        ("1969-12-31T23:59:59.500Z", -500),
        ("2100-03-01T00:00:00Z", 4_107_542_400_000),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_rfc3339_ms(text), Some(expected), "{text}");
    }
    for bad in [
        "",
        "2024-01-01",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z",
        "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:00+0200",
        "2024-01-01T00:00:00Zjunk",
        "2024/01/01T00:00:00Z",
        "+024-01-01T00:00:00Z",
    ] {
        assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
    }
}

#[test]
fn days_from_civil_agrees_with_day_by_day_counting() {
    let mut days = 0;
    for year in 1970..2101 {
        for month in 1..=12 {
            for day in 1..=days_in_month(year, month) {
                assert_eq!(days_from_civil(year, month, day), days, "{year}-{month}-{day}");
                days += 1;
            }
        }
    }
}
