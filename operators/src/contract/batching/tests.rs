use super::*;

#[derive(Debug, PartialEq)]
struct Item {
    id: u32,
    stat: bool,
    at: Instant,
}

impl Queued for Item {
    fn queued_at(&self) -> Instant {
        self.at
    }
    fn urgent(&self) -> bool {
        self.stat
    }
}

fn policy(max_items: usize, ms: u64) -> Batching {
    Batching::new(max_items, Duration::from_millis(ms)).looking_ahead(4)
}

#[test]
fn stat_items_go_first_and_the_rest_keep_their_order() {
    let now = Instant::now();
    let mut g = Gatherer::new(policy(3, 5));
    for (id, stat) in [(1, false), (2, false), (3, true), (4, false), (5, true)] {
        g.push(Item { id, stat, at: now });
    }
    let ids = |batch: Vec<Item>| batch.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(g.take()), [3, 5, 1]);
    assert_eq!(ids(g.take()), [2, 4]);
    assert!(g.is_empty());
    assert_eq!(g.due(), None);
}

// On tokio's paused clock (`start_paused`): time moves only when every task waits on a timer,
// and then straight to the next deadline, so the waits below are exact, and a busy machine
// cannot make a batch look late or early. `gather` keeps time with `tokio::time::Instant`.
#[tokio::test(start_paused = true)]
async fn gather_hands_over_a_full_batch_at_once_a_partial_one_after_max_delay_and_then_closes() {
    let (tx, mut rx) = mpsc::channel(16);
    let mut g = Gatherer::new(policy(2, 30));
    let mut closed = false;
    for id in 0..3 {
        tx.send(Item { id, stat: false, at: Instant::now() }).await.unwrap();
    }
    let started = Instant::now();
    assert_eq!(gather(&mut g, &mut rx, None, &mut closed).await, Step::Batch);
    assert_eq!(g.take().len(), 2);
    assert_eq!(started.elapsed(), Duration::ZERO, "a full batch does not wait");
    // One left: due when it has waited 30 ms, not sooner.
    assert_eq!(gather(&mut g, &mut rx, None, &mut closed).await, Step::Batch);
    assert_eq!(started.elapsed(), Duration::from_millis(30));
    assert_eq!(g.take().len(), 1);
    // A wake time before anything is due (the wake time is a std Instant: the paused clock's).
    let asleep = Instant::now();
    let wake = (asleep + Duration::from_millis(5)).into_std();
    assert_eq!(gather(&mut g, &mut rx, Some(wake), &mut closed).await, Step::Wake);
    assert_eq!(asleep.elapsed(), Duration::from_millis(5));
    drop(tx);
    assert_eq!(gather(&mut g, &mut rx, None, &mut closed).await, Step::Closed);
    assert!(closed);
}

#[test]
fn a_batch_is_due_when_full_or_when_its_oldest_item_has_waited_max_delay() {
    let start = Instant::now();
    let mut g = Gatherer::new(policy(3, 5));
    g.push(Item { id: 1, stat: false, at: start });
    g.push(Item { id: 2, stat: true, at: start + Duration::from_millis(2) });
    // Not full: due when the oldest (the routine one, queued first) has waited 5 ms.
    assert_eq!(g.due(), Some(start + Duration::from_millis(5)));
    g.push(Item { id: 3, stat: false, at: start + Duration::from_millis(3) });
    // Full: due now.
    assert!(g.due().unwrap() <= Instant::now());
    assert_eq!(g.policy().look_ahead(), 12);
    assert!(g.wants_more());
}
