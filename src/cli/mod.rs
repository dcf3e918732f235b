//! The command line: argument parsing ([`args`]), dispatch and exit codes (`run`), and output
//! (`render`). It is glue: each command calls one `ops` function and renders its report.
//!
//! **Architecture Invariant:** only this module prints or picks exit codes. Every command returns
//! an [`Outcome`] (pass or verification failure) or an [`Error`](crate::Error); [`run()`](run()) turns
//! those into `0` (pass), `1` (a verification failed) or `2` (usage or operational error). With
//! `--json`, every command prints exactly one JSON document on stdout, errors included (see
//! `docs/CLI.md`). No decision a library caller would need is made here.

pub mod args;
mod render;
mod run;

pub use args::{Cli, Command, DedupArg, ExpectArgs, KbCommand};
pub use run::run;

/// How a command ended, when it did not fail with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked out.
    Pass,
    /// A verification failed.
    Fail,
    /// The command completed and printed its report, then a step after it failed (stderr says
    /// which): exit 2, and no second JSON document.
    CompletedThenFailed,
}
