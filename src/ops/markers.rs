//! The commit markers a store made before markers existed gets: listed from its catalog.
//!
//! `store::refs` keeps the markers and does not know the catalog; this op lists, for
//! [`crate::store::refs::Refs::ensure`], one marker per packet the catalog holds, per committed
//! packet it no longer holds (lost or forgotten: each keeps its version), per rerun and per
//! `forget` event. And the event log a store made before `log/` gets: written from its catalog
//! ([`attach_log`]). And the catch-up of a catalog behind its store ([`catch_up`]): the objects
//! the missing events name (records, attestations, mirror lists) read back, verified, for
//! `Catalog::catch_up`.

use std::collections::HashSet;

use crate::catalog::{
    Catalog, CaughtUp, FindInStore, FoundPacket, FoundRun, MirrorList, ObjectRow,
};
use crate::digest::Blake3Digest;
use crate::error::Result;
use crate::format::event::{log_key, LOG_PREFIX};
use crate::format::record::PacketRecord;
use crate::store::log::{EventLog, SharedLog};
use crate::store::refs::{Marker, Refs};
use crate::store::Store;
use crate::text::EscapePath;

/// Give the store its `refs/` key space, listed from `catalog`, if it has none yet.
///
/// # Errors
///
/// The catalog cannot be read, or a marker cannot be written (two records claim one name and
/// version: an error naming the marker).
pub fn ensure_markers(refs: &Refs<'_>, catalog: &Catalog) -> Result<()> {
    refs.ensure(|| markers_from_catalog(catalog))
}

/// One marker per packet, committed packet, run and `forget` event of `catalog`.
///
/// # Errors
///
/// The catalog cannot be read.
pub fn markers_from_catalog(catalog: &Catalog) -> Result<Vec<Marker>> {
    let mut markers = Vec::new();
    for row in catalog.packets()? {
        markers.push(Marker::Packet {
            name: row.record.name.clone(),
            version: row.record.version,
            record: row.record_id,
        });
    }
    // Committed packets the catalog no longer holds (lost, or forgotten) keep their version.
    for (id, (label, _)) in catalog.commitments()?.records {
        if let Some((name, version)) = label
            .rsplit_once('@')
            .and_then(|(n, v)| Some((n.to_string(), v.parse::<u64>().ok()?)))
        {
            if crate::packet_ref::check_packet_name(&name).is_ok() && version > 0 {
                markers.push(Marker::Packet {
                    name,
                    version,
                    record: id,
                });
            }
        }
    }
    for run in catalog.runs(None)? {
        if let Some(id) = Blake3Digest::parse_hex(&run.attestation) {
            markers.push(Marker::Run {
                id,
                expected_sha256: run.expected_sha256.clone(),
            });
        }
    }
    for event in catalog.events()?.iter().filter(|e| e.kind == "forget") {
        let detail: serde_json::Value =
            serde_json::from_str(&event.detail).unwrap_or(serde_json::Value::Null);
        if let Some(id) = detail
            .get("id")
            .and_then(|v| v.as_str())
            .and_then(Blake3Digest::parse_hex)
        {
            markers.push(Marker::Forgotten {
                id,
                detail: event.detail.clone(),
            });
        }
    }
    Ok(markers)
}

/// Attach the store's event log (`log/`) to `catalog`, so that every event it appends is
/// created in `log/` first; a store without `log/` gets it first, written whole from the
/// catalog's events, and a layout-1 store's `VERSION` then moves to layout 2 (once, with a
/// notice: older evstore binaries refuse the store after).
///
/// # Errors
///
/// The catalog cannot be read, or `log/` or `VERSION` cannot be written.
pub fn attach_log(store: &mut Store, catalog: &mut Catalog) -> Result<()> {
    // An S3 store's cache that holds events was made from the log: checking that the log is
    // there would cost a listing on every command (`fsck` checks the log whole).
    if !store.is_remote() || catalog.last_event_seq()? == 0 {
        refuse_layout_2_without_its_keys(store)?;
    }
    let upgraded = store.layout() == 1;
    if upgraded {
        // A layout-1 store may predate the markers too: layout 2 needs both key spaces, and
        // this is the one moment they may be made from the catalog.
        ensure_markers(&Refs::for_writer(store)?, catalog)?;
    }
    // An S3 store's log is started by `init` (or by its first writer, see
    // [`start_remote_log`]), never made from a catalog, which there is only a cache.
    let created = !store.is_remote() && EventLog::of(store).ensure(|| catalog.events())?;
    if upgraded {
        store.mark_layout_2()?;
    }
    if created || upgraded {
        crate::notice::notice(&format!(
            "upgraded the store at {} to layout 2 (VERSION \"evstore store 2\"): its event log \
             is now also kept as {}/log/ (one key per event), so the store can be rebuilt from \
             its folder alone; evstore binaries made before layout 2 refuse it from now on",
            store.root().escaped(),
            store.root().escaped(),
        ));
    }
    catalog.attach_log(SharedLog::of(store));
    catch_up(store, catalog)?;
    Ok(())
}

