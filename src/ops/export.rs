//! Reading packets back out of the store: verified records, single files, whole folders.
//!
//! Reads trust the objects, not the catalog: a packet's record object is read and checked against
//! its catalog row, its tree is walked from the stored nodes, and every byte handed out has been
//! re-hashed against its id first. [`export`] writes into an empty folder: each file is decoded
//! once into a temp file beside its destination, verified as it streams, and only then renamed to
//! its name; it sets executable bits, writes `HASH_MANIFEST.txt`, and re-reads what it wrote; if
//! anything fails it removes what it created, so a failed export never leaves a folder that looks
//! complete.
//!
//! **Architecture Invariant:** no byte is ever under a packet file's name in the destination
//! before it has been verified against the stored tree.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rayon::prelude::*;

use crate::catalog::PacketRow;
use crate::digest::Sha256Digest;
use crate::error::{Error, IoContext, Result};
use crate::format::manifest::Manifest;
use crate::format::tree::{manifest_of, HashedFile};
use crate::fsio::blake3_in;
use crate::interrupt::{Cleanup, Interruptible};
use crate::packet::verified_files;
use crate::progress::Progress;
use crate::scan::{scan, SEAL_FILE_NAME};
use crate::store::Store;
use crate::text::EscapePath;

/// What [`export`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportReport {
    /// Files written (not counting `HASH_MANIFEST.txt`).
    pub files: u64,
    /// Bytes written (not counting `HASH_MANIFEST.txt`).
    pub bytes: u64,
    /// The packet_tree_sha256 of what was written, re-hashed from disk.
    pub packet_tree_sha256: Sha256Digest,
    /// The key fingerprint of the seal signature written as `HASH_MANIFEST.txt.sig`, if one was.
    pub seal_signed_by: Option<String>,
}

/// Export a packet into `dest`, which must be absent or an empty folder.
///
/// Progress counts the file bytes written.
///
/// # Errors
///
/// [`Error::Usage`] if `dest` is not empty or not a folder; an error if the packet does not read
/// back verified (its record, tree or a blob is missing or corrupt), on any I/O failure, or if
/// what was written does not re-read as the packet's tree. Whatever the export created is removed
/// before the error is returned.
pub fn export(
    store: &Store,
    row: &PacketRow,
    dest: &Path,
    progress: &Progress,
) -> Result<ExportReport> {
    let created_dest = prepare_empty_dest(dest)?;
    // Reported if a signal stops this export (the error path below removes what it created).
    let _cleanup = crate::interrupt::on_interrupt(if created_dest {
        Cleanup::Removed {
            what: "the destination",
            path: dest.to_path_buf(),
        }
    } else {
        Cleanup::Emptied {
            path: dest.to_path_buf(),
        }
    });
    let result = export_into(store, row, dest, progress);
    if result.is_err() {
        remove_created(dest, created_dest);
    }
    result
}

/// Make sure `dest` is an empty folder; returns true if this call created it.
///
/// # Errors
///
/// [`Error::Usage`] if `dest` exists and is not an empty folder; an operational error if it cannot
/// be examined or created.
pub(crate) fn prepare_empty_dest(dest: &Path) -> Result<bool> {
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.is_dir() => {
            let mut items = fs::read_dir(dest).at(dest, "cannot read destination")?;
            if items.next().is_some() {
                return Err(Error::Usage(format!(
                    "{} is not empty; a new or empty folder is needed",
                    dest.escaped()
                )));
            }
            Ok(false)
        }
        Ok(_) => Err(Error::Usage(format!(
            "{} exists and is not a folder",
            dest.escaped()
        ))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).at(dest, "cannot create destination")?;
            Ok(true)
        }
        Err(err) => Err(Error::io(dest, "cannot use as destination", err)),
    }
}

