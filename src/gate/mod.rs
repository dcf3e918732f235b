//! The seal-vs-bytes gate: fail-closed comparison of folders, seals and stored packets.
//!
//! A [`Side`] is one thing to compare: a folder on disk (hashed now, in parallel), a seal file
//! (`HASH_MANIFEST.txt` text, parsed strictly), or a packet in the store (its verified tree).
//! [`compare`] matches an *expected* side against an *observed* one path by path and returns a
//! [`GateReport`] that lists every file, keeps going after the first failure, and passes only
//! when every expected file is present with identical bytes, nothing unexpected is present, and
//! (when both sides record it) every executable bit matches. Each failing file is explained with
//! the [`DriftClass`] vocabulary of [`crate::gate::drift`], using the expected bytes when a side can
//! provide them (the store, a folder, or an `--original` copy checked against the seal).
//!
//! [`seal_folder`] writes a folder's canonical `HASH_MANIFEST.txt`. Nothing here needs a store
//! unless a side is a stored packet.

pub mod drift;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{Catalog, PacketRow};
use crate::digest::{sha256_of, Blake3Digest, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::format::manifest::{canonical_seal_command, Deviation, Manifest, ManifestEntry};
use crate::format::tree::{FileMeta, TreeEntry, MAX_DEPTH};
use crate::fsio::{blake3_in, open_no_follow, read_limited, sha256_in, stream_handle};
use crate::packet::{load_node, verified_files, verified_record};
use crate::progress::Progress;
use crate::scan::{scan, scan_dir, EntryKind, RootDir, SEAL_FILE_NAME};
use crate::store::Store;
use crate::text::EscapePath;
use drift::{compare_streams, DriftClass, FirstDifference, DIAGNOSIS_LIMIT};

/// The largest seal file the gate reads (a seal line is at most ~4 KiB; this allows millions).
pub const MAX_SEAL_BYTES: u64 = 1 << 30;

/// What kind of thing a side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SideKind {
    /// A folder on disk.
    Folder,
    /// A seal file.
    Seal,
    /// A packet in the store.
    Packet,
}

/// One file as a side lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SideFile {
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
    /// Size in bytes, if known (a seal does not record it).
    pub size: Option<u64>,
    /// Executable bit, if known (a seal does not record it).
    pub executable: Option<bool>,
    /// BLAKE3, for stored packets: the id of the blob holding the bytes.
    #[serde(skip)]
    pub blake3: Option<Blake3Digest>,
}

impl From<&FileMeta> for SideFile {
    fn from(meta: &FileMeta) -> SideFile {
        SideFile {
            sha256: meta.sha256,
            size: Some(meta.size),
            executable: Some(meta.executable),
            blake3: Some(meta.blake3),
        }
    }
}

/// Where a side's bytes can be read for diagnosis.
#[derive(Clone, Debug)]
enum ByteSource {
    /// Nowhere: a seal alone.
    None,
    /// Files below this folder, trusted as they are (a compared folder), read through its handle.
    Folder(Arc<RootDir>),
    /// Files below this folder, used only where they hash to the listed SHA-256 (`--original`).
    Original(Arc<RootDir>),
    /// The store's blobs.
    Store,
}

/// One side of a comparison.
#[derive(Clone, Debug)]
pub struct Side {
    /// What it is.
    pub kind: SideKind,
    /// How to name it to a user: the folder or seal path, or `NAME@N`.
    pub label: String,
    /// The packet_tree_sha256 of what it lists (for a folder: of its regular files now).
    pub packet_tree_sha256: Sha256Digest,
    /// How many files it holds in all (may exceed `files.len()` for a pruned tree walk).
    pub file_count: u64,
    /// Regular files by path.
    files: BTreeMap<String, SideFile>,
    /// Entries that are not regular files (folders only): path → what they are.
    others: BTreeMap<String, &'static str>,
    /// The folder's top-level `HASH_MANIFEST.txt`, if a folder side has one.
    folder_seal: Option<PathBuf>,
    bytes: ByteSource,
    /// Files whose bytes live elsewhere (KB references): path → the KB folder and the file's
    /// path below it, read through the KB folder's handle.
    elsewhere: BTreeMap<String, (Arc<RootDir>, String)>,
    /// For a seal side: the seal file's own SHA-256 and how it departs from the canonical text.
    seal: Option<SealInfo>,
}

/// What a seal side's file is, beyond the entries it lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SealInfo {
    /// The SHA-256 of the seal file's bytes (the packet_tree_sha256 only when canonical).
    pub sha256: Sha256Digest,
    /// True if the file is byte for byte the canonical manifest of its entries.
    pub canonical: bool,
    /// How a non-canonical manifest departs from the canonical text (empty when canonical).
    pub deviations: Vec<Deviation>,
}

