//! Publishing packets into a knowledge-base (KB) folder.
//!
//! [`mirror`] writes a stored packet into `KB/REL_PATH` so that a reader never sees half of it:
//! every file is written (from verified store bytes) into a staging folder under
//! `KB/.evstore-staging/`, fsynced, and checked against the packet like `kb verify` would, and
//! only then is the folder renamed into place with `RENAME_NOREPLACE`. A crash leaves at most a
//! staging folder, never a partial packet at the destination. The KB is append-only: the same
//! packet again at the same path is a no-op, anything else at an existing path is refused.
//!
//! With `--dedup reference`, a file whose bytes an earlier mirror in the same KB already holds
//! (the catalog knows every mirror; the bytes are re-hashed now) is not written but listed in
//! `KB_REFERENCES.txt`; with `--dedup hardlink` it is hard-linked to that copy (candidates are
//! re-hashed through the KB folder's handle). Nothing is ever written outside the KB, and no
//! symlink is followed.
//!
//! The steps are named: prepare (check the KB folder, the destination and the packet), confirm an
//! existing folder, plan each file, stage, verify the staged folder, publish (under the KB's
//! publish lock) and record: a mirror list object in the store (every file and where its bytes
//! live, `format::mirror_list`), then the catalog rows and the `mirror` event naming the list, so
//! the store alone rebuilds the record.
//!
//! **Architecture Invariant:** a packet folder appears at its destination only whole and
//! verified, by one no-replace rename; the catalog records a mirror only after that rename, or
//! after an existing folder at the destination verified as this very packet.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{Catalog, MirrorFile, MirrorList, MirrorRow, NewEvent, NewMirror, PacketRow};
use crate::digest::blake3_of;
use crate::digest::Sha256Digest;
use crate::error::{Error, IoContext, Result};
use crate::format::event::MirrorPublication;
use crate::format::manifest::Manifest;
use crate::format::object::ObjectKind;
use crate::format::record::PacketRecord;
use crate::format::references::{self, check_kb_rel_path, Reference, REFERENCES_FILE_NAME};
use crate::format::tree::{manifest_of, HashedFile};
use crate::fsio::sha256_in;
use crate::fsio::{rename_no_replace, sync_file_system, sync_folder};
use crate::gate::{Side, Verdict};
use crate::ops::kb::{
    canonical_kb, check_packet_folder, resolve_in_kb, KbPath, PublishLock, StoreView,
    STAGING_DIR_NAME,
};
use crate::packet::verified_files;
use crate::progress::Progress;
use crate::scan::{RootDir, SEAL_FILE_NAME};
use crate::store::Store;
use crate::text::EscapePath;

/// How a file whose bytes the KB already holds is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dedup {
    /// Always write a copy.
    Copy,
    /// Do not write it; list it in `KB_REFERENCES.txt` with where its bytes live.
    Reference,
    /// Hard-link it to the existing copy (when the executable bits agree).
    Hardlink,
}

impl Dedup {
    /// The option value and catalog spelling.
    pub fn name(self) -> &'static str {
        match self {
            Dedup::Copy => "copy",
            Dedup::Reference => "reference",
            Dedup::Hardlink => "hardlink",
        }
    }
}

/// What to publish where.
#[derive(Clone, Debug)]
pub struct MirrorConfig {
    /// The packet folder, relative to the KB [default: the packet's name].
    pub rel_path: Option<String>,
    /// How to publish files the KB already holds.
    pub dedup: Dedup,
    /// Where to report the bytes copied into the staging folder.
    pub progress: Progress,
}

/// What [`mirror`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MirrorAction {
    /// The packet folder was written.
    Published,
    /// The same packet was already there; nothing was written.
    Unchanged,
}

