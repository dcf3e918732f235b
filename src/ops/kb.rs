//! The knowledge-base (KB) folder: its layout, the references file, and `kb verify`.
//!
//! A KB is a folder that people and tools read. A *packet folder* in it is any folder holding an
//! entry `HASH_MANIFEST.txt` (the seal; one that is not a regular file fails that folder's
//! check) and not inside another packet folder: everything
//! below a packet folder, a sealed subfolder included, is that packet's files (a packet may embed
//! an earlier packet). Besides the sealed files, a packet folder may
//! hold one piece of mirror metadata, `KB_REFERENCES.txt`, which says for files that were not
//! copied where in the same KB their identical bytes live. Interrupted mirrors leave staging
//! folders under `.evstore-staging/` at the KB's top level; nothing there is ever a packet.
//!
//! This module owns the KB's layout rules (packet folders, reserved names, KB-relative paths),
//! the references file, `kb verify` ([`verify_kb`], [`check_packet_folder`]), the KB's locks (the
//! staging lock and the publish lock) and `kb gc-staging` ([`gc_staging`]). It writes nothing to
//! a KB except that `gc_staging` removes the `mirror-*` folders interrupted mirrors left in
//! `.evstore-staging/`; [`crate::ops::mirror`] publishes packets. Paths inside the KB are resolved
//! one component at a time, or through the KB folder's handle, without following symlinks, so
//! nothing here reads or removes anything outside the KB.
//!
//! **Architecture Invariant:** a packet folder is checked against the packet the catalog
//! recorded there (else a stored packet with the seal's SHA-256, else the seal alone), and
//! everything below a packet folder is that packet's files, never a packet folder of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, RawMode};

use serde::Serialize;

use crate::catalog::{Catalog, MirrorRow};
use crate::digest::{sha256_of, Sha256Digest};
use crate::error::{Error, ErrorClass, IoContext, Result};
use crate::format::attestation::RecordedVerdict;
use crate::format::event::KbVerifyOutcome;
use crate::format::manifest::Manifest;
use crate::format::references;
use crate::fsio::{open_folder_no_follow, Lock, LockMode};
use crate::gate::drift::DriftClass;
use crate::gate::signature::AllowedSigners;
use crate::gate::{self, read_seal_in, GateReport, Side, Verdict};
use crate::progress::Progress;
use crate::scan::{refuse_symlink, walk, RootDir, SEAL_FILE_NAME};
use crate::store::Store;
use crate::text::EscapePath;

pub use crate::format::references::{
    check_kb_rel_path, Reference, REFERENCES_FILE_NAME, STAGING_DIR_NAME,
};

/// What a KB-relative path is on disk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KbPath {
    /// Nothing is there (a component is missing).
    Missing,
    /// A regular file.
    File(PathBuf),
    /// A folder.
    Folder(PathBuf),
    /// Something else (a FIFO, a socket, a device).
    Other(PathBuf),
}

/// Resolve `rel` below `kb_root` one component at a time, refusing (with an error naming the
/// path) any component that is a symlink, or a non-folder where a folder is needed.
///
/// # Errors
///
/// An operational error, naming the path, for a component that is a symlink, a non-folder where
/// a folder is needed, or that cannot be examined.
pub(crate) fn resolve_in_kb(kb_root: &Path, rel: &str) -> Result<KbPath> {
    let mut current = kb_root.to_path_buf();
    let components: Vec<&str> = rel.split('/').collect();
    for (index, name) in components.iter().enumerate() {
        current.push(name);
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(KbPath::Missing),
            Err(err) => return Err(Error::io(&current, "cannot stat", err)),
        };
        let last = index + 1 == components.len();
        if meta.file_type().is_symlink() {
            return Err(Error::unsupported(
                &current,
                "is a symbolic link; evstore never follows symlinks inside a KB",
            ));
        }
        if last {
            return Ok(if meta.is_file() {
                KbPath::File(current)
            } else if meta.is_dir() {
                KbPath::Folder(current)
            } else {
                KbPath::Other(current)
            });
        }
        if !meta.is_dir() {
            return Err(Error::unsupported(&current, "is not a folder"));
        }
    }
    Ok(KbPath::Missing)
}

/// The result of checking one packet folder of a KB.
#[derive(Clone, Debug, Serialize)]
pub struct PacketFolderReport {
    /// The packet folder, relative to the KB root.
    pub folder: String,
    /// PASS or FAIL.
    pub verdict: Verdict,
    /// The packet it was checked against (`NAME@N`), when the store knows it.
    pub packet: Option<String>,
    /// The SHA-256 of the folder's seal (its claimed packet_tree_sha256), when readable.
    pub seal_sha256: Option<Sha256Digest>,
    /// Every class among the failing files (and `missing` for a packet folder that is gone).
    pub classes: Vec<DriftClass>,
    /// Files referenced rather than present.
    pub references: u64,
    /// The referenced files whose bytes were read where `KB_REFERENCES.txt` says they live (they
    /// are not in the folder).
    pub referenced: Vec<Reference>,
    /// Short reasons for a FAIL besides the classes of failing files (such as `untrusted
    /// references file`), so that a failing folder always names why.
    pub reasons: Vec<String>,
    /// Failures that are not about one file's bytes: an untrusted seal or references file, a
    /// reference that does not resolve, a catalog record that disagrees.
    pub problems: Vec<String>,
    /// The per-file comparison, when the seal could be read.
    pub report: Option<GateReport>,
    /// The problems (also in `problems`) with the references file and what it references.
    #[serde(skip)]
    pub reference_problems: Vec<String>,
}