/// Side summary, as reports show it.
#[derive(Clone, Debug, Serialize)]
pub struct SideSummary {
    /// `folder`, `seal` or `packet`.
    pub kind: SideKind,
    /// The folder or seal path, or `NAME@N`.
    pub label: String,
    /// Its packet_tree_sha256; `None` for a folder that holds entries that are not regular files
    /// (symlinks, FIFOs, ...): such a folder is not a packet and has no tree hash (the hash of
    /// its regular files alone would look like a match where there is none).
    pub packet_tree_sha256: Option<Sha256Digest>,
    /// How many regular files it lists.
    pub files: u64,
    /// Entries that are not regular files, counted by kind (`symbolic link`, `FIFO`, ...).
    pub not_regular: BTreeMap<&'static str, u64>,
    /// For a seal: its own SHA-256 and whether it is canonical (absent for other kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealInfo>,
}

impl Side {
    /// Hash a folder now: every regular file's SHA-256, in parallel; symlinks and special files
    /// are recorded so they can be reported, never followed.
    /// A folder that is a symlink is refused.
    pub fn folder(root: &Path, progress: &Progress) -> Result<Side> {
        Side::folder_in(Arc::new(RootDir::open(root)?), progress)
    }

    /// [`Side::folder`] of an already opened folder.
    pub fn folder_in(root: Arc<RootDir>, progress: &Progress) -> Result<Side> {
        Side::folder_with(root, progress, |dir, rel, size, executable| {
            Ok(SideFile {
                sha256: sha256_in(dir, rel, size)?,
                size: Some(size),
                executable: Some(executable),
                blake3: None,
            })
        })
    }

    /// Hash a folder now to compare it with `expected`, a stored packet, using the faster
    /// digest: a file whose size and BLAKE3 equal the packet's is the packet's file (so it has
    /// the packet's SHA-256, which is not recomputed); any other file gets its SHA-256.
    pub fn folder_against(root: &Path, expected: &Side, progress: &Progress) -> Result<Side> {
        let root = Arc::new(RootDir::open(root)?);
        Side::folder_with(root, progress, |dir, rel, size, executable| {
            let known = expected
                .files
                .get(rel)
                .filter(|e| e.size == Some(size))
                .and_then(|e| e.blake3.map(|b| (b, e.sha256)));
            if let Some((expected_blake3, expected_sha256)) = known {
                let blake3 = blake3_in(dir, rel, size)?;
                if blake3 == expected_blake3 {
                    return Ok(SideFile {
                        sha256: expected_sha256,
                        size: Some(size),
                        executable: Some(executable),
                        blake3: Some(blake3),
                    });
                }
            }
            Ok(SideFile {
                sha256: sha256_in(dir, rel, size)?,
                size: Some(size),
                executable: Some(executable),
                blake3: None,
            })
        })
    }

