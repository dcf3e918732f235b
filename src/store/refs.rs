//! Commit markers: small files in the store folder that witness what the catalog committed.
//!
//! The catalog says what was committed (a packet exists once its `ingest` event committed), but
//! the catalog is one file that can be lost, damaged, or replaced by an older copy. The markers
//! are the store's own record of the same facts, written once and never changed, so that none of
//! those can make a committed packet disappear silently, a version number be used twice, or a
//! record of a failed ingest come back as a packet:
//!
//! - `refs/packets/<NAME>/<N>`: the version claim (store layout 2): version `N` of `NAME` is the
//!   record's whose id the file holds (64 lowercase hex digits and a newline). Created with
//!   create-if-absent after the record is durable and before the catalog commits
//!   ([`Refs::claim_packet`]); a claim another record holds sends the ingest to `N+1`. The other
//!   markers below are written after their commit.
//! - `refs/runs/<ATTESTATION ID>`: a rerun attestation was committed; the file holds the
//!   `packet_tree_sha256` the rerun expected (64 lowercase hex digits) and a newline.
//! - `refs/forgotten/<ID>`: `evstore forget` acknowledged the record or attestation `ID` as lost;
//!   the file holds the `forget` event's detail (compact JSON) and a newline.
//!
//! Each marker is a named key (see [`crate::store::NamedKeys`]) of the store's backend, `refs/…`, written right
//! after the catalog transaction it witnesses committed, with create-if-absent (in a store
//! folder: a temp file in `tmp/`, fsynced, renamed to its name without replacing anything, and
//! the folder fsynced): an existing marker with the same bytes is success, with other bytes an
//! error. So a marker never names something uncommitted; a crash between the commit and the
//! marker leaves a committed packet without one, which the catalog still lists, `fsck` notes, and
//! `reindex` writes. A store made before markers existed has no `refs/` key space;
//! [`Refs::ensure`] creates it whole (one marker per packet, run and forget the caller lists:
//! `ops::markers` lists them from the catalog) before the first write that needs it. This module
//! does not know the catalog.
//!
//! **Architecture Invariant:** `refs/` exists only complete: every packet, run and forget the
//! catalog held when it was created has its marker, and every later commit adds its own.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Blake3Digest;
use crate::error::{Error, Result};
use crate::fsio::Lock;
use crate::store::backend::{KeyCreated, KeyRead, ListedName, ObjectBackend};
use crate::store::Store;
use crate::text::EscapePath;

/// The folder of commit markers in a store.
pub const REFS_DIR_NAME: &str = "refs";

/// The key space of the commit markers.
const REFS_PREFIX: &str = "refs/";

/// The largest marker a reader accepts.
const MAX_MARKER_BYTES: u64 = 64 * 1024;

/// The commit markers of one store.
pub struct Refs<'a> {
    keys: &'a dyn ObjectBackend,
    /// The store folder, to name markers in messages (`<store>/refs/…`).
    store_root: PathBuf,
    /// The shared side of the writers' lock (an `flock` on `tmp/`), so that `gc-temp` never
    /// removes a marker's temp file while it is written; `None` where the caller holds the
    /// exclusive side (`reindex`).
    _writer_lock: Option<Lock>,
    /// True for an S3 store: its `refs/` exists once a packet is claimed (a bucket has no empty
    /// folders), and it never predates markers, so there is nothing to make from a catalog.
    remote: bool,
}

/// One commit marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marker {
    /// `refs/packets/NAME/N`: packet `NAME@N` with record `record` was committed.
    Packet {
        /// The packet name.
        name: String,
        /// Its version.
        version: u64,
        /// Its record id.
        record: Blake3Digest,
    },
    /// `refs/runs/ID`: rerun attestation `id`, which expected `expected_sha256`, was committed.
    Run {
        /// The attestation id.
        id: Blake3Digest,
        /// The packet_tree_sha256 the rerun expected (hex).
        expected_sha256: String,
    },
    /// `refs/forgotten/ID`: `forget` acknowledged `id` as lost (`detail`: the event's JSON).
    Forgotten {
        /// The id forgotten.
        id: Blake3Digest,
        /// The `forget` event's detail.
        detail: String,
    },
    /// `refs/restored/ID`: `reindex` indexed the forgotten item `id` again.
    Restored {
        /// The id restored.
        id: Blake3Digest,
    },
}

