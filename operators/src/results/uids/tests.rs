use super::*;

fn model(version: &str) -> ModelIdentity {
    ModelIdentity { name: "ct-head-bleed".into(), version: version.into(), sha256: "ab".repeat(32) }
}

#[test]
fn uids_are_deterministic_valid_and_distinct() {
    let m = model("1.0.0");
    let a = result_uid(UidRole::Instance, ObjectKind::Sr, "1.2.3", &m);
    assert_eq!(a, result_uid(UidRole::Instance, ObjectKind::Sr, "1.2.3", &m));
    assert!(a.len() <= 64 && a.starts_with("2.25."));
    let digits = &a["2.25.".len()..];
    assert!(digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'), "{a}");
    let others = [
        result_uid(UidRole::Series, ObjectKind::Sr, "1.2.3", &m),
        result_uid(UidRole::Instance, ObjectKind::Sr, "1.2.4", &m),
        result_uid(UidRole::Instance, ObjectKind::Sr, "1.2.3", &model("1.0.1")),
        device_observer_uid(&m),
        tracking_uid("1.2.3", 0, &m),
    ];
    for other in &others {
        assert_ne!(&a, other);
    }
    assert_ne!(device_observer_uid(&m), device_observer_uid(&model("2")));
    // Length prefixes: moving a character between fields changes the UID.
    assert_ne!(uid_of(&["ab", "c"]), uid_of(&["a", "bc"]));
}
