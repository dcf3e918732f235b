//! The append-only object store: where bytes live, addressed by BLAKE3.
//!
//! A store is a folder:
//!
//! ```text
//! <store>/VERSION          "evstore store 1\n": marks the folder as a store
//! <store>/objects/ab/cd…   one file per object, named by the hex BLAKE3 of its payload
//! <store>/packs/<hex>.pack many small objects in one file (format: the `pack` module)
//! <store>/tmp/             staging area for objects being written
//! <store>/catalog.sqlite   the catalog (see the `catalog` module; this module never opens it)
//! ```
//!
//! Object I/O goes through the small [`ObjectBackend`] interface (exists, open, stat, list,
//! stage, publish) so that another backend (S3-compatible, say) can be added without touching the
//! tree, catalog or CLI code. [`LocalBackend`] is the only backend today.
//!
//! Writes are batched: every new object of an operation is first written to a temp file in
//! `tmp/` ([`ObjectBatch`]); [`ObjectBatch::commit`] then makes all of them durable at once (one
//! `syncfs`), moves each into place without ever replacing an existing file (an object that is
//! already there counts as success), and makes the new names durable (a second `syncfs`). A batch
//! dropped without commit deletes its temp files. An object file therefore exists under its final
//! name only once its bytes are on disk, and objects are never modified: temp files are created
//! read-only (mode 0444) and written through the descriptor that created them.
//!
//! Small objects (those added from memory: files up to 1 MiB, tree nodes, records) are packed
//! once a batch has [`PACK_MIN_OBJECTS`] of them: they are appended to one temp pack file, which
//! commit publishes like a loose object, under the name its index gives. A batch with fewer small
//! objects writes them as loose files. Both kinds are read the same way; a reader looks for a
//! loose file first, then in the packs it has indexed (re-reading the `packs/` folder when an
//! object is not found, so that packs published by another process since are seen).
//!
//! **Architecture Invariant:** this module never touches SQLite.

pub mod refs;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tempfile::TempPath;

use crate::digest::Blake3Digest;
use crate::error::{Error, IoContext, Result};
use crate::format::object::{self, DecodeError, Decoded, ObjectKind};
use crate::format::pack::{self, PackEntry};
use crate::fsio::{rename_no_replace, sync_folder, Lock, LockMode};
use crate::text::EscapePath;

/// The contents of `<store>/VERSION`.
pub const STORE_VERSION_TEXT: &str = "evstore store 1\n";

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

/// Where the bytes of one stored copy of an object are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectLocation {
    /// A loose object file.
    Loose(PathBuf),
    /// A range of a pack file.
    Packed {
        /// The pack file.
        pack: Arc<Path>,
        /// Offset of the object's first byte.
        offset: u64,
        /// The object's stored length.
        len: u64,
    },
}

impl std::fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectLocation::Loose(path) => write!(f, "{}", path.escaped()),
            ObjectLocation::Packed { pack, offset, len } => {
                write!(f, "{} at offset {offset} ({len} bytes)", pack.escaped())
            }
        }
    }
}