impl Marker {
    /// The marker's key.
    pub fn key(&self) -> String {
        match self {
            Marker::Packet { name, version, .. } => format!("refs/packets/{name}/{version}"),
            Marker::Run { id, .. } => format!("refs/runs/{}", id.to_hex()),
            Marker::Forgotten { id, .. } => format!("refs/forgotten/{}", id.to_hex()),
            Marker::Restored { id } => format!("refs/restored/{}", id.to_hex()),
        }
    }

    /// The marker's bytes: its text and a newline.
    pub fn content(&self) -> String {
        let text = match self {
            Marker::Packet { record, .. } => record.to_hex(),
            Marker::Run {
                expected_sha256, ..
            } => expected_sha256.clone(),
            Marker::Forgotten { detail, .. } => detail.clone(),
            Marker::Restored { .. } => "restored".to_string(),
        };
        format!("{text}\n")
    }
}

/// Everything the markers say.
#[derive(Clone, Debug, Default)]
pub struct Markers {
    /// Committed packet records: id → `NAME@N`.
    pub records: BTreeMap<Blake3Digest, String>,
    /// Committed rerun attestations: id → the packet_tree_sha256 the rerun expected.
    pub attestations: BTreeMap<Blake3Digest, String>,
    /// Ids acknowledged as lost.
    pub forgotten: HashSet<Blake3Digest>,
    /// Forgotten ids that were indexed again later (`refs/restored/ID`).
    pub restored: HashSet<Blake3Digest>,
    /// Markers that cannot be read or make no sense (each a failure for `fsck`).
    pub problems: Vec<(String, String)>,
}

impl<'a> Refs<'a> {
    /// The markers of `store` (which may not have a `refs/` key space yet), for a writer: holds
    /// the shared side of the writers' lock while it lives, waiting while `reindex` or `gc-temp`
    /// holds the exclusive side.
    pub fn for_writer(store: &'a Store) -> Result<Refs<'a>> {
        let writer_lock = store.lock_writers_shared()?;
        let refs = Refs {
            keys: store.backend(),
            store_root: store.root().to_path_buf(),
            _writer_lock: Some(writer_lock),
            remote: store.is_remote(),
        };
        refs.check_shape()?;
        Ok(refs)
    }

    /// The markers of `store`, for a reader, or for a writer that holds the exclusive side of the
    /// writers' lock itself (`reindex`).
    pub fn unlocked(store: &'a Store) -> Refs<'a> {
        Refs {
            keys: store.backend(),
            store_root: store.root().to_path_buf(),
            _writer_lock: None,
            remote: store.is_remote(),
        }
    }

    /// Where `key` is shown in messages: below the store folder.
    fn shown(&self, key: &str) -> PathBuf {
        self.store_root.join(key)
    }

    /// Where `key` is shown in messages, as text.
    pub fn shown_key(&self, key: &str) -> String {
        self.shown(key).escaped().to_string()
    }

    /// True if the store has its markers (the `refs/` key space exists; it exists only
    /// complete).
    pub fn present(&self) -> bool {
        self.keys.key_space_exists(REFS_PREFIX).unwrap_or(false)
    }

    /// Refuse a `refs` that is not a real folder (a symlink, a file): markers written through
    /// it would land outside the store, and readers would not see them. (A store folder's
    /// layout; a backend without folders has nothing there.)
    pub fn check_shape(&self) -> Result<()> {
        let root = self.store_root.join(REFS_DIR_NAME);
        match std::fs::symlink_metadata(&root) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(Error::corrupt(
                format!("commit markers {}", root.escaped()),
                "is not a real folder (a symbolic link or a file); evstore never writes or reads \
                 markers through it: move it aside and run `evstore reindex --replace`",
            )),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io(&root, "cannot stat", err)),
        }
    }

