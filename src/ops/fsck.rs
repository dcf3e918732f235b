//! Whole-store checks (`fsck`) and rebuilding the catalog from objects (`reindex`).
//!
//! [`fsck`] reads every object and re-hashes it, decodes every tree node and packet record,
//! follows every reference from the catalog's packets down to file blobs, compares the catalog
//! with the objects, checks the event hash chain and SQLite's own integrity check. It keeps going
//! after a problem and returns every problem found, each naming the object, packet, path or event
//! it concerns. Objects that no catalog row refers to are not problems (an interrupted ingest
//! leaves such objects behind); they are reported as notes.
//!
//! [`reindex`] builds a new catalog from the objects alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{
    event_hash, Catalog, CatalogExclusiveLock, Commitments, LostItem, NewEvent, NewRun, ObjectRow,
    GENESIS_HASH,
};
use crate::digest::{Blake3Digest, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::format::object::ObjectKind;
use crate::format::record::PacketRecord;
use crate::format::tree::{manifest_of, HashedFile, TreeEntry, TreeNode, MAX_DEPTH};
use crate::ops::rerun::{decode_attestation, AttestationSummary};
use crate::progress::Progress;
use crate::store::refs::Refs;
use crate::store::{ListedObject, ObjectLocation, Store};
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
    /// Every problem; empty means the store is sound.
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not problems.
    pub notes: Vec<String>,
}

/// What one object turned out to be.
#[derive(Clone, Debug)]
enum Checked {
    Blob { sha256: Sha256Digest, size: u64 },
    Tree(TreeNode),
    Record(PacketRecord),
    Attestation(Box<AttestationSummary>),
}

/// The outcome of checking one object: what it is and its size, or why it is bad.
type ObjectCheck = std::result::Result<(Checked, u64), String>;

/// Read and verify one object; small structured objects are decoded too.
fn check_object(store: &Store, id: &Blake3Digest, location: &ObjectLocation) -> ObjectCheck {
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
                decode_attestation(&bytes).map_err(|r| format!("bad attestation: {r}"))?,
            ))
        }
    };
    Ok((checked, size))
}

