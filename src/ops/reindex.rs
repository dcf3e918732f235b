//! Rebuilding the catalog from the objects alone (`reindex`).
//!
//! [`reindex`] checks every stored object (with fsck's object check), decides from the old
//! catalog's event log and the store's commit markers which packet records and rerun attestations
//! were committed, and builds a new catalog of exactly those (with the mirrors that the mirror
//! lists named by the log's `mirror` events record), carrying the old log over. It takes
//! the store's writers' lock and the catalog's exclusive lock for the whole run, builds the new
//! catalog beside the old one, and switches by one rename; the old catalog is kept beside it. The
//! run is a sequence of named steps (check objects, what was committed, choose records, then a
//! `Rebuild` that indexes packets, runs and mirrors, notes losses, logs restores, writes commit
//! markers),
//! then the durable switch.
//!
//! **Architecture Invariant:** at every instant `catalog.sqlite` is a whole catalog (the old one
//! or the new one), and nothing is deleted: a replaced catalog is moved aside, and a record that
//! no event commits is never revived.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::catalog::{
    Catalog, CatalogExclusiveLock, Commitments, LostItem, NewEvent, NewRun, ObjectRow,
};
use crate::digest::Blake3Digest;
use crate::error::{Error, IoContext, Result};
use crate::format::attestation::AttestationSummary;
use crate::format::event::{mirror_without_list, named_object, NamedObject, ReindexCounts};
use crate::format::record::PacketRecord;
use crate::progress::Progress;
use crate::store::log::{EventLog, SharedLog};
use crate::store::refs::{Markers, Refs};
use crate::store::{ListedObject, Store};
use crate::text::EscapePath;

use super::fsck::{check_copies, walk_stored_tree, Checked, ListedCopy};

