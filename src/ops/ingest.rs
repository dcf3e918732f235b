//! Hashing and archiving packet folders: the ingest pipeline.
//!
//! [`hash_packet`] reads every file of a packet once, in parallel across cores, feeding each
//! chunk to BLAKE3, SHA-256 and (when archiving) zstd in the same pass, and builds the manifest
//! and the Merkle tree. [`ingest`] does the same into an [`ObjectBatch`], checks the files
//! against the folder's seal if it has one, commits the objects durably, and only then records
//! the packet in the catalog. A refused ingest leaves the store as it was: its staged objects are
//! temp files, deleted when the batch is dropped.
//!
//! Files are streamed in 256 KiB chunks; files up to 1 MiB are read into one buffer, so their
//! object can be skipped before compressing when the store already has it. A file whose size or
//! modification time changes while it is read is an error.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::catalog::{AddOutcome, Catalog, ObjectRow, PacketRow};
use crate::digest::{blake3_of, DualHasher, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::format::manifest::Manifest;
use crate::format::object::ObjectKind;
use crate::format::record::PacketRecord;
use crate::format::tree::{build_tree, manifest_of, BuiltTree, FileMeta, HashedFile};
use crate::fsio::{changed_while_read, check_unchanged};
use crate::progress::Progress;
use crate::scan::{scan_dir, PacketFile, RootDir, Scan, SEAL_FILE_NAME};
use crate::store::refs::Refs;
use crate::store::{ObjectBatch, Store};
use crate::text::EscapePath;

/// Files up to this size are read into memory whole (still once).
pub const SMALL_FILE_LIMIT: u64 = 1024 * 1024;
const CHUNK: usize = 256 * 1024;

/// A packet folder, hashed.
#[derive(Clone, Debug)]
pub struct HashedPacket {
    /// The folder.
    pub root: PathBuf,
    /// Every file, sorted by path bytes.
    pub files: Vec<HashedFile>,
    /// The canonical manifest.
    pub manifest: Manifest,
    /// The Merkle tree.
    pub tree: BuiltTree,
    /// The top-level `HASH_MANIFEST.txt`, if present.
    pub seal: Option<PathBuf>,
}

impl HashedPacket {
    /// `packet_tree_sha256`.
    pub fn packet_tree_sha256(&self) -> Sha256Digest {
        self.manifest.packet_tree_sha256()
    }

    /// The sum of the file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.meta.size).sum()
    }
}

/// Hash a packet folder without storing anything. A folder that is a symlink is refused.
pub fn hash_packet(root: &Path) -> Result<HashedPacket> {
    hash_dir(Arc::new(RootDir::open(root)?))
}

/// [`hash_packet`] of an already opened folder.
pub fn hash_dir(dir: Arc<RootDir>) -> Result<HashedPacket> {
    hash_scanned(scan_dir(dir)?, None, &Progress::silent())
}

fn hash_scanned(
    scanned: Scan,
    batch: Option<&ObjectBatch<'_>>,
    progress: &Progress,
) -> Result<HashedPacket> {
    let root = scanned.root.clone();
    let dir = &scanned.dir;
    let files = scanned.require_regular_files()?;
    let phase_name = if batch.is_some() { "ingest" } else { "hash" };
    let _phase = progress.phase(phase_name, files.iter().map(|f| f.size).sum());
    let hashed: Vec<HashedFile> = files
        .par_iter()
        .map(|file| hash_file(dir, file, batch, progress))
        .collect::<Result<_>>()?;
    let manifest = manifest_of(&hashed)?;
    let tree = build_tree(&hashed)?;
    Ok(HashedPacket {
        root,
        files: hashed,
        manifest,
        tree,
        seal: scanned.seal,
    })
}

