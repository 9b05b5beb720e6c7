//! `radstream keygen`: a new pseudonymization key file for `deid` and the pipeline.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use radstream_operators::pseudonymize::DeidKey;

use crate::cli::common::usage_exit;

/// Write a new pseudonymization key file for `deid` (mode 0600; never overwrites).
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Key id, recorded in every de-identified instance so a key rotation can be traced
    /// (e.g. `2026-11`).
    #[arg(long)]
    pub id: String,
    /// Key file to create.
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes the key file.
pub fn execute(args: &KeygenArgs) -> ExitCode {
    keygen(&args.id, &args.out)
}

/// Runs `radstream keygen`: writes a fresh key to `out` with mode 0600, never over an existing
/// file. Exit status 2 when `out` exists or the id is not valid.
pub fn keygen(id: &str, out: &Path) -> ExitCode {
    let text = DeidKey::generate_file_text(id);
    // The key parser is the authority on what an id may be.
    if let Err(e) = DeidKey::parse(&text, "--id") {
        return usage_exit(e.problem);
    }
    match write_new_private_file(out, text.as_bytes()) {
        Ok(()) => {
            println!("wrote pseudonymization key `{id}` to {} (mode 0600)", out.display());
            println!("keep it on the trusted side only: whoever holds it can link pseudonyms back to patients");
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            usage_exit(format!("{} already exists; refusing to overwrite a key (move it away first)", out.display()))
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn write_new_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if written.is_err() {
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests;