/// The result of a mirror.
#[derive(Clone, Debug, Serialize)]
pub struct MirrorReport {
    /// What was done.
    pub action: MirrorAction,
    /// `NAME@N`.
    pub packet: String,
    /// The packet_tree_sha256 (the SHA-256 of the written `HASH_MANIFEST.txt`).
    pub packet_tree_sha256: Sha256Digest,
    /// The KB folder, canonical.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub kb: PathBuf,
    /// The packet folder, relative to the KB.
    pub rel_path: String,
    /// Files the seal lists.
    pub files_listed: u64,
    /// Files written as copies.
    pub files_copied: u64,
    /// Files hard-linked to an existing copy.
    pub files_hardlinked: u64,
    /// Files referenced (not written).
    pub files_referenced: u64,
    /// Bytes written as copies.
    pub bytes_copied: u64,
    /// Where each referenced or hard-linked file's bytes live.
    pub deduplicated: Vec<MirrorFile>,
    /// The key fingerprint of the seal signature written as `HASH_MANIFEST.txt.sig`, if one was.
    pub seal_signed_by: Option<String>,
}

/// How one file of the packet is published.
enum Plan {
    /// Written as a copy from verified store bytes.
    Copy,
    /// Hard-linked to an earlier mirror's copy: its absolute path and its KB-relative path.
    Hardlink(PathBuf, String),
    /// Not written; listed in `KB_REFERENCES.txt` with the KB-relative path of its bytes.
    Reference(String),
}

/// Publish `row` into the KB at `kb_dir`.
///
/// # Errors
///
/// [`Error::Usage`] for a bad `--as` path or a packet that cannot be published with `--dedup
/// reference`; [`Error::AlreadyExists`] when the destination holds other content, lies inside or
/// above a packet folder, or the catalog records another packet there (the KB is append-only);
/// [`Error::Mismatch`] when the staged folder does not verify; an operational error when the KB
/// folder is a symlink, lies in a staging folder or inside the store, when the packet does not
/// read back verified, or on any I/O failure or interruption. On every error nothing is published
/// at the destination and nothing is recorded.
pub fn mirror(
    store: &Store,
    catalog: &mut Catalog,
    row: &PacketRow,
    kb_dir: &Path,
    config: &MirrorConfig,
) -> Result<MirrorReport> {
    crate::ops::markers::ensure_log_attached(store, catalog)?;
    let target = MirrorTarget::prepare(store, catalog, row, kb_dir, config)?;
    // The destination: refuse symlinks and non-folders on the way; an existing packet folder is
    // either this packet (no-op) or a conflict.
    match resolve_in_kb(&target.kb_root, &target.rel_path)? {
        KbPath::Missing => {}
        KbPath::Folder(existing) => return target.confirm_existing(catalog, &existing),
        KbPath::File(_) | KbPath::Other(_) => {
            return Err(target.conflict("exists and is not a packet folder".into()))
        }
    }
    if let Some(previous) = &target.recorded {
        if previous.packet_tree_sha256 != target.record.packet_tree_sha256 {
            return Err(target.conflict(format!(
                "the catalog records another packet (packet_tree_sha256 {}) mirrored there",
                previous.packet_tree_sha256
            )));
        }
    }
    let plans = target.plan_files(catalog, config.dedup)?;
    let staging = Staging::create(&target.kb_root)?;
    let mut report = target.report();
    let mirror_files = target.stage(&staging.packet, &plans, config, &mut report)?;
    target.verify_staged(catalog, &staging.packet)?;
    // Held until the catalog records this mirror.
    let _publish_lock = target.publish(catalog, &staging.packet)?;
    report.action = MirrorAction::Published;
    target.record_published(catalog, config.dedup, mirror_files)?;
    Ok(report)
}

/// What one mirror publishes where, checked before anything is written.
struct MirrorTarget<'a> {
    store: &'a Store,
    row: &'a PacketRow,
    /// The packet's record, read back verified.
    record: PacketRecord,
    /// The packet's files, from its verified tree.
    files: Vec<HashedFile>,
    /// The seal written into the packet folder.
    manifest: Manifest,
    /// The KB folder, canonical.
    kb_root: PathBuf,
    /// The KB folder as the catalog names it.
    kb_key: String,
    /// The packet folder, relative to the KB.
    rel_path: String,
    /// `NAME@N`.
    label: String,
    /// The catalog's record of a mirror at this path, if any.
    recorded: Option<MirrorRow>,
    /// What the packet folder must verify against.
    expected: Side,
}