/// One thing found when listing a store.
#[derive(Clone, Debug)]
pub enum ListedObject {
    /// One stored copy of an object: a well-named loose file, or an entry of a sound pack index.
    Object {
        /// The id its name or index entry gives.
        id: Blake3Digest,
        /// Its size on disk.
        stored_size: u64,
        /// Where its bytes are.
        location: ObjectLocation,
    },
    /// A file or folder under `objects/` or `packs/` whose name is not an object or pack name.
    Stray(PathBuf),
    /// A pack whose magic, footer, index or name is wrong: none of its objects can be trusted.
    BadPack {
        /// The pack file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A temp file holding one encoded object, waiting to be published.
#[derive(Debug)]
pub struct StagedObject {
    path: TempPath,
    stored_size: u64,
}

/// A temp pack file, complete, waiting to be published under its name.
#[derive(Debug)]
pub struct StagedPack {
    path: TempPath,
    name: Blake3Digest,
    entries: Vec<PackEntry>,
}

/// What publishing one object did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The object id.
    pub id: Blake3Digest,
    /// True if this call wrote it; false if it was already in the store.
    pub newly_stored: bool,
    /// Size of the object file on disk.
    pub stored_size: u64,
}

/// Object I/O: the interface every storage backend implements.
pub trait ObjectBackend: Send + Sync {
    /// A short human description, such as the objects folder.
    fn describe(&self) -> String;
    /// True if an object with this id is stored.
    fn exists(&self, id: &Blake3Digest) -> Result<bool>;
    /// Open an object's stored bytes (header and payload), or `None` if it is absent.
    fn open(&self, id: &Blake3Digest) -> Result<Option<Box<dyn Read + Send>>>;
    /// Open the stored bytes of one listed copy of an object.
    fn open_at(&self, location: &ObjectLocation) -> Result<Box<dyn Read + Send>>;
    /// The stored size of an object, or `None` if it is absent.
    fn stat(&self, id: &Blake3Digest) -> Result<Option<u64>>;
    /// Every stored copy of every object, every stray entry and every bad pack, in no
    /// particular order.
    fn list(&self) -> Result<Vec<ListedObject>>;
    /// A new read-only temp file to write an encoded object or a pack into.
    fn stage(&self) -> Result<(File, TempPath)>;
    /// Make staged objects and a staged pack durable under their names. Never replaces an
    /// existing object or pack.
    fn publish(
        &self,
        staged: Vec<(Blake3Digest, StagedObject)>,
        pack: Option<StagedPack>,
    ) -> Result<Vec<Published>>;
}

/// Where a packed object is, as the in-memory pack index holds it.
#[derive(Clone, Debug)]
struct PackedAt {
    pack: Arc<Path>,
    offset: u64,
    len: u64,
}

/// The objects of every pack a backend has read the index of.
#[derive(Debug, Default)]
struct PackIndex {
    /// True once `packs/` has been listed at least once.
    scanned: bool,
    /// Packs already read (sound or not), so a rescan reads only new ones.
    known: HashSet<PathBuf>,
    objects: HashMap<Blake3Digest, PackedAt>,
}

/// The local folder backend.
#[derive(Debug)]
pub struct LocalBackend {
    objects: PathBuf,
    packs: PathBuf,
    tmp: PathBuf,
    pack_index: Mutex<PackIndex>,
}

impl LocalBackend {
    /// The backend for the store at `root` (which must exist).
    pub fn new(root: &Path) -> LocalBackend {
        LocalBackend {
            objects: root.join("objects"),
            packs: root.join("packs"),
            tmp: root.join("tmp"),
            pack_index: Mutex::new(PackIndex::default()),
        }
    }

    /// The path of the pack named `name`: `packs/<hex>.pack`.
    pub fn pack_path(&self, name: &Blake3Digest) -> PathBuf {
        self.packs
            .join(format!("{}.{}", name.to_hex(), pack::PACK_EXTENSION))
    }

    fn lock_pack_index(&self) -> std::sync::MutexGuard<'_, PackIndex> {
        // The index is only ever extended with complete entries, so a poisoned lock is safe.
        self.pack_index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read the index of every pack not read yet. A pack that is not sound is remembered but
    /// contributes nothing (fsck reports it).
    fn rescan_packs(&self, index: &mut PackIndex) -> Result<()> {
        index.scanned = true;
        let listing = match fs::read_dir(&self.packs) {
            Ok(listing) => listing,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(Error::io(&self.packs, "cannot list packs", err)),
        };
        for item in listing {
            let path = item.at(&self.packs, "cannot list packs")?.path();
            if index.known.contains(&path) || pack_name_of(&path).is_none() {
                continue;
            }
            index.known.insert(path.clone());
            if let Ok(entries) = read_pack_index(&path) {
                let pack: Arc<Path> = Arc::from(path.as_path());
                for entry in entries {
                    index.objects.entry(entry.id).or_insert(PackedAt {
                        pack: Arc::clone(&pack),
                        offset: entry.offset,
                        len: entry.len,
                    });
                }
            }
        }
        Ok(())
    }

    /// Where `id` is packed. With `rescan_on_miss`, a miss re-reads `packs/` once first.
    fn find_packed(&self, id: &Blake3Digest, rescan_on_miss: bool) -> Result<Option<PackedAt>> {
        let mut index = self.lock_pack_index();
        let missed = !index.objects.contains_key(id);
        if !index.scanned || (rescan_on_miss && missed) {
            self.rescan_packs(&mut index)?;
        }
        Ok(index.objects.get(id).cloned())
    }

