//! The chaos run by hand (`radstream_tests::chaos`): 10,000 events by default, every fault.
//!
//! `cargo build --release -p radstream-pipeline -p radstream-tests --bin chaos && infra/stack.sh up
//! && source .stack/env && ~/.cache/radstream/target/release/chaos [--events N] [--errors 0.05]
//! [--timeouts 0.01] [--pacs-down-secs 30] [--no-broker-restart]`

use std::time::Duration;

use anyhow::{Context, Result};
use radstream_tests::chaos::{self, ChaosOptions};
use radstream_tests::Stack;

fn arg(args: &[String], name: &str, default: f64) -> f64 {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let stack = Stack::get().context("the stack is not running: infra/stack.sh up; source .stack/env")?;
    let opts = ChaosOptions {
        events: arg(&args, "--events", 10_000.0) as usize,
        errors: arg(&args, "--errors", 0.05),
        timeouts: arg(&args, "--timeouts", 0.01),
        pacs_down: Duration::from_secs(arg(&args, "--pacs-down-secs", 30.0) as u64),
        restart_broker: !args.iter().any(|a| a == "--no-broker-restart"),
        deadline: Duration::from_secs(900),
    };
    let report = chaos::run(&stack, &opts).await?;
    for line in &report.timeline {
        println!("{line}");
    }
    println!("\n{}", report.table());
    anyhow::ensure!(report.all_accounted(), "not every event is accounted for");
    Ok(())
}