impl PacketFolderReport {
    fn failed(
        folder: &str,
        classes: Vec<DriftClass>,
        reason: &str,
        problem: String,
    ) -> PacketFolderReport {
        PacketFolderReport {
            folder: folder.to_string(),
            verdict: Verdict::Fail,
            packet: None,
            seal_sha256: None,
            classes,
            references: 0,
            referenced: Vec::new(),
            reasons: vec![reason.to_string()],
            problems: vec![problem],
            report: None,
            reference_problems: Vec::new(),
        }
    }
}

/// The store and catalog a KB check may consult.
pub struct StoreView<'a> {
    /// The store, for packet trees and bytes.
    pub store: &'a Store,
    /// Its catalog, for packets and mirror records.
    pub catalog: &'a Catalog,
}

/// Check one packet folder (`folder_abs`, named `folder` in reports) of the KB at `kb_root`.
/// `expected` overrides what the folder is checked against (mirror uses the packet it wrote);
/// otherwise the store's packet with the seal's SHA-256, else the seal alone.
///
/// # Errors
///
/// An operational error if the folder cannot be opened through its handle, or the store or
/// catalog cannot be read; an unreadable or untrusted seal, bad references and drifted files are
/// a FAIL in the report.
pub fn check_packet_folder(
    kb_root: &Path,
    folder: &str,
    folder_abs: &Path,
    view: Option<&StoreView<'_>>,
    mirror_row: Option<&MirrorRow>,
    expected: Option<Side>,
) -> Result<PacketFolderReport> {
    let dir = Arc::new(RootDir::open(folder_abs)?);
    let checked = FolderCheck {
        kb_root,
        kb_dir: None,
        folder,
        view,
        mirror_row,
        signed_by: None,
    };
    check_packet_folder_in(&checked, dir, expected)
}

/// What one packet folder of a KB is checked with.
struct FolderCheck<'a> {
    /// The KB folder, canonical.
    kb_root: &'a Path,
    /// The KB folder's handle, when the caller opened it.
    kb_dir: Option<Arc<RootDir>>,
    /// The packet folder, KB-relative.
    folder: &'a str,
    /// The store, when there is one.
    view: Option<&'a StoreView<'a>>,
    /// The catalog's record of the mirror there, if any.
    mirror_row: Option<&'a MirrorRow>,
    /// `kb verify --signed-by`: the seal must be signed by a key this file accepts.
    signed_by: Option<&'a AllowedSigners>,
}

/// [`check_packet_folder`] of an opened packet folder: its seal, references file and files are
/// all read through its handle, and referenced files through `kb_dir` (the KB folder's handle,
/// opened from `kb_root` when not given).
fn check_packet_folder_in(
    checked: &FolderCheck<'_>,
    dir: Arc<RootDir>,
    expected: Option<Side>,
) -> Result<PacketFolderReport> {
    let FolderCheck {
        kb_root,
        folder,
        view,
        mirror_row,
        signed_by,
        ..
    } = *checked;
    let kb_dir = checked.kb_dir.clone();
    let seal_path = dir.display_path(SEAL_FILE_NAME);
    let seal_bytes = match read_seal_in(&dir, SEAL_FILE_NAME) {
        Ok(bytes) => bytes,
        Err(err) => {
            return Ok(PacketFolderReport::failed(
                folder,
                Vec::new(),
                "unreadable seal",
                format!("unreadable seal: {err}"),
            ))
        }
    };
    let sealed = match Manifest::parse_seal(&seal_bytes, &seal_path) {
        Ok(sealed) => sealed,
        Err(err) => {
            return Ok(PacketFolderReport::failed(
                folder,
                Vec::new(),
                "untrusted seal",
                format!("untrusted seal: {err}"),
            ))
        }
    };
    let seal_sha256 = sha256_of(&seal_bytes);
    let mut findings = FolderFindings::default();
    let (expected, packet_label) = match expected {
        Some(side) => {
            let label = Some(side.label.clone());
            (side, label)
        }
        None => {
            let seal = Seal {
                path: &seal_path,
                bytes: &seal_bytes,
                sha256: &seal_sha256,
            };
            expected_for_folder(view, mirror_row, &seal, &mut findings)?
        }
    };
    let recorded_kinds = recorded_file_kinds(view, mirror_row)?;

    let mut observed = Side::folder_in(dir.clone(), &Progress::silent())?;
    let problems_before_references = findings.problems.len();
    let references = take_references_file(&dir, &expected, &mut observed, &mut findings)?;
    let resolved = ReferencesInKb {
        kb_root,
        kb_dir,
        sealed: &sealed,
        recorded_kinds: &recorded_kinds,
    }
    .resolve(&references, &mut observed, &mut findings)?;
    let reference_problems = findings.problems[problems_before_references..].to_vec();
    let store = view.map(|v| v.store);
    let mut report = gate::compare(store, &expected, &observed)?;
    for (path, kind) in &resolved.not_references {
        note_recorded_copy_now_referenced(&mut report, path, kind, &mut findings);
    }
    let classes: BTreeSet<DriftClass> = report
        .files
        .iter()
        .flat_map(|f| f.classes.iter().copied())
        .collect();
    if expected.packet_tree_sha256 != seal_sha256 {
        findings.reasons.insert("seal is not the packet's");
        findings.problems.push(format!(
            "the seal's SHA-256 {seal_sha256} is not the packet's packet_tree_sha256 {}",
            expected.packet_tree_sha256
        ));
    }
    if let Some(allowed) = signed_by {
        // Over the very seal bytes read above, with the signature read through the same handle.
        let signature_path = dir.display_path(crate::scan::SIGNATURE_FILE_NAME);
        let signature = observed.read_folder_signature()?;
        let signed = crate::gate::signature::SignedSeal {
            seal: &seal_path,
            seal_bytes: Some(&seal_bytes),
            signature: &signature_path,
            signature_bytes: signature.as_deref(),
        };
        let now = (crate::now_unix_nanos() / 1_000_000_000) as i64;
        let check = crate::gate::signature::check_signature(&signed, allowed, now);
        if !check.is_valid() {
            findings.add("seal signature", check.describe());
        }
        report = report.with_signature(check);
    }
    let pass = report.verdict == Verdict::Pass && findings.problems.is_empty();
    Ok(PacketFolderReport {
        folder: folder.to_string(),
        verdict: if pass { Verdict::Pass } else { Verdict::Fail },
        packet: packet_label,
        seal_sha256: Some(seal_sha256),
        classes: classes.into_iter().collect(),
        references: references.len() as u64,
        referenced: resolved.referenced,
        reasons: findings.reasons.into_iter().map(str::to_string).collect(),
        problems: findings.problems,
        report: Some(report),
        reference_problems,
    })
}