    fn folder_with(
        root: Arc<RootDir>,
        progress: &Progress,
        hash: impl Fn(&RootDir, &str, u64, bool) -> Result<SideFile> + Sync,
    ) -> Result<Side> {
        let scanned = scan_dir(root)?;
        let dir = scanned.dir.as_ref();
        let regular: Vec<(&str, u64, bool)> = scanned
            .entries
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::Regular { size, executable } => {
                    Some((e.rel_path.as_str(), size, executable))
                }
                _ => None,
            })
            .collect();
        let _phase = progress.phase("verify", regular.iter().map(|r| r.1).sum());
        let hashed: Vec<(String, SideFile)> = regular
            .par_iter()
            .map(|&(rel, size, executable)| {
                let file = hash(dir, rel, size, executable)?;
                progress.advance(size);
                Ok((rel.to_string(), file))
            })
            .collect::<Result<_>>()?;
        let files: BTreeMap<String, SideFile> = hashed.into_iter().collect();
        let others = scanned
            .entries
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::Regular { .. } => None,
                EntryKind::Symlink => Some((e.rel_path.clone(), "symbolic link")),
                EntryKind::Special(what) => Some((e.rel_path.clone(), what)),
            })
            .collect();
        let manifest = manifest_of_side(&files)?;
        Ok(Side {
            kind: SideKind::Folder,
            label: scanned.root.escaped().to_string(),
            packet_tree_sha256: manifest.packet_tree_sha256(),
            file_count: files.len() as u64,
            files,
            others,
            folder_seal: scanned.seal,
            bytes: ByteSource::Folder(scanned.dir.clone()),
            elsewhere: BTreeMap::new(),
            seal: None,
        })
    }

    /// Read a seal file strictly. An untrusted seal is an error naming the line.
    pub fn seal(path: &Path) -> Result<Side> {
        Side::seal_bytes(path, &read_seal_bytes(path)?)
    }

    /// [`Side::seal`] of seal bytes already read from `path`.
    pub fn seal_bytes(path: &Path, bytes: &[u8]) -> Result<Side> {
        let manifest = Manifest::parse_seal(bytes, path)?;
        Ok(Side::from_seal(path, bytes, &manifest, Vec::new()))
    }

    /// Read a seal file named explicitly (`verify --seal FILE`, a `diff` seal operand) as
    /// `sha256sum -c` would ([`Manifest::parse_coreutils`]): any order, `*` markers, either hex
    /// case, BSD tags. Its packet_tree_sha256 is that of the canonical text of its entries; how
    /// it departs from that text is in [`SealInfo`]. A malformed manifest is an error naming the
    /// line.
    pub fn seal_file(path: &Path) -> Result<Side> {
        let bytes = read_seal_bytes(path)?;
        let (manifest, deviations) = Manifest::parse_coreutils(&bytes, path)?;
        Ok(Side::from_seal(path, &bytes, &manifest, deviations))
    }

    fn from_seal(
        path: &Path,
        bytes: &[u8],
        manifest: &Manifest,
        deviations: Vec<Deviation>,
    ) -> Side {
        let files = manifest
            .entries()
            .iter()
            .map(|e| {
                (
                    e.path.clone(),
                    SideFile {
                        sha256: e.sha256,
                        size: None,
                        executable: None,
                        blake3: None,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        let sha256 = sha256_of(bytes);
        let packet_tree_sha256 = manifest.packet_tree_sha256();
        Side {
            kind: SideKind::Seal,
            label: path.escaped().to_string(),
            packet_tree_sha256,
            file_count: files.len() as u64,
            files,
            others: BTreeMap::new(),
            folder_seal: None,
            bytes: ByteSource::None,
            elsewhere: BTreeMap::new(),
            seal: Some(SealInfo {
                sha256,
                canonical: sha256 == packet_tree_sha256 && deviations.is_empty(),
                deviations,
            }),
        }
    }

    /// A remark for reports when this side is a seal that is not canonical; `folder` is the
    /// folder it is compared with, if any.
    pub fn seal_note(&self, folder: Option<&str>) -> Option<String> {
        let info = self.seal.as_ref().filter(|info| !info.canonical)?;
        let how: Vec<&str> = info.deviations.iter().map(|d| d.describe()).collect();
        Some(format!(
            "the seal {} is not canonical ({}); it was read as sha256sum -c reads it and every \
             file it lists was checked, and its packet_tree_sha256 is that of the canonical \
             text of its entries (the file's own SHA-256 is {}); once this check passes, {}",
            self.label,
            how.join(", "),
            info.sha256,
            canonical_seal_command(folder.unwrap_or("DIR"))
        ))
    }

    /// A stored packet: its record and tree, read from the objects and verified.
    pub fn packet(store: &Store, row: &PacketRow) -> Result<Side> {
        let (record, files) = verified_files(store, row)?;
        Ok(Side {
            kind: SideKind::Packet,
            label: format!("{}@{}", record.name, record.version),
            packet_tree_sha256: record.packet_tree_sha256,
            file_count: record.file_count,
            files: files
                .iter()
                .map(|f| (f.rel_path.clone(), SideFile::from(&f.meta)))
                .collect(),
            others: BTreeMap::new(),
            folder_seal: None,
            bytes: ByteSource::Store,
            elsewhere: BTreeMap::new(),
            seal: None,
        })
    }

    /// Use the files below `dir` as the expected bytes for diagnosis, where they hash to what
    /// this side lists (for a seal: `--original DIR`, such as a KB mirror of the sealed packet).
    /// A folder that is a symlink is refused.
    pub fn with_original(mut self, dir: &Path) -> Result<Side> {
        let opened = Arc::new(RootDir::open(dir)?);
        if matches!(self.bytes, ByteSource::None) {
            self.bytes = ByteSource::Original(opened);
        }
        Ok(self)
    }

    /// Stop comparing executable bits against this side (when it is one of several packets that
    /// share a packet_tree_sha256 and may differ in executable bits).
    pub fn without_modes(mut self) -> Side {
        for file in self.files.values_mut() {
            file.executable = None;
        }
        self
    }

    /// Remove a regular file from a folder side (a KB's `KB_REFERENCES.txt`, which is mirror
    /// metadata, not a packet file). Returns what was listed.
    pub fn remove_file(&mut self, path: &str) -> Option<SideFile> {
        let removed = self.files.remove(path);
        if removed.is_some() {
            self.refresh_tree_hash();
        }
        removed
    }

    /// True if this side holds a regular file or another entry at `path`.
    pub fn holds(&self, path: &str) -> bool {
        self.files.contains_key(path) || self.others.contains_key(path)
    }

    /// Add a file of a folder side whose bytes live elsewhere (a KB reference): at `rel` below
    /// the folder `base` (the KB), reached through its handle without following a symlink,
    /// hashed now. Its executable bit is not compared.
    pub fn add_elsewhere(&mut self, path: &str, base: &Arc<RootDir>, rel: &str) -> Result<()> {
        let abs_path = base.display_path(rel);
        let handle = base.open_file(rel)?;
        let meta = handle.metadata().at(&abs_path, "cannot stat")?;
        if !meta.is_file() {
            return Err(Error::unsupported(abs_path, "is not a regular file"));
        }
        let size = meta.len();
        let sha256 = {
            use sha2::Digest as _;
            let mut hasher = sha2::Sha256::new();
            stream_handle(handle, &abs_path, size, |bytes| hasher.update(bytes))?;
            Sha256Digest(hasher.finalize().into())
        };
        self.files.insert(
            path.to_string(),
            SideFile {
                sha256,
                size: Some(size),
                executable: None,
                blake3: None,
            },
        );
        self.elsewhere
            .insert(path.to_string(), (base.clone(), rel.to_string()));
        self.refresh_tree_hash();
        Ok(())
    }

    fn refresh_tree_hash(&mut self) {
        if self.kind == SideKind::Folder {
            if let Ok(manifest) = manifest_of_side(&self.files) {
                self.packet_tree_sha256 = manifest.packet_tree_sha256();
            }
            self.file_count = self.files.len() as u64;
        }
    }

    /// The canonical manifest of what this side lists.
    pub fn manifest(&self) -> Result<Manifest> {
        manifest_of_side(&self.files)
    }

    /// The folder's own `HASH_MANIFEST.txt`, for a folder side that has one.
    pub fn folder_seal(&self) -> Option<&Path> {
        self.folder_seal.as_deref()
    }

    /// The bytes of the folder's own `HASH_MANIFEST.txt` (read through the folder's handle), for
    /// a folder side that has one.
    pub fn read_folder_seal(&self) -> Result<Option<Vec<u8>>> {
        match (&self.folder_seal, &self.bytes) {
            (Some(_), ByteSource::Folder(dir)) => read_seal_in(dir, SEAL_FILE_NAME).map(Some),
            // `folder_seal` is set only for a folder side, which always reads through its
            // handle; anything else is a bug, and never a skipped check.
            (Some(path), _) => Err(Error::unsupported(
                path,
                "internal error: a folder seal without its folder handle; nothing was verified",
            )),
            (None, _) => Ok(None),
        }
    }

    /// The summary reports show.
    pub fn summary(&self) -> SideSummary {
        let mut not_regular = BTreeMap::new();
        for what in self.others.values() {
            *not_regular.entry(*what).or_insert(0) += 1;
        }
        SideSummary {
            kind: self.kind,
            label: self.label.clone(),
            packet_tree_sha256: if self.others.is_empty() {
                Some(self.packet_tree_sha256)
            } else {
                None
            },
            files: self.file_count,
            not_regular,
            seal: self.seal.clone(),
        }
    }
}

fn manifest_of_side(files: &BTreeMap<String, SideFile>) -> Result<Manifest> {
    Manifest::from_entries(
        files
            .iter()
            .map(|(path, f)| ManifestEntry {
                path: path.clone(),
                sha256: f.sha256,
            })
            .collect(),
    )
}

/// Read a seal file (or another small metadata file) whole, refusing anything but a regular
/// file and anything over [`MAX_SEAL_BYTES`]; a symlink is not followed.
pub fn read_seal_bytes(path: &Path) -> Result<Vec<u8>> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::unsupported(
            path,
            "is a symbolic link; evstore reads seals only from regular files (pass the target)",
        ));
    }
    read_limited(open_no_follow(path)?, path, MAX_SEAL_BYTES)
}