impl<'a> MirrorTarget<'a> {
    /// Check the KB folder, the destination path and the packet, and read the packet back.
    fn prepare(
        store: &'a Store,
        catalog: &Catalog,
        row: &'a PacketRow,
        kb_dir: &Path,
        config: &MirrorConfig,
    ) -> Result<MirrorTarget<'a>> {
        // KB_DIR is refused if it is a symlink, as `kb verify` refuses it: never published
        // through.
        crate::scan::refuse_symlink(kb_dir)?;
        let kb_root = canonical_kb(kb_dir)?;
        refuse_staging_kb(kb_dir, &kb_root)?;
        crate::store::refuse_inside_store(store.root(), &kb_root, "KB folder")?;
        let label = format!("{}@{}", row.record.name, row.record.version);
        let rel_path = config
            .rel_path
            .clone()
            .unwrap_or_else(|| row.record.name.clone());
        check_kb_rel_path(&rel_path)
            .map_err(|reason| Error::Usage(format!("--as {rel_path:?}: {reason}")))?;
        let (record, files) = verified_files(store, row)?;
        if config.dedup == Dedup::Reference
            && files.iter().any(|f| f.rel_path == REFERENCES_FILE_NAME)
        {
            return Err(Error::Usage(format!(
                "{label} holds a top-level file named {REFERENCES_FILE_NAME}, the name of the \
                 references file; mirror it with --dedup copy or --dedup hardlink"
            )));
        }
        let kb_key = kb_root.to_string_lossy().into_owned();
        refuse_nested_destination(catalog, &kb_root, &rel_path)?;
        let recorded = catalog
            .mirrors_in(&kb_key)?
            .into_iter()
            .find(|m| m.rel_path == rel_path);
        let expected = Side::packet(store, row)?;
        let manifest = manifest_of(&files)?;
        Ok(MirrorTarget {
            store,
            row,
            record,
            files,
            manifest,
            kb_root,
            kb_key,
            rel_path,
            label,
            recorded,
            expected,
        })
    }

    /// The refusal of a destination that holds, or would hold, something else.
    fn conflict(&self, what: String) -> Error {
        Error::AlreadyExists(format!(
            "{}: {what}; the KB is append-only: publish this version to a new path, for \
             example --as {}@{}",
            self.kb_root.join(&self.rel_path).escaped(),
            self.record.name,
            self.record.version
        ))
    }

    /// The report of a mirror that has written nothing yet.
    fn report(&self) -> MirrorReport {
        MirrorReport {
            action: MirrorAction::Unchanged,
            packet: self.label.clone(),
            packet_tree_sha256: self.record.packet_tree_sha256,
            kb: self.kb_root.clone(),
            rel_path: self.rel_path.clone(),
            files_listed: self.files.len() as u64,
            files_copied: 0,
            files_hardlinked: 0,
            files_referenced: 0,
            bytes_copied: 0,
            deduplicated: Vec::new(),
            seal_signed_by: None,
        }
    }

    /// The destination already holds a packet folder: it passes as this packet (the mirror is a
    /// no-op, recorded if the catalog did not know it) or it is a conflict.
    fn confirm_existing(&self, catalog: &mut Catalog, existing: &Path) -> Result<MirrorReport> {
        let view = StoreView {
            store: self.store,
            catalog,
        };
        let check = check_packet_folder(
            &self.kb_root,
            &self.rel_path,
            existing,
            Some(&view),
            self.recorded.as_ref(),
            Some(self.expected.clone()),
        )?;
        // A signal during the check may have turned a file into a "problem": stop first.
        crate::interrupt::check()?;
        if check.verdict != Verdict::Pass {
            return Err(self.conflict("already holds other content".into()));
        }
        if self.recorded.is_none() {
            let files = present_files(&self.files, existing, &self.rel_path)?;
            record_mirror(
                self.store,
                catalog,
                self.row,
                &self.kb_key,
                &self.rel_path,
                Dedup::Copy,
                files,
                "unchanged",
            )?;
        } else {
            log_mirror(
                catalog,
                &self.kb_key,
                &self.rel_path,
                &self.label,
                &self.record.packet_tree_sha256,
                "unchanged",
            )?;
        }
        Ok(self.report())
    }

    /// Decide, per file, how to publish it.
    fn plan_files(&self, catalog: &Catalog, dedup: Dedup) -> Result<Vec<Plan>> {
        if dedup == Dedup::Copy {
            return Ok(self.files.iter().map(|_| Plan::Copy).collect());
        }
        // Earlier copies are read through the KB folder's handle, never through a symlink.
        let kb_dir = RootDir::open(&self.kb_root)?;
        let mut plans = Vec::with_capacity(self.files.len());
        for file in &self.files {
            let plan =
                match existing_copy(catalog, &self.kb_root, &kb_dir, &self.kb_key, file, dedup)? {
                    Some((abs, kb_path)) if dedup == Dedup::Hardlink => {
                        Plan::Hardlink(abs, kb_path)
                    }
                    Some((_, kb_path)) => Plan::Reference(kb_path),
                    None => Plan::Copy,
                };
            plans.push(plan);
        }
        Ok(plans)
    }

    /// Write every planned file, the seal and the references file into `staged`, and fsync it
    /// all; fills in the report's counts and returns what the catalog records of each file.
    fn stage(
        &self,
        staged: &Path,
        plans: &[Plan],
        config: &MirrorConfig,
        report: &mut MirrorReport,
    ) -> Result<Vec<MirrorFile>> {
        let files = &self.files;
        let to_copy = files
            .iter()
            .zip(plans)
            .filter(|(_, plan)| matches!(plan, Plan::Copy))
            .map(|(file, _)| file.meta.size)
            .sum();
        let phase = config.progress.phase("mirror", to_copy);
        let written: Vec<(u64, u64)> = files
            .par_iter()
            .zip(plans.par_iter())
            .map(|(file, plan)| {
                let written = stage_file(self.store, staged, file, plan)?;
                config.progress.advance(written.1);
                Ok(written)
            })
            .collect::<Result<_>>()?;
        drop(phase);
        let mut references = Vec::new();
        let mut mirror_files = Vec::new();
        for (file, plan) in files.iter().zip(plans) {
            let (stored_as, kb_path) = match plan {
                Plan::Copy => ("copy", format!("{}/{}", self.rel_path, file.rel_path)),
                Plan::Hardlink(_, kb_path) => ("hardlink", kb_path.clone()),
                Plan::Reference(kb_path) => {
                    references.push(Reference {
                        sha256: file.meta.sha256,
                        path: file.rel_path.clone(),
                        kb_path: kb_path.clone(),
                    });
                    ("reference", kb_path.clone())
                }
            };
            let entry = MirrorFile {
                path: file.rel_path.clone(),
                sha256: file.meta.sha256,
                stored_as: stored_as.into(),
                kb_path,
            };
            if stored_as != "copy" {
                report.deduplicated.push(entry.clone());
            }
            mirror_files.push(entry);
        }
        report.files_copied = written.iter().map(|w| w.0).sum();
        report.bytes_copied = written.iter().map(|w| w.1).sum();
        report.files_hardlinked = plans
            .iter()
            .filter(|p| matches!(p, Plan::Hardlink(..)))
            .count() as u64;
        report.files_referenced = references.len() as u64;
        write_metadata(
            &staged.join(SEAL_FILE_NAME),
            self.manifest.text().as_bytes(),
        )?;
        // The seal's signature beside it, if the store keeps one.
        let signature = crate::ops::signed_seals::signature_to_publish(
            self.store,
            &self.record,
            self.manifest.text().as_bytes(),
        )?;
        if let Some(kept) = &signature {
            write_metadata(
                &staged.join(crate::scan::SIGNATURE_FILE_NAME),
                &kept.signature,
            )?;
        }
        report.seal_signed_by = signature.map(|kept| kept.key_fingerprint);
        if !references.is_empty() {
            write_metadata(
                &staged.join(REFERENCES_FILE_NAME),
                references::encode(&references).as_bytes(),
            )?;
        }
        sync_tree(staged)?;
        Ok(mirror_files)
    }

    /// Verify what was staged, as `kb verify` will see it.
    fn verify_staged(&self, catalog: &Catalog, staged: &Path) -> Result<()> {
        let view = StoreView {
            store: self.store,
            catalog,
        };
        let check = check_packet_folder(
            &self.kb_root,
            &self.rel_path,
            staged,
            Some(&view),
            None,
            Some(self.expected.clone()),
        )?;
        // The point of no return is the rename in `publish`: after a signal, nothing is
        // published or recorded (a signal during the check may also have turned a file into a
        // "problem").
        crate::interrupt::check()?;
        if check.verdict != Verdict::Pass {
            let mut reasons = check.problems.clone();
            if let Some(gate) = &check.report {
                reasons.push(gate.verdict_line());
            }
            return Err(Error::Mismatch {
                what: staged.escaped().to_string(),
                reason: format!("the staged mirror did not verify: {}", reasons.join("; ")),
            });
        }
        Ok(())
    }

    /// Rename the staged folder into place. Another mirror may have published above or below
    /// this destination while this one staged: under the KB's publish lock (returned, to be held
    /// until the catalog records this mirror), check the nesting again, then create the parent
    /// folders (refusing symlinks) and rename without replacing.
    fn publish(&self, catalog: &Catalog, staged: &Path) -> Result<PublishLock> {
        let publish_lock =
            crate::ops::kb::lock_for_publish(&self.kb_root).map_err(crate::interrupt::prefer)?;
        crate::interrupt::check()?;
        refuse_nested_destination(catalog, &self.kb_root, &self.rel_path)?;
        let dest = self.kb_root.join(&self.rel_path);
        create_parents(&self.kb_root, &self.rel_path)?;
        rename_no_replace(staged, &dest).map_err(|err| {
            if err.kind() == io::ErrorKind::AlreadyExists
                || err.kind() == io::ErrorKind::DirectoryNotEmpty
            {
                self.conflict("appeared while this mirror was staged".into())
            } else {
                Error::io(&dest, "cannot rename the staged packet into place", err)
            }
        })?;
        if let Some(parent) = dest.parent() {
            sync_file_system(parent)?;
        }
        Ok(publish_lock)
    }

    /// Record the published mirror (or, if the catalog already knew it, log it again).
    fn record_published(
        &self,
        catalog: &mut Catalog,
        dedup: Dedup,
        mirror_files: Vec<MirrorFile>,
    ) -> Result<()> {
        if self.recorded.is_none() {
            record_mirror(
                self.store,
                catalog,
                self.row,
                &self.kb_key,
                &self.rel_path,
                dedup,
                mirror_files,
                "published",
            )
        } else {
            log_mirror(
                catalog,
                &self.kb_key,
                &self.rel_path,
                &self.label,
                &self.record.packet_tree_sha256,
                "republished",
            )
        }
    }
}

