//! The append-only object store: the store folder, its layout, and reading objects back.
//!
//! A store is a folder:
//!
//! ```text
//! <store>/VERSION          "evstore store 2\n": marks the folder as a store (layout 2: with `log/`)
//! <store>/objects/ab/cd…   one file per object, named by the hex BLAKE3 of its payload
//! <store>/packs/<hex>.pack many small objects in one file (format: the `pack` module)
//! <store>/refs/…           commit markers (see [`refs`]), named keys created once
//! <store>/log/…            the event log (see [`log`]), one named key per event
//! <store>/tmp/             staging area for objects being written; its `flock` is the writers' lock
//! <store>/catalog.sqlite   the catalog (see the `catalog` module; this module never opens it)
//! ```
//!
//! The rooms of this folder:
//! - [`Store`] (here): opening and creating a store, its layout, the writers' lock, and verified
//!   reads of objects through its backend.
//! - [`backend`]: the [`ObjectBackend`] and [`NamedKeys`] traits every backend implements, in
//!   bytes and streams only.
//! - [`local`]: [`LocalBackend`], the store folder; [`memory`]: [`MemoryBackend`], a map the unit
//!   tests use.
//! - [`batch`]: [`ObjectBatch`], the writes of one operation, made durable together, and the pack
//!   writer.
//! - [`location`]: refusals of store and output paths before anything is created, and the
//!   store URL `s3://BUCKET/PREFIX`.
//! - `s3` (feature `s3`): `S3Backend`, a store in an S3-compatible bucket.
//! - [`refs`]: the commit markers, written through [`NamedKeys`].
//!
//! **Architecture Invariant:** this module never touches SQLite, and never replaces stored bytes.

pub mod backend;
pub mod batch;
pub mod local;
pub mod location;
pub mod log;
pub mod memory;
pub mod refs;
#[cfg(feature = "s3")]
pub mod s3;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::digest::Blake3Digest;
use crate::error::{Error, IoContext, Result};
use crate::format::object::{self, DecodeError, Decoded, ObjectKind};
use crate::fsio::{rename_no_replace, sync_folder, Lock, LockMode};
use crate::text::EscapePath;

pub use backend::{
    KeyCreated, KeyRead, ListedName, ListedObject, NamedKeys, ObjectBackend, ObjectLocation,
    Published, Put, PutName, PutSource, SpooledFile,
};
pub use batch::{Added, ObjectBatch, StreamWriter};
pub use local::LocalBackend;
pub use location::{
    check_local_path, check_local_store_location, check_store_location, refuse_inside_store,
    refuse_store_inside_folder, resolved_path, S3Url,
};
pub use memory::MemoryBackend;

/// The contents of `<store>/VERSION`: layout 2, whose event log is also the `log/` key space.
pub const STORE_VERSION_TEXT: &str = "evstore store 2\n";

/// The `VERSION` of a store made before `log/` (layout 1): this evstore opens it and upgrades it
/// in place (`ops::markers::attach_log`).
pub const STORE_VERSION_1_TEXT: &str = "evstore store 1\n";

/// A batch packs its small objects once it has this many; with fewer, they are loose files.
pub const PACK_MIN_OBJECTS: usize = 64;

/// The largest payload [`Store::read_small_object`] accepts (tree nodes and records are far
/// smaller: a node of 100 000 entries is about 10 MiB).
pub const MAX_SMALL_OBJECT: u64 = 256 * 1024 * 1024;

/// A `Vec` writer that refuses to grow past `cap`.
struct CappedBuffer {
    bytes: Vec<u8>,
    cap: u64,
    exceeded: bool,
}

