use super::*;

/// The known answer is Python's: `hmac.new(secret, key, hashlib.sha256).hexdigest()[:32]`.
#[test]
fn a_hashed_name_is_the_keyed_hash_of_the_key_and_keeps_no_part_of_it() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let key = "studies/MRN12345/ACC999/1.dcm";
    let name = name_with(Some(secret), "dicom-in", key);
    assert_eq!(name, "dicom-in/hmac-80c55d5d4dc1be2b19d485e61a8773f5");
    assert!(!name.contains("MRN12345") && !name.contains("ACC999"));
    assert_eq!(name_with(None, "dicom-in", key), "dicom-in/studies/MRN12345/ACC999/1.dcm");
    assert_ne!(name_with(Some(b"another secret of 32 bytes......"), "dicom-in", key), name);
}