/// What a packet folder's check found besides the per-file comparison: the reasons for a FAIL
/// (short, one of each) and the problems (sentences, in the order found).
#[derive(Default)]
struct FolderFindings {
    reasons: BTreeSet<&'static str>,
    problems: Vec<String>,
}

impl FolderFindings {
    fn add(&mut self, reason: &'static str, problem: String) {
        self.reasons.insert(reason);
        self.problems.push(problem);
    }
}

/// Take the folder's `KB_REFERENCES.txt` (when the expected packet does not list a file of that
/// name) out of the observed files and parse it; an untrusted one is a finding, and no reference
/// is then followed.
fn take_references_file(
    dir: &RootDir,
    expected: &Side,
    observed: &mut Side,
    findings: &mut FolderFindings,
) -> Result<Vec<Reference>> {
    if !observed.holds(REFERENCES_FILE_NAME)
        || expected.manifest()?.get(REFERENCES_FILE_NAME).is_some()
    {
        return Ok(Vec::new());
    }
    observed.remove_file(REFERENCES_FILE_NAME);
    let references_path = dir.display_path(REFERENCES_FILE_NAME);
    match read_seal_in(dir, REFERENCES_FILE_NAME)
        .and_then(|bytes| references::decode(&bytes, &references_path))
    {
        Ok(parsed) => Ok(parsed),
        Err(err) => {
            findings.add(
                "untrusted references file",
                format!("untrusted references file: {err}"),
            );
            Ok(Vec::new())
        }
    }
}

/// Where a packet folder's references are resolved: the KB (by path for the messages, through its
/// handle for the bytes), the folder's seal, and how the catalog recorded each file.
struct ReferencesInKb<'a> {
    kb_root: &'a Path,
    /// The KB folder's handle, opened on first use when not given.
    kb_dir: Option<Arc<RootDir>>,
    sealed: &'a Manifest,
    recorded_kinds: &'a BTreeMap<String, String>,
}

/// What resolving the references found.
struct ResolvedReferences {
    /// The references whose bytes were added to the observed side from where they live.
    referenced: Vec<Reference>,
    /// Files the catalog recorded as copies (or hard links) that the folder now references:
    /// (path, recorded kind). Not resolved: the comparison reports them missing.
    not_references: Vec<(String, String)>,
}

impl ReferencesInKb<'_> {
    /// Check each reference against the seal and the folder, and add the bytes of each one that
    /// resolves to a regular file of the KB to `observed`.
    fn resolve(
        mut self,
        references: &[Reference],
        observed: &mut Side,
        findings: &mut FolderFindings,
    ) -> Result<ResolvedReferences> {
        let mut resolved = ResolvedReferences {
            referenced: Vec::new(),
            not_references: Vec::new(),
        };
        for reference in references {
            match self.sealed.get(&reference.path) {
                Some(sha) if *sha == reference.sha256 => {}
                Some(_) => findings.add(
                    "bad reference",
                    format!(
                        "{REFERENCES_FILE_NAME}: {} is pinned with another SHA-256 than the seal's",
                        reference.path
                    ),
                ),
                None => findings.add(
                    "bad reference",
                    format!(
                        "{REFERENCES_FILE_NAME}: {} is not listed in the seal",
                        reference.path
                    ),
                ),
            }
            if observed.holds(&reference.path) {
                findings.add(
                    "bad reference",
                    format!(
                        "{} is both present and listed as a reference",
                        reference.path
                    ),
                );
                continue;
            }
            if let Some(kind) = self
                .recorded_kinds
                .get(&reference.path)
                .filter(|kind| kind.as_str() != "reference")
            {
                resolved
                    .not_references
                    .push((reference.path.clone(), kind.clone()));
                continue;
            }
            match resolve_in_kb(self.kb_root, &reference.kb_path) {
                // Checked by path above (for the messages); read through the KB's handle, so a
                // component swapped for a symlink since is never followed.
                Ok(KbPath::File(_)) => {
                    let kb = self.kb_handle()?;
                    observed.add_elsewhere(&reference.path, &kb, &reference.kb_path)?;
                    resolved.referenced.push(reference.clone());
                }
                Ok(_) => findings.add(
                    "bad reference",
                    format!(
                        "{}: its referenced copy {} is missing or not a regular file",
                        reference.path, reference.kb_path
                    ),
                ),
                Err(err) => findings.add("bad reference", format!("{}: {err}", reference.path)),
            }
        }
        Ok(resolved)
    }

    fn kb_handle(&mut self) -> Result<Arc<RootDir>> {
        if let Some(kb) = &self.kb_dir {
            return Ok(kb.clone());
        }
        let opened = Arc::new(RootDir::open(self.kb_root)?);
        self.kb_dir = Some(opened.clone());
        Ok(opened)
    }
}