/// A staging folder in `KB/.evstore-staging/`, removed when dropped unless its packet folder was
/// renamed out of it.
struct Staging {
    /// Reports the staging folder if a signal stops this mirror before the rename.
    _cleanup: crate::interrupt::OnInterrupt,
    /// The `mirror-*` folder (dropping it removes it).
    _folder: tempfile::TempDir,
    /// The shared staging lock, held until this mirror is done, so `kb gc-staging` cannot
    /// remove its staging folder.
    _staging_lock: crate::fsio::Lock,
    /// `mirror-*/packet`, the packet folder being staged.
    packet: PathBuf,
}

impl Staging {
    /// Create `KB/.evstore-staging/` if needed (refusing anything but a folder there), take its
    /// shared lock, and create this mirror's staging folder in it.
    fn create(kb_root: &Path) -> Result<Staging> {
        let staging_root = kb_root.join(STAGING_DIR_NAME);
        match fs::create_dir(&staging_root) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(Error::io(&staging_root, "cannot create", err)),
        }
        if !fs::symlink_metadata(&staging_root)
            .at(&staging_root, "cannot stat")?
            .is_dir()
        {
            return Err(Error::unsupported(&staging_root, "is not a folder"));
        }
        let staging_lock = crate::ops::kb::lock_staging_shared(&staging_root)?;
        let folder = tempfile::Builder::new()
            .prefix("mirror-")
            .tempdir_in(&staging_root)
            .at(&staging_root, "cannot create a staging folder in")?;
        let cleanup = crate::interrupt::on_interrupt(crate::interrupt::Cleanup::Removed {
            what: "the staging folder",
            path: folder.path().to_path_buf(),
        });
        let packet = folder.path().join("packet");
        fs::create_dir(&packet).at(&packet, "cannot create")?;
        Ok(Staging {
            _cleanup: cleanup,
            _folder: folder,
            _staging_lock: staging_lock,
            packet,
        })
    }
}

