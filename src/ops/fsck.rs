//! Whole-store checks (`fsck`), and the checked-object map `reindex` shares.
//!
//! [`fsck`] reads every object and re-hashes it, decodes every tree node and packet record,
//! follows every reference from the catalog's packets down to file blobs, compares the catalog
//! with the objects, checks the event hash chain and SQLite's own integrity check. It keeps going
//! after a problem and returns every problem found, each naming the object, packet, path or event
//! it concerns. Objects that no catalog row refers to are not problems (an interrupted ingest
//! leaves such objects behind); they are reported as notes.
//!
//! The run is one `FsckRun` with one method per phase (objects, packets, object rows, reruns,
//! commitments, mirrors, event chain, SQLite and leftovers); every phase reads what the earlier
//! ones checked, never the store again. Trees are walked over the already-checked nodes by
//! `walk_stored_tree`, which, unlike the read path's walk in [`crate::packet`], keeps going past
//! a missing or corrupt node and names it.
//!
//! **Architecture Invariant:** fsck writes nothing (the store, the catalog and the commit markers
//! are only read) and reads the catalog under one read snapshot, pinned after the commit markers
//! are read and before the objects are listed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{
    Catalog, EventRow, LostItem, MirrorFile, MirrorRow, ObjectRow, PacketRow, RunRow,
};
use crate::digest::{Blake3Digest, Sha256Digest};
use crate::error::{IoContext, Result};
use crate::format::attestation::{decode_summary, AttestationSummary};
use crate::format::event::{
    event_hash, log_key, mirror_without_list, named_object, NamedObject, GENESIS_HASH,
};
use crate::format::mirror_list::MirrorList;
use crate::format::object::ObjectKind;
use crate::format::record::PacketRecord;
use crate::format::tree::{manifest_of, HashedFile, TreeNode};
#[cfg(test)]
use crate::format::tree::{TreeEntry, MAX_DEPTH};
use crate::progress::Progress;
use crate::store::log::EventLog;
use crate::store::refs::{Markers, Refs};
use crate::store::{ListedName, ListedObject, ObjectLocation, Store};
use crate::text::EscapePath;

/// One problem found by fsck.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// What the problem concerns: `object <id>`, `packet NAME@N`, `event <seq>`, a path.
    pub subject: String,
    /// What is wrong.
    pub reason: String,
}

/// What fsck checked and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FsckReport {
    /// Objects read and re-hashed.
    pub objects_checked: u64,
    /// Uncompressed bytes re-hashed.
    pub bytes_checked: u64,
    /// Catalog packets followed down to their blobs.
    pub packets_checked: u64,
    /// Events whose hash chain was checked.
    pub events_checked: u64,
    /// The event log's size, from its `log/` keys (the Merkle log's tree size).
    pub log_tree_size: u64,
    /// The Merkle root of the whole log, recomputed from its `log/` keys (lowercase hex).
    pub log_root: String,
    /// Kept checkpoints (`checkpoints/`) checked against the log.
    pub checkpoints_checked: u64,
    /// Every problem; empty means the store is sound.
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not problems.
    pub notes: Vec<String>,
}

/// What one object turned out to be.
#[derive(Clone, Debug)]
pub(super) enum Checked {
    Blob { sha256: Sha256Digest, size: u64 },
    Tree(TreeNode),
    Record(PacketRecord),
    Attestation(Box<AttestationSummary>),
    MirrorList(Box<MirrorList>),
}

/// The outcome of checking one object: what it is and its size, or why it is bad.
pub(super) type ObjectCheck = std::result::Result<(Checked, u64), String>;

/// One stored copy of an object, as the backend listed it: its id, where it is, its stored size.
pub(super) type ListedCopy = (Blake3Digest, ObjectLocation, u64);

/// Read and verify one object; small structured objects are decoded too.
pub(super) fn check_object(
    store: &Store,
    id: &Blake3Digest,
    location: &ObjectLocation,
) -> ObjectCheck {
    let decoded = store
        .read_object_at(id, location, io::sink())
        .map_err(|e| e.to_string())?;
    let size = decoded.digest.len;
    let checked = match decoded.header.kind {
        ObjectKind::Blob => Checked::Blob {
            sha256: decoded.digest.sha256,
            size,
        },
        ObjectKind::Tree => {
            let (_, bytes) = store
                .read_small_object_at(id, location)
                .map_err(|e| e.to_string())?;
            Checked::Tree(TreeNode::decode(&bytes).map_err(|r| format!("bad tree node: {r}"))?)
        }
        ObjectKind::Record => {
            let (_, bytes) = store
                .read_small_object_at(id, location)
                .map_err(|e| e.to_string())?;
            Checked::Record(
                PacketRecord::decode(&bytes).map_err(|r| format!("bad packet record: {r}"))?,
            )
        }
        ObjectKind::Attestation => {
            let (_, bytes) = store
                .read_small_object_at(id, location)
                .map_err(|e| e.to_string())?;
            Checked::Attestation(Box::new(
                decode_summary(&bytes).map_err(|r| format!("bad attestation: {r}"))?,
            ))
        }
        ObjectKind::MirrorList => {
            let (_, bytes) = store
                .read_small_object_at(id, location)
                .map_err(|e| e.to_string())?;
            Checked::MirrorList(Box::new(
                MirrorList::decode(&bytes).map_err(|r| format!("bad mirror list: {r}"))?,
            ))
        }
    };
    Ok((checked, size))
}

/// Check every listed copy, in parallel, advancing `progress` by each copy's stored size; the
/// results are in the order of `copies`.
pub(super) fn check_copies(
    store: &Store,
    copies: &[ListedCopy],
    progress: &Progress,
) -> Vec<(Blake3Digest, ObjectCheck)> {
    copies
        .par_iter()
        .map(|(id, location, stored_size)| {
            let checked = check_object(store, id, location);
            progress.advance(*stored_size);
            (*id, checked)
        })
        .collect()
}

