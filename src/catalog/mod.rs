//! The SQLite catalog: an index over the object store, and the append-only event log.
//!
//! `<store>/catalog.sqlite` (WAL mode) holds `packets` (one row per archived packet version,
//! mirroring its record object), `entries` (path → digests for every file of every packet, so
//! "which packets contain this SHA-256?" is one query), `objects` (every object the catalog refers
//! to), `events` (an append-only log in which each event carries the SHA-256 of the previous
//! one), and since schema 2 `mirrors` and `mirror_files` (every KB publication) and `runs` (every
//! rerun attestation). Triggers refuse UPDATE and DELETE on all seven.
//!
//! Everything but the events can be rebuilt from objects (`evstore reindex`); the catalog is an
//! index, the objects are the truth. The catalog is written only after the objects it refers to
//! are durable.
//!
//! **Architecture Invariant:** this is the only module that speaks SQL.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::digest::{sha256_of, Blake3Digest, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::format::record::PacketRecord;
use crate::format::tree::{FileMeta, HashedFile};
use crate::packet_ref::PacketRef;
use crate::text::EscapePath;

/// The schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const SCHEMA: &str = r#"
CREATE TABLE packets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    packet_tree_sha256 TEXT NOT NULL,
    tree TEXT NOT NULL,
    record TEXT NOT NULL UNIQUE,
    file_count INTEGER NOT NULL,
    total_bytes INTEGER NOT NULL,
    created_unix_nanos INTEGER NOT NULL,
    source_date_epoch INTEGER NOT NULL,
    tool_version TEXT NOT NULL,
    source_path TEXT NOT NULL,
    note TEXT,
    UNIQUE (name, version)
);
CREATE INDEX packets_by_sha256 ON packets (packet_tree_sha256);
CREATE INDEX packets_by_tree ON packets (tree);
CREATE TABLE entries (
    packet_id INTEGER NOT NULL REFERENCES packets (id),
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    executable INTEGER NOT NULL,
    blake3 TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (packet_id, path)
) WITHOUT ROWID;
CREATE INDEX entries_by_sha256 ON entries (sha256);
CREATE INDEX entries_by_blake3 ON entries (blake3);
CREATE TABLE objects (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    time_unix_nanos INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#;

/// Added in schema version 2: KB mirrors and rerun attestations.
const SCHEMA_V2: &str = r#"
CREATE TABLE mirrors (
    id INTEGER PRIMARY KEY,
    kb_root TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    packet_id INTEGER NOT NULL REFERENCES packets (id),
    packet_tree_sha256 TEXT NOT NULL,
    dedup TEXT NOT NULL,
    time_unix_nanos INTEGER NOT NULL,
    UNIQUE (kb_root, rel_path)
);
CREATE TABLE mirror_files (
    mirror_id INTEGER NOT NULL REFERENCES mirrors (id),
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    stored_as TEXT NOT NULL,
    kb_path TEXT NOT NULL,
    PRIMARY KEY (mirror_id, path)
) WITHOUT ROWID;
CREATE INDEX mirror_files_by_sha256 ON mirror_files (sha256);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    packet_id INTEGER REFERENCES packets (id),
    expected_sha256 TEXT NOT NULL,
    attestation TEXT NOT NULL UNIQUE,
    verdict TEXT NOT NULL,
    time_unix_nanos INTEGER NOT NULL,
    summary TEXT NOT NULL
);
"#;

const APPEND_ONLY_TABLES: [&str; 4] = ["packets", "entries", "objects", "events"];
const APPEND_ONLY_TABLES_V2: [&str; 3] = ["mirrors", "mirror_files", "runs"];

fn append_only_triggers(tables: &[&str]) -> String {
    let mut sql = String::new();
    for table in tables {
        for op in ["UPDATE", "DELETE"] {
            sql.push_str(&format!(
                "CREATE TRIGGER {table}_no_{lower} BEFORE {op} ON {table} BEGIN \
                 SELECT RAISE(ABORT, 'evstore catalog is append-only: {op} on {table} is refused'); END;\n",
                lower = op.to_lowercase(),
            ));
        }
    }
    sql
}

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

/// An event row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EventRow {
    /// Position in the log, from 1.
    pub seq: i64,
    /// When it happened.
    pub time_unix_nanos: i64,
    /// What happened: `init`, `ingest`, `reindex`, ...
    pub kind: String,
    /// What it happened to (usually `NAME@N`).
    pub subject: String,
    /// Compact JSON with the details.
    pub detail: String,
    /// The previous event's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This event's hash; see [`event_hash`].
    pub hash: String,
}

/// A new event to append.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// What happened.
    pub kind: String,
    /// What it happened to.
    pub subject: String,
    /// Details as a JSON value.
    pub detail: serde_json::Value,
}

/// The hash of an event: SHA-256 of
/// `evstore-event-1\t{seq}\t{time_unix_nanos}\t{kind}\t{subject}\t{prev_hash}\t{detail}\n`.
pub fn event_hash(
    seq: i64,
    time_unix_nanos: i64,
    kind: &str,
    subject: &str,
    prev_hash: &str,
    detail: &str,
) -> Sha256Digest {
    let text = format!(
        "evstore-event-1\t{seq}\t{time_unix_nanos}\t{kind}\t{subject}\t{prev_hash}\t{detail}\n"
    );
    sha256_of(text.as_bytes())
}

/// A mirror to record.
#[derive(Clone, Debug)]
pub struct NewMirror {
    /// The KB folder, canonical.
    pub kb_root: String,
    /// The packet folder, relative to the KB.
    pub rel_path: String,
    /// The packet's catalog row id.
    pub packet_id: i64,
    /// Its packet_tree_sha256.
    pub packet_tree_sha256: Sha256Digest,
    /// `copy`, `reference` or `hardlink`.
    pub dedup: String,
    /// Every listed file and where its bytes live.
    pub files: Vec<MirrorFile>,
}

/// One file of a mirror.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MirrorFile {
    /// Path in the packet.
    pub path: String,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
    /// `copy`, `reference` or `hardlink`.
    pub stored_as: String,
    /// KB-relative path of the bytes.
    pub kb_path: String,
}

/// A recorded mirror.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MirrorRow {
    /// Row id.
    pub id: i64,
    /// The KB folder, canonical.
    pub kb_root: String,
    /// The packet folder, relative to the KB.
    pub rel_path: String,
    /// The packet's catalog row id.
    pub packet_id: i64,
    /// Its packet_tree_sha256.
    pub packet_tree_sha256: Sha256Digest,
    /// `copy`, `reference` or `hardlink`.
    pub dedup: String,
    /// When it was recorded.
    pub time_unix_nanos: i64,
}

