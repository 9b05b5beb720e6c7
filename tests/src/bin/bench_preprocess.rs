//! Benchmark: decode and preprocess of one CT slice per transfer syntax on one thread, what the
//! `preprocess` operator does per instance, beside the pydicom + numpy baseline that
//! `tests/bench/preprocess/run.sh` runs on the same files.
//!
//! `--dir` holds what `tests/bench/preprocess/make_inputs.py` writes: `manifest.json` (the files
//! in order, with their transfer syntax and whether it is lossless), the `.dcm` files and
//! `original.npy` (the int16 pixel values). Every file is read into memory first. Before any
//! timing, each file is decoded once; a file radstream cannot decode or preprocess is reported as
//! refused, with the reason, and the others go on. For the lossless files the decoded samples
//! are compared with `original.npy`, and with `--compare DIR` every tensor with the pydicom
//! baseline's (`DIR/NAME.npy`, `[1, 1, H, W]` float32): the maximum absolute difference is
//! printed, not enforced, so that a mismatch shows in the table instead of stopping the run.
//!
//! Then R rounds; in each, per file, two timed passes on this thread, each running the file again
//! and again until at least `--min-seconds` and `--min-iterations` are reached:
//! - `decode`: `dicom::decode::decode` (parse the Part-10 object, decode the pixel data);
//! - `preprocess`: `preprocess::preprocess_object` with the spec (decode, then rescale, window,
//!   normalization, resampling into the `[frames, C, H, W]` tensor), exactly the operator's work.
//!
//! Prints a summary on stderr and JSON lines on stdout, one per file and round:
//! `{"tool":"radstream","input":"rle","round":1,"decode_ms":..,"preprocess_ms":..,...}`, one per
//! refused file (`"refused": reason`) and, with checks, one per file (`"check": {...}`).
//!
//! usage: bench_preprocess --dir DIR [--spec FILE] [--rounds 1] [--first-round 1] [--min-seconds 0.5]
//!                         [--min-iterations 3] [--compare DIR]
//! (`--spec`: default `models/ct-head-bleed.preprocess.toml`)
//! (`--first-round`: the number of the first round in the output, for runs that alternate tools)

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use radstream_operators::dicom::decode::{self, DecodedImage, Samples};
use radstream_operators::preprocess::{preprocess_object, PreprocessSpec};
use serde::Deserialize;
use serde_json::json;

const USAGE: &str = "usage: bench_preprocess --dir DIR [--spec FILE] [--rounds R] [--first-round K] \
                     [--min-seconds S] [--min-iterations N] [--compare DIR]";

/// Tensors may differ from the baseline's by float rounding only.
const TOLERANCE: f64 = 1e-4;

struct Args {
    dir: PathBuf,
    spec: PathBuf,
    rounds: usize,
    first_round: usize,
    min_seconds: f64,
    min_iterations: usize,
    compare: Option<PathBuf>,
}

/// The flags that take a value; every flag does, but `--help`.
const FLAGS: [&str; 7] =
    ["--dir", "--spec", "--rounds", "--first-round", "--min-seconds", "--min-iterations", "--compare"];

fn args() -> Result<Args> {
    let mut given = std::collections::HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        ensure!(FLAGS.contains(&flag.as_str()), "unknown flag {flag}\n{USAGE}");
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        given.insert(flag, value);
    }
    let path = |flag: &str| given.get(flag).map(PathBuf::from);
    let number = |flag: &str, default: usize| -> Result<usize> {
        given.get(flag).map_or(Ok(default), |v| v.parse().with_context(|| format!("{flag}: not a whole number")))
    };
    let a = Args {
        dir: path("--dir").context(USAGE)?,
        spec: path("--spec")
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ct-head-bleed.preprocess.toml")),
        rounds: number("--rounds", 1)?,
        first_round: number("--first-round", 1)?,
        min_seconds: given
            .get("--min-seconds")
            .map_or(Ok(0.5), |v| v.parse().context("--min-seconds: not a number"))?,
        min_iterations: number("--min-iterations", 3)?,
        compare: path("--compare"),
    };
    ensure!(a.min_iterations > 0, "--min-iterations must be at least 1");
    Ok(a)
}

