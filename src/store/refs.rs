//! Commit markers: small files in the store folder that witness what the catalog committed.
//!
//! The catalog says what was committed (a packet exists once its `ingest` event committed), but
//! the catalog is one file that can be lost, damaged, or replaced by an older copy. The markers
//! are the store's own record of the same facts, written once and never changed, so that none of
//! those can make a committed packet disappear silently, a version number be used twice, or a
//! record of a failed ingest come back as a packet:
//!
//! - `refs/packets/<NAME>/<N>`: packet `NAME@N` was committed; the file holds its record id
//!   (64 lowercase hex digits and a newline).
//! - `refs/runs/<ATTESTATION ID>`: a rerun attestation was committed; the file holds the
//!   `packet_tree_sha256` the rerun expected (64 lowercase hex digits) and a newline.
//! - `refs/forgotten/<ID>`: `evstore forget` acknowledged the record or attestation `ID` as lost;
//!   the file holds the `forget` event's detail (compact JSON) and a newline.
//!
//! A marker is written right after the catalog transaction it witnesses committed: into a temp
//! file in `tmp/`, fsynced, renamed to its name without replacing anything (an existing marker
//! with the same bytes is success, with other bytes an error), and the folder fsynced. So a
//! marker never names something uncommitted; a crash between the commit and the marker leaves a
//! committed packet without one, which the catalog still lists, `fsck` notes, and `reindex`
//! writes. A store made before markers existed has no `refs/` folder; [`Refs::ensure`] creates it
//! whole (one marker per catalog packet, run and forget event, built in `tmp/` and renamed into
//! place) before the first write that needs it.
//!
//! **Architecture Invariant:** `refs/` exists only complete: every packet, run and forget the
//! catalog held when it was created has its marker, and every later commit adds its own.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::digest::Blake3Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsio::{rename_no_replace, sync_folder, Lock};
use crate::store::Store;
use crate::text::EscapePath;

/// The folder of commit markers in a store.
pub const REFS_DIR_NAME: &str = "refs";

/// The commit markers of one store.
pub struct Refs {
    root: PathBuf,
    tmp: PathBuf,
    /// The shared side of the writers' lock (an `flock` on `tmp/`), so that `gc-temp` never
    /// removes a marker's temp file while it is written; `None` where the caller holds the
    /// exclusive side (`reindex`).
    _writer_lock: Option<Lock>,
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

impl Refs {
    /// The markers of `store` (which may not have a `refs/` folder yet), for a writer: holds the
    /// shared side of the writers' lock while it lives, waiting while `reindex` or `gc-temp`
    /// holds the exclusive side.
    pub fn for_writer(store: &Store) -> Result<Refs> {
        let writer_lock = store.lock_writers_shared()?;
        let refs = Refs {
            root: store.root().join(REFS_DIR_NAME),
            tmp: store.tmp_path(),
            _writer_lock: Some(writer_lock),
        };
        refs.check_shape()?;
        Ok(refs)
    }

    /// The markers of `store`, for a reader, or for a writer that holds the exclusive side of the
    /// writers' lock itself (`reindex`).
    pub fn unlocked(store: &Store) -> Refs {
        Refs {
            root: store.root().join(REFS_DIR_NAME),
            tmp: store.tmp_path(),
            _writer_lock: None,
        }
    }

    /// True if the store has its markers (`refs/` exists; it exists only complete).
    pub fn present(&self) -> bool {
        fs::symlink_metadata(&self.root).is_ok_and(|m| m.is_dir())
    }