/// A rerun to record.
#[derive(Clone, Debug)]
pub struct NewRun {
    /// The packet rerun, if it is in the store.
    pub packet_id: Option<i64>,
    /// The packet_tree_sha256 expected.
    pub expected_sha256: Sha256Digest,
    /// The attestation object's id.
    pub attestation: Blake3Digest,
    /// The attestation object's size.
    pub attestation_size: u64,
    /// `PASS` or `FAIL`.
    pub verdict: String,
    /// When it was attested (the attestation's own `time_unix_nanos`).
    pub time_unix_nanos: u64,
    /// A JSON summary for listing.
    pub summary: serde_json::Value,
}

/// A recorded rerun.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunRow {
    /// Row id.
    pub id: i64,
    /// The packet rerun, if it is in the store.
    pub packet_id: Option<i64>,
    /// The packet_tree_sha256 expected.
    pub expected_sha256: String,
    /// The attestation object's id.
    pub attestation: String,
    /// `PASS` or `FAIL`.
    pub verdict: String,
    /// When it was recorded.
    pub time_unix_nanos: i64,
    /// A JSON summary.
    pub summary: String,
}

/// What the catalog says was committed: every packet record and rerun attestation that a
/// committed event names or a catalog row holds, and what `forget` acknowledged as lost.
///
/// A packet exists once its `ingest` event committed (in the same transaction as its rows), so
/// the event log, not the presence of a record object, is what makes a record committed. A record
/// object no event names was left by an interrupted or failed ingest and is never revived.
#[derive(Clone, Debug, Default)]
pub struct Commitments {
    /// Committed packet records: id → `NAME@N` and the seq of the event that committed it
    /// (`None` for a row carried by a catalog rebuilt before events were carried over).
    pub records: BTreeMap<Blake3Digest, (String, Option<i64>)>,
    /// Committed rerun attestations: id → label (packet or expected hash) and event seq.
    pub attestations: BTreeMap<Blake3Digest, (String, Option<i64>)>,
    /// Ids acknowledged as lost: by the last `forget` or `restore` event about them in the log
    /// (a `restore` ends a forget: the item was indexed again, so a new loss fails again), or,
    /// for ids the log says nothing about, by a `refs/forgotten` marker without a
    /// `refs/restored` one.
    pub forgotten: HashSet<Blake3Digest>,
    /// Ids some `forget` or `restore` event of the log is about.
    pub forget_logged: HashSet<Blake3Digest>,
}

/// A committed packet or attestation that the catalog no longer holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LostItem {
    /// `packet` or `attestation`.
    pub kind: &'static str,
    /// `NAME@N` for a packet; the packet or expected hash a rerun was of, for an attestation.
    pub label: String,
    /// The record or attestation object id.
    pub id: String,
    /// The event that committed it, if the log has it.
    pub committed_by_event: Option<i64>,
}

impl LostItem {
    /// Whether `text` names this item: its `NAME@N` (packets), or 8 or more lowercase hex
    /// digits at the start of its id.
    pub fn matches(&self, text: &str) -> bool {
        (self.kind == "packet" && text == self.label)
            || (text.len() >= 8
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && self.id.starts_with(text))
    }

    /// What to give `evstore forget` to name this item.
    pub fn label_for_forget(&self) -> &str {
        if self.kind == "packet" {
            &self.label
        } else {
            &self.id
        }
    }
}

impl Commitments {
    /// Add what the store's commit markers say (see [`crate::store::refs`]).
    pub fn add_markers(&mut self, markers: &crate::store::refs::Markers) {
        for (id, label) in &markers.records {
            self.records
                .entry(*id)
                .or_insert_with(|| (label.clone(), None));
        }
        for (id, label) in &markers.attestations {
            self.attestations
                .entry(*id)
                .or_insert_with(|| (label.clone(), None));
        }
        for id in &markers.forgotten {
            if !self.forget_logged.contains(id) && !markers.restored.contains(id) {
                self.forgotten.insert(*id);
            }
        }
    }

    /// Commitments from the markers alone (no catalog to read).
    pub fn from_markers(markers: &crate::store::refs::Markers) -> Commitments {
        let mut out = Commitments::default();
        out.add_markers(markers);
        out
    }

    /// Everything committed and not forgotten that is not in `records_held` / `attestations_held`.
    pub fn lost(
        &self,
        records_held: &HashSet<Blake3Digest>,
        attestations_held: &HashSet<Blake3Digest>,
    ) -> Vec<LostItem> {
        let mut lost = Vec::new();
        for (kind, committed, held) in [
            ("packet", &self.records, records_held),
            ("attestation", &self.attestations, attestations_held),
        ] {
            for (id, (label, seq)) in committed {
                if !held.contains(id) && !self.forgotten.contains(id) {
                    lost.push(LostItem {
                        kind,
                        label: label.clone(),
                        id: id.to_hex(),
                        committed_by_event: *seq,
                    });
                }
            }
        }
        lost
    }
}

/// The `NAME@N` of an ingest or forget event's subject, split.
fn split_versioned(subject: &str) -> Option<(&str, u64)> {
    let (name, version) = subject.rsplit_once('@')?;
    Some((name, version.parse().ok()?))
}

/// A pinned read snapshot of the catalog (see [`Catalog::read_snapshot`]); ends when dropped.
pub struct ReadSnapshot<'a> {
    catalog: &'a Catalog,
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        // A read transaction has nothing to commit; ending it only releases the snapshot.
        let _ = self.catalog.conn.execute_batch("COMMIT");
    }
}

/// What [`Catalog::add_packet`] did.
#[derive(Clone, Debug)]
pub enum AddOutcome {
    /// A new version was recorded.
    Added(PacketRow),
    /// This name already has a version with this tree; nothing was recorded.
    AlreadyArchived(PacketRow),
}

/// An open catalog.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    /// The (device, inode) of the file opened, to notice a catalog replaced meanwhile.
    identity: (u64, u64),
    /// The shared side of the catalog lock (see [`CatalogExclusiveLock`]), held while open; the
    /// exclusive side for an [`CatalogAccess::Immutable`] reader.
    _open_lock: Option<std::fs::File>,
    /// How the file was opened, and why it could not be opened for writing.
    access: CatalogAccess,
}

/// How a [`Catalog`] was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogAccess {
    /// Read-write, as writers (and readers who may write the store) open it.
    ReadWrite,
    /// `SQLITE_OPEN_READONLY`, through the catalog's existing (or creatable) `-wal` and `-shm`,
    /// because this user cannot write the catalog; the reason says why.
    ReadOnly(String),
    /// `immutable=1`: SQLite reads the catalog file alone, with no locks, `-wal` or `-shm`,
    /// because those cannot be created (the reason says why). Only used when the `-wal` is absent
    /// or empty and this handle holds the exclusive catalog lock, so no evstore process has the
    /// catalog open while it reads.
    Immutable(String),
}

/// The exclusive side of the catalog lock: an `flock` on the folder holding `catalog.sqlite`.
/// Every open [`Catalog`] holds the shared side for its whole life, so while this is held no
/// other handle has the catalog file open. `reindex` needs that to move the file aside: SQLite
/// deletes `<catalog>-wal` and `-shm` *by name* when a file's last connection closes, so a
/// handle left on a moved-aside catalog would delete the new catalog's log.
pub struct CatalogExclusiveLock {
    _dir: std::fs::File,
}

