use super::*;

#[test]
fn dates_round_trip() {
    for days in [-1000, 0, 1, 59, 365, 11_016, 18_628, 20_000] {
        assert_eq!(Date::from_days(days).to_days(), days);
    }
    let leap = Date { year: 2024, month: 2, day: 29 };
    assert_eq!(Date::from_days(leap.to_days()), leap);
    assert_eq!(leap.to_da(), "20240229");
    let birth = Date { year: 1980, month: 3, day: 1 };
    assert_eq!(leap.years_since(birth), 43);
}

#[test]
fn patients_repeat_across_cr_and_mr_studies() {
    let patients: Vec<usize> = (0..7).map(Patient::index_for_study).collect();
    assert_eq!(patients, [0, 1, 1, 2, 3, 3, 4]);
}