    /// Create the `refs/` key space holding `initial()`'s markers if the store has none yet (a
    /// store made before markers): created whole, so it never exists partial. `initial` runs only
    /// then.
    pub fn ensure(&self, initial: impl FnOnce() -> Result<Vec<Marker>>) -> Result<()> {
        if self.remote || self.present() {
            return Ok(());
        }
        let mut keys: BTreeMap<String, String> = BTreeMap::new();
        for marker in initial()? {
            let key = marker.key();
            let content = marker.content();
            match keys.get(&key) {
                Some(existing) => check_same(&self.shown(&key), existing.as_bytes(), &content)?,
                None => {
                    keys.insert(key, content);
                }
            }
        }
        let keys: Vec<(String, Vec<u8>)> = keys
            .into_iter()
            .map(|(key, content)| (key, content.into_bytes()))
            .collect();
        // False when another process created it meanwhile: theirs is complete too.
        self.keys.create_key_space(REFS_PREFIX, &keys)?;
        Ok(())
    }

    /// Witness that packet `NAME@version` with record `record` was committed.
    pub fn mark_packet(&self, name: &str, version: u64, record: &Blake3Digest) -> Result<()> {
        self.write_once(&Marker::Packet {
            name: name.to_string(),
            version,
            record: *record,
        })
    }

    /// Claim version `version` of `name` for the record `record` (durable: the record object is
    /// published before), with create-if-absent, before the catalog commits the version: the
    /// claim is what makes the version number this record's. `Ok(None)` when this call created
    /// the claim or it already names `record`; `Ok(Some(other))` when another record holds the
    /// version (a writer the catalog has not seen): the caller takes the next number.
    ///
    /// # Errors
    ///
    /// The claim cannot be created or read, or what holds it is not a record id.
    pub fn claim_packet(
        &self,
        name: &str,
        version: u64,
        record: &Blake3Digest,
    ) -> Result<Option<Blake3Digest>> {
        let marker = Marker::Packet {
            name: name.to_string(),
            version,
            record: *record,
        };
        let key = marker.key();
        let content = marker.content();
        match self.keys.create_key_if_absent(&key, content.as_bytes())? {
            KeyCreated::Created => Ok(None),
            KeyCreated::AlreadyExists(existing) if existing == content.as_bytes() => Ok(None),
            KeyCreated::AlreadyExists(existing) => {
                let other = std::str::from_utf8(&existing)
                    .ok()
                    .and_then(|text| text.strip_suffix('\n'))
                    .and_then(Blake3Digest::parse_hex);
                match other {
                    Some(other) => Ok(Some(other)),
                    None => Err(Error::corrupt(
                        format!("version claim {}", self.shown(&key).escaped()),
                        "does not hold a record id and a newline",
                    )),
                }
            }
        }
    }

    /// Witness that rerun attestation `id`, which expected `expected_sha256`, was committed.
    pub fn mark_run(&self, id: &Blake3Digest, expected_sha256: &str) -> Result<()> {
        self.write_once(&Marker::Run {
            id: *id,
            expected_sha256: expected_sha256.to_string(),
        })
    }

    /// Witness that `forget` acknowledged `id` as lost (`detail`: the event's detail JSON).
    pub fn mark_forgotten(&self, id: &Blake3Digest, detail: &str) -> Result<()> {
        self.write_once(&Marker::Forgotten {
            id: *id,
            detail: detail.to_string(),
        })
    }

    /// Witness that `reindex` indexed the forgotten item `id` again (its objects came back):
    /// its `forget` no longer applies.
    pub fn mark_restored(&self, id: &Blake3Digest) -> Result<()> {
        self.write_once(&Marker::Restored { id: *id })
    }