    /// The path of an object file: `objects/ab/cdef…`.
    pub fn object_path(&self, id: &Blake3Digest) -> PathBuf {
        let hex = id.to_hex();
        self.objects.join(&hex[..2]).join(&hex[2..])
    }
}

impl ObjectBackend for LocalBackend {
    fn describe(&self) -> String {
        self.objects.escaped().to_string()
    }

    fn exists(&self, id: &Blake3Digest) -> Result<bool> {
        Ok(self.stat(id)?.is_some())
    }

    fn open(&self, id: &Blake3Digest) -> Result<Option<Box<dyn Read + Send>>> {
        let path = self.object_path(id);
        match File::open(&path) {
            Ok(file) => return Ok(Some(Box::new(file))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(path, "cannot open object", err)),
        }
        match self.find_packed(id, true)? {
            Some(at) => Ok(Some(self.open_at(&ObjectLocation::Packed {
                pack: at.pack,
                offset: at.offset,
                len: at.len,
            })?)),
            None => Ok(None),
        }
    }

    fn open_at(&self, location: &ObjectLocation) -> Result<Box<dyn Read + Send>> {
        match location {
            ObjectLocation::Loose(path) => {
                Ok(Box::new(File::open(path).at(path, "cannot open object")?))
            }
            ObjectLocation::Packed { pack, offset, len } => {
                let mut file = File::open(pack).at(pack, "cannot open pack")?;
                file.seek(SeekFrom::Start(*offset))
                    .at(pack, "cannot seek in pack")?;
                Ok(Box::new(file.take(*len)))
            }
        }
    }