/// The (device, inode) of the file at `path`.
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// `<catalog><suffix>`: its `-wal` or `-shm`.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn sidecar_exists(path: &Path, suffix: &str) -> Result<bool> {
    let file = sidecar(path, suffix);
    match std::fs::symlink_metadata(&file) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(Error::io(&file, "cannot stat", err)),
    }
}

/// Whether this user (effective ids) can write the catalog file, its folder, and its `-wal` and
/// `-shm` where they exist.
fn can_write_catalog(path: &Path) -> Result<bool> {
    let wal = sidecar(path, "-wal");
    let shm = sidecar(path, "-shm");
    for (file, must_exist) in [
        (path, true),
        (catalog_lock_dir(path), true),
        (wal.as_path(), false),
        (shm.as_path(), false),
    ] {
        match rustix::fs::accessat(
            rustix::fs::CWD,
            file,
            rustix::fs::Access::WRITE_OK,
            rustix::fs::AtFlags::EACCESS,
        ) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOENT) if !must_exist => {}
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM | rustix::io::Errno::ROFS) => {
                return Ok(false)
            }
            Err(errno) => return Err(Error::io(file, "cannot check access to", errno.into())),
        }
    }
    Ok(true)
}

/// Below this much free space, opening the catalog normally (which creates a 32 KiB `-shm`)
/// is not attempted.
const FULL_FILE_SYSTEM_BYTES: u64 = 256 * 1024;

/// The bytes free for this user on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Result<u64> {
    let stat = rustix::fs::statvfs(dir)
        .map_err(|errno| Error::io(dir, "cannot read the free space of", errno.into()))?;
    let blocks = if rustix::process::geteuid().is_root() {
        stat.f_bfree
    } else {
        stat.f_bavail
    };
    Ok(blocks.saturating_mul(stat.f_frsize))
}

/// Whether the file system holding `dir` has less than [`FULL_FILE_SYSTEM_BYTES`] free for
/// this user.
fn file_system_is_full(dir: &Path) -> Result<bool> {
    Ok(free_bytes(dir)? < FULL_FILE_SYSTEM_BYTES)
}

/// How long a catalog open waits for the catalog lock before giving up: 120 s (as SQLite's busy
/// timeout), or `$EVSTORE_LOCK_TIMEOUT_SECS` (whole seconds) when set.
fn lock_timeout() -> Result<Duration> {
    match std::env::var("EVSTORE_LOCK_TIMEOUT_SECS") {
        Err(std::env::VarError::NotPresent) => Ok(Duration::from_secs(120)),
        // Digits only (no sign, no space), at most a day: a larger wait is no timeout at all,
        // and `Instant + Duration` must not overflow.
        Ok(text) => match text.parse::<u64>() {
            Ok(secs) if text.bytes().all(|b| b.is_ascii_digit()) && secs <= 86_400 => {
                Ok(Duration::from_secs(secs))
            }
            _ => Err(Error::Usage(format!(
                "$EVSTORE_LOCK_TIMEOUT_SECS {text:?} is not a whole number of seconds from 0 to \
                 86400"
            ))),
        },
        Err(std::env::VarError::NotUnicode(text)) => Err(Error::Usage(format!(
            "$EVSTORE_LOCK_TIMEOUT_SECS {text:?} is not a whole number of seconds"
        ))),
    }
}

/// Whether this process already said on stderr that it waits for the catalog lock.
static SAID_WAITING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SQLite errors that mean the WAL cannot be used: its `-wal` or `-shm` cannot be created,
/// opened or grown by this user.
fn wal_unusable(source: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        source.sqlite_error_code(),
        Some(
            ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull
        )
    )
}

/// Why a [`wal_unusable`] error happened, in words.
fn wal_unusable_reason(dir: &Path, source: &rusqlite::Error) -> String {
    match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => format!(
            "this user cannot create or write the catalog's -wal and -shm in {}",
            dir.escaped()
        ),
        _ => format!("SQLite cannot create or grow the catalog's -wal and -shm ({source})"),
    }
}

/// `file://<absolute path, percent-encoded>?immutable=1&mode=ro`. Every byte but unreserved
/// characters and `/` is encoded, so `?`, `#`, `%` and `&` in a folder name stay part of the path.
fn immutable_uri(path: &Path) -> Result<String> {
    use std::os::unix::ffi::OsStrExt;
    let absolute = std::path::absolute(path).at(path, "cannot make absolute")?;
    let mut uri = String::from("file://");
    for &byte in absolute.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?immutable=1&mode=ro");
    Ok(uri)
}

/// A catalog that is not there: an error that says how to rebuild it.
fn missing_or_io(path: &Path, err: std::io::Error) -> Error {
    if err.kind() == std::io::ErrorKind::NotFound {
        Error::Usage(format!(
            "{} is missing; rebuild it from the objects with `evstore reindex`",
            path.escaped()
        ))
    } else {
        Error::io(path, "cannot open the catalog", err)
    }
}

/// A catalog file SQLite calls damaged is corruption (exit 1), with the way to recover.
fn damaged_is_corrupt(path: &Path, err: Error) -> Error {
    match err {
        Error::Catalog { source, .. } if crate::error::is_damaged_database(&source) => {
            Error::corrupt(
                format!("catalog {}", path.escaped()),
                format!(
                    "{source}; `evstore reindex --replace` rebuilds it from the objects (the \
                     damaged file is kept beside it)"
                ),
            )
        }
        other => other,
    }
}

/// The folder whose `flock` is the catalog lock.
fn catalog_lock_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Whether opening may create the catalog file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Creation {
    /// The file must exist already.
    Existing,
    /// Create the file (and its schema) if it does not exist.
    CreateIfMissing,
}

