//! The SQLite catalog: an index over the object store, and the append-only event log.
//!
//! `<store>/catalog.sqlite` (WAL mode) holds `packets` (one row per archived packet version,
//! mirroring its record object), `entries` (path → digests for every file of every packet, so
//! "which packets contain this SHA-256?" is one query), `objects` (every object the catalog refers
//! to), `events` (an append-only log in which each event carries the SHA-256 of the previous
//! one), and since schema 2 `mirrors` and `mirror_files` (every KB publication) and `runs` (every
//! rerun attestation). Triggers refuse UPDATE and DELETE on all seven.
//!
//! Everything can be rebuilt from the store (`evstore reindex`, or the catch-up of a catalog that
//! is behind): events from `log/`, packets from record objects, runs from attestations, mirrors
//! from mirror lists; the catalog is an index, the store is the truth. The catalog is written only
//! after the objects it refers to are durable.
//!
//! **Architecture Invariant:** this is the only module that speaks SQL.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::digest::{Blake3Digest, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::format::record::PacketRecord;
use crate::format::tree::{FileMeta, HashedFile};
use crate::fsio::{BoundedWait, Lock, LockMode};
use crate::packet_ref::PacketRef;
use crate::text::EscapePath;

mod events;
mod merkle;
mod mirrors;
mod packets;
mod runs;
mod schema;

pub use events::*;
pub use merkle::LogTree;
pub use mirrors::*;
pub use packets::*;
pub use runs::*;
use schema::*;

/// The schema version stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 3;

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

/// An open catalog.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    /// The (device, inode) of the file opened, to notice a catalog replaced meanwhile.
    identity: (u64, u64),
    /// The shared side of the catalog lock (see [`CatalogExclusiveLock`]), held while open; the
    /// exclusive side for an [`CatalogAccess::Immutable`] reader.
    _open_lock: Option<Lock>,
    /// How the file was opened, and why it could not be opened for writing.
    access: CatalogAccess,
    /// The store's event log (`log/`), written before each event commits here; `None` for a
    /// catalog not attached to a store's log (a reader; a layout-1 store's old binary path).
    log: Option<crate::store::log::SharedLog>,
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
    _lock: Lock,
}

/// The (device, inode) of the file at `path`.
/// How long a catalog statement waits for another process's lock before it fails (SQLite's
/// busy handler), and how long an open waits to put a new catalog in WAL mode.
const CATALOG_BUSY_TIMEOUT: Duration = Duration::from_secs(120);

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
        match Lock::try_take(dir, LockMode::Exclusive).at(dir_path, "cannot lock")? {
            Some(lock) => Ok(CatalogExclusiveLock { _lock: lock }),
            None => Err(Error::Busy(format!(
                "{}: the catalog is open in another evstore process; run {command} again when \
                 no evstore command uses this store",
                path.escaped()
            ))),
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
    fn open_plain_read_only(path: &Path, lock: Lock) -> Result<Catalog> {
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
        let Some(dir) = Lock::try_take(dir, LockMode::Exclusive).at(dir_path, "cannot lock")?
        else {
            return Ok(None);
        };
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
        lock: Lock,
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
            log: None,
        };
        let busy = catalog.conn.busy_timeout(CATALOG_BUSY_TIMEOUT);
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
            return Err(Error::Busy(format!(
                "{}: the catalog is in use; its log could not be checkpointed",
                self.path.escaped()
            )));
        }
        Ok(())
    }

    /// Open the catalog at `path`, creating it (with its schema) if it does not exist.
    pub fn open(path: &Path) -> Result<Catalog> {
        let lock = Catalog::lock_shared(path, &mut None)?;
        Catalog::open_with(path, Creation::CreateIfMissing, Some(lock))
    }

    /// Take the shared side of the catalog lock, waiting while another process holds the
    /// exclusive side (`reindex`, or an `immutable` reader). The wait is announced once (the
    /// a notice, see [`crate::notice`]) and bounded by
    /// [`crate::fsio::lock_timeout`] from the first wait (`deadline`, shared by a caller that
    /// takes the lock more than once); past it, the open is refused (exit 2) naming the lock.
    fn lock_shared(path: &Path, deadline: &mut Option<std::time::Instant>) -> Result<Lock> {
        // Checked up front, so a malformed value is refused whether or not the lock is busy.
        let timeout = crate::fsio::lock_timeout()?;
        let dir_path = catalog_lock_dir(path);
        let dir = std::fs::File::open(dir_path).at(dir_path, "cannot open")?;
        let mut wait = BoundedWait {
            timeout,
            deadline: *deadline,
            holder: "another evstore process (reindex, or a reader of a store it cannot write) \
                     holds the catalog lock",
        };
        let taken = Lock::wait_bounded(dir, dir_path, LockMode::Shared, &mut wait)
            .at(dir_path, "cannot lock")?;
        *deadline = wait.deadline;
        taken.ok_or_else(|| {
            Error::Busy(format!(
                "{}: gave up waiting for the catalog lock (an flock on this folder) after {} s: \
                 another evstore process (reindex, or a reader of a store it cannot write) held \
                 it all that time; run the command again when it has finished",
                dir_path.escaped(),
                timeout.as_secs()
            ))
        })
    }

    fn open_with(path: &Path, creation: Creation, open_lock: Option<Lock>) -> Result<Catalog> {
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
            log: None,
        };
        catalog.prepare()?;
        catalog.fill_in_merkle_nodes()?;
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
        let busy = self.conn.busy_timeout(CATALOG_BUSY_TIMEOUT);
        self.sql(busy)?;
        self.enter_wal_mode()?;
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
                "{SCHEMA}{}{SCHEMA_V2}{}{SCHEMA_V3}",
                append_only_triggers(&APPEND_ONLY_TABLES),
                append_only_triggers(&APPEND_ONLY_TABLES_V2)
            )),
            1 => Some(format!(
                "{SCHEMA_V2}{}{SCHEMA_V3}",
                append_only_triggers(&APPEND_ONLY_TABLES_V2)
            )),
            2 => Some(SCHEMA_V3.to_string()),
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
            0..=2 => {}
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

    /// Put the catalog in WAL mode, which is a property of the file: after the first open there
    /// is nothing to do and no lock is taken. Turning a new file to WAL needs the file to
    /// itself, and SQLite does not call the busy handler for it: another process opening the
    /// same new catalog at that moment makes the pragma fail at once ("database is locked") or
    /// leave the mode unchanged. So this waits itself, within the catalog's busy timeout,
    /// reading the mode again after each pause (the other process has usually converted it).
    fn enter_wal_mode(&self) -> Result<()> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let mode = self
                .conn
                .query_row("PRAGMA journal_mode", [], |row| row.get::<_, String>(0));
            if self.sql(mode)?.eq_ignore_ascii_case("wal") {
                return Ok(());
            }
            let converted = self
                .conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| {
                    row.get::<_, String>(0)
                });
            let still = match converted {
                Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
                Ok(mode) => mode,
                Err(err) if err.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                    "locked by another process".to_string()
                }
                Err(err) => return self.sql(Err(err)),
            };
            if started.elapsed() >= CATALOG_BUSY_TIMEOUT {
                return Err(Error::Busy(format!(
                    "{}: the catalog could not be put in WAL mode within {} s (its journal mode \
                     stayed: {still}); another process keeps it open; run the command again",
                    self.path.escaped(),
                    CATALOG_BUSY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
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
