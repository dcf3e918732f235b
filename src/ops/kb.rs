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
//! This module reads KBs; [`crate::ops::mirror`] writes them. Paths inside the KB are resolved one
//! component at a time without following symlinks, so nothing here reads or writes outside the KB.

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
use crate::format::manifest::Manifest;
use crate::fsio::{open_folder_no_follow, Lock, LockMode};
use crate::gate::drift::DriftClass;
use crate::gate::{self, read_seal_in, GateReport, Side, Verdict};
use crate::progress::Progress;
use crate::scan::{check_rel_path, refuse_symlink, walk, RootDir, SEAL_FILE_NAME};
use crate::store::Store;
use crate::text::EscapePath;

/// The references file of a packet folder in a KB.
pub const REFERENCES_FILE_NAME: &str = "KB_REFERENCES.txt";

/// The folder at the top of a KB where mirrors stage packets before renaming them into place.
pub const STAGING_DIR_NAME: &str = ".evstore-staging";

/// One line of a references file: the packet file `path`, whose bytes (SHA-256 `sha256`) are at
/// `kb_path`, relative to the KB root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
    /// The file's path in the packet.
    pub path: String,
    /// Where the identical bytes live, relative to the KB root.
    pub kb_path: String,
}

/// The canonical text of a references file: `<sha256>\t<path>\t<kb_path>\n` per reference,
/// sorted by path bytes. Tabs cannot occur in paths (control characters are refused).
pub fn references_text(references: &[Reference]) -> String {
    let mut sorted: Vec<&Reference> = references.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = String::new();
    for r in sorted {
        out.push_str(&format!("{}\t{}\t{}\n", r.sha256, r.path, r.kb_path));
    }
    out
}

/// Parse a references file strictly: exactly the canonical text, or an error naming the line.
pub fn parse_references(bytes: &[u8], origin: &Path) -> Result<Vec<Reference>> {
    let bad = |line: usize, reason: String| Error::UntrustedSeal {
        path: origin.to_path_buf(),
        line,
        reason,
    };
    if bytes.is_empty() {
        return Err(bad(1, "the references file is empty".into()));
    }
    if !bytes.ends_with(b"\n") {
        let line = bytes.split(|&b| b == b'\n').count();
        return Err(bad(line, "last line does not end with a newline".into()));
    }
    let mut out: Vec<Reference> = Vec::new();
    for (index, raw) in bytes[..bytes.len() - 1].split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let text =
            std::str::from_utf8(raw).map_err(|_| bad(line, "line is not valid UTF-8".into()))?;
        let fields: Vec<&str> = text.split('\t').collect();
        let [sha, path, kb_path] = fields[..] else {
            return Err(bad(
                line,
                "not of the form '<sha256>\\t<path>\\t<kb path>'".into(),
            ));
        };
        let sha256 = Sha256Digest::parse_hex(sha)
            .ok_or_else(|| bad(line, "digest is not 64 lowercase hex digits".into()))?;
        check_rel_path(path).map_err(|reason| bad(line, format!("path: {reason}")))?;
        check_kb_rel_path(kb_path).map_err(|reason| bad(line, format!("kb path: {reason}")))?;
        if let Some(previous) = out.last() {
            if previous.path.as_str() >= path {
                return Err(bad(
                    line,
                    format!("duplicate or out of canonical order: {path:?}"),
                ));
            }
        }
        out.push(Reference {
            sha256,
            path: path.to_string(),
            kb_path: kb_path.to_string(),
        });
    }
    Ok(out)
}

/// A path relative to the KB root: a valid packet path that does not enter the staging folder.
pub fn check_kb_rel_path(path: &str) -> std::result::Result<(), String> {
    check_rel_path(path)?;
    if path == STAGING_DIR_NAME || path.starts_with(&format!("{STAGING_DIR_NAME}/")) {
        return Err(format!("{STAGING_DIR_NAME} is reserved for staging"));
    }
    Ok(())
}