/// A file the catalog recorded as a copy or hard link in this folder, which the folder's
/// references file now lists instead: a recorded copy is never accepted as a reference.
fn note_recorded_copy_now_referenced(
    report: &mut GateReport,
    path: &str,
    kind: &str,
    findings: &mut FolderFindings,
) {
    let kind = if kind == "hardlink" {
        "hard link"
    } else {
        kind
    };
    let note = format!(
        "the catalog recorded {path} as a {kind} in this folder when it was mirrored, but it \
         is not in the folder and {REFERENCES_FILE_NAME} now lists it as a reference: a \
         recorded {kind} is never accepted as a reference"
    );
    if let Some(file) = report.files.iter_mut().find(|f| f.path == path) {
        file.note = Some(note.clone());
    }
    findings.add("recorded copy replaced by a reference", note);
}

/// A packet folder's seal as read: its path (for messages), bytes and SHA-256.
struct Seal<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    sha256: &'a Sha256Digest,
}

/// What a packet folder with no given expectation is checked against ([`expected_side`]), and
/// the packet's label; a seal that is not the recorded packet's, or unknown to the store, is a
/// finding.
fn expected_for_folder(
    view: Option<&StoreView<'_>>,
    mirror_row: Option<&MirrorRow>,
    seal: &Seal<'_>,
    findings: &mut FolderFindings,
) -> Result<(Side, Option<String>)> {
    let mut label = None;
    let problems_before = findings.problems.len();
    let side = expected_side(
        view,
        mirror_row,
        seal.path,
        seal.bytes,
        seal.sha256,
        &mut label,
        &mut findings.problems,
    )?;
    if findings.problems.len() > problems_before {
        findings.reasons.insert(if mirror_row.is_some() {
            "seal is not the recorded packet's"
        } else {
            "seal unknown to the store"
        });
    }
    Ok((side, label))
}

/// How the catalog recorded each file of this mirror as published (`copy`, `hardlink`,
/// `reference`): a file it recorded as written into the folder is never accepted as a
/// reference, whatever the folder's references file now says.
fn recorded_file_kinds(
    view: Option<&StoreView<'_>>,
    mirror_row: Option<&MirrorRow>,
) -> Result<BTreeMap<String, String>> {
    match (view, mirror_row) {
        (Some(view), Some(row)) => Ok(view
            .catalog
            .mirror_file_kinds(row.id)?
            .into_iter()
            .collect()),
        _ => Ok(BTreeMap::new()),
    }
}

/// What a packet folder is checked against: the packet its mirror record names, else a stored
/// packet with the seal's SHA-256 (executable bits not compared), else the seal alone.
fn expected_side(
    view: Option<&StoreView<'_>>,
    mirror_row: Option<&MirrorRow>,
    seal_path: &Path,
    seal_bytes: &[u8],
    seal_sha256: &Sha256Digest,
    label: &mut Option<String>,
    problems: &mut Vec<String>,
) -> Result<Side> {
    let Some(view) = view else {
        return Side::seal_bytes(seal_path, seal_bytes);
    };
    if let Some(row) = mirror_row {
        let packet = view.catalog.packet_by_id(row.packet_id)?;
        let side = Side::packet(view.store, &packet)?;
        *label = Some(side.label.clone());
        if row.packet_tree_sha256 != *seal_sha256 {
            problems.push(format!(
                "the catalog records {} (packet_tree_sha256 {}) mirrored here, but the seal's \
                 SHA-256 is {seal_sha256}",
                side.label, row.packet_tree_sha256
            ));
        }
        return Ok(side);
    }
    match view.catalog.packets_with_sha256(seal_sha256)?.first() {
        Some(packet) => {
            let side = Side::packet(view.store, packet)?.without_modes();
            *label = Some(side.label.clone());
            Ok(side)
        }
        None => {
            problems.push(format!(
                "the seal's SHA-256 {seal_sha256} is not a packet_tree_sha256 the store knows"
            ));
            Side::seal_bytes(seal_path, seal_bytes)
        }
    }
}

/// The result of `kb verify`.
#[derive(Clone, Debug, Serialize)]
pub struct KbReport {
    /// The KB folder, canonical.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub kb: PathBuf,
    /// PASS only if every packet folder passes and every recorded mirror is present.
    pub verdict: Verdict,
    /// Packet folders checked.
    pub packets_checked: u64,
    /// Packet folders (and recorded mirrors) that fail.
    pub packets_failed: u64,
    /// One report per packet folder, and per recorded mirror that is gone, by folder.
    pub packets: Vec<PacketFolderReport>,
    /// Remarks that do not change the verdict.
    pub notes: Vec<String>,
}