/// [`read_seal_bytes`] of the file `rel` below an opened folder, reached through its handle.
pub fn read_seal_in(dir: &RootDir, rel: &str) -> Result<Vec<u8>> {
    let path = dir.display_path(rel);
    let handle = dir.open_file(rel).map_err(|err| {
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            Error::unsupported(
                &path,
                "is a symbolic link; evstore reads seals only from regular files",
            )
        } else {
            err
        }
    })?;
    read_limited(handle, &path, MAX_SEAL_BYTES)
}

/// The result for one path.
#[derive(Clone, Debug, Serialize)]
pub struct FileResult {
    /// The packet path.
    pub path: String,
    /// `ok` or `fail`.
    pub status: &'static str,
    /// Why it fails; empty when it is ok.
    pub classes: Vec<DriftClass>,
    /// What the expected side lists, if it lists this path.
    pub expected: Option<SideFile>,
    /// What the observed side holds, if it holds a regular file at this path.
    pub observed: Option<SideFile>,
    /// What the observed side holds at this path when it is not a regular file (`symbolic link`,
    /// `FIFO`, `folder`, ...): such an entry is never followed or read, so it has no hash.
    pub observed_kind: Option<&'static str>,
    /// Where the bytes first differ, when both sides' bytes could be read.
    pub first_difference: Option<FirstDifference>,
    /// A sentence of context (what a non-regular entry is, why diagnosis was limited).
    pub note: Option<String>,
}

impl FileResult {
    /// A failing result for a path that neither side's bytes describe (a seal, a references
    /// file), with its classes and a sentence saying why.
    pub fn failure(path: &str, classes: Vec<DriftClass>, note: String) -> FileResult {
        FileResult {
            path: path.to_string(),
            status: "fail",
            classes,
            expected: None,
            observed: None,
            observed_kind: None,
            first_difference: None,
            note: Some(note),
        }
    }

    /// True if this path passed.
    pub fn is_ok(&self) -> bool {
        self.classes.is_empty()
    }
}

/// Counts over a report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Paths compared (the union of both sides).
    pub files: u64,
    /// Paths that match.
    pub ok: u64,
    /// Paths that fail.
    pub failed: u64,
    /// Failing paths per class (a path with two classes counts in both).
    pub classes: BTreeMap<DriftClass, u64>,
}