/// What reindex rebuilt.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReindexReport {
    /// Packets recorded.
    pub packets: u64,
    /// Reruns recorded again from their attestation objects.
    pub runs: u64,
    /// Mirrors recorded again from the mirror list objects their `mirror` events name.
    pub mirrors: u64,
    /// `mirror` events that recorded a mirror before mirror lists were stored: the store cannot
    /// give those mirrors back (a count, not a failure; the KB's own seals still verify).
    pub mirrors_without_list: u64,
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
pub(crate) fn catalog_sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
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
///
/// # Errors
///
/// [`Error::Usage`] if a catalog exists and `replace` is false; an error if the writers' lock or
/// the exclusive catalog lock cannot be taken, the objects or commit markers cannot be listed or
/// read, or the new catalog cannot be written, synced or renamed into place (the partial rebuild
/// is then removed and the old catalog stays). Corrupt, uncommitted, forgotten and lost objects
/// are listed in the report, not errors.
pub fn reindex(store: &Store, replace: bool) -> Result<ReindexReport> {
    let mut report = ReindexReport::default();
    let path = store.catalog_path();
    // No ingest may write objects while the catalog is rebuilt, and no evstore process may have
    // the catalog open while it is replaced: a write would land in the old file, and the old
    // file's last connection would delete the new catalog's `-wal` and `-shm` by name.
    let _writers = store.lock_writers_exclusive("reindex")?;
    let catalog_lock = Catalog::lock_exclusive(&path, "reindex")?;
    remove_interrupted_rebuilds(&path)?;
    // A layout-2 store's log/ and refs/ are the truth: without them there is nothing to rebuild
    // from that could not silently drop what the catalog lacks.
    crate::ops::markers::refuse_layout_2_without_its_keys(store)?;
    let exists = catalog_exists(&path)?;
    if exists && !replace {
        return Err(Error::Usage(format!(
            "{} exists; `evstore reindex --replace` moves it aside and rebuilds it",
            path.escaped()
        )));
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
        set_aside_orphaned_log_files(&path)?;
        report.log_not_carried = Some(format!("there was no catalog at {}", path.escaped()));
        None
    };

    // The store's event log is the truth: with `log/`, the events and what they commit come from
    // it (the old catalog only adds its rows); without (a layout-1 store), from the old catalog.
    let from_log = read_log(store)?;
    let previous = match (from_log, previous) {
        (Some(events), previous) => {
            if let Some(previous) = &previous {
                refuse_to_drop_catalog_events(&previous.events, &events)?;
            }
            let mut commitments = Commitments::from_events(&events);
            if let Some(previous) = previous {
                for (id, held) in previous.commitments.records {
                    commitments.records.entry(id).or_insert(held);
                }
                for (id, held) in previous.commitments.attestations {
                    commitments.attestations.entry(id).or_insert(held);
                }
            }
            report.log_not_carried = None;
            Some(Previous {
                events,
                commitments,
            })
        }
        (None, previous) => previous,
    };

    let (good, sizes) = check_listed_objects(store, &mut report)?;
    let refs = Refs::unlocked(store);
    let markers = refs.read_all()?;
    // A marker that does not read back (junk bytes, a name that is no version, a FIFO...) is
    // reported, never passed over: `fsck` names the same keys.
    for (shown, reason) in &markers.problems {
        report
            .skipped_corrupt
            .push(format!("commit marker {shown}: {reason}"));
    }
    let commitments = what_was_committed(previous.as_ref(), &refs, &markers, &mut report);
    let chosen = choose_records(&good, previous.is_none(), commitments.as_ref(), &mut report);

    let stamp = crate::now_unix_nanos();
    let building = catalog_sibling(&path, &format!(".reindex-{stamp}"));
    // Declared before the catalog, so dropped after it: on any error (a full disk...) the
    // partial rebuild is removed; only the final rename disarms it.
    let mut cleanup = RemoveRebuild(Some(building.clone()));
    let mut rebuild = Rebuild {
        store,
        catalog: Catalog::open_under(&catalog_lock, &building)?,
        good: &good,
        commitments: commitments.as_ref(),
        report: &mut report,
        restored: Vec::new(),
        indexed_records: HashSet::new(),
        indexed_attestations: HashSet::new(),
    };
    if let Some(previous) = &previous {
        rebuild.catalog.insert_carried_events(&previous.events)?;
        rebuild.report.carried_events = previous.events.len() as u64;
    }
    // From here on every event goes to `log/` first; a store without one gets it whole from the
    // events carried (it is then upgraded to layout 2 by the next command).
    let carried = rebuild.catalog.events()?;
    EventLog::of(store).ensure(|| Ok(carried.to_vec()))?;
    rebuild.catalog.attach_log(SharedLog::of(store));
    rebuild.index_packets(&chosen)?;
    rebuild.index_runs(&sizes)?;
    rebuild.index_mirrors(&carried)?;
    rebuild.note_lost();
    rebuild.log_restores(&refs)?;
    rebuild.write_markers(&refs)?;
    rebuild.log_reindex_event()?;
    let catalog = rebuild.catalog;
    catalog.checkpoint()?;
    drop(catalog);
    seal_rebuild(&building)?;
    switch_catalog(&path, &building, exists, stamp, &mut report)?;
    cleanup.0 = None;
    crate::fsio::sync_parent(&path)?;
    Ok(report)
}

/// The events of the store's `log/`, checked, or `None` for a store without one. A log that
/// does not read back as one unbroken chain is an error naming the first bad key: reindex does
/// not rebuild from a damaged log (`fsck` lists every problem).
fn read_log(store: &Store) -> Result<Option<Vec<crate::catalog::EventRow>>> {
    let log = EventLog::of(store);
    if !log.present()? {
        return Ok(None);
    }
    let contents = log.read_all()?;
    if let Some((key, reason)) = contents.problems.into_iter().next() {
        return Err(Error::corrupt(
            format!("event log key {key}"),
            format!("{reason}; reindex rebuilds events from the log only when it is whole"),
        ));
    }
    Ok(Some(contents.entries))
}