/// Check every packet folder of the KB at `kb_dir`; with a store, also check the catalog's mirror
/// records for this KB against what is on disk.
///
/// # Errors
///
/// An operational error if `kb_dir` is a symlink or not a folder, if a folder of the KB cannot be
/// read, if a symlink in the KB leads to a packet folder (what a reader finds there cannot be
/// verified), or if the catalog cannot be read. A packet folder that fails, or cannot be read, is
/// a FAIL in the report, not an error.
pub fn verify_kb(
    kb_dir: &Path,
    view: Option<&StoreView<'_>>,
    signed_by: Option<&AllowedSigners>,
) -> Result<KbReport> {
    // KB_DIR may itself be a packet folder: a symlink to it is refused, never followed.
    refuse_symlink(kb_dir)?;
    let kb_root = canonical_kb(kb_dir)?;
    // The KB is walked, and each packet folder opened, relative to this handle: no symlink below
    // it is ever followed, even one swapped in during the walk.
    let kb = Arc::new(RootDir::open(&kb_root)?);
    let store_root = view.and_then(|v| std::fs::canonicalize(v.store.root()).ok());
    let store_identity = store_root
        .as_deref()
        .and_then(|root| std::fs::metadata(root).ok())
        .map(|meta| (meta.dev(), meta.ino()));
    let found_in_kb = find_packet_folders(&kb, &kb_root, store_identity)?;
    let folders = found_in_kb.folders;
    let mut notes = linked_folder_notes(&kb_root, &folders, &found_in_kb.linked)?;
    if let Some(store_root) = &store_root {
        if store_root.starts_with(&kb_root) {
            notes.push(format!(
                "the store {} lies inside the KB and was skipped",
                store_root.escaped()
            ));
        }
    }
    let staging = kb_root.join(STAGING_DIR_NAME);
    if let Ok(entries) = std::fs::read_dir(&staging) {
        let leftovers = entries.count();
        if leftovers > 0 {
            notes.push(format!(
                "{} of interrupted mirrors in {} (never packets; \
                 `evstore kb gc-staging` removes them)",
                crate::text::count(leftovers as u64, "staging folder"),
                staging.escaped()
            ));
        }
    }
    let kb_key = kb_root.to_string_lossy().into_owned();
    let mirror_rows: BTreeMap<String, MirrorRow> = match view {
        Some(v) => v
            .catalog
            .mirrors_in(&kb_key)?
            .into_iter()
            .map(|row| (row.rel_path.clone(), row))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut packets = Vec::new();
    for rel in &folders {
        packets.push(check_kb_packet_folder(
            &kb,
            &kb_root,
            rel,
            view,
            mirror_rows.get(rel),
            signed_by,
        )?);
    }
    let found: BTreeSet<&str> = folders.iter().map(String::as_str).collect();
    packets.extend(missing_recorded_mirrors(&found, &mirror_rows));
    packets.sort_by(|a, b| a.folder.cmp(&b.folder));
    let failed = packets
        .iter()
        .filter(|p| p.verdict == Verdict::Fail)
        .count() as u64;
    Ok(KbReport {
        kb: kb_root,
        verdict: if failed == 0 {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        packets_checked: folders.len() as u64,
        packets_failed: failed,
        packets,
        notes,
    })
}

/// What the walk of a KB found.
struct FoundInKb {
    /// The packet folders, KB-relative (`""` for the KB folder itself), in walk order.
    folders: Vec<String>,
    /// Symlinks to folders: (KB-relative path, whether the folder it leads to holds a seal).
    linked: Vec<(PathBuf, bool)>,
}

/// Walk the KB through its handle and find its packet folders, never entering a packet folder's
/// subfolders, the staging folder, or the store (by identity).
fn find_packet_folders(
    kb: &RootDir,
    kb_root: &Path,
    store_identity: Option<(u64, u64)>,
) -> Result<FoundInKb> {
    let mut folders: Vec<String> = Vec::new();
    let mut linked: Vec<(PathBuf, bool)> = Vec::new();
    walk(kb, |item| {
        let file_type = FileType::from_raw_mode(RawMode::from(item.stat.st_mode));
        match file_type {
            // A seal of any type makes its folder a packet folder (one that is not a regular
            // file then fails that folder's check): never a reason to skip what is below.
            _ if item.name == SEAL_FILE_NAME => {
                let parent = item.rel.parent().unwrap_or(Path::new(""));
                folders.push(relative(kb_root, &kb_root.join(parent))?);
                Ok(false)
            }
            FileType::Directory => {
                let identity = (item.stat.st_dev, item.stat.st_ino);
                // Everything below a packet folder is part of that packet (a packet may embed an
                // earlier, sealed packet): it is checked as the packet's files, never as a packet
                // folder of its own, so a folder whose parent holds a seal is not entered.
                let parent_is_packet =
                    rustix::fs::statat(item.parent, SEAL_FILE_NAME, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok();
                Ok(!parent_is_packet
                    && item.rel != Path::new(STAGING_DIR_NAME)
                    && store_identity != Some(identity))
            }
            FileType::Symlink => {
                // Followed only to learn what it leads to; nothing is read through it.
                let target = rustix::fs::statat(item.parent, item.name, AtFlags::empty());
                if target.is_ok_and(|t| {
                    FileType::from_raw_mode(RawMode::from(t.st_mode)) == FileType::Directory
                }) {
                    let sealed = rustix::fs::statat(
                        item.parent,
                        Path::new(item.name).join(SEAL_FILE_NAME),
                        AtFlags::empty(),
                    )
                    .is_ok();
                    linked.push((item.rel.to_path_buf(), sealed));
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    })?;
    Ok(FoundInKb { folders, linked })
}

/// A note for each symlink to a folder outside every packet folder (it was not followed); an
/// error for one that leads to a packet folder.
fn linked_folder_notes(
    kb_root: &Path,
    folders: &[String],
    linked: &[(PathBuf, bool)],
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for (rel, sealed) in linked {
        let inside_packet = folders
            .iter()
            .any(|folder| folder.is_empty() || rel.starts_with(folder.as_str()));
        if inside_packet {
            // Part of a packet folder: its check reports the symlink as a file that should not
            // be there.
            continue;
        }
        let path = kb_root.join(rel);
        let target = std::fs::read_link(&path)
            .map(|t| t.escaped().to_string())
            .unwrap_or_else(|err| format!("an unreadable target: {err}"));
        if *sealed {
            return Err(Error::unsupported(
                &path,
                format!(
                    "is a symbolic link (to {target}) to a packet folder; evstore never follows \
                     symlinks inside a KB, so what a reader finds there cannot be verified: \
                     replace the link with the packet folder itself (`evstore mirror`), or remove it"
                ),
            ));
        }
        notes.push(format!(
            "{} is a symbolic link (to {target}) to a folder; it was not followed, and nothing \
             below it was checked",
            path.escaped()
        ));
    }
    Ok(notes)
}

/// Check one packet folder found in the KB, opened through the KB's handle; a verification error
/// (an unreadable file) is that folder's FAIL.
fn check_kb_packet_folder(
    kb: &Arc<RootDir>,
    kb_root: &Path,
    rel: &str,
    view: Option<&StoreView<'_>>,
    mirror_row: Option<&MirrorRow>,
    signed_by: Option<&AllowedSigners>,
) -> Result<PacketFolderReport> {
    let dir = Arc::new(kb.open_dir(rel)?);
    let checked = FolderCheck {
        kb_root,
        kb_dir: Some(kb.clone()),
        folder: rel,
        view,
        mirror_row,
        signed_by,
    };
    match check_packet_folder_in(&checked, dir, None) {
        Ok(report) => Ok(report),
        Err(err) if err.class() == ErrorClass::Verification => Ok(PacketFolderReport::failed(
            rel,
            vec![DriftClass::Content],
            "unreadable",
            err.to_string(),
        )),
        Err(err) => Err(err),
    }
}

/// A FAIL for every mirror the catalog records in this KB where no packet folder was found.
fn missing_recorded_mirrors(
    found: &BTreeSet<&str>,
    mirror_rows: &BTreeMap<String, MirrorRow>,
) -> Vec<PacketFolderReport> {
    let mut missing = Vec::new();
    for (rel, row) in mirror_rows {
        if found.contains(rel.as_str()) {
            continue;
        }
        let inside = found
            .iter()
            .find(|outer| outer.is_empty() || rel.starts_with(&format!("{outer}/")));
        let problem = match inside {
            Some(outer) => format!(
                "the catalog records a mirror of packet_tree_sha256 {} here, but it lies \
                 inside the packet folder {}, so it is part of that packet, not a packet \
                 folder of its own",
                row.packet_tree_sha256,
                if outer.is_empty() { "." } else { outer }
            ),
            None => format!(
                "the catalog records a mirror of packet_tree_sha256 {} here, but there is no \
                 packet folder",
                row.packet_tree_sha256
            ),
        };
        missing.push(PacketFolderReport::failed(
            rel,
            vec![DriftClass::Missing],
            "recorded mirror missing",
            problem,
        ));
    }
    missing
}

/// The packet folder that holds `kb_root/rel` (a proper ancestor, the KB root included, with a
/// `HASH_MANIFEST.txt` of any type), as a KB-relative path (`""` for the root). Components are
/// not followed through symlinks; the walk stops at the first missing one.
///
/// # Errors
///
/// An operational error, naming the path, for a component that is a symlink or not a folder, or
/// that cannot be examined.
pub(crate) fn enclosing_packet_folder(kb_root: &Path, rel: &str) -> Result<Option<String>> {
    let components: Vec<&str> = rel.split('/').collect();
    let mut current = kb_root.to_path_buf();
    for depth in 0..components.len() {
        if depth > 0 {
            current.push(components[depth - 1]);
            match std::fs::symlink_metadata(&current) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::unsupported(
                        &current,
                        "is a symbolic link; evstore never follows symlinks inside a KB",
                    ))
                }
                Ok(_) => return Err(Error::unsupported(&current, "is not a folder")),
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(Error::io(&current, "cannot stat", err)),
            }
        }
        let seal = current.join(SEAL_FILE_NAME);
        match std::fs::symlink_metadata(&seal) {
            Ok(_) => return Ok(Some(components[..depth].join("/"))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(&seal, "cannot stat", err)),
        }
    }
    Ok(None)
}

/// The first packet folder (a folder with a `HASH_MANIFEST.txt` of any type) at or below
/// `folder`, in path order. The folder is walked through its handle ([`walk`]), so no symlink is
/// followed, even one swapped in during the walk.
///
/// # Errors
///
/// An operational error if `folder` cannot be opened as a folder (a symlink is refused) or a
/// folder below it cannot be read.
pub(crate) fn first_packet_folder_below(folder: &Path) -> Result<Option<PathBuf>> {
    let dir = RootDir::open(folder)?;
    // Every packet folder met, as a path relative to `folder`: the first in path order is the
    // least (path order is depth-first order with each folder's entries sorted by name). Below
    // a packet folder nothing comes earlier, so the walk does not enter it.
    let mut sealed: Option<PathBuf> = None;
    walk(&dir, |item| {
        if item.name == SEAL_FILE_NAME {
            let parent = item.rel.parent().unwrap_or(Path::new("")).to_path_buf();
            if sealed.as_ref().is_none_or(|first| parent < *first) {
                sealed = Some(parent);
            }
            return Ok(false);
        }
        let is_folder =
            FileType::from_raw_mode(RawMode::from(item.stat.st_mode)) == FileType::Directory;
        let parent_is_packet =
            rustix::fs::statat(item.parent, SEAL_FILE_NAME, AtFlags::SYMLINK_NOFOLLOW).is_ok();
        Ok(is_folder && !parent_is_packet)
    })?;
    Ok(sealed.map(|rel| {
        if rel.as_os_str().is_empty() {
            folder.to_path_buf()
        } else {
            folder.join(rel)
        }
    }))
}

/// The KB that holds the folder `dir` (canonical): the nearest of `dir` and its ancestors that
/// holds a real `.evstore-staging` folder (every mirror creates it, and it stays).
pub(crate) fn find_kb_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|folder| {
            std::fs::symlink_metadata(folder.join(STAGING_DIR_NAME)).is_ok_and(|meta| meta.is_dir())
        })
        .map(Path::to_path_buf)
}

/// The KB-relative path of `dir` (canonical) in the KB at `kb_root` (canonical), checked to be a
/// folder reached from the KB root without symlinks; `""` for the root itself.
///
/// # Errors
///
/// An operational error if `dir` is not inside the KB, is not reached from the KB root through
/// folders alone, or has a name that is not UTF-8.
pub(crate) fn folder_in_kb(kb_root: &Path, dir: &Path) -> Result<String> {
    let rel = relative(kb_root, dir)?;
    if rel.is_empty() {
        return Ok(rel);
    }
    match resolve_in_kb(kb_root, &rel)? {
        KbPath::Folder(_) => Ok(rel),
        _ => Err(Error::unsupported(dir, "is not a folder of the KB")),
    }
}

/// The canonical path of an existing KB folder.
///
/// # Errors
///
/// An operational error if `kb_dir` does not exist, is not a folder, or cannot be resolved.
pub(crate) fn canonical_kb(kb_dir: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(kb_dir).at(kb_dir, "cannot read KB folder")?;
    if !meta.is_dir() {
        return Err(Error::unsupported(kb_dir, "is not a folder"));
    }
    std::fs::canonicalize(kb_dir).at(kb_dir, "cannot resolve")
}

fn relative(root: &Path, path: &Path) -> Result<String> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| Error::unsupported(path, "is not inside the KB"))?;
    let mut parts = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => parts.push(
                name.to_str()
                    .ok_or_else(|| Error::unsupported(path, "folder name is not valid UTF-8"))?
                    .to_string(),
            ),
            _ => return Err(Error::unsupported(path, "unexpected path component")),
        }
    }
    Ok(parts.join("/"))
}