/// Refuse a layout-2 store that has lost its `log/` or `refs/` key space: in layout 2 they are
/// the truth and the catalog only a cache of them, so they are never rebuilt from the catalog
/// (that would silently drop whatever the catalog lacks). Only a layout-1 store gets `log/` made
/// from its catalog, once, by the upgrade.
///
/// # Errors
///
/// [`Error::Corrupt`](crate::Error::Corrupt) naming the missing key space; an I/O error listing it.
pub fn refuse_layout_2_without_its_keys(store: &Store) -> Result<()> {
    if store.layout() < 2 {
        return Ok(());
    }
    if store.is_remote() {
        return refuse_remote_store_without_its_log(store);
    }
    // A `refs` that is there but not a real folder has its own, more precise message.
    Refs::unlocked(store).check_shape()?;
    let missing = if !EventLog::of(store).present()? {
        Some("log/")
    } else if !Refs::unlocked(store).present() {
        Some("refs/")
    } else {
        None
    };
    match missing {
        Some(space) => Err(crate::Error::corrupt(
            format!("store {}", store.root().escaped()),
            format!(
                "its VERSION says layout 2, but its {space} key space is missing: in layout 2 \
                 it is the record of what was committed, and evstore never rebuilds it from the \
                 catalog (that would drop whatever the catalog lacks); restore {space} from a \
                 copy of the store"
            ),
        )),
        None => Ok(()),
    }
}

/// An S3 store has no empty folders: its `refs/` exists once a packet is claimed, and its `log/`
/// once `init` wrote the first event. A store with claims but no log has lost its log.
fn refuse_remote_store_without_its_log(store: &Store) -> Result<()> {
    if EventLog::of(store).present()? || !Refs::unlocked(store).present() {
        return Ok(());
    }
    Err(crate::Error::corrupt(
        format!("store {}", store.root().escaped()),
        "it holds version claims (refs/) but no event log (log/): the log is the record of what \
         was committed, and evstore never rebuilds it from a catalog; restore log/ from a copy \
         of the bucket",
    ))
}

/// Refuse a catalog cache of an S3 store whose last event is not the store's event of that
/// number: the bucket's log key must hold exactly the cache's bytes. Catch-up lists only the keys
/// past the cache's last event, so without this a store deleted and made again at the same URL,
/// or a log rewritten or cut short, would be read through a cache that describes another store
/// (and a writer would chain onto it). One `GET` per command.
///
/// # Errors
///
/// [`crate::Error::Corrupt`] naming the cache and the key (the cache folder can be deleted: it
/// is rebuilt from the bucket); the store's errors reading the key.
pub fn check_cache_against_the_log(store: &Store, catalog: &Catalog) -> Result<()> {
    let Some(last) = catalog.last_event()? else {
        return Ok(());
    };
    let key = log_key(last.seq);
    let log = EventLog::of(store);
    let found = crate::store::NamedKeys::read_key(
        store.backend(),
        &key,
        crate::format::event::MAX_LOG_ENTRY_BYTES,
    )?;
    let problem = match found {
        crate::store::KeyRead::Found(bytes) if bytes == last.encode() => return Ok(()),
        crate::store::KeyRead::Found(_) => "holds another event",
        crate::store::KeyRead::Missing => "is missing",
        crate::store::KeyRead::TooLarge | crate::store::KeyRead::Unreadable(_) => {
            "cannot be read as an event"
        }
    };
    Err(crate::Error::corrupt(
        format!("catalog cache {}", catalog_folder(store).escaped()),
        format!(
            "its last event ({}) is not the store's: {} {problem}; the store's log was rewritten \
             or cut short, or the store was made again at this URL. Run `evstore fsck` from a \
             new cache (delete this cache folder: it is rebuilt from the bucket) to see what \
             the bucket holds",
            last.seq,
            log.shown(&key)
        ),
    ))
}

/// The folder of a store's catalog (for an S3 store, this machine's cache folder).
fn catalog_folder(store: &Store) -> std::path::PathBuf {
    store.local_folder().to_path_buf()
}

