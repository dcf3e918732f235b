//! Rebuilding the catalog from the objects alone (`reindex`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{
    Catalog, CatalogExclusiveLock, Commitments, LostItem, NewEvent, NewRun, ObjectRow,
};
use crate::digest::Blake3Digest;
use crate::error::{Error, IoContext, Result};
use crate::format::record::PacketRecord;
use crate::format::tree::TreeEntry;
use crate::ops::rerun::AttestationSummary;
use crate::store::refs::Refs;
use crate::store::{ListedObject, Store};
use crate::text::EscapePath;

use super::fsck::{check_object, walk_checked, Checked};

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
    crate::ops::markers::ensure_markers(&refs, &catalog)?;
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
    crate::fsio::sync_parent(&path)?;
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