/// Refuse a KB folder that is, or lies inside, a staging folder: nothing there is ever a packet,
/// and `kb gc-staging` removes it.
fn refuse_staging_kb(kb_dir: &Path, kb_root: &Path) -> Result<()> {
    if kb_root
        .components()
        .any(|c| c.as_os_str() == STAGING_DIR_NAME)
    {
        return Err(Error::unsupported(
            kb_dir,
            format!(
                "is or lies inside a {STAGING_DIR_NAME} folder ({}), where mirrors stage \
                 packets; nothing there is ever a packet: name the KB folder itself",
                kb_root.escaped()
            ),
        ));
    }
    Ok(())
}

/// Refuse a destination inside or above a packet folder: everything below a packet folder is
/// part of that packet, so publishing there would change a published packet (the KB is
/// append-only), and a folder holding packet folders is not a place for another one. Checked on
/// disk (every folder above the KB folder, the KB folder and every folder on the way, and what an
/// existing destination holds) and against every mirror the catalog records, in this KB or in a
/// KB folder above or below it (their folders may be gone for now).
fn refuse_nested_destination(catalog: &Catalog, kb_root: &Path, rel_path: &str) -> Result<()> {
    let dest = kb_root.join(rel_path);
    let refuse = |reason: String| {
        Err(Error::AlreadyExists(format!(
            "{}: {reason}; a packet folder's subfolders are part of that packet and the KB is \
             append-only: publish to a path outside every packet folder",
            dest.escaped()
        )))
    };
    for above in kb_root.ancestors().skip(1) {
        let seal = above.join(SEAL_FILE_NAME);
        match fs::symlink_metadata(&seal) {
            Ok(_) => {
                return refuse(format!(
                    "the KB folder {} lies inside the packet folder {}",
                    kb_root.escaped(),
                    above.escaped()
                ))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(&seal, "cannot stat", err)),
        }
    }
    if let Some(outer) = crate::ops::kb::enclosing_packet_folder(kb_root, rel_path)? {
        return refuse(format!(
            "lies inside the published packet folder {}",
            kb_root.join(&outer).escaped()
        ));
    }
    if let KbPath::Folder(existing) = resolve_in_kb(kb_root, rel_path)? {
        if fs::symlink_metadata(existing.join(SEAL_FILE_NAME)).is_err() {
            if let Some(inner) = crate::ops::kb::first_packet_folder_below(&existing)? {
                return refuse(format!(
                    "holds the published packet folder {}",
                    inner.escaped()
                ));
            }
        }
    }
    for kb in catalog.mirror_kb_roots()? {
        let other_kb = Path::new(&kb);
        if !(kb_root.starts_with(other_kb) || other_kb.starts_with(kb_root)) {
            continue;
        }
        for row in catalog.mirrors_in(&kb)? {
            let recorded = other_kb.join(&row.rel_path);
            if recorded == dest {
                // The same folder: the disk check and the rename decide.
                continue;
            }
            if dest.starts_with(&recorded) {
                return refuse(format!(
                    "lies inside {}, where the catalog records a mirror of packet_tree_sha256 {}",
                    recorded.escaped(),
                    row.packet_tree_sha256
                ));
            }
            if recorded.starts_with(&dest) {
                return refuse(format!(
                    "holds {}, where the catalog records a mirror of packet_tree_sha256 {}",
                    recorded.escaped(),
                    row.packet_tree_sha256
                ));
            }
        }
    }
    Ok(())
}