/// Remove everything inside `dest` (which was empty before), and `dest` itself if we made it.
fn remove_created(dest: &Path, created_dest: bool) {
    if created_dest {
        let _ = fs::remove_dir_all(dest);
    } else if let Ok(items) = fs::read_dir(dest) {
        for item in items.flatten() {
            let path = item.path();
            let _ = if item.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

fn export_into(
    store: &Store,
    row: &PacketRow,
    dest: &Path,
    progress: &Progress,
) -> Result<ExportReport> {
    let (record, files) = verified_files(store, row)?;
    for file in &files {
        if let Some((parent, _)) = file.rel_path.rsplit_once('/') {
            let dir = dest.join(parent);
            fs::create_dir_all(&dir).at(&dir, "cannot create folder")?;
        }
    }
    let phase = progress.phase("export", files.iter().map(|f| f.meta.size).sum());
    files
        .par_iter()
        .map(|file| {
            write_file(store, file, dest)?;
            progress.advance(file.meta.size);
            Ok(())
        })
        .collect::<Result<Vec<()>>>()?;
    drop(phase);
    crate::interrupt::check()?;
    let manifest: Manifest = manifest_of(&files)?;
    let seal = dest.join(SEAL_FILE_NAME);
    write_new_file(&seal, manifest.text().as_bytes(), false)?;
    // The seal's signature, if the store keeps one.
    let signature =
        crate::ops::signed_seals::signature_to_publish(store, &record, manifest.text().as_bytes())?;
    if let Some(kept) = &signature {
        write_new_file(
            &dest.join(crate::scan::SIGNATURE_FILE_NAME),
            &kept.signature,
            false,
        )?;
    }
    crate::fsio::sync_file_system(dest)?;
    // Re-read what was written: exactly the packet's files, each with the tree's size,
    // executable bit and BLAKE3 (the tree, verified above, pins each file's SHA-256 to it).
    check_written(dest, &files)?;
    Ok(ExportReport {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.meta.size).sum(),
        packet_tree_sha256: record.packet_tree_sha256,
        seal_signed_by: signature.map(|kept| kept.key_fingerprint),
    })
}

/// Check that `dest` holds exactly `files` (the seal aside), each a regular file with the listed
/// size, executable bit and BLAKE3.
fn check_written(dest: &Path, files: &[HashedFile]) -> Result<()> {
    let mismatch = |reason: String| Error::Mismatch {
        what: dest.escaped().to_string(),
        reason: format!("the exported folder does not match the packet's tree: {reason}"),
    };
    let scanned = scan(dest)?;
    let written = scanned.require_regular_files()?;
    if written.len() != files.len() {
        return Err(mismatch(format!(
            "{} files written, {} in the tree",
            written.len(),
            files.len()
        )));
    }
    let by_path: HashMap<&str, &HashedFile> =
        files.iter().map(|f| (f.rel_path.as_str(), f)).collect();
    written.par_iter().try_for_each(|disk| {
        let Some(file) = by_path.get(disk.rel_path.as_str()) else {
            return Err(mismatch(format!("{} is not in the tree", disk.rel_path)));
        };
        if disk.size != file.meta.size || disk.executable != file.meta.executable {
            return Err(mismatch(format!(
                "{} has another size or executable bit",
                disk.rel_path
            )));
        }
        if blake3_in(&scanned.dir, &disk.rel_path, disk.size)? != file.meta.blake3 {
            return Err(mismatch(format!("{} has other bytes", disk.rel_path)));
        }
        Ok(())
    })
}

/// Decode one blob into its file. The bytes go to a temp file beside the destination and are
/// verified as they stream (BLAKE3 against the id, SHA-256 and size against the tree entry); only
/// verified bytes are renamed to the file's name, so no unverified byte is ever under a packet
/// file's name. A failure deletes the temp file.
fn write_file(store: &Store, file: &HashedFile, dest: &Path) -> Result<()> {
    crate::interrupt::check()?;
    let path = dest.join(&file.rel_path);
    let folder = path.parent().unwrap_or(dest);
    let mode = if file.meta.executable { 0o755 } else { 0o644 };
    let temp = tempfile::Builder::new()
        .prefix(".evstore-export-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(folder)
        .at(folder, "cannot create a temp file")?;
    let mut writer = Interruptible(io::BufWriter::with_capacity(256 * 1024, temp));
    let decoded = store
        .read_object_into(&file.meta.blake3, &path, &mut writer)
        .map_err(crate::interrupt::prefer)?;
    let temp = writer
        .0
        .into_inner()
        .map_err(|e| Error::io(&path, "cannot write", e.into_error()))?;
    if decoded.digest.sha256 != file.meta.sha256 || decoded.digest.len != file.meta.size {
        return Err(Error::corrupt(
            format!("object {}", file.meta.blake3),
            format!(
                "its SHA-256 or size differs from the tree entry for {}",
                file.rel_path
            ),
        ));
    }
    // The umask may have cleared bits of the requested mode.
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(mode))
        .at(&path, "cannot set mode")?;
    crate::fsio::rename_no_replace(temp.path(), &path).at(&path, "cannot create")?;
    // Moved into place: the temp name is gone, so nothing is left to delete.
    let _ = temp.into_temp_path().keep();
    Ok(())
}

/// Create `path` (it must not exist) with `bytes`.
///
/// # Errors
///
/// An operational error, naming the path, if it exists or cannot be created or written.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8], executable: bool) -> Result<()> {
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
        .at(path, "cannot create")?;
    file.write_all(bytes).at(path, "cannot write")?;
    Ok(())
}