    /// Refuse a `refs` that is not a real folder (a symlink, a file): markers written through
    /// it would land outside the store, and readers would not see them.
    pub fn check_shape(&self) -> Result<()> {
        match fs::symlink_metadata(&self.root) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(Error::corrupt(
                format!("commit markers {}", self.root.escaped()),
                "is not a real folder (a symbolic link or a file); evstore never writes or reads \
                 markers through it: move it aside and run `evstore reindex --replace`",
            )),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io(&self.root, "cannot stat", err)),
        }
    }

    /// Create `refs/` from the catalog if the store has none yet (a store made before markers):
    /// built whole in `tmp/` and renamed into place, so it never exists partial.
    pub fn ensure(&self, catalog: &Catalog) -> Result<()> {
        if self.present() {
            return Ok(());
        }
        let staged = tempfile::Builder::new()
            .prefix("refs-")
            .tempdir_in(&self.tmp)
            .at(&self.tmp, "cannot create a temporary folder in")?;
        let building = Refs {
            root: staged.path().to_path_buf(),
            tmp: self.tmp.clone(),
            _writer_lock: None,
        };
        for row in catalog.packets()? {
            building.mark_packet(&row.record.name, row.record.version, &row.record_id)?;
        }
        // Committed packets the catalog no longer holds (lost, or forgotten) keep their version.
        for (id, (label, _)) in catalog.commitments()?.records {
            if let Some((name, version)) = label
                .rsplit_once('@')
                .and_then(|(n, v)| Some((n.to_string(), v.parse::<u64>().ok()?)))
            {
                if crate::packet_ref::check_packet_name(&name).is_ok() && version > 0 {
                    building.mark_packet(&name, version, &id)?;
                }
            }
        }
        for run in catalog.runs(None)? {
            if let Some(id) = Blake3Digest::parse_hex(&run.attestation) {
                building.mark_run(&id, &run.expected_sha256)?;
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
                building.mark_forgotten(&id, &event.detail)?;
            }
        }
        sync_folder(staged.path())?;
        match rename_no_replace(staged.path(), &self.root) {
            Ok(()) => {
                let _ = staged.keep();
                sync_folder(self.root.parent().unwrap_or(Path::new(".")))
            }
            // Another process created it meanwhile: theirs is complete too.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(Error::io(&self.root, "cannot create", err)),
        }
    }

    /// Witness that packet `NAME@version` with record `record` was committed.
    pub fn mark_packet(&self, name: &str, version: u64, record: &Blake3Digest) -> Result<()> {
        let folder = self.root.join("packets").join(name);
        self.write_once(&folder, &version.to_string(), &record.to_hex())
    }

    /// Witness that rerun attestation `id`, which expected `expected_sha256`, was committed.
    pub fn mark_run(&self, id: &Blake3Digest, expected_sha256: &str) -> Result<()> {
        self.write_once(&self.root.join("runs"), &id.to_hex(), expected_sha256)
    }

    /// Witness that `forget` acknowledged `id` as lost (`detail`: the event's detail JSON).
    pub fn mark_forgotten(&self, id: &Blake3Digest, detail: &str) -> Result<()> {
        self.write_once(&self.root.join("forgotten"), &id.to_hex(), detail)
    }

    /// Witness that `reindex` indexed the forgotten item `id` again (its objects came back):
    /// its `forget` no longer applies.
    pub fn mark_restored(&self, id: &Blake3Digest) -> Result<()> {
        self.write_once(&self.root.join("restored"), &id.to_hex(), "restored")
    }

    /// The highest version a marker gives `name` (0 if none).
    pub fn highest_version(&self, name: &str) -> Result<u64> {
        let folder = self.root.join("packets").join(name);
        let entries = match fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(Error::io(&folder, "cannot list", err)),
        };
        let mut highest = 0;
        for entry in entries {
            let entry = entry.at(&folder, "cannot list")?;
            if let Some(version) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                highest = highest.max(version);
            }
        }
        Ok(highest)
    }

    /// Read every marker. Unreadable or malformed markers are listed in `problems`.
    pub fn read_all(&self) -> Result<Markers> {
        self.check_shape()?;
        let mut markers = Markers::default();
        if !self.present() {
            return Ok(markers);
        }
        let packets = self.root.join("packets");
        for (name_dir, name) in list(&packets, &mut markers.problems)? {
            for (path, version) in list(&name_dir, &mut markers.problems)? {
                let label = format!("{name}@{version}");
                match read_marker(&path) {
                    Ok(text) if version.parse::<u64>().is_ok_and(|v| v > 0) => {
                        match Blake3Digest::parse_hex(&text) {
                            Some(id) => {
                                markers.records.insert(id, label);
                            }
                            None => markers.problems.push((
                                path.escaped().to_string(),
                                "does not hold a record id".into(),
                            )),
                        }
                    }
                    Ok(_) => markers.problems.push((
                        path.escaped().to_string(),
                        "is not named by a version number".into(),
                    )),
                    Err(reason) => markers.problems.push((path.escaped().to_string(), reason)),
                }
            }
        }
        for (path, name) in list(&self.root.join("runs"), &mut markers.problems)? {
            match (Blake3Digest::parse_hex(&name), read_marker(&path)) {
                (Some(id), Ok(label)) => {
                    markers.attestations.insert(id, label);
                }
                (None, _) => markers.problems.push((
                    path.escaped().to_string(),
                    "is not named by an attestation id".into(),
                )),
                (_, Err(reason)) => markers.problems.push((path.escaped().to_string(), reason)),
            }
        }
        for (folder, set) in [
            ("forgotten", &mut markers.forgotten),
            ("restored", &mut markers.restored),
        ] {
            for (path, name) in list(&self.root.join(folder), &mut markers.problems)? {
                match Blake3Digest::parse_hex(&name) {
                    Some(id) => {
                        set.insert(id);
                    }
                    None => markers.problems.push((
                        path.escaped().to_string(),
                        "is not named by an object id".into(),
                    )),
                }
            }
        }
        Ok(markers)
    }

    /// Write `folder/name` holding `text` and a newline, once: an existing marker with the same
    /// bytes is success; with other bytes it is an error (a marker is never replaced).
    fn write_once(&self, folder: &Path, name: &str, text: &str) -> Result<()> {
        let path = folder.join(name);
        let content = format!("{text}\n");
        if let Ok(existing) = fs::read(&path) {
            return check_same(&path, &existing, &content);
        }
        create_folders(folder)?;
        let mut temp = tempfile::Builder::new()
            .prefix("ref-")
            .tempfile_in(&self.tmp)
            .at(&self.tmp, "cannot create a temporary file in")?;
        temp.write_all(content.as_bytes())
            .and_then(|()| temp.as_file().sync_all())
            .at(temp.path(), "cannot write")?;
        match temp.persist_noclobber(&path) {
            Ok(_) => sync_folder(folder),
            Err(err) if err.error.kind() == io::ErrorKind::AlreadyExists => {
                let existing = fs::read(&path).at(&path, "cannot read the commit marker")?;
                check_same(&path, &existing, &content)
            }
            Err(err) => Err(Error::io(
                &path,
                "cannot write the commit marker",
                err.error,
            )),
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

/// Create `folder` and its missing parents, fsyncing each parent that gained one.
fn create_folders(folder: &Path) -> Result<()> {
    if folder.is_dir() {
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

/// The entries of `folder` as (path, UTF-8 name); a missing folder is empty; a name that is not
/// UTF-8 is a problem.
fn list(folder: &Path, problems: &mut Vec<(String, String)>) -> Result<Vec<(PathBuf, String)>> {
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io(folder, "cannot list", err)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.at(folder, "cannot list")?;
        match entry.file_name().into_string() {
            Ok(name) => out.push((entry.path(), name)),
            Err(_) => problems.push((
                entry.path().escaped().to_string(),
                "a name that is not UTF-8 has no place among commit markers".into(),
            )),
        }
    }
    out.sort();
    Ok(out)
}

/// A marker's text without its final newline; at most 64 KiB, a regular file.
fn read_marker(path: &Path) -> std::result::Result<String, String> {
    let meta = fs::symlink_metadata(path).map_err(|err| format!("cannot read: {err}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > 64 * 1024 {
        return Err("is larger than a commit marker can be".into());
    }
    let bytes = fs::read(path).map_err(|err| format!("cannot read: {err}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())?;
    match text.strip_suffix('\n') {
        Some(line) if !line.contains('\n') => Ok(line.to_string()),
        _ => Err("is not one line ending in a newline".into()),
    }
}
