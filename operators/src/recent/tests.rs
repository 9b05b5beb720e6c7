use super::*;

#[test]
fn keeps_the_newest_keys_up_to_its_capacity() {
    let set = RecentSet::new(2);
    set.insert("a");
    set.insert("b");
    set.insert("a");
    assert!(set.contains("a") && set.contains("b"));
    set.insert("c");
    assert!(!set.contains("a"), "the oldest key goes first");
    assert!(set.contains("b") && set.contains("c"));
}