/// The verdict: PASS only when nothing differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Every byte and bit matches.
    #[serde(rename = "PASS")]
    Pass,
    /// Something differs.
    #[serde(rename = "FAIL")]
    Fail,
}

/// The full result of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct GateReport {
    /// PASS or FAIL.
    pub verdict: Verdict,
    /// The side that says what should be there.
    pub expected: SideSummary,
    /// The side that was found.
    pub observed: SideSummary,
    /// Counts.
    pub counts: Counts,
    /// Every path, in path-byte order.
    pub files: Vec<FileResult>,
    /// Folders whose subtrees were equal by tree id and not descended into (packet diffs).
    pub subtrees_skipped: Vec<String>,
    /// Remarks that do not change the verdict.
    pub notes: Vec<String>,
    /// `--expect` / `--expect-not` checks of the observed packet_tree_sha256 (absent if none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expectations: Vec<Expectation>,
}

/// How `--expect` (`equal`) or `--expect-not` (`differ`) relates a packet_tree_sha256 to a SHA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// `--expect SHA`: must be SHA.
    Equal,
    /// `--expect-not SHA`: must not be SHA.
    Differ,
}

/// One `--expect` / `--expect-not` check of a packet_tree_sha256, and whether it held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// `equal` or `differ`.
    pub relation: Relation,
    /// The SHA given on the command line.
    pub sha256: Sha256Digest,
    /// The packet_tree_sha256 found; `None` for a folder that holds entries that are not
    /// regular files (it has no tree hash, so no expectation about it holds).
    pub actual: Option<Sha256Digest>,
    /// True if the relation holds.
    pub holds: bool,
}

impl Expectation {
    /// Check `actual` against `sha256`.
    pub fn check(
        relation: Relation,
        sha256: Sha256Digest,
        actual: Option<Sha256Digest>,
    ) -> Expectation {
        // Fail closed: without a tree hash neither relation holds.
        let holds = actual.is_some_and(|actual| match relation {
            Relation::Equal => sha256 == actual,
            Relation::Differ => sha256 != actual,
        });
        Expectation {
            relation,
            sha256,
            actual,
            holds,
        }
    }

    /// One sentence: what was expected and what was found.
    pub fn describe(&self) -> String {
        let Some(actual) = self.actual else {
            return format!(
                "no packet_tree_sha256 (the folder holds entries that are not regular files), so \
                 {} {} cannot hold",
                match self.relation {
                    Relation::Equal => "--expect",
                    Relation::Differ => "--expect-not",
                },
                self.sha256
            );
        };
        match (self.relation, self.holds) {
            (Relation::Equal, true) => {
                format!(
                    "packet_tree_sha256 is {}, as --expect requires",
                    self.sha256
                )
            }
            (Relation::Equal, false) => format!(
                "packet_tree_sha256 is {}, not {} as --expect requires",
                actual, self.sha256
            ),
            (Relation::Differ, true) => format!(
                "packet_tree_sha256 is {}, which differs from {} as --expect-not requires",
                actual, self.sha256
            ),
            (Relation::Differ, false) => format!(
                "packet_tree_sha256 is still {}, which --expect-not forbids",
                self.sha256
            ),
        }
    }
}

impl GateReport {
    /// Check the observed packet_tree_sha256 against `--expect` / `--expect-not`; any that does
    /// not hold makes the verdict FAIL.
    pub fn with_expectations(mut self, wanted: &[(Relation, Sha256Digest)]) -> GateReport {
        let actual = self.observed.packet_tree_sha256;
        self.expectations = wanted
            .iter()
            .map(|&(relation, sha256)| Expectation::check(relation, sha256, actual))
            .collect();
        if self.expectations.iter().any(|e| !e.holds) {
            self.verdict = Verdict::Fail;
        }
        self
    }

