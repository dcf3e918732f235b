//! Integration tests: drive the real `evstore` binary in temp folders.
//!
//! One test binary (as ripgrep does) with a small [`sandbox::Sandbox`] helper; one module per
//! concern. Regression tests are named after the bug they pin.

#[macro_use]
mod sandbox;

mod architecture;
mod checkpoints;
mod drift_seal;
mod dsse_attestations;
mod file_proof;
mod fixture_store;
mod foundation;
mod gate;
mod golden;
mod ingest_gate;
mod kb_items;
#[cfg(feature = "s3")]
mod many_writers;
mod mirror;
mod mirror_dedup_candidates;
mod ops_api;
mod packet_diff;
mod packs;
mod progress;
mod readme;
mod readonly;
mod rebuild;
mod reindex;
mod reliability;
mod rerun;
mod review13;
mod review14;
mod review_kb;
mod review_misc;
mod rough;
#[cfg(feature = "s3")]
mod s3_commands;
#[cfg(feature = "s3")]
mod s3_count_proxy;
#[cfg(feature = "s3")]
mod s3_store;
mod signals;
mod ssh_signatures;
mod store_locks;
mod store_log;
mod store_shape;
mod symlinked_roots;
mod transparency;
