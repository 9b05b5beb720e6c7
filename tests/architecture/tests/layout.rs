//! The workspace's own layout rules, checked on its source: a failing check names the files and
//! the paths that break the rule.

use std::path::{Path, PathBuf};

use radstream_architecture::{crate_roots, cycles, CrateTree, ImportGraph};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace()).unwrap_or(path).display().to_string()
}

/// No module of any crate imports, directly or through others, a module that imports it back.
#[test]
fn no_crate_has_an_import_circle() {
    let mut report = Vec::new();
    let roots = crate_roots(&workspace()).unwrap();
    assert!(roots.len() > 10, "found only {} crate roots", roots.len());
    let (mut modules, mut imports) = (0, 0);
    for root in &roots {
        let tree = CrateTree::load(root).unwrap();
        for (file, name) in &tree.missing {
            report.push(format!("{}: `mod {name};` has no file", relative(file)));
        }
        let graph = ImportGraph::build(&tree);
        modules += tree.modules.len();
        imports += graph.edges.iter().map(|e| (e.from, e.to)).collect::<std::collections::BTreeSet<_>>().len();
        for cycle in cycles(&graph) {
            report.push(format!("circle of {} modules in the crate of {}:", cycle.members.len(), relative(root)));
            // One line per imported module, with the first few names that tie them.
            let mut ties: std::collections::BTreeMap<(usize, usize), Vec<&str>> = Default::default();
            for edge in &cycle.edges {
                ties.entry((edge.from, edge.to)).or_default().push(&edge.via);
            }
            for ((from, to), via) in ties {
                let more = if via.len() > 3 { format!(", and {} more", via.len() - 3) } else { String::new() };
                report.push(format!(
                    "  {} -> {}: {}{more}",
                    relative(&tree.modules[from].file),
                    relative(&tree.modules[to].file),
                    via[..via.len().min(3)].join(", ")
                ));
            }
        }
    }
    println!("{} crates, {modules} module files, {imports} imports between them", roots.len());
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

/// The operator contract imports nothing of the operators crate but itself and the DICOM layer.
#[test]
fn the_contract_imports_no_operator() {
    let tree = CrateTree::load(&workspace().join("operators/src/lib.rs")).unwrap();
    let graph = ImportGraph::build(&tree);
    let in_contract = |m: usize| tree.modules[m].path.first().is_some_and(|p| p == "contract");
    assert!((0..tree.modules.len()).any(in_contract), "operators has no `contract` module");
    let allowed = |m: usize| tree.modules[m].path.first().is_some_and(|p| p == "contract" || p == "dicom");
    let wrong: Vec<String> = graph
        .edges
        .iter()
        .filter(|e| in_contract(e.from) && !allowed(e.to))
        .map(|e| format!("{} -> {} ({})", relative(&tree.modules[e.from].file), graph.display(e.to), e.via))
        .collect();
    assert!(wrong.is_empty(), "the contract imports operators:\n{}", wrong.join("\n"));
}

/// Files stay small enough to read: no library or binary source file (test modules aside) is
/// over 800 lines, and the binary's main.rs is under 200.
#[test]
fn source_files_stay_small() {
    let mut report = Vec::new();
    for crate_dir in ["pipeline", "operators", "schemas", "kernels"] {
        let mut files = Vec::new();
        rust_files(&workspace().join(crate_dir).join("src"), &mut files);
        for file in files {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            let limit = if file.ends_with("pipeline/src/main.rs") { 199 } else { 800 };
            if lines > limit {
                report.push(format!("{}: {lines} lines (at most {limit})", relative(&file)));
            }
        }
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() && path.file_name().is_some_and(|n| n != "testdata") {
            rust_files(&path, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
            out.push(path);
        }
    }
}
