//! The memory backend: objects, packs and named keys in maps, for tests.
//!
//! It implements [`ObjectBackend`] and [`NamedKeys`] with the same contract as the local backend
//! (put-if-absent, never replace, create-if-absent keys with the winner's bytes for the loser),
//! so the store's unit tests run the same checks against both. Its names for stored copies are
//! the keys a bucket would use: `objects/ab/cd…` and `packs/<hex>.pack`.
//!
//! **Architecture Invariant:** like every backend, nothing stored is ever replaced or modified.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::digest::Blake3Digest;
use crate::error::{Error, Result};
use crate::format::pack::{self, PackEntry};
use crate::store::backend::{
    check_key, KeyCreated, KeyRead, ListedName, ListedObject, NamedKeys, ObjectBackend,
    ObjectLocation, Published, Put, PutName,
};

/// Everything a [`MemoryBackend`] holds.
#[derive(Debug, Default)]
struct MemoryState {
    objects: BTreeMap<Blake3Digest, Vec<u8>>,
    packs: BTreeMap<Blake3Digest, (Vec<u8>, Vec<PackEntry>)>,
    keys: BTreeMap<String, Vec<u8>>,
    key_spaces: BTreeSet<String>,
}

/// A backend kept in memory.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    state: Mutex<MemoryState>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    fn state(&self) -> MutexGuard<'_, MemoryState> {
        // Every update is a single map insert, so a poisoned lock holds consistent maps.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn object_name(id: &Blake3Digest) -> PathBuf {
        let hex = id.to_hex();
        PathBuf::from(format!("objects/{}/{}", &hex[..2], &hex[2..]))
    }

    fn pack_name(name: &Blake3Digest) -> PathBuf {
        PathBuf::from(format!("packs/{}.{}", name.to_hex(), pack::PACK_EXTENSION))
    }

    /// The object id a loose name gives, or the pack name a pack name gives.
    fn id_in(name: &Path, prefix: &str, suffix: &str) -> Option<Blake3Digest> {
        let text = name.to_str()?.strip_prefix(prefix)?.strip_suffix(suffix)?;
        Blake3Digest::parse_hex(&text.replace('/', ""))
    }

    fn slice(bytes: &[u8], offset: u64, len: u64) -> Option<Vec<u8>> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        bytes.get(start..end).map(<[u8]>::to_vec)
    }
}

fn reader(bytes: Vec<u8>) -> Box<dyn Read + Send> {
    Box::new(std::io::Cursor::new(bytes))
}

fn not_stored(location: &ObjectLocation) -> Error {
    Error::io(
        location.to_string(),
        "cannot open object",
        std::io::Error::from(std::io::ErrorKind::NotFound),
    )
}

impl ObjectBackend for MemoryBackend {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn open(&self, id: &Blake3Digest) -> Result<Option<Box<dyn Read + Send>>> {
        let state = self.state();
        if let Some(bytes) = state.objects.get(id) {
            return Ok(Some(reader(bytes.clone())));
        }
        for (bytes, entries) in state.packs.values() {
            if let Some(entry) = entries.iter().find(|e| e.id == *id) {
                return Ok(Self::slice(bytes, entry.offset, entry.len).map(reader));
            }
        }
        Ok(None)
    }

    fn open_at(&self, location: &ObjectLocation) -> Result<Box<dyn Read + Send>> {
        let state = self.state();
        let bytes = match location {
            ObjectLocation::Loose(name) => {
                Self::id_in(name, "objects/", "").and_then(|id| state.objects.get(&id).cloned())
            }
            ObjectLocation::Packed { pack, offset, len } => Self::id_in(pack, "packs/", ".pack")
                .and_then(|name| state.packs.get(&name))
                .and_then(|(bytes, _)| Self::slice(bytes, *offset, *len)),
        };
        bytes.map(reader).ok_or_else(|| not_stored(location))
    }

