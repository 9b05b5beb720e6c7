//! Hashing object keys is process-wide, so it is tested in a process of its own.

use radstream_schemas::object_names::{hash_object_keys, object_keys_hashed, KeyHashError};
use radstream_schemas::ObjectLocation;

#[test]
fn once_set_every_display_key_of_the_process_is_hashed() {
    let location =
        ObjectLocation { bucket: "dicom-in".into(), key: "studies/MRN12345/1.dcm".into(), size: None, etag: None };
    assert_eq!(location.display_key(), "dicom-in/studies/MRN12345/1.dcm");
    assert_eq!(hash_object_keys(b"short"), Err(KeyHashError::TooShort(5)));
    assert!(!object_keys_hashed());
    let secret = b"0123456789abcdef0123456789abcdef";
    hash_object_keys(secret).unwrap();
    hash_object_keys(secret).unwrap();
    assert_eq!(hash_object_keys(b"a different secret of many bytes"), Err(KeyHashError::AlreadySet));
    let shown = location.display_key();
    assert!(shown.starts_with("dicom-in/hmac-") && shown.len() == "dicom-in/hmac-".len() + 32, "{shown}");
    assert!(!shown.contains("MRN12345"));
}