/// One entry of `manifest.json`.
#[derive(Debug, Deserialize)]
struct Input {
    name: String,
    file: String,
    transfer_syntax: String,
    lossless: bool,
}

/// A file to time: its bytes, and the decoded size (known once it has been decoded).
struct Loaded {
    input: Input,
    bytes: Vec<u8>,
    decoded_bytes: usize,
}

/// A `.npy` array as numpy writes it (format 1.0 to 3.0, C order): its dtype, shape and bytes.
struct Npy {
    descr: String,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Npy {
    fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        ensure!(bytes.len() > 12 && bytes.starts_with(b"\x93NUMPY"), "{}: not a .npy file", path.display());
        let (len, at) = match bytes[6] {
            1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
            _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        };
        let header = bytes.get(at..at + len).context("truncated .npy header")?;
        let header = std::str::from_utf8(header).context(".npy header is not text")?;
        let field = |key: &str, end: char| -> Result<&str> {
            let start = header.find(key).with_context(|| format!("{}: no {key} in {header}", path.display()))?;
            let rest = &header[start + key.len()..];
            Ok(&rest[..rest.find(end).unwrap_or(rest.len())])
        };
        ensure!(field("'fortran_order': ", ',')?.trim() == "False", "{}: not in C order", path.display());
        let shape = field("'shape': (", ')')?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().context("bad .npy shape"))
            .collect::<Result<_>>()?;
        Ok(Self { descr: field("'descr': '", '\'')?.to_string(), shape, data: bytes[at + len..].to_vec() })
    }

    /// The values, when they are little-endian `f4`.
    fn f32s(&self) -> Result<Vec<f32>> {
        ensure!(self.descr == "<f4", "expected <f4 values, the .npy holds {}", self.descr);
        Ok(self.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// The values, when they are little-endian `i2`.
    fn i16s(&self) -> Result<Vec<i16>> {
        ensure!(self.descr == "<i2", "expected <i2 values, the .npy holds {}", self.descr);
        Ok(self.data.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect())
    }
}

/// Stored values differing from `original` (all of them when the count differs).
fn samples_differing(image: &DecodedImage, original: &[i16]) -> usize {
    if image.samples.len() != original.len() {
        return original.len().max(image.samples.len());
    }
    original.iter().enumerate().filter(|&(i, &want)| image.samples.get_i64(i) != Some(i64::from(want))).count()
}

/// Decodes and preprocesses `loaded` once, untimed; the error says why radstream refuses it.
/// Runs the checks and prints their JSON line.
fn check(spec: &PreprocessSpec, loaded: &mut Loaded, original: &[i16], compare: Option<&Path>) -> Result<(), String> {
    let image = decode::decode(&loaded.bytes).map_err(|e| e.to_string())?;
    let tensor = preprocess_object(spec, &loaded.bytes).map_err(|e| e.to_string())?;
    let bytes_per_sample = match image.samples {
        Samples::U8(_) | Samples::I8(_) => 1,
        Samples::U16(_) | Samples::I16(_) => 2,
        Samples::U32(_) | Samples::I32(_) => 4,
    };
    loaded.decoded_bytes = image.samples.len() * bytes_per_sample;

    let name = &loaded.input.name;
    let mut report = serde_json::Map::new();
    let differing = samples_differing(&image, original);
    report.insert("lossless".into(), json!(loaded.input.lossless));
    report.insert("samples_differing_from_original".into(), json!(differing));
    report.insert("decodes_to_original".into(), json!(differing == 0));
    if let Some(dir) = compare {
        let theirs = Npy::read(&dir.join(format!("{name}.npy"))).and_then(|npy| {
            ensure!(npy.shape == tensor.shape(), "pydicom's shape {:?}, radstream's {:?}", npy.shape, tensor.shape());
            npy.f32s()
        });
        match theirs {
            Ok(theirs) => {
                let diffs: Vec<f64> =
                    tensor.data().iter().zip(&theirs).map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs()).collect();
                let max = diffs.iter().copied().fold(0.0, f64::max);
                report.insert("max_abs_diff_vs_pydicom".into(), json!(max));
                report.insert("values_over_tolerance".into(), json!(diffs.iter().filter(|&&d| d > TOLERANCE).count()));
                report.insert("values".into(), json!(diffs.len()));
            }
            Err(e) => {
                report.insert("compare_error".into(), json!(format!("{e:#}")));
            }
        }
    }
    eprintln!("bench_preprocess: {name}: check {}", serde_json::Value::Object(report.clone()));
    println!("{}", json!({"tool": "radstream", "input": name, "check": report}));
    Ok(())
}