/// Check the whole store and catalog.
///
/// Progress counts the stored (compressed) bytes of the objects read.
pub fn fsck(store: &Store, catalog: &Catalog, progress: &Progress) -> Result<FsckReport> {
    let mut report = FsckReport::default();
    let problem = |subject: String, reason: String| Problem { subject, reason };
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

    // 1. Every object on disk.
    let listed = store.backend().list()?;
    let mut copies = Vec::new();
    for item in listed {
        match item {
            ListedObject::Object {
                id,
                location,
                stored_size,
            } => copies.push((id, location, stored_size)),
            ListedObject::Stray(path) => report.problems.push(problem(
                path.escaped().to_string(),
                "stray entry in the objects or packs folder (not an object or pack name)".into(),
            )),
            ListedObject::BadPack { path, reason } => report.problems.push(problem(
                format!("pack {}", path.escaped()),
                format!("{reason}; none of its objects can be read"),
            )),
        }
    }
    // Every stored copy is checked: a good copy elsewhere does not excuse a corrupt one.
    let phase = progress.phase("fsck", copies.iter().map(|c| c.2).sum());
    let results: Vec<(Blake3Digest, ObjectCheck)> = copies
        .par_iter()
        .map(|(id, location, stored_size)| {
            let checked = check_object(store, id, location);
            progress.advance(*stored_size);
            (*id, checked)
        })
        .collect();
    drop(phase);
    let mut good: HashMap<Blake3Digest, Checked> = HashMap::new();
    let mut bad: HashSet<Blake3Digest> = HashSet::new();
    for (id, result) in results {
        report.objects_checked += 1;
        match result {
            Ok((checked, size)) => {
                report.bytes_checked += size;
                good.insert(id, checked);
            }
            Err(reason) => {
                bad.insert(id);
                report
                    .problems
                    .push(problem(format!("object {id}"), reason));
            }
        }
    }
    let describe_missing = |id: &Blake3Digest| {
        if bad.contains(id) {
            "is corrupt (see above)".to_string()
        } else {
            "is missing from the store".to_string()
        }
    };

    // 2. Every catalog packet, down to its blobs.
    let packets = catalog.packets()?;
    let mut catalog_records = HashSet::new();
    for row in &packets {
        report.packets_checked += 1;
        let label = format!("packet {}@{}", row.record.name, row.record.version);
        catalog_records.insert(row.record_id);
        match good.get(&row.record_id) {
            Some(Checked::Record(record)) if *record == row.record => {}
            Some(Checked::Record(_)) => report.problems.push(problem(
                label.clone(),
                format!(
                    "record object {} disagrees with the catalog row",
                    row.record_id
                ),
            )),
            Some(_) => report.problems.push(problem(
                label.clone(),
                format!("record object {} is not a packet record", row.record_id),
            )),
            None => report.problems.push(problem(
                label.clone(),
                format!(
                    "record object {} {}",
                    row.record_id,
                    describe_missing(&row.record_id)
                ),
            )),
        }
        let mut files = Vec::new();
        let mut walk_problems = Vec::new();
        walk_checked(
            &good,
            &row.record.tree,
            "",
            0,
            &mut files,
            &mut walk_problems,
        );
        let mut complete = walk_problems.is_empty();
        for reason in walk_problems {
            let (id, what) = reason;
            report.problems.push(problem(
                label.clone(),
                format!("{what} {id} {}", describe_missing(&id)),
            ));
        }
        for file in &files {
            match good.get(&file.meta.blake3) {
                Some(Checked::Blob { sha256, size }) => {
                    if *sha256 != file.meta.sha256 || *size != file.meta.size {
                        report.problems.push(problem(
                            label.clone(),
                            format!(
                                "{}: blob {} has other bytes than the tree entry says",
                                file.rel_path, file.meta.blake3
                            ),
                        ));
                    }
                }
                Some(_) => report.problems.push(problem(
                    label.clone(),
                    format!(
                        "{}: object {} is not a blob",
                        file.rel_path, file.meta.blake3
                    ),
                )),
                None => {
                    complete = false;
                    report.problems.push(problem(
                        label.clone(),
                        format!(
                            "{}: blob {} {}",
                            file.rel_path,
                            file.meta.blake3,
                            describe_missing(&file.meta.blake3)
                        ),
                    ))
                }
            }
        }
        if complete {
            let manifest = manifest_of(&files)?;
            if manifest.packet_tree_sha256() != row.record.packet_tree_sha256 {
                report.problems.push(problem(
                    label.clone(),
                    "its tree does not hash to the recorded packet_tree_sha256".into(),
                ));
            }
            if files.len() as u64 != row.record.file_count
                || files.iter().map(|f| f.meta.size).sum::<u64>() != row.record.total_bytes
            {
                report.problems.push(problem(
                    label.clone(),
                    "file count or total bytes differ from the tree".into(),
                ));
            }
        }
        let entries = catalog.entries(row.id)?;
        if complete && entries != files {
            report.problems.push(problem(
                label.clone(),
                "catalog entries differ from the stored tree".into(),
            ));
        }
    }

    // 3. Catalog object rows must be backed by objects.
    for ObjectRow { id, kind, .. } in catalog.objects()? {
        if !good.contains_key(&id) && !bad.contains(&id) {
            report.problems.push(problem(
                format!("object {id}"),
                format!("the catalog lists this {kind} object but it is missing from the store"),
            ));
        }
    }

    // 4. Every recorded rerun against its attestation object.
    let labels: HashMap<i64, (String, Sha256Digest)> = packets
        .iter()
        .map(|row| {
            let label = format!("{}@{}", row.record.name, row.record.version);
            (row.id, (label, row.record.packet_tree_sha256))
        })
        .collect();
    let mut catalog_attestations = HashSet::new();
    for run in catalog.runs(None)? {
        let subject = format!("run {}", run.id);
        let Some(id) = Blake3Digest::parse_hex(&run.attestation) else {
            report.problems.push(problem(
                subject,
                format!(
                    "attestation id {:?} is not a BLAKE3 digest",
                    run.attestation
                ),
            ));
            continue;
        };
        catalog_attestations.insert(id);
        let attestation = match good.get(&id) {
            Some(Checked::Attestation(attestation)) => attestation,
            Some(_) => {
                report.problems.push(problem(
                    subject,
                    format!("object {id} is not an attestation"),
                ));
                continue;
            }
            None => {
                report.problems.push(problem(
                    subject,
                    format!("attestation {id} {}", describe_missing(&id)),
                ));
                continue;
            }
        };
        let row_packet = run.packet_id.and_then(|p| labels.get(&p));
        let row_summary = serde_json::from_str::<serde_json::Value>(&run.summary).ok();
        if run.expected_sha256 != attestation.expected_sha256.to_hex()
            || run.verdict != attestation.verdict
            || row_packet.map(|(label, _)| label) != attestation.packet.as_ref()
            || row_summary.as_ref() != Some(&attestation.summary)
        {
            report.problems.push(problem(
                subject.clone(),
                format!("the catalog row disagrees with attestation {id} (packet, expected hash, verdict or summary)"),
            ));
        }
        // A rerun of a stored packet expects exactly that packet's tree hash.
        if let Some((label, packet_tree_sha256)) = row_packet {
            if attestation.expected_sha256 != *packet_tree_sha256 {
                report.problems.push(problem(
                    subject,
                    format!(
                        "attestation {id} claims a rerun of {label} but expects {}, not its packet_tree_sha256 {packet_tree_sha256}",
                        attestation.expected_sha256
                    ),
                ));
            }
        }
    }

    // 5. What the log says was committed and the catalog no longer holds is lost: a failure
    // until it is restored (objects back, `reindex --replace`) or acknowledged (`forget`).
    let mut commitments = catalog.commitments()?;
    commitments.add_markers(&markers);
    if let Some(reason) = markers_unreadable {
        report.problems.push(problem(
            format!("{}", store.root().join("refs").escaped()),
            reason,
        ));
    }
    for (subject, reason) in &markers.problems {
        report
            .problems
            .push(problem(format!("commit marker {subject}"), reason.clone()));
    }
    // A marker must sit at its record's own NAME@N.
    for (id, label) in &markers.records {
        if let Some(Checked::Record(record)) = good.get(id) {
            let own = format!("{}@{}", record.name, record.version);
            if own != *label {
                report.problems.push(problem(
                    format!("commit marker refs/packets/{}", label.replacen('@', "/", 1)),
                    format!("names record {id}, which is {own}, not {label}"),
                ));
            }
        }
    }
    if refs.present() {
        // Two records for one NAME@N: the catalog's and a marker's.
        let marked: HashMap<&str, &Blake3Digest> = markers
            .records
            .iter()
            .map(|(id, label)| (label.as_str(), id))
            .collect();
        for row in &packets {
            let label = format!("{}@{}", row.record.name, row.record.version);
            match marked.get(label.as_str()) {
                Some(id) if **id != row.record_id => report.problems.push(problem(
                    format!("packet {label}"),
                    format!(
                        "the catalog's record {} is not the record {id} its commit marker names: \
                         two trees claim one version (a catalog older than the store?)",
                        row.record_id
                    ),
                )),
                Some(_) => {}
                None => report.notes.push(format!(
                    "packet {label} has no commit marker (a crash right after its commit); \
                     `evstore reindex --replace` writes it"
                )),
            }
        }
    } else {
        report.notes.push(format!(
            "{} has no refs/ folder of commit markers (a store written by an earlier version); \
             the next ingest, rerun or reindex creates it",
            store.root().escaped()
        ));
    }
    for lost in commitments.lost(&catalog_records, &catalog_attestations) {
        let id = Blake3Digest::parse_hex(&lost.id);
        let held_labels: HashSet<String> = packets
            .iter()
            .map(|row| format!("{}@{}", row.record.name, row.record.version))
            .collect();
        let objects = match id.as_ref().and_then(|id| good.get(id)) {
            Some(Checked::Record(record)) => {
                let (mut files, mut missing) = (Vec::new(), Vec::new());
                walk_checked(&good, &record.tree, "", 0, &mut files, &mut missing);
                if missing.is_empty() {
                    "its objects are in the store; `evstore reindex --replace` restores it"
                        .to_string()
                } else {
                    "its objects are missing or corrupt; restore them and run `evstore reindex \
                     --replace`"
                        .to_string()
                }
            }
            Some(Checked::Attestation(attestation)) => match &attestation.packet {
                Some(packet) if !held_labels.contains(packet) => format!(
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
        report.problems.push(problem(
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
        ));
    }
    for event in catalog.events()?.iter().filter(|e| e.kind == "forget") {
        let detail = serde_json::from_str::<serde_json::Value>(&event.detail).ok();
        let field = |name: &str| {
            detail
                .as_ref()
                .and_then(|d| d.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let forgotten_id = field("id").and_then(|id| Blake3Digest::parse_hex(&id));
        if forgotten_id
            .is_some_and(|id| catalog_records.contains(&id) || catalog_attestations.contains(&id))
        {
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
        report.notes.push(format!(
            "{what} was acknowledged as lost by event {} (`evstore forget`)",
            event.seq
        ));
    }
    // Records and attestations no event commits: left by an interrupted or failed ingest or
    // rerun; harmless, and never revived by reindex.
    for (id, checked) in &good {
        match checked {
            Checked::Record(record)
                if !catalog_records.contains(id) && !commitments.records.contains_key(id) =>
            {
                report.notes.push(format!(
                    "record {id} ({}@{}) is not in the catalog and no event commits it (left by an interrupted or failed ingest; reindex does not revive it)",
                    record.name, record.version
                ));
            }
            Checked::Attestation(_)
                if !catalog_attestations.contains(id)
                    && !commitments.attestations.contains_key(id) =>
            {
                report.notes.push(format!(
                    "attestation {id} is not in the catalog and no event commits it (left by an interrupted rerun)"
                ));
            }
            _ => {}
        }
    }

    // 6. The event chain.
    let mut prev = GENESIS_HASH.to_string();
    for (index, event) in catalog.events()?.iter().enumerate() {
        report.events_checked += 1;
        let subject = format!("event {}", event.seq);
        if event.seq != index as i64 + 1 {
            report.problems.push(problem(
                subject.clone(),
                format!("sequence number should be {}", index + 1),
            ));
        }
        if event.prev_hash != prev {
            report.problems.push(problem(
                subject.clone(),
                "prev_hash does not match the previous event's hash".into(),
            ));
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
            report.problems.push(problem(
                subject,
                "hash does not match the event's contents (tampered row)".into(),
            ));
        }
        prev = event.hash.clone();
    }

    // 7. SQLite's own check, and leftovers.
    for text in catalog.integrity_problems()? {
        report
            .problems
            .push(problem(catalog.path().escaped().to_string(), text));
    }
    let tmp = store.tmp_path();
    let leftovers = std::fs::read_dir(&tmp).at(&tmp, "cannot list")?.count();
    if leftovers > 0 {
        report.notes.push(format!(
            "{} in {} (an interrupted write; readers ignore them; `evstore gc-temp` removes them)",
            crate::text::count(leftovers as u64, "temp file"),
            tmp.escaped()
        ));
    }
    report
        .problems
        .sort_by(|a, b| (&a.subject, &a.reason).cmp(&(&b.subject, &b.reason)));
    report.notes.sort();
    Ok(report)
}

/// Walk a tree using already-checked nodes; missing or non-tree nodes are reported, not fatal.
fn walk_checked(
    good: &HashMap<Blake3Digest, Checked>,
    id: &Blake3Digest,
    prefix: &str,
    depth: usize,
    files: &mut Vec<HashedFile>,
    problems: &mut Vec<(Blake3Digest, &'static str)>,
) {
    let Some(Checked::Tree(node)) = good.get(id) else {
        problems.push((*id, "tree node"));
        return;
    };
    if depth > MAX_DEPTH {
        problems.push((*id, "too-deep tree node"));
        return;
    }
    for entry in node.entries() {
        let path = if prefix.is_empty() {
            entry.name().to_string()
        } else {
            format!("{prefix}/{}", entry.name())
        };
        match entry {
            TreeEntry::File { meta, .. } => files.push(HashedFile {
                rel_path: path,
                meta: *meta,
            }),
            TreeEntry::Dir { tree, .. } => {
                walk_checked(good, tree, &path, depth + 1, files, problems)
            }
        }
    }
    if depth == 0 {
        files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    }
}

/// What reindex rebuilt.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReindexReport {
    /// Packets recorded.
    pub packets: u64,
    /// Reruns recorded again from their attestation objects.
    pub runs: u64,
    /// Distinct objects listed (an object stored loose and in a pack counts once).
    pub objects: u64,
    /// Events carried over from the catalog this one replaces.
    pub carried_events: u64,
    /// Objects that failed verification and were left out.
    pub skipped_corrupt: Vec<String>,
    /// Committed packets and attestations that could not be indexed and that no `forget` event
    /// acknowledged: each makes reindex (and later `fsck`) fail.
    pub lost: Vec<LostItem>,
    /// Record and attestation objects that no event commits (left by an interrupted or failed
    /// ingest or rerun): not indexed, never revived.
    pub uncommitted: Vec<String>,
    /// Records and attestations left out because a `forget` event acknowledged them as lost.
    pub forgotten: Vec<String>,
    /// Forgotten records and attestations whose objects are whole again: indexed, and a
    /// `restore` event ends their `forget` (a new loss fails again).
    pub restored: Vec<String>,
    /// With no catalog to read, record objects that no commit marker names: maybe a failed
    /// ingest, maybe a committed packet whose marker was never written. Not indexed, and a
    /// failure (exit 1): nothing can tell which.
    pub unknown: Vec<String>,
    /// Records left out because a later record claims the same NAME@N.
    pub superseded_records: Vec<String>,
    /// Why the event log was not carried over, when it was not (no catalog, or an unreadable
    /// one): then every record is indexed, since nothing says which ones were committed.
    pub log_not_carried: Option<String>,
    /// Where the previous catalog was moved, if there was one.
    pub previous_catalog: Option<String>,
}

/// What reindex keeps of the catalog it replaces.
struct Previous {
    events: Vec<crate::catalog::EventRow>,
    commitments: Commitments,
}

/// Read the log and the commitments of the catalog about to be replaced, and checkpoint it so
/// that its main file alone holds everything (no WAL frame is left to be applied to any file).
fn read_previous(lock: &CatalogExclusiveLock, path: &Path) -> Result<Previous> {
    let old = Catalog::open_existing_under(lock, path)?;
    let previous = Previous {
        events: old.events()?,
        commitments: old.commitments()?,
    };
    old.checkpoint()?;
    Ok(previous)
}

/// `catalog.sqlite` → `catalog.sqlite<suffix>` beside it.
fn catalog_sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Fsync the folder holding `path`, so renames in it are durable.
fn sync_parent(path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(parent)
        .and_then(|dir| dir.sync_all())
        .at(parent, "cannot sync the folder")
}

/// Rebuild the catalog from the objects alone, carrying over the event log of the catalog it
/// replaces. An existing catalog is refused unless `replace`, in which case it is moved aside
/// (never deleted).
///
/// The new catalog is built whole in `catalog.sqlite.reindex-<nanos>` and renamed over
/// `catalog.sqlite` only once complete and synced, so a kill at any moment leaves the old
/// catalog or the new one, never none and never a partial one. Before that rename the old
/// catalog is checkpointed (its WAL is empty), hard-linked to `catalog.sqlite.replaced-<nanos>`
/// and its `-wal`/`-shm` moved beside that name.
pub fn reindex(store: &Store, replace: bool) -> Result<ReindexReport> {
    let mut report = ReindexReport::default();
    let path = store.catalog_path();
    // No ingest may write objects while the catalog is rebuilt, and no evstore process may have
    // the catalog open while it is replaced: a write would land in the old file, and the old
    // file's last connection would delete the new catalog's `-wal` and `-shm` by name.
    let _writers = store.lock_writers_exclusive("reindex")?;
    let catalog_lock = Catalog::lock_exclusive(&path, "reindex")?;
    remove_interrupted_rebuilds(&path)?;
    let exists = match std::fs::symlink_metadata(&path) {
        Ok(_) => true,
        Err(err) if err.kind() == io::ErrorKind::NotFound => false,
        Err(err) => return Err(Error::io(&path, "cannot stat the catalog", err)),
    };
    if exists && !replace {
        return Err(Error::Usage(format!(
            "{} exists; `evstore reindex --replace` moves it aside and rebuilds it",
            path.escaped()
        )));
    }
    if !exists {
        // A `-wal` or `-shm` left without its catalog would be applied to the new catalog when
        // it takes the name: keep them aside instead.
        let stamp = crate::now_unix_nanos();
        for suffix in ["-wal", "-shm"] {
            let stray = catalog_sibling(&path, suffix);
            if std::fs::symlink_metadata(&stray).is_ok() {
                let aside = catalog_sibling(&path, &format!(".orphaned-{stamp}{suffix}"));
                std::fs::rename(&stray, &aside).at(&stray, "cannot move aside")?;
            }
        }
    }
    let previous = if exists {
        match read_previous(&catalog_lock, &path) {
            Ok(previous) => Some(previous),
            Err(err) => {
                report.log_not_carried = Some(format!("the catalog could not be read: {err}"));
                None
            }
        }
    } else {
        report.log_not_carried = Some(format!("there was no catalog at {}", path.escaped()));
        None
    };

    let mut copies = Vec::new();
    for item in store.backend().list()? {
        match item {
            ListedObject::Object { id, location, .. } => copies.push((id, location)),
            ListedObject::BadPack { path, reason } => report
                .skipped_corrupt
                .push(format!("pack {}: {reason}", path.escaped())),
            ListedObject::Stray(_) => {}
        }
    }
    report.objects = copies
        .iter()
        .map(|(id, _)| id)
        .collect::<HashSet<_>>()
        .len() as u64;
    let checked: Vec<_> = copies
        .par_iter()
        .map(|(id, location)| (*id, check_object(store, id, location)))
        .collect();
    let mut good = HashMap::new();
    let mut sizes = HashMap::new();
    for (id, result) in checked {
        match result {
            Ok((c, size)) => {
                good.insert(id, c);
                sizes.insert(id, size);
            }
            Err(reason) => report
                .skipped_corrupt
                .push(format!("object {id}: {reason}")),
        }
    }
    // What was committed: the old catalog's log and rows, and the store's commit markers. With
    // no catalog to read, the markers alone; with neither (a store written before markers, its
    // catalog lost), nothing says, and every record is indexed.
    let refs = Refs::unlocked(store);
    let markers = refs.read_all()?;
    let commitments: Option<Commitments> = match &previous {
        Some(previous) => {
            let mut commitments = previous.commitments.clone();
            commitments.add_markers(&markers);
            Some(commitments)
        }
        None if refs.present() => Some(Commitments::from_markers(&markers)),
        None => None,
    };
    if previous.is_none() && refs.present() {
        if let Some(why) = report.log_not_carried.take() {
            report.log_not_carried = Some(format!(
                "{why}; which packets and reruns were committed is read from the commit markers \
                 in refs/"
            ));
        }
    }
    let commitments = commitments.as_ref();
    // Only committed records become packets (all of them when nothing says which were
    // committed). For each NAME@N keep the record created last: with a log, two committed
    // records claim one NAME@N only in a store written before version numbers were kept from
    // the log; the other one is then reported lost.
    let mut chosen: BTreeMap<(String, u64), (Blake3Digest, PacketRecord)> = BTreeMap::new();
    for (id, checked) in &good {
        if let Checked::Record(record) = checked {
            let from_markers_only = previous.is_none();
            if from_markers_only && commitments.is_some_and(|c| !c.records.contains_key(id)) {
                report.unknown.push(format!(
                    "record {id} ({}@{}): no commit marker names it and there is no catalog to \
                     say whether its ingest committed; not indexed. If `evstore ingest` reported \
                     it archived, ingest its folder again",
                    record.name, record.version
                ));
                continue;
            }
            if commitments.is_some_and(|c| !c.records.contains_key(id)) {
                report.uncommitted.push(format!(
                    "record {id} ({}@{}): no event commits it (an interrupted or failed ingest)",
                    record.name, record.version
                ));
                continue;
            }
            let key = (record.name.clone(), record.version);
            let newer = match chosen.get(&key) {
                Some((other_id, other)) => {
                    (record.created_unix_nanos, *id) > (other.created_unix_nanos, *other_id)
                }
                None => true,
            };
            if newer {
                if let Some((old_id, _)) = chosen.insert(key, (*id, record.clone())) {
                    report.superseded_records.push(old_id.to_hex());
                }
            } else {
                report.superseded_records.push(id.to_hex());
            }
        }
    }

    let stamp = crate::now_unix_nanos();
    let building = catalog_sibling(&path, &format!(".reindex-{stamp}"));
    // Declared before the catalog, so dropped after it: on any error (a full disk...) the
    // partial rebuild is removed; only the final rename disarms it.
    let mut cleanup = RemoveRebuild(Some(building.clone()));
    let mut catalog = Catalog::open_under(&catalog_lock, &building)?;
    if let Some(previous) = &previous {
        catalog.insert_carried_events(&previous.events)?;
        report.carried_events = previous.events.len() as u64;
    }
    let mut indexed_records = HashSet::new();
    let mut restored_ids: Vec<(&str, Blake3Digest, String)> = Vec::new();
    for (record_id, record) in chosen.values() {
        let mut files = Vec::new();
        let mut missing = Vec::new();
        walk_checked(&good, &record.tree, "", 0, &mut files, &mut missing);
        let forgotten = commitments.is_some_and(|c| c.forgotten.contains(record_id));
        if !missing.is_empty() && forgotten {
            // Acknowledged as lost: left out, and no failure.
            report.forgotten.push(format!(
                "record {record_id} ({}@{}): acknowledged as lost by `forget`; not indexed",
                record.name, record.version
            ));
            continue;
        }
        if forgotten && missing.is_empty() {
            report.restored.push(format!(
                "record {record_id} ({}@{}): acknowledged as lost by `forget`, but its objects \
                 are whole again: indexed, and its forget ends",
                record.name, record.version
            ));
            restored_ids.push((
                "packet",
                *record_id,
                format!("{}@{}", record.name, record.version),
            ));
        }
        if !missing.is_empty() {
            report.skipped_corrupt.push(format!(
                "packet {}@{}: {} tree node(s) missing or corrupt; not indexed",
                record.name,
                record.version,
                missing.len()
            ));
            continue;
        }
        let mut objects: Vec<ObjectRow> = files
            .iter()
            .map(|f| ObjectRow {
                id: f.meta.blake3,
                kind: "blob".into(),
                size: f.meta.size,
            })
            .collect();
        collect_tree_rows(&good, &record.tree, &mut objects);
        catalog.insert_reindexed(record_id, record, &files, &objects)?;
        indexed_records.insert(*record_id);
        report.packets += 1;
    }
    // Reruns, oldest first, each linked to its packet if that packet was indexed above.
    let packet_ids: HashMap<String, i64> = catalog
        .packets()?
        .into_iter()
        .map(|row| {
            (
                format!("{}@{}", row.record.name, row.record.version),
                row.id,
            )
        })
        .collect();
    let mut attestations: Vec<(&Blake3Digest, &AttestationSummary, u64)> = good
        .iter()
        .filter_map(|(id, checked)| match checked {
            Checked::Attestation(a) => Some((id, a.as_ref(), *sizes.get(id)?)),
            _ => None,
        })
        .collect();
    attestations.sort_by_key(|(id, a, _)| (a.time_unix_nanos, **id));
    let mut indexed_attestations = HashSet::new();
    for (id, attestation, size) in attestations {
        if commitments.is_some_and(|c| !c.attestations.contains_key(id)) {
            report.uncommitted.push(format!(
                "attestation {id}: no event commits it (an interrupted rerun)"
            ));
            continue;
        }
        let forgotten = commitments.is_some_and(|c| c.forgotten.contains(id));
        let packet_id = match &attestation.packet {
            None => None,
            Some(label) => match packet_ids.get(label) {
                Some(packet_id) => Some(*packet_id),
                None if forgotten => {
                    report.forgotten.push(format!(
                        "attestation {id}: acknowledged as lost by `forget` (its packet {label} \
                         is not indexed); not indexed"
                    ));
                    continue;
                }
                None => {
                    report.skipped_corrupt.push(format!(
                        "attestation {id}: its packet {label} was not indexed; run not indexed"
                    ));
                    continue;
                }
            },
        };
        if forgotten {
            report.restored.push(format!(
                "attestation {id}: acknowledged as lost by `forget`, but it is whole again: \
                 indexed, and its forget ends"
            ));
            restored_ids.push(("attestation", *id, attestation.expected_sha256.to_hex()));
        }
        catalog.insert_reindexed_run(&NewRun {
            packet_id,
            expected_sha256: attestation.expected_sha256,
            attestation: *id,
            attestation_size: size,
            verdict: attestation.verdict.clone(),
            time_unix_nanos: attestation.time_unix_nanos,
            summary: attestation.summary.clone(),
        })?;
        indexed_attestations.insert(*id);
        report.runs += 1;
    }
    if let Some(commitments) = commitments {
        report.lost = commitments.lost(&indexed_records, &indexed_attestations);
        for lost in &report.lost {
            let present =
                Blake3Digest::parse_hex(&lost.id).is_some_and(|id| good.contains_key(&id));
            if !present {
                report.skipped_corrupt.push(format!(
                    "{} {} ({}): its object is missing or corrupt",
                    lost.kind, lost.label, lost.id
                ));
            }
        }
    }
    for (kind, id, label) in &restored_ids {
        catalog.log_event(&NewEvent {
            kind: "restore".into(),
            subject: label.clone(),
            detail: serde_json::json!({ "kind": kind, "id": id.to_hex() }),
        })?;
        if let Err(err) = refs.mark_restored(id) {
            report.skipped_corrupt.push(err.to_string());
        }
    }
    // Every indexed packet and run gets its commit marker (a crash right after a commit can
    // have left one without); a store without markers gets them all, from this catalog.
    refs.ensure(&catalog)?;
    for row in catalog.packets()? {
        if let Err(err) = refs.mark_packet(&row.record.name, row.record.version, &row.record_id) {
            report.skipped_corrupt.push(err.to_string());
        }
    }
    for run in catalog.runs(None)? {
        if let Some(id) = Blake3Digest::parse_hex(&run.attestation) {
            if let Err(err) = refs.mark_run(&id, &run.expected_sha256) {
                report.skipped_corrupt.push(err.to_string());
            }
        }
    }
    catalog.log_event(&NewEvent {
        kind: "reindex".into(),
        subject: store.root().display().to_string(),
        detail: serde_json::json!({
            "packets": report.packets,
            "runs": report.runs,
            "objects": report.objects,
            "skipped": report.skipped_corrupt.len(),
            "lost": report.lost.len(),
            "carried_events": report.carried_events,
        }),
    })?;
    catalog.checkpoint()?;
    drop(catalog);
    std::fs::File::open(&building)
        .and_then(|file| file.sync_all())
        .at(&building, "cannot sync the new catalog")?;
    for suffix in ["-wal", "-shm"] {
        let leftover = catalog_sibling(&building, suffix);
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(&leftover, "cannot remove", err)),
        }
    }

    // The switch. Until the last rename `catalog.sqlite` is the old catalog, whole (its WAL was
    // checkpointed into it); after it, the new one. The old file stays reachable under
    // `.replaced-<stamp>` (a hard link, so there is no moment without a catalog).
    if exists {
        let aside = catalog_sibling(&path, &format!(".replaced-{stamp}"));
        std::fs::hard_link(&path, &aside).at(&aside, "cannot keep the old catalog")?;
        for suffix in ["-wal", "-shm"] {
            let from = catalog_sibling(&path, suffix);
            let to = catalog_sibling(&aside, suffix);
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(Error::io(&from, "cannot move the old catalog aside", err)),
            }
        }
        report.previous_catalog = Some(aside.escaped().to_string());
    }
    std::fs::rename(&building, &path).at(&path, "cannot put the new catalog in place")?;
    cleanup.0 = None;
    sync_parent(&path)?;
    Ok(report)
}

/// Removes a partial rebuild (`catalog.sqlite.reindex-<nanos>` and its `-wal`, `-shm`) when
/// dropped, unless disarmed by taking the path.
struct RemoveRebuild(Option<std::path::PathBuf>);

impl Drop for RemoveRebuild {
    fn drop(&mut self) {
        if let Some(building) = self.0.take() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(catalog_sibling(&building, suffix));
            }
        }
    }
}

/// Remove `catalog.sqlite.reindex-*` files that a killed reindex left (the caller holds the
/// exclusive catalog lock, so no live reindex is building one).
fn remove_interrupted_rebuilds(path: &Path) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(());
    };
    let prefix = format!("{name}.reindex-");
    for entry in std::fs::read_dir(parent).at(parent, "cannot list")? {
        let entry = entry.at(parent, "cannot list")?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            let leftover = entry.path();
            std::fs::remove_file(&leftover)
                .at(&leftover, "cannot remove an interrupted rebuild")?;
        }
    }
    Ok(())
}

fn collect_tree_rows(
    good: &HashMap<Blake3Digest, Checked>,
    id: &Blake3Digest,
    out: &mut Vec<ObjectRow>,
) {
    if let Some(Checked::Tree(node)) = good.get(id) {
        out.push(ObjectRow {
            id: *id,
            kind: "tree".into(),
            size: node.encode().len() as u64,
        });
        for entry in node.entries() {
            if let TreeEntry::Dir { tree, .. } = entry {
                collect_tree_rows(good, tree, out);
            }
        }
    }
}
