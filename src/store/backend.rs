//! The interface every storage backend implements: objects and packs by content name, and small
//! named keys created only if absent.
//!
//! [`ObjectBackend`] speaks bytes and streams only: put-if-absent of encoded objects and packs
//! (each a [`PutSource`]: bytes in memory, or a spooled stream with its length), get (a `Read`
//! stream), stat and list. [`NamedKeys`] is the second primitive, beside objects: create a key
//! with given bytes only if it is absent (of two racing creators exactly one wins; the other
//! gets [`KeyCreated::AlreadyExists`] with the bytes that won), read a key, list the names below
//! a prefix. Commit markers (`store::refs`) are written through it; an S3 backend maps it to a
//! conditional create (`If-None-Match: *`), a fault-injecting wrapper can wrap any backend.
//!
//! Two backends implement both: [`super::local::LocalBackend`] (a store folder) and
//! [`super::memory::MemoryBackend`] (a map, for tests).
//!
//! **Architecture Invariant:** no backend method replaces stored bytes: objects, packs and keys
//! are created once and never modified; a put or create of something already there succeeds
//! without writing (objects, packs) or reports what is there (keys).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::digest::Blake3Digest;
use crate::error::Result;
use crate::format::pack::PackEntry;
use crate::text::EscapePath;

/// Where the bytes of one stored copy of an object are: the backend's name for it (a path in a
/// store folder; a key such as `objects/ab/cd…` elsewhere) and, in a pack, the range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectLocation {
    /// A loose object.
    Loose(PathBuf),
    /// A range of a pack.
    Packed {
        /// The pack.
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
    /// One stored copy of an object: a well-named loose object, or an entry of a sound pack index.
    Object {
        /// The id its name or index entry gives.
        id: Blake3Digest,
        /// Its stored size.
        stored_size: u64,
        /// Where its bytes are.
        location: ObjectLocation,
    },
    /// An entry under `objects/` or `packs/` whose name is not an object or pack name.
    Stray(PathBuf),
    /// A pack whose magic, footer, index or name is wrong: none of its objects can be trusted.
    BadPack {
        /// The pack.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl ListedObject {
    /// The listing of every object a sound pack's index lists: each entry, packed in `pack`.
    pub fn packed<'a>(
        pack: &Path,
        entries: impl IntoIterator<Item = &'a crate::format::pack::PackEntry>,
    ) -> Vec<ListedObject> {
        let pack: Arc<Path> = Arc::from(pack);
        entries
            .into_iter()
            .map(|entry| ListedObject::Object {
                id: entry.id,
                stored_size: entry.len,
                location: ObjectLocation::Packed {
                    pack: Arc::clone(&pack),
                    offset: entry.offset,
                    len: entry.len,
                },
            })
            .collect()
    }
}

/// What publishing one object did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The object id.
    pub id: Blake3Digest,
    /// True if this call wrote it; false if it was already in the store.
    pub newly_stored: bool,
    /// Its stored size.
    pub stored_size: u64,
}

/// A spooled stream: encoded bytes a batch wrote to a local temp file (read-only, in the
/// store's `tmp/`), with their length. Deleted when dropped unless a backend moved it into place.
#[derive(Debug)]
pub struct SpooledFile {
    pub(crate) path: tempfile::TempPath,
    pub(crate) len: u64,
}

impl SpooledFile {
    /// The number of bytes spooled.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if nothing was spooled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A stream of the spooled bytes.
    ///
    /// # Errors
    ///
    /// The spool file cannot be opened.
    pub fn reader(&self) -> Result<Box<dyn Read + Send>> {
        use crate::error::IoContext;
        let file = std::fs::File::open(&self.path).at(&self.path, "cannot open spooled object")?;
        Ok(Box::new(file.take(self.len)))
    }

