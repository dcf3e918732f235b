//! Packets and their files: adding a packet version, resolving a packet reference, listing.

use super::*;
use crate::format::event::NamedObject;

/// A packet row: its record and where the record is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketRow {
    /// The catalog's row id.
    pub id: i64,
    /// The id of the record object.
    pub record_id: Blake3Digest,
    /// The record, as the catalog holds it.
    pub record: PacketRecord,
}

/// An object row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRow {
    /// The object id.
    pub id: Blake3Digest,
    /// `blob`, `tree`, `record` or `attestation`.
    pub kind: String,
    /// The uncompressed size.
    pub size: u64,
}

/// What [`Catalog::add_packet`] did.
#[derive(Clone, Debug)]
pub enum AddOutcome {
    /// A new version was recorded.
    Added(PacketRow),
    /// This name already has a version with this tree; nothing was recorded.
    AlreadyArchived(PacketRow),
    /// The catalog's log holds an `ingest` event of this name with this tree whose rows the
    /// catalog does not hold (another machine's event of an S3 store, taken in by an append of
    /// this catalog; or a packet lost or forgotten since): nothing was recorded. The caller
    /// catches up (which indexes the rows of a packet the store holds) and asks again, passing
    /// this version in `logged_versions_looked_up`.
    LoggedWithoutRows {
        /// The version the event names.
        version: u64,
    },
}

/// What [`Catalog::add_packet`] needs besides the packet.
#[derive(Clone, Debug, Default)]
pub struct NewVersionConfig {
    /// The highest version of the name a version claim holds (the store's commit markers,
    /// `refs::Refs::highest_version`): never given to another tree.
    pub version_floor: u64,
    /// Versions of an earlier [`AddOutcome::LoggedWithoutRows`] the caller caught up on: an
    /// event of one of them that still has no rows is a packet lost or forgotten, not a reason to
    /// stop.
    pub logged_versions_looked_up: BTreeSet<u64>,
}

/// The version [`Catalog::add_packet`] offers a new packet, and what the caller must check
/// before it claims it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferedVersion {
    /// The new version: above every version of the name that the catalog's rows, its log or
    /// the version floor know.
    pub number: u64,
    /// The versions between the floor and `number` that the catalog holds neither rows nor an
    /// `ingest` event of, lowest first. Each may be another writer's claim still in flight,
    /// whose tree nothing in this catalog can compare: the caller reads each claim's record and
    /// must not give its tree a new version (empty unless writers on other catalogs race).
    pub unaccounted_below: Vec<u64>,
}

pub(super) fn describe_ref(reference: &PacketRef) -> String {
    match reference {
        PacketRef::Name { name, .. } => format!("{name:?}"),
        PacketRef::Version { name, version } => format!("{name}@{version}"),
        PacketRef::Prefix(prefix) => format!("prefix {prefix}"),
    }
}

pub(super) fn insert_packet_rows(
    tx: &rusqlite::Transaction<'_>,
    record_id: &Blake3Digest,
    record: &PacketRecord,
    files: &[HashedFile],
    objects: &[ObjectRow],
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO packets (name, version, packet_tree_sha256, tree, record, file_count, total_bytes, \
         created_unix_nanos, source_date_epoch, tool_version, source_path, note, seal_signer) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            record.name,
            record.version as i64,
            record.packet_tree_sha256.to_hex(),
            record.tree.to_hex(),
            record_id.to_hex(),
            record.file_count as i64,
            record.total_bytes as i64,
            record.created_unix_nanos as i64,
            record.source_date_epoch,
            record.tool_version,
            record.source_path,
            record.note,
            record.seal_signer,
        ],
    )?;
    let packet_id = tx.last_insert_rowid();
    {
        let mut entry = tx.prepare_cached(
            "INSERT INTO entries (packet_id, path, size, executable, blake3, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for file in files {
            entry.execute(params![
                packet_id,
                file.rel_path,
                file.meta.size as i64,
                file.meta.executable,
                file.meta.blake3.to_hex(),
                file.meta.sha256.to_hex(),
            ])?;
        }
        let mut object = tx
            .prepare_cached("INSERT OR IGNORE INTO objects (id, kind, size) VALUES (?1, ?2, ?3)")?;
        for row in objects {
            object.execute(params![row.id.to_hex(), row.kind, row.size as i64])?;
        }
        object.execute(params![
            record_id.to_hex(),
            "record",
            record.encode().len() as i64
        ])?;
    }
    Ok(packet_id)
}