    /// The stored size of a loose copy, else of a packed one. Checking for presence does not
    /// re-read `packs/` on a miss: a pack published since by another process only means the
    /// object is stored once more.
    fn stat(&self, id: &Blake3Digest) -> Result<Option<u64>> {
        let path = self.object_path(id);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Err(Error::corrupt(
                format!("object {id}"),
                format!("{} is not a regular file", path.escaped()),
            )),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                Ok(self.find_packed(id, false)?.map(|at| at.len))
            }
            Err(err) => Err(Error::io(path, "cannot stat object", err)),
        }
    }

    fn list(&self) -> Result<Vec<ListedObject>> {
        let mut out = Vec::new();
        for fan in fs::read_dir(&self.objects).at(&self.objects, "cannot list objects")? {
            let fan = fan.at(&self.objects, "cannot list objects")?;
            let fan_path = fan.path();
            let fan_name = fan.file_name();
            let fan_name = fan_name.to_str().unwrap_or("");
            let is_dir = fan.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if fan_name.len() != 2 || !crate::digest::is_lower_hex(fan_name) || !is_dir {
                out.push(ListedObject::Stray(fan_path));
                continue;
            }
            for item in fs::read_dir(&fan_path).at(&fan_path, "cannot list objects")? {
                let item = item.at(&fan_path, "cannot list objects")?;
                let path = item.path();
                let name = item.file_name();
                let id = name
                    .to_str()
                    .and_then(|rest| Blake3Digest::parse_hex(&format!("{fan_name}{rest}")));
                let meta = fs::symlink_metadata(&path).at(&path, "cannot stat object")?;
                match id {
                    Some(id) if meta.is_file() => out.push(ListedObject::Object {
                        id,
                        stored_size: meta.len(),
                        location: ObjectLocation::Loose(path),
                    }),
                    _ => out.push(ListedObject::Stray(path)),
                }
            }
        }
        let listing = match fs::read_dir(&self.packs) {
            Ok(listing) => Some(listing),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(Error::io(&self.packs, "cannot list packs", err)),
        };
        for item in listing.into_iter().flatten() {
            let path = item.at(&self.packs, "cannot list packs")?.path();
            let meta = fs::symlink_metadata(&path).at(&path, "cannot stat pack")?;
            if pack_name_of(&path).is_none() || !meta.is_file() {
                out.push(ListedObject::Stray(path));
                continue;
            }
            match read_pack_index(&path) {
                Ok(entries) => {
                    let pack: Arc<Path> = Arc::from(path.as_path());
                    out.extend(entries.into_iter().map(|entry| ListedObject::Object {
                        id: entry.id,
                        stored_size: entry.len,
                        location: ObjectLocation::Packed {
                            pack: Arc::clone(&pack),
                            offset: entry.offset,
                            len: entry.len,
                        },
                    }))
                }
                Err(reason) => out.push(ListedObject::BadPack { path, reason }),
            }
        }
        Ok(out)
    }

    fn stage(&self) -> Result<(File, TempPath)> {
        // Created read-only: the descriptor returned can still write, and nothing published is
        // ever writable.
        let temp = tempfile::Builder::new()
            .prefix("obj-")
            .permissions(fs::Permissions::from_mode(0o444))
            .tempfile_in(&self.tmp)
            .at(&self.tmp, "cannot create a temp file in the store")?;
        Ok(temp.into_parts())
    }

    fn publish(
        &self,
        staged: Vec<(Blake3Digest, StagedObject)>,
        staged_pack: Option<StagedPack>,
    ) -> Result<Vec<Published>> {
        if staged.is_empty() && staged_pack.is_none() {
            return Ok(Vec::new());
        }
        // 1. Make every staged file's bytes durable.
        sync_store(
            &self.tmp,
            staged
                .iter()
                .map(|(_, s)| &*s.path as &Path)
                .chain(staged_pack.iter().map(|p| &*p.path as &Path)),
        )?;
        // 2. Move each into place without replacing anything.
        let mut published = Vec::with_capacity(staged.len());
        let mut dirs = Vec::new();
        let mut dirs_present: HashSet<PathBuf> = HashSet::new();
        for (id, object) in staged {
            let final_path = self.object_path(&id);
            let dir = final_path.parent().unwrap_or(&self.objects).to_path_buf();
            if !dirs_present.contains(&dir) {
                if !dir.is_dir() {
                    fs::create_dir_all(&dir).at(&dir, "cannot create object folder")?;
                }
                dirs_present.insert(dir.clone());
            }
            let newly_stored = persist_once(object.path, &final_path)?;
            if newly_stored {
                dirs.push(dir);
            }
            published.push(Published {
                id,
                newly_stored,
                stored_size: object.stored_size,
            });
        }
        if let Some(staged_pack) = staged_pack {
            let StagedPack {
                path,
                name,
                entries,
            } = staged_pack;
            if !self.packs.is_dir() {
                fs::create_dir_all(&self.packs).at(&self.packs, "cannot create packs folder")?;
            }
            let final_path = self.pack_path(&name);
            // The same name means the same index, so an existing pack already holds these objects.
            let newly_stored = persist_once(path, &final_path)?;
            dirs.push(self.packs.clone());
            let pack: Arc<Path> = Arc::from(final_path.as_path());
            let mut index = self.lock_pack_index();
            for entry in &entries {
                index.objects.entry(entry.id).or_insert(PackedAt {
                    pack: Arc::clone(&pack),
                    offset: entry.offset,
                    len: entry.len,
                });
                published.push(Published {
                    id: entry.id,
                    newly_stored,
                    stored_size: entry.len,
                });
            }
            index.known.insert(final_path);
        }
        // 3. Make the new names durable.
        dirs.sort();
        dirs.dedup();
        dirs.push(self.objects.clone());
        sync_store(&self.tmp, dirs.iter().map(|d| d.as_path()))?;
        Ok(published)
    }
}

/// Move a synced temp file to `final_path` unless something is already there. True if it was
/// moved; false if `final_path` existed (content-addressed names: it holds the same content), in
/// which case the temp file is deleted.
fn persist_once(temp: TempPath, final_path: &Path) -> Result<bool> {
    match temp.persist_noclobber(final_path) {
        Ok(()) => Ok(true),
        Err(err) if err.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(Error::io(final_path, "cannot move into place", err.error)),
    }
}

/// The name a pack file's name gives (`<64 hex>.pack`), or `None`.
fn pack_name_of(path: &Path) -> Option<Blake3Digest> {
    let name = path.file_name()?.to_str()?;
    let hex = name.strip_suffix(pack::PACK_EXTENSION)?.strip_suffix('.')?;
    Blake3Digest::parse_hex(hex)
}

