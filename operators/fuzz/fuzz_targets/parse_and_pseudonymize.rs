//! Arbitrary bytes into `Deidentifier::deidentify`, under the Basic Profile alone and with every
//! option on (one Retain Safe Private rule). Errors are expected for almost every input; a panic,
//! an abort or a sanitizer report is a bug. When an input de-identifies, its contiguous output
//! must de-identify again without panicking; with `RADSTREAM_FUZZ_STRICT=1` it must also succeed
//! (the engine must be able to read what it writes).

#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use radstream_operators::pseudonymize::{DeidKey, Deidentifier, ProfileOption, ProfileOptions, SafePrivateRule};

struct Setup {
    deidentifiers: [Deidentifier; 2],
    strict: bool,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let key = DeidKey::new("fuzz", vec![0x5a; 32]).expect("a valid fixed key");
        let mut all = ProfileOptions::default();
        for option in ProfileOption::ALL {
            all.enable(option);
        }
        // A creator that the seed corpus (pydicom's CT_small.dcm) carries in group 0019.
        all.safe_private.push(SafePrivateRule {
            creator: "GEMS_ACQU_01".into(),
            group: Some("0019".into()),
            element: "10".into(),
        });
        all.validate().expect("the all-options profile is valid");
        Setup {
            deidentifiers: [Deidentifier::new(key.clone(), ProfileOptions::default()), Deidentifier::new(key, all)],
            strict: std::env::var_os("RADSTREAM_FUZZ_STRICT").is_some_and(|v| v == "1"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let input = Bytes::copy_from_slice(data);
    for deid in &setup.deidentifiers {
        let Ok(out) = deid.deidentify(&input) else { continue };
        let bytes = out.to_bytes();
        assert_eq!(bytes.len(), out.len(), "to_bytes() has the length of the parts");
        let again = deid.deidentify(&bytes);
        if setup.strict {
            if let Err(e) = again {
                panic!("the engine cannot read its own output: {e}");
            }
        }
    }
});
