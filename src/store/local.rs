//! The local backend: objects, packs and named keys in a store folder.
//!
//! Writes are batched: [`ObjectBackend::put_if_absent`] takes every put of an operation as a
//! read-only temp file in `tmp/` (spooled there by the batch, or written here from bytes), makes
//! all of them durable at once (one `syncfs`), moves each into place without ever replacing an
//! existing file (an object or pack already there counts as success), and makes the new names
//! durable (a second `syncfs`). An object file therefore exists under its final name only once
//! its bytes are on disk, and nothing published is ever writable.
//!
//! A reader looks for a loose file first, then in the packs it has indexed (re-reading `packs/`
//! when an object is not found, so that packs published by another process since are seen).
//!
//! Named keys ([`LocalKeys`]) are files below the store folder: created as a temp file in `tmp/`,
//! fsynced, renamed to the key's path without replacing anything, and the folder fsynced. A key
//! space (`refs/`) is created whole: built in `tmp/` and renamed into place.
//!
//! **Architecture Invariant:** nothing under `objects/`, `packs/` or a key space is ever replaced
//! or modified; every name appears only once its bytes are durable.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tempfile::TempPath;

use crate::digest::Blake3Digest;
use crate::error::{Error, IoContext, Result};
use crate::format::pack::{self, PackEntry};
use crate::fsio::{rename_no_replace, sync_folder};
use crate::store::backend::spool_file;
use crate::store::backend::{
    check_key, KeyCreated, KeyRead, ListedName, ListedObject, NamedKeys, ObjectBackend,
    ObjectLocation, Published, Put, PutName, PutSource, SpooledFile,
};
use crate::text::EscapePath;

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
    keys: LocalKeys,
}

impl LocalBackend {
    /// The backend for the store at `root` (which must exist).
    pub fn new(root: &Path) -> LocalBackend {
        LocalBackend {
            objects: root.join("objects"),
            packs: root.join("packs"),
            tmp: root.join("tmp"),
            pack_index: Mutex::new(PackIndex::default()),
            keys: LocalKeys::new(root, &root.join("tmp")),
        }
    }

    /// Write `source` to a new read-only temp file in `tmp/`.
    fn spool(&self, source: PutSource) -> Result<SpooledFile> {
        let (mut file, path) = spool_file(&self.tmp)?;
        let len = source.len();
        match source {
            PutSource::Bytes(bytes) => file
                .write_all(&bytes)
                .at(&path, "cannot write temp object")?,
            PutSource::Spooled(spooled) => {
                io::copy(&mut spooled.reader()?, &mut file)
                    .at(&path, "cannot write temp object")?;
            }
        }
        Ok(SpooledFile { path, len })
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
                Ok(entries) => out.extend(ListedObject::packed(&path, &entries)),
                Err(reason) => out.push(ListedObject::BadPack { path, reason }),
            }
        }
        Ok(out)
    }

    fn put_if_absent(&self, puts: Vec<Put>) -> Result<Vec<Published>> {
        if puts.is_empty() {
            return Ok(Vec::new());
        }
        // 0. Every put as a temp file in `tmp/` (spooled ones are there already).
        let mut staged = Vec::with_capacity(puts.len());
        for put in puts {
            let temp = match put.source {
                PutSource::Spooled(spooled) if spooled.path.parent() == Some(&*self.tmp) => spooled,
                source => self.spool(source)?,
            };
            staged.push((put.name, temp));
        }
        // 1. Make every staged file's bytes durable.
        sync_store(&self.tmp, staged.iter().map(|(_, temp)| temp.path()))?;
        // 2. Move each into place without replacing anything.
        let mut published = Vec::with_capacity(staged.len());
        let mut dirs = Vec::new();
        let mut dirs_present: HashSet<PathBuf> = HashSet::new();
        for (name, temp) in staged {
            match name {
                PutName::Object(id) => {
                    let final_path = self.object_path(&id);
                    let dir = final_path.parent().unwrap_or(&self.objects).to_path_buf();
                    if !dirs_present.contains(&dir) {
                        if !dir.is_dir() {
                            fs::create_dir_all(&dir).at(&dir, "cannot create object folder")?;
                        }
                        dirs_present.insert(dir.clone());
                    }
                    let stored_size = temp.len;
                    let newly_stored = persist_once(temp.path, &final_path)?;
                    if newly_stored {
                        dirs.push(dir);
                    }
                    published.push(Published {
                        id,
                        newly_stored,
                        stored_size,
                    });
                }
                PutName::Pack { name, entries } => {
                    if !self.packs.is_dir() {
                        fs::create_dir_all(&self.packs)
                            .at(&self.packs, "cannot create packs folder")?;
                    }
                    let final_path = self.pack_path(&name);
                    // The same name means the same index, so an existing pack already holds
                    // these objects.
                    let newly_stored = persist_once(temp.path, &final_path)?;
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
            }
        }
        // 3. Make the new names durable.
        dirs.sort();
        dirs.dedup();
        dirs.push(self.objects.clone());
        sync_store(&self.tmp, dirs.iter().map(|d| d.as_path()))?;
        Ok(published)
    }
}

