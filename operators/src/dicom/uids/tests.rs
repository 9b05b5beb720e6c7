use super::*;

#[test]
fn derived_uids_are_valid_and_stable() {
    let uid = uid_of_fields(&["a", "b"]);
    assert!(uid.starts_with("2.25.") && uid.len() <= 44 && !uid[5..].starts_with('0'));
    assert_eq!(uid, uid_of_fields(&["a", "b"]));
    // Length prefixes: moving a character between fields changes the UID.
    assert_ne!(uid_of_fields(&["ab", ""]), uid_of_fields(&["a", "b"]));
    assert_eq!(uid_from_digest(&[0u8; 32]), "2.25.0");
    assert_ne!(uid_of_domain("d", "1.2"), uid_of_domain("e", "1.2"));
}
