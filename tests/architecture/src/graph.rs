//! The import graph between the module files of one crate, and its circles.

use std::collections::{BTreeMap, BTreeSet};

use crate::modules::CrateTree;
use crate::tokens::Token;

/// One import: `from` names `via`, which resolves into `to` (indices into the crate's modules).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The importing module.
    pub from: usize,
    /// The imported module.
    pub to: usize,
    /// The path as written, for the report.
    pub via: String,
}

/// The imports between the module files of one crate. The crate root is not a node: it only
/// declares modules and re-exports for other crates, and its re-exports are followed instead.
#[derive(Debug)]
pub struct ImportGraph<'t> {
    /// The crate.
    pub tree: &'t CrateTree,
    /// Every import, one per (from, to, path) triple.
    pub edges: BTreeSet<Edge>,
}

/// A circle: modules that import each other, directly or through others.
#[derive(Debug, Clone)]
pub struct Cycle {
    /// The modules in it (indices into the crate's modules).
    pub members: Vec<usize>,
    /// The imports between them.
    pub edges: Vec<Edge>,
}

impl<'t> ImportGraph<'t> {
    /// Reads every module's imports.
    pub fn build(tree: &'t CrateTree) -> ImportGraph<'t> {
        let index: BTreeMap<&[String], usize> =
            tree.modules.iter().enumerate().map(|(i, m)| (m.path.as_slice(), i)).collect();
        let root_uses =
            tree.module(&[]).map(|root| use_paths(&root.tokens, &[], &children_of(tree, &[]))).unwrap_or_default();
        let resolver = Resolver { index: &index, root_uses: &root_uses };
        let mut edges = BTreeSet::new();
        for (from, module) in tree.modules.iter().enumerate() {
            if module.path.is_empty() {
                continue;
            }
            for (written, absolute) in referenced_paths(module, tree) {
                if let Some(to) = resolver.resolve(&absolute, 0) {
                    if to != from && !tree.modules[to].path.is_empty() {
                        edges.insert(Edge { from, to, via: written });
                    }
                }
            }
        }
        ImportGraph { tree, edges }
    }

    /// The module file a path of this crate names, if any.
    pub fn display(&self, module: usize) -> String {
        self.tree.modules[module].display()
    }
}

/// Every circle of the graph (its strongly connected components with more than one module).
pub fn cycles(graph: &ImportGraph<'_>) -> Vec<Cycle> {
    let n = graph.tree.modules.len();
    let mut out_edges = vec![Vec::new(); n];
    for e in &graph.edges {
        out_edges[e.from].push(e.to);
    }
    let components = strongly_connected(&out_edges);
    components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|members| {
            let set: BTreeSet<usize> = members.iter().copied().collect();
            let edges = graph.edges.iter().filter(|e| set.contains(&e.from) && set.contains(&e.to)).cloned().collect();
            Cycle { members, edges }
        })
        .collect()
}

/// Tarjan's algorithm, iterative so that a deep tree cannot overflow the stack.
fn strongly_connected(out_edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = out_edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut components = Vec::new();
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0usize)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = out_edges[v].get(*child) {
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort();
                components.push(component);
            }
        }
    }
    components
}

struct Resolver<'a> {
    index: &'a BTreeMap<&'a [String], usize>,
    /// The crate root's `use` items: (name it brings in, absolute path).
    root_uses: &'a [(String, Vec<String>)],
}

impl Resolver<'_> {
    /// The deepest module on `absolute`; through the root's re-exports when that is the root.
    fn resolve(&self, absolute: &[String], depth: usize) -> Option<usize> {
        let deepest = (0..=absolute.len()).rev().find_map(|k| self.index.get(&absolute[..k]).map(|&m| (k, m)))?;
        match deepest {
            (0, root) if !absolute.is_empty() && depth < 4 => {
                let name = &absolute[0];
                match self.root_uses.iter().find(|(bound, _)| bound == name) {
                    Some((_, target)) => {
                        let mut followed = target.clone();
                        followed.extend_from_slice(&absolute[1..]);
                        self.resolve(&followed, depth + 1).or(Some(root))
                    }
                    None => Some(root),
                }
            }
            (_, module) => Some(module),
        }
    }
}