    /// Every `(name, version)` that a version claim `refs/packets/NAME/N` exists for, listed
    /// without reading the claims.
    ///
    /// # Errors
    ///
    /// The claims cannot be listed.
    pub fn list_packet_claims(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        // A store folder's `refs` that is not a real folder lists nothing here (`check_shape`
        // refuses it for writers, and `fsck` names it); a bucket has no folders to check.
        if !self.remote && !self.present() {
            return Ok(out);
        }
        for key in self.keys.list_keys_below("refs/packets/")? {
            let Some((name, version)) = key
                .strip_prefix("refs/packets/")
                .and_then(|rest| rest.split_once('/'))
            else {
                continue;
            };
            if let Some(version) = version.parse::<u64>().ok().filter(|v| *v > 0) {
                out.push((name.to_string(), version));
            }
        }
        Ok(out)
    }

    /// The record id the claim `refs/packets/NAME/N` holds, if it reads as one.
    pub fn read_packet_claim(&self, name: &str, version: u64) -> Option<Blake3Digest> {
        let text = self
            .read_marker(&format!("refs/packets/{name}/{version}"))
            .ok()?;
        Blake3Digest::parse_hex(&text)
    }

    /// The record id the claim `refs/packets/NAME/N` holds, or `None` if there is no such key:
    /// for a writer about to number a version, which must not guess.
    ///
    /// # Errors
    ///
    /// The claim cannot be read, or does not hold a record id and a newline.
    pub fn read_packet_claim_strictly(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<Blake3Digest>> {
        let key = format!("refs/packets/{name}/{version}");
        let bytes = match self.keys.read_key(&key, MAX_MARKER_BYTES)? {
            KeyRead::Found(bytes) => bytes,
            KeyRead::Missing => return Ok(None),
            KeyRead::TooLarge => {
                return Err(Error::corrupt(
                    format!("version claim {}", self.shown(&key).escaped()),
                    "is larger than a commit marker can be",
                ))
            }
            KeyRead::Unreadable(reason) => {
                return Err(Error::corrupt(
                    format!("version claim {}", self.shown(&key).escaped()),
                    format!("cannot be read: {reason}"),
                ))
            }
        };
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.strip_suffix('\n'))
            .and_then(Blake3Digest::parse_hex)
            .map(Some)
            .ok_or_else(|| {
                Error::corrupt(
                    format!("version claim {}", self.shown(&key).escaped()),
                    "does not hold a record id and a newline",
                )
            })
    }

    /// The highest version a marker gives `name` (0 if none).
    pub fn highest_version(&self, name: &str) -> Result<u64> {
        Ok(self.claimed_versions(name)?.last().copied().unwrap_or(0))
    }

    /// Every version of `name` a claim (`refs/packets/NAME/N`) holds, from one listing.
    pub fn claimed_versions(&self, name: &str) -> Result<std::collections::BTreeSet<u64>> {
        let mut versions = std::collections::BTreeSet::new();
        for listed in self.keys.list_names(&format!("refs/packets/{name}/"))? {
            if let ListedName::Name(version) = listed {
                if let Ok(version) = version.parse::<u64>() {
                    versions.insert(version);
                }
            }
        }
        Ok(versions)
    }