impl Write for CappedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() as u64 + buf.len() as u64 > self.cap {
            self.exceeded = true;
            return Err(io::Error::other("payload too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The catalog's file name inside a store.
pub const CATALOG_FILE_NAME: &str = "catalog.sqlite";

/// A store: its layout, its object backend, and the local folder that holds its catalog and
/// `tmp/` (the store folder itself, or the per-machine cache folder of an S3 store).
pub struct Store {
    /// The store folder, or the store URL of an S3 store (how messages name the store).
    root: PathBuf,
    /// Where the catalog and `tmp/` are: `root` for a store folder, the cache folder
    /// (`$EVSTORE_CACHE/stores/…`) for an S3 store.
    local: PathBuf,
    /// True for a store whose catalog is a per-machine cache of a bucket.
    remote: bool,
    backend: std::sync::Arc<dyn ObjectBackend>,
    /// The layout its `VERSION` names (1 or 2).
    layout: u32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

impl Store {
    /// Create a new, empty store at `root`. `root` may exist if it is an empty folder.
    pub fn init(root: &Path) -> Result<Store> {
        Store::init_with(root, |_| Ok(()))
    }

    /// Create a new store at `root`, letting `prepare` add files (the catalog) before the store
    /// becomes visible: `VERSION`, which marks a folder as a store, is written last. When `root`
    /// does not exist, the store is built in a sibling temp folder and renamed into place without
    /// replacing anything, so a concurrent creator either wins whole or finds a complete store
    /// ([`Error::AlreadyExists`] then).
    pub fn init_with(root: &Path, prepare: impl FnOnce(&Path) -> Result<()>) -> Result<Store> {
        check_local_store_location(root)?;
        if root.join("VERSION").exists() {
            return Err(Error::AlreadyExists(format!(
                "{} is already an evstore store",
                root.escaped()
            )));
        }
        match fs::read_dir(root) {
            Ok(mut items) => {
                if items.next().is_some() {
                    return Err(Error::Usage(format!(
                        "{} exists and is not empty; a store needs a new or empty folder",
                        root.escaped()
                    )));
                }
                populate_store(root, prepare)?;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let parent = match root.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                fs::create_dir_all(&parent).at(&parent, "cannot create folder")?;
                let staged = tempfile::Builder::new()
                    .prefix(".evstore-init-")
                    .tempdir_in(&parent)
                    .at(&parent, "cannot create a temporary folder in")?;
                populate_store(staged.path(), prepare)?;
                match rename_no_replace(staged.path(), root) {
                    Ok(()) => {
                        let _ = staged.keep();
                        sync_folder(&parent)?;
                    }
                    Err(err)
                        if err.kind() == io::ErrorKind::AlreadyExists
                            || err.kind() == io::ErrorKind::DirectoryNotEmpty =>
                    {
                        return Err(Error::AlreadyExists(format!(
                            "{} was created meanwhile",
                            root.escaped()
                        )));
                    }
                    Err(err) => return Err(Error::io(root, "cannot create store folder", err)),
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotADirectory => {
                return Err(not_a_folder(root));
            }
            Err(err) => return Err(Error::io(root, "cannot use as store folder", err)),
        }
        Store::open(root)
    }

    /// Create a new store at `root`, which must not exist, holding what `fill` writes into it.
    /// The store is built in a sibling temp folder `.evstore-init-XXXXXX` (`prepare` adds the
    /// catalog, as for [`Store::init_with`]), `fill` runs on it opened as a store, and only if
    /// `fill` succeeds is the folder renamed to `root` without replacing anything. So a first
    /// ingest that is refused leaves no store behind, nor any parent folder it created.
    /// `Ok(None)` when `root` exists already or appeared meanwhile: the caller then uses that
    /// store (what `fill` wrote is discarded with the temp folder).
    pub fn create_filled<T>(
        root: &Path,
        prepare: impl FnOnce(&Path) -> Result<()>,
        fill: impl FnOnce(&Store) -> Result<T>,
    ) -> Result<Option<(Store, T)>> {
        check_local_store_location(root)?;
        if fs::symlink_metadata(root).is_ok() {
            return Ok(None);
        }
        // A file where a folder of the path should be: say which, not "Not a directory".
        if root
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .any(|p| fs::metadata(p).is_ok_and(|m| !m.is_dir()))
        {
            return Err(not_a_folder(root));
        }
        let parent = match root.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let created = create_missing_folders(&parent)?;
        let result = (|| {
            let staged = match tempfile::Builder::new()
                .prefix(".evstore-init-")
                .tempdir_in(&parent)
            {
                Ok(staged) => staged,
                Err(err) if err.kind() == io::ErrorKind::NotADirectory => {
                    return Err(not_a_folder(root))
                }
                Err(err) => {
                    return Err(Error::io(
                        &parent,
                        "cannot create a temporary folder in",
                        err,
                    ))
                }
            };
            populate_store(staged.path(), prepare)?;
            let value = {
                let store = Store::open(staged.path())?;
                fill(&store)?
            };
            match rename_no_replace(staged.path(), root) {
                Ok(()) => {
                    let _ = staged.keep();
                    sync_folder(&parent)?;
                    Ok(Some((Store::open(root)?, value)))
                }
                Err(err)
                    if err.kind() == io::ErrorKind::AlreadyExists
                        || err.kind() == io::ErrorKind::DirectoryNotEmpty =>
                {
                    Ok(None)
                }
                Err(err) => Err(Error::io(root, "cannot create store folder", err)),
            }
        })();
        if !matches!(result, Ok(Some(_))) {
            // Remove the folders this call created (only while empty), newest first.
            for folder in created.iter().rev() {
                let _ = fs::remove_dir(folder);
            }
        }
        result
    }

    /// Open the existing store at `root`: a store folder, or an S3 store URL
    /// (`s3://BUCKET/PREFIX`), whose catalog lives in this machine's cache folder.
    pub fn open(root: &Path) -> Result<Store> {
        if let Some(url) = S3Url::parse(root)? {
            return Store::open_s3(&url);
        }
        check_local_store_location(root)?;
        let meta = fs::metadata(root).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                Error::Usage(format!(
                    "no evstore store at {}; create one with `evstore init --store {}` (or set --store / EVSTORE_STORE)",
                    root.escaped(),
                    root.escaped()
                ))
            } else {
                Error::io(root, "cannot open store", err)
            }
        })?;
        if !meta.is_dir() {
            return Err(Error::Usage(format!(
                "{} is not a folder, so it cannot be an evstore store",
                root.escaped()
            )));
        }
        let version_path = root.join("VERSION");
        let version = fs::read(&version_path).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                Error::Usage(format!(
                    "{} is not an evstore store (it has no VERSION file); create one with `evstore init --store DIR`",
                    root.escaped()
                ))
            } else {
                Error::io(&version_path, "cannot read", err)
            }
        })?;
        let layout = if version == STORE_VERSION_TEXT.as_bytes() {
            2
        } else if version == STORE_VERSION_1_TEXT.as_bytes() {
            1
        } else {
            return Err(Error::Usage(format!(
                "{}: unsupported store version {:?}: this evstore ({}) reads stores of layout 1 \
                 and 2 (\"evstore store 2\\n\"); a newer evstore made it, or it is damaged",
                version_path.escaped(),
                String::from_utf8_lossy(&version),
                crate::TOOL_VERSION
            )));
        };
        refuse_symlinked_store_folders(root)?;
        Ok(Store {
            root: root.to_path_buf(),
            local: root.to_path_buf(),
            remote: false,
            backend: std::sync::Arc::new(LocalBackend::new(root)),
            layout,
        })
    }

