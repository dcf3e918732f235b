//! The seal-vs-bytes gate: fail-closed comparison of folders, seals and stored packets.
//!
//! A [`Side`] ([`side`]) is one thing to compare: a folder on disk (hashed now, in parallel, by
//! the one folder hasher), a seal file (`HASH_MANIFEST.txt` text, parsed strictly), or a packet
//! in the store (its verified tree). [`compare`](fn@compare) ([`compare`](mod@compare)) matches an *expected*
//! side against an *observed* one path by path and returns a [`GateReport`] ([`report`]) that
//! lists every file, keeps going after the first failure, and passes only when every expected
//! file is present with identical bytes, nothing unexpected is present, and (when both sides
//! record it) every executable bit matches. Each failing file is explained with the
//! [`DriftClass`](drift::DriftClass) vocabulary of [`drift`], using the expected bytes when a side
//! can provide them (the store, a folder, or an `--original` copy checked against the seal).
//! [`seal`] reads seal files safely and writes a folder's canonical `HASH_MANIFEST.txt`;
//! [`signature`] signs a seal (OpenSSH `SSHSIG`) and checks a signature against an allowed
//! signers file (`verify --signed-by`).
//!
//! Callers: `verify`, `diff`, `kb verify`, `rerun`, and `ingest` (a sealed folder is compared
//! with its seal here before anything is stored).
//!
//! **Architecture Invariant:** the gate depends on {[`crate::packet`], [`crate::folder`], store,
//! format, scan} and never on `ops` or the catalog's queries (it takes a catalog row, plain data,
//! to name a stored packet); it never writes, except [`seal_folder`], which writes only the seal
//! of the folder it hashed, through that folder's handle.

pub mod compare;
pub mod drift;
pub mod report;
pub mod seal;
pub mod side;
pub mod signature;

pub use compare::{check_folder_seal, compare, diff_packets, own_seal_result};
pub use report::{Counts, Expectation, FileResult, GateReport, Relation, Verdict};
pub use seal::{
    read_seal_bytes, read_seal_in, seal_folder, SealAction, SealConfig, SealReport,
    SignatureWritten, MAX_SEAL_BYTES,
};
pub use side::{SealInfo, Side, SideFile, SideKind, SideSummary};
