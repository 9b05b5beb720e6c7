//! The crates of a workspace and the module tree of each, followed from its root's `mod`
//! declarations exactly as rustc finds the files.

use std::fs;
use std::path::{Path, PathBuf};

use crate::tokens::{tokenize, Token};

/// One module file of a crate.
#[derive(Debug, Clone)]
pub struct Module {
    /// Its path inside the crate (`[]` for the root, `["runtime", "source"]`).
    pub path: Vec<String>,
    /// Its file.
    pub file: PathBuf,
    /// The tokens of the file.
    pub tokens: Vec<Token>,
}

impl Module {
    /// `crate::a::b` for reports.
    pub fn display(&self) -> String {
        if self.path.is_empty() {
            "crate".to_string()
        } else {
            format!("crate::{}", self.path.join("::"))
        }
    }
}

/// One crate: its root file and every (non-test) module file under it.
#[derive(Debug, Clone)]
pub struct CrateTree {
    /// The root file (lib.rs, main.rs, a bin or an integration test).
    pub root: PathBuf,
    /// Every module, the root first.
    pub modules: Vec<Module>,
    /// `mod` declarations whose file was not found: (declaring file, module name).
    pub missing: Vec<(PathBuf, String)>,
}

impl CrateTree {
    /// Follows the `mod` declarations from `root`, leaving out `#[cfg(test)]` modules.
    pub fn load(root: &Path) -> std::io::Result<CrateTree> {
        let mut tree = CrateTree { root: root.to_path_buf(), modules: Vec::new(), missing: Vec::new() };
        let mut pending = vec![(Vec::new(), root.to_path_buf(), true)];
        while let Some((path, file, is_root)) = pending.pop() {
            let tokens = tokenize(&fs::read_to_string(&file)?);
            let dir = child_dir(&file, is_root);
            for name in declared_modules(&tokens) {
                let candidates = [dir.join(format!("{name}.rs")), dir.join(&name).join("mod.rs")];
                match candidates.into_iter().find(|c| c.is_file()) {
                    Some(child) => {
                        let mut child_path = path.clone();
                        child_path.push(name);
                        pending.push((child_path, child, false));
                    }
                    None => tree.missing.push((file.clone(), name)),
                }
            }
            tree.modules.push(Module { path, file, tokens });
        }
        tree.modules.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(tree)
    }

    /// The module at `path`, if there is one.
    pub fn module(&self, path: &[String]) -> Option<&Module> {
        self.modules.iter().find(|m| m.path == path)
    }
}

/// Where a module file's children live: beside a crate root or `mod.rs`, else in the folder of
/// the file's own name.
fn child_dir(file: &Path, is_root: bool) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if is_root || stem == "mod" {
        parent
    } else {
        parent.join(stem)
    }
}

/// The names of `mod NAME;` declarations, leaving out those under `#[cfg(test)]`.
pub fn declared_modules(tokens: &[Token]) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..tokens.len() {
        if !tokens[i].is("mod") {
            continue;
        }
        let (Some(Token::Ident(name)), Some(Token::Punct(';'))) = (tokens.get(i + 1), tokens.get(i + 2)) else {
            continue;
        };
        if !under_cfg_test(tokens, i) {
            names.push(name.clone());
        }
    }
    names
}

/// True when the attributes right before the item at `at` (skipping a visibility) include
/// `#[cfg(test)]`.
fn under_cfg_test(tokens: &[Token], mut at: usize) -> bool {
    // Skip back over `pub`, `pub(crate)`, `pub(super)`.
    while at > 0 {
        match &tokens[at - 1] {
            Token::Ident(w) if w == "pub" || w == "crate" || w == "super" || w == "in" => at -= 1,
            Token::Punct('(') | Token::Punct(')') => at -= 1,
            _ => break,
        }
    }
    // Attributes end in `]`: walk back over each `#[...]`.
    while at > 0 && tokens[at - 1] == Token::Punct(']') {
        let mut depth = 0;
        let mut j = at - 1;
        loop {
            match tokens[j] {
                Token::Punct(']') => depth += 1,
                Token::Punct('[') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            if j == 0 {
                return false;
            }
            j -= 1;
        }
        let attribute = &tokens[j..at];
        let is_cfg_test = attribute.len() >= 6
            && attribute[1].is("cfg")
            && attribute[2] == Token::Punct('(')
            && attribute[3].is("test")
            && attribute[4] == Token::Punct(')');
        if is_cfg_test {
            return true;
        }
        if j == 0 || tokens[j - 1] != Token::Punct('#') {
            return false;
        }
        at = j - 1;
    }
    false
}

/// Every crate root of the packages under `workspace`: `src/lib.rs`, `src/main.rs`,
/// `src/bin/*.rs`, `tests/*.rs`, `examples/*.rs` and `benches/*.rs` of each folder holding a
/// Cargo.toml (build output, hidden folders and node_modules left out).
pub fn crate_roots(workspace: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut packages = Vec::new();
    find_packages(workspace, &mut packages)?;
    let mut roots = Vec::new();
    for package in packages {
        for file in ["src/lib.rs", "src/main.rs"] {
            if package.join(file).is_file() {
                roots.push(package.join(file));
            }
        }
        for dir in ["src/bin", "tests", "examples", "benches"] {
            let Ok(entries) = fs::read_dir(package.join(dir)) else { continue };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "rs"))
                .collect();
            files.sort();
            roots.extend(files);
        }
    }
    roots.sort();
    Ok(roots)
}

fn find_packages(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
        out.push(dir.to_path_buf());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // file_type does not follow symlinks, so a link cycle is never walked.
        if !entry.file_type()?.is_dir() || name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        find_packages(&entry.path(), out)?;
    }
    Ok(())
}
