use super::*;
use crate::test_support::header_only_part10;

#[tokio::test]
async fn the_label_becomes_the_branch_only_where_there_is_none() {
    let location =
        |key: &str| radstream_schemas::ObjectLocation { bucket: "b".into(), key: key.into(), size: None, etag: None };
    let mut routed = Envelope::from_part10(1, location("a"), header_only_part10("1.2.3.4.1", "CT")).unwrap();
    routed.branch = Some("chosen".into());
    let unrouted = Envelope::from_part10(2, location("b"), header_only_part10("1.2.3.4.2", "CT")).unwrap();
    let mut tag = Tag { label: "example".into() };
    let out = tag.process_batch(vec![routed, unrouted]).await;
    let branches: Vec<_> = out.iter().map(|p| p.envelope.branch.as_deref()).collect();
    assert_eq!(branches, [Some("chosen"), Some("example")]);
}
