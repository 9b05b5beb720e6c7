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
    classify_response(StatusCode::from_u16(status).unwrap(), body.to_string().as_bytes(), UID, false)
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

/// The reason of a verdict that must be `Transient`.
fn transient_reason(verdict: Verdict) -> String {
    match verdict {
        Verdict::Transient(reason) => reason,
        other => panic!("expected Transient, got {other:?}"),
    }
}

#[test]
fn a_2xx_that_does_not_name_the_instance_is_not_delivered() {
    // A proxy, web application firewall or SSO page answering 200 is not the PACS saying yes.
    let cases: [(u16, &[u8], &str); 7] = [
        (200, b"", "HTTP 200 OK with an empty body"),
        (204, b"  \r\n", "HTTP 204 No Content with an empty body"),
        (
            200,
            b"<!DOCTYPE html><html><body>Sign in: Jane Doe</body></html>",
            "HTTP 200 OK with an HTML or XML body (not a STOW-RS response)",
        ),
        (200, b"Welcome, Jane Doe", "HTTP 200 OK with a body that is not JSON (not a STOW-RS response)"),
        (200, b"{}", "HTTP 200 OK with a JSON response that does not list this instance in ReferencedSOPSequence"),
        (202, b"[]", "HTTP 202 Accepted with a JSON body that is not a DICOM JSON data set (not a STOW-RS response)"),
        (
            200,
            b"{\"status\": \"ok\", \"user\": \"Jane Doe\"}",
            "HTTP 200 OK with a JSON response that does not list this instance in ReferencedSOPSequence",
        ),
    ];
    for (status, body, expected) in cases {
        let reason = transient_reason(classify_response(StatusCode::from_u16(status).unwrap(), body, UID, false));
        assert_eq!(reason, expected, "{:?}", String::from_utf8_lossy(body));
        assert!(!reason.contains("Jane") && !reason.contains("Sign in"), "a reason never quotes the body: {reason}");
    }
    let reason = transient_reason(classify(200, &referenced("9.9", None)));
    assert_eq!(reason, "HTTP 200 OK with a JSON response that does not list this instance in ReferencedSOPSequence");
}

#[test]
fn with_the_opt_in_only_an_empty_2xx_counts_as_stored() {
    let opted_in = |status: u16, body: &[u8]| classify_response(StatusCode::from_u16(status).unwrap(), body, UID, true);
    assert_eq!(
        opted_in(200, b""),
        Verdict::AssumedStored(
            "HTTP 200 OK with an empty body, counted as stored (`assume_stored_without_body`)".into()
        )
    );
    assert!(matches!(opted_in(204, b"\n"), Verdict::AssumedStored(n) if n.starts_with("HTTP 204 No Content")));
    // A page or unrelated JSON is not "no body": still not delivered.
    assert!(matches!(opted_in(200, b"<html>Sign in</html>"), Verdict::Transient(r) if r.contains("HTML")));
    assert!(matches!(opted_in(200, b"{}"), Verdict::Transient(r) if r.contains("does not list this instance")));
    assert!(matches!(opted_in(409, b""), Verdict::Rejected(r) if r == "HTTP 409 Conflict with an empty body"));
    // A response that names the instance decides as without the opt-in.
    let body = referenced(UID, None).to_string();
    assert_eq!(opted_in(200, body.as_bytes()), Verdict::Stored);
    let body = failed(Some(UID), Some(0xA900)).to_string();
    assert!(matches!(opted_in(200, body.as_bytes()), Verdict::Rejected(_)));
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
