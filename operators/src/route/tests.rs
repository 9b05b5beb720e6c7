use super::*;

fn config(toml_rules: &str) -> RouteConfig {
    let parsed: RouteConfig = serde_json::from_str(toml_rules).unwrap();
    parsed.validate().unwrap();
    parsed
}

fn attrs(modality: &str, body: Option<&str>, desc: Option<&str>) -> RouteAttributes {
    RouteAttributes {
        modality: Some(modality.into()),
        body_part: body.map(Into::into),
        sop_class: Some("1.2.840.10008.5.1.4.1.1.2".into()),
        series_description: desc.map(Into::into),
        source: Some("CT_SCANNER_1".into()),
    }
}

#[test]
fn first_matching_rule_wins_and_default_drops() {
    let router = config(
            r#"{"rules": [
                {"name": "no-scouts", "modality": ["CT"], "series_description": "(?i)scout|localizer", "action": "drop"},
                {"name": "head-ct", "modality": ["ct"], "body_part": ["HEAD", "BRAIN"], "branch": "head-ct-bleed"},
                {"name": "any-ct", "modality": ["CT"], "branch": "ct-generic"}
            ]}"#,
        )
        .build()
        .unwrap();

    let d = router.decide(&attrs("CT", Some("HEAD"), Some("Axial 5mm")));
    assert_eq!(d.rule.as_deref(), Some("head-ct"));
    assert_eq!(d.branch.as_deref(), Some("head-ct-bleed"));

    let d = router.decide(&attrs("CT", Some("HEAD"), Some("SCOUT")));
    assert_eq!((d.rule.as_deref(), d.action), (Some("no-scouts"), RouteAction::Drop));

    let d = router.decide(&attrs("CT", None, None));
    assert_eq!(d.rule.as_deref(), Some("any-ct"), "a missing body part must not match a body-part rule");

    let d = router.decide(&attrs("MR", Some("HEAD"), None));
    assert_eq!((d.rule, d.action), (None, RouteAction::Drop));
}

#[test]
fn source_and_sop_class_conditions() {
    let router = config(
        r#"{"rules": [{"name": "sc", "sop_class": ["1.2.840.10008.5.1.4.1.1.7"], "action": "drop"},
                          {"name": "from-site-a", "source": ["ct_scanner_1"], "branch": "site-a"}],
                "default_action": "forward", "default_branch": "everything"}"#,
    )
    .build()
    .unwrap();
    assert_eq!(router.decide(&attrs("CT", None, None)).branch.as_deref(), Some("site-a"));
    let mut other = attrs("CT", None, None);
    other.source = Some("OTHER".into());
    let d = router.decide(&other);
    assert_eq!((d.rule, d.branch.as_deref()), (None, Some("everything")));
    other.sop_class = Some("1.2.840.10008.5.1.4.1.1.7".into());
    assert_eq!(router.decide(&other).action, RouteAction::Drop);
}

#[test]
fn validation_names_the_key() {
    let bad: RouteConfig = serde_json::from_str(r#"{"rules": [{"name": "x", "modality": ["CT"]}]}"#).unwrap();
    assert_eq!(bad.validate().unwrap_err().key, "rules[0].branch");
    let bad: RouteConfig =
        serde_json::from_str(r#"{"rules": [{"name": "x", "series_description": "(", "branch": "b"}]}"#).unwrap();
    assert_eq!(bad.validate().unwrap_err().key, "rules[0].series_description");
    let bad: RouteConfig = serde_json::from_str(r#"{"default_action": "forward"}"#).unwrap();
    assert_eq!(bad.validate().unwrap_err().key, "default_branch");
    assert!(serde_json::from_str::<RouteConfig>(r#"{"rulez": []}"#).is_err(), "unknown keys are rejected");
}

#[test]
fn a_model_goes_with_forwarding_only() {
    let key = |json: &str| serde_json::from_str::<RouteConfig>(json).unwrap().validate().unwrap_err().key;
    assert_eq!(key(r#"{"rules": [{"name": "x", "action": "drop", "model": "ct-head-bleed"}]}"#), "rules[0].model");
    assert_eq!(key(r#"{"rules": [{"name": "x", "model": " "}]}"#), "rules[0].model");
    assert_eq!(key(r#"{"default_action": "drop", "default_model": "ct-head-bleed"}"#), "default_model");
    let ok: RouteConfig = serde_json::from_str(
        r#"{"rules": [{"name": "x", "model": "ct-head-bleed"}],
                "default_action": "forward", "default_model": "cxr"}"#,
    )
    .unwrap();
    ok.validate().expect("a model alone is enough for a forwarding rule and for the default");
}

#[test]
fn the_decision_carries_the_model_and_the_branch_defaults_to_it() {
    let router = config(
        r#"{"rules": [
                {"name": "head-ct", "modality": ["CT"], "body_part": ["HEAD"], "model": "ct-head-bleed"},
                {"name": "chest-ct", "modality": ["CT"], "branch": "chest", "model": "ct-chest"},
                {"name": "mr", "modality": ["MR"], "branch": "archive"}
            ], "default_action": "forward", "default_model": "cxr"}"#,
    )
    .build()
    .unwrap();
    let d = router.decide(&attrs("CT", Some("HEAD"), None));
    assert_eq!((d.branch.as_deref(), d.model.as_deref()), (Some("ct-head-bleed"), Some("ct-head-bleed")));
    let d = router.decide(&attrs("CT", Some("CHEST"), None));
    assert_eq!((d.branch.as_deref(), d.model.as_deref()), (Some("chest"), Some("ct-chest")));
    let d = router.decide(&attrs("MR", None, None));
    assert_eq!((d.branch.as_deref(), d.model), (Some("archive"), None), "a rule without a model sets none");
    let d = router.decide(&attrs("CR", None, None));
    assert_eq!((d.rule, d.branch.as_deref(), d.model.as_deref()), (None, Some("cxr"), Some("cxr")));
}

#[test]
fn models_lists_each_named_model_once() {
    let c = config(
        r#"{"rules": [{"name": "a", "model": "ct-head-bleed"}, {"name": "b", "branch": "x"},
                          {"name": "c", "branch": "y", "model": "ct-head-bleed"}],
                "default_action": "forward", "default_model": "cxr"}"#,
    );
    assert_eq!(c.models(), ["ct-head-bleed", "cxr"]);
}

fn ct_envelope() -> Envelope {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::uids;
    use dicom_object::FileMetaTableBuilder;
    let element = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let header = InMemDicomObject::from_element_iter([
        element(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        element(tags::SOP_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.10"),
        element(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.1"),
        element(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.2"),
        element(tags::MODALITY, VR::CS, "CT"),
    ])
    .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
    .unwrap();
    let mut object = Vec::new();
    header.write_all(&mut object).unwrap();
    let location =
        radstream_schemas::ObjectLocation { bucket: "dicom".into(), key: "ct.dcm".into(), size: None, etag: None };
    Envelope::from_part10(1, location, bytes::Bytes::from(object)).unwrap()
}

#[tokio::test]
async fn the_operator_sets_the_envelope_model() {
    let mut router =
        config(r#"{"rules": [{"name": "ct", "modality": ["CT"], "model": "ct-head-bleed"}]}"#).build().unwrap();
    let envelope = ct_envelope();
    let out = router.process_batch(vec![envelope]).await;
    assert!(matches!(out[0].outcome, Outcome::Forward));
    assert_eq!(out[0].envelope.model.as_deref(), Some("ct-head-bleed"));
    assert_eq!(out[0].envelope.branch.as_deref(), Some("ct-head-bleed"));
}