/// Read and check a pack's magic, footer, index and name; the entries in id order. The message
/// says what is wrong.
fn read_pack_index(path: &Path) -> std::result::Result<Vec<PackEntry>, String> {
    let name = pack_name_of(path).ok_or("not a pack name")?;
    let describe = |err: io::Error| format!("cannot read: {err}");
    let mut file = File::open(path).map_err(describe)?;
    let file_len = file.metadata().map_err(describe)?.len();
    if file_len < (pack::PACK_MAGIC.len() as u64) + pack::FOOTER_LEN {
        return Err(format!("{file_len} bytes is too short for a pack"));
    }
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic).map_err(describe)?;
    if &magic != pack::PACK_MAGIC {
        return Err("bad magic (not an evstore pack)".into());
    }
    let mut footer = [0u8; pack::FOOTER_LEN as usize];
    file.seek(SeekFrom::Start(file_len - pack::FOOTER_LEN))
        .and_then(|_| file.read_exact(&mut footer))
        .map_err(describe)?;
    let start = pack::index_start(&footer, file_len)?;
    let mut trailer = Vec::new();
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_to_end(&mut trailer))
        .map_err(describe)?;
    if trailer.len() as u64 != file_len - start {
        return Err("the pack changed size while its index was read".into());
    }
    if pack::pack_name(&trailer) != name {
        return Err(format!(
            "its index hashes to {}, not to its name",
            pack::pack_name(&trailer)
        ));
    }
    pack::decode_index(&trailer[..trailer.len() - pack::FOOTER_LEN as usize], start)
}

/// Flush `paths` to stable storage. On Linux one `syncfs` covers the whole store; elsewhere each
/// path is fsynced.
fn sync_store<'a>(anchor: &Path, paths: impl Iterator<Item = &'a Path>) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let _ = paths;
        let dir = File::open(anchor).at(anchor, "cannot open store for sync")?;
        rustix::fs::syncfs(&dir)
            .map_err(|errno| Error::io(anchor, "syncfs failed", errno.into()))?;
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = anchor;
        for path in paths {
            File::open(path)
                .and_then(|f| f.sync_all())
                .at(path, "cannot fsync")?;
        }
    }
    Ok(())
}

/// A store folder: its layout and its object backend.
pub struct Store {
    root: PathBuf,
    backend: Box<dyn ObjectBackend>,
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
        check_store_location(root)?;
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
        check_store_location(root)?;
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

    /// Open the existing store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        check_store_location(root)?;
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
        if version != STORE_VERSION_TEXT.as_bytes() {
            return Err(Error::Usage(format!(
                "{}: unsupported store version {:?}",
                version_path.escaped(),
                String::from_utf8_lossy(&version)
            )));
        }
        Ok(Store {
            root: root.to_path_buf(),
            backend: Box::new(LocalBackend::new(root)),
        })
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
        let checks = [
            (self.root.clone(), true),
            (self.root.join("objects"), true),
            (self.tmp_path(), true),
            (self.root.join("packs"), false),
            (self.root.join(crate::store::refs::REFS_DIR_NAME), false),
            (catalog.clone(), true),
            (sidecar("-wal"), false),
            (sidecar("-shm"), false),
        ];
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

    /// The store folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The catalog file of this store.
    pub fn catalog_path(&self) -> PathBuf {
        self.root.join(CATALOG_FILE_NAME)
    }

    /// The staging folder of this store.
    pub fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The object backend.
    pub fn backend(&self) -> &dyn ObjectBackend {
        &*self.backend
    }

    /// Start a batch of writes. The batch holds the shared side of the writers' lock until it
    /// is dropped, so [`Store::gc_temp`] never removes a temp file a live writer still needs.
    ///
    /// # Errors
    ///
    /// The writers' lock cannot be taken (the error names `<store>/tmp` and the reason): a batch
    /// never writes without it.
    pub fn batch(&self) -> Result<ObjectBatch<'_>> {
        let writer_lock = self.lock_writers_shared()?;
        Ok(ObjectBatch {
            backend: &*self.backend,
            pending: Mutex::new(HashMap::new()),
            small: Mutex::new(SmallObjects::default()),
            _writer_lock: writer_lock,
        })
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
                        "payload larger than {MAX_SMALL_OBJECT} bytes for a tree node, record or attestation"
                    ),
                    )
                } else {
                    err
                }
            })?;
        Ok((decoded.header.kind, out.bytes))
    }
}

