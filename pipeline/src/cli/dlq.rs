//! `radstream dlq list` and `radstream dlq replay`: the dead-letter topic for the people who fix
//! what landed there.

pub mod letters;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::common::{load_config, usage_exit};
use crate::cli::dlq::letters::DlqFilter;

/// The dead-letter topic: list what landed there, and replay it after a fix.
///
/// Reads the config's `kafka.dead_letter_topic` up to its current end (outside any consumer
/// group; nothing is committed). Filters combine: --class and --operator may repeat,
/// --since and --until take a UTC time (2026-11-28T07:00:00Z) or an age (30m, 2h, 7d).
/// `replay` sends each matching letter's original message, byte for byte with its key, back
/// to the input topic (or --to-topic), marked with a `radstream-replay-of` header; results
/// have the same UIDs every time, so the PACS keeps one copy.
///
/// Exit status: 0 on success, 1 when the topic cannot be read or a send fails, 2 for a usage
/// or configuration problem.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  radstream dlq list --config radstream.toml --class pacs_unavailable --since 2h\n  \
                  radstream dlq replay --config radstream.toml --class pacs_unavailable --since 2h --dry-run\n  \
                  radstream dlq replay --config radstream.toml --class pacs_unavailable --since 2h"
)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
}

/// `dlq list` and `dlq replay`.
#[derive(Debug, clap::Subcommand)]
pub enum DlqAction {
    /// Print the matching dead letters: time, partition/offset, class, operator, attempts,
    /// object key, SOPInstanceUID, reason (a tab-separated table, or JSON lines with --json).
    List {
        #[command(flatten)]
        select: DlqSelect,
        /// One JSON object per letter instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Send the matching dead letters' original messages back to the input topic.
    Replay {
        #[command(flatten)]
        select: DlqSelect,
        /// Topic to send to (default: the config's kafka.input_topic).
        #[arg(long, value_name = "TOPIC")]
        to_topic: Option<String>,
        /// List what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which dead letters, of which pipeline.
#[derive(Debug, clap::Args)]
pub struct DlqSelect {
    /// Config file: its `kafka` section names the brokers and topics.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Only this reason class (missing_object, pacs_unavailable, ...); repeat for several.
    #[arg(long = "class", value_name = "CLASS", value_parser = parse_error_class)]
    pub classes: Vec<radstream_schemas::ErrorClass>,
    /// Only letters of this operator or stage (fetch, parse, stow, ...); repeat for several.
    #[arg(long = "operator", value_name = "NAME")]
    pub operators: Vec<String>,
    /// Only letters written at or after this time (UTC, or an age such as 2h).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only letters written before this time (UTC, or an age such as 30m).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

fn parse_error_class(text: &str) -> Result<radstream_schemas::ErrorClass, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("{text:?} is not a reason class (see the dead letters' error_class values)"))
}

/// Reads the dead-letter topic and lists or replays what matches. Exit status 2 when the config
/// does not load or a time does not parse.
pub async fn execute(args: DlqArgs) -> anyhow::Result<ExitCode> {
    let action = args.action;
    let select = match &action {
        DlqAction::List { select, .. } | DlqAction::Replay { select, .. } => select,
    };
    let config = match load_config(&select.config) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let time = |arg: &Option<String>, name: &str| -> Result<Option<i64>, String> {
        arg.as_deref().map(|t| letters::parse_time(t, now).map_err(|e| format!("--{name}: {e}"))).transpose()
    };
    let (since_ms, until_ms) = match (time(&select.since, "since"), time(&select.until, "until")) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(e), _) | (_, Err(e)) => return Ok(usage_exit(e)),
    };
    let filter = DlqFilter { classes: select.classes.clone(), operators: select.operators.clone(), since_ms, until_ms };
    let kafka = config.kafka.clone();
    let read = tokio::task::spawn_blocking(move || letters::read(&kafka, &filter, std::time::Duration::from_secs(60)))
        .await
        .context("the dead-letter reader")??;
    let topic = &config.kafka.dead_letter_topic;
    for (partition, offset) in &read.unreadable {
        eprintln!("warning: {topic} {partition}/{offset} is not a dead letter; skipped");
    }
    match action {
        DlqAction::List { json, .. } => {
            if json {
                for letter in &read.matching {
                    println!("{}", serde_json::to_string(letter)?);
                }
            } else {
                print!("{}", letters::table(&read.matching));
            }
            eprintln!("{} of {} dead letters in {topic} match", read.matching.len(), read.total);
        }
        DlqAction::Replay { to_topic, dry_run, .. } => {
            let target = to_topic.unwrap_or_else(|| config.kafka.input_topic.clone());
            if dry_run {
                print!("{}", letters::table(&read.matching));
                eprintln!(
                    "dry run: would replay {} of {} dead letters from {topic} to {target}; nothing sent",
                    read.matching.len(),
                    read.total
                );
            } else {
                let sent = letters::replay(&config.kafka, &read.matching, &target).await?;
                eprintln!("replayed {sent} of {} dead letters from {topic} to {target}", read.total);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