/// Start the log of an S3 store whose `init` stopped after writing `VERSION`: create its first
/// event (`init`) as `log/00000000000000000001`, create-if-absent, so of two writers doing this
/// at once one event is made. Nothing to do when the log has its first key.
///
/// # Errors
///
/// The log cannot be listed, or the key cannot be created.
pub fn start_remote_log(store: &Store) -> Result<()> {
    let log = EventLog::of(store);
    if log.present()? {
        return Ok(());
    }
    let first = crate::catalog::first_event_row(&crate::catalog::NewEvent::init(
        store.root(),
        crate::TOOL_VERSION,
    ));
    log.append(&first)?;
    Ok(())
}

/// The `log/` key space of a store being created in `staged` (whose catalog holds its first
/// events), created whole before the store becomes visible.
///
/// # Errors
///
/// The catalog cannot be read, or `log/` cannot be created.
pub fn create_log_in_staged(staged: &std::path::Path, catalog: &Catalog) -> Result<()> {
    let backend = crate::store::LocalBackend::new(staged);
    let keys: Vec<(String, Vec<u8>)> = catalog
        .events()?
        .iter()
        .map(|row| (log_key(row.seq), row.encode()))
        .collect();
    crate::store::NamedKeys::create_key_space(&backend, LOG_PREFIX, &keys)?;
    Ok(())
}

/// Bring `catalog` (attached to the store's log) up to date with the store: the `log/` events
/// past its last one, and the version claims whose packets it lacks (left by a writer
/// interrupted between its claim or log key and its catalog commit). Cheap when there is
/// nothing to do: one listing of `log/` and of the claims, no read.
///
/// # Errors
///
/// The catalog, the log or the claims cannot be read, or the catalog cannot be written.
pub fn catch_up(store: &Store, catalog: &mut Catalog) -> Result<CaughtUp> {
    let last = catalog.last_event_seq()?;
    let later = EventLog::of(store).read_after(last)?;
    let refs = Refs::unlocked(store);
    let held: HashSet<(String, u64)> = catalog
        .packets()?
        .into_iter()
        .map(|row| (row.record.name, row.record.version))
        .collect();
    let mut claims = Vec::new();
    for (name, version) in refs.list_packet_claims()? {
        if !held.contains(&(name.clone(), version)) {
            if let Some(id) = refs.read_packet_claim(&name, version) {
                claims.push(id);
            }
        }
    }
    if later.is_empty() && claims.is_empty() && !catalog.has_events_without_their_rows()? {
        return Ok(CaughtUp::default());
    }
    if !claims.is_empty() {
        // Forgotten as of the end of the log: the catalog's events, then the new ones (a
        // `restore` among them indexes its packet again now, a `forget` keeps it out).
        let mut forgotten = catalog.commitments()?.forgotten;
        for entry in &later {
            match crate::format::event::named_object(&entry.kind, &entry.detail) {
                Some(crate::format::event::NamedObject::Forgotten(id)) => {
                    forgotten.insert(id);
                }
                Some(crate::format::event::NamedObject::Restored(id)) => {
                    forgotten.remove(&id);
                }
                _ => {}
            }
        }
        claims.retain(|id| !forgotten.contains(id));
    }
    let mut finder = StoreFinder {
        store,
        failed: None,
    };
    let caught_up = catalog.catch_up(&later, &claims, &mut finder)?;
    match finder.failed {
        // What could not be read for a passing reason is indexed by the next catch-up (claims
        // and events without their rows are looked for again); this command fails, never
        // answering from a catalog that lacks what the store holds.
        Some(err) => Err(err),
        None => Ok(caught_up),
    }
}

/// What catch-up reads back from a store: every object read verified and decoded strictly. An
/// object that is missing or corrupt is `None` (`fsck` names it); any other failure to read
/// (the network, a 503 that outlasted the retries) is kept in `failed`, and the catch-up fails.
struct StoreFinder<'a> {
    store: &'a Store,
    failed: Option<crate::Error>,
}

impl StoreFinder<'_> {
    /// `Some(value)` for a read that worked; `None` for a missing or corrupt object, or for a
    /// failure to read, which is kept.
    fn keep<T>(&mut self, read: Result<T>) -> Option<T> {
        match read {
            Ok(value) => Some(value),
            Err(err) if is_missing_or_corrupt(&err) => None,
            Err(err) => {
                self.failed.get_or_insert(err);
                None
            }
        }
    }
}