    /// The one-line verdict, such as `FAIL: 3 of 21 files differ (crlf: 1, missing: 2)`. It
    /// counts the packet's files only: a failing file outside the compared sides (a folder's own
    /// seal, a KB packet folder's references file) is named after the count, never counted as a
    /// file of the packet.
    pub fn verdict_line(&self) -> String {
        let outside: Vec<&FileResult> = self
            .files
            .iter()
            .filter(|f| {
                !f.is_ok()
                    && f.expected.is_none()
                    && f.observed.is_none()
                    && f.observed_kind.is_none()
            })
            .collect();
        let mut class_counts = self.counts.classes.clone();
        for file in &outside {
            for class in &file.classes {
                if let Some(n) = class_counts.get_mut(class) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        class_counts.retain(|_, n| *n > 0);
        let files = self.counts.files.saturating_sub(outside.len() as u64);
        let failed = self.counts.failed.saturating_sub(outside.len() as u64);
        let outside_text: Vec<String> = outside
            .iter()
            .map(|f| {
                let classes: Vec<&str> = f.classes.iter().map(|c| c.name()).collect();
                format!("{} fails ({})", f.path, classes.join(", "))
            })
            .collect();
        match self.verdict {
            Verdict::Pass => format!(
                "PASS: {} of {} {} (packet_tree_sha256 {})",
                self.counts.ok,
                crate::text::count(self.counts.files, "file"),
                if self.counts.ok == 1 {
                    "matches"
                } else {
                    "match"
                },
                // A PASS holds no entry that is not a regular file, so this is always set.
                self.observed
                    .packet_tree_sha256
                    .or(self.expected.packet_tree_sha256)
                    .map_or_else(|| "none".to_string(), |sha| sha.to_hex())
            ),
            Verdict::Fail if failed == 0 => {
                let but = if !outside_text.is_empty() {
                    outside_text.join(", and ")
                } else {
                    match self.expectations.iter().find(|e| !e.holds) {
                        Some(failed) => failed.describe(),
                        None => "the packet_tree_sha256 values differ".to_string(),
                    }
                };
                format!(
                    "FAIL: {} of {} {}, but {but}",
                    self.counts.ok,
                    crate::text::count(files, "file"),
                    if self.counts.ok == 1 {
                        "matches"
                    } else {
                        "match"
                    },
                )
            }
            Verdict::Fail => {
                let mut classes: Vec<String> = class_counts
                    .iter()
                    .map(|(class, n)| format!("{class}: {n}"))
                    .collect();
                classes.sort();
                let mut line = format!(
                    "FAIL: {} of {} {} ({})",
                    failed,
                    crate::text::count(files, "file"),
                    if failed == 1 { "differs" } else { "differ" },
                    classes.join(", ")
                );
                if !outside_text.is_empty() {
                    line.push_str(&format!("; also {}", outside_text.join(", ")));
                }
                line
            }
        }
    }

    fn finish(
        expected: &Side,
        observed: &Side,
        mut files: Vec<FileResult>,
        subtrees_skipped: Vec<String>,
        notes: Vec<String>,
    ) -> GateReport {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut counts = Counts {
            files: files.len() as u64,
            ..Counts::default()
        };
        for file in &files {
            if file.is_ok() {
                counts.ok += 1;
            } else {
                counts.failed += 1;
                for class in &file.classes {
                    *counts.classes.entry(*class).or_insert(0) += 1;
                }
            }
        }
        // Fail closed: the verdict comes from the per-file results and, independently, from the
        // two tree hashes; either one differing is a FAIL.
        let (expected, observed) = (expected.summary(), observed.summary());
        let trees_equal = tree_hashes_match(&expected, &observed);
        let mut notes = notes;
        if counts.failed == 0 && !trees_equal {
            notes.push("every listed file matches but the packet_tree_sha256 values differ".into());
        }
        let verdict = if counts.failed == 0 && trees_equal {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        GateReport {
            verdict,
            expected,
            observed,
            counts,
            files,
            subtrees_skipped,
            notes,
            expectations: Vec::new(),
        }
    }
}

/// True only if both sides have a packet_tree_sha256 and they are equal: a side holding entries
/// that are not regular files has none, so it never matches (fail closed).
fn tree_hashes_match(expected: &SideSummary, observed: &SideSummary) -> bool {
    matches!(
        (expected.packet_tree_sha256, observed.packet_tree_sha256),
        (Some(a), Some(b)) if a == b
    )
}

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
                    stream_handle(reader, &full, size, |bytes| hasher.update(bytes))?;
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

/// Check a folder's own `HASH_MANIFEST.txt` against the canonical text of what it is verified
/// against. `None` when it matches or is absent.
pub fn check_folder_seal(observed: &Side, canonical_text: &[u8]) -> Result<Option<FileResult>> {
    let Some(bytes) = observed.read_folder_seal()? else {
        return Ok(None);
    };
    if bytes == canonical_text {
        return Ok(None);
    }
    let diagnosis = drift::diagnose(canonical_text, &bytes);
    Ok(Some(FileResult {
        path: SEAL_FILE_NAME.to_string(),
        status: "fail",
        classes: diagnosis.classes,
        expected: None,
        observed: None,
        observed_kind: None,
        first_difference: diagnosis.first_difference,
        note: Some(
            "the folder's own seal is not the canonical manifest of what it is verified against"
                .into(),
        ),
    }))
}

/// The failing `HASH_MANIFEST.txt` result for a folder's own seal `bytes` that are not
/// `canonical_text`, the canonical manifest of what the folder is verified against; `None` when
/// they are identical.
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

impl GateReport {
    /// Add failing results found outside [`compare`] (problems with a KB packet folder's
    /// references), recounting and deciding the verdict again: never a PASS with one of them.
    pub fn with_failures(mut self, extra: Vec<FileResult>) -> GateReport {
        for file in extra {
            self.counts.files += 1;
            if !file.is_ok() {
                self.counts.failed += 1;
                for class in &file.classes {
                    *self.counts.classes.entry(*class).or_insert(0) += 1;
                }
            } else {
                self.counts.ok += 1;
            }
            self.files.push(file);
        }
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let trees_equal = tree_hashes_match(&self.expected, &self.observed);
        self.verdict = if self.counts.failed == 0 && trees_equal {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        self
    }
}

/// Add a result computed outside [`compare`] (such as [`check_folder_seal`]'s) to a report.
pub fn add_result(
    report: GateReport,
    expected: &Side,
    observed: &Side,
    extra: FileResult,
) -> GateReport {
    let GateReport {
        mut files,
        subtrees_skipped,
        notes,
        ..
    } = report;
    files.push(extra);
    GateReport::finish(expected, observed, files, subtrees_skipped, notes)
}

/// Compare two stored packets by walking their Merkle trees together, descending only into
/// folders whose tree ids differ. Files in equal subtrees are listed from the catalog as ok.
pub fn diff_packets(
    store: &Store,
    catalog: &Catalog,
    expected_row: &PacketRow,
    observed_row: &PacketRow,
) -> Result<GateReport> {
    let a = verified_record(store, expected_row)?;
    let b = verified_record(store, observed_row)?;
    let mut walk = PairWalk {
        store,
        expected: BTreeMap::new(),
        observed: BTreeMap::new(),
        skipped: Vec::new(),
    };
    walk.pair(Some(&a.tree), Some(&b.tree), "", 0)?;
    // Files in skipped subtrees are equal on both sides by construction; list them from the
    // catalog so the report names every file, without reading their nodes.
    if !walk.skipped.is_empty() {
        for entry in catalog.entries(expected_row.id)? {
            let inside = walk.skipped.iter().any(|dir| {
                dir.is_empty()
                    || entry.rel_path.len() > dir.len()
                        && entry.rel_path.starts_with(dir.as_str())
                        && entry.rel_path.as_bytes()[dir.len()] == b'/'
            });
            if inside {
                let file = SideFile::from(&entry.meta);
                walk.expected.insert(entry.rel_path.clone(), file);
                walk.observed.insert(entry.rel_path, file);
            }
        }
    }
    let side = |record: &crate::format::record::PacketRecord, files| Side {
        kind: SideKind::Packet,
        label: format!("{}@{}", record.name, record.version),
        packet_tree_sha256: record.packet_tree_sha256,
        file_count: record.file_count,
        files,
        others: BTreeMap::new(),
        folder_seal: None,
        bytes: ByteSource::Store,
        elsewhere: BTreeMap::new(),
        seal: None,
    };
    let expected = side(&a, walk.expected);
    let observed = side(&b, walk.observed);
    let skipped = walk.skipped;
    let report = compare(Some(store), &expected, &observed)?;
    Ok(GateReport::finish(
        &expected,
        &observed,
        report.files,
        skipped,
        report.notes,
    ))
}

struct PairWalk<'a> {
    store: &'a Store,
    expected: BTreeMap<String, SideFile>,
    observed: BTreeMap<String, SideFile>,
    skipped: Vec<String>,
}

impl PairWalk<'_> {
    fn pair(
        &mut self,
        a: Option<&Blake3Digest>,
        b: Option<&Blake3Digest>,
        prefix: &str,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                format!("tree below {prefix:?}"),
                format!("deeper than {MAX_DEPTH} levels"),
            ));
        }
        if let (Some(x), Some(y)) = (a, b) {
            if x == y {
                self.skipped.push(prefix.to_string());
                return Ok(());
            }
        }
        let node_a = a.map(|id| load_node(self.store, id)).transpose()?;
        let node_b = b.map(|id| load_node(self.store, id)).transpose()?;
        let mut names: BTreeMap<&str, (Option<&TreeEntry>, Option<&TreeEntry>)> = BTreeMap::new();
        for entry in node_a.iter().flat_map(|n| n.entries()) {
            names.entry(entry.name()).or_default().0 = Some(entry);
        }
        for entry in node_b.iter().flat_map(|n| n.entries()) {
            names.entry(entry.name()).or_default().1 = Some(entry);
        }
        for (name, (ea, eb)) in names {
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let dir_of = |e: Option<&TreeEntry>| match e {
                Some(TreeEntry::Dir { tree, .. }) => Some(*tree),
                _ => None,
            };
            if let Some(TreeEntry::File { meta, .. }) = ea {
                self.expected.insert(path.clone(), SideFile::from(meta));
            }
            if let Some(TreeEntry::File { meta, .. }) = eb {
                self.observed.insert(path.clone(), SideFile::from(meta));
            }
            let (da, db) = (dir_of(ea), dir_of(eb));
            if da.is_some() || db.is_some() {
                self.pair(da.as_ref(), db.as_ref(), &path, depth + 1)?;
            }
        }
        Ok(())
    }
}

