//! Integration tests: drive the real `evstore` binary in temp folders.
//!
//! One test binary (as ripgrep does) with a small [`sandbox::Sandbox`] helper; one module per
//! concern. Regression tests are named after the bug they pin.

mod foundation;
mod gate;
mod mirror;
mod packs;
mod progress;
mod reliability;
mod rerun;
mod sandbox;
mod symlinked_roots;