impl NamedKeys for LocalBackend {
    fn create_key_if_absent(&self, key: &str, bytes: &[u8]) -> Result<KeyCreated> {
        self.keys.create_key_if_absent(key, bytes)
    }

    fn read_key(&self, key: &str, max_len: u64) -> Result<KeyRead> {
        self.keys.read_key(key, max_len)
    }

    fn list_names(&self, prefix: &str) -> Result<Vec<ListedName>> {
        self.keys.list_names(prefix)
    }

    fn key_space_exists(&self, prefix: &str) -> Result<bool> {
        self.keys.key_space_exists(prefix)
    }

    fn list_keys_below(&self, prefix: &str) -> Result<Vec<String>> {
        self.keys.list_keys_below(prefix)
    }

    fn create_key_space(&self, prefix: &str, keys: &[(String, Vec<u8>)]) -> Result<bool> {
        self.keys.create_key_space(prefix, keys)
    }
}

/// Move a synced temp file to `final_path` unless something is already there. True if it was
/// moved; false if `final_path` existed (content-addressed names: it holds the same content), in
/// which case the temp file is deleted.
fn persist_once(temp: TempPath, final_path: &Path) -> Result<bool> {
    match rename_no_replace(&temp, final_path) {
        Ok(()) => {
            // Moved into place: the temp name is gone, so nothing is left to delete.
            let _ = temp.keep();
            Ok(true)
        }
        // Dropping `temp` deletes it.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(err) => Err(Error::io(final_path, "cannot move into place", err)),
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
        crate::fsio::sync_file_system(anchor)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = anchor;
        for path in paths {
            File::open(path)
                .and_then(|f| f.sync_all())
                .at(path, "cannot fsync")?;
        }
        Ok(())
    }
}

/// Named keys as files below a folder (the store folder), written through temp files in `tmp`.
#[derive(Debug)]
pub struct LocalKeys {
    root: PathBuf,
    tmp: PathBuf,
}

impl LocalKeys {
    /// The keys below `root`, staged through temp files in `tmp` (on the same file system).
    pub fn new(root: &Path, tmp: &Path) -> LocalKeys {
        LocalKeys {
            root: root.to_path_buf(),
            tmp: tmp.to_path_buf(),
        }
    }

    /// The file of `key`, after checking that no folder on the way to it below the root is a
    /// symbolic link (a marker is never written or read through one).
    fn path_of(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        let mut path = self.root.clone();
        for component in key.split('/') {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::corrupt(
                        format!("{} {}", key_noun(key), path.escaped()),
                        "is a symbolic link; evstore never reads or writes a store key through \
                         one",
                    ))
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => break,
                Err(err) => return Err(Error::io(&path, "cannot stat", err)),
            }
        }
        Ok(self.root.join(key))
    }

    fn prefix_path(&self, prefix: &str) -> Result<PathBuf> {
        self.path_of(prefix.strip_suffix('/').unwrap_or(prefix))
    }
}