impl Catalog {
    /// Take the exclusive catalog lock without waiting; refused (exit 2) while any evstore
    /// process has this catalog open.
    pub fn lock_exclusive(path: &Path, command: &str) -> Result<CatalogExclusiveLock> {
        let dir_path = catalog_lock_dir(path);
        let dir = std::fs::File::open(dir_path).at(dir_path, "cannot open")?;
        match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(CatalogExclusiveLock { _dir: dir }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Usage(format!(
                "{}: the catalog is open in another evstore process; run {command} again when \
                 no evstore command uses this store",
                path.escaped()
            ))),
            Err(errno) => Err(Error::io(dir_path, "cannot lock", errno.into())),
        }
    }

    /// Open (creating if missing) the catalog at `path` while the caller holds its exclusive
    /// lock; this handle takes no lock of its own.
    pub fn open_under(_lock: &CatalogExclusiveLock, path: &Path) -> Result<Catalog> {
        Catalog::open_with(path, Creation::CreateIfMissing, None)
    }

    /// Open the existing catalog of a store. A missing catalog is an error, never silently
    /// replaced by an empty one: an empty catalog would make a store look empty and sound.
    pub fn open_existing(path: &Path) -> Result<Catalog> {
        // On a full file system SQLite would create a `-wal` and a `-shm`, fail to grow the
        // `-shm` ("disk I/O error"), and leave both behind: refuse first, saying why.
        let dir = catalog_lock_dir(path);
        if !sidecar_exists(path, "-shm")? {
            let free = free_bytes(dir)?;
            if free < FULL_FILE_SYSTEM_BYTES {
                // Nothing free at all is what the OS calls ENOSPC; say it in its words too.
                let none_left = if free == 0 {
                    "no space left on device: "
                } else {
                    ""
                };
                return Err(Error::Usage(format!(
                    "{}: cannot open the catalog for writing: {none_left}less than {} KiB free on \
                     the store's file system ({} KiB): too little for a catalog write; free some \
                     space",
                    path.escaped(),
                    FULL_FILE_SYSTEM_BYTES / 1024,
                    free / 1024
                )));
            }
        }
        let lock = Catalog::lock_shared(path, &mut None)?;
        Catalog::open_with(path, Creation::Existing, Some(lock))
            .map_err(|err| damaged_is_corrupt(path, err))
    }

    /// Open the existing catalog of a store for a command that only reads it, also when this
    /// user cannot write the store or its file system is full.
    ///
    /// - The user can write the catalog and there is space: as [`Catalog::open_existing`] (so an
    ///   old schema is upgraded, and the last connection to close removes `-wal` and `-shm`).
    /// - The user cannot write it: `SQLITE_OPEN_READONLY` (no URI). SQLite reads through the
    ///   existing `-wal` and `-shm` (a read-only `-shm` too), or creates them where it can.
    /// - Neither works (the folder is read-only and there is no `-shm`; the file system is
    ///   full): an `immutable=1` open, which reads the catalog file alone with no locking. That
    ///   would read stale or torn pages while someone writes, so it is used only when the
    ///   `-wal` is absent or empty (everything committed is in the file) and this handle holds
    ///   the exclusive catalog lock (no evstore process has the catalog open meanwhile, and
    ///   none can open it until this handle is dropped). A writer that is not evstore cannot be
    ///   detected. Anything else is refused with the reason.
    pub fn open_read_only(path: &Path) -> Result<Catalog> {
        Catalog::open_reader(path).map_err(|err| damaged_is_corrupt(path, err))
    }

    /// How this catalog was opened.
    pub fn access(&self) -> &CatalogAccess {
        &self.access
    }

    fn open_reader(path: &Path) -> Result<Catalog> {
        let dir = catalog_lock_dir(path);
        // A catalog this user cannot read at all: say so, naming the file, rather than
        // SQLite's "unable to open database file". (`access`, not an open: closing a descriptor
        // of the file would drop the POSIX locks of any SQLite connection this process has.)
        if let Err(errno) = rustix::fs::accessat(
            rustix::fs::CWD,
            path,
            rustix::fs::Access::READ_OK,
            rustix::fs::AtFlags::EACCESS,
        ) {
            return Err(missing_or_io(path, errno.into()));
        }
        // A few rounds: between a failed open and taking the exclusive lock, another evstore
        // process may have opened the catalog (and created its `-shm`), which makes the
        // ordinary read-only open work.
        let mut last_refusal = None;
        // One bound for all rounds' waits for the lock.
        let mut lock_deadline: Option<std::time::Instant> = None;
        for round in 0..5 {
            if round > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            let lock = Catalog::lock_shared(path, &mut lock_deadline)?;
            let shm_exists = sidecar_exists(path, "-shm")?;
            let writable = can_write_catalog(path)?;
            let reason = if !shm_exists && file_system_is_full(dir)? {
                // Opening would create `-shm` and `-wal` and fail to grow the `-shm`, leaving
                // both behind: do not touch the store at all.
                drop(lock);
                format!(
                    "the file system holding {} has no space left, so SQLite cannot create its \
                     -shm",
                    dir.escaped()
                )
            } else {
                let opened = if writable {
                    Catalog::open_with(path, Creation::Existing, Some(lock))
                } else {
                    Catalog::open_plain_read_only(path, lock)
                };
                match opened {
                    Ok(catalog) => return Ok(catalog),
                    Err(Error::Catalog { source, .. }) if wal_unusable(&source) => {
                        wal_unusable_reason(dir, &source)
                    }
                    Err(other) => return Err(other),
                }
            };
            match Catalog::open_immutable(path, &reason)? {
                Some(catalog) => return Ok(catalog),
                None => last_refusal = Some(reason),
            }
        }
        Err(Error::Usage(format!(
            "{}: cannot read the catalog: {}; and another evstore process keeps it open; run the \
             command again when it has finished",
            path.escaped(),
            last_refusal.unwrap_or_default()
        )))
    }

    /// `SQLITE_OPEN_READONLY`, for a user who cannot write the catalog.
    fn open_plain_read_only(path: &Path, lock: std::fs::File) -> Result<Catalog> {
        let before = file_identity(path).map_err(|err| missing_or_io(path, err))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Catalog {
            path: path.to_path_buf(),
            source,
        })?;
        let reason = "this user cannot write the catalog".to_string();
        Catalog::finish_read_only(path, conn, before, lock, CatalogAccess::ReadOnly(reason))
    }

    /// The `immutable=1` open described at [`Catalog::open_read_only`]; `None` if another
    /// evstore process has the catalog open (the caller tries the ordinary open again).
    fn open_immutable(path: &Path, reason: &str) -> Result<Option<Catalog>> {
        let dir_path = catalog_lock_dir(path);
        let dir = std::fs::File::open(dir_path).at(dir_path, "cannot open")?;
        match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(errno) => return Err(Error::io(dir_path, "cannot lock", errno.into())),
        }
        let wal = sidecar(path, "-wal");
        match std::fs::symlink_metadata(&wal) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(&wal, "cannot stat", err)),
            Ok(meta) if meta.len() == 0 => {}
            Ok(meta) => {
                return Err(Error::Usage(format!(
                    "{}: cannot read the catalog: {reason}; and its write-ahead log {} holds {} \
                     bytes of changes not yet in the catalog file, which SQLite can only read \
                     through a -shm; run any evstore command on this store once as a user who can \
                     write it, with space on its file system",
                    path.escaped(),
                    wal.escaped(),
                    meta.len()
                )))
            }
        }
        let before = file_identity(path).map_err(|err| missing_or_io(path, err))?;
        // The one URI open: `immutable` is a URI parameter. The path is percent-encoded, so
        // no character of it can end the path or add a parameter.
        let uri = immutable_uri(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&uri, flags).map_err(|source| Error::Catalog {
            path: path.to_path_buf(),
            source,
        })?;
        let access = CatalogAccess::Immutable(reason.to_string());
        Catalog::finish_read_only(path, conn, before, dir, access).map(Some)
    }

    /// Check the file and schema of a catalog opened read-only, and make the handle.
    fn finish_read_only(
        path: &Path,
        conn: Connection,
        before: (u64, u64),
        lock: std::fs::File,
        access: CatalogAccess,
    ) -> Result<Catalog> {
        let identity = file_identity(path).at(path, "cannot stat the catalog")?;
        if before != identity {
            return Err(Error::Usage(format!(
                "{}: the catalog was replaced while it was being opened; run the command again",
                path.escaped()
            )));
        }
        let catalog = Catalog {
            conn,
            path: path.to_path_buf(),
            identity,
            _open_lock: Some(lock),
            access,
        };
        let busy = catalog.conn.busy_timeout(Duration::from_secs(120));
        catalog.sql(busy)?;
        let query_only = catalog.conn.pragma_update(None, "query_only", true);
        catalog.sql(query_only)?;
        let cache = catalog.conn.pragma_update(None, "cache_size", -65536);
        catalog.sql(cache)?;
        // The first read: SQLite opens the `-wal` and `-shm` (or fails to) here.
        let version: i64 = catalog.sql(
            catalog
                .conn
                .query_row("PRAGMA user_version", [], |r| r.get(0)),
        )?;
        if version != SCHEMA_VERSION {
            return Err(Error::Usage(format!(
                "{}: catalog schema version {version}, this evstore reads version \
                 {SCHEMA_VERSION}{}",
                path.escaped(),
                if version < SCHEMA_VERSION {
                    "; a user who can write the store upgrades it by running any evstore command \
                     on it (for example `evstore ls`)"
                } else {
                    ""
                }
            )));
        }
        Ok(catalog)
    }

    /// Open the existing catalog at `path` while the caller holds its exclusive lock (`reindex`
    /// reading the catalog it replaces); a missing file is an error.
    pub fn open_existing_under(_lock: &CatalogExclusiveLock, path: &Path) -> Result<Catalog> {
        Catalog::open_with(path, Creation::Existing, None)
    }

    /// Write every WAL frame into the main file and truncate the WAL, so the file alone holds
    /// the whole catalog (`reindex` does this before it moves or renames a catalog file).
    pub fn checkpoint(&self) -> Result<()> {
        let busy: rusqlite::Result<i64> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0));
        if self.sql(busy)? != 0 {
            return Err(Error::Usage(format!(
                "{}: the catalog is in use; its log could not be checkpointed",
                self.path.escaped()
            )));
        }
        Ok(())
    }

    /// What this catalog says was committed (see [`Commitments`]): records and attestations
    /// named by `ingest` and `rerun` events or held by `packets` and `runs` rows, and ids that
    /// `forget` events acknowledged as lost.
    pub fn commitments(&self) -> Result<Commitments> {
        let mut out = Commitments::default();
        for event in self.events()? {
            let detail: serde_json::Value =
                serde_json::from_str(&event.detail).unwrap_or(serde_json::Value::Null);
            let id_field = |field: &str| {
                detail
                    .get(field)
                    .and_then(|v| v.as_str())
                    .and_then(Blake3Digest::parse_hex)
            };
            match event.kind.as_str() {
                "ingest" => {
                    if let Some(id) = id_field("record") {
                        out.records
                            .insert(id, (event.subject.clone(), Some(event.seq)));
                    }
                }
                "rerun" => {
                    if let Some(id) = id_field("attestation") {
                        out.attestations
                            .insert(id, (event.subject.clone(), Some(event.seq)));
                    }
                }
                "forget" => {
                    if let Some(id) = id_field("id") {
                        out.forgotten.insert(id);
                        out.forget_logged.insert(id);
                    }
                }
                "restore" => {
                    if let Some(id) = id_field("id") {
                        out.forgotten.remove(&id);
                        out.forget_logged.insert(id);
                    }
                }
                _ => {}
            }
        }
        for row in self.packets()? {
            out.records
                .entry(row.record_id)
                .or_insert_with(|| (format!("{}@{}", row.record.name, row.record.version), None));
        }
        for run in self.runs(None)? {
            if let Some(id) = Blake3Digest::parse_hex(&run.attestation) {
                out.attestations
                    .entry(id)
                    .or_insert_with(|| (run.expected_sha256.clone(), None));
            }
        }
        Ok(out)
    }

    /// Acknowledge lost items in one write transaction: `choose` picks, from what is lost now
    /// (given the store's commit `markers`), the items to forget and the detail of each one's
    /// `forget` event (or refuses); the events are appended before the transaction commits, so
    /// two concurrent `forget`s of one item cannot both succeed.
    pub fn forget(
        &mut self,
        markers: &crate::store::refs::Markers,
        choose: impl FnOnce(&[LostItem]) -> Result<Vec<(LostItem, serde_json::Value)>>,
    ) -> Result<Vec<(LostItem, EventRow)>> {
        let wrap = sql_error(&self.path);
        if file_identity(&self.path).ok() != Some(self.identity) {
            return Err(Error::Usage(format!(
                "{}: the catalog was replaced while this command ran (reindex --replace); nothing \
                 was recorded in it; run the command again",
                self.path.escaped()
            )));
        }
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(&wrap)?;
        let result = (|| {
            let mut commitments = self.commitments()?;
            commitments.add_markers(markers);
            let records: HashSet<Blake3Digest> = self
                .packets()?
                .into_iter()
                .map(|row| row.record_id)
                .collect();
            let attestations: HashSet<Blake3Digest> = self
                .runs(None)?
                .into_iter()
                .filter_map(|run| Blake3Digest::parse_hex(&run.attestation))
                .collect();
            let lost = commitments.lost(&records, &attestations);
            let mut out = Vec::new();
            for (item, detail) in choose(&lost)? {
                let event = append_event(
                    &self.conn,
                    &NewEvent {
                        kind: "forget".into(),
                        subject: item.label.clone(),
                        detail,
                    },
                )
                .map_err(&wrap)?;
                out.push((item, event));
            }
            self.conn.execute_batch("COMMIT").map_err(&wrap)?;
            Ok(out)
        })();
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    /// Copy events verbatim (seq, time, hashes) into an empty log: `reindex` carries the old
    /// catalog's log into the new one, so the chain and what it says was committed survive.
    pub fn insert_carried_events(&mut self, events: &[EventRow]) -> Result<()> {
        let wrap = sql_error(&self.path);
        let tx = self.conn.transaction().map_err(&wrap)?;
        for e in events {
            tx.execute(
                "INSERT INTO events (seq, time_unix_nanos, kind, subject, detail, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![e.seq, e.time_unix_nanos, e.kind, e.subject, e.detail, e.prev_hash, e.hash],
            )
            .map_err(&wrap)?;
        }
        tx.commit().map_err(&wrap)
    }

    /// Open the catalog at `path`, creating it (with its schema) if it does not exist.
    pub fn open(path: &Path) -> Result<Catalog> {
        let lock = Catalog::lock_shared(path, &mut None)?;
        Catalog::open_with(path, Creation::CreateIfMissing, Some(lock))
    }

    /// Take the shared side of the catalog lock, waiting while another process holds the
    /// exclusive side (`reindex`, or an `immutable` reader). The wait is said once on stderr and
    /// bounded by [`lock_timeout`] from the first wait (`deadline`, shared by a caller that
    /// takes the lock more than once); past it, the open is refused (exit 2) naming the lock.
    fn lock_shared(
        path: &Path,
        deadline: &mut Option<std::time::Instant>,
    ) -> Result<std::fs::File> {
        // Checked up front, so a malformed value is refused whether or not the lock is busy.
        let timeout = lock_timeout()?;
        let dir_path = catalog_lock_dir(path);
        let dir = std::fs::File::open(dir_path).at(dir_path, "cannot open")?;
        loop {
            match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockShared) {
                Ok(()) => return Ok(dir),
                Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(errno) => return Err(Error::io(dir_path, "cannot lock", errno.into())),
            }
            let now = std::time::Instant::now();
            let until = *deadline.get_or_insert(now + timeout);
            if now >= until {
                return Err(Error::Usage(format!(
                    "{}: gave up waiting for the catalog lock (an flock on this folder) after \
                     {} s: another evstore process (reindex, or a reader of a store it cannot \
                     write) held it all that time; run the command again when it has finished",
                    dir_path.escaped(),
                    timeout.as_secs()
                )));
            }
            if !SAID_WAITING.swap(true, std::sync::atomic::Ordering::Relaxed) {
                eprintln!(
                    "evstore: {}: another evstore process (reindex, or a reader of a store it \
                     cannot write) holds the catalog lock; waiting up to {} s",
                    dir_path.escaped(),
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50).min(until - now));
        }
    }

    fn open_with(
        path: &Path,
        creation: Creation,
        open_lock: Option<std::fs::File>,
    ) -> Result<Catalog> {
        let before = match file_identity(path) {
            Ok(identity) => Some(identity),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if creation == Creation::Existing {
                    return Err(Error::Usage(format!(
                        "{} is missing; rebuild it from the objects with `evstore reindex`",
                        path.escaped()
                    )));
                }
                None
            }
            Err(err) => return Err(Error::io(path, "cannot stat the catalog", err)),
        };
        // No SQLITE_OPEN_URI: a store path is a path, never a URI. No SQLITE_OPEN_CREATE for an
        // existing catalog, so a catalog moved away meanwhile is an error, not a new empty one.
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if creation == Creation::CreateIfMissing {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Catalog {
            path: path.to_path_buf(),
            source,
        })?;
        let identity = file_identity(path).at(path, "cannot stat the catalog")?;
        if before.is_some_and(|before| before != identity) {
            return Err(Error::Usage(format!(
                "{}: the catalog was replaced while it was being opened; run the command again",
                path.escaped()
            )));
        }
        let mut catalog = Catalog {
            conn,
            path: path.to_path_buf(),
            identity,
            _open_lock: open_lock,
            access: CatalogAccess::ReadWrite,
        };
        catalog.prepare()?;
        Ok(catalog)
    }

    fn sql<T>(&self, result: rusqlite::Result<T>) -> Result<T> {
        result.map_err(|source| Error::Catalog {
            path: self.path.clone(),
            source: explain_sqlite_error(source, self.system_errno()),
        })
    }

    /// The OS error (`errno`) behind this connection's most recent failed SQLite call, if any.
    fn system_errno(&self) -> Option<i32> {
        // SAFETY: `handle` is this connection's live `sqlite3*` (it is valid for as long as
        // `self.conn` is, and is used only for this call, on this thread: the connection is
        // `SQLITE_OPEN_NO_MUTEX` and `Connection` is not `Sync`). `sqlite3_system_errno` only
        // reads a field of it.
        let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(self.conn.handle()) };
        (errno != 0).then_some(errno)
    }

    fn prepare(&mut self) -> Result<()> {
        let busy = self.conn.busy_timeout(Duration::from_secs(120));
        self.sql(busy)?;
        let wal = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0));
        self.sql(wal)?;
        let sync = self.conn.pragma_update(None, "synchronous", "FULL");
        self.sql(sync)?;
        let fk = self.conn.pragma_update(None, "foreign_keys", "ON");
        self.sql(fk)?;
        // A 20 000-file packet adds about 10 MiB of index pages; with SQLite's default 2 MiB page
        // cache the inserts spill and re-read pages. 64 MiB is a bound, not an allocation.
        let cache = self.conn.pragma_update(None, "cache_size", -65536);
        self.sql(cache)?;
        // A current schema needs no write: readers must not wait for a long writer (WAL lets
        // them read while it writes). Only an upgrade takes the write lock, and checks again.
        let current: i64 =
            self.sql(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)))?;
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate);
        let tx = tx.map_err(|source| Error::Catalog {
            path: self.path.clone(),
            source,
        })?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| Error::Catalog {
                path: self.path.clone(),
                source,
            })?;
        let upgrade = match version {
            0 => Some(format!(
                "{SCHEMA}{}{SCHEMA_V2}{}",
                append_only_triggers(&APPEND_ONLY_TABLES),
                append_only_triggers(&APPEND_ONLY_TABLES_V2)
            )),
            1 => Some(format!(
                "{SCHEMA_V2}{}",
                append_only_triggers(&APPEND_ONLY_TABLES_V2)
            )),
            _ => None,
        };
        if let Some(mut sql) = upgrade {
            sql.push_str(&format!("PRAGMA user_version = {SCHEMA_VERSION};"));
            tx.execute_batch(&sql).map_err(|source| Error::Catalog {
                path: self.path.clone(),
                source,
            })?;
        }
        match version {
            0 | 1 => {}
            SCHEMA_VERSION => {}
            other => {
                return Err(Error::Usage(format!(
                    "{}: unsupported catalog schema version {other}",
                    self.path.escaped()
                )))
            }
        }
        tx.commit().map_err(|source| Error::Catalog {
            path: self.path.clone(),
            source,
        })
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Begin a write transaction (`BEGIN IMMEDIATE`: writers are serialised), refusing if the
    /// file at the catalog's path is no longer the one this handle opened: `reindex --replace`
    /// moved it aside meanwhile, and a row written now would land in the old catalog.
    fn begin_write(&mut self) -> Result<rusqlite::Transaction<'_>> {
        if file_identity(&self.path).ok() != Some(self.identity) {
            return Err(Error::Usage(format!(
                "{}: the catalog was replaced while this command ran (reindex --replace); nothing \
                 was recorded in it; run the command again",
                self.path.escaped()
            )));
        }
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| Error::Catalog {
                path: self.path.clone(),
                source,
            })
    }

    /// Record a new packet version, unless `name` already has a version with `tree`.
    ///
    /// Runs in one immediate transaction, so concurrent writers are serialised. `make_record` is
    /// called with the new version number inside the transaction; it must build the record and
    /// make its object durable, and return the record's id.
    ///
    /// The new version is above every version of `name` that the catalog, its log or
    /// `version_floor` (the store's commit markers, `refs::Refs::highest_version`) knows, so a
    /// version number is never given to two trees.
    pub fn add_packet(
        &mut self,
        name: &str,
        tree: &Blake3Digest,
        files: &[HashedFile],
        objects: &[ObjectRow],
        version_floor: u64,
        make_record: impl FnOnce(u64) -> Result<(Blake3Digest, PacketRecord)>,
    ) -> Result<AddOutcome> {
        let wrap = sql_error(&self.path);
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
        let latest: Option<i64> = tx
            .query_row(
                "SELECT MAX(version) FROM packets WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .map_err(&wrap)?;
        // A version number, once committed, is never used again for another tree, even when
        // its packet is no longer in the catalog (lost, or dropped by reindex): the log keeps
        // every `ingest` event.
        let logged = highest_logged_version(&tx, name).map_err(&wrap)?;
        let version = latest
            .map_or(0, |v| v as u64)
            .max(logged)
            .max(version_floor)
            + 1;
        let (record_id, record) = make_record(version)?;
        let packet_id =
            insert_packet_rows(&tx, &record_id, &record, files, objects).map_err(&wrap)?;
        append_event(
            &tx,
            &NewEvent {
                kind: "ingest".into(),
                subject: format!("{}@{}", record.name, record.version),
                detail: serde_json::json!({
                    "packet_tree_sha256": record.packet_tree_sha256.to_hex(),
                    "tree": record.tree.to_hex(),
                    "record": record_id.to_hex(),
                    "files": record.file_count,
                    "bytes": record.total_bytes,
                }),
            },
        )
        .map_err(&wrap)?;
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

    /// Append one event in its own transaction.
    pub fn log_event(&mut self, event: &NewEvent) -> Result<EventRow> {
        let wrap = sql_error(&self.path);
        let tx = self.begin_write()?;
        let row = append_event(&tx, event).map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(row)
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

    fn by_prefix(&self, prefix: &str) -> Result<Vec<Result<PacketRow>>> {
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

    /// The whole event log, oldest first.
    pub fn events(&self) -> Result<Vec<EventRow>> {
        let mut stmt = self.sql(self.conn.prepare(
            "SELECT seq, time_unix_nanos, kind, subject, detail, prev_hash, hash FROM events ORDER BY seq",
        ))?;
        let rows = stmt.query_map([], event_from_row);
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// `PRAGMA integrity_check`: an empty list when SQLite finds the file sound.
    pub fn integrity_problems(&self) -> Result<Vec<String>> {
        let mut stmt = self.sql(self.conn.prepare("PRAGMA integrity_check"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0));
        let rows = self.sql(rows)?;
        let mut out = Vec::new();
        for row in rows {
            let text = self.sql(row)?;
            if text != "ok" {
                out.push(text);
            }
        }
        Ok(out)
    }

    /// Start a read transaction and pin its snapshot now: until the guard is dropped, every read
    /// through this catalog sees the state as of this call, whatever other processes commit.
    pub fn read_snapshot(&self) -> Result<ReadSnapshot<'_>> {
        let begin = self.conn.execute_batch("BEGIN DEFERRED");
        self.sql(begin)?;
        let guard = ReadSnapshot { catalog: self };
        let pin = self
            .conn
            .query_row("SELECT count(*) FROM packets", [], |r| r.get::<_, i64>(0));
        self.sql(pin)?;
        Ok(guard)
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

    /// Record a published mirror and its files, with a `mirror` event, in one transaction.
    pub fn add_mirror(&mut self, mirror: &NewMirror, event: &NewEvent) -> Result<i64> {
        let wrap = sql_error(&self.path);
        let tx = self.begin_write()?;
        tx.execute(
            "INSERT INTO mirrors (kb_root, rel_path, packet_id, packet_tree_sha256, dedup, time_unix_nanos) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                mirror.kb_root,
                mirror.rel_path,
                mirror.packet_id,
                mirror.packet_tree_sha256.to_hex(),
                mirror.dedup,
                crate::now_unix_nanos() as i64
            ],
        )
        .map_err(&wrap)?;
        let id = tx.last_insert_rowid();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO mirror_files (mirror_id, path, sha256, stored_as, kb_path) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&wrap)?;
            for file in &mirror.files {
                insert
                    .execute(params![
                        id,
                        file.path,
                        file.sha256.to_hex(),
                        file.stored_as,
                        file.kb_path
                    ])
                    .map_err(&wrap)?;
            }
        }
        append_event(&tx, event).map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    /// Every mirror recorded for the KB at `kb_root` (a canonical path), by path.
    pub fn mirrors_in(&self, kb_root: &str) -> Result<Vec<MirrorRow>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT id, kb_root, rel_path, packet_id, packet_tree_sha256, dedup, time_unix_nanos \
             FROM mirrors WHERE kb_root = ?1 ORDER BY rel_path",
        ))?;
        let rows = stmt.query_map(params![kb_root], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
            ))
        });
        let rows = self.sql(rows)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kb_root, rel_path, packet_id, sha, dedup, time) = self.sql(row)?;
            out.push(MirrorRow {
                id,
                packet_tree_sha256: Sha256Digest::parse_hex(&sha).ok_or_else(|| {
                    Error::corrupt(
                        format!("catalog mirror row {id}"),
                        "packet_tree_sha256 is not valid",
                    )
                })?,
                kb_root,
                rel_path,
                packet_id,
                dedup,
                time_unix_nanos: time,
            });
        }
        Ok(out)
    }

    /// Every KB folder (canonical path) the catalog records a mirror in.
    pub fn mirror_kb_roots(&self) -> Result<Vec<String>> {
        let mut stmt = self.sql(
            self.conn
                .prepare_cached("SELECT DISTINCT kb_root FROM mirrors ORDER BY kb_root"),
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0));
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// How each file of the mirror `mirror_id` was published: (packet path, `copy`, `hardlink`
    /// or `reference`).
    pub fn mirror_file_kinds(&self, mirror_id: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT path, stored_as FROM mirror_files WHERE mirror_id = ?1 ORDER BY path",
        ))?;
        let rows = stmt.query_map(params![mirror_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        });
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// KB-relative paths of earlier mirrors in `kb_root` that hold `sha256`'s bytes as a real file
    /// (copied or hard-linked, not referenced), oldest first. Callers must check the bytes.
    pub fn kb_copies_of(&self, kb_root: &str, sha256: &Sha256Digest) -> Result<Vec<String>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT f.kb_path FROM mirror_files f JOIN mirrors m ON f.mirror_id = m.id \
             WHERE m.kb_root = ?1 AND f.sha256 = ?2 AND f.stored_as != 'reference' ORDER BY m.id, f.path",
        ))?;
        let rows = stmt.query_map(params![kb_root, sha256.to_hex()], |r| r.get::<_, String>(0));
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }

    /// Record a rerun attestation (its object must already be durable), with a `rerun` event.
    pub fn add_run(&mut self, run: &NewRun, event: &NewEvent) -> Result<i64> {
        let wrap = sql_error(&self.path);
        let tx = self.begin_write()?;
        let id = insert_run_rows(&tx, run).map_err(&wrap)?;
        append_event(&tx, event).map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    /// Record a rerun found by `reindex` in an attestation object (no event: the rebuilt
    /// catalog's log starts with its one `reindex` event).
    pub fn insert_reindexed_run(&mut self, run: &NewRun) -> Result<i64> {
        let wrap = sql_error(&self.path);
        let tx = self.conn.transaction().map_err(&wrap)?;
        let id = insert_run_rows(&tx, run).map_err(&wrap)?;
        tx.commit().map_err(&wrap)?;
        Ok(id)
    }

    /// Recorded reruns, oldest first; only those of `packet_id` when given.
    pub fn runs(&self, packet_id: Option<i64>) -> Result<Vec<RunRow>> {
        let mut stmt = self.sql(self.conn.prepare_cached(
            "SELECT id, packet_id, expected_sha256, attestation, verdict, time_unix_nanos, summary \
             FROM runs WHERE ?1 IS NULL OR packet_id = ?1 ORDER BY id",
        ))?;
        let rows = stmt.query_map(params![packet_id], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                packet_id: r.get(1)?,
                expected_sha256: r.get(2)?,
                attestation: r.get(3)?,
                verdict: r.get(4)?,
                time_unix_nanos: r.get(5)?,
                summary: r.get(6)?,
            })
        });
        let rows = self.sql(rows)?;
        rows.map(|r| self.sql(r)).collect()
    }
}