/// Read one file once, hashing it and (with a batch) staging its object.
fn hash_file(
    dir: &RootDir,
    file: &PacketFile,
    batch: Option<&ObjectBatch<'_>>,
    progress: &Progress,
) -> Result<HashedFile> {
    crate::interrupt::check()?;
    let path = &file.abs_path;
    let mut handle = dir.open_file(&file.rel_path)?;
    let before = handle.metadata().at(path, "cannot stat")?;
    if !before.is_file() || before.len() != file.size {
        return Err(changed_while_read(path));
    }
    let mut hasher = DualHasher::new();
    if file.size <= SMALL_FILE_LIMIT {
        let mut buf = Vec::with_capacity(file.size as usize);
        (&mut handle)
            .take(file.size + 1)
            .read_to_end(&mut buf)
            .at(path, "cannot read")?;
        if buf.len() as u64 != file.size {
            return Err(changed_while_read(path));
        }
        hasher.update(&buf);
        let digest = hasher.finish();
        if let Some(batch) = batch {
            batch.add_bytes(digest.blake3, ObjectKind::Blob, &buf)?;
        }
        check_unchanged(&handle, &before, path)?;
        progress.advance(file.size);
        return Ok(hashed(file, digest));
    }
    let mut writer = match batch {
        Some(batch) => Some(batch.stream(ObjectKind::Blob, file.size)?),
        None => None,
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        crate::interrupt::check()?;
        let n = match handle.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io(path, "cannot read", err)),
        };
        hasher.update(&buf[..n]);
        if hasher.len() > file.size {
            return Err(changed_while_read(path));
        }
        if let Some(writer) = writer.as_mut() {
            writer
                .write_all(&buf[..n])
                .at(path, "cannot compress into the store")?;
        }
        progress.advance(n as u64);
    }
    if hasher.len() != file.size {
        return Err(changed_while_read(path));
    }
    check_unchanged(&handle, &before, path)?;
    let digest = hasher.finish();
    if let (Some(batch), Some(writer)) = (batch, writer) {
        batch.add_stream(digest.blake3, writer)?;
    }
    Ok(hashed(file, digest))
}

fn hashed(file: &PacketFile, digest: crate::digest::DualDigest) -> HashedFile {
    HashedFile {
        rel_path: file.rel_path.clone(),
        meta: FileMeta {
            size: digest.len,
            executable: file.executable,
            blake3: digest.blake3,
            sha256: digest.sha256,
        },
    }
}

/// Differences between a folder and its seal, by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealDifferences {
    /// Listed in the seal with other bytes on disk.
    pub changed: Vec<String>,
    /// Listed in the seal, absent on disk.
    pub missing: Vec<String>,
    /// On disk, not listed in the seal.
    pub extra: Vec<String>,
}

impl SealDifferences {
    /// Compare a seal with a folder's manifest.
    pub fn between(seal: &Manifest, disk: &Manifest) -> SealDifferences {
        let mut out = SealDifferences::default();
        for entry in seal.entries() {
            match disk.get(&entry.path) {
                None => out.missing.push(entry.path.clone()),
                Some(sha) if *sha != entry.sha256 => out.changed.push(entry.path.clone()),
                Some(_) => {}
            }
        }
        for entry in disk.entries() {
            if seal.get(&entry.path).is_none() {
                out.extra.push(entry.path.clone());
            }
        }
        out
    }

    /// True if there is no difference.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }

    /// A one-paragraph summary naming every path.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (label, paths) in [
            ("changed", &self.changed),
            ("missing", &self.missing),
            ("extra", &self.extra),
        ] {
            if !paths.is_empty() {
                parts.push(format!("{label}: {}", paths.join(", ")));
            }
        }
        parts.join("; ")
    }
}

/// What to call a packet and what to record with it.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// The packet name.
    pub name: String,
    /// An optional note.
    pub note: Option<String>,
    /// The packet's source date; `None` means the ingest time.
    pub source_date_epoch: Option<i64>,
    /// Where to report the bytes read while hashing and storing.
    pub progress: Progress,
}

/// What an ingest did.
#[derive(Clone, Debug)]
pub struct IngestReport {
    /// The packet version, new or already archived.
    pub packet: PacketRow,
    /// False if this name already had a version with the same tree.
    pub created: bool,
    /// Objects this ingest wrote.
    pub objects_written: u64,
    /// Bytes of object files this ingest wrote.
    pub bytes_newly_stored: u64,
}

/// Archive the packet folder `root` into `store` and record it in `catalog`. A folder that is a
/// symlink is refused.
pub fn ingest(
    store: &Store,
    catalog: &mut Catalog,
    root: &Path,
    config: &IngestConfig,
) -> Result<IngestReport> {
    crate::packet_ref::check_packet_name(&config.name).map_err(Error::Usage)?;
    ingest_dir(store, catalog, Arc::new(RootDir::open(root)?), config)
}