    /// The spool file's path (a backend on the same file system may move it into place).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A new read-only temp file in `dir` to write an encoded object or a pack into: the descriptor
/// returned can still write, and nothing published is ever writable.
pub(crate) fn spool_file(dir: &Path) -> Result<(std::fs::File, tempfile::TempPath)> {
    use crate::error::IoContext;
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::Builder::new()
        .prefix("obj-")
        .permissions(std::fs::Permissions::from_mode(0o444))
        .tempfile_in(dir)
        .at(dir, "cannot create a temp file in the store")?;
    Ok(temp.into_parts())
}

/// The bytes of one put.
#[derive(Debug)]
pub enum PutSource {
    /// Encoded bytes in memory.
    Bytes(Vec<u8>),
    /// Encoded bytes spooled to a local temp file, read as a stream.
    Spooled(SpooledFile),
}

impl PutSource {
    /// The number of bytes.
    pub fn len(&self) -> u64 {
        match self {
            PutSource::Bytes(bytes) => bytes.len() as u64,
            PutSource::Spooled(spooled) => spooled.len,
        }
    }

    /// True if there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, read whole (for backends that keep them in memory).
    ///
    /// # Errors
    ///
    /// A spooled stream cannot be read.
    pub fn into_bytes(self) -> Result<Vec<u8>> {
        match self {
            PutSource::Bytes(bytes) => Ok(bytes),
            PutSource::Spooled(spooled) => {
                use crate::error::IoContext;
                let mut bytes = Vec::with_capacity(spooled.len as usize);
                spooled
                    .reader()?
                    .read_to_end(&mut bytes)
                    .at(&spooled.path, "cannot read spooled object")?;
                Ok(bytes)
            }
        }
    }
}

/// What one put names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutName {
    /// An encoded object, named by its id.
    Object(Blake3Digest),
    /// A pack (format: `format::pack`), named by the hash of its index; `entries` are the
    /// objects it holds, as its index lists them.
    Pack {
        /// The pack's name.
        name: Blake3Digest,
        /// The objects it holds.
        entries: Vec<PackEntry>,
    },
}

/// One put of [`ObjectBackend::put_if_absent`].
#[derive(Debug)]
pub struct Put {
    /// What the bytes are stored as.
    pub name: PutName,
    /// The bytes.
    pub source: PutSource,
}

/// Object I/O: the interface every storage backend implements.
pub trait ObjectBackend: NamedKeys + Send + Sync {
    /// A short human description, such as the objects folder.
    fn describe(&self) -> String;
    /// True if an object with this id is stored.
    fn exists(&self, id: &Blake3Digest) -> Result<bool> {
        Ok(self.stat(id)?.is_some())
    }
    /// True if [`ObjectBackend::exists`] is cheap enough to ask once per object a batch adds
    /// (a `stat` of a local file). False for a backend where it is a request (an S3 `HEAD`): a
    /// batch then trusts the ids its caller knows are stored (the catalog's) and puts the rest
    /// with create-if-absent, which stores nothing twice under one name.
    fn exists_is_cheap(&self) -> bool {
        true
    }
    /// The ids of `ids` that are not stored, for a batch that skipped them because its caller
    /// knew them stored (see [`ObjectBackend::exists_is_cheap`]): checked before the batch
    /// commits, so an object deleted behind evstore's back is stored again rather than named
    /// by a new packet. One [`ObjectBackend::exists`] each unless a backend knows better.
    fn find_missing(&self, ids: &[Blake3Digest]) -> Result<Vec<Blake3Digest>> {
        let mut missing = Vec::new();
        for id in ids {
            if !self.exists(id)? {
                missing.push(*id);
            }
        }
        Ok(missing)
    }
    /// How many small objects a batch gathers before it writes them as one pack rather than one
    /// put each: [`crate::store::PACK_MIN_OBJECTS`] where a put is a local file, fewer where
    /// each put is a request.
    fn pack_min_objects(&self) -> usize {
        crate::store::PACK_MIN_OBJECTS
    }
    /// A stream of an object's stored bytes (header and payload), or `None` if it is absent.
    fn open(&self, id: &Blake3Digest) -> Result<Option<Box<dyn Read + Send>>>;
    /// A stream of the stored bytes of one listed copy of an object.
    fn open_at(&self, location: &ObjectLocation) -> Result<Box<dyn Read + Send>>;
    /// The stored size of an object, or `None` if it is absent.
    fn stat(&self, id: &Blake3Digest) -> Result<Option<u64>>;
    /// Every stored copy of every object, every stray entry and every bad pack, in no
    /// particular order.
    fn list(&self) -> Result<Vec<ListedObject>>;
    /// Store each put under its name unless something is stored there already (content names:
    /// it holds the same bytes), and make all of them durable before returning: one
    /// [`Published`] per object (for a pack, per entry). Never replaces anything.
    fn put_if_absent(&self, puts: Vec<Put>) -> Result<Vec<Published>>;
}