    /// Open the S3 store at `url`: its `VERSION` key must name layout 2; its catalog and `tmp/`
    /// are in this machine's cache folder for the store ([`s3::S3Backend::cache_folder`]),
    /// created if missing.
    #[cfg(feature = "s3")]
    fn open_s3(url: &S3Url) -> Result<Store> {
        let backend = s3::S3Backend::open(url)?;
        match backend.read_key("VERSION", 256)? {
            KeyRead::Found(bytes) if bytes == STORE_VERSION_TEXT.as_bytes() => {}
            KeyRead::Missing => {
                // A store whose VERSION key was deleted still holds its log and objects: that is
                // damage to report, not a place to offer `init` (which refuses it anyway).
                for space in ["log/", "refs/", "packs/", "objects/"] {
                    if backend.key_space_exists(space)? {
                        return Err(Error::corrupt(
                            format!("{url}/VERSION"),
                            format!(
                                "missing, while {url}/{space} holds keys: this looks like an \
                                 evstore store whose VERSION key was deleted; nothing is read \
                                 or written until it is back (its bytes are \
                                 \"evstore store 2\\n\")"
                            ),
                        ));
                    }
                }
                return Err(Error::Usage(format!(
                    "no evstore store at {url} (it has no VERSION key); create one with \
                     `evstore init --store {url}`"
                )));
            }
            KeyRead::Found(bytes) => {
                return Err(Error::Usage(format!(
                    "{url}/VERSION: unsupported store version {:?}: this evstore ({}) reads S3 \
                     stores of layout 2 (\"evstore store 2\\n\"); a newer evstore made it, or it \
                     is not an evstore store",
                    String::from_utf8_lossy(&bytes),
                    crate::TOOL_VERSION
                )))
            }
            KeyRead::TooLarge | KeyRead::Unreadable(_) => {
                return Err(Error::Usage(format!(
                    "{url}/VERSION is not an evstore VERSION key (too large or unreadable)"
                )))
            }
        }
        let local = backend.cache_folder()?;
        let tmp = local.join("tmp");
        fs::create_dir_all(&tmp).at(&tmp, "cannot create the cache folder")?;
        Ok(Store {
            root: PathBuf::from(url.to_string()),
            local,
            remote: true,
            backend: std::sync::Arc::new(backend),
            layout: 2,
        })
    }

