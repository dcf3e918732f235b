//! The use cases: one module per command family, each a library function that returns a report
//! struct and never prints. `cli` renders the reports; everything a library caller needs to
//! decide (which seal a folder is checked against, how a `diff` operand is typed, what is recorded
//! in the event log) is decided here.

pub mod attest;
pub mod checkpoints;
pub mod export;
pub mod file_proof;
pub mod forget;
pub mod fsck;
pub mod ingest;
pub mod kb;
pub mod markers;
pub mod mirror;
pub mod read;
pub mod reindex;
pub mod rerun;
pub mod setup;
pub mod signed_seals;
pub mod transparency;
pub mod verify;
