use super::*;

const UID: &str = "1.2.826.0.1.3680043.8.498.1";

fn referenced(uid: &str, warning: Option<u16>) -> Value {
    let mut item = serde_json::json!({
        "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
        "00081155": {"vr": "UI", "Value": [uid]},
        "00081190": {"vr": "UR", "Value": ["http://pacs/dicom-web/studies/1/series/2/instances/3"]}
    });
    if let Some(w) = warning {
        item["00081196"] = serde_json::json!({"vr": "US", "Value": [w]});
    }
    serde_json::json!({"00081199": {"vr": "SQ", "Value": [item]}})
}

fn failed(uid: Option<&str>, reason: Option<u16>) -> Value {
    let mut item = serde_json::json!({"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]}});
    if let Some(uid) = uid {
        item["00081155"] = serde_json::json!({"vr": "UI", "Value": [uid]});
    }
    if let Some(r) = reason {
        item["00081197"] = serde_json::json!({"vr": "US", "Value": [r]});
    }
    serde_json::json!({"00081198": {"vr": "SQ", "Value": [item]}})
}

fn classify(status: u16, body: &Value) -> Verdict {
    classify_response(StatusCode::from_u16(status).unwrap(), body.to_string().as_bytes(), UID)
}

#[test]
fn parses_an_orthanc_style_response() {
    let body = referenced(UID, None);
    let parsed = parse_stow_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.referenced, vec![ReferencedSop { sop_instance_uid: Some(UID.into()), warning_reason: None }]);
    assert!(parsed.failed.is_empty());
    assert_eq!(parsed.result_for(UID), InstanceResult::Stored { warning_reason: None });
    assert_eq!(parsed.result_for("9.9"), InstanceResult::NotMentioned);
}

#[test]
fn accepts_an_array_of_one_data_set() {
    let body = Value::Array(vec![failed(Some(UID), Some(0xC000))]);
    let parsed = parse_stow_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.result_for(UID), InstanceResult::Failed { failure_reason: Some(0xC000) });
}

#[test]
fn tolerates_reasons_as_strings_and_missing_values() {
    let body = serde_json::json!({
        "00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": [UID]}, "00081197": {"vr": "US", "Value": ["272"]}}]},
        "00081199": {"vr": "SQ"}
    });
    let parsed = parse_stow_response(body.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.result_for(UID), InstanceResult::Failed { failure_reason: Some(0x0110) });
    assert!(parsed.referenced.is_empty());
}

#[test]
fn unreadable_bodies_are_none() {
    for body in [&b""[..], b"not json", b"[]", b"[1]", b"\"text\"", b"<html></html>"] {
        assert_eq!(parse_stow_response(body), None, "{:?}", String::from_utf8_lossy(body));
    }
    assert_eq!(parse_stow_response(b"{}"), Some(StowResponse::default()));
}

#[test]
fn an_anonymous_item_is_about_the_one_instance_sent() {
    let parsed = parse_stow_response(failed(None, Some(0xA900)).to_string().as_bytes()).unwrap();
    assert_eq!(parsed.result_for(UID), InstanceResult::Failed { failure_reason: Some(0xA900) });
}

#[test]
fn status_and_body_decide_the_verdict() {
    assert_eq!(classify(200, &referenced(UID, None)), Verdict::Stored);
    assert!(
        matches!(classify(202, &referenced(UID, Some(0xB000))), Verdict::StoredWithNote(n) if n.contains("0xB000"))
    );
    assert!(
        matches!(classify(409, &failed(Some(UID), Some(0x0111))), Verdict::StoredWithNote(n) if n.contains("0x0111"))
    );
    assert!(matches!(classify(200, &failed(Some(UID), Some(0x0111))), Verdict::StoredWithNote(_)));
    assert!(
        matches!(classify(409, &failed(Some(UID), Some(0xA700))), Verdict::Transient(r) if r.contains("0xA700") && r.contains("out of resources"))
    );
    assert!(
        matches!(classify(409, &failed(Some(UID), Some(0x0110))), Verdict::Transient(r) if r.contains("processing failure"))
    );
    assert!(
        matches!(classify(409, &failed(Some(UID), Some(0xA900))), Verdict::Rejected(r) if r.contains("0xA900") && r.contains("does not match SOP class"))
    );
    assert!(
        matches!(classify(409, &failed(Some(UID), Some(0xC000))), Verdict::Rejected(r) if r.contains("0xC000") && r.contains("cannot understand"))
    );
    assert!(
        matches!(classify(202, &failed(Some(UID), Some(0x0122))), Verdict::Rejected(r) if r.contains("0x0122") && r.contains("SOP class not supported"))
    );
    assert!(matches!(classify(409, &failed(Some(UID), None)), Verdict::Rejected(_)));
    assert!(matches!(classify(409, &Value::Null), Verdict::Rejected(_)));
    assert!(matches!(classify(409, &referenced("9.9", None)), Verdict::Rejected(_)));
}

#[test]
fn a_200_without_a_readable_body_is_stored() {
    assert!(matches!(classify_response(StatusCode::OK, b"", UID), Verdict::AssumedStored(_)));
    assert!(matches!(classify_response(StatusCode::OK, b"<html/>", UID), Verdict::AssumedStored(_)));
    assert!(matches!(classify(200, &referenced("9.9", None)), Verdict::AssumedStored(_)));
}

#[test]
fn transient_and_rejecting_statuses() {
    for status in [408, 429, 500, 502, 503, 504] {
        assert!(
            matches!(classify(status, &Value::Null), Verdict::Transient(r) if r.starts_with(&format!("HTTP {status}")))
        );
    }
    for status in [301, 400, 401, 403, 404, 413, 415, 422] {
        assert!(
            matches!(classify(status, &Value::Null), Verdict::Rejected(r) if r.starts_with(&format!("HTTP {status}")))
        );
    }
    assert!(matches!(classify(401, &Value::Null), Verdict::Rejected(r) if r.contains("auth")));
}