/// The versions that `ingest` events of the log gave `name`.
pub(super) fn logged_versions(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
) -> rusqlite::Result<BTreeSet<u64>> {
    let prefix = format!("{name}@");
    let mut stmt = tx.prepare_cached(
        "SELECT subject FROM events WHERE kind = 'ingest' AND substr(subject, 1, ?2) = ?1",
    )?;
    let subjects = stmt.query_map(params![prefix, prefix.chars().count() as i64], |r| {
        r.get::<_, String>(0)
    })?;
    let mut versions = BTreeSet::new();
    for subject in subjects {
        if let Some((logged, version)) = split_versioned(&subject?) {
            if logged == name {
                versions.insert(version);
            }
        }
    }
    Ok(versions)
}

/// The versions of `name` the catalog holds rows of.
fn versions_with_rows(conn: &Connection, name: &str) -> rusqlite::Result<BTreeSet<u64>> {
    let mut stmt = conn.prepare_cached("SELECT version FROM packets WHERE name = ?1")?;
    let rows = stmt.query_map(params![name], |r| r.get::<_, i64>(0))?;
    let mut versions = BTreeSet::new();
    for version in rows {
        if let Ok(version) = u64::try_from(version?) {
            versions.insert(version);
        }
    }
    Ok(versions)
}

type RawPacket = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
);

