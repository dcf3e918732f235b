//! Whole-store checks (`fsck`).
//!
//! [`fsck`] reads every object and re-hashes it, decodes every tree node and packet record,
//! follows every reference from the catalog's packets down to file blobs, compares the catalog
//! with the objects, checks the event hash chain and SQLite's own integrity check. It keeps going
//! after a problem and returns every problem found, each naming the object, packet, path or event
//! it concerns. Objects that no catalog row refers to are not problems (an interrupted ingest
//! leaves such objects behind); they are reported as notes.
//!

use std::collections::{HashMap, HashSet};
use std::io;

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{Catalog, ObjectRow};
use crate::digest::{Blake3Digest, Sha256Digest};
use crate::error::{IoContext, Result};
use crate::format::attestation::{decode_summary, AttestationSummary};
use crate::format::event::{event_hash, GENESIS_HASH};
use crate::format::object::ObjectKind;
use crate::format::record::PacketRecord;
use crate::format::tree::{manifest_of, HashedFile, TreeEntry, TreeNode, MAX_DEPTH};
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
pub(super) enum Checked {
    Blob { sha256: Sha256Digest, size: u64 },
    Tree(TreeNode),
    Record(PacketRecord),
    Attestation(Box<AttestationSummary>),
}

/// The outcome of checking one object: what it is and its size, or why it is bad.
pub(super) type ObjectCheck = std::result::Result<(Checked, u64), String>;

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
pub(super) fn walk_checked(
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
