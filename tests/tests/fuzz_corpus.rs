//! Replays every fuzz target's seeds, its corpus and every crash input the fuzzers found
//! (`tests/fuzz/{seeds,corpus,regressions}/<target>/`) through the same entry
//! points the targets call (`radstream_operators::fuzzing::run`), on stable and in seconds: a
//! parser change that brings back a crash fails here, not weeks later in a fuzzing run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use radstream_operators::fuzzing::{run, TARGETS};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_corpus_and_crash_input_is_refused_or_read_without_a_panic() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<String> = inputs(&fuzz.join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut named: Vec<String> = TARGETS.iter().map(|t| t.to_string()).collect();
    named.sort();
    assert_eq!(files, named, "tests/fuzz/fuzz_targets and fuzzing::TARGETS must name the same targets");
    let mut failures = Vec::new();
    let mut total = 0;
    for target in TARGETS {
        assert!(fuzz.join("fuzz_targets").join(format!("{target}.rs")).is_file(), "no fuzz target file for {target}");
        // The seeds first: valid inputs that must reach past the entry checks into the parser's
        // body (a corpus of refusals only would not), before any input the fuzzer found can
        // change the state of a decoder (a stalled JPEG-LS decode refuses the next ones).
        let started = std::time::Instant::now();
        let seeds = inputs(&fuzz.join("seeds").join(target));
        assert!(!seeds.is_empty(), "no seeds for {target}: run python3 tests/fuzz/seeds.py");
        let mut accepted = 0;
        for path in &seeds {
            let data = std::fs::read(path).unwrap();
            match catch_unwind(AssertUnwindSafe(|| run(target, &data))) {
                Ok(true) => accepted += 1,
                Ok(false) => {}
                Err(_) => failures.push(format!("{target}: {}", path.display())),
            }
            total += 1;
        }
        assert!(accepted > 0, "no seed of {target} is accepted: seed it with valid inputs (tests/fuzz/seeds.py)");
        let corpus = inputs(&fuzz.join("corpus").join(target));
        let regressions = inputs(&fuzz.join("regressions").join(target));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            if catch_unwind(AssertUnwindSafe(|| run(target, &data))).is_err() {
                failures.push(format!("{target}: {}", path.display()));
            }
            total += 1;
        }
        eprintln!(
            "{target}: {} seeds ({accepted} accepted), {} corpus inputs, {} crash inputs, {:.1} s",
            seeds.len(),
            corpus.len(),
            regressions.len(),
            started.elapsed().as_secs_f64()
        );
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
    eprintln!("{total} inputs replayed over {} targets", TARGETS.len());
}