    #[cfg(not(feature = "s3"))]
    fn open_s3(url: &S3Url) -> Result<Store> {
        Err(Error::Usage(location::s3_not_available(url)))
    }

    /// True for an S3 store, whose catalog is this machine's cache of the bucket.
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The store at `root` with another object backend (the memory backend of the unit tests):
    /// `root` holds only `tmp/`, where batches spool and whose `flock` is the writers' lock.
    pub fn with_backend(root: &Path, backend: Box<dyn ObjectBackend>) -> Store {
        Store {
            root: root.to_path_buf(),
            local: root.to_path_buf(),
            remote: false,
            backend: std::sync::Arc::from(backend),
            layout: 2,
        }
    }

    /// Refuse (exit 2), before anything is done, a command that writes to a store this user
    /// cannot write: the store folder, `objects/`, `tmp/`, `packs/` and the catalog files must
    /// be writable (effective ids; a read-only mount counts as not writable).
    pub fn check_writable(&self) -> Result<()> {
        let catalog = self.catalog_path();
        let sidecar = |suffix: &str| {
            let mut name = catalog.as_os_str().to_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        let mut checks = vec![
            (self.local.clone(), true),
            (self.tmp_path(), true),
            (catalog.clone(), !self.remote),
            (sidecar("-wal"), false),
            (sidecar("-shm"), false),
        ];
        if !self.remote {
            checks.extend([
                (self.root.join("objects"), true),
                (self.root.join("packs"), false),
                (self.root.join(crate::store::refs::REFS_DIR_NAME), false),
            ]);
        }
        for (path, must_exist) in checks {
            match rustix::fs::accessat(
                rustix::fs::CWD,
                &path,
                rustix::fs::Access::WRITE_OK,
                rustix::fs::AtFlags::EACCESS,
            ) {
                Ok(()) => {}
                Err(rustix::io::Errno::NOENT) if !must_exist => {}
                Err(
                    errno @ (rustix::io::Errno::ACCESS
                    | rustix::io::Errno::PERM
                    | rustix::io::Errno::ROFS),
                ) if self.remote => {
                    return Err(Error::Usage(format!(
                        "{}: this machine's cache folder of the store {} is read-only for this \
                         user ({}); set $EVSTORE_CACHE to a folder you can write",
                        path.escaped(),
                        self.root.escaped(),
                        io::Error::from(errno)
                    )))
                }
                Err(
                    errno @ (rustix::io::Errno::ACCESS
                    | rustix::io::Errno::PERM
                    | rustix::io::Errno::ROFS),
                ) => {
                    return Err(Error::Usage(format!(
                        "{}: the store is read-only for this user ({}); this command writes to \
                         the store. Commands that only read it (ls, show, manifest, cat, export, \
                         log, runs, fsck, verify --against, diff, kb verify) work",
                        path.escaped(),
                        io::Error::from(errno)
                    )))
                }
                // Anything else (a missing folder, ...) is reported by the command itself.
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// The store folder (for an S3 store, its URL, which is how messages name it).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder holding the catalog and `tmp/`: the store folder, or this machine's cache
    /// folder of an S3 store.
    pub fn local_folder(&self) -> &Path {
        &self.local
    }

    /// The catalog file of this store (of an S3 store: this machine's cache of the bucket).
    pub fn catalog_path(&self) -> PathBuf {
        self.local.join(CATALOG_FILE_NAME)
    }

    /// The staging folder of this store (of an S3 store: in this machine's cache folder).
    pub fn tmp_path(&self) -> PathBuf {
        self.local.join("tmp")
    }

    /// The object backend.
    pub fn backend(&self) -> &dyn ObjectBackend {
        &*self.backend
    }

    /// The object backend, shared (the catalog keeps it to append to `log/`).
    pub fn shared_backend(&self) -> std::sync::Arc<dyn ObjectBackend> {
        self.backend.clone()
    }

    /// The layout the store's `VERSION` names: 1 (made before `log/`) or 2.
    pub fn layout(&self) -> u32 {
        self.layout
    }

    /// Move a layout-1 store's `VERSION` to layout 2 (its `log/` exists whole): a temp file,
    /// fsynced, renamed over `VERSION`, the folder fsynced. `VERSION` is the one store file ever
    /// replaced: it names the layout, it is no evidence. Older binaries refuse the store after.
    ///
    /// # Errors
    ///
    /// I/O errors writing or renaming it.
    pub fn mark_layout_2(&mut self) -> Result<()> {
        let version = self.root.join("VERSION");
        let temp = self
            .root
            .join(format!("VERSION.upgrade-{}", std::process::id()));
        let mut file = File::create(&temp).at(&temp, "cannot write")?;
        file.write_all(STORE_VERSION_TEXT.as_bytes())
            .and_then(|()| file.sync_all())
            .at(&temp, "cannot write")?;
        if let Err(err) = fs::rename(&temp, &version) {
            let _ = fs::remove_file(&temp);
            return Err(Error::io(&version, "cannot replace", err));
        }
        sync_folder(&self.root)?;
        self.layout = 2;
        Ok(())
    }

    /// Start a batch of writes. The batch holds the shared side of the writers' lock until it
    /// is dropped, so [`Store::gc_temp`] never removes a temp file a live writer still needs.
    ///
    /// # Errors
    ///
    /// The writers' lock cannot be taken (the error names `<store>/tmp` and the reason): a batch
    /// never writes without it.
    pub fn batch(&self) -> Result<ObjectBatch<'_>> {
        self.batch_knowing(std::collections::HashSet::new())
    }

    /// [`Store::batch`], told which objects are stored already (the ids the catalog holds): the
    /// batch skips them without asking the backend, which matters where asking is a request
    /// (see [`ObjectBackend::exists_is_cheap`]).
    ///
    /// # Errors
    ///
    /// As [`Store::batch`].
    pub fn batch_knowing(
        &self,
        known: std::collections::HashSet<Blake3Digest>,
    ) -> Result<ObjectBatch<'_>> {
        let writer_lock = self.lock_writers_shared()?;
        Ok(ObjectBatch::new(&*self.backend, self.tmp_path(), writer_lock).knowing(known))
    }

    /// Take the shared side of the writers' lock (an `flock` on `<store>/tmp`), waiting while
    /// `reindex` or `gc-temp` holds the exclusive side. Every writer of objects or commit
    /// markers holds it while it writes.
    ///
    /// # Errors
    ///
    /// `<store>/tmp` cannot be opened or locked; the error names it and the reason.
    pub fn lock_writers_shared(&self) -> Result<Lock> {
        let tmp = self.tmp_path();
        let dir = File::open(&tmp).at(&tmp, "cannot open the writers' lock (this folder)")?;
        Lock::wait(dir, LockMode::Shared).at(&tmp, "cannot take the writers' lock (a shared flock)")
    }

    /// Remove the temp files interrupted writes left in `<store>/tmp`. Takes the exclusive side of
    /// the writers' lock without waiting: while any write is in progress it refuses (nothing is
    /// removed), so it can never take a file from under a live writer.
    pub fn gc_temp(&self) -> Result<GcTempReport> {
        let tmp = self.tmp_path();
        let _lock = self.lock_writers_exclusive("gc-temp")?;
        let mut report = GcTempReport::default();
        for entry in fs::read_dir(&tmp).at(&tmp, "cannot list")? {
            let entry = entry.at(&tmp, "cannot list")?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).at(&path, "cannot stat")?;
            if meta.is_dir() {
                fs::remove_dir_all(&path).at(&path, "cannot remove")?;
            } else {
                fs::remove_file(&path).at(&path, "cannot remove")?;
            }
            report.removed += 1;
            report.bytes += meta.len();
        }
        sync_folder(&tmp)?;
        Ok(report)
    }

    /// Take the exclusive side of the writers' lock (an `flock` on `<store>/tmp`) without
    /// waiting, for `command`, which must not run while anything writes objects. Released when
    /// the returned handle is dropped.
    pub fn lock_writers_exclusive(&self, command: &str) -> Result<Lock> {
        let tmp = self.tmp_path();
        let dir = File::open(&tmp).at(&tmp, "cannot open")?;
        match Lock::try_take(dir, LockMode::Exclusive).at(&tmp, "cannot lock")? {
            Some(lock) => Ok(lock),
            None => Err(Error::Busy(format!(
                "{}: a write is in progress; run {command} again when no evstore process writes \
                 to this store",
                tmp.escaped()
            ))),
        }
    }

    /// Stream-decode object `id` into `out`, verifying it. `NotFound` if it is absent.
    pub fn read_object<W: Write>(&self, id: &Blake3Digest, out: W) -> Result<Decoded> {
        self.read_object_from(id, None, out)
    }

    /// [`Store::read_object`] into `out`, a writer of the file at `dest`: a failed write (a full
    /// disk, say) is reported as `dest: cannot write: ...`, not as a failure to read the object.
    pub fn read_object_into<W: Write>(
        &self,
        id: &Blake3Digest,
        dest: &Path,
        out: W,
    ) -> Result<Decoded> {
        let mut tap = WriteErrorTap {
            inner: out,
            failed: None,
        };
        let result = self.read_object(id, &mut tap);
        match (result, tap.failed) {
            (Err(Error::Io { .. }), Some(write_error)) => {
                Err(Error::io(dest, "cannot write", write_error))
            }
            (result, _) => result,
        }
    }

    /// Like [`Store::read_object`], for one listed copy of the object (fsck checks every copy).
    pub fn read_object_at<W: Write>(
        &self,
        id: &Blake3Digest,
        location: &ObjectLocation,
        out: W,
    ) -> Result<Decoded> {
        self.read_object_from(id, Some(location), out)
    }

    fn read_object_from<W: Write>(
        &self,
        id: &Blake3Digest,
        location: Option<&ObjectLocation>,
        out: W,
    ) -> Result<Decoded> {
        let what = match location {
            Some(location @ ObjectLocation::Packed { .. }) => {
                format!("object {id} (in {location})")
            }
            _ => format!("object {id}"),
        };
        let stored = match location {
            Some(location) => self.backend.open_at(location)?,
            None => self
                .backend
                .open(id)?
                .ok_or_else(|| Error::corrupt(&what, "missing from the store"))?,
        };
        object::decode_object(stored, id, out).map_err(|err| match err {
            DecodeError::Corrupt(reason) => Error::corrupt(what, reason),
            DecodeError::Io(source) => Error::Io {
                path: PathBuf::from(self.backend.describe()).join(id.to_hex()),
                action: "cannot read object",
                source,
            },
        })
    }

    /// Read a small object (tree node, record) fully into memory, verified. A payload larger
    /// than [`MAX_SMALL_OBJECT`] is corruption: a damaged header or zstd frame cannot make this
    /// allocate without bound.
    pub fn read_small_object(&self, id: &Blake3Digest) -> Result<(ObjectKind, Vec<u8>)> {
        self.read_small_object_from(id, None)
    }

    /// Like [`Store::read_small_object`], for one listed copy of the object.
    pub fn read_small_object_at(
        &self,
        id: &Blake3Digest,
        location: &ObjectLocation,
    ) -> Result<(ObjectKind, Vec<u8>)> {
        self.read_small_object_from(id, Some(location))
    }

    fn read_small_object_from(
        &self,
        id: &Blake3Digest,
        location: Option<&ObjectLocation>,
    ) -> Result<(ObjectKind, Vec<u8>)> {
        let mut out = CappedBuffer {
            bytes: Vec::new(),
            cap: MAX_SMALL_OBJECT,
            exceeded: false,
        };
        let decoded = self
            .read_object_from(id, location, &mut out)
            .map_err(|err| {
                if out.exceeded {
                    Error::corrupt(
                        format!("object {id}"),
                        format!(
                        "payload larger than {MAX_SMALL_OBJECT} bytes for a tree node, record, attestation or mirror list"
                    ),
                    )
                } else {
                    err
                }
            })?;
        Ok((decoded.header.kind, out.bytes))
    }
}

/// What [`Store::gc_temp`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcTempReport {
    /// Temp entries removed.
    pub removed: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// Create `folder` and its missing ancestors; returns the folders created, outermost first.
fn create_missing_folders(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut current = folder;
    while fs::symlink_metadata(current).is_err() {
        missing.push(current.to_path_buf());
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => break,
        }
    }
    missing.reverse();
    let mut created = Vec::new();
    for path in missing {
        match fs::create_dir(&path) {
            Ok(()) => created.push(path),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => {
                for folder in created.iter().rev() {
                    let _ = fs::remove_dir(folder);
                }
                return Err(Error::io(&path, "cannot create folder", err));
            }
        }
    }
    Ok(created)
}