    /// Read every marker. Unreadable or malformed markers are listed in `problems`.
    pub fn read_all(&self) -> Result<Markers> {
        self.check_shape()?;
        let mut markers = Markers::default();
        if !self.present() {
            return Ok(markers);
        }
        for name in self.list("refs/packets/", &mut markers.problems)? {
            let folder = format!("refs/packets/{name}/");
            for version in self.list(&folder, &mut markers.problems)? {
                let key = format!("{folder}{version}");
                let shown = self.shown(&key).escaped().to_string();
                let label = format!("{name}@{version}");
                match self.read_marker(&key) {
                    Ok(text) if version.parse::<u64>().is_ok_and(|v| v > 0) => {
                        match Blake3Digest::parse_hex(&text) {
                            Some(id) => {
                                markers.records.insert(id, label);
                            }
                            None => markers
                                .problems
                                .push((shown, "does not hold a record id".into())),
                        }
                    }
                    Ok(_) => markers
                        .problems
                        .push((shown, "is not named by a version number".into())),
                    Err(reason) => markers.problems.push((shown, reason)),
                }
            }
        }
        for name in self.list("refs/runs/", &mut markers.problems)? {
            let key = format!("refs/runs/{name}");
            let shown = self.shown(&key).escaped().to_string();
            match (Blake3Digest::parse_hex(&name), self.read_marker(&key)) {
                (Some(id), Ok(label)) => {
                    markers.attestations.insert(id, label);
                }
                (None, _) => markers
                    .problems
                    .push((shown, "is not named by an attestation id".into())),
                (_, Err(reason)) => markers.problems.push((shown, reason)),
            }
        }
        for (folder, set) in [
            ("refs/forgotten/", &mut markers.forgotten),
            ("refs/restored/", &mut markers.restored),
        ] {
            for name in self.list(folder, &mut markers.problems)? {
                match Blake3Digest::parse_hex(&name) {
                    Some(id) => {
                        set.insert(id);
                    }
                    None => markers.problems.push((
                        self.shown(&format!("{folder}{name}")).escaped().to_string(),
                        "is not named by an object id".into(),
                    )),
                }
            }
        }
        Ok(markers)
    }

    /// The names directly below `prefix`, in order; a name that is not UTF-8 is a problem.
    fn list(&self, prefix: &str, problems: &mut Vec<(String, String)>) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for listed in self.keys.list_names(prefix)? {
            match listed {
                ListedName::Name(name) => names.push(name),
                ListedName::NotUtf8(shown) => problems.push((
                    shown,
                    "a name that is not UTF-8 has no place among commit markers".into(),
                )),
            }
        }
        Ok(names)
    }

    /// A marker's text without its final newline; at most 64 KiB, a regular file.
    fn read_marker(&self, key: &str) -> std::result::Result<String, String> {
        let bytes = match self.keys.read_key(key, MAX_MARKER_BYTES) {
            Ok(KeyRead::Found(bytes)) => bytes,
            Ok(KeyRead::Missing) => return Err("cannot read: it vanished while listed".into()),
            Ok(KeyRead::TooLarge) => return Err("is larger than a commit marker can be".into()),
            Ok(KeyRead::Unreadable(reason)) => return Err(reason),
            Err(err) => return Err(format!("cannot read: {err}")),
        };
        let text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())?;
        match text.strip_suffix('\n') {
            Some(line) if !line.contains('\n') => Ok(line.to_string()),
            _ => Err("is not one line ending in a newline".into()),
        }
    }

    /// Write `marker` once: an existing marker with the same bytes is success; with other bytes
    /// it is an error (a marker is never replaced).
    fn write_once(&self, marker: &Marker) -> Result<()> {
        let key = marker.key();
        let content = marker.content();
        match self.keys.create_key_if_absent(&key, content.as_bytes())? {
            KeyCreated::Created => Ok(()),
            KeyCreated::AlreadyExists(existing) => {
                check_same(&self.shown(&key), &existing, &content)
            }
        }
    }
}

fn check_same(path: &Path, existing: &[u8], content: &str) -> Result<()> {
    if existing == content.as_bytes() {
        Ok(())
    } else {
        Err(Error::corrupt(
            format!("commit marker {}", path.escaped()),
            format!(
                "it holds {:?}, not {:?}: another record claims this name and version (a catalog \
                 older than the store's markers?); nothing was replaced",
                String::from_utf8_lossy(existing).trim_end(),
                content.trim_end()
            ),
        ))
    }
}