// ---------------------------------------------------------------------------------------------
// `kb verify` as a command: the check, and its `kb-verify` event in the store's log.

/// `kb verify` and what became of its event.
#[derive(Debug)]
pub struct RecordedKbVerify {
    /// The check's report.
    pub report: KbReport,
    /// Why the `kb-verify` event was not logged, when a store was used and it was not (a store
    /// this user cannot write, or a full file system): the verdict stands without it.
    pub event_not_logged: Option<String>,
}

/// Check the KB at `kb_dir` ([`verify_kb`]; against the store when `opened` is one) and record
/// the check as a `kb-verify` event in that store's log. The event is a record of the check, not
/// part of it: a store this user cannot write (or one on a full file system) is still verified,
/// and why the event is missing is returned in the report.
///
/// # Errors
///
/// Whatever [`verify_kb`] returns; a failing packet folder is a report whose verdict is
/// [`Verdict::Fail`], not an error.
pub fn verify_kb_and_record(
    kb_dir: &Path,
    opened: Option<(&Store, &mut Catalog)>,
    signed_by: Option<&AllowedSigners>,
) -> Result<RecordedKbVerify> {
    let Some((store, catalog)) = opened else {
        return Ok(RecordedKbVerify {
            report: verify_kb(kb_dir, None, signed_by)?,
            event_not_logged: None,
        });
    };
    let report = verify_kb(
        kb_dir,
        Some(&StoreView {
            store,
            catalog: &*catalog,
        }),
        signed_by,
    )?;
    let event_not_logged = log_kb_verify_event(catalog, &report).err();
    Ok(RecordedKbVerify {
        report,
        event_not_logged,
    })
}