/// What [`seal_folder`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SealAction {
    /// There was no seal; one was written.
    Written,
    /// The same seal was already there; nothing was written.
    Unchanged,
    /// A different seal was replaced (`--force`).
    Replaced,
}

/// The result of sealing a folder.
#[derive(Clone, Debug, Serialize)]
pub struct SealReport {
    /// What was done.
    pub action: SealAction,
    /// The seal's path.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub seal: PathBuf,
    /// The packet_tree_sha256 (the SHA-256 of the seal).
    pub packet_tree_sha256: Sha256Digest,
    /// Files listed.
    pub files: u64,
}

/// Write `HASH_MANIFEST.txt` in the opened folder `dir`: a new temp file (`O_EXCL`, mode
/// `0644`), fsynced, renamed to the seal's name (without replacing anything unless `replace`),
/// then the folder fsynced. Every step is relative to the folder's handle.
fn write_seal_in(dir: &RootDir, text: &[u8], replace: bool) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsFd;
    let fd = dir.as_fd();
    let seal_path = dir.display_path(SEAL_FILE_NAME);
    let mut attempt = 0u32;
    let (temp_name, handle) = loop {
        let name = format!(
            ".HASH_MANIFEST.txt.{}.{}.{attempt}.tmp",
            std::process::id(),
            crate::now_unix_nanos()
        );
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(fd, name.as_str(), flags, Mode::from_raw_mode(0o644)) {
            Ok(handle) => break (name, File::from(handle)),
            Err(rustix::io::Errno::EXIST) if attempt < 100 => attempt += 1,
            Err(errno) => {
                return Err(Error::io(
                    dir.path(),
                    "cannot create a temporary seal file in",
                    errno.into(),
                ))
            }
        }
    };
    let temp_path = dir.display_path(&temp_name);
    let remove_temp = || {
        let _ = rustix::fs::unlinkat(fd, temp_name.as_str(), rustix::fs::AtFlags::empty());
    };
    let mut handle = handle;
    if let Err(err) = handle.write_all(text).and_then(|()| handle.sync_all()) {
        remove_temp();
        return Err(Error::io(temp_path, "cannot write the seal", err));
    }
    drop(handle);
    // The point of no return: after a signal, the temp file is removed and no seal written.
    if let Err(err) = crate::interrupt::check() {
        remove_temp();
        return Err(err);
    }
    let renamed = if replace {
        rustix::fs::renameat(fd, temp_name.as_str(), fd, SEAL_FILE_NAME)
            .map_err(|errno| Error::io(&seal_path, "cannot replace the seal", errno.into()))
    } else {
        // Without RENAME_NOREPLACE this links (never replaces); the unlink below removes the temp.
        crate::fsio::rename_file_no_replace_at(fd, &temp_name, SEAL_FILE_NAME).map_err(|err| {
            Error::io(
                &seal_path,
                "cannot write the seal (appeared meanwhile?)",
                err,
            )
        })
    };
    // After a rename the temp name is gone (unlink fails harmlessly); after a link or a failure it
    // is removed here.
    remove_temp();
    renamed?;
    rustix::fs::fsync(fd).map_err(|errno| Error::io(dir.path(), "cannot sync", errno.into()))
}