/// What [`NamedKeys::create_key_if_absent`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyCreated {
    /// This call created the key with the bytes given, durably.
    Created,
    /// The key existed already (or another creator won the race): these are its bytes.
    AlreadyExists(Vec<u8>),
}

/// What [`NamedKeys::read_key`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRead {
    /// No such key.
    Missing,
    /// The key's bytes.
    Found(Vec<u8>),
    /// The key holds more than the limit asked for.
    TooLarge,
    /// The key cannot be read as a key (the reason says why: not a regular file, an I/O error).
    Unreadable(String),
}

/// One name directly below a prefix (see [`NamedKeys::list_names`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListedName {
    /// A name (a key, or a deeper prefix: list it with `PREFIX/NAME/`).
    Name(String),
    /// An entry whose name cannot be a key (not UTF-8); the text shows it escaped.
    NotUtf8(String),
}

/// Small named keys beside the objects, each created once and never changed. A key is a
/// `/`-separated path of non-empty components other than `.` and `..`, such as
/// `refs/packets/NAME/3`.
pub trait NamedKeys: Send + Sync {
    /// Create `key` holding `bytes`, only if it is absent; durable when it returns `Created`.
    /// Of two racing creators exactly one gets `Created`; the other gets `AlreadyExists` with
    /// the winner's bytes.
    fn create_key_if_absent(&self, key: &str, bytes: &[u8]) -> Result<KeyCreated>;
    /// Read `key`, refusing one larger than `max_len` bytes.
    fn read_key(&self, key: &str, max_len: u64) -> Result<KeyRead>;
    /// The names directly below `prefix` (which ends in `/`), in byte order, as a listing with
    /// the delimiter `/` gives them: keys, and deeper prefixes without their trailing `/`. A
    /// prefix with nothing below it lists nothing.
    fn list_names(&self, prefix: &str) -> Result<Vec<ListedName>>;
    /// The names directly below `prefix` that sort after `after` (a name, not a key), as
    /// [`NamedKeys::list_names`] gives them; entries that are not UTF-8 are left out. What a
    /// reader that has everything up to `after` lists: a backend that can start a listing after a
    /// key (S3 `start-after`) sends only the names past it, not the whole key space again.
    fn list_names_after(&self, prefix: &str, after: &str) -> Result<Vec<ListedName>> {
        Ok(self
            .list_names(prefix)?
            .into_iter()
            .filter(|listed| matches!(listed, ListedName::Name(name) if name.as_str() > after))
            .collect())
    }
    /// Every key below `prefix` (ending in `/`), at any depth, as full keys in byte order; entries
    /// that are not UTF-8 are left out. A backend with flat listings (S3) sends one request per
    /// 1000 keys, not one per deeper prefix.
    fn list_keys_below(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for listed in self.list_names(prefix)? {
            let ListedName::Name(name) = listed else {
                continue;
            };
            let deeper = format!("{prefix}{name}/");
            let below = self.list_keys_below(&deeper)?;
            if below.is_empty() {
                keys.push(format!("{prefix}{name}"));
            } else {
                keys.extend(below);
            }
        }
        keys.sort();
        Ok(keys)
    }
    /// True if the key space `prefix` (ending in `/`) was created (see
    /// [`NamedKeys::create_key_space`]).
    fn key_space_exists(&self, prefix: &str) -> Result<bool>;
    /// Create the key space `prefix` holding exactly `keys` (full keys below it), all at once,
    /// only if it does not exist: true if this call created it; false if it existed (whole,
    /// created by another caller). Readers never see it partial.
    fn create_key_space(&self, prefix: &str, keys: &[(String, Vec<u8>)]) -> Result<bool>;
}

/// Refuse a key that is not a `/`-separated path of non-empty components other than `.` and
/// `..` (it could name something outside the key space).
pub(crate) fn check_key(key: &str) -> Result<()> {
    let sound = !key.is_empty()
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'));
    if sound {
        Ok(())
    } else {
        Err(crate::error::Error::Internal(format!(
            "{key:?} is not a key (a /-separated path of non-empty components other than . and ..)"
        )))
    }
}