/// Log the `kb-verify` event of `report`, or say why it cannot be logged.
fn log_kb_verify_event(
    catalog: &mut Catalog,
    report: &KbReport,
) -> std::result::Result<(), String> {
    let recorded_verdict = match report.verdict {
        Verdict::Pass => RecordedVerdict::Pass,
        Verdict::Fail => RecordedVerdict::Fail,
    };
    match catalog.access().clone() {
        crate::catalog::CatalogAccess::ReadWrite => catalog
            .log_event(&crate::catalog::NewEvent::kb_verify(
                &report.kb,
                &KbVerifyOutcome {
                    verdict: recorded_verdict,
                    packets_checked: report.packets_checked,
                    packets_failed: report.packets_failed,
                    failed: report
                        .packets
                        .iter()
                        .filter(|p| p.verdict == Verdict::Fail)
                        .map(|p| p.folder.clone())
                        .collect(),
                },
            ))
            .map(|_| ())
            .map_err(|err| err.to_string()),
        crate::catalog::CatalogAccess::ReadOnly(reason)
        | crate::catalog::CatalogAccess::Immutable(reason) => Err(format!(
            "the catalog {} was opened read-only ({reason})",
            catalog.path().escaped()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_packet_folder_below_is_the_first_in_path_order_and_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        let seal = |folder: &str| {
            std::fs::create_dir_all(top.join(folder)).unwrap();
            std::fs::write(top.join(folder).join(SEAL_FILE_NAME), "").unwrap();
        };
        std::fs::create_dir_all(top.join("plain/empty")).unwrap();
        assert_eq!(first_packet_folder_below(top).unwrap(), None);
        // `b` is met before `a/x` by a walk that lists a folder before entering it; path order puts
        // `a/x` first.
        seal("b");
        seal("a/x");
        seal("a/x/inner");
        assert_eq!(
            first_packet_folder_below(top).unwrap(),
            Some(top.join("a/x"))
        );
        // A seal of any type marks its folder.
        std::fs::create_dir_all(top.join("a/0/sealed-by-a-folder").join(SEAL_FILE_NAME)).unwrap();
        assert_eq!(
            first_packet_folder_below(top).unwrap(),
            Some(top.join("a/0/sealed-by-a-folder"))
        );
        // A folder reached only through a symlink is not entered.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join(SEAL_FILE_NAME), "").unwrap();
        let linked = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), linked.path().join("0-link")).unwrap();
        assert_eq!(first_packet_folder_below(linked.path()).unwrap(), None);
        assert!(first_packet_folder_below(&linked.path().join("0-link")).is_err());
        // The folder itself.
        seal("");
        assert_eq!(
            first_packet_folder_below(top).unwrap(),
            Some(top.to_path_buf())
        );
    }

    #[test]
    fn resolving_refuses_symlinks_and_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let kb = dir.path();
        std::fs::create_dir_all(kb.join("a/b")).unwrap();
        std::fs::write(kb.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("/tmp", kb.join("link")).unwrap();
        assert_eq!(
            resolve_in_kb(kb, "a/b/f").unwrap(),
            KbPath::File(kb.join("a/b/f"))
        );
        assert_eq!(resolve_in_kb(kb, "a/c/f").unwrap(), KbPath::Missing);
        assert!(resolve_in_kb(kb, "link/x").is_err());
        assert!(resolve_in_kb(kb, "a/b/f/g").is_err());
    }
}