/// An earlier mirror's copy of `file`'s bytes in this KB, re-hashed now through the KB folder's
/// handle `kb_dir`; `None` if there is none (or none whose bytes still match).
fn existing_copy(
    catalog: &Catalog,
    kb_root: &Path,
    kb_dir: &RootDir,
    kb_key: &str,
    file: &HashedFile,
    dedup: Dedup,
) -> Result<Option<(PathBuf, String)>> {
    for kb_path in catalog.kb_copies_of(kb_key, &file.meta.sha256)? {
        if check_kb_rel_path(&kb_path).is_err() {
            continue;
        }
        let Ok(KbPath::File(abs)) = resolve_in_kb(kb_root, &kb_path) else {
            continue;
        };
        let Ok(meta) = kb_dir.open_file(&kb_path).and_then(|handle| {
            handle
                .metadata()
                .at(&kb_dir.display_path(&kb_path), "cannot stat")
        }) else {
            continue;
        };
        if !meta.is_file() || meta.len() != file.meta.size {
            continue;
        }
        if dedup == Dedup::Hardlink && (meta.mode() & 0o100 != 0) != file.meta.executable {
            continue;
        }
        if sha256_in(kb_dir, &kb_path, meta.len()).ok() == Some(file.meta.sha256) {
            return Ok(Some((abs, kb_path)));
        }
    }
    Ok(None)
}