impl NamedKeys for LocalKeys {
    fn create_key_if_absent(&self, key: &str, bytes: &[u8]) -> Result<KeyCreated> {
        let path = self.path_of(key)?;
        if let Some(existing) = read_existing_key(&path, key_noun(key))? {
            return Ok(KeyCreated::AlreadyExists(existing));
        }
        let folder = path.parent().unwrap_or(&self.root).to_path_buf();
        create_folders(&folder)?;
        let mut temp = tempfile::Builder::new()
            .prefix("ref-")
            .tempfile_in(&self.tmp)
            .at(&self.tmp, "cannot create a temporary file in")?;
        // Read-only for everyone, as objects are: a marker is never changed, and an auditor who
        // may only read the store must be able to read it (fsck).
        temp.write_all(bytes)
            .and_then(|()| {
                temp.as_file()
                    .set_permissions(fs::Permissions::from_mode(0o444))
            })
            .and_then(|()| temp.as_file().sync_all())
            .at(temp.path(), "cannot write")?;
        let temp = temp.into_temp_path();
        match rename_no_replace(&temp, &path) {
            Ok(()) => {
                // Moved into place: the temp name is gone, so nothing is left to delete.
                let _ = temp.keep();
                sync_folder(&folder)?;
                Ok(KeyCreated::Created)
            }
            // Another creator won; dropping `temp` deletes it.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let existing = read_existing_key(&path, key_noun(key))?.ok_or_else(|| {
                    Error::io(
                        &path,
                        "cannot read the key another writer created",
                        io::Error::from(io::ErrorKind::NotFound),
                    )
                })?;
                Ok(KeyCreated::AlreadyExists(existing))
            }
            Err(err) => Err(Error::io(&path, "cannot create the store key", err)),
        }
    }

    fn read_key(&self, key: &str, max_len: u64) -> Result<KeyRead> {
        let path = self.path_of(key)?;
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(KeyRead::Missing),
            Err(err) => return Ok(KeyRead::Unreadable(format!("cannot read: {err}"))),
        };
        if !meta.is_file() {
            return Ok(KeyRead::Unreadable("is not a regular file".into()));
        }
        if meta.len() > max_len {
            return Ok(KeyRead::TooLarge);
        }
        let mut bytes = Vec::new();
        match File::open(&path).and_then(|file| file.take(max_len + 1).read_to_end(&mut bytes)) {
            Ok(_) if bytes.len() as u64 > max_len => Ok(KeyRead::TooLarge),
            Ok(_) => Ok(KeyRead::Found(bytes)),
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                Ok(KeyRead::Unreadable(format!(
                    "cannot read: {err}; markers written by evstore before 2026-12 are private \
                     (mode 0600): the store's owner makes them readable with `evstore reindex \
                     --replace`"
                )))
            }
            Err(err) => Ok(KeyRead::Unreadable(format!("cannot read: {err}"))),
        }
    }

    fn list_names(&self, prefix: &str) -> Result<Vec<ListedName>> {
        let folder = self.prefix_path(prefix)?;
        let entries = match fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(Error::io(&folder, "cannot list", err)),
        };
        let mut names = Vec::new();
        let mut not_utf8 = Vec::new();
        for entry in entries {
            let entry = entry.at(&folder, "cannot list")?;
            match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                Err(_) => not_utf8.push(ListedName::NotUtf8(entry.path().escaped().to_string())),
            }
        }
        names.sort();
        not_utf8.extend(names.into_iter().map(ListedName::Name));
        Ok(not_utf8)
    }

    /// A walk of the folder: a regular file (or anything not a folder) is a key, a folder a
    /// deeper prefix; names that are not UTF-8 are left out (`fsck` names them).
    fn list_keys_below(&self, prefix: &str) -> Result<Vec<String>> {
        let folder = self.prefix_path(prefix)?;
        let entries = match fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(Error::io(&folder, "cannot list", err)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.at(&folder, "cannot list")?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_folder = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_folder {
                keys.extend(self.list_keys_below(&format!("{prefix}{name}/"))?);
            } else {
                keys.push(format!("{prefix}{name}"));
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn key_space_exists(&self, prefix: &str) -> Result<bool> {
        let folder = self.prefix_path(prefix)?;
        Ok(fs::symlink_metadata(folder).is_ok_and(|m| m.is_dir()))
    }

    fn create_key_space(&self, prefix: &str, keys: &[(String, Vec<u8>)]) -> Result<bool> {
        let folder = self.prefix_path(prefix)?;
        if self.key_space_exists(prefix)? {
            return Ok(false);
        }
        let staged = tempfile::Builder::new()
            .prefix("refs-")
            .tempdir_in(&self.tmp)
            .at(&self.tmp, "cannot create a temporary folder in")?;
        let building = LocalKeys::new(staged.path(), &self.tmp);
        for (key, bytes) in keys {
            let below = key
                .strip_prefix(prefix)
                .ok_or_else(|| Error::Internal(format!("key {key:?} is not below {prefix:?}")))?;
            match building.create_key_if_absent(below, bytes)? {
                KeyCreated::Created => {}
                KeyCreated::AlreadyExists(existing) if existing == *bytes => {}
                KeyCreated::AlreadyExists(_) => {
                    return Err(Error::Internal(format!(
                        "key {key:?} given twice with different bytes"
                    )))
                }
            }
        }
        // A temp folder is private (0700); the key space is as readable as the rest of the store.
        fs::set_permissions(staged.path(), fs::Permissions::from_mode(0o755))
            .at(staged.path(), "cannot set the mode of")?;
        sync_folder(staged.path())?;
        match rename_no_replace(staged.path(), &folder) {
            Ok(()) => {
                let _ = staged.keep();
                sync_folder(folder.parent().unwrap_or(Path::new(".")))?;
                Ok(true)
            }
            // Another process created it meanwhile: theirs is complete too.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(Error::io(&folder, "cannot create", err)),
        }
    }
}

/// The bytes of the store key (a `what`: commit marker, event log key) at `path`, or `None` if
/// there is none. Refuses anything but a regular
/// file (a FIFO would block the open forever, a link is never followed) and reads at most 64 KiB.
/// A writer meeting a key an earlier evstore created private (mode 0600) makes it read-only
/// for everyone (0444), as keys are now created, so a read-only auditor can check the store.
fn read_existing_key(path: &Path, what: &str) -> Result<Option<Vec<u8>>> {
    use std::os::unix::fs::OpenOptionsExt;
    const MAX_MARKER_BYTES: u64 = 64 * 1024;
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io(path, "cannot stat the store key", err)),
    };
    if !meta.is_file() {
        return Err(Error::corrupt(
            format!("{what} {}", path.escaped()),
            "is not a regular file",
        ));
    }
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .at(path, "cannot read the store key")?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_MARKER_BYTES + 1)
        .read_to_end(&mut bytes)
        .at(path, "cannot read the store key")?;
    if bytes.len() as u64 > MAX_MARKER_BYTES {
        return Err(Error::corrupt(
            format!("{what} {}", path.escaped()),
            format!("is larger than {MAX_MARKER_BYTES} bytes"),
        ));
    }
    if meta.permissions().mode() & 0o777 != 0o444 {
        // Best effort: a store this user does not own keeps its modes, and reads still work.
        let _ = file.set_permissions(fs::Permissions::from_mode(0o444));
    }
    Ok(Some(bytes))
}

/// What a key is called in messages: a commit marker (`refs/…`), an event log key (`log/…`).
fn key_noun(key: &str) -> &'static str {
    if key.starts_with("log/") {
        "event log key"
    } else if key.starts_with("refs/") {
        "commit marker"
    } else {
        "store key"
    }
}

/// Create `folder` and its missing parents, fsyncing each parent that gained one.
fn create_folders(folder: &Path) -> Result<()> {
    // `symlink_metadata`, not `is_dir`: a symbolic link to a folder is not a folder here.
    if fs::symlink_metadata(folder).is_ok_and(|meta| meta.is_dir()) {
        return Ok(());
    }
    if let Some(parent) = folder.parent() {
        create_folders(parent)?;
    }
    match fs::create_dir(folder) {
        Ok(()) => sync_folder(folder.parent().unwrap_or(Path::new("."))),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(Error::io(folder, "cannot create", err)),
    }
}