/// A closure that wraps a rusqlite error with the catalog's path.
fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Catalog {
        path: path.clone(),
        source: explain_sqlite_error(source, None),
    }
}

/// Say in SQLite's error message what the user needs to know: "no space left on device" (the
/// OS error, when SQLite recorded one) for a full file system, and that the store is read-only
/// for this user. The error code is kept, so the error's class does not change.
fn explain_sqlite_error(source: rusqlite::Error, errno: Option<i32>) -> rusqlite::Error {
    use rusqlite::ErrorCode;
    let rusqlite::Error::SqliteFailure(code, message) = source else {
        return source;
    };
    let text = message.clone().unwrap_or_else(|| code.to_string());
    // SQLite records the OS error for I/O and open errors only (`SQLITE_FULL` is a failed write
    // with ENOSPC, or a short one, and leaves an older errno in place).
    let os_error = errno.map(std::io::Error::from_raw_os_error);
    let explained = match (code.code, os_error) {
        (ErrorCode::SystemIoFailure | ErrorCode::CannotOpen, Some(os_error)) => {
            format!("{text}: {os_error}")
        }
        (ErrorCode::DiskFull, _) => format!("{text}: no space left on device"),
        (ErrorCode::ReadOnly, _) => format!("{text}: the store is read-only for this user"),
        _ => return rusqlite::Error::SqliteFailure(code, message),
    };
    rusqlite::Error::SqliteFailure(code, Some(explained))
}