/// Write one planned file into the staging folder; returns (copies, bytes) written.
fn stage_file(store: &Store, staged: &Path, file: &HashedFile, plan: &Plan) -> Result<(u64, u64)> {
    crate::interrupt::check()?;
    let path = staged.join(&file.rel_path);
    match plan {
        Plan::Reference(_) => return Ok((0, 0)),
        Plan::Hardlink(target, _) => {
            create_staged_parents(staged, &path)?;
            fs::hard_link(target, &path).at(&path, "cannot hard-link")?;
            return Ok((0, 0));
        }
        Plan::Copy => {}
    }
    create_staged_parents(staged, &path)?;
    let mode = if file.meta.executable { 0o755 } else { 0o644 };
    let handle = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .at(&path, "cannot create")?;
    let mut out = crate::interrupt::Interruptible(BufWriter::new(handle));
    store
        .read_object_into(&file.meta.blake3, &path, &mut out)
        .map_err(crate::interrupt::prefer)?;
    let handle = out
        .0
        .into_inner()
        .map_err(|err| Error::io(&path, "cannot write", err.into_error()))?;
    // The umask may have cleared bits of `mode`; set them exactly.
    use std::os::unix::fs::PermissionsExt;
    handle
        .set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| handle.sync_all())
        .at(&path, "cannot write")?;
    Ok((1, file.meta.size))
}

fn create_staged_parents(staged: &Path, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        if parent != staged {
            fs::create_dir_all(parent).at(parent, "cannot create")?;
        }
    }
    Ok(())
}

fn write_metadata(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut handle = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .at(path, "cannot create")?;
    handle
        .write_all(bytes)
        .and_then(|()| handle.sync_all())
        .at(path, "cannot write")
}

/// fsync every folder below and including `root` (files were synced as they were written).
fn sync_tree(root: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(|err| {
            Error::io(
                root,
                "cannot walk",
                err.into_io_error()
                    .unwrap_or_else(|| io::Error::other("walk failed")),
            )
        })?;
        if entry.file_type().is_dir() {
            sync_folder(entry.path())?;
        }
    }
    Ok(())
}

