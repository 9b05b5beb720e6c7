//! The chaos run, small, in CI (`radstream_tests::chaos`): 300 events through two workers while
//! the PACS answers 5% of STOW requests with 503 and lets 1% time out, is down for 10 s, a
//! worker is killed with SIGKILL, and 1% of the objects are corrupt. Every event must end in
//! exactly one place: in the PACS, or in the dead-letter topic; re-sends, counted at the proxy in
//! front of the PACS, only where at-least-once delivery allows them (after the SIGKILL, or after
//! a STOW whose answer the sink stopped waiting for). (The broker restart of the
//! full run, `src/bin/chaos.rs`, is left out here: other tests share the broker.)

use std::time::Duration;

use anyhow::{ensure, Result};
use radstream_tests::chaos::{self, ChaosOptions};
use radstream_tests::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_accounted_for_through_pacs_faults_an_outage_a_killed_worker_and_corrupt_objects() -> Result<()>
{
    let Some(stack) = Stack::get() else { return Ok(()) };
    let opts = ChaosOptions {
        events: 300,
        errors: 0.05,
        timeouts: 0.01,
        pacs_down: Duration::from_secs(10),
        restart_broker: false,
        deadline: Duration::from_secs(300),
    };
    let report = chaos::run(&stack, &opts).await?;
    eprintln!("{}\n{}", report.timeline.join("\n"), report.table());
    ensure!(report.all_accounted() && report.events == 300, "{}", report.table());
    ensure!(report.rows.get("dead letter: malformed_dicom") == Some(&3), "the 3 corrupt objects: {}", report.table());
    ensure!(report.proxy.injected_errors > 0, "the proxy injected no 503: {}", report.table());
    Ok(())
}