/// Seconds per call of `f`, called until at least `min_seconds` and `min_iterations` are reached;
/// and the number of calls.
fn per_call(min_seconds: f64, min_iterations: usize, mut f: impl FnMut()) -> (f64, usize) {
    let started = Instant::now();
    let mut calls = 0;
    loop {
        f();
        calls += 1;
        let seconds = started.elapsed().as_secs_f64();
        if calls >= min_iterations && seconds >= min_seconds {
            return (seconds / calls as f64, calls);
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    (values[(values.len() - 1) / 2] + values[values.len() / 2]) / 2.0
}

fn main() -> Result<()> {
    let a = args()?;
    let spec = PreprocessSpec::load(&a.spec).map_err(|e| anyhow::anyhow!("{e}"))?;
    let manifest = a.dir.join("manifest.json");
    let inputs: Vec<Input> = serde_json::from_slice(
        &std::fs::read(&manifest).with_context(|| format!("reading {} (run make_inputs.py)", manifest.display()))?,
    )
    .with_context(|| format!("parsing {}", manifest.display()))?;
    let original = Npy::read(&a.dir.join("original.npy"))?.i16s()?;
    eprintln!(
        "bench_preprocess: spec {} ({}), {} files from {}, one thread",
        spec.name,
        a.spec.display(),
        inputs.len(),
        a.dir.display()
    );

    let mut timed = Vec::new();
    for input in inputs {
        let path = a.dir.join(&input.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut loaded = Loaded { input, bytes, decoded_bytes: 0 };
        // The lossy files are not expected to equal the original; the check says so all the same.
        match check(&spec, &mut loaded, &original, a.compare.as_deref()) {
            Ok(()) => timed.push(loaded),
            Err(reason) => {
                let Input { name, transfer_syntax, .. } = &loaded.input;
                eprintln!("bench_preprocess: {name} ({transfer_syntax}): refused: {reason}");
                println!("{}", json!({"tool": "radstream", "input": name, "refused": reason}));
            }
        }
    }

    let mut per_input: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); timed.len()];
    for round in a.first_round..a.first_round + a.rounds {
        for (loaded, (decodes, preprocesses)) in timed.iter().zip(&mut per_input) {
            let bytes = loaded.bytes.as_slice();
            for _ in 0..2 {
                black_box(preprocess_object(&spec, black_box(bytes)).ok());
            }
            let (decode_s, decode_n) =
                per_call(a.min_seconds, a.min_iterations, || drop(black_box(decode::decode(black_box(bytes)))));
            let (full_s, full_n) = per_call(a.min_seconds, a.min_iterations, || {
                drop(black_box(preprocess_object(&spec, black_box(bytes))));
            });
            let name = &loaded.input.name;
            eprintln!(
                "radstream round {round} {name:>10}: decode {:.3} ms ({decode_n}x), decode + preprocess {:.3} ms \
                 ({full_n}x), {:.1} slices/s",
                decode_s * 1e3,
                full_s * 1e3,
                1.0 / full_s
            );
            decodes.push(decode_s * 1e3);
            preprocesses.push(full_s * 1e3);
            println!(
                "{}",
                json!({
                    "tool": "radstream",
                    "input": name,
                    "round": round,
                    "decode_ms": decode_s * 1e3,
                    "preprocess_ms": full_s * 1e3,
                    "decode_iterations": decode_n,
                    "preprocess_iterations": full_n,
                    "decoded_bytes": loaded.decoded_bytes,
                    "file_bytes": loaded.bytes.len(),
                    "timed": "decode::decode / preprocess_object from in-memory bytes, one thread",
                })
            );
        }
    }
    if a.rounds > 1 {
        for (loaded, (decodes, preprocesses)) in timed.iter().zip(&mut per_input) {
            eprintln!(
                "radstream {:>10} (median of {}): decode {:.3} ms, decode + preprocess {:.3} ms",
                loaded.input.name,
                a.rounds,
                median(decodes),
                median(preprocesses)
            );
        }
    }
    Ok(())
}