    fn stat(&self, id: &Blake3Digest) -> Result<Option<u64>> {
        let state = self.state();
        if let Some(bytes) = state.objects.get(id) {
            return Ok(Some(bytes.len() as u64));
        }
        Ok(state
            .packs
            .values()
            .flat_map(|(_, entries)| entries.iter())
            .find(|e| e.id == *id)
            .map(|e| e.len))
    }

    fn list(&self) -> Result<Vec<ListedObject>> {
        let state = self.state();
        let mut out: Vec<ListedObject> = state
            .objects
            .iter()
            .map(|(id, bytes)| ListedObject::Object {
                id: *id,
                stored_size: bytes.len() as u64,
                location: ObjectLocation::Loose(Self::object_name(id)),
            })
            .collect();
        for (name, (_, entries)) in &state.packs {
            out.extend(ListedObject::packed(&Self::pack_name(name), entries));
        }
        Ok(out)
    }

    fn put_if_absent(&self, puts: Vec<Put>) -> Result<Vec<Published>> {
        let mut published = Vec::new();
        for put in puts {
            let stored_size = put.source.len();
            let bytes = put.source.into_bytes()?;
            let mut state = self.state();
            match put.name {
                PutName::Object(id) => {
                    let newly_stored = !state.objects.contains_key(&id);
                    state.objects.entry(id).or_insert(bytes);
                    published.push(Published {
                        id,
                        newly_stored,
                        stored_size,
                    });
                }
                PutName::Pack { name, entries } => {
                    let newly_stored = !state.packs.contains_key(&name);
                    published.extend(entries.iter().map(|entry| Published {
                        id: entry.id,
                        newly_stored,
                        stored_size: entry.len,
                    }));
                    state.packs.entry(name).or_insert((bytes, entries));
                }
            }
        }
        Ok(published)
    }
}

impl NamedKeys for MemoryBackend {
    fn create_key_if_absent(&self, key: &str, bytes: &[u8]) -> Result<KeyCreated> {
        check_key(key)?;
        let mut state = self.state();
        match state.keys.get(key) {
            Some(existing) => Ok(KeyCreated::AlreadyExists(existing.clone())),
            None => {
                state.keys.insert(key.to_string(), bytes.to_vec());
                Ok(KeyCreated::Created)
            }
        }
    }

    fn read_key(&self, key: &str, max_len: u64) -> Result<KeyRead> {
        check_key(key)?;
        Ok(match self.state().keys.get(key) {
            None => KeyRead::Missing,
            Some(bytes) if bytes.len() as u64 > max_len => KeyRead::TooLarge,
            Some(bytes) => KeyRead::Found(bytes.clone()),
        })
    }

    fn list_names(&self, prefix: &str) -> Result<Vec<ListedName>> {
        let state = self.state();
        let names: BTreeSet<String> = state
            .keys
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, _)| key[prefix.len()..].split('/').next().map(str::to_string))
            .collect();
        Ok(names.into_iter().map(ListedName::Name).collect())
    }

    fn key_space_exists(&self, prefix: &str) -> Result<bool> {
        Ok(space_exists(&self.state(), prefix))
    }

    fn create_key_space(&self, prefix: &str, keys: &[(String, Vec<u8>)]) -> Result<bool> {
        // One guard for the check and the inserts: of two racing creators, one creates it whole.
        let mut state = self.state();
        if space_exists(&state, prefix) {
            return Ok(false);
        }
        for (key, _) in keys {
            check_key(key)?;
            if !key.starts_with(prefix) {
                return Err(Error::Internal(format!(
                    "key {key:?} is not below {prefix:?}"
                )));
            }
        }
        for (key, bytes) in keys {
            state.keys.insert(key.clone(), bytes.clone());
        }
        state.key_spaces.insert(prefix.to_string());
        Ok(true)
    }
}

/// True if `prefix` was created as a key space or has a key below it.
fn space_exists(state: &MemoryState, prefix: &str) -> bool {
    state.key_spaces.contains(prefix)
        || state
            .keys
            .range(prefix.to_string()..)
            .next()
            .is_some_and(|(key, _)| key.starts_with(prefix))
}
