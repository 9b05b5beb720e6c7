use std::ffi::OsStr;

use radstream_operators::pseudonymize::ProfileOption;

use super::*;

#[test]
fn safe_private_values_split_from_the_right() {
    let rule = |creator: &str, group: Option<&str>, element: &str| SafePrivateRule {
        creator: creator.into(),
        group: group.map(String::from),
        element: element.into(),
    };
    assert_eq!(parse_safe_private("GEMS_ACQU_01:0019:23").unwrap(), rule("GEMS_ACQU_01", Some("0019"), "23"));
    assert_eq!(parse_safe_private("GEMS_ACQU_01:23").unwrap(), rule("GEMS_ACQU_01", None, "23"));
    assert_eq!(
        parse_safe_private("SIEMENS CT VA0  COAD :0019:a0").unwrap(),
        rule("SIEMENS CT VA0  COAD", Some("0019"), "a0")
    );
    assert_eq!(parse_safe_private("ACME:CT 1.0:0029:10").unwrap(), rule("ACME:CT 1.0", Some("0029"), "10"));
    assert_eq!(parse_safe_private("ACME:CT:10").unwrap(), rule("ACME:CT", None, "10"));
    for (value, says) in [
        ("GEMS", "expected CREATOR"),
        ("GEMS:1023", "two hex digits"),
        ("GEMS:+1", "two hex digits"),
        ("GEMS:0019:", "two hex digits"),
        ("GEMS:19:23", "four hex digits"),
        ("GEMS:0018:23", "odd"),
        ("GEMS:0007:23", "odd"),
        (":0019:23", "empty"),
        ("  :23", "empty"),
    ] {
        let e = parse_safe_private(value).unwrap_err();
        assert!(e.contains(says), "{value}: {e}");
        assert!(!e.contains("safe_private["), "{value}: speaks config-file: {e}");
    }
}

#[test]
fn option_names_parse_with_dashes_or_underscores() {
    let cmd = clap::Command::new("t");
    for o in ProfileOption::ALL {
        assert_eq!(ProfileOptionParser.parse_ref(&cmd, None, OsStr::new(o.name())).unwrap(), o);
        let underscored = o.name().replace('-', "_");
        assert_eq!(ProfileOptionParser.parse_ref(&cmd, None, OsStr::new(&underscored)).unwrap(), o);
    }
    assert!(ProfileOptionParser.parse_ref(&cmd, None, OsStr::new("retain-everything")).is_err());
}