/// What a KB-relative path is on disk.
#[derive(Debug, PartialEq, Eq)]
pub enum KbPath {
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
pub fn resolve_in_kb(kb_root: &Path, rel: &str) -> Result<KbPath> {
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
pub fn check_packet_folder(
    kb_root: &Path,
    folder: &str,
    folder_abs: &Path,
    view: Option<&StoreView<'_>>,
    mirror_row: Option<&MirrorRow>,
    expected: Option<Side>,
) -> Result<PacketFolderReport> {
    let dir = Arc::new(RootDir::open(folder_abs)?);
    check_packet_folder_in(kb_root, None, folder, dir, view, mirror_row, expected)
}

/// [`check_packet_folder`] of an opened packet folder: its seal, references file and files are
/// all read through its handle, and referenced files through `kb_dir` (the KB folder's handle,
/// opened from `kb_root` when not given).
fn check_packet_folder_in(
    kb_root: &Path,
    mut kb_dir: Option<Arc<RootDir>>,
    folder: &str,
    dir: Arc<RootDir>,
    view: Option<&StoreView<'_>>,
    mirror_row: Option<&MirrorRow>,
    expected: Option<Side>,
) -> Result<PacketFolderReport> {
    let seal_path = dir.display_path(SEAL_FILE_NAME);
    let mut problems = Vec::new();
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
    if let Err(err) = Manifest::parse_seal(&seal_bytes, &seal_path) {
        return Ok(PacketFolderReport::failed(
            folder,
            Vec::new(),
            "untrusted seal",
            format!("untrusted seal: {err}"),
        ));
    }
    let seal_sha256 = sha256_of(&seal_bytes);
    let mut packet_label = None;
    let mut reasons: BTreeSet<&'static str> = BTreeSet::new();
    let expected = match expected {
        Some(side) => {
            packet_label = Some(side.label.clone());
            side
        }
        None => {
            let side = expected_side(
                view,
                mirror_row,
                &seal_path,
                &seal_bytes,
                &seal_sha256,
                &mut packet_label,
                &mut problems,
            )?;
            if !problems.is_empty() {
                reasons.insert(if mirror_row.is_some() {
                    "seal is not the recorded packet's"
                } else {
                    "seal unknown to the store"
                });
            }
            side
        }
    };
    // How the catalog recorded each file of this mirror as published (`copy`, `hardlink`,
    // `reference`): a file it recorded as written into the folder is never accepted as a
    // reference, whatever the folder's references file now says.
    let recorded_kinds: BTreeMap<String, String> = match (view, mirror_row) {
        (Some(view), Some(row)) => view
            .catalog
            .mirror_file_kinds(row.id)?
            .into_iter()
            .collect(),
        _ => BTreeMap::new(),
    };

    let mut observed = Side::folder_in(dir.clone(), &Progress::silent())?;
    let references_path = dir.display_path(REFERENCES_FILE_NAME);
    let mut references = Vec::new();
    let problems_before_references = problems.len();
    if observed.holds(REFERENCES_FILE_NAME)
        && expected.manifest()?.get(REFERENCES_FILE_NAME).is_none()
    {
        observed.remove_file(REFERENCES_FILE_NAME);
        match read_seal_in(&dir, REFERENCES_FILE_NAME)
            .and_then(|bytes| parse_references(&bytes, &references_path))
        {
            Ok(parsed) => references = parsed,
            Err(err) => {
                reasons.insert("untrusted references file");
                problems.push(format!("untrusted references file: {err}"));
            }
        }
    }
    let sealed = Manifest::parse_seal(&seal_bytes, &seal_path)?;
    let mut referenced = Vec::new();
    // Files the catalog recorded as copies (or hard links) that the folder now references.
    let mut not_references: Vec<(String, String)> = Vec::new();
    for reference in &references {
        match sealed.get(&reference.path) {
            Some(sha) if *sha == reference.sha256 => {}
            Some(_) => {
                reasons.insert("bad reference");
                problems.push(format!(
                    "{REFERENCES_FILE_NAME}: {} is pinned with another SHA-256 than the seal's",
                    reference.path
                ))
            }
            None => {
                reasons.insert("bad reference");
                problems.push(format!(
                    "{REFERENCES_FILE_NAME}: {} is not listed in the seal",
                    reference.path
                ))
            }
        }
        if observed.holds(&reference.path) {
            reasons.insert("bad reference");
            problems.push(format!(
                "{} is both present and listed as a reference",
                reference.path
            ));
            continue;
        }
        if let Some(kind) = recorded_kinds
            .get(&reference.path)
            .filter(|kind| kind.as_str() != "reference")
        {
            // Not resolved: the file is reported missing from the folder.
            not_references.push((reference.path.clone(), kind.clone()));
            continue;
        }
        match resolve_in_kb(kb_root, &reference.kb_path) {
            // Checked by path above (for the messages); read through the KB's handle, so a
            // component swapped for a symlink since is never followed.
            Ok(KbPath::File(_)) => {
                let kb = match &kb_dir {
                    Some(kb) => kb.clone(),
                    None => {
                        let opened = Arc::new(RootDir::open(kb_root)?);
                        kb_dir = Some(opened.clone());
                        opened
                    }
                };
                observed.add_elsewhere(&reference.path, &kb, &reference.kb_path)?;
                referenced.push(reference.clone());
            }
            Ok(_) => {
                reasons.insert("bad reference");
                problems.push(format!(
                    "{}: its referenced copy {} is missing or not a regular file",
                    reference.path, reference.kb_path
                ))
            }
            Err(err) => {
                reasons.insert("bad reference");
                problems.push(format!("{}: {err}", reference.path))
            }
        }
    }

    let reference_problems = problems[problems_before_references..].to_vec();
    let store = view.map(|v| v.store);
    let mut report = gate::compare(store, &expected, &observed)?;
    for (path, kind) in &not_references {
        let kind = if kind == "hardlink" {
            "hard link"
        } else {
            kind.as_str()
        };
        let note = format!(
            "the catalog recorded {path} as a {kind} in this folder when it was mirrored, but it \
             is not in the folder and {REFERENCES_FILE_NAME} now lists it as a reference: a \
             recorded {kind} is never accepted as a reference"
        );
        if let Some(file) = report.files.iter_mut().find(|f| &f.path == path) {
            file.note = Some(note.clone());
        }
        reasons.insert("recorded copy replaced by a reference");
        problems.push(note);
    }
    let classes: BTreeSet<DriftClass> = report
        .files
        .iter()
        .flat_map(|f| f.classes.iter().copied())
        .collect();
    if expected.packet_tree_sha256 != seal_sha256 {
        reasons.insert("seal is not the packet's");
        problems.push(format!(
            "the seal's SHA-256 {seal_sha256} is not the packet's packet_tree_sha256 {}",
            expected.packet_tree_sha256
        ));
    }
    let pass = report.verdict == Verdict::Pass && problems.is_empty();
    Ok(PacketFolderReport {
        folder: folder.to_string(),
        verdict: if pass { Verdict::Pass } else { Verdict::Fail },
        packet: packet_label,
        seal_sha256: Some(seal_sha256),
        classes: classes.into_iter().collect(),
        references: references.len() as u64,
        referenced,
        reasons: reasons.into_iter().map(str::to_string).collect(),
        problems,
        report: Some(report),
        reference_problems,
    })
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
pub fn verify_kb(kb_dir: &Path, view: Option<&StoreView<'_>>) -> Result<KbReport> {
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
    let staging = kb_root.join(STAGING_DIR_NAME);
    let mut notes = Vec::new();
    let mut folders: Vec<String> = Vec::new();
    // Symlinks to folders: (KB-relative path, whether the folder it leads to holds a seal).
    let mut linked: Vec<(PathBuf, bool)> = Vec::new();
    walk(&kb, |item| {
        let file_type = FileType::from_raw_mode(RawMode::from(item.stat.st_mode));
        match file_type {
            // A seal of any type makes its folder a packet folder (one that is not a regular
            // file then fails that folder's check): never a reason to skip what is below.
            _ if item.name == SEAL_FILE_NAME => {
                let parent = item.rel.parent().unwrap_or(Path::new(""));
                folders.push(relative(&kb_root, &kb_root.join(parent))?);
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
    for (rel, sealed) in &linked {
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
    if let Some(store_root) = &store_root {
        if store_root.starts_with(&kb_root) {
            notes.push(format!(
                "the store {} lies inside the KB and was skipped",
                store_root.escaped()
            ));
        }
    }
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
    let found: BTreeSet<&str> = folders.iter().map(String::as_str).collect();
    for rel in &folders {
        let dir = Arc::new(kb.open_dir(rel)?);
        let report = match check_packet_folder_in(
            &kb_root,
            Some(kb.clone()),
            rel,
            dir,
            view,
            mirror_rows.get(rel),
            None,
        ) {
            Ok(report) => report,
            Err(err) if err.class() == ErrorClass::Verification => PacketFolderReport::failed(
                rel,
                vec![DriftClass::Content],
                "unreadable",
                err.to_string(),
            ),
            Err(err) => return Err(err),
        };
        packets.push(report);
    }
    for (rel, row) in &mirror_rows {
        if !found.contains(rel.as_str()) {
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
            packets.push(PacketFolderReport::failed(
                rel,
                vec![DriftClass::Missing],
                "recorded mirror missing",
                problem,
            ));
        }
    }
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

/// The packet folder that holds `kb_root/rel` (a proper ancestor, the KB root included, with a
/// `HASH_MANIFEST.txt` of any type), as a KB-relative path (`""` for the root). Components are
/// not followed through symlinks; the walk stops at the first missing one.
pub fn enclosing_packet_folder(kb_root: &Path, rel: &str) -> Result<Option<String>> {
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

/// The first packet folder (a folder with a `HASH_MANIFEST.txt`) at or below `folder`, in path
/// order, without following symlinks.
pub fn first_packet_folder_below(folder: &Path) -> Result<Option<PathBuf>> {
    for item in walkdir::WalkDir::new(folder)
        .follow_links(false)
        .sort_by_file_name()
    {
        let item = item.map_err(|err| {
            let path = err.path().unwrap_or(folder).to_path_buf();
            match err.into_io_error() {
                Some(io) => Error::io(path, "cannot read", io),
                None => Error::unsupported(path, "symbolic link loop"),
            }
        })?;
        if item.file_type().is_dir()
            && std::fs::symlink_metadata(item.path().join(SEAL_FILE_NAME)).is_ok()
        {
            return Ok(Some(item.path().to_path_buf()));
        }
    }
    Ok(None)
}

/// The KB that holds the folder `dir` (canonical): the nearest of `dir` and its ancestors that
/// holds a real `.evstore-staging` folder (every mirror creates it, and it stays).
pub fn find_kb_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|folder| {
            std::fs::symlink_metadata(folder.join(STAGING_DIR_NAME)).is_ok_and(|meta| meta.is_dir())
        })
        .map(Path::to_path_buf)
}

/// The KB-relative path of `dir` (canonical) in the KB at `kb_root` (canonical), checked to be a
/// folder reached from the KB root without symlinks; `""` for the root itself.
pub fn folder_in_kb(kb_root: &Path, dir: &Path) -> Result<String> {
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
pub fn canonical_kb(kb_dir: &Path) -> Result<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(path: &str, kb_path: &str) -> Reference {
        Reference {
            sha256: sha256_of(path.as_bytes()),
            path: path.into(),
            kb_path: kb_path.into(),
        }
    }

    #[test]
    fn references_round_trip_and_sort() {
        let refs = vec![
            reference("validator/v.py", "other/validator/v.py"),
            reference("a b.txt", "x/a b.txt"),
        ];
        let text = references_text(&refs);
        let parsed = parse_references(text.as_bytes(), Path::new("r")).unwrap();
        assert_eq!(parsed[0].path, "a b.txt");
        assert_eq!(parsed[1].path, "validator/v.py");
        assert_eq!(references_text(&parsed), text);
    }

    #[test]
    fn references_are_parsed_strictly() {
        let sha = "a".repeat(64);
        for (text, line) in [
            (String::new(), 1),
            (format!("{sha}\tx\ty"), 1),
            (format!("{sha}\tx\n{sha}\tx\ty\n"), 1),
            (format!("{sha}\tb\ty\n{sha}\ta\ty\n"), 2),
            (format!("{sha}\ta\t../y\n"), 1),
            (format!("{sha}\ta\t/etc/passwd\n"), 1),
            (format!("{sha}\ta\t.evstore-staging/x\n"), 1),
            (format!("{}\ta\ty\n", "A".repeat(64)), 1),
            (format!("{sha}\ta\ty\r\n"), 1),
        ] {
            match parse_references(text.as_bytes(), Path::new("r")) {
                Err(Error::UntrustedSeal { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
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
