//! `radstream route --dry-run`: which routing rule each DICOM file matches.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use radstream_operators::route::{RouteAction, RouteAttributes};
use radstream_operators::{parse_header, OperatorConfig};

use crate::cli::common::{load_config, usage_exit};
use crate::files::collect_files;

/// Show which routing rule each DICOM file matches.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {
    /// Evaluate only; nothing is sent (the only mode for now, required to be explicit).
    #[arg(long, required = true)]
    pub dry_run: bool,
    /// Config file whose `route` operator is evaluated.
    #[arg(long, short)]
    pub config: PathBuf,
    /// DICOM files or folders.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Prints `path, rule, action` per file. Exit status 1 when a file is unreadable, 2 when the
/// config does not load, has no `route` operator or its route cannot be built.
pub fn execute(args: &RouteArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(route) = config.operators.iter().find_map(|o| match o {
        OperatorConfig::Route(r) => Some(r),
        _ => None,
    }) else {
        return Ok(usage_exit("the config has no `route` operator"));
    };
    let router = match route.build() {
        Ok(router) => router,
        Err(e) => return Ok(usage_exit(e)),
    };
    let mut failures = 0;
    for (path, _) in collect_files(&args.files)? {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        match parse_header(&bytes) {
            Ok(header) => {
                let decision = router.decide(&RouteAttributes::from_header(&header, None));
                let rule = decision.rule.as_deref().unwrap_or("(default)");
                let action = match (&decision.action, &decision.branch) {
                    (RouteAction::Forward, Some(b)) => format!("forward -> {b}"),
                    _ => "drop".to_string(),
                };
                println!("{}\t{rule}\t{action}", path.display());
            }
            Err(e) => {
                failures += 1;
                println!("{}\t(unreadable)\t{e}", path.display());
            }
        }
    }
    Ok(if failures > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