/// A tree walked over already-checked nodes: its files in path-byte order, the nodes reached
/// (depth first, each before the nodes below it), and the nodes that could not be walked.
#[derive(Debug, Default)]
pub(super) struct StoredTreeWalk {
    /// Every file the walked nodes list, sorted by path.
    pub(super) files: Vec<HashedFile>,
    /// Every node walked, the root first, each folder's node before its subfolders' nodes.
    pub(super) nodes: Vec<Blake3Digest>,
    /// Nodes that are missing, corrupt, not trees, or too deep: the id and what it should have
    /// been (`tree node`, `too-deep tree node`). Empty means the walk is complete.
    pub(super) unwalkable: Vec<(Blake3Digest, &'static str)>,
}

/// Walk the tree rooted at `root` over the nodes fsck already checked. The one entry point for
/// every tree walk of fsck and reindex, so that it can be switched to a shared walker by
/// changing this function alone.
pub(super) fn walk_stored_tree(
    good: &HashMap<Blake3Digest, Checked>,
    root: &Blake3Digest,
) -> StoredTreeWalk {
    use crate::packet::{walk_available, UnreadNode};
    // The walker asks for each node once, parents before children: that order is the walk's.
    let walked_nodes = std::cell::RefCell::new(Vec::new());
    let (files, unread) = walk_available(
        |id| match good.get(id) {
            Some(Checked::Tree(node)) => {
                walked_nodes.borrow_mut().push(*id);
                Some(node)
            }
            _ => None,
        },
        root,
    );
    StoredTreeWalk {
        files,
        nodes: walked_nodes.into_inner(),
        unwalkable: unread
            .into_iter()
            .map(|(id, why)| {
                let what = match why {
                    UnreadNode::Unavailable => "tree node",
                    UnreadNode::TooDeep => "too-deep tree node",
                };
                (id, what)
            })
            .collect(),
    }
}

/// Where seal signatures are kept, as fsck names them.
const SEAL_SIGNATURES: &str = crate::ops::signed_seals::SEAL_SIGNATURES_PREFIX;

/// Check the whole store and catalog.
///
/// Progress counts the stored (compressed) bytes of the objects read.
///
/// # Errors
///
/// Returns an error only when a check cannot run: the catalog cannot be read or pinned, the
/// store's objects cannot be listed, or the temp folder cannot be listed. Whatever is wrong with
/// the objects, records, trees, catalog rows, commit markers or events is a [`Problem`] in the
/// report, not an error.
pub fn fsck(store: &Store, catalog: &Catalog, progress: &Progress) -> Result<FsckReport> {
    // Pin the catalog before listing objects: a packet committed before this point had all its
    // objects durable before its commit, so the listing below includes them; a packet committed
    // later is not in the snapshot. Without this, fsck during an ingest reports false problems.
    // The commit markers are read before the snapshot is pinned: a marker is written after its
    // commit, so every marker read here names something the snapshot holds (read later, a
    // marker of an ingest that committed meanwhile would look like a lost packet).
    let refs = Refs::unlocked(store);
    let (markers, markers_unreadable) = match refs.read_all() {
        Ok(markers) => (markers, None),
        Err(err) => (Default::default(), Some(err.to_string())),
    };
    let _snapshot = catalog.read_snapshot()?;

    let mut run = FsckRun::new(store, catalog);
    run.check_objects(progress)?;
    run.check_packets()?;
    run.check_object_rows()?;
    run.check_runs()?;
    run.check_signatures()?;
    // The event log is read once: for what it says was committed and for its hash chain.
    let events = catalog.events()?;
    run.check_commitments(&events, &refs, &markers, markers_unreadable)?;
    run.check_mirrors(&events)?;
    run.check_event_chain(&events);
    run.check_log(&events)?;
    run.check_merkle_log(&events)?;
    run.check_sqlite_and_leftovers()?;
    Ok(run.finish())
}

/// The state of one fsck run: what the earlier phases checked, and the report so far.
struct FsckRun<'a> {
    store: &'a Store,
    catalog: &'a Catalog,
    report: FsckReport,
    /// Objects that read and decoded soundly, by id.
    good: HashMap<Blake3Digest, Checked>,
    /// Objects with at least one bad stored copy.
    bad: HashSet<Blake3Digest>,
    /// The catalog's packets (read once).
    packets: Vec<PacketRow>,
    /// The record ids the catalog's packets hold.
    catalog_records: HashSet<Blake3Digest>,
    /// The attestation ids the catalog's runs hold.
    catalog_attestations: HashSet<Blake3Digest>,
}