/// Refuse a rebuild from `log/` that would drop or change an event the catalog being replaced
/// holds: every event the catalog committed had its `log/` key created first, so a catalog event
/// the log lacks (or holds otherwise) means the log was damaged or an older evstore wrote past
/// it, and rebuilding from the log would lose that event silently.
fn refuse_to_drop_catalog_events(
    catalog_events: &[crate::catalog::EventRow],
    log_events: &[crate::catalog::EventRow],
) -> Result<()> {
    let by_seq: std::collections::HashMap<i64, &crate::catalog::EventRow> =
        log_events.iter().map(|event| (event.seq, event)).collect();
    let dropped: Vec<String> = catalog_events
        .iter()
        .filter(|event| by_seq.get(&event.seq) != Some(event))
        .map(|event| format!("{} ({} {})", event.seq, event.kind, event.subject))
        .collect();
    if dropped.is_empty() {
        return Ok(());
    }
    Err(Error::corrupt(
        "the store's event log (log/)",
        format!(
            "lacks or differs from the catalog's event(s) {}: reindex rebuilds from log/ and \
             would lose them; nothing was changed (`evstore fsck` lists every difference)",
            dropped.join(", ")
        ),
    ))
}

/// Whether a catalog file (or anything) is at `path`.
fn catalog_exists(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(Error::io(path, "cannot stat the catalog", err)),
    }
}

/// With no catalog at `path`, move a `-wal` or `-shm` left without it aside: it would be applied
/// to the new catalog when that takes the name.
fn set_aside_orphaned_log_files(path: &Path) -> Result<()> {
    let stamp = crate::now_unix_nanos();
    for suffix in ["-wal", "-shm"] {
        let stray = catalog_sibling(path, suffix);
        if std::fs::symlink_metadata(&stray).is_ok() {
            let aside = catalog_sibling(path, &format!(".orphaned-{stamp}{suffix}"));
            std::fs::rename(&stray, &aside).at(&stray, "cannot move aside")?;
        }
    }
    Ok(())
}