/// The small objects of a batch: held in memory until there are [`PACK_MIN_OBJECTS`] of them,
/// then appended to a temp pack.
#[derive(Default)]
struct SmallObjects {
    ids: HashSet<Blake3Digest>,
    buffered: Vec<(Blake3Digest, Vec<u8>)>,
    pack: Option<PackWriter>,
}

/// A temp pack being written: the magic, then objects back to back.
struct PackWriter {
    file: BufWriter<File>,
    path: TempPath,
    entries: Vec<PackEntry>,
    offset: u64,
}

impl PackWriter {
    fn start(backend: &dyn ObjectBackend) -> Result<PackWriter> {
        let (file, path) = backend.stage()?;
        let mut file = BufWriter::with_capacity(1024 * 1024, file);
        file.write_all(pack::PACK_MAGIC)
            .at(&path, "cannot write temp pack")?;
        Ok(PackWriter {
            file,
            path,
            entries: Vec::new(),
            offset: pack::PACK_MAGIC.len() as u64,
        })
    }

    fn append(&mut self, id: Blake3Digest, encoded: &[u8]) -> Result<()> {
        self.file
            .write_all(encoded)
            .at(&self.path, "cannot write temp pack")?;
        self.entries.push(PackEntry {
            id,
            offset: self.offset,
            len: encoded.len() as u64,
        });
        self.offset += encoded.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<StagedPack> {
        let trailer = pack::encode_trailer(&mut self.entries);
        self.file
            .write_all(&trailer)
            .at(&self.path, "cannot write temp pack")?;
        let path = self.path;
        self.file
            .into_inner()
            .map_err(|e| Error::io(&*path, "cannot write temp pack", e.into_error()))?;
        Ok(StagedPack {
            path,
            name: pack::pack_name(&trailer),
            entries: self.entries,
        })
    }
}

/// A set of object writes that become durable together.
pub struct ObjectBatch<'a> {
    backend: &'a dyn ObjectBackend,
    pending: Mutex<HashMap<Blake3Digest, StagedObject>>,
    small: Mutex<SmallObjects>,
    /// The shared side of the writers' lock on `<store>/tmp` (see [`Store::gc_temp`]).
    _writer_lock: Lock,
}

/// What [`Store::gc_temp`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcTempReport {
    /// Temp entries removed.
    pub removed: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// The outcome of adding one object to a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Staged; it will be written by commit.
    Staged,
    /// The store or the batch already has it.
    AlreadyPresent,
}

