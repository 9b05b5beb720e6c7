use super::*;

fn opts(studies: usize, stat_share: f64, max: usize) -> LoadgenOptions {
    LoadgenOptions {
        studies,
        rate: 100.0,
        stat_share,
        max_series_instances: max,
        seed: 7,
        instance_bytes: None,
        bucket: "b".into(),
        prefix: "p".into(),
        concurrency: 4,
    }
}

#[test]
fn series_sizes_and_priorities_follow_the_options() {
    let studies = plan(&opts(400, 0.25, 500)).unwrap();
    let sizes: Vec<usize> = studies.iter().filter_map(|s| s.instances_per_series).collect();
    assert!(sizes.iter().all(|&n| (1..=500).contains(&n)));
    assert!(sizes.iter().any(|&n| n > 200) && sizes.iter().any(|&n| n < 20), "the mix has long and short series");
    let stat = studies.iter().filter(|s| s.priority == Priority::Stat).count();
    assert!((60..=140).contains(&stat), "{stat} of 400 STAT for a share of 0.25");
    assert_eq!(plan(&opts(400, 0.25, 500)).unwrap(), studies, "the seed decides");
    assert!(plan(&opts(50, 0.0, 8))
        .unwrap()
        .iter()
        .all(|s| s.priority == Priority::Routine && s.instances_per_series.is_none_or(|n| n <= 8)));
}

#[test]
fn bad_options_are_refused() {
    for bad in [
        LoadgenOptions { rate: 0.0, ..opts(1, 0.1, 10) },
        LoadgenOptions { rate: f64::NAN, ..opts(1, 0.1, 10) },
        LoadgenOptions { stat_share: 1.5, ..opts(1, 0.1, 10) },
        LoadgenOptions { max_series_instances: 0, ..opts(1, 0.1, 10) },
        opts(0, 0.1, 10),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
    assert!(opts(3, 0.1, 10).validate().is_ok());
}