/// True for an error that says an object is missing or damaged (what `fsck` reports), not that
/// it could not be read this time.
fn is_missing_or_corrupt(err: &crate::Error) -> bool {
    match err {
        crate::Error::Corrupt { .. }
        | crate::Error::NotFound(_)
        | crate::Error::Mismatch { .. } => true,
        crate::Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

impl FindInStore for StoreFinder<'_> {
    fn packet(&mut self, record: &Blake3Digest) -> Option<FoundPacket> {
        let found = find_packet(self.store, record);
        self.keep(found).flatten()
    }

    fn run(&mut self, attestation: &Blake3Digest) -> Option<FoundRun> {
        let read = self.store.read_small_object(attestation);
        let (kind, bytes) = self.keep(read)?;
        if kind != crate::format::object::ObjectKind::Attestation {
            return None;
        }
        let summary = crate::format::attestation::decode_summary(&bytes).ok()?;
        Some(FoundRun {
            size: bytes.len() as u64,
            summary,
        })
    }

    fn mirror_list(&mut self, id: &Blake3Digest) -> Option<MirrorList> {
        let read = read_mirror_list(self.store, id);
        self.keep(read)
    }
}

/// The mirror list object `id`, read verified and decoded strictly.
///
/// # Errors
///
/// [`crate::Error::Corrupt`] for an object of another kind or one that does not decode as a
/// mirror list; the store's errors reading it (missing, corrupt).
pub fn read_mirror_list(store: &Store, id: &Blake3Digest) -> Result<MirrorList> {
    let (kind, bytes) = store.read_small_object(id)?;
    if kind != crate::format::object::ObjectKind::MirrorList {
        return Err(crate::Error::corrupt(
            format!("object {id}"),
            format!("is a {} object, not a mirror list", kind.name()),
        ));
    }
    MirrorList::decode(&bytes)
        .map_err(|reason| crate::Error::corrupt(format!("object {id}"), reason))
}

/// A committed packet read back from the store: its record object and its whole tree, checked
/// against the record's packet_tree_sha256; `None` if any of it is missing or corrupt.
///
/// # Errors
///
/// The store's errors reading an object; `Ok(None)` for a record or tree that is of another
/// kind, does not decode or does not match the record.
fn find_packet(store: &Store, id: &Blake3Digest) -> Result<Option<FoundPacket>> {
    let (kind, bytes) = store.read_small_object(id)?;
    if kind != crate::format::object::ObjectKind::Record {
        return Ok(None);
    }
    let Ok(record) = PacketRecord::decode(&bytes) else {
        return Ok(None);
    };
    let (files, nodes) = crate::packet::walk_tree(store, &record.tree)?;
    let Ok(manifest) = crate::format::tree::manifest_of(&files) else {
        return Ok(None);
    };
    if manifest.packet_tree_sha256() != record.packet_tree_sha256 {
        return Ok(None);
    }
    let mut objects: Vec<ObjectRow> = files
        .iter()
        .map(|f| ObjectRow {
            id: f.meta.blake3,
            kind: "blob".into(),
            size: f.meta.size,
        })
        .collect();
    for node_id in nodes {
        let node = crate::packet::load_node(store, &node_id)?;
        objects.push(ObjectRow {
            id: node_id,
            kind: "tree".into(),
            size: node.encode().len() as u64,
        });
    }
    Ok(Some(FoundPacket {
        record_id: *id,
        record,
        files,
        objects,
    }))
}

/// True if the store holds more than `catalog` knows, or needs its one-time upgrade: a layout-1
/// store, a store without `log/`, `log/` keys past the catalog's last event, or a version claim
/// the catalog has no packet for. Lists, never reads a key.
///
/// # Errors
///
/// The catalog or the store cannot be listed.
pub fn behind_the_store(store: &Store, catalog: &Catalog) -> Result<bool> {
    let log = EventLog::of(store);
    if store.layout() == 1 || !log.present()? {
        return Ok(true);
    }
    let last = catalog.last_event_seq()?;
    if log.has_after(last)? {
        return Ok(true);
    }
    let held: HashSet<(String, u64)> = catalog
        .packets()?
        .into_iter()
        .map(|row| (row.record.name, row.record.version))
        .collect();
    Ok(Refs::unlocked(store)
        .list_packet_claims()?
        .into_iter()
        .any(|claim| !held.contains(&claim)))
}

/// Attach the store's log to a catalog a library caller opened itself (`ops::ingest`,
/// `ops::mirror`, `ops::rerun`, `ops::forget` call this before they append an event): `log/`
/// created whole if missing, and the catalog brought up to date. The `VERSION` of a layout-1
/// store moves on the next command that opens it through `ops::setup`.
///
/// # Errors
///
/// As [`attach_log`].
pub fn ensure_log_attached(store: &Store, catalog: &mut Catalog) -> Result<()> {
    if catalog.has_log() {
        return Ok(());
    }
    refuse_layout_2_without_its_keys(store)?;
    if !store.is_remote() {
        EventLog::of(store).ensure(|| catalog.events())?;
    }
    catalog.attach_log(SharedLog::of(store));
    catch_up(store, catalog)?;
    Ok(())
}