/// The absolute paths (inside the crate) that a module names, with the text as written.
fn referenced_paths(module: &crate::modules::Module, tree: &CrateTree) -> Vec<(String, Vec<String>)> {
    let here = &module.path;
    let children = children_of(tree, here);
    let uses = use_paths(&module.tokens, here, &children);
    // Names bound by `use` to a module of this crate: `alias::X` in code goes through them.
    let bound: BTreeMap<String, Vec<String>> = uses.iter().map(|(name, path)| (name.clone(), path.clone())).collect();
    let mut out: Vec<(String, Vec<String>)> =
        uses.iter().map(|(_, path)| (format!("use crate::{}", path.join("::")), path.clone())).collect();

    let tokens = &module.tokens;
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].is("use") {
            // Already read by use_paths.
            while i < tokens.len() && tokens[i] != Token::Punct(';') {
                i += 1;
            }
            continue;
        }
        let starts_path = matches!(tokens.get(i + 1), Some(Token::PathSep))
            && !matches!(i.checked_sub(1).map(|p| &tokens[p]), Some(Token::PathSep));
        if let (true, Token::Ident(first)) = (starts_path, &tokens[i]) {
            let mut segments = vec![first.clone()];
            let mut j = i + 1;
            while let (Some(Token::PathSep), Some(Token::Ident(s))) = (tokens.get(j), tokens.get(j + 1)) {
                segments.push(s.clone());
                j += 2;
            }
            let absolute = match first.as_str() {
                "crate" | "super" | "self" => absolutize(here, &segments),
                name if children.contains(name) => Some([here.as_slice(), &segments].concat()),
                name => bound.get(name).map(|target| [target.as_slice(), &segments[1..]].concat()),
            };
            if let Some(absolute) = absolute {
                out.push((segments.join("::"), absolute));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// The names of the child modules of the module at `here`.
fn children_of(tree: &CrateTree, here: &[String]) -> BTreeSet<String> {
    tree.modules
        .iter()
        .filter(|m| m.path.len() == here.len() + 1 && m.path.starts_with(here))
        .map(|m| m.path[here.len()].clone())
        .collect()
}

/// `crate::`, `super::` and `self::` paths made absolute from the module at `here`.
fn absolutize(here: &[String], segments: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = here.to_vec();
    let mut rest = segments;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The `use` items of a module: (the name each binds, the absolute path inside the crate).
/// Paths into other crates are left out. A glob binds `*`.
fn use_paths(tokens: &[Token], here: &[String], children: &BTreeSet<String>) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i].is("use") {
            let mut flat = Vec::new();
            i = use_tree(tokens, i + 1, Vec::new(), &mut flat);
            for (name, path) in flat {
                let absolute = match path.first() {
                    Some(first) if children.contains(first) => Some([here, path.as_slice()].concat()),
                    _ => absolutize(here, &path),
                };
                if let Some(absolute) = absolute {
                    out.push((name, absolute));
                }
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Reads one use tree from `i`, appending (bound name, path) pairs; returns where it stopped.
fn use_tree(tokens: &[Token], mut i: usize, mut prefix: Vec<String>, out: &mut Vec<(String, Vec<String>)>) -> usize {
    if tokens.get(i) == Some(&Token::PathSep) {
        i += 1;
    }
    loop {
        match tokens.get(i) {
            Some(Token::Ident(s)) if s == "self" && !prefix.is_empty() => {
                let name = prefix.last().cloned().unwrap_or_default();
                out.push((name, prefix.clone()));
                return i + 1;
            }
            Some(Token::Ident(s)) => {
                prefix.push(s.clone());
                i += 1;
                match tokens.get(i) {
                    Some(Token::PathSep) => i += 1,
                    Some(Token::Ident(w)) if w == "as" => {
                        let alias = match tokens.get(i + 1) {
                            Some(Token::Ident(a)) => a.clone(),
                            _ => String::new(),
                        };
                        out.push((alias, prefix));
                        return i + 2;
                    }
                    _ => {
                        let name = prefix.last().cloned().unwrap_or_default();
                        out.push((name, prefix));
                        return i;
                    }
                }
            }
            Some(Token::Punct('*')) => {
                out.push(("*".into(), prefix));
                return i + 1;
            }
            Some(Token::Punct('{')) => {
                i += 1;
                loop {
                    match tokens.get(i) {
                        None => return i,
                        Some(Token::Punct('}')) => return i + 1,
                        Some(Token::Punct(',')) => i += 1,
                        Some(_) => {
                            let before = i;
                            i = use_tree(tokens, i, prefix.clone(), out);
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => return i,
        }
    }
}