impl ObjectBatch<'_> {
    fn already_has(&self, id: &Blake3Digest) -> Result<bool> {
        if self.lock().contains_key(id) || self.lock_small().ids.contains(id) {
            return Ok(true);
        }
        self.backend.exists(id)
    }

    fn lock_small(&self) -> std::sync::MutexGuard<'_, SmallObjects> {
        // A panic mid-append leaves a pack whose entries do not match its bytes; the batch is
        // then never committed (the panic unwinds through the caller), so the lock is safe to use.
        self.small.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Blake3Digest, StagedObject>> {
        // A panic while holding the lock cannot leave the map half-updated (inserts are atomic),
        // so a poisoned lock is still safe to use.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add an object whose payload is in memory. The caller has hashed it: `id` is its BLAKE3.
    pub fn add_bytes(&self, id: Blake3Digest, kind: ObjectKind, payload: &[u8]) -> Result<Added> {
        if self.already_has(&id)? {
            return Ok(Added::AlreadyPresent);
        }
        let encoded = object::encode_in_memory(kind, payload)
            .map_err(|e| Error::io("zstd", "compress", e))?;
        let mut small = self.lock_small();
        if !small.ids.insert(id) {
            return Ok(Added::AlreadyPresent);
        }
        if small.pack.is_none() && small.buffered.len() + 1 < PACK_MIN_OBJECTS {
            small.buffered.push((id, encoded));
            return Ok(Added::Staged);
        }
        if small.pack.is_none() {
            let mut writer = PackWriter::start(self.backend)?;
            for (id, bytes) in std::mem::take(&mut small.buffered) {
                writer.append(id, &bytes)?;
            }
            small.pack = Some(writer);
        }
        if let Some(writer) = small.pack.as_mut() {
            writer.append(id, &encoded)?;
        }
        Ok(Added::Staged)
    }

    /// Write one encoded object to its own temp file.
    fn stage_loose(&self, id: Blake3Digest, encoded: &[u8]) -> Result<()> {
        let (mut file, path) = self.backend.stage()?;
        file.write_all(encoded)
            .at(&path, "cannot write temp object")?;
        drop(file);
        self.insert(
            id,
            StagedObject {
                path,
                stored_size: encoded.len() as u64,
            },
        );
        Ok(())
    }

    /// Start streaming an object of `len` payload bytes, compressed with zstd.
    pub fn stream(&self, kind: ObjectKind, len: u64) -> Result<StreamWriter> {
        let (file, path) = self.backend.stage()?;
        let mut writer = BufWriter::with_capacity(256 * 1024, file);
        let header = object::Header {
            kind,
            codec: object::Codec::Zstd,
            len,
        };
        writer
            .write_all(&header.encode())
            .at(&path, "cannot write temp object")?;
        let encoder = zstd::stream::write::Encoder::new(writer, object::ZSTD_LEVEL)
            .at(&path, "cannot start zstd")?;
        Ok(StreamWriter { encoder, path })
    }

    /// Add a streamed object once its id is known.
    pub fn add_stream(&self, id: Blake3Digest, writer: StreamWriter) -> Result<Added> {
        let StreamWriter { encoder, path } = writer;
        if self.already_has(&id)? {
            return Ok(Added::AlreadyPresent);
        }
        let writer = encoder.finish().at(&path, "cannot finish zstd")?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::io(&*path, "cannot write temp object", e.into_error()))?;
        let stored_size = file.metadata().at(&path, "cannot stat temp object")?.len();
        drop(file);
        self.insert(id, StagedObject { path, stored_size });
        Ok(Added::Staged)
    }

    fn insert(&self, id: Blake3Digest, staged: StagedObject) {
        // If two threads staged the same new object, the second copy is dropped (its temp file
        // is deleted); either copy holds the same bytes.
        self.lock().entry(id).or_insert(staged);
    }

    /// Make every staged object durable and return what each publish did.
    pub fn commit(self) -> Result<Vec<Published>> {
        let small = std::mem::take(&mut *self.lock_small());
        let staged_pack = match small.pack {
            Some(writer) => Some(writer.finish()?),
            None => {
                for (id, encoded) in &small.buffered {
                    self.stage_loose(*id, encoded)?;
                }
                None
            }
        };
        let pending = std::mem::take(&mut *self.lock());
        self.backend
            .publish(pending.into_iter().collect(), staged_pack)
    }
}

/// A streaming writer for one object; see [`ObjectBatch::stream`].
pub struct StreamWriter {
    encoder: zstd::stream::write::Encoder<'static, BufWriter<File>>,
    path: TempPath,
}

impl Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// Refuse a store location that looks like a URL or has whitespace around it (see
/// [`check_local_path`]): the only backend today is a local folder, and `s3://bkt/ev` would
/// otherwise become a local folder named `s3:` without a word.
pub fn check_store_location(root: &Path) -> Result<()> {
    check_local_path(root, "store").map_err(|err| match err {
        Error::Usage(message) => Error::Usage(format!(
            "{message} (the store is set by --store or $EVSTORE_STORE)"
        )),
        other => other,
    })
}