/// Create the folders leading to `kb_root/rel_path` (not the last component), refusing symlinks.
fn create_parents(kb_root: &Path, rel_path: &str) -> Result<()> {
    let components: Vec<&str> = rel_path.split('/').collect();
    let mut current = kb_root.to_path_buf();
    for name in &components[..components.len() - 1] {
        let parent = current.clone();
        current.push(name);
        match fs::create_dir(&current) {
            Ok(()) => sync_file_system(&parent)?,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(Error::io(&current, "cannot create", err)),
        }
        let meta = fs::symlink_metadata(&current).at(&current, "cannot stat")?;
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(Error::unsupported(
                &current,
                "is not a folder (symlinks are never followed inside a KB)",
            ));
        }
    }
    Ok(())
}

/// The mirror records of an existing, verified packet folder that the catalog did not know.
fn present_files(files: &[HashedFile], folder: &Path, rel_path: &str) -> Result<Vec<MirrorFile>> {
    let references = match fs::symlink_metadata(folder.join(REFERENCES_FILE_NAME)) {
        Ok(_) => {
            let path = folder.join(REFERENCES_FILE_NAME);
            let bytes = crate::gate::read_seal_bytes(&path)?;
            references::decode(&bytes, &path)?
        }
        Err(_) => Vec::new(),
    };
    Ok(files
        .iter()
        .map(|f| match references.iter().find(|r| r.path == f.rel_path) {
            Some(r) => MirrorFile {
                path: f.rel_path.clone(),
                sha256: f.meta.sha256,
                stored_as: "reference".into(),
                kb_path: r.kb_path.clone(),
            },
            None => MirrorFile {
                path: f.rel_path.clone(),
                sha256: f.meta.sha256,
                stored_as: "copy".into(),
                kb_path: format!("{rel_path}/{}", f.rel_path),
            },
        })
        .collect())
}

/// Record a mirror: its mirror list object is written into the store (durable) first, then the
/// `mirrors` and `mirror_files` rows and the `mirror` event naming the list commit together, so
/// the store alone can give a new catalog these rows back (catch-up, `reindex`).
#[allow(clippy::too_many_arguments)]
fn record_mirror(
    store: &Store,
    catalog: &mut Catalog,
    row: &PacketRow,
    kb_key: &str,
    rel_path: &str,
    dedup: Dedup,
    files: Vec<MirrorFile>,
    action: &str,
) -> Result<()> {
    let counts = |kind: &str| files.iter().filter(|f| f.stored_as == kind).count() as u64;
    let (copied, hardlinked, referenced) =
        (counts("copy"), counts("hardlink"), counts("reference"));
    let list = MirrorList {
        kb_root: kb_key.to_string(),
        rel_path: rel_path.to_string(),
        record: row.record_id,
        packet_tree_sha256: row.record.packet_tree_sha256,
        dedup: dedup.name().into(),
        files,
    };
    let payload = list.encode();
    // A list the decoder would refuse could never rebuild this mirror: fail before recording.
    MirrorList::decode(&payload).map_err(|reason| {
        Error::Internal(format!(
            "the mirror list of {kb_key}/{rel_path} does not read back: {reason}"
        ))
    })?;
    let list_id = blake3_of(&payload);
    let batch = store.batch()?;
    batch.add_bytes(list_id, ObjectKind::MirrorList, &payload)?;
    batch.commit()?;
    let event = NewEvent::mirror(
        &format!("{kb_key}/{rel_path}"),
        &format!("{}@{}", row.record.name, row.record.version),
        &row.record.packet_tree_sha256,
        action,
        Some(&MirrorPublication {
            dedup: dedup.name(),
            copied,
            hardlinked,
            referenced,
            mirror_list: Some(&list_id),
        }),
    );
    catalog.add_mirror(
        &NewMirror {
            packet_id: row.id,
            list,
        },
        &event,
    )?;
    Ok(())
}

fn log_mirror(
    catalog: &mut Catalog,
    kb_key: &str,
    rel_path: &str,
    label: &str,
    sha: &Sha256Digest,
    action: &str,
) -> Result<()> {
    catalog.log_event(&NewEvent::mirror(
        &format!("{kb_key}/{rel_path}"),
        label,
        sha,
        action,
        None,
    ))?;
    Ok(())
}
