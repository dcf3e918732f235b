//! The read commands' data: `show`, `manifest`, `cat`, `ls`, `log` and `runs`, each gathered into
//! a report struct for the caller to render. A packet's files always come from its verified
//! stored tree ([`crate::packet::verified_files`]), never from catalog rows alone.
//!
//! **Architecture Invariant:** nothing here writes to the store or the catalog, and nothing
//! prints; a file's bytes are handed out only after the whole object was checked.

use std::io::{self, Write};

use serde_json::Value;

use crate::catalog::{Catalog, EventRow, PacketRow, RunRow};
use crate::error::{Error, Result};
use crate::format::record::PacketRecord;
use crate::format::tree::{manifest_of, HashedFile};
use crate::packet::{cat_file, verified_files};
use crate::store::Store;

/// A stored packet: its catalog row, its verified record and its files from the stored tree.
#[derive(Clone, Debug)]
pub struct PacketContents {
    /// The catalog row the packet was resolved to.
    pub row: PacketRow,
    /// The record object, checked against the row.
    pub record: PacketRecord,
    /// The files, in path-byte order, as the verified tree lists them.
    pub files: Vec<HashedFile>,
    /// The key fingerprints (`SHA256:…`) of the seal signatures kept for its tree, each verified
    /// over its canonical manifest.
    pub seal_signed_by: Vec<String>,
}

/// Read a stored packet back for `show`: the record object checked against the catalog row, and
/// the files its stored tree lists, checked to hash to the recorded `packet_tree_sha256`.
///
/// # Errors
///
/// [`Error::Corrupt`] for a record or tree that is damaged or disagrees with the catalog; I/O
/// errors (with the path) reading objects.
pub fn packet_contents(store: &Store, row: &PacketRow) -> Result<PacketContents> {
    let (record, files) = verified_files(store, row)?;
    let manifest = crate::format::tree::manifest_of(&files)?;
    let seal_signed_by = crate::ops::signed_seals::kept_seal_signatures(
        store,
        &record.packet_tree_sha256,
        manifest.text().as_bytes(),
    )?
    .into_iter()
    .map(|kept| kept.key_fingerprint)
    .collect();
    Ok(PacketContents {
        row: row.clone(),
        record,
        files,
        seal_signed_by,
    })
}

/// A packet's canonical manifest (the `HASH_MANIFEST.txt` text).
#[derive(Clone, Debug)]
pub struct PacketManifest {
    /// The verified record.
    pub record: PacketRecord,
    /// The manifest text, whose SHA-256 is the packet_tree_sha256.
    pub text: String,
}

/// The canonical manifest of the stored packet `row`, built from its verified tree.
///
/// # Errors
///
/// As [`packet_contents`].
pub fn packet_manifest(store: &Store, row: &PacketRow) -> Result<PacketManifest> {
    let (record, files) = verified_files(store, row)?;
    let text = manifest_of(&files)?.text().to_string();
    Ok(PacketManifest { record, text })
}

/// One file of a stored packet, found in its verified tree.
#[derive(Clone, Debug)]
pub struct PacketFile {
    /// The verified record of the packet holding it.
    pub record: PacketRecord,
    /// The file.
    pub file: HashedFile,
}

/// Find the file `path` in the stored packet `row` (by its exact path in the packet).
///
/// # Errors
///
/// [`Error::NotFound`] when the packet has no such file; otherwise as [`packet_contents`].
pub fn find_file(store: &Store, row: &PacketRow, path: &str) -> Result<PacketFile> {
    let (record, files) = verified_files(store, row)?;
    let file = files
        .into_iter()
        .find(|f| f.rel_path == path)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "{}@{} has no file {path:?}",
                record.name, record.version
            ))
        })?;
    Ok(PacketFile { record, file })
}

/// Check the whole object holding `file`'s bytes (what `cat --json` reports as verified),
/// reading it once without writing it anywhere.
///
/// # Errors
///
/// [`Error::Corrupt`] or [`Error::Mismatch`] for an object that is damaged or does not hash to
/// its id; I/O errors (with the path).
pub fn verify_file_bytes(store: &Store, file: &HashedFile) -> Result<()> {
    store.read_object(&file.meta.blake3, io::sink())?;
    Ok(())
}

/// Write `file`'s bytes to `out`, only after checking the whole object once.
///
/// # Errors
///
/// As [`verify_file_bytes`], and an error writing to `out`.
pub fn write_file_bytes(store: &Store, file: &HashedFile, out: &mut dyn Write) -> Result<()> {
    cat_file(store, file, out)
}

/// Every packet version in the catalog, for `ls`.
///
/// # Errors
///
/// Catalog errors.
pub fn list_packets(catalog: &Catalog) -> Result<Vec<PacketRow>> {
    catalog.packets()
}

/// The catalog's event log, oldest first, for `log`.
///
/// # Errors
///
/// Catalog errors.
pub fn list_events(catalog: &Catalog) -> Result<Vec<EventRow>> {
    catalog.events()
}

/// One recorded rerun, with its JSON summary decoded.
#[derive(Clone, Debug)]
pub struct RunEntry {
    /// The catalog row.
    pub row: RunRow,
    /// The row's summary, decoded (`null` when the stored text is not JSON).
    pub summary: Value,
}

/// The recorded reruns (of the packet `packet_id`, or all), for `runs`.
///
/// # Errors
///
/// Catalog errors.
pub fn list_runs(catalog: &Catalog, packet_id: Option<i64>) -> Result<Vec<RunEntry>> {
    Ok(catalog
        .runs(packet_id)?
        .into_iter()
        .map(|row| {
            let summary = serde_json::from_str::<Value>(&row.summary).unwrap_or(Value::Null);
            RunEntry { row, summary }
        })
        .collect())
}