/// Refuse a local folder argument (`what`: "store", "export destination", "--keep folder")
/// that is probably not meant as one, before anything is created there:
///
/// - its first component looks like a URL scheme followed by a colon (`s3:bkt`, `s3:/b`,
///   `s3://b`, `https:`, `file:///srv`): evstore has no remote backend, and such a path would
///   become a local folder named `s3:`;
/// - it starts or ends with whitespace (`' s3://b'`, a pasted `'out '`).
///
/// A folder of such a name is still reachable on purpose: `./s3:bkt`, `./ name`, `name /`.
pub fn check_local_path(path: &Path, what: &str) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let first = bytes.split(|b| *b == b'/').next().unwrap_or_default();
    if let Some(colon) = first.iter().position(|b| *b == b':') {
        let scheme = &first[..colon];
        let is_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if is_scheme {
            let scheme = String::from_utf8_lossy(scheme);
            let hint = if scheme.eq_ignore_ascii_case("file") {
                "for a local folder, give its path without file://".to_string()
            } else {
                format!("there is no {scheme}: backend yet; evstore writes local folders only")
            };
            let is_or_looks = if bytes[colon + 1..].starts_with(b"//") {
                "is a URL"
            } else {
                "looks like a URL"
            };
            return Err(Error::Usage(format!(
                "{what} {} {is_or_looks} ({scheme}:...): {hint}; to name a local folder of that \
                 name on purpose, start the path with ./ (./{})",
                path.escaped(),
                path.escaped()
            )));
        }
    }
    let starts_blank = bytes.first().is_some_and(u8::is_ascii_whitespace);
    let ends_blank = bytes.last().is_some_and(u8::is_ascii_whitespace);
    if starts_blank || ends_blank {
        return Err(Error::Usage(format!(
            "{what} {:?} {} with whitespace, which is most likely a quoting mistake; to name a \
             local folder of that name on purpose, {}",
            path.escaped().to_string(),
            if starts_blank { "starts" } else { "ends" },
            match (starts_blank, ends_blank) {
                (true, true) => "start the path with ./ and end it with /",
                (true, false) => "start the path with ./",
                _ => "end the path with /",
            }
        )));
    }
    Ok(())
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

/// `path` made absolute, with every existing component resolved (symlinks included) and the
/// missing tail appended as it will be created; it need not exist.
pub fn resolved_path(path: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|err| Error::io(".", "cannot read the working directory", err))?
            .join(path)
    };
    let mut current = PathBuf::from("/");
    let mut missing = false;
    for component in absolute.components() {
        match component {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            // `current` is canonical (or a tail that will be created as real folders), so
            // its parent is lexical; back in existing folders, resolve again from there.
            Component::ParentDir => {
                current.pop();
                if missing && std::fs::symlink_metadata(&current).is_ok() {
                    missing = false;
                }
            }
            Component::Normal(name) => {
                let next = current.join(name);
                if !missing && std::fs::symlink_metadata(&next).is_ok() {
                    current = std::fs::canonicalize(&next).at(&next, "cannot resolve")?;
                } else {
                    missing = true;
                    current = next;
                }
            }
        }
    }
    Ok(current)
}

/// Refuse to archive a folder that holds the store, or would hold it once created: the store's
/// files would become part of the packet (and change it).
pub fn refuse_store_inside_folder(store: &Path, dir: &Path) -> Result<()> {
    let dir_resolved = std::fs::canonicalize(dir).at(dir, "cannot resolve")?;
    let store_resolved = resolved_path(store)?;
    if store_resolved.starts_with(&dir_resolved) {
        return Err(Error::unsupported(
            dir,
            format!(
                "the store {} lies inside this folder, so its files would become part of the \
                 packet; use a store outside the packet folder (--store DIR or $EVSTORE_STORE; \
                 the default is ./.evstore in the working directory)",
                store.escaped()
            ),
        ));
    }
    Ok(())
}

/// Refuse a folder evstore would write into (or archive) that is the store folder or lies
/// inside it: its files would become stray entries of the store (or the store's own files a
/// packet). `path` need not exist; symlinks in it are resolved.
pub fn refuse_inside_store(store: &Path, path: &Path, what: &str) -> Result<()> {
    if std::fs::symlink_metadata(store).is_err() {
        return Ok(());
    }
    let store_resolved = resolved_path(store)?;
    if resolved_path(path)?.starts_with(&store_resolved) {
        return Err(Error::Usage(format!(
            "{what} {} is inside the store {}: evstore never writes into its store folder, nor \
             archives the store itself; use a folder outside it",
            path.escaped(),
            store.escaped()
        )));
    }
    Ok(())
}