/// List and check every stored object: the sound ones by id with their sizes; bad packs and
/// corrupt copies are noted in `report.skipped_corrupt`.
fn check_listed_objects(
    store: &Store,
    report: &mut ReindexReport,
) -> Result<(HashMap<Blake3Digest, Checked>, HashMap<Blake3Digest, u64>)> {
    let mut copies: Vec<ListedCopy> = Vec::new();
    for item in store.backend().list()? {
        match item {
            ListedObject::Object {
                id,
                location,
                stored_size,
            } => copies.push((id, location, stored_size)),
            ListedObject::BadPack { path, reason } => report
                .skipped_corrupt
                .push(format!("pack {}: {reason}", path.escaped())),
            ListedObject::Stray(_) => {}
        }
    }
    report.objects = copies
        .iter()
        .map(|(id, _, _)| id)
        .collect::<HashSet<_>>()
        .len() as u64;
    let mut good = HashMap::new();
    let mut sizes = HashMap::new();
    for (id, result) in check_copies(store, &copies, &Progress::silent()) {
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
    Ok((good, sizes))
}

/// What was committed: the old catalog's log and rows, and the store's commit markers. With no
/// catalog to read, the markers alone; with neither (a store written before markers, its catalog
/// lost), nothing says (`None`), and every record is indexed.
fn what_was_committed(
    previous: Option<&Previous>,
    refs: &Refs,
    markers: &Markers,
    report: &mut ReindexReport,
) -> Option<Commitments> {
    let commitments = match previous {
        Some(previous) => {
            let mut commitments = previous.commitments.clone();
            commitments.add_markers(markers);
            Some(commitments)
        }
        None if refs.present() => Some(Commitments::from_markers(markers)),
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
    commitments
}

/// The records to index, by NAME@N. Only committed records become packets (all of them when
/// nothing says which were committed). For each NAME@N the record created last is kept: with a
/// log, two committed records claim one NAME@N only in a store written before version numbers
/// were kept from the log; the other one is then reported lost.
fn choose_records(
    good: &HashMap<Blake3Digest, Checked>,
    from_markers_only: bool,
    commitments: Option<&Commitments>,
    report: &mut ReindexReport,
) -> BTreeMap<(String, u64), (Blake3Digest, PacketRecord)> {
    let mut chosen: BTreeMap<(String, u64), (Blake3Digest, PacketRecord)> = BTreeMap::new();
    for (id, checked) in good {
        let Checked::Record(record) = checked else {
            continue;
        };
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
    chosen
}

/// A forgotten record or attestation indexed again: (`packet` or `attestation`, id, label).
type Restored = (&'static str, Blake3Digest, String);

/// The catalog being rebuilt, and what the rebuild has indexed so far.
struct Rebuild<'a> {
    store: &'a Store,
    catalog: Catalog,
    good: &'a HashMap<Blake3Digest, Checked>,
    commitments: Option<&'a Commitments>,
    report: &'a mut ReindexReport,
    restored: Vec<Restored>,
    indexed_records: HashSet<Blake3Digest>,
    indexed_attestations: HashSet<Blake3Digest>,
}

impl Rebuild<'_> {
    fn forgotten(&self, id: &Blake3Digest) -> bool {
        self.commitments.is_some_and(|c| c.forgotten.contains(id))
    }

    /// Index every chosen record whose tree is whole.
    fn index_packets(
        &mut self,
        chosen: &BTreeMap<(String, u64), (Blake3Digest, PacketRecord)>,
    ) -> Result<()> {
        for (record_id, record) in chosen.values() {
            self.index_packet(record_id, record)?;
        }
        Ok(())
    }

    fn index_packet(&mut self, record_id: &Blake3Digest, record: &PacketRecord) -> Result<()> {
        let walk = walk_stored_tree(self.good, &record.tree);
        let whole = walk.unwalkable.is_empty();
        let forgotten = self.forgotten(record_id);
        if !whole && forgotten {
            // Acknowledged as lost: left out, and no failure.
            self.report.forgotten.push(format!(
                "record {record_id} ({}@{}): acknowledged as lost by `forget`; not indexed",
                record.name, record.version
            ));
            return Ok(());
        }
        if forgotten && whole {
            self.report.restored.push(format!(
                "record {record_id} ({}@{}): acknowledged as lost by `forget`, but its objects \
                 are whole again: indexed, and its forget ends",
                record.name, record.version
            ));
            self.restored.push((
                "packet",
                *record_id,
                format!("{}@{}", record.name, record.version),
            ));
        }
        if !whole {
            self.report.skipped_corrupt.push(format!(
                "packet {}@{}: {} tree node(s) missing or corrupt; not indexed",
                record.name,
                record.version,
                walk.unwalkable.len()
            ));
            return Ok(());
        }
        let mut objects: Vec<ObjectRow> = walk
            .files
            .iter()
            .map(|f| ObjectRow {
                id: f.meta.blake3,
                kind: "blob".into(),
                size: f.meta.size,
            })
            .collect();
        objects.extend(walk.nodes.iter().filter_map(|id| match self.good.get(id) {
            Some(Checked::Tree(node)) => Some(ObjectRow {
                id: *id,
                kind: "tree".into(),
                size: node.encode().len() as u64,
            }),
            _ => None,
        }));
        self.catalog
            .insert_reindexed(record_id, record, &walk.files, &objects)?;
        self.indexed_records.insert(*record_id);
        self.report.packets += 1;
        Ok(())
    }

    /// Index the reruns, oldest first, each linked to its packet if that packet was indexed.
    fn index_runs(&mut self, sizes: &HashMap<Blake3Digest, u64>) -> Result<()> {
        let packet_ids: HashMap<String, i64> = self
            .catalog
            .packets()?
            .into_iter()
            .map(|row| {
                (
                    format!("{}@{}", row.record.name, row.record.version),
                    row.id,
                )
            })
            .collect();
        let good = self.good;
        let mut attestations: Vec<(&Blake3Digest, &AttestationSummary, u64)> = good
            .iter()
            .filter_map(|(id, checked)| match checked {
                Checked::Attestation(a) => Some((id, a.as_ref(), *sizes.get(id)?)),
                _ => None,
            })
            .collect();
        attestations.sort_by_key(|(id, a, _)| (a.time_unix_nanos, **id));
        for (id, attestation, size) in attestations {
            self.index_run(id, attestation, size, &packet_ids)?;
        }
        Ok(())
    }

    fn index_run(
        &mut self,
        id: &Blake3Digest,
        attestation: &AttestationSummary,
        size: u64,
        packet_ids: &HashMap<String, i64>,
    ) -> Result<()> {
        if self
            .commitments
            .is_some_and(|c| !c.attestations.contains_key(id))
        {
            self.report.uncommitted.push(format!(
                "attestation {id}: no event commits it (an interrupted rerun)"
            ));
            return Ok(());
        }
        let forgotten = self.forgotten(id);
        let packet_id = match &attestation.packet {
            None => None,
            Some(label) => match packet_ids.get(label) {
                Some(packet_id) => Some(*packet_id),
                None if forgotten => {
                    self.report.forgotten.push(format!(
                        "attestation {id}: acknowledged as lost by `forget` (its packet {label} \
                         is not indexed); not indexed"
                    ));
                    return Ok(());
                }
                None => {
                    self.report.skipped_corrupt.push(format!(
                        "attestation {id}: its packet {label} was not indexed; run not indexed"
                    ));
                    return Ok(());
                }
            },
        };
        if forgotten {
            self.report.restored.push(format!(
                "attestation {id}: acknowledged as lost by `forget`, but it is whole again: \
                 indexed, and its forget ends"
            ));
            self.restored
                .push(("attestation", *id, attestation.expected_sha256.to_hex()));
        }
        self.catalog.insert_reindexed_run(&NewRun::of_attestation(
            *id,
            size,
            attestation,
            packet_id,
        ))?;
        self.indexed_attestations.insert(*id);
        self.report.runs += 1;
        Ok(())
    }

    /// Index the mirrors the carried `mirror` events name, each from its mirror list at its
    /// event's time (the first list for a KB path wins, as the catalog's unique key does). A
    /// list that is missing or corrupt, or whose packet was not indexed, is skipped as corrupt
    /// (unless that packet was forgotten); an event from before mirror lists is only counted.
    fn index_mirrors(&mut self, events: &[crate::catalog::EventRow]) -> Result<()> {
        let mut recorded: HashSet<(String, String)> = HashSet::new();
        for event in events {
            if mirror_without_list(&event.kind, &event.detail) {
                self.report.mirrors_without_list += 1;
                continue;
            }
            let Some(NamedObject::MirrorList(id)) = named_object(&event.kind, &event.detail) else {
                continue;
            };
            let what = format!(
                "mirror list {id} (event {}, the mirror at {})",
                event.seq, event.subject
            );
            let list = match self.good.get(&id) {
                Some(Checked::MirrorList(list)) => list,
                Some(_) => {
                    self.report.skipped_corrupt.push(format!(
                        "{what}: the object is not a mirror list; mirror not indexed"
                    ));
                    continue;
                }
                None => {
                    self.report.skipped_corrupt.push(format!(
                        "{what}: its object is missing or corrupt; mirror not indexed"
                    ));
                    continue;
                }
            };
            if !recorded.insert((list.kb_root.clone(), list.rel_path.clone())) {
                continue;
            }
            if !self.indexed_records.contains(&list.record) {
                let line = format!(
                    "{what}: its packet (record {}) is not indexed; mirror not indexed",
                    list.record
                );
                if self.forgotten(&list.record) {
                    self.report.forgotten.push(line);
                } else {
                    self.report.skipped_corrupt.push(line);
                }
                continue;
            }
            self.catalog
                .insert_rebuilt_mirror(list, event.time_unix_nanos)?;
            self.report.mirrors += 1;
        }
        Ok(())
    }

    /// What was committed and is not indexed now is lost; an object that is not even present is
    /// also listed as skipped.
    fn note_lost(&mut self) {
        let Some(commitments) = self.commitments else {
            return;
        };
        self.report.lost = commitments.lost(&self.indexed_records, &self.indexed_attestations);
        for lost in &self.report.lost {
            let present =
                Blake3Digest::parse_hex(&lost.id).is_some_and(|id| self.good.contains_key(&id));
            if !present {
                self.report.skipped_corrupt.push(format!(
                    "{} {} ({}): its object is missing or corrupt",
                    lost.kind, lost.label, lost.id
                ));
            }
        }
    }

    /// A `restore` event and a restored marker for every forgotten item indexed again.
    fn log_restores(&mut self, refs: &Refs) -> Result<()> {
        for (kind, id, label) in &self.restored {
            self.catalog
                .log_event(&NewEvent::restore(label, kind, id))?;
            if let Err(err) = refs.mark_restored(id) {
                self.report.skipped_corrupt.push(err.to_string());
            }
        }
        Ok(())
    }

    /// Every indexed packet and run gets its commit marker (a crash right after a commit can
    /// have left one without); a store without markers gets them all, from this catalog.
    fn write_markers(&mut self, refs: &Refs) -> Result<()> {
        crate::ops::markers::ensure_markers(refs, &self.catalog)?;
        for row in self.catalog.packets()? {
            if let Err(err) = refs.mark_packet(&row.record.name, row.record.version, &row.record_id)
            {
                self.report.skipped_corrupt.push(err.to_string());
            }
        }
        for run in self.catalog.runs(None)? {
            if let Some(id) = Blake3Digest::parse_hex(&run.attestation) {
                if let Err(err) = refs.mark_run(&id, &run.expected_sha256) {
                    self.report.skipped_corrupt.push(err.to_string());
                }
            }
        }
        Ok(())
    }

    /// The `reindex` event that closes the rebuilt log.
    fn log_reindex_event(&mut self) -> Result<()> {
        self.catalog.log_event(&NewEvent::reindex(
            self.store.root(),
            &ReindexCounts {
                packets: self.report.packets,
                runs: self.report.runs,
                objects: self.report.objects,
                skipped: self.report.skipped_corrupt.len() as u64,
                lost: self.report.lost.len() as u64,
                carried_events: self.report.carried_events,
            },
        ))?;
        Ok(())
    }
}

/// Make the finished rebuild durable on its own: fsync its main file (its WAL was checkpointed
/// into it) and remove the `-wal`/`-shm` files left beside it.
fn seal_rebuild(building: &Path) -> Result<()> {
    std::fs::File::open(building)
        .and_then(|file| file.sync_all())
        .at(building, "cannot sync the new catalog")?;
    for suffix in ["-wal", "-shm"] {
        let leftover = catalog_sibling(building, suffix);
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(&leftover, "cannot remove", err)),
        }
    }
    Ok(())
}

/// The switch. Until the last rename `catalog.sqlite` is the old catalog, whole (its WAL was
/// checkpointed into it); after it, the new one. The old file stays reachable under
/// `.replaced-<stamp>` (a hard link, so there is no moment without a catalog).
fn switch_catalog(
    path: &Path,
    building: &Path,
    exists: bool,
    stamp: u64,
    report: &mut ReindexReport,
) -> Result<()> {
    if exists {
        let aside = catalog_sibling(path, &format!(".replaced-{stamp}"));
        std::fs::hard_link(path, &aside).at(&aside, "cannot keep the old catalog")?;
        for suffix in ["-wal", "-shm"] {
            let from = catalog_sibling(path, suffix);
            let to = catalog_sibling(&aside, suffix);
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(Error::io(&from, "cannot move the old catalog aside", err)),
            }
        }
        report.previous_catalog = Some(aside.escaped().to_string());
    }
    std::fs::rename(building, path).at(path, "cannot put the new catalog in place")
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
