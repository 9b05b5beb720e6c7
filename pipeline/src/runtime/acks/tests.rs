use super::*;

fn read(t: &mut AckTracker, p: i32, o: i64) -> MessageRef {
    t.track(p, o, Bytes::from_static(b"v"), None).unwrap()
}

#[test]
fn commits_only_past_the_lowest_pending_offset() {
    let mut t = AckTracker::default();
    t.assign(0);
    let m: Vec<_> = (10..15).map(|o| read(&mut t, 0, o)).collect();
    assert_eq!(t.finish(&m[2]), AckResult::Pending, "12 done but 10 and 11 are not");
    assert_eq!(t.finish(&m[1]), AckResult::Pending);
    assert_eq!(t.finish(&m[0]), AckResult::Commit { partition: 0, offset: 13 }, "10..=12 done: next is 13");
    assert_eq!(t.finish(&m[4]), AckResult::Pending);
    assert_eq!(t.finish(&m[3]), AckResult::Commit { partition: 0, offset: 15 });
}

#[test]
fn partitions_are_independent() {
    let mut t = AckTracker::default();
    t.assign(0);
    t.assign(1);
    let a = read(&mut t, 0, 0);
    let b = read(&mut t, 1, 7);
    assert_eq!(t.finish(&b), AckResult::Commit { partition: 1, offset: 8 });
    assert_eq!(t.finish(&a), AckResult::Commit { partition: 0, offset: 1 });
}

#[test]
fn a_message_with_several_outputs_waits_for_all() {
    let mut t = AckTracker::default();
    t.assign(3);
    let m = read(&mut t, 3, 100);
    assert_eq!(t.set_outputs(&m, 3), AckResult::Pending);
    assert_eq!(t.finish(&m), AckResult::Pending);
    assert_eq!(t.finish(&m), AckResult::Pending);
    assert_eq!(t.finish(&m), AckResult::Commit { partition: 3, offset: 101 });
    let empty = read(&mut t, 3, 101);
    assert_eq!(t.set_outputs(&empty, 0), AckResult::Commit { partition: 3, offset: 102 });
}

#[test]
fn revoked_work_is_never_committed() {
    let mut t = AckTracker::default();
    t.assign(0);
    let old = read(&mut t, 0, 5);
    assert_eq!(t.revoke(0), 1);
    assert!(!t.is_live(&old));
    assert_eq!(t.finish(&old), AckResult::Stale);
    assert!(t.track(0, 6, Bytes::new(), None).is_none(), "unassigned partitions are not tracked");
    t.assign(0);
    assert_eq!(t.finish(&old), AckResult::Stale, "a new assignment has a new epoch");
    let new = read(&mut t, 0, 5);
    assert_eq!(t.finish(&new), AckResult::Commit { partition: 0, offset: 6 });
}
