//! The comparison: match an expected [`Side`] against an observed one path by path
//! ([`compare`](fn@compare)), or two stored packets by walking their trees together ([`diff_packets`]), and
//! explain every failing file with the drift vocabulary of [`super::drift`], reading the expected
//! and observed bytes where a side can provide them.
//!
//! **Architecture Invariant:** the gate is pure: it reads folders, seals and the store, and
//! writes nothing; it never queries the catalog; every path of either side is in the report.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek};
use std::path::Path;

use rayon::prelude::*;

use super::drift::{self, compare_streams, DriftClass, DIAGNOSIS_LIMIT};
use super::report::{FileResult, GateReport};
use super::side::{ByteSource, Side, SideFile, SideKind};
use crate::catalog::PacketRow;
use crate::digest::{sha256_of, Blake3Digest, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::fsio::stream_handle;
use crate::packet::{load_node, too_deep, verified_record, walk_subtree, walk_trees, Visit};
use crate::scan::SEAL_FILE_NAME;
use crate::store::Store;

/// Compare what `observed` holds against what `expected` lists.
pub fn compare(store: Option<&Store>, expected: &Side, observed: &Side) -> Result<GateReport> {
    let paths: BTreeSet<&String> = expected.files.keys().chain(observed.files.keys()).collect();
    let results: Vec<FileResult> = paths
        .into_par_iter()
        .map(|path| compare_path(store, expected, observed, path))
        .collect::<Result<_>>()?;
    let mut results = results;
    let folder_of = |side: &Side| (side.kind == SideKind::Folder).then_some(side.label.clone());
    let folder = folder_of(observed).or_else(|| folder_of(expected));
    let mut notes: Vec<String> = [expected, observed]
        .iter()
        .filter_map(|side| side.seal_note(folder.as_deref()))
        .collect();
    // Non-regular entries that no expected file accounts for are extra.
    for (path, what) in &observed.others {
        if !expected.files.contains_key(path) {
            results.push(FileResult {
                path: path.clone(),
                status: "fail",
                classes: vec![DriftClass::Extra],
                expected: None,
                observed: None,
                observed_kind: Some(what),
                first_difference: None,
                note: Some(format!("a {what} the seal does not list")),
            });
        }
    }
    // Non-regular entries of the expected side (a folder operand of `diff`) that the observed
    // side lacks: the two differ there, whatever the regular files say.
    for (path, what) in &expected.others {
        if !observed.files.contains_key(path) && !observed.others.contains_key(path) {
            results.push(FileResult {
                path: path.clone(),
                status: "fail",
                classes: vec![DriftClass::Missing],
                expected: None,
                observed: None,
                observed_kind: None,
                first_difference: None,
                note: Some(format!(
                    "the expected side holds a {what} here, which the observed side does not"
                )),
            });
        }
    }
    if matches!(expected.bytes, ByteSource::None) && results.iter().any(needs_bytes) {
        notes.push(
            "the sealed bytes are not available, so changed files are reported as `content`; \
             pass --original DIR (a copy of the sealed packet) or verify --against a stored packet \
             to diagnose them"
                .into(),
        );
    }
    Ok(GateReport::finish(
        expected,
        observed,
        results,
        Vec::new(),
        notes,
    ))
}

fn needs_bytes(result: &FileResult) -> bool {
    result.expected.is_some() && result.observed.is_some() && !result.is_ok()
}

fn compare_path(
    store: Option<&Store>,
    expected: &Side,
    observed: &Side,
    path: &str,
) -> Result<FileResult> {
    let e = expected.files.get(path).copied();
    let o = observed.files.get(path).copied();
    let mut result = FileResult {
        path: path.to_string(),
        status: "ok",
        classes: Vec::new(),
        expected: e,
        observed: o,
        observed_kind: None,
        first_difference: None,
        note: None,
    };
    match (e, o) {
        (Some(_), None) => {
            let dir_prefix = format!("{path}/");
            if let Some(what) = observed.others.get(path) {
                result.classes.push(DriftClass::Type);
                result.observed_kind = Some(what);
                result.note = Some(format!("is now a {what}"));
            } else if observed.files.keys().any(|p| p.starts_with(&dir_prefix)) {
                result.classes.push(DriftClass::Type);
                result.observed_kind = Some("folder");
                result.note = Some("is now a folder".into());
            } else {
                result.classes.push(DriftClass::Missing);
            }
        }
        (None, Some(_)) => result.classes.push(DriftClass::Extra),
        (Some(e), Some(o)) => {
            if e.sha256 != o.sha256 {
                let (diagnosis, note) = diagnose_path(store, expected, observed, path, &e, &o)?;
                result.classes = diagnosis.classes;
                result.first_difference = diagnosis.first_difference;
                result.note = note;
            }
            if let (Some(a), Some(b)) = (e.executable, o.executable) {
                if a != b {
                    result.classes.push(DriftClass::Mode);
                    result.classes.sort();
                }
            }
        }
        (None, None) => {}
    }
    if !result.classes.is_empty() {
        result.status = "fail";
    }
    Ok(result)
}

/// Bytes of one side of one file, for diagnosis: small ones in memory, large ones as a file.
enum Fetched {
    Small(Vec<u8>),
    Large(File),
}

fn diagnose_path(
    store: Option<&Store>,
    expected: &Side,
    observed: &Side,
    path: &str,
    e: &SideFile,
    o: &SideFile,
) -> Result<(drift::Diagnosis, Option<String>)> {
    let content_only = |note: String| {
        (
            drift::Diagnosis {
                classes: vec![DriftClass::Content],
                first_difference: None,
            },
            Some(note),
        )
    };
    let Some(sealed) = fetch(store, expected, path, e)? else {
        return Ok(content_only(
            "sealed bytes not available; SHA-256 differs".into(),
        ));
    };
    let Some(found) = fetch(store, observed, path, o)? else {
        return Ok(content_only(
            "observed bytes not available; SHA-256 differs".into(),
        ));
    };
    match (sealed, found) {
        (Fetched::Small(a), Fetched::Small(b)) => {
            if a == b {
                // The bytes changed again between hashing and diagnosis: still a failure.
                return Ok(content_only(
                    "the file changed while it was being checked".into(),
                ));
            }
            Ok((drift::diagnose(&a, &b), None))
        }
        (a, b) => {
            let into_reader = |f: Fetched| -> Box<dyn Read> {
                match f {
                    Fetched::Small(v) => Box::new(std::io::Cursor::new(v)),
                    Fetched::Large(file) => Box::new(std::io::BufReader::new(file)),
                }
            };
            let compared = compare_streams(into_reader(a), into_reader(b))
                .map_err(|err| Error::io(path, "cannot compare", err))?;
            let note = Some(format!(
                "larger than {} MiB: compared by streaming, text and JSON classes not checked",
                DIAGNOSIS_LIMIT >> 20
            ));
            Ok(match compared {
                None => content_only("the file changed while it was being checked".into()),
                Some((first, truncated)) => (
                    drift::Diagnosis {
                        classes: vec![if truncated {
                            DriftClass::Truncated
                        } else {
                            DriftClass::Content
                        }],
                        first_difference: Some(first),
                    },
                    note,
                ),
            })
        }
    }
}

/// Read one file's bytes from a side, or `None` if the side cannot provide them.
fn fetch(
    store: Option<&Store>,
    side: &Side,
    path: &str,
    file: &SideFile,
) -> Result<Option<Fetched>> {
    match &side.bytes {
        ByteSource::None => Ok(None),
        ByteSource::Folder(root) => match side.elsewhere.get(path) {
            Some((base, rel)) => {
                read_folder_file(base.open_file(rel)?, &base.display_path(rel)).map(Some)
            }
            None => read_folder_file(root.open_file(path)?, &root.display_path(path)).map(Some),
        },
        ByteSource::Original(root) => {
            let full = root.display_path(path);
            // Only a regular file reached without a symlink can diagnose; anything else is no
            // source of bytes.
            let Ok(handle) = root.open_file(path) else {
                return Ok(None);
            };
            if !handle.metadata().is_ok_and(|m| m.is_file()) {
                return Ok(None);
            }
            let mut fetched = read_folder_file(handle, &full)?;
            let sha = match &mut fetched {
                Fetched::Small(bytes) => sha256_of(bytes),
                Fetched::Large(handle) => {
                    use sha2::Digest as _;
                    let size = handle.metadata().at(&full, "cannot stat")?.len();
                    let mut hasher = sha2::Sha256::new();
                    let reader = handle.try_clone().at(&full, "cannot read")?;
                    stream_handle(reader, &full, size, |bytes| {
                        hasher.update(bytes);
                        Ok(())
                    })?;
                    handle.rewind().at(&full, "cannot rewind")?;
                    Sha256Digest(hasher.finalize().into())
                }
            };
            Ok((sha == file.sha256).then_some(fetched))
        }
        ByteSource::Store => {
            let (Some(store), Some(id)) = (store, file.blake3) else {
                return Ok(None);
            };
            if file.size.unwrap_or(u64::MAX) <= DIAGNOSIS_LIMIT {
                let mut bytes = Vec::new();
                store.read_object(&id, &mut bytes)?;
                Ok(Some(Fetched::Small(bytes)))
            } else {
                let mut temp = tempfile::tempfile().at(Path::new("<temp>"), "cannot create")?;
                store.read_object(&id, &mut temp)?;
                temp.rewind().at(Path::new("<temp>"), "cannot rewind")?;
                Ok(Some(Fetched::Large(temp)))
            }
        }
    }
}

fn read_folder_file(mut handle: File, path: &Path) -> Result<Fetched> {
    let size = handle.metadata().at(path, "cannot stat")?.len();
    if size > DIAGNOSIS_LIMIT {
        return Ok(Fetched::Large(handle));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    (&mut handle)
        .take(DIAGNOSIS_LIMIT + 1)
        .read_to_end(&mut bytes)
        .at(path, "cannot read")?;
    Ok(Fetched::Small(bytes))
}

/// Check a folder's own `HASH_MANIFEST.txt` (read through the folder's handle) against
/// `canonical_text`, the canonical manifest of what the folder is verified against: the failing
/// result of [`own_seal_result`], or `None` when it matches or the folder has no seal.
///
/// # Errors
///
/// A seal that cannot be read ([`super::read_seal_in`]).
pub fn check_folder_seal(observed: &Side, canonical_text: &[u8]) -> Result<Option<FileResult>> {
    Ok(observed
        .read_folder_seal()?
        .and_then(|bytes| own_seal_result(canonical_text, &bytes)))
}

/// The failing `HASH_MANIFEST.txt` result for a folder's own seal `bytes` that are not
/// `canonical_text`, the canonical manifest of what the folder is verified against; `None` when
/// they are identical. The one comparison of a folder's own seal.
pub fn own_seal_result(canonical_text: &[u8], bytes: &[u8]) -> Option<FileResult> {
    if bytes == canonical_text {
        return None;
    }
    let diagnosis = drift::diagnose(canonical_text, bytes);
    let mut classes = diagnosis.classes;
    if classes.is_empty() {
        // The bytes differ: never an ok result.
        classes.push(DriftClass::Content);
    }
    let mut result = FileResult::failure(
        SEAL_FILE_NAME,
        classes,
        "the folder's own seal is not the canonical manifest of what it is verified against".into(),
    );
    result.first_difference = diagnosis.first_difference;
    Some(result)
}

/// Compare two stored packets by walking their Merkle trees together ([`walk_trees`]),
/// descending only into folders whose tree ids differ. Files in equal subtrees are listed as ok
/// from the stored tree too: each equal subtree is walked once (its nodes read and decoded
/// strictly), so a file list never comes from the catalog.
///
/// # Errors
///
/// A record or node that cannot be read or does not verify; a tree deeper than the format
/// allows; a blob that cannot be read for diagnosis.
pub fn diff_packets(
    store: &Store,
    expected_row: &PacketRow,
    observed_row: &PacketRow,
) -> Result<GateReport> {
    let a = verified_record(store, expected_row)?;
    let b = verified_record(store, observed_row)?;
    let mut expected_files = BTreeMap::new();
    let mut observed_files = BTreeMap::new();
    let mut skipped: Vec<(String, Blake3Digest, usize)> = Vec::new();
    let mut load = |id: &Blake3Digest| load_node(store, id).map(|node| Some(Cow::Owned(node)));
    walk_trees(&mut load, Some(&a.tree), Some(&b.tree), &mut |visit| {
        match visit {
            Visit::File {
                path,
                expected,
                observed,
            } => {
                if let Some(meta) = expected {
                    expected_files.insert(path.to_string(), SideFile::from(meta));
                }
                if let Some(meta) = observed {
                    observed_files.insert(path.to_string(), SideFile::from(meta));
                }
            }
            Visit::EqualSubtree { path, id, depth } => skipped.push((path.to_string(), id, depth)),
            Visit::TooDeep { path, .. } => return Err(too_deep(path)),
        }
        Ok(())
    })?;
    // Each equal subtree's files, from its stored nodes: equal on both sides by construction.
    for (path, id, depth) in &skipped {
        let (files, _) = walk_subtree(store, id, path, *depth)?;
        for file in files {
            let side_file = SideFile::from(&file.meta);
            expected_files.insert(file.rel_path.clone(), side_file);
            observed_files.insert(file.rel_path, side_file);
        }
    }
    let expected = Side::stored(&a, expected_files);
    let observed = Side::stored(&b, observed_files);
    let report = compare(Some(store), &expected, &observed)?;
    Ok(GateReport::finish(
        &expected,
        &observed,
        report.files,
        skipped.into_iter().map(|(path, _, _)| path).collect(),
        report.notes,
    ))
}
