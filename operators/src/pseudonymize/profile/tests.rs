use super::*;

#[test]
fn the_generated_table_parses_whole() {
    let t = ProfileTable::standard();
    assert!(t.len() > 600, "{}", t.len());
    let accession = t.row(0x0008_0050).unwrap();
    assert_eq!((accession.name.as_str(), accession.basic), ("Accession Number", BasicAction::Z));
    assert_eq!(t.row(0x0020_000D).unwrap().basic, BasicAction::U);
    assert_eq!(t.row(0x6002_3000).unwrap().name, "Overlay Data");
    assert_eq!(t.row(0x5010_0020).unwrap().name, "Curve Data");
    assert!(t.row(0x0028_0010).is_none(), "Rows is not in the table: kept");
    assert_eq!(t.private_row().options[0], OptionAction::C);
    let date = t.row(0x0008_0022).unwrap();
    assert_eq!(date.options[column(ProfileOption::RetainLongitudinalModifiedDates)], OptionAction::C);
}

#[test]
fn option_names_round_trip() {
    for o in ProfileOption::ALL {
        assert_eq!(ProfileOption::from_name(o.name()), Some(o));
    }
    assert_eq!(ProfileOption::from_name("retain_uids"), Some(ProfileOption::RetainUids));
    assert_eq!(ProfileOption::from_name("retain-everything"), None);
}

#[test]
fn safe_private_rules_are_checked() {
    let mut o = ProfileOptions { retain_safe_private: true, ..Default::default() };
    assert!(o.validate().unwrap_err().contains("empty"));
    o.safe_private.push(SafePrivateRule { creator: "X".into(), group: Some("0010".into()), element: "10".into() });
    assert!(o.validate().unwrap_err().contains("odd"));
    o.safe_private[0].group = Some("0019".into());
    o.validate().unwrap();
}