/// Write `dir/HASH_MANIFEST.txt` with the canonical manifest of the folder. The folder must hold
/// only regular files (as for ingest). A different existing seal is refused unless `force`.
pub fn seal_folder(dir: &Path, force: bool) -> Result<SealReport> {
    let scanned = scan(dir)?;
    let files = scanned.require_regular_files()?;
    let entries: Vec<ManifestEntry> = files
        .par_iter()
        .map(|f| {
            Ok(ManifestEntry {
                path: f.rel_path.clone(),
                sha256: sha256_in(&scanned.dir, &f.rel_path, f.size)?,
            })
        })
        .collect::<Result<_>>()?;
    let manifest = Manifest::from_entries(entries)?;
    let text = manifest.text();
    let seal_path = dir.join(SEAL_FILE_NAME);
    let report = |action| SealReport {
        action,
        seal: seal_path.clone(),
        packet_tree_sha256: manifest.packet_tree_sha256(),
        files: manifest.len() as u64,
    };
    let existing = match &scanned.seal {
        Some(_) => Some(read_seal_in(&scanned.dir, SEAL_FILE_NAME)?),
        None => None,
    };
    if let Some(existing) = &existing {
        if existing.as_slice() == text.as_bytes() {
            return Ok(report(SealAction::Unchanged));
        }
        if !force {
            return Err(Error::Usage(format!(
                "{} already holds a different seal (its SHA-256 is {}, the folder's \
                 packet_tree_sha256 is {}); run `evstore verify {}` to see what changed, or pass \
                 --force to replace the seal",
                seal_path.escaped(),
                sha256_of(existing),
                manifest.packet_tree_sha256(),
                dir.escaped()
            )));
        }
    }
    crate::interrupt::check()?;
    // Written through the folder's handle, like everything the scan read: if DIR was swapped for
    // a symlink since, the seal still lands in the folder that was hashed, never elsewhere.
    write_seal_in(&scanned.dir, text.as_bytes(), existing.is_some())?;
    Ok(report(if existing.is_some() {
        SealAction::Replaced
    } else {
        SealAction::Written
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_is_written_into_the_folder_that_was_opened_even_if_it_was_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.txt"), "a\n").unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let opened = RootDir::open(&root).unwrap();
        std::fs::rename(&root, dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &root).unwrap();
        write_seal_in(&opened, b"seal text\n", false).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("moved").join(SEAL_FILE_NAME)).unwrap(),
            b"seal text\n"
        );
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        // A new seal never replaces one that is there; --force does, and no temp file stays.
        assert!(write_seal_in(&opened, b"other\n", false).is_err());
        write_seal_in(&opened, b"other\n", true).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("moved"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