pub(super) fn query_packet(
    conn: &Connection,
    tail: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<Result<PacketRow>>> {
    let sql = format!(
        "SELECT id, name, version, packet_tree_sha256, tree, record, file_count, total_bytes, \
         created_unix_nanos, source_date_epoch, tool_version, source_path, note, seal_signer \
         FROM packets {tail}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(packet_from_raw(row?));
    }
    Ok(out)
}

pub(super) fn packet_from_raw(raw: RawPacket) -> Result<PacketRow> {
    let (
        id,
        name,
        version,
        sha,
        tree,
        record,
        files,
        bytes,
        created,
        sde,
        tool,
        source,
        note,
        signer,
    ) = raw;
    let bad = |field: &str| {
        Error::corrupt(
            format!("catalog packet row {id} ({name}@{version})"),
            format!("{field} is not valid"),
        )
    };
    let unsigned = |v: i64, field: &str| u64::try_from(v).map_err(|_| bad(field));
    Ok(PacketRow {
        id,
        record_id: Blake3Digest::parse_hex(&record).ok_or_else(|| bad("record"))?,
        record: PacketRecord {
            name: name.clone(),
            version: unsigned(version, "version")?,
            packet_tree_sha256: Sha256Digest::parse_hex(&sha)
                .ok_or_else(|| bad("packet_tree_sha256"))?,
            tree: Blake3Digest::parse_hex(&tree).ok_or_else(|| bad("tree"))?,
            file_count: unsigned(files, "file_count")?,
            total_bytes: unsigned(bytes, "total_bytes")?,
            created_unix_nanos: unsigned(created, "created_unix_nanos")?,
            source_date_epoch: sde,
            tool_version: tool,
            source_path: source,
            note,
            seal_signer: signer,
        },
    })
}

impl Catalog {
    /// Record a new packet version, unless `name` already has a version with `tree`.
    ///
    /// Runs in one immediate transaction, so concurrent writers are serialised. `make_record` is
    /// called with the offered version inside the transaction; it must check the versions the
    /// catalog cannot account for ([`OfferedVersion::unaccounted_below`]), build the record and
    /// make its object durable, and return the record's id.
    ///
    /// The new version is above every version of `name` that the catalog, its log or
    /// `config.version_floor` knows, so a version number is never given to two trees; and a tree
    /// an `ingest` event of the log names under `name` is never given a new version while that
    /// event's rows are missing ([`AddOutcome::LoggedWithoutRows`]): the new version would skip
    /// the logged one without comparing trees.
    pub fn add_packet(
        &mut self,
        name: &str,
        tree: &Blake3Digest,
        files: &[HashedFile],
        objects: &[ObjectRow],
        config: &NewVersionConfig,
        make_record: impl FnOnce(OfferedVersion) -> Result<(Blake3Digest, PacketRecord)>,
    ) -> Result<AddOutcome> {
        let wrap = sql_error(&self.path);
        let log = self.log.clone();
        let tx = self.begin_write()?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM packets WHERE name = ?1 AND tree = ?2 ORDER BY version LIMIT 1",
                params![name, tree.to_hex()],
                |r| r.get(0),
            )
            .optional()
            .map_err(&wrap)?;
        if let Some(id) = existing {
            let row = query_packet(&tx, "WHERE id = ?1", params![id]).map_err(&wrap)?;
            let row = row
                .into_iter()
                .next()
                .ok_or_else(|| Error::corrupt("catalog", "packet row vanished"))??;
            return Ok(AddOutcome::AlreadyArchived(row));
        }
        let logged_same_tree = logged_versions_of_tree_without_rows(&tx, name, tree);
        if let Some(version) = logged_same_tree
            .map_err(&wrap)?
            .into_iter()
            .find(|v| !config.logged_versions_looked_up.contains(v))
        {
            return Ok(AddOutcome::LoggedWithoutRows { version });
        }
        let with_rows = versions_with_rows(&tx, name).map_err(&wrap)?;
        // A version number, once committed, is never used again for another tree, even when
        // its packet is no longer in the catalog (lost, or dropped by reindex): the log keeps
        // every `ingest` event.
        let logged = logged_versions(&tx, name).map_err(&wrap)?;
        let number = [&with_rows, &logged]
            .iter()
            .filter_map(|versions| versions.last().copied())
            .fold(config.version_floor, u64::max)
            + 1;
        // Versions above the floor that this catalog holds neither rows nor an event of: claimed
        // after the caller read the claims, by a writer whose event this catalog has not taken
        // in (another machine's, on an S3 store, between its claim and its event), while a
        // later version's event or rows came in. Their trees are compared by the caller.
        let unaccounted_below = (config.version_floor + 1..number)
            .filter(|v| !with_rows.contains(v) && !logged.contains(v))
            .collect();
        let (record_id, record) = make_record(OfferedVersion {
            number,
            unaccounted_below,
        })?;
        let packet_id =
            insert_packet_rows(&tx, &record_id, &record, files, objects).map_err(&wrap)?;
        append_event(
            &tx,
            log.as_ref(),
            &wrap,
            &NewEvent::ingest(&record_id, &record),
        )?;
        tx.commit().map_err(&wrap)?;
        Ok(AddOutcome::Added(PacketRow {
            id: packet_id,
            record_id,
            record,
        }))
    }

    /// Insert a packet found by reindexing (no event; the caller logs one reindex event).
    pub fn insert_reindexed(
        &mut self,
        record_id: &Blake3Digest,
        record: &PacketRecord,
        files: &[HashedFile],
        objects: &[ObjectRow],
    ) -> Result<()> {
        let wrap = sql_error(&self.path);
        let tx = self.conn.transaction().map_err(&wrap)?;
        insert_packet_rows(&tx, record_id, record, files, objects).map_err(&wrap)?;
        tx.commit().map_err(&wrap)
    }

    /// The versions of `name` the catalog holds rows of.
    pub fn versions_held(&self, name: &str) -> Result<BTreeSet<u64>> {
        let versions = versions_with_rows(&self.conn, name);
        self.sql(versions)
    }

    /// Every packet, by name then version.
    pub fn packets(&self) -> Result<Vec<PacketRow>> {
        let rows = query_packet(&self.conn, "ORDER BY name, version", params![]);
        self.sql(rows)?.into_iter().collect()
    }

    /// Resolve a PACKET reference to exactly one packet.
    pub fn resolve(&self, reference: &PacketRef) -> Result<PacketRow> {
        let rows = match reference {
            PacketRef::Version { name, version } => {
                let rows = query_packet(
                    &self.conn,
                    "WHERE name = ?1 AND version = ?2",
                    params![name, *version as i64],
                );
                self.sql(rows)?
            }
            PacketRef::Name { name, also_prefix } => {
                let rows = query_packet(
                    &self.conn,
                    "WHERE name = ?1 ORDER BY version DESC LIMIT 1",
                    params![name],
                );
                let mut rows = self.sql(rows)?;
                if *also_prefix {
                    let by_prefix = self.by_prefix(name)?;
                    if !rows.is_empty() && !by_prefix.is_empty() {
                        return Err(Error::Usage(format!(
                            "{name:?} is both a packet name and a hex prefix of other packets' hashes; use NAME@N or a longer prefix"
                        )));
                    }
                    rows.extend(by_prefix);
                }
                rows
            }
            PacketRef::Prefix(prefix) => self.by_prefix(prefix)?,
        };
        let mut packets: Vec<PacketRow> = rows.into_iter().collect::<Result<_>>()?;
        packets.dedup_by_key(|p| p.id);
        match packets.len() {
            1 => Ok(packets.remove(0)),
            0 => {
                let hint = match reference {
                    PacketRef::Name { name, .. } => crate::packet_ref::prefix_hint(name)
                        .map(|hint| format!(" ({hint})"))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                Err(Error::NotFound(format!(
                    "no packet matches {}{hint}",
                    describe_ref(reference)
                )))
            }
            n => {
                let names: Vec<String> = packets
                    .iter()
                    .take(10)
                    .map(|p| format!("{}@{}", p.record.name, p.record.version))
                    .collect();
                Err(Error::Usage(format!(
                    "{} is ambiguous: it matches {n} packets ({}); use NAME@N or a longer prefix",
                    describe_ref(reference),
                    names.join(", ")
                )))
            }
        }
    }

    pub(super) fn by_prefix(&self, prefix: &str) -> Result<Vec<Result<PacketRow>>> {
        let rows = query_packet(
            &self.conn,
            "WHERE substr(packet_tree_sha256, 1, length(?1)) = ?1 OR substr(tree, 1, length(?1)) = ?1 ORDER BY id",
            params![prefix],
        );
        self.sql(rows)
    }

    /// The files of a packet, by path.
    pub fn entries(&self, packet_id: i64) -> Result<Vec<HashedFile>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT path, size, executable, blake3, sha256 FROM entries WHERE packet_id = ?1 ORDER BY path",
        ))?;
        let rows = stmt.query_map(params![packet_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        });
        let rows = self.sql(rows)?;
        let mut out = Vec::new();
        for row in rows {
            let (path, size, executable, blake3, sha256) = self.sql(row)?;
            let bad = |field: &str| {
                Error::corrupt(
                    format!("catalog entry {path:?} of packet row {packet_id}"),
                    format!("{field} is not valid"),
                )
            };
            out.push(HashedFile {
                meta: FileMeta {
                    size: u64::try_from(size).map_err(|_| bad("size"))?,
                    executable,
                    blake3: Blake3Digest::parse_hex(&blake3).ok_or_else(|| bad("blake3"))?,
                    sha256: Sha256Digest::parse_hex(&sha256).ok_or_else(|| bad("sha256"))?,
                },
                rel_path: path,
            });
        }
        // SQLite sorts TEXT with memcmp (BINARY collation): byte order, as the manifest needs.
        Ok(out)
    }

    /// The ids of every object the catalog refers to (what an ingest into an S3 store skips
    /// without a request: each was durable in the store before the row that names it
    /// committed).
    pub fn object_ids(&self) -> Result<std::collections::HashSet<Blake3Digest>> {
        Ok(self.objects()?.into_iter().map(|row| row.id).collect())
    }

    /// Every object the catalog refers to.
    pub fn objects(&self) -> Result<Vec<ObjectRow>> {
        let mut stmt = self.sql(
            self.conn
                .prepare("SELECT id, kind, size FROM objects ORDER BY id"),
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        let rows = self.sql(rows)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, size) = self.sql(row)?;
            out.push(ObjectRow {
                id: Blake3Digest::parse_hex(&id).ok_or_else(|| {
                    Error::corrupt(
                        format!("catalog object row {id:?}"),
                        "id is not a BLAKE3 digest",
                    )
                })?,
                kind,
                size: size.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Every packet whose packet_tree_sha256 is `sha256`, oldest first.
    pub fn packets_with_sha256(&self, sha256: &Sha256Digest) -> Result<Vec<PacketRow>> {
        let rows = query_packet(
            &self.conn,
            "WHERE packet_tree_sha256 = ?1 ORDER BY id",
            params![sha256.to_hex()],
        );
        self.sql(rows)?.into_iter().collect()
    }

    /// The packet with catalog row id `id`.
    pub fn packet_by_id(&self, id: i64) -> Result<PacketRow> {
        let rows = query_packet(&self.conn, "WHERE id = ?1", params![id]);
        self.sql(rows)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::corrupt("catalog", format!("no packet row {id}")))?
    }
}

/// A packet the store committed that the catalog lacks, read back from its record and tree.
#[derive(Clone, Debug)]
pub struct FoundPacket {
    /// The record id.
    pub record_id: Blake3Digest,
    /// The record.
    pub record: PacketRecord,
    /// Its files, as its tree lists them.
    pub files: Vec<HashedFile>,
    /// Its blob and tree object rows.
    pub objects: Vec<ObjectRow>,
}

impl FoundPacket {
    /// Insert its `packets`, `entries` and `objects` rows (no event).
    fn insert_rows(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<i64> {
        insert_packet_rows(
            tx,
            &self.record_id,
            &self.record,
            &self.files,
            &self.objects,
        )
    }
}

/// A committed rerun's attestation read back from the store: its payload's size and the fields
/// a `runs` row indexes.
#[derive(Clone, Debug)]
pub struct FoundRun {
    /// The attestation payload's size in bytes.
    pub size: u64,
    /// What [`crate::format::attestation::decode_summary`] read from it.
    pub summary: crate::format::attestation::AttestationSummary,
}

/// What [`Catalog::catch_up`] reads back from the store, by the id an event or a version claim
/// names: each `None` when the object is missing, corrupt or of another kind (the row is then
/// not indexed, and `fsck` names what is lost).
pub trait FindInStore {
    /// A committed packet: its record object and its whole tree.
    fn packet(&mut self, record: &Blake3Digest) -> Option<FoundPacket>;
    /// A committed rerun: its attestation object.
    fn run(&mut self, attestation: &Blake3Digest) -> Option<FoundRun>;
    /// A recorded mirror: its mirror list object.
    fn mirror_list(&mut self, id: &Blake3Digest) -> Option<MirrorList>;
}

/// The `rerun` events whose attestation no `runs` row holds, and the `mirror` events naming a
/// mirror list whose mirror no `mirrors` row records (a mirror's row carries its event's time):
/// (kind, detail, time) of each, in log order.
fn events_without_their_rows(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT e.kind, e.detail, e.time_unix_nanos FROM events e \
         WHERE (e.kind = 'rerun' AND NOT EXISTS (SELECT 1 FROM runs r \
                 WHERE r.attestation = json_extract(e.detail, '$.attestation'))) \
            OR (e.kind = 'mirror' AND json_extract(e.detail, '$.mirror_list') IS NOT NULL \
                AND NOT EXISTS (SELECT 1 FROM mirrors m \
                 WHERE m.time_unix_nanos = e.time_unix_nanos)) \
         ORDER BY e.seq",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// How a message names the item of a `forget` event: `NAME@N` for a packet, the attestation's
/// id and what the run was of for a rerun attestation.
fn describe_forgotten_item(subject: &str, detail: &str) -> String {
    let detail: serde_json::Value = serde_json::from_str(detail).unwrap_or_default();
    let id = detail.get("id").and_then(|v| v.as_str()).unwrap_or("");
    match detail.get("kind").and_then(|v| v.as_str()) {
        Some("attestation") => format!(
            "the rerun attestation {} (a rerun of {subject})",
            id.chars().take(12).collect::<String>()
        ),
        _ => subject.to_string(),
    }
}

/// The versions of `name` whose `ingest` event in the catalog's log names `tree` while the
/// catalog holds no row of the event's record, lowest first.
fn logged_versions_of_tree_without_rows(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    tree: &Blake3Digest,
) -> rusqlite::Result<Vec<u64>> {
    let prefix = format!("{name}@");
    let mut stmt = tx.prepare_cached(
        "SELECT subject, detail FROM events WHERE kind = 'ingest' AND substr(subject, 1, ?2) = ?1",
    )?;
    let events = stmt.query_map(params![prefix, prefix.chars().count() as i64], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut held = tx.prepare_cached("SELECT 1 FROM packets WHERE record = ?1")?;
    let tree_hex = tree.to_hex();
    let mut versions = Vec::new();
    for event in events {
        let (subject, detail) = event?;
        let Some((logged_name, version)) = split_versioned(&subject) else {
            continue;
        };
        let Ok(detail) = serde_json::from_str::<serde_json::Value>(&detail) else {
            continue;
        };
        let names_tree = detail.get("tree").and_then(|t| t.as_str()) == Some(tree_hex.as_str());
        let record = detail.get("record").and_then(|r| r.as_str()).unwrap_or("");
        if logged_name == name && names_tree && !held.exists(params![record])? {
            versions.push(version);
        }
    }
    versions.sort_unstable();
    Ok(versions)
}

/// The records the catalog's `ingest` events name.
fn records_named_by_ingest_events(
    tx: &rusqlite::Transaction<'_>,
) -> rusqlite::Result<HashSet<Blake3Digest>> {
    let mut stmt = tx.prepare("SELECT kind, detail FROM events WHERE kind = 'ingest'")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut named = HashSet::new();
    for row in rows {
        let (kind, detail) = row?;
        if let Some(crate::format::event::NamedObject::Record(id)) =
            crate::format::event::named_object(&kind, &detail)
        {
            named.insert(id);
        }
    }
    Ok(named)
}

impl Catalog {
    /// The items (`NAME@N`, or a rerun attestation and what it was a run of) of the `forget`
    /// events whose item the
    /// catalog holds rows of, unless a later `restore` event indexed it again: on an S3 store,
    /// items another machine forgot after this machine's cache indexed them (the catalog's rows
    /// are append-only, so such a cache is rebuilt from the bucket).
    pub fn forgotten_items_held(&self) -> Result<Vec<String>> {
        let found = (|| {
            let mut stmt = self.conn.prepare(
                "SELECT e.subject, e.detail FROM events e \
                 WHERE e.kind = 'forget' \
                   AND (EXISTS (SELECT 1 FROM packets p \
                                WHERE p.record = json_extract(e.detail, '$.id')) \
                     OR EXISTS (SELECT 1 FROM runs r \
                                WHERE r.attestation = json_extract(e.detail, '$.id'))) \
                   AND NOT EXISTS (SELECT 1 FROM events later \
                                   WHERE later.kind = 'restore' AND later.seq > e.seq \
                                     AND json_extract(later.detail, '$.id') \
                                         = json_extract(e.detail, '$.id')) \
                 ORDER BY e.seq",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<(String, String)>>>()
        })();
        Ok(self
            .sql(found)?
            .into_iter()
            .map(|(subject, detail)| describe_forgotten_item(&subject, &detail))
            .collect())
    }

    /// True if a `rerun` or `mirror` event of the catalog has no row yet (taken in from the log
    /// by an append, see [`Catalog::catch_up`]): the next catch-up has rows to index.
    pub fn has_events_without_their_rows(&self) -> Result<bool> {
        let found = events_without_their_rows(&self.conn);
        Ok(!self.sql(found)?.is_empty())
    }
}

/// What [`Catalog::catch_up`] added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaughtUp {
    /// Events taken in from the store's log.
    pub events: u64,
    /// Packets indexed (named by a taken event or by a version claim alone).
    pub packets: u64,
    /// Runs indexed from the attestations that taken `rerun` events name.
    pub runs: u64,
    /// Mirrors indexed from the mirror lists that taken `mirror` events name.
    pub mirrors: u64,
}

impl Catalog {
    /// Bring the catalog up to date with the store, in one write transaction (so no writer
    /// commits meanwhile): take in, in order, the `log/` events past the catalog's last one that
    /// continue its chain, each with the rows its object gives when `find` can read it (an
    /// `ingest` event with its packet's rows, a `rerun` event with its `runs` row, a `mirror`
    /// event naming a mirror list with its `mirrors` and `mirror_files` rows), then index each
    /// version claim's record (`claims`: record ids of `refs/packets/NAME/N`) that no packet row
    /// holds and no event names, with a new `ingest` event (through the log, like any event). The catalog is a cache of the store: this is
    /// what an interrupted writer left committed in the store but not yet in the catalog.
    ///
    /// # Errors
    ///
    /// Catalog errors, or appending an event to the log fails.
    pub fn catch_up(
        &mut self,
        later: &[crate::format::event::LogEntry],
        claims: &[Blake3Digest],
        find: &mut dyn FindInStore,
    ) -> Result<CaughtUp> {
        let wrap = sql_error(&self.path);
        let log = self.log.clone();
        let tx = self.begin_write()?;
        let mut out = CaughtUp::default();
        let forgotten = forgotten_at_the_end_of(later);
        let held = |tx: &rusqlite::Transaction<'_>, id: &Blake3Digest| -> Result<bool> {
            let found: Option<i64> = tx
                .query_row(
                    "SELECT id FROM packets WHERE record = ?1",
                    params![id.to_hex()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&wrap)?;
            Ok(found.is_some())
        };
        for entry in later {
            let last: Option<(i64, String)> = tx
                .query_row(
                    "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(&wrap)?;
            let (last_seq, last_hash) = last.unwrap_or((0, GENESIS_HASH.to_string()));
            if entry.seq <= last_seq {
                continue;
            }
            if entry.seq != last_seq + 1 || entry.prev_hash != last_hash {
                // Not a continuation of this catalog's chain: fsck reports it.
                break;
            }
            match crate::format::event::named_object(&entry.kind, &entry.detail) {
                Some(NamedObject::Record(id)) => {
                    // A packet the log forgets further on is not indexed: it was lost then,
                    // and a record read back now must be restored (reindex) to count again.
                    let found = if held(&tx, &id)? || forgotten.contains(&id) {
                        None
                    } else {
                        find.packet(&id)
                    };
                    if let Some(found) = found {
                        found.insert_rows(&tx).map_err(&wrap)?;
                        out.packets += 1;
                    }
                }
                Some(NamedObject::Attestation(id)) if !forgotten.contains(&id) => {
                    out.runs += u64::from(index_run(&tx, find, &id).map_err(&wrap)?);
                }
                Some(NamedObject::MirrorList(id)) => {
                    let added = index_mirror(&tx, find, &id, entry.time_unix_nanos);
                    out.mirrors += u64::from(added.map_err(&wrap)?);
                }
                _ => {}
            }
            insert_event_row(&tx, entry).map_err(&wrap)?;
            out.events += 1;
        }
        if !claims.is_empty() {
            let mut named = records_named_by_ingest_events(&tx).map_err(&wrap)?;
            for id in claims {
                if held(&tx, id)? {
                    continue;
                }
                if named.contains(id) {
                    // Its event is in the catalog already (taken in by an append that found its
                    // log key), its rows are not: index them, with no second event.
                    if let Some(found) = find.packet(id) {
                        found.insert_rows(&tx).map_err(&wrap)?;
                        out.packets += 1;
                    }
                    continue;
                }
                if let Some(found) = find.packet(id) {
                    found.insert_rows(&tx).map_err(&wrap)?;
                    append_event(
                        &tx,
                        log.as_ref(),
                        &wrap,
                        &NewEvent::ingest(&found.record_id, &found.record),
                    )?;
                    out.packets += 1;
                    out.events += 1;
                    // The append may have taken in other writers' events first (another
                    // machine's, in an S3 store), among them the `ingest` event of a later claim
                    // of this list: that claim needs no second event.
                    named = records_named_by_ingest_events(&tx).map_err(&wrap)?;
                }
            }
        }
        // An event another writer held at the number this catalog's append wanted (another
        // machine's, on an S3 store) was taken in by that append without its rows: index the
        // rows of every `rerun` and `mirror` event that has none yet.
        for (kind, detail, time_unix_nanos) in events_without_their_rows(&tx).map_err(&wrap)? {
            match crate::format::event::named_object(&kind, &detail) {
                Some(NamedObject::Attestation(id)) => {
                    out.runs += u64::from(index_run(&tx, find, &id).map_err(&wrap)?);
                }
                Some(NamedObject::MirrorList(id)) => {
                    let added = index_mirror(&tx, find, &id, time_unix_nanos);
                    out.mirrors += u64::from(added.map_err(&wrap)?);
                }
                _ => {}
            }
        }
        tx.commit().map_err(&wrap)?;
        Ok(out)
    }
}

/// The records and attestations that `later`'s `forget` events leave forgotten (no `restore`
/// event after the last `forget` of each).
fn forgotten_at_the_end_of(later: &[crate::format::event::LogEntry]) -> HashSet<Blake3Digest> {
    let mut forgotten = HashSet::new();
    for entry in later {
        match crate::format::event::named_object(&entry.kind, &entry.detail) {
            Some(NamedObject::Forgotten(id)) => {
                forgotten.insert(id);
            }
            Some(NamedObject::Restored(id)) => {
                forgotten.remove(&id);
            }
            _ => {}
        }
    }
    forgotten
}

/// Index the run of a taken `rerun` event's attestation, unless the catalog holds it or the
/// attestation cannot be read; a run of a packet the catalog does not hold is not indexed either
/// (its row would not name it; `fsck` reports the attestation lost). True if a row was added.
fn index_run(
    tx: &rusqlite::Transaction<'_>,
    find: &mut dyn FindInStore,
    attestation: &Blake3Digest,
) -> rusqlite::Result<bool> {
    if run_recorded(tx, attestation)? {
        return Ok(false);
    }
    let Some(found) = find.run(attestation) else {
        return Ok(false);
    };
    let packet_id = match &found.summary.packet {
        None => None,
        Some(label) => match packet_id_of_label(tx, label)? {
            Some(id) => Some(id),
            None => return Ok(false),
        },
    };
    insert_run_rows(
        tx,
        &NewRun::of_attestation(*attestation, found.size, &found.summary, packet_id),
    )?;
    Ok(true)
}

/// Index the mirror of a taken `mirror` event's mirror list at the event's time, unless the
/// catalog records a mirror at its KB path already, the list cannot be read, or no packet row
/// holds its record. True if rows were added.
fn index_mirror(
    tx: &rusqlite::Transaction<'_>,
    find: &mut dyn FindInStore,
    id: &Blake3Digest,
    time_unix_nanos: i64,
) -> rusqlite::Result<bool> {
    let Some(list) = find.mirror_list(id) else {
        return Ok(false);
    };
    if mirror_recorded(tx, &list.kb_root, &list.rel_path)? {
        return Ok(false);
    }
    let Some(packet_id) = packet_id_of_record(tx, &list.record)? else {
        return Ok(false);
    };
    insert_mirror_rows(tx, &NewMirror { packet_id, list }, time_unix_nanos)?;
    Ok(true)
}