/// Open a KB's staging folder (never through a symlink) to lock it.
fn open_staging_root(staging_root: &Path) -> Result<std::fs::File> {
    open_folder_no_follow(staging_root).at(staging_root, "cannot open the staging folder")
}

/// Take the shared side of a KB's staging lock (an `flock` on `KB/.evstore-staging`), waiting
/// for a running [`gc_staging`] to finish. Every mirror holds it from before it creates its
/// staging folder until it is done, so `gc_staging` never removes a folder a live mirror uses.
/// The kernel drops the lock when the holder dies, so a killed mirror never blocks clean-up.
///
/// # Errors
///
/// An operational error naming the staging folder when it cannot be opened without following a
/// symlink, or locked.
pub fn lock_staging_shared(staging_root: &Path) -> Result<Lock> {
    Lock::wait(open_staging_root(staging_root)?, LockMode::Shared).at(staging_root, "cannot lock")
}

/// The locks a mirror holds while it checks where it publishes and renames its packet folder
/// into place (see [`lock_for_publish`]); released when dropped.
#[derive(Debug)]
pub struct PublishLock {
    _held: Vec<Lock>,
}

/// Serialise publishing into the KB at `kb_root` (canonical): an exclusive `flock` on the KB
/// folder, after shared ones on every folder above it (taken from `/` down, so two mirrors always
/// lock in the same order and never deadlock). Two mirrors into the same KB, or into nested KB
/// folders, thus never run their "check nesting, then rename" sections at once, while mirrors
/// into unrelated KBs do not wait for each other. A folder above the KB that this user cannot
/// open is skipped (only a mirror into that folder itself could contend there). Waits for the
/// lock; the kernel drops it if the holder dies. Independent of the staging lock
/// ([`lock_staging_shared`]), which is on another folder.
///
/// # Errors
///
/// An operational error if the KB folder cannot be opened (never through a symlink) or locked.
pub fn lock_for_publish(kb_root: &Path) -> Result<PublishLock> {
    let mut held = Vec::new();
    let above: Vec<&Path> = kb_root.ancestors().skip(1).collect();
    for folder in above.into_iter().rev() {
        if let Ok(dir) = open_folder_no_follow(folder) {
            if let Ok(lock) = Lock::wait(dir, LockMode::Shared) {
                held.push(lock);
            }
        }
    }
    let dir = open_folder_no_follow(kb_root).at(kb_root, "cannot open the KB folder to lock it")?;
    let lock = Lock::wait(dir, LockMode::Exclusive).at(kb_root, "cannot lock the KB folder")?;
    held.push(lock);
    Ok(PublishLock { _held: held })
}

/// What [`gc_staging`] did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcStagingReport {
    /// The staging folder.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub staging: PathBuf,
    /// Staging folders of interrupted mirrors that were removed (names in the staging folder).
    pub removed: Vec<String>,
    /// Entries evstore did not create (not a `mirror-*` folder), left untouched.
    pub left_alone: Vec<String>,
}

/// Remove the staging folders interrupted mirrors left in `KB/.evstore-staging/`. Takes the
/// exclusive side of the staging lock without waiting: while any mirror of this KB runs it
/// refuses and removes nothing. Only `mirror-*` folders (what mirrors create) are removed;
/// anything else there is reported and left alone. Nothing outside the staging folder is
/// touched, and no symlink is followed.
///
/// # Errors
///
/// [`Error::Usage`] while a mirror into this KB runs; an operational error if the KB folder
/// cannot be resolved, `.evstore-staging` is not a folder, or a staging folder cannot be listed
/// or removed.
pub fn gc_staging(kb_dir: &Path) -> Result<GcStagingReport> {
    let kb_root = canonical_kb(kb_dir)?;
    let staging = kb_root.join(STAGING_DIR_NAME);
    let mut report = GcStagingReport {
        staging: staging.clone(),
        ..GcStagingReport::default()
    };
    match std::fs::symlink_metadata(&staging) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::unsupported(
                &staging,
                "is not a folder (evstore did not create it and leaves it alone)",
            ))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(err) => return Err(Error::io(&staging, "cannot stat", err)),
    }
    let dir = open_staging_root(&staging)?;
    let Some(lock) = Lock::try_take(dir, LockMode::Exclusive).at(&staging, "cannot lock")? else {
        return Err(Error::Busy(format!(
            "{}: a mirror into this KB is in progress; run `kb gc-staging` again when none runs",
            staging.escaped()
        )));
    };
    let dir = lock.folder();
    // From here on, reach the staging folder only through the locked handle: if someone swaps
    // `.evstore-staging` for a symlink after the checks above, `/proc/self/fd/N` still names the
    // folder that was checked and locked, so nothing elsewhere can be listed or removed.
    let locked = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&locked).at(&staging, "cannot list")? {
        names.push(entry.at(&staging, "cannot list")?.file_name());
    }
    names.sort();
    for name in names {
        let shown = staging.join(&name);
        let path = locked.join(&name);
        let meta = std::fs::symlink_metadata(&path).at(&shown, "cannot stat")?;
        let text = crate::text::escape_os(&name).to_string();
        if meta.is_dir() && text.starts_with("mirror-") {
            std::fs::remove_dir_all(&path).at(&shown, "cannot remove")?;
            report.removed.push(text);
        } else {
            report.left_alone.push(text);
        }
    }
    dir.sync_all().at(&staging, "cannot sync")?;
    Ok(report)
}
