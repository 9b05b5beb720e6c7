use std::fs;
use std::path::PathBuf;

use crate::tokens::{tokenize, Token};
use crate::{cycles, CrateTree, ImportGraph};

/// A crate of the given files (path under src/, content) in a fresh folder.
fn fixture(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("radstream-architecture-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for (path, text) in files {
        let file = dir.join("src").join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, text).unwrap();
    }
    dir
}

/// The circles of a fixture crate, as sorted lists of module paths.
fn circles_of(name: &str, files: &[(&str, &str)]) -> Vec<Vec<String>> {
    let dir = fixture(name, files);
    let tree = CrateTree::load(&dir.join("src/lib.rs")).unwrap();
    assert!(tree.missing.is_empty(), "{:?}", tree.missing);
    let graph = ImportGraph::build(&tree);
    let found = cycles(&graph).into_iter().map(|c| c.members.iter().map(|&m| graph.display(m)).collect()).collect();
    let _ = fs::remove_dir_all(&dir);
    found
}

#[test]
fn finds_a_direct_circle_through_use_and_code_paths() {
    let found = circles_of(
        "direct",
        &[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::b::Thing;\npub fn g() {}\n"),
            ("b.rs", "pub struct Thing;\nfn f() { super::a::g() }\n"),
        ],
    );
    assert_eq!(found, vec![vec!["crate::a".to_string(), "crate::b".to_string()]]);
}

#[test]
fn finds_a_longer_circle_and_one_through_the_roots_re_exports() {
    let found = circles_of(
        "longer",
        &[
            ("lib.rs", "mod a;\nmod b;\nmod c;\npub use c::Gamma;\n"),
            ("a.rs", "use crate::b::{self, Beta};\n"),
            ("b.rs", "pub struct Beta(crate::Gamma);\n"),
            ("c.rs", "pub struct Gamma;\nuse super::a;\n"),
        ],
    );
    assert_eq!(found, vec![vec!["crate::a".to_string(), "crate::b".to_string(), "crate::c".to_string()]]);
}

#[test]
fn a_parent_that_re_exports_a_child_that_imports_it_is_a_circle() {
    let found = circles_of(
        "parent",
        &[
            ("lib.rs", "pub mod infer;\n"),
            ("infer.rs", "mod model;\npub use model::Model;\npub struct Config;\n"),
            ("infer/model.rs", "use super::Config;\npub struct Model(Config);\n"),
        ],
    );
    assert_eq!(found, vec![vec!["crate::infer".to_string(), "crate::infer::model".to_string()]]);
}

#[test]
fn siblings_one_way_comments_strings_and_test_modules_are_no_circle() {
    let found = circles_of(
        "clean",
        &[
            ("lib.rs", "pub mod infer;\n"),
            ("infer.rs", "mod config;\nmod model;\npub use config::Config;\npub use model::Model;\n"),
            ("infer/config.rs", "/// See [`crate::infer::model::Model`].\npub struct Config;\n"),
            (
                "infer/model.rs",
                "// crate::infer::Config\nuse super::config::Config;\nconst S: &str = \"super::Config\";\n\
                 const R: &str = r#\"crate::infer\"#;\nfn f<'a>(x: &'a str) -> char { '\"' }\npub struct Model(Config);\n\
                 #[cfg(test)]\nmod tests;\n",
            ),
            ("infer/model/tests.rs", "use crate::infer::Model;\n"),
        ],
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn tokenizer_drops_literals_and_comments() {
    let tokens = tokenize("/* crate::a /* nested */ */ b\"crate\" br#\"x\"# 'c' '\\'' 1.5e3 x::y");
    assert_eq!(tokens, vec![Token::Ident("x".into()), Token::PathSep, Token::Ident("y".into())]);
}