/// [`ingest`] an already opened folder (rerun's output, read through the handle it hashed).
pub fn ingest_dir(
    store: &Store,
    catalog: &mut Catalog,
    dir: Arc<RootDir>,
    config: &IngestConfig,
) -> Result<IngestReport> {
    crate::packet_ref::check_packet_name(&config.name).map_err(Error::Usage)?;
    let root_path = dir.path().to_path_buf();
    let root = root_path.as_path();
    crate::store::refuse_store_inside_folder(store.root(), root)?;
    let scanned = scan_dir(dir)?;
    let seal = match &scanned.seal {
        Some(path) => {
            let path = path.clone();
            let bytes = crate::gate::read_seal_in(&scanned.dir, SEAL_FILE_NAME)?;
            Some((Manifest::parse_seal(&bytes, &path)?, path))
        }
        None => None,
    };
    let batch = store.batch()?;
    // Reported if a signal stops this ingest: dropping `batch` unlinks its temp files.
    let _cleanup = crate::interrupt::on_interrupt(crate::interrupt::Cleanup::Note(format!(
        "removed this ingest's temp files from {}",
        store.tmp_path().escaped()
    )));
    let packet = hash_scanned(scanned, Some(&batch), &config.progress)?;
    if let Some((seal, seal_path)) = &seal {
        let differences = SealDifferences::between(seal, &packet.manifest);
        if !differences.is_empty() {
            return Err(Error::Mismatch {
                what: seal_path.escaped().to_string(),
                reason: format!(
                    "the folder does not match its seal, so it is not archived ({})",
                    differences.describe()
                ),
            });
        }
    }
    for (id, bytes) in &packet.tree.nodes {
        batch.add_bytes(*id, ObjectKind::Tree, bytes)?;
    }
    crate::interrupt::check()?;
    let mut published = batch.commit()?;
    let mut objects: Vec<ObjectRow> = packet
        .files
        .iter()
        .map(|f| ObjectRow {
            id: f.meta.blake3,
            kind: ObjectKind::Blob.name().into(),
            size: f.meta.size,
        })
        .collect();
    objects.extend(packet.tree.nodes.iter().map(|(id, bytes)| ObjectRow {
        id: *id,
        kind: ObjectKind::Tree.name().into(),
        size: bytes.len() as u64,
    }));
    let source_path = std::fs::canonicalize(root)
        .unwrap_or_else(|_| root.to_path_buf())
        .to_string_lossy()
        .into_owned();
    let mut record_published = Vec::new();
    // The store's commit markers: created from the catalog if this store predates them, and
    // consulted so that a version number a marker holds is never given to another tree.
    let refs = Refs::for_writer(store)?;
    crate::ops::markers::ensure_markers(&refs, catalog)?;
    let version_floor = refs.highest_version(&config.name)?;
    crate::interrupt::check()?;
    let outcome = catalog.add_packet(
        &config.name,
        &packet.tree.root,
        &packet.files,
        &objects,
        version_floor,
        |version| {
            // Taken inside the catalog's write transaction, so that of two records for the same
            // NAME@N (an ingest killed after writing its record, then another), the committed
            // one is always the later: reindex relies on it.
            let created_unix_nanos = crate::now_unix_nanos();
            let source_date_epoch = config
                .source_date_epoch
                .unwrap_or((created_unix_nanos / 1_000_000_000) as i64);
            let record = PacketRecord {
                name: config.name.clone(),
                version,
                packet_tree_sha256: packet.packet_tree_sha256(),
                tree: packet.tree.root,
                file_count: packet.files.len() as u64,
                total_bytes: packet.total_bytes(),
                created_unix_nanos,
                source_date_epoch,
                tool_version: crate::TOOL_VERSION.to_string(),
                source_path: source_path.clone(),
                note: config.note.clone(),
            };
            let encoded = record.encode();
            let id = blake3_of(&encoded);
            // The point of no return: after a signal, neither the record nor the rows are
            // written (the transaction rolls back); once the record is published, the ingest
            // commits and completes.
            crate::interrupt::check()?;
            let record_batch = store.batch()?;
            record_batch.add_bytes(id, ObjectKind::Record, &encoded)?;
            record_published = record_batch.commit()?;
            Ok((id, record))
        },
    )?;
    published.extend(record_published);
    let newly: Vec<_> = published.iter().filter(|p| p.newly_stored).collect();
    let (packet, created) = match outcome {
        AddOutcome::Added(row) => (row, true),
        AddOutcome::AlreadyArchived(row) => (row, false),
    };
    {
        // After the commit: a marker never names an uncommitted record. A failure here leaves a
        // committed packet without its marker (`fsck` notes it; this ingest run again, or
        // `reindex`, writes it: an ingest that finds its tree already archived writes a missing
        // marker too).
        refs.mark_packet(
            &packet.record.name,
            packet.record.version,
            &packet.record_id,
        )
        .map_err(|err| {
            Error::Usage(format!(
                "{}@{} was archived (committed to the catalog), but its commit marker could \
                     not be written: {err}; `evstore reindex --replace` writes it",
                packet.record.name, packet.record.version
            ))
        })?;
    }
    Ok(IngestReport {
        packet,
        created,
        objects_written: newly.len() as u64,
        bytes_newly_stored: newly.iter().map(|p| p.stored_size).sum(),
    })
}