fn describe_ref(reference: &PacketRef) -> String {
    match reference {
        PacketRef::Name { name, .. } => format!("{name:?}"),
        PacketRef::Version { name, version } => format!("{name}@{version}"),
        PacketRef::Prefix(prefix) => format!("prefix {prefix}"),
    }
}

fn insert_packet_rows(
    tx: &rusqlite::Transaction<'_>,
    record_id: &Blake3Digest,
    record: &PacketRecord,
    files: &[HashedFile],
    objects: &[ObjectRow],
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO packets (name, version, packet_tree_sha256, tree, record, file_count, total_bytes, \
         created_unix_nanos, source_date_epoch, tool_version, source_path, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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

/// Insert a `runs` row and its attestation's `objects` row; returns the run's id.
fn insert_run_rows(tx: &rusqlite::Transaction<'_>, run: &NewRun) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO runs (packet_id, expected_sha256, attestation, verdict, time_unix_nanos, summary) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            run.packet_id,
            run.expected_sha256.to_hex(),
            run.attestation.to_hex(),
            run.verdict,
            i64::try_from(run.time_unix_nanos).unwrap_or(i64::MAX),
            run.summary.to_string()
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT OR IGNORE INTO objects (id, kind, size) VALUES (?1, 'attestation', ?2)",
        params![run.attestation.to_hex(), run.attestation_size as i64],
    )?;
    Ok(id)
}

/// The highest version that an `ingest` event of the log gave `name` (0 if none).
fn highest_logged_version(tx: &rusqlite::Transaction<'_>, name: &str) -> rusqlite::Result<u64> {
    let prefix = format!("{name}@");
    let mut stmt = tx.prepare_cached(
        "SELECT subject FROM events WHERE kind = 'ingest' AND substr(subject, 1, ?2) = ?1",
    )?;
    let subjects = stmt.query_map(params![prefix, prefix.chars().count() as i64], |r| {
        r.get::<_, String>(0)
    })?;
    let mut highest = 0;
    for subject in subjects {
        if let Some((logged, version)) = split_versioned(&subject?) {
            if logged == name {
                highest = highest.max(version);
            }
        }
    }
    Ok(highest)
}

fn append_event(tx: &Connection, event: &NewEvent) -> rusqlite::Result<EventRow> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_string()),
    };
    let time = crate::now_unix_nanos() as i64;
    let kind = event.kind.replace(['\t', '\n'], " ");
    let subject = event.subject.replace(['\t', '\n'], " ");
    let detail = event.detail.to_string();
    let hash = event_hash(seq, time, &kind, &subject, &prev_hash, &detail).to_hex();
    tx.execute(
        "INSERT INTO events (seq, time_unix_nanos, kind, subject, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![seq, time, kind, subject, detail, prev_hash, hash],
    )?;
    Ok(EventRow {
        seq,
        time_unix_nanos: time,
        kind,
        subject,
        detail,
        prev_hash,
        hash,
    })
}

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: r.get(0)?,
        time_unix_nanos: r.get(1)?,
        kind: r.get(2)?,
        subject: r.get(3)?,
        detail: r.get(4)?,
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
    })
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
);

fn query_packet(
    conn: &Connection,
    tail: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Vec<Result<PacketRow>>> {
    let sql = format!(
        "SELECT id, name, version, packet_tree_sha256, tree, record, file_count, total_bytes, \
         created_unix_nanos, source_date_epoch, tool_version, source_path, note FROM packets {tail}"
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
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(packet_from_raw(row?));
    }
    Ok(out)
}

fn packet_from_raw(raw: RawPacket) -> Result<PacketRow> {
    let (id, name, version, sha, tree, record, files, bytes, created, sde, tool, source, note) =
        raw;
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
        },
    })
}
