//! The house rules of the workspace, read from its source text: the module tree of every crate,
//! the `use` graph between its module files, and the circles in that graph.
//!
//! A module file imports another when it names a path that resolves into it (in a `use` or in
//! code): `crate::a::b::X` resolves to the deepest module on the path, `super::X` to the parent
//! when `X` is not a module, a bare `child::X` to a child module, and `crate::X` through the crate
//! root's re-exports to where `X` comes from. `mod x;` is ownership, not an import; `pub use
//! child::X` is an import. Test modules (`#[cfg(test)] mod tests;`) are left out.

pub mod graph;
pub mod modules;
pub mod tokens;

pub use graph::{cycles, Cycle, Edge, ImportGraph};
pub use modules::{crate_roots, CrateTree, Module};

#[cfg(test)]
mod tests;