impl<'a> FsckRun<'a> {
    fn new(store: &'a Store, catalog: &'a Catalog) -> FsckRun<'a> {
        FsckRun {
            store,
            catalog,
            report: FsckReport::default(),
            good: HashMap::new(),
            bad: HashSet::new(),
            packets: Vec::new(),
            catalog_records: HashSet::new(),
            catalog_attestations: HashSet::new(),
        }
    }

    fn problem(&mut self, subject: String, reason: String) {
        self.report.problems.push(Problem { subject, reason });
    }

    /// Why `id` cannot be used: a bad copy was found, or it is not in the store at all.
    fn describe_missing(&self, id: &Blake3Digest) -> &'static str {
        if self.bad.contains(id) {
            "is corrupt (see above)"
        } else {
            "is missing from the store"
        }
    }

    /// Phase 1: list every object on disk and check every stored copy (a good copy elsewhere
    /// does not excuse a corrupt one).
    fn check_objects(&mut self, progress: &Progress) -> Result<()> {
        let mut copies: Vec<ListedCopy> = Vec::new();
        for item in self.store.backend().list()? {
            match item {
                ListedObject::Object {
                    id,
                    location,
                    stored_size,
                } => copies.push((id, location, stored_size)),
                ListedObject::Stray(path) => self.problem(
                    path.escaped().to_string(),
                    "stray entry in the objects or packs folder (not an object or pack name)"
                        .into(),
                ),
                ListedObject::BadPack { path, reason } => self.problem(
                    format!("pack {}", path.escaped()),
                    format!("{reason}; none of its objects can be read"),
                ),
            }
        }
        let phase = progress.phase("fsck", copies.iter().map(|c| c.2).sum());
        let results = check_copies(self.store, &copies, progress);
        drop(phase);
        for (id, result) in results {
            self.report.objects_checked += 1;
            match result {
                Ok((checked, size)) => {
                    self.report.bytes_checked += size;
                    self.good.insert(id, checked);
                }
                Err(reason) => {
                    self.bad.insert(id);
                    self.problem(format!("object {id}"), reason);
                }
            }
        }
        Ok(())
    }

    /// Phase 2: every catalog packet, from its record object down to its blobs.
    fn check_packets(&mut self) -> Result<()> {
        self.packets = self.catalog.packets()?;
        let packets = std::mem::take(&mut self.packets);
        for row in &packets {
            self.report.packets_checked += 1;
            self.catalog_records.insert(row.record_id);
            self.check_packet(row)?;
        }
        self.packets = packets;
        Ok(())
    }

    fn check_packet(&mut self, row: &PacketRow) -> Result<()> {
        let label = format!("packet {}@{}", row.record.name, row.record.version);
        self.check_record_object(row, &label);
        let walk = walk_stored_tree(&self.good, &row.record.tree);
        let mut complete = walk.unwalkable.is_empty();
        for (id, what) in &walk.unwalkable {
            let reason = format!("{what} {id} {}", self.describe_missing(id));
            self.problem(label.clone(), reason);
        }
        if !self.check_blobs(&walk.files, &label) {
            complete = false;
        }
        if complete {
            self.check_tree_against_record(&walk.files, &row.record, &label)?;
        }
        let entries = self.catalog.entries(row.id)?;
        if complete && entries != walk.files {
            self.problem(label, "catalog entries differ from the stored tree".into());
        }
        Ok(())
    }

    /// The packet's record object must be a record equal to the catalog row.
    fn check_record_object(&mut self, row: &PacketRow, label: &str) {
        let reason = match self.good.get(&row.record_id) {
            Some(Checked::Record(record)) if *record == row.record => return,
            Some(Checked::Record(_)) => format!(
                "record object {} disagrees with the catalog row",
                row.record_id
            ),
            Some(_) => format!("record object {} is not a packet record", row.record_id),
            None => format!(
                "record object {} {}",
                row.record_id,
                self.describe_missing(&row.record_id)
            ),
        };
        self.problem(label.to_string(), reason);
    }

    /// Every file's blob must be a blob with the tree entry's SHA-256 and size; returns false if
    /// a blob is missing or corrupt (the tree's hash cannot then be checked).
    fn check_blobs(&mut self, files: &[HashedFile], label: &str) -> bool {
        let mut all_present = true;
        for file in files {
            let reason = match self.good.get(&file.meta.blake3) {
                Some(Checked::Blob { sha256, size }) => {
                    if *sha256 == file.meta.sha256 && *size == file.meta.size {
                        continue;
                    }
                    format!(
                        "{}: blob {} has other bytes than the tree entry says",
                        file.rel_path, file.meta.blake3
                    )
                }
                Some(_) => format!(
                    "{}: object {} is not a blob",
                    file.rel_path, file.meta.blake3
                ),
                None => {
                    all_present = false;
                    format!(
                        "{}: blob {} {}",
                        file.rel_path,
                        file.meta.blake3,
                        self.describe_missing(&file.meta.blake3)
                    )
                }
            };
            self.problem(label.to_string(), reason);
        }
        all_present
    }

    /// A complete tree must hash to the record's packet_tree_sha256 and match its counts.
    fn check_tree_against_record(
        &mut self,
        files: &[HashedFile],
        record: &PacketRecord,
        label: &str,
    ) -> Result<()> {
        let manifest = manifest_of(files)?;
        if manifest.packet_tree_sha256() != record.packet_tree_sha256 {
            self.problem(
                label.to_string(),
                "its tree does not hash to the recorded packet_tree_sha256".into(),
            );
        }
        if files.len() as u64 != record.file_count
            || files.iter().map(|f| f.meta.size).sum::<u64>() != record.total_bytes
        {
            self.problem(
                label.to_string(),
                "file count or total bytes differ from the tree".into(),
            );
        }
        Ok(())
    }

    /// Phase 3: every catalog object row must be backed by an object.
    fn check_object_rows(&mut self) -> Result<()> {
        for ObjectRow { id, kind, .. } in self.catalog.objects()? {
            if !self.good.contains_key(&id) && !self.bad.contains(&id) {
                self.problem(
                    format!("object {id}"),
                    format!(
                        "the catalog lists this {kind} object but it is missing from the store"
                    ),
                );
            }
        }
        Ok(())
    }

    /// Phase 4: every recorded rerun against its attestation object.
    fn check_runs(&mut self) -> Result<()> {
        let labels: HashMap<i64, (String, Sha256Digest)> = self
            .packets
            .iter()
            .map(|row| {
                let label = format!("{}@{}", row.record.name, row.record.version);
                (row.id, (label, row.record.packet_tree_sha256))
            })
            .collect();
        for run in self.catalog.runs(None)? {
            self.check_run(&run, &labels);
        }
        Ok(())
    }

    fn check_run(&mut self, run: &RunRow, labels: &HashMap<i64, (String, Sha256Digest)>) {
        let subject = format!("run {}", run.id);
        let Some(id) = Blake3Digest::parse_hex(&run.attestation) else {
            self.problem(
                subject,
                format!(
                    "attestation id {:?} is not a BLAKE3 digest",
                    run.attestation
                ),
            );
            return;
        };
        self.catalog_attestations.insert(id);
        let attestation = match self.good.get(&id) {
            Some(Checked::Attestation(attestation)) => attestation,
            Some(_) => {
                self.problem(subject, format!("object {id} is not an attestation"));
                return;
            }
            None => {
                let reason = format!("attestation {id} {}", self.describe_missing(&id));
                self.problem(subject, reason);
                return;
            }
        };
        let mut problems = Vec::new();
        let row_packet = run.packet_id.and_then(|p| labels.get(&p));
        let row_summary = serde_json::from_str::<serde_json::Value>(&run.summary).ok();
        if run.expected_sha256 != attestation.expected_sha256.to_hex()
            || run.verdict != attestation.verdict
            || row_packet.map(|(label, _)| label) != attestation.packet.as_ref()
            || row_summary.as_ref() != Some(&attestation.summary)
        {
            problems.push(format!("the catalog row disagrees with attestation {id} (packet, expected hash, verdict or summary)"));
        }
        // A rerun of a stored packet expects exactly that packet's tree hash.
        if let Some((label, packet_tree_sha256)) = row_packet {
            if attestation.expected_sha256 != *packet_tree_sha256 {
                problems.push(format!(
                    "attestation {id} claims a rerun of {label} but expects {}, not its packet_tree_sha256 {packet_tree_sha256}",
                    attestation.expected_sha256
                ));
            }
        }
        for reason in problems {
            self.problem(subject.clone(), reason);
        }
    }

    /// Phase 4b: every kept signature (`signatures/`, FORMAT.md §3b and §7b-1) verifies: a seal
    /// signature over the canonical manifest of a packet with its tree, an attestation's over
    /// its statement. A signature of a tree or attestation the catalog does not hold is a note (an
    /// ingest or rerun stopped after keeping it); one that does not verify is a problem.
    fn check_signatures(&mut self) -> Result<()> {
        use crate::ops::{attest, signed_seals};
        // Listed one level at a time (not as a flat list of keys), so that a folder standing
        // where a signature or a group of signatures should be is looked at too.
        let backend = self.store.backend();
        let mut seals: BTreeSet<String> = BTreeSet::new();
        let mut attestations: BTreeSet<String> = BTreeSet::new();
        for top in backend.list_names("signatures/")? {
            match top {
                ListedName::Name(space) if space == "seals" || space == "attestations" => {
                    let prefix = format!("signatures/{space}/");
                    for listed in backend.list_names(&prefix)? {
                        match listed {
                            ListedName::Name(name) if space == "seals" => {
                                seals.insert(name);
                            }
                            ListedName::Name(name) => {
                                attestations.insert(name);
                            }
                            ListedName::NotUtf8(shown) => self.problem(
                                self.store
                                    .root()
                                    .join(&prefix)
                                    .join(&shown)
                                    .escaped()
                                    .to_string(),
                                "has a name that is not UTF-8, so it is not a signature evstore \
                                 keeps"
                                    .into(),
                            ),
                        }
                    }
                }
                ListedName::Name(name) => self.problem(
                    self.store
                        .root()
                        .join("signatures")
                        .join(&name)
                        .escaped()
                        .to_string(),
                    "is not where evstore keeps a signature (signatures/seals/SHA/KEY or \
                     signatures/attestations/ID/KEY)"
                        .into(),
                ),
                ListedName::NotUtf8(shown) => self.problem(
                    self.store
                        .root()
                        .join("signatures")
                        .join(&shown)
                        .escaped()
                        .to_string(),
                    "has a name that is not UTF-8, so it is not a signature evstore keeps".into(),
                ),
            }
        }
        // A record that names its seal's signer needs that signature kept.
        let signed: Vec<PacketRow> = self
            .packets
            .iter()
            .filter(|row| row.record.seal_signer.is_some())
            .cloned()
            .collect();
        for row in signed {
            let sha = row.record.packet_tree_sha256.to_hex();
            let subject = format!("packet {}@{}", row.record.name, row.record.version);
            if !seals.contains(&sha) {
                self.problem(
                    subject,
                    format!(
                        "its record says its seal was signed by {}, but {SEAL_SIGNATURES}{sha}/ \
                         holds no signature (deleted?)",
                        row.record.seal_signer.as_deref().unwrap_or("")
                    ),
                );
                continue;
            }
            let kept = crate::packet::verified_files(self.store, &row)
                .and_then(|(_, files)| crate::format::tree::manifest_of(&files))
                .and_then(|manifest| {
                    signed_seals::kept_seal_signatures(
                        self.store,
                        &row.record.packet_tree_sha256,
                        manifest.text().as_bytes(),
                    )
                });
            if let Ok(kept) = kept {
                let signer = row.record.seal_signer.as_deref().unwrap_or("");
                if !kept.iter().any(|k| k.key_fingerprint == signer) {
                    self.problem(
                        subject,
                        format!(
                            "its record says its seal was signed by {signer}, but \
                             {SEAL_SIGNATURES}{sha}/ holds no signature by that key (deleted?)"
                        ),
                    );
                }
            }
        }
        for sha in seals {
            let subject = format!("{SEAL_SIGNATURES}{sha}/");
            let Some(digest) = Sha256Digest::parse_hex(&sha) else {
                self.problem(subject, "is not named by a packet_tree_sha256".into());
                continue;
            };
            let Some(row) = self
                .packets
                .iter()
                .find(|row| row.record.packet_tree_sha256 == digest)
                .cloned()
            else {
                self.report.notes.push(format!(
                    "{subject} holds signatures of a seal no packet in the catalog has"
                ));
                continue;
            };
            let checked = crate::packet::verified_files(self.store, &row)
                .and_then(|(_, files)| crate::format::tree::manifest_of(&files))
                .and_then(|manifest| {
                    signed_seals::kept_seal_signatures(
                        self.store,
                        &digest,
                        manifest.text().as_bytes(),
                    )
                });
            if let Err(err) = checked {
                self.problem(subject, err.to_string());
            }
        }
        for id in attestations {
            let subject = format!("{}{id}/", attest::SIGNATURES_PREFIX);
            let Some(digest) = Blake3Digest::parse_hex(&id) else {
                self.problem(subject, "is not named by an attestation id".into());
                continue;
            };
            if !self.catalog_attestations.contains(&digest) {
                self.report.notes.push(format!(
                    "{subject} holds signatures of an attestation no run in the catalog has"
                ));
                continue;
            }
            if let Err(err) = attest::envelope_of(self.store, &digest) {
                self.problem(subject, err.to_string());
            }
        }
        Ok(())
    }

    /// Phase 5: what the log and the commit markers say was committed against what the catalog
    /// holds. What the catalog no longer holds is lost: a failure until it is restored (objects
    /// back, `reindex --replace`) or acknowledged (`forget`).
    fn check_commitments(
        &mut self,
        events: &[EventRow],
        refs: &Refs,
        markers: &Markers,
        markers_unreadable: Option<String>,
    ) -> Result<()> {
        let mut commitments = self.catalog.commitments_of(events)?;
        commitments.add_markers(markers);
        if let Some(reason) = markers_unreadable {
            self.problem(
                format!("{}", self.store.root().join("refs").escaped()),
                reason,
            );
        }
        self.check_markers(refs, markers);
        for lost in commitments.lost(&self.catalog_records, &self.catalog_attestations) {
            self.report_lost(&lost);
        }
        self.note_forgotten(events);
        // Records and attestations no event commits: left by an interrupted or failed ingest or
        // rerun; harmless, and never revived by reindex.
        for (id, checked) in &self.good {
            match checked {
                Checked::Record(record)
                    if !self.catalog_records.contains(id)
                        && !commitments.records.contains_key(id) =>
                {
                    self.report.notes.push(format!(
                        "record {id} ({}@{}) is not in the catalog and no event commits it (left by an interrupted or failed ingest; reindex does not revive it)",
                        record.name, record.version
                    ));
                }
                Checked::Attestation(_)
                    if !self.catalog_attestations.contains(id)
                        && !commitments.attestations.contains_key(id) =>
                {
                    self.report.notes.push(format!(
                        "attestation {id} is not in the catalog and no event commits it (left by an interrupted rerun)"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The commit markers: unreadable ones, ones at the wrong NAME@N, and catalog packets whose
    /// marker names another record or is missing.
    fn check_markers(&mut self, refs: &Refs, markers: &Markers) {
        for (subject, reason) in &markers.problems {
            self.problem(format!("commit marker {subject}"), reason.clone());
        }
        // A marker must sit at its record's own NAME@N.
        for (id, label) in &markers.records {
            if let Some(Checked::Record(record)) = self.good.get(id) {
                let own = format!("{}@{}", record.name, record.version);
                if own != *label {
                    self.problem(
                        format!("commit marker refs/packets/{}", label.replacen('@', "/", 1)),
                        format!("names record {id}, which is {own}, not {label}"),
                    );
                }
            }
        }
        // In an S3 store every committed version's claim is created before its catalog commit
        // (and a bucket has no empty folders): a missing claim, or no refs/ at all beside
        // packets, was removed from the bucket, never "not written yet".
        let remote = self.store.is_remote();
        // A claim the listing did not show may have been created since (a writer committing
        // while fsck runs: its claim came after the listing, its rows before the catalog was
        // read); it is read once more, by its key, before it is called missing.
        let claim_still_missing = |row: &PacketRow| {
            refs.read_packet_claim(&row.record.name, row.record.version)
                .is_none_or(|id| id != row.record_id)
        };
        if !refs.present() && remote {
            for row in &self.packets {
                if !claim_still_missing(row) {
                    continue;
                }
                self.report.problems.push(Problem {
                    subject: format!("packet {}@{}", row.record.name, row.record.version),
                    reason: format!(
                        "its version claim {} is missing from the bucket (refs/ is empty): every \
                         committed version's claim is created before its commit, so it was removed",
                        refs.shown_key(&format!(
                            "refs/packets/{}/{}",
                            row.record.name, row.record.version
                        ))
                    ),
                });
            }
            return;
        }
        if !refs.present() {
            self.report.notes.push(format!(
                "{} has no refs/ folder of commit markers (a store written by an earlier version); \
                 the next ingest, rerun or reindex creates it",
                self.store.root().escaped()
            ));
            return;
        }
        // Two records for one NAME@N: the catalog's and a marker's.
        let marked: HashMap<&str, &Blake3Digest> = markers
            .records
            .iter()
            .map(|(id, label)| (label.as_str(), id))
            .collect();
        for row in &self.packets {
            let label = format!("{}@{}", row.record.name, row.record.version);
            match marked.get(label.as_str()) {
                Some(id) if **id != row.record_id => self.report.problems.push(Problem {
                    subject: format!("packet {label}"),
                    reason: format!(
                        "the catalog's record {} is not the record {id} its commit marker names: \
                         two trees claim one version (a catalog older than the store?)",
                        row.record_id
                    ),
                }),
                Some(_) => {}
                // A marker that is there but could not be read is already a problem above;
                // saying it is missing would send the user to the wrong fix.
                None if markers.problems.iter().any(|(shown, _)| {
                    shown.ends_with(&format!(
                        "refs/packets/{}/{}",
                        row.record.name, row.record.version
                    ))
                }) => {}
                None if remote && !claim_still_missing(row) => {}
                None if remote => self.report.problems.push(Problem {
                    subject: format!("packet {label}"),
                    reason: format!(
                        "its version claim {} is missing from the bucket: every committed \
                         version's claim is created before its commit, so it was removed",
                        refs.shown_key(&format!(
                            "refs/packets/{}/{}",
                            row.record.name, row.record.version
                        ))
                    ),
                }),
                None => self.report.notes.push(format!(
                    "packet {label} has no commit marker (a crash right after its commit); \
                     `evstore reindex --replace` writes it"
                )),
            }
        }
    }

    /// One committed packet or attestation the catalog no longer holds, with what would restore
    /// it.
    fn report_lost(&mut self, lost: &LostItem) {
        let id = Blake3Digest::parse_hex(&lost.id);
        let objects = match id.as_ref().and_then(|id| self.good.get(id)) {
            Some(Checked::Record(record)) => {
                if walk_stored_tree(&self.good, &record.tree)
                    .unwalkable
                    .is_empty()
                {
                    "its objects are in the store; `evstore reindex --replace` restores it"
                        .to_string()
                } else {
                    "its objects are missing or corrupt; restore them and run `evstore reindex \
                     --replace`"
                        .to_string()
                }
            }
            Some(Checked::Attestation(attestation)) => match &attestation.packet {
                Some(packet) if !self.holds_packet_label(packet) => format!(
                    "its object is in the store, but the packet it reran, {packet}, is not in \
                     the catalog either; restore that packet (then `evstore reindex --replace`), \
                     or acknowledge its loss with `evstore forget {packet} --reason TEXT`, which \
                     forgets its reruns too"
                ),
                _ => "its object is in the store; `evstore reindex --replace` restores it".into(),
            },
            _ => "its objects are missing or corrupt; restore them and run `evstore reindex \
                  --replace`"
                .to_string(),
        };
        let committed = match lost.committed_by_event {
            Some(seq) => format!("committed by event {seq}"),
            None => "committed".to_string(),
        };
        self.problem(
            format!("{} {}", lost.kind, lost.label),
            format!(
                "{} {} was {committed} but is not in the catalog: {objects}, or acknowledge the \
                 loss with `evstore forget {} --reason TEXT`",
                if lost.kind == "packet" {
                    "record"
                } else {
                    "attestation"
                },
                lost.id,
                lost.label_for_forget()
            ),
        );
    }

    /// Whether the catalog holds a packet `NAME@N`.
    fn holds_packet_label(&self, label: &str) -> bool {
        self.packets
            .iter()
            .any(|row| format!("{}@{}", row.record.name, row.record.version) == label)
    }

    /// A note for every `forget` event whose item is still out of the catalog.
    fn note_forgotten(&mut self, events: &[EventRow]) {
        for event in events.iter().filter(|e| e.kind == "forget") {
            let detail = serde_json::from_str::<serde_json::Value>(&event.detail).ok();
            let field = |name: &str| {
                detail
                    .as_ref()
                    .and_then(|d| d.get(name))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            let forgotten_id = field("id").and_then(|id| Blake3Digest::parse_hex(&id));
            if forgotten_id.is_some_and(|id| {
                self.catalog_records.contains(&id) || self.catalog_attestations.contains(&id)
            }) {
                // Forgotten, then restored: it is whole and in the catalog again.
                continue;
            }
            let what = match field("kind").as_deref() {
                Some("attestation") => format!(
                    "the rerun attestation {} (a rerun of {})",
                    field("id").unwrap_or_default(),
                    event.subject
                ),
                _ => format!("packet {}", event.subject),
            };
            self.report.notes.push(format!(
                "{what} was acknowledged as lost by event {} (`evstore forget`)",
                event.seq
            ));
        }
    }

    /// Phase 5b: every mirror list a `mirror` event names must be a sound mirror list object,
    /// and the catalog must record that mirror as the list does (when it holds the list's
    /// packet; a lost packet is reported by itself): the store alone rebuilds mirrors from these
    /// lists. Mirrors recorded before mirror lists existed cannot be rebuilt: a note counts them.
    fn check_mirrors(&mut self, events: &[EventRow]) -> Result<()> {
        let mut catalog_mirrors: HashMap<(String, String), (MirrorRow, Vec<MirrorFile>)> = self
            .catalog
            .all_mirrors()?
            .into_iter()
            .map(|(row, files)| ((row.kb_root.clone(), row.rel_path.clone()), (row, files)))
            .collect();
        let packet_ids: HashMap<Blake3Digest, i64> = self
            .packets
            .iter()
            .map(|row| (row.record_id, row.id))
            .collect();
        let mut without_list = Vec::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for event in events {
            if mirror_without_list(&event.kind, &event.detail) {
                without_list.push(event.seq.to_string());
                continue;
            }
            let Some(NamedObject::MirrorList(id)) = named_object(&event.kind, &event.detail) else {
                continue;
            };
            let named_by = format!(
                "named by event {} (the mirror at {})",
                event.seq, event.subject
            );
            let list = match self.good.get(&id) {
                Some(Checked::MirrorList(list)) => list.as_ref().clone(),
                Some(_) => {
                    self.problem(
                        format!("mirror list {id}"),
                        format!("{named_by}, is not a mirror list object"),
                    );
                    continue;
                }
                None => {
                    let reason = format!(
                        "{named_by}, {}: the store alone cannot rebuild this mirror",
                        self.describe_missing(&id)
                    );
                    self.problem(format!("mirror list {id}"), reason);
                    continue;
                }
            };
            let Some(packet_id) = packet_ids.get(&list.record) else {
                continue;
            };
            let key = (list.kb_root.clone(), list.rel_path.clone());
            let subject = format!("mirror {}/{}", list.kb_root, list.rel_path);
            // The first list for a KB path is the recorded one (the catalog keeps one mirror
            // per path); later events for it do not record it again.
            if !seen.insert(key.clone()) {
                continue;
            }
            let Some((row, files)) = catalog_mirrors.remove(&key) else {
                self.problem(
                    subject,
                    format!(
                        "the catalog does not record the mirror that mirror list {id} \
                         ({named_by}) records; `evstore reindex --replace` rebuilds it"
                    ),
                );
                continue;
            };
            if row.packet_id != *packet_id
                || row.packet_tree_sha256 != list.packet_tree_sha256
                || row.dedup != list.dedup
                || files != list.files
            {
                self.problem(
                    subject,
                    format!(
                        "the catalog's mirror rows disagree with mirror list {id} ({named_by}): \
                         packet, dedup or files"
                    ),
                );
            }
        }
        if !without_list.is_empty() {
            let (events, them) = if without_list.len() == 1 {
                ("event", "it")
            } else {
                ("events", "them")
            };
            self.report.notes.push(format!(
                "{} recorded before mirror lists were stored ({events} {}): the store alone \
                 cannot rebuild {them}; only a catalog that recorded {them} knows {them}",
                crate::text::count(without_list.len() as u64, "mirror"),
                without_list.join(", "),
            ));
        }
        Ok(())
    }

    /// Phase 6b: the catalog's events against the store's `log/` (read after the catalog's
    /// snapshot: every event the snapshot holds had its key created before it committed). Each
    /// log key must decode, chain, and hold exactly the catalog's event of its number; a catalog
    /// event without its key, and a key whose event no catalog holds, are problems. A key past
    /// the snapshot is looked up again in a fresh read of the catalog (an event committed while
    /// fsck ran). A layout-1 store has no log yet: a note.
    fn check_log(&mut self, events: &[EventRow]) -> Result<()> {
        let log = EventLog::of(self.store);
        if let Err(err) = crate::ops::markers::refuse_layout_2_without_its_keys(self.store) {
            self.problem(
                format!("store {}", self.store.root().escaped()),
                err.to_string(),
            );
            return Ok(());
        }
        if !log.present()? {
            self.report.notes.push(format!(
                "{} has no event log (log/) yet: a store made before layout 2; any evstore \
                 command run by a user who can write the store adds it",
                self.store.root().escaped()
            ));
            return Ok(());
        }
        let contents = log.read_all()?;
        let keys_with_problems: HashSet<String> = contents
            .problems
            .iter()
            .map(|(key, _)| key.clone())
            .collect();
        for (key, reason) in contents.problems {
            self.problem(format!("event log key {key}"), reason);
        }
        let in_log: HashMap<i64, &crate::format::event::LogEntry> =
            contents.entries.iter().map(|e| (e.seq, e)).collect();
        for event in events {
            let key = log.shown(&log_key(event.seq));
            match in_log.get(&event.seq) {
                // Named above with why it did not read.
                None if keys_with_problems.contains(&key) => {}
                None => self.problem(
                    format!("event {}", event.seq),
                    format!(
                        "is in the catalog but not in the store's event log ({key} is missing)"
                    ),
                ),
                Some(entry) if entry.encode() != event.encode() => self.problem(
                    format!("event log key {key}"),
                    format!("holds another event {} than the catalog", event.seq),
                ),
                Some(_) => {}
            }
        }
        let last = events.last().map_or(0, |e| e.seq);
        let later: Vec<&crate::format::event::LogEntry> =
            contents.entries.iter().filter(|e| e.seq > last).collect();
        if !later.is_empty() {
            // A writer creates its log key just before its catalog commit: one that was between
            // the two when the snapshot was pinned commits within moments. Look again a few
            // times (at most about 1 s) before calling a key missing from the catalog.
            let mut missing = later;
            // An `immutable` reader holds the catalog lock exclusively: no evstore writer is
            // between its key and its commit, and a second open would wait for this one.
            let writers_possible = !matches!(
                self.catalog.access(),
                crate::catalog::CatalogAccess::Immutable(_)
            );
            for attempt in 0..if writers_possible { 10 } else { 0 } {
                if attempt > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                let fresh = Catalog::open_read_only(self.catalog.path())?.events()?;
                let fresh: HashMap<i64, EventRow> = fresh.into_iter().map(|e| (e.seq, e)).collect();
                missing.retain(|entry| !fresh.get(&entry.seq).is_some_and(|row| *row == **entry));
                if missing.is_empty() {
                    break;
                }
            }
            for entry in missing {
                self.problem(
                    format!("event log key {}", log.shown(&log_key(entry.seq))),
                    format!(
                        "event {} ({} {}) is in the store's event log but not in the catalog \
                         (its catalog commit failed, or the catalog is older than the log); \
                         `evstore reindex --replace` rebuilds the catalog from the log",
                        entry.seq, entry.kind, entry.subject
                    ),
                );
            }
        }
        Ok(())
    }

    /// Phase 6c: the Merkle root of the whole log, recomputed from its `log/` keys, and every
    /// kept checkpoint checked against it (`ops::checkpoints::audit_log`).
    fn check_merkle_log(&mut self, events: &[EventRow]) -> Result<()> {
        let audit = crate::ops::checkpoints::audit_log(self.store, self.catalog, events)?;
        self.report.log_tree_size = audit.tree_size;
        self.report.log_root = audit.root;
        self.report.checkpoints_checked = audit.checkpoints_checked;
        for (subject, reason) in audit.problems {
            self.problem(subject, reason);
        }
        self.report.notes.extend(audit.notes);
        Ok(())
    }

    /// Phase 6: the event hash chain.
    fn check_event_chain(&mut self, events: &[EventRow]) {
        let mut prev = GENESIS_HASH;
        for (index, event) in events.iter().enumerate() {
            self.report.events_checked += 1;
            let subject = format!("event {}", event.seq);
            if event.seq != index as i64 + 1 {
                self.problem(
                    subject.clone(),
                    format!("sequence number should be {}", index + 1),
                );
            }
            if event.prev_hash != prev {
                self.problem(
                    subject.clone(),
                    "prev_hash does not match the previous event's hash".into(),
                );
            }
            let expected = event_hash(
                event.seq,
                event.time_unix_nanos,
                &event.kind,
                &event.subject,
                &event.prev_hash,
                &event.detail,
            );
            if expected.to_hex() != event.hash {
                self.problem(
                    subject,
                    "hash does not match the event's contents (tampered row)".into(),
                );
            }
            prev = &event.hash;
        }
    }

    /// Phase 7: SQLite's own check, and temp files an interrupted write left.
    fn check_sqlite_and_leftovers(&mut self) -> Result<()> {
        for text in self.catalog.integrity_problems()? {
            self.problem(self.catalog.path().escaped().to_string(), text);
        }
        let missing = self.catalog.missing_append_only_triggers()?;
        if !missing.is_empty() {
            self.problem(
                format!("catalog {}", self.catalog.path().escaped()),
                format!(
                    "its append-only triggers {} are gone: it was changed by hand, and its rows \
                     may have been rewritten; `evstore reindex --replace` rebuilds it from the \
                     store",
                    missing.join(", ")
                ),
            );
        }
        let tmp = self.store.tmp_path();
        let leftovers = std::fs::read_dir(&tmp).at(&tmp, "cannot list")?.count();
        if leftovers > 0 {
            self.report.notes.push(format!(
                "{} in {} (an interrupted write; readers ignore them; `evstore gc-temp` removes them)",
                crate::text::count(leftovers as u64, "temp file"),
                tmp.escaped()
            ));
        }
        Ok(())
    }

    /// The report, problems and notes in a stable order.
    fn finish(mut self) -> FsckReport {
        self.report
            .problems
            .sort_by(|a, b| (&a.subject, &a.reason).cmp(&(&b.subject, &b.reason)));
        self.report.notes.sort();
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::dual_of;
    use crate::format::tree::build_tree;

    fn file(path: &str, content: &[u8]) -> HashedFile {
        crate::format::tree::test_file(path, content, false)
    }

    /// A packet's files, its root id and its nodes decoded as fsck would hold them.
    fn checked_tree() -> (
        Vec<HashedFile>,
        Blake3Digest,
        HashMap<Blake3Digest, Checked>,
    ) {
        let files = vec![
            file("a/x.txt", b"x"),
            file("b/y.txt", b"y"),
            file("c/z.txt", b"z"),
            file("top.txt", b"top"),
        ];
        let built = build_tree(&files).unwrap();
        let good = built
            .nodes
            .iter()
            .map(|(id, bytes)| (*id, Checked::Tree(TreeNode::decode(bytes).unwrap())))
            .collect();
        (files, built.root, good)
    }

    fn subtree(
        good: &HashMap<Blake3Digest, Checked>,
        root: &Blake3Digest,
        name: &str,
    ) -> Blake3Digest {
        let Some(Checked::Tree(node)) = good.get(root) else {
            panic!("no root node");
        };
        node.entries()
            .iter()
            .find_map(|entry| match entry {
                TreeEntry::Dir { name: n, tree } if n == name => Some(*tree),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_whole_tree_walks_to_every_file_with_the_root_node_first() {
        let (files, root, good) = checked_tree();
        let walk = walk_stored_tree(&good, &root);
        assert_eq!(walk.files, files);
        assert!(walk.unwalkable.is_empty());
        assert_eq!(walk.nodes.len(), 4);
        assert_eq!(walk.nodes[0], root);
        assert_eq!(walk.nodes[1], subtree(&good, &root, "a"));
    }

    #[test]
    fn a_missing_or_non_tree_node_is_named_and_the_walk_goes_on() {
        let (files, root, mut good) = checked_tree();
        let b = subtree(&good, &root, "b");
        let c = subtree(&good, &root, "c");
        good.remove(&b);
        good.insert(
            c,
            Checked::Blob {
                sha256: dual_of(b"c").sha256,
                size: 1,
            },
        );
        let walk = walk_stored_tree(&good, &root);
        assert_eq!(walk.unwalkable, vec![(b, "tree node"), (c, "tree node")]);
        let paths: Vec<&str> = walk.files.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(paths, ["a/x.txt", "top.txt"]);
        assert_eq!(walk.files[0], files[0]);
        assert!(!walk.nodes.contains(&b) && !walk.nodes.contains(&c));
    }

    #[test]
    fn a_node_deeper_than_the_limit_is_named_not_walked() {
        let leaf = TreeNode::new(vec![TreeEntry::File {
            name: "f".into(),
            meta: file("f", b"f").meta,
        }])
        .unwrap();
        let mut good = HashMap::new();
        let mut id = leaf.id();
        let leaf_id = id;
        good.insert(id, Checked::Tree(leaf));
        // Nodes at depths 0 ..= MAX_DEPTH + 1: the leaf is one level too deep.
        for _ in 0..=MAX_DEPTH {
            let node = TreeNode::new(vec![TreeEntry::Dir {
                name: "d".into(),
                tree: id,
            }])
            .unwrap();
            id = node.id();
            good.insert(id, Checked::Tree(node));
        }
        let walk = walk_stored_tree(&good, &id);
        assert!(walk.files.is_empty());
        assert_eq!(walk.unwalkable, vec![(leaf_id, "too-deep tree node")]);
        assert_eq!(walk.nodes.len(), MAX_DEPTH + 1);
    }

    #[test]
    fn a_tree_at_the_depth_limit_is_walked_whole_on_a_small_stack() {
        // The walker keeps its own stack: 2048 levels must not need 2048 native frames.
        let walk = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let leaf = TreeNode::new(vec![TreeEntry::File {
                    name: "f".into(),
                    meta: file("f", b"f").meta,
                }])
                .unwrap();
                let mut good = HashMap::new();
                let mut id = leaf.id();
                good.insert(id, Checked::Tree(leaf));
                // The root at depth 0, the leaf at depth MAX_DEPTH: the deepest a walk reads.
                for _ in 0..MAX_DEPTH {
                    let node = TreeNode::new(vec![TreeEntry::Dir {
                        name: "d".into(),
                        tree: id,
                    }])
                    .unwrap();
                    id = node.id();
                    good.insert(id, Checked::Tree(node));
                }
                walk_stored_tree(&good, &id)
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(walk.unwalkable.is_empty());
        assert_eq!(walk.nodes.len(), MAX_DEPTH + 1);
        assert_eq!(walk.files.len(), 1);
        assert_eq!(
            walk.files[0].rel_path,
            format!("{}f", "d/".repeat(MAX_DEPTH))
        );
    }
}
