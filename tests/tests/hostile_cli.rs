//! The commands refuse the hostile files of `radstream_tests::hostile` (issue 16) with exit 1
//! and a reason, within bounded memory: `route --dry-run`, `preprocess`, `infer` and `deid`
//! each get every file that is not a readable instance; the decoders (`preprocess`, `infer`)
//! also get the JPEG stream that declares 65500 x 65500, which `route` and `deid` rightly read
//! (they do not decode pixels). Each command's peak memory is measured by the kernel
//! (getrusage of the child, through Python's resource module) and must stay under 512 MiB.

use std::path::{Path, PathBuf};
use std::process::Command;

use radstream_tests::hostile::{self, Hostile, Ids, CANARY_ID, CANARY_NAME};

const PEAK_LIMIT_KIB: u64 = 512 * 1024;

/// Runs `radstream args` and returns its exit code, its output and its peak resident memory.
fn measured(args: &[&str]) -> (Option<i32>, String, u64) {
    const WRAP: &str = "import resource, subprocess, sys\n\
        p = subprocess.run(sys.argv[1:], capture_output=True)\n\
        sys.stdout.buffer.write(p.stdout + p.stderr)\n\
        sys.stderr.write('\\n%d %d\\n' % (p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n";
    let out = Command::new(radstream_tests::python())
        .args(["-c", WRAP])
        .arg(radstream_tests::radstream_bin())
        .args(args)
        .output()
        .expect("python3 runs");
    let tail = String::from_utf8_lossy(&out.stderr).to_string();
    let mut last = tail.split_whitespace().rev();
    let peak: u64 = last.next().and_then(|v| v.parse().ok()).expect("the peak RSS line");
    let code: i32 = last.next().and_then(|v| v.parse().ok()).expect("the exit code");
    (Some(code), String::from_utf8_lossy(&out.stdout).into_owned(), peak)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name)
}

#[test]
fn every_command_refuses_every_hostile_file_with_exit_1_a_reason_and_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("deid.key");
    let keygen = radstream_tests::run_radstream(&["keygen", "--id", "hostile", "--out", s(&key)]);
    assert!(keygen.status.success(), "{}", radstream_tests::show_output(&keygen));
    let config = dir.path().join("route.toml");
    std::fs::write(
        &config,
        "[kafka]\nbrokers = \"127.0.0.1:9092\"\ninput_topic = \"dicom.instances\"\n\n[[operators]]\ntype = \"route\"\ndefault_action = \"forward\"\ndefault_branch = \"all\"\n\n[[operators]]\ntype = \"stow\"\nurl = \"http://127.0.0.1:8042/dicom-web\"\n",
    )
    .unwrap();
    let ids = Ids { study: "2.25.71".into(), series: "2.25.72".into(), sop: "2.25.73".into() };
    let files: Vec<Hostile> = hostile::files(&ids);
    let out = dir.path().join("out");
    let (spec, manifest) = (model("ct-head-bleed.preprocess.toml"), model("ct-head-bleed.model.toml"));
    let mut peak_max = 0;
    let mut problems = Vec::new();
    let mut report = Vec::new();
    for file in &files {
        let input = dir.path().join(file.name);
        std::fs::write(&input, &file.bytes).unwrap();
        let decodes_only = file.name.starts_with("jpeg");
        let commands: Vec<(&str, Vec<&str>)> = vec![
            ("route --dry-run", vec!["route", "--dry-run", "--config", s(&config), s(&input)]),
            ("preprocess", vec!["preprocess", "--device", "cpu", "--model", s(&spec), "--out", s(&out), s(&input)]),
            ("infer", vec!["infer", "--model", s(&manifest), "--out", s(&out), s(&input)]),
            ("deid", vec!["deid", "--key-file", s(&key), "--out", s(&out), s(&input)]),
        ];
        for (name, args) in commands {
            let reads_pixels = matches!(name, "preprocess" | "infer");
            let (code, text, peak) = measured(&args);
            peak_max = peak_max.max(peak);
            report.push(format!("{name} {}: exit {code:?}, peak {} MiB", file.name, peak / 1024));
            assert!(peak < PEAK_LIMIT_KIB, "{name} {}: peak RSS {} MiB", file.name, peak / 1024);
            assert!(
                !text.contains(CANARY_NAME) && !text.contains(CANARY_ID),
                "{name} {} printed the patient: {text}",
                file.name
            );
            if decodes_only && !reads_pixels {
                // A valid header: the commands that do not decode pixels read it.
                if code != Some(0) {
                    problems.push(format!("{name} {} is a readable header: exit {code:?}: {text}", file.name));
                }
                continue;
            }
            if code != Some(1) {
                problems.push(format!("{name} {}: exit {code:?}: {text}", file.name));
                continue;
            }
            // deid's engine reads the data set itself and words its refusals its own way; the
            // others share the header parse and its reasons (route's table also marks the file).
            let named = match name {
                "deid" => text.contains(file.name),
                "route --dry-run" => text.contains("(unreadable)") && text.contains(file.reason),
                _ => text.contains(file.reason),
            };
            if !named {
                problems.push(format!("{name} {}: the refusal should say {:?}: {text}", file.name, file.reason));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("{}\nhighest peak RSS of any command: {} MiB", report.join("\n"), peak_max / 1024);
}
