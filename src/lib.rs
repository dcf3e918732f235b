//! evstore: a content-addressed, append-only evidence store.
//!
//! Evidence packets (folders of report files) are archived into an object store addressed by
//! BLAKE3, described by a Merkle tree manifest and a `packet_tree_sha256` that coreutils can
//! recompute, and indexed in an SQLite catalog. See `docs/ARCHITECTURE.md` for the module map and
//! `docs/FORMAT.md` for every on-disk and hash format.
//!
//! The binary (`src/main.rs`) is glue around [`cli::run`]; everything else is library code that
//! returns [`Error`] values and never prints.
//!
//! **Architecture Invariant:** nothing below [`cli`] prints: clippy's `print_stdout` and
//! `print_stderr` are denied in the whole library, and allowed in `cli` alone.
//! `tests/it/architecture.rs` holds the rest of the layering mechanically (SQL only in `catalog`,
//! `serde_cbor` only in `format/cbor.rs`, imports that point only down).

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod catalog;
#[allow(clippy::print_stdout, clippy::print_stderr)]
pub mod cli;
pub mod digest;
pub mod error;
pub mod folder;
pub mod format;
pub mod fsio;
pub mod gate;
pub mod interrupt;
pub mod notice;
// Every public function of `ops` says how it fails (its `# Errors` section).
#[deny(clippy::missing_errors_doc)]
pub mod ops;
pub mod packet;
pub mod packet_ref;
pub mod progress;
pub mod scan;
pub mod store;
pub mod text;

pub use error::{Error, ErrorClass, Result};

/// The version of this evstore build, recorded in every packet record.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Nanoseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
