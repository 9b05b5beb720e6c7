use super::*;

const TEXT: &str = "id = \"k1\"\nsecret = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n";

#[test]
fn parses_hex_and_keeps_the_secret_out_of_debug() {
    let k = DeidKey::parse(TEXT, "test").unwrap();
    assert_eq!(k.id(), "k1");
    assert!(!format!("{k:?}").contains("0001020304"));
}

#[test]
fn rejects_short_secrets_and_unknown_fields() {
    assert!(DeidKey::parse("id = \"k\"\nsecret = \"abcd\"", "t").unwrap_err().problem.contains("32 bytes"));
    assert!(DeidKey::parse("id = \"k\"\nsecret = \"abcd\"\nx = \"1\"", "t").unwrap_err().problem.contains("unknown"));
    assert!(DeidKey::parse("secret = \"abcd\"", "t").unwrap_err().problem.contains("missing `id`"));
}

#[test]
fn mac_depends_on_key_and_framing() {
    let a = DeidKey::parse(TEXT, "t").unwrap();
    let b = DeidKey::new("k2", vec![7; 32]).unwrap();
    assert_ne!(a.mac(&[b"1.2.3"]), b.mac(&[b"1.2.3"]));
    assert_ne!(a.mac(&[b"ab", b"c"]), a.mac(&[b"a", b"bc"]));
    assert_eq!(a.mac(&[b"1.2.3"]), a.mac(&[b"1.2.3"]));
}

#[test]
fn generated_files_parse() {
    let text = DeidKey::generate_file_text("2026-11");
    let k = DeidKey::parse(&text, "generated").unwrap();
    assert_eq!(k.id(), "2026-11");
}