/// Fill a new store folder: `objects/`, `tmp/`, whatever `prepare` adds, then `VERSION`, synced.
fn populate_store(dir: &Path, prepare: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    for sub in ["objects", "tmp", crate::store::refs::REFS_DIR_NAME] {
        let path = dir.join(sub);
        fs::create_dir(&path).at(&path, "cannot create store folder")?;
    }
    prepare(dir)?;
    let version = dir.join("VERSION");
    let mut file = File::create(&version).at(&version, "cannot write")?;
    file.write_all(STORE_VERSION_TEXT.as_bytes())
        .and_then(|()| file.sync_all())
        .at(&version, "cannot write")?;
    sync_folder(dir)
}

/// Passes writes through and keeps (a copy of) the first write error, so a caller can tell a
/// failed write from a failed read when both surface as one `io::Error`.
struct WriteErrorTap<W> {
    inner: W,
    failed: Option<io::Error>,
}

impl<W> WriteErrorTap<W> {
    fn keep<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(err) = &result {
            if self.failed.is_none() {
                self.failed = Some(match err.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(err.kind(), err.to_string()),
                });
            }
        }
        result
    }
}

impl<W: Write> Write for WriteErrorTap<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.inner.write(buf);
        self.keep(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.keep(result)
    }
}

/// The error for a store path that is, or lies below, something that is not a folder: name
/// which path is the file, instead of the bare "Not a directory (os error 20)".
fn not_a_folder(root: &Path) -> Error {
    let culprit = root
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .find(|p| fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()));
    let kind = |path: &Path| match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            "a symbolic link to something that is not a folder"
        }
        _ => "a file, not a folder",
    };
    match culprit {
        Some(path) if path == root => Error::Usage(format!(
            "{} is {}; a store needs a new or empty folder",
            root.escaped(),
            kind(path)
        )),
        Some(path) => Error::Usage(format!(
            "{}: {} is {}, so no store can be created below it",
            root.escaped(),
            path.escaped(),
            kind(path)
        )),
        None => Error::Usage(format!(
            "{}: a component of the path is not a folder",
            root.escaped()
        )),
    }
}

#[cfg(test)]
mod tests;

/// The store's own folders, each of which must be a real folder where it exists (`refs/` is
/// checked by `refs::Refs::check_shape`, which `fsck` reports as a problem).
const STORE_FOLDERS: [&str; 3] = ["objects", "packs", "tmp"];

/// Refuse a store whose `objects/`, `packs/` or `tmp/` is a symbolic link (or not a folder):
/// evstore would write objects and temp files through it, and `gc-temp` would delete files
/// wherever it points. A folder that does not exist yet is fine (created on use).
fn refuse_symlinked_store_folders(root: &Path) -> Result<()> {
    for name in STORE_FOLDERS {
        let path = root.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) => {
                let what = if meta.file_type().is_symlink() {
                    "is a symbolic link"
                } else {
                    "is not a folder"
                };
                return Err(Error::corrupt(
                    format!("store folder {}", path.escaped()),
                    format!(
                        "{what}; evstore never reads or writes a store through a link: put a real \
                         folder there"
                    ),
                ));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(&path, "cannot stat", err)),
        }
    }
    Ok(())
}
