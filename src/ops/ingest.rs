//! Archiving packet folders: the ingest pipeline.
//!
//! [`hash_packet`] hashes a packet folder with the one folder hasher ([`crate::folder`]: every
//! byte read once, BLAKE3 and SHA-256 in the same pass) and builds the manifest and the Merkle
//! tree. [`ingest`] does the same while staging every object into an object batch, checks the
//! folder against its own seal (if it has one) with the gate engine, exactly as `evstore verify
//! DIR` does, commits the objects durably, and only then records the packet in the catalog. A
//! refused ingest ([`IngestOutcome::Refused`], or an error) leaves the store as it was: its staged
//! objects are temp files, deleted when the batch is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::{AddOutcome, Catalog, NewVersionConfig, ObjectRow, PacketRow};
use crate::digest::{blake3_of, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::folder::{hash_folder, Digests, FolderHashConfig, HashedFolder};
use crate::format::manifest::Manifest;
use crate::format::object::ObjectKind;
use crate::format::record::PacketRecord;
use crate::format::tree::{build_tree, manifest_of, BuiltTree, HashedFile};
use crate::gate::{self, GateReport, Side, Verdict};
use crate::progress::Progress;
use crate::scan::{scan_dir, RootDir, Scan, SEAL_FILE_NAME};
use crate::store::backend::Published;
use crate::store::refs::Refs;
use crate::store::Store;
use crate::text::EscapePath;

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
///
/// # Errors
///
/// A folder that cannot be opened as a real folder, a name the format cannot represent, an
/// entry that is not a regular file, an empty folder, a read error, or a file that changes while
/// it is read.
pub fn hash_packet(root: &Path) -> Result<HashedPacket> {
    hash_dir(Arc::new(RootDir::open(root)?))
}

/// [`hash_packet`] of an already opened folder.
///
/// # Errors
///
/// As [`hash_packet`].
pub fn hash_dir(dir: Arc<RootDir>) -> Result<HashedPacket> {
    let scanned = scan_dir(dir)?;
    scanned.require_regular_files()?;
    let progress = Progress::silent();
    packet_of(hash_folder(
        scanned,
        &FolderHashConfig::new("hash", Digests::Both, &progress),
    )?)
}

/// The packet a hashed folder holds: its manifest and Merkle tree. The folder must hold regular
/// files only (checked on its scan, before hashing).
fn packet_of(folder: HashedFolder) -> Result<HashedPacket> {
    let files = folder
        .files
        .iter()
        .map(|f| {
            f.packet_file().ok_or_else(|| {
                // The hasher computes both digests whenever a batch is given: a bug otherwise.
                Error::Internal(format!(
                    "{} was hashed without its BLAKE3",
                    folder.root.join(&f.rel_path).escaped()
                ))
            })
        })
        .collect::<Result<Vec<HashedFile>>>()?;
    let manifest = manifest_of(&files)?;
    let tree = build_tree(&files)?;
    Ok(HashedPacket {
        root: folder.root,
        files,
        manifest,
        tree,
        seal: folder.seal,
    })
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
    /// The key fingerprint (`SHA256:…`) of the folder's seal signature, kept in the store
    /// (`signatures/seals/`), if the folder had one.
    pub seal_signed_by: Option<String>,
}

/// What an ingest came to: the packet archived, or a sealed folder refused because it does not
/// match its seal.
#[derive(Clone, Debug)]
// One value per ingest, returned once: the size of a variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum IngestOutcome {
    /// The folder was archived (or its tree already was).
    Archived(IngestReport),
    /// The folder holds a `HASH_MANIFEST.txt` it does not match: nothing was stored.
    Refused(SealRefusal),
}

impl IngestOutcome {
    /// The report of an archived folder; a refusal becomes its [`SealRefusal::to_error`].
    ///
    /// # Errors
    ///
    /// The refusal, as a verification error (exit 1).
    pub fn archived(self) -> Result<IngestReport> {
        match self {
            IngestOutcome::Archived(report) => Ok(report),
            IngestOutcome::Refused(refusal) => Err(refusal.to_error()),
        }
    }
}

/// A sealed folder that does not match its seal, as the gate found it: the same comparison and
/// report as `evstore verify DIR` (the seal is the expected side, the folder the observed one).
#[derive(Clone, Debug)]
pub struct SealRefusal {
    /// The folder's `HASH_MANIFEST.txt`.
    pub seal: PathBuf,
    /// The gate's report (its verdict is FAIL).
    pub report: GateReport,
}

impl SealRefusal {
    /// One sentence: which seal, and that nothing was archived (the report says why).
    pub fn message(&self) -> String {
        format!(
            "{}: the folder does not match its seal, so it is not archived",
            self.seal.escaped()
        )
    }

    /// The refusal as a verification error (exit 1), for callers that do not render reports.
    pub fn to_error(&self) -> Error {
        Error::Mismatch {
            what: self.seal.escaped().to_string(),
            reason: format!(
                "the folder does not match its seal, so it is not archived ({})",
                self.report.verdict_line()
            ),
        }
    }
}

/// A folder to archive, opened once as a real folder (a symlink is refused, naming its target)
/// and checked once against the store it goes into: the store does not lie inside it, and it
/// does not lie inside the store. Everything an ingest reads of it goes through this handle.
#[derive(Clone, Debug)]
pub struct PacketFolder {
    dir: Arc<RootDir>,
}

impl PacketFolder {
    /// Open and check the folder `path` for an ingest into the store at `store_root` (which
    /// need not exist yet: a first ingest checks against where it will be).
    ///
    /// # Errors
    ///
    /// A folder that is a symlink, is not a folder, cannot be opened, holds the store, or lies
    /// inside the store.
    pub fn open(path: &Path, store_root: &Path) -> Result<PacketFolder> {
        let dir = RootDir::open(path).map_err(|err| match err {
            Error::Io { path, source, .. } => Error::io(path, "cannot read packet folder", source),
            other => other,
        })?;
        PacketFolder::opened(Arc::new(dir), store_root)
    }

    /// [`PacketFolder::open`] of a folder already opened (rerun's output, archived through the
    /// handle it was hashed through).
    ///
    /// # Errors
    ///
    /// A folder that holds the store or lies inside it.
    pub fn opened(dir: Arc<RootDir>, store_root: &Path) -> Result<PacketFolder> {
        crate::store::refuse_store_inside_folder(store_root, dir.path())?;
        crate::store::refuse_inside_store(store_root, dir.path(), "packet folder")?;
        Ok(PacketFolder { dir })
    }

    /// The path the folder was opened by, for messages.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The folder's real path, for the record: that of the folder actually opened (through its
    /// handle), so a path swapped since cannot name another folder.
    fn real_path(&self) -> Result<PathBuf> {
        use std::os::fd::{AsFd, AsRawFd};
        let fd = self.dir.as_fd().as_raw_fd();
        let by_handle = PathBuf::from(format!("/proc/self/fd/{fd}"));
        match std::fs::read_link(by_handle) {
            Ok(real) if real.is_absolute() => Ok(real),
            // No /proc (a sandbox): resolve the path it was opened by.
            _ => std::fs::canonicalize(self.path()).at(self.path(), "cannot resolve"),
        }
    }
}

/// Archive the packet folder `root` into `store` and record it in `catalog`. A folder that is a
/// symlink is refused.
///
/// # Errors
///
/// An invalid packet name; a folder that cannot be opened as a real folder, holds an entry that
/// is not a regular file, is empty, holds the store or lies inside it; a seal that cannot be
/// read or parsed; a read, write or catalog error; an interruption. A folder that does not match
/// its seal is not an error: it is [`IngestOutcome::Refused`].
pub fn ingest(
    store: &Store,
    catalog: &mut Catalog,
    root: &Path,
    config: &IngestConfig,
) -> Result<IngestOutcome> {
    crate::packet_ref::check_packet_name(&config.name).map_err(Error::Usage)?;
    let folder = PacketFolder::open(root, store.root())?;
    ingest_folder(store, catalog, &folder, config)
}

/// [`ingest`] an already opened folder (rerun's output, read through the handle it hashed).
///
/// # Errors
///
/// As [`ingest`].
pub fn ingest_dir(
    store: &Store,
    catalog: &mut Catalog,
    dir: Arc<RootDir>,
    config: &IngestConfig,
) -> Result<IngestOutcome> {
    crate::packet_ref::check_packet_name(&config.name).map_err(Error::Usage)?;
    let folder = PacketFolder::opened(dir, store.root())?;
    ingest_folder(store, catalog, &folder, config)
}

/// [`ingest`] a folder opened and checked by [`PacketFolder::open`] (the command line opens it
/// before a first ingest creates the store).
///
/// The folder's own `HASH_MANIFEST.txt`, if it has one, is read through the folder's handle
/// ([`gate::read_seal_in`]: no symlink followed, size capped) and parsed strictly before anything
/// is hashed; after hashing, the gate compares the folder with it exactly as `evstore verify DIR`
/// does, and a folder that does not pass is [`IngestOutcome::Refused`] with the gate's report,
/// its staged objects deleted.
///
/// # Errors
///
/// As [`ingest`].
pub fn ingest_folder(
    store: &Store,
    catalog: &mut Catalog,
    folder: &PacketFolder,
    config: &IngestConfig,
) -> Result<IngestOutcome> {
    crate::packet_ref::check_packet_name(&config.name).map_err(Error::Usage)?;
    let source_path = folder.real_path()?;
    let dir = folder.dir.clone();
    let scanned = scan_dir(dir)?;
    let seal = own_seal_of(&scanned)?;
    let scanned_signature = scanned.signature.clone();
    let signature_dir = scanned.dir.clone();
    scanned.require_regular_files()?;
    // On a store where asking whether an object exists is a request (S3), the catalog says
    // which objects are stored already; a local store asks its folder.
    let batch = if store.is_remote() {
        store.batch_knowing(catalog.object_ids()?)?
    } else {
        store.batch()?
    };
    // Reported if a signal stops this ingest: dropping `batch` unlinks its temp files.
    let _cleanup = crate::interrupt::on_interrupt(crate::interrupt::Cleanup::Note(format!(
        "removed this ingest's temp files from {}",
        store.tmp_path().escaped()
    )));
    let folder = hash_folder(
        scanned,
        &FolderHashConfig {
            batch: Some(&batch),
            ..FolderHashConfig::new("ingest", Digests::Both, &config.progress)
        },
    )?;
    if let Some(seal) = &seal {
        if let Some(refusal) = refusal_by_seal(seal, &folder)? {
            // Dropping `batch` deletes every object this ingest staged: nothing is stored.
            return Ok(IngestOutcome::Refused(refusal));
        }
    }
    let packet = packet_of(folder)?;
    // A signature beside the seal must sign it (the gate passed, so the seal is the canonical
    // manifest of what is archived): checked before anything is stored, kept after the objects.
    let seal_signature = match (&scanned_signature, &packet.seal) {
        (None, _) => None,
        (Some(path), None) => {
            return Err(Error::Usage(format!(
                "{}: a seal signature without a seal (HASH_MANIFEST.txt); seal the folder with \
                 `evstore seal DIR --sign KEY`, or remove the signature",
                path.escaped()
            )))
        }
        (Some(_), Some(_)) => {
            let bytes = crate::gate::signature::read_signature_in(
                &signature_dir,
                crate::scan::SIGNATURE_FILE_NAME,
            )?;
            let signer = crate::ops::signed_seals::check_folder_signature(
                &packet.root,
                packet.manifest.text().as_bytes(),
                &bytes,
            )?;
            Some((signer, bytes))
        }
    };
    for (id, bytes) in &packet.tree.nodes {
        batch.add_bytes(*id, ObjectKind::Tree, bytes)?;
    }
    crate::interrupt::check()?;
    // On a store where the batch trusted the catalog's list of stored objects (S3), commit first
    // confirms the ones this packet shares and stores again any the bucket lost.
    let committed = batch.commit_with_report()?;
    if !committed.stored_again.is_empty() {
        crate::notice::notice(&format!(
            "{} object(s) of this packet that this machine's catalog lists as stored were missing \
             from {} (deleted behind evstore's back?), among them {}; this ingest stored them \
             again. Other packets may miss objects too: run `evstore fsck`",
            committed.stored_again.len(),
            store.root().escaped(),
            committed.stored_again[0]
        ));
    }
    let mut published = committed.published;
    if let Some((signer, bytes)) = &seal_signature {
        crate::ops::signed_seals::keep_seal_signature(
            store,
            &packet.manifest.packet_tree_sha256(),
            packet.manifest.text().as_bytes(),
            signer,
            bytes,
        )?;
    }
    // The store's commit markers: created from the catalog if this store predates them, and
    // consulted so that a version number a marker holds is never given to another tree.
    let refs = Refs::for_writer(store)?;
    crate::ops::markers::ensure_markers(&refs, catalog)?;
    crate::ops::markers::ensure_log_attached(store, catalog)?;
    let claimed = refs.claimed_versions(&config.name)?;
    let version_floor = claimed.last().copied().unwrap_or(0);
    if !claimed.is_subset(&catalog.versions_held(&config.name)?) {
        // Claims of this name the catalog holds no rows of (another machine's writer of an S3
        // store committed since this command caught up, or its event was taken in by an append
        // without its rows; or a packet forgotten or lost): take them in before numbering, so a
        // tree one of them holds is found as already archived instead of getting a second
        // version. Every claim up to the floor is then held (or unreadable); a later one is
        // above the floor, where claiming meets it.
        crate::ops::markers::catch_up(store, catalog)?;
    }
    crate::interrupt::check()?;
    let mut new_version = NewVersionConfig {
        version_floor,
        logged_versions_looked_up: Default::default(),
    };
    let mut published_records = Vec::new();
    let (packet, created) = loop {
        let recorded = record_the_packet(
            store,
            &refs,
            catalog,
            &PacketToRecord {
                packet: &packet,
                source_path: &source_path,
                new_version: &new_version,
                seal_signer: seal_signature
                    .as_ref()
                    .map(|(signer, _)| signer.fingerprint.as_str()),
                config,
            },
        )?;
        published_records.extend(recorded.published);
        match recorded.outcome {
            Recorded::Done(row, created) => break (row, created),
            Recorded::CatchUpOn(version) => {
                // An event of this tree came in (through an append of another process on this
                // catalog) after the catch-up above: index its rows and ask again. A version
                // still without rows is a packet lost or forgotten.
                crate::ops::markers::catch_up(store, catalog)?;
                new_version.logged_versions_looked_up.insert(version);
            }
        }
    };
    published.extend(published_records);
    let newly: Vec<_> = published.iter().filter(|p| p.newly_stored).collect();
    if !created {
        // A new version's claim is its marker (the same key and bytes, created before the
        // catalog commit); a version archived before may predate markers, or have lost one.
        write_the_commit_marker(&refs, &packet)?;
    }
    Ok(IngestOutcome::Archived(IngestReport {
        packet,
        created,
        objects_written: newly.len() as u64,
        bytes_newly_stored: newly.iter().map(|p| p.stored_size).sum(),
        seal_signed_by: seal_signature.map(|(signer, _)| signer.fingerprint),
    }))
}

/// The folder's own `HASH_MANIFEST.txt` as the gate's expected side, if it has one: read through
/// the folder's handle ([`gate::read_seal_in`]: no symlink followed, size capped) and parsed
/// strictly.
///
/// A sealed folder holding a `KB_REFERENCES.txt` its seal does not list is a KB packet folder
/// whose files are partly references into its KB (`evstore mirror --dedup reference`): the
/// referenced files are not in it, so it is refused (exit 2) rather than reported as missing
/// files, which `verify` (resolving the references in the KB) would contradict.
fn own_seal_of(scanned: &Scan) -> Result<Option<Side>> {
    match &scanned.seal {
        Some(path) => {
            let bytes = gate::read_seal_in(&scanned.dir, SEAL_FILE_NAME)?;
            let seal = Side::seal_bytes(path, &bytes)?;
            let references = crate::format::references::REFERENCES_FILE_NAME;
            let holds_references = scanned.entries.iter().any(|e| e.rel_path == references);
            if holds_references && seal.manifest()?.get(references).is_none() {
                return Err(Error::unsupported(
                    scanned.dir.display_path(references),
                    "this is a KB packet folder whose files are partly references into its KB \
                     (mirror --dedup reference), so it does not hold the packet's bytes: archive \
                     the packet from the store it was mirrored from, or `evstore export` it \
                     into a folder first",
                ));
            }
            Ok(Some(seal))
        }
        None => Ok(None),
    }
}

/// A hashed packet whose objects are durable, ready to be recorded in the catalog.
struct PacketToRecord<'a> {
    /// The packet.
    packet: &'a HashedPacket,
    /// The folder's real path, for the record.
    source_path: &'a Path,
    /// The version floor, and the logged versions already caught up on.
    new_version: &'a NewVersionConfig,
    /// The fingerprint of the key whose seal signature was checked and kept, if any.
    seal_signer: Option<&'a str>,
    /// Its name, note and source date.
    config: &'a IngestConfig,
}

/// What recording a packet came to.
// One value per attempt, matched at once: the size of a variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Recorded {
    /// A new version (true), or the version that already had this tree (false).
    Done(PacketRow, bool),
    /// Nothing recorded: the log names this tree under this name at this version without its
    /// rows; catch up and record again.
    CatchUpOn(u64),
}

/// What recording a packet did.
struct RecordedPacket {
    /// What it came to.
    outcome: Recorded,
    /// What publishing the record object did (nothing when the tree was already archived).
    published: Vec<Published>,
}

/// Record the packet in the catalog: in one write transaction, take the next version number (or
/// find the version that already has this tree), publish the packet's record object, claim the
/// version (`refs/packets/NAME/N`, create-if-absent, after the record is durable and before the
/// catalog commits; a claim another record holds sends this record to the next number), and
/// commit its rows and `ingest` event (whose `log/` key is created first).
fn record_the_packet(
    store: &Store,
    refs: &Refs,
    catalog: &mut Catalog,
    to_record: &PacketToRecord<'_>,
) -> Result<RecordedPacket> {
    let packet = to_record.packet;
    let objects = object_rows(packet);
    let mut record_published = Vec::new();
    let mut claimed_by_another = None;
    let added = catalog.add_packet(
        &to_record.config.name,
        &packet.tree.root,
        &packet.files,
        &objects,
        to_record.new_version,
        |offered| {
            // A version below the offered one that this catalog cannot account for may be
            // another writer's claim in flight: if its record has this tree, the tree is
            // archived there (and this catalog takes it in), not given a second version.
            for version in offered.unaccounted_below {
                if let Some(other) =
                    refs.read_packet_claim_strictly(&to_record.config.name, version)?
                {
                    if let Err(err) = refuse_same_tree_claimed(
                        store,
                        refs,
                        &to_record.config.name,
                        &packet.tree.root,
                        version,
                        &other,
                    ) {
                        claimed_by_another = Some((version, other));
                        return Err(err);
                    }
                }
            }
            let mut version = offered.number;
            loop {
                let record = packet_record(to_record, version);
                let encoded = record.encode();
                let id = blake3_of(&encoded);
                // The point of no return: after a signal, neither the record nor the rows are
                // written (the transaction rolls back); once the record is published, the ingest
                // commits and completes.
                crate::interrupt::check()?;
                let record_batch = store.batch()?;
                record_batch.add_bytes(id, ObjectKind::Record, &encoded)?;
                record_published.extend(record_batch.commit()?);
                match refs.claim_packet(&record.name, version, &id)? {
                    None => return Ok((id, record)),
                    Some(other) => {
                        if let Err(err) = refuse_same_tree_claimed(
                            store,
                            refs,
                            &record.name,
                            &record.tree,
                            version,
                            &other,
                        ) {
                            claimed_by_another = Some((version, other));
                            return Err(err);
                        }
                        version += 1;
                    }
                }
            }
        },
    );
    let outcome = match (added, claimed_by_another) {
        (Ok(AddOutcome::LoggedWithoutRows { version }), _) => Recorded::CatchUpOn(version),
        (Ok(AddOutcome::Added(row)), _) => Recorded::Done(row, true),
        (Ok(AddOutcome::AlreadyArchived(row)), _) => Recorded::Done(row, false),
        (Err(err), Some((version, other))) => {
            // Another writer's claim holds this tree under this name (a writer on another
            // machine of an S3 store that won the race for the version): the claim committed
            // it, so nothing new is archived. The catalog takes that packet in, as the next
            // command would, and this ingest reports it as already archived; if it cannot be
            // read back, the error says what happened.
            crate::ops::markers::catch_up(store, catalog)?;
            let reference = crate::packet_ref::PacketRef::Version {
                name: to_record.config.name.clone(),
                version,
            };
            match catalog.resolve(&reference) {
                Ok(row) if row.record_id == other => Recorded::Done(row, false),
                _ => return Err(err),
            }
        }
        (Err(err), None) => return Err(err),
    };
    Ok(RecordedPacket {
        outcome,
        published: record_published,
    })
}

/// A version claim another record holds (a writer this catalog has not seen): if that record
/// has this packet's tree, nothing new is archived, and the error says so (the caller then takes
/// that packet into the catalog and reports it as already archived, or fails with this error if
/// it cannot); otherwise `Ok` (the caller takes the next version).
fn refuse_same_tree_claimed(
    store: &Store,
    refs: &Refs,
    name: &str,
    tree: &crate::digest::Blake3Digest,
    version: u64,
    other: &crate::digest::Blake3Digest,
) -> Result<()> {
    // A claim whose record cannot be read could hold this very tree: taking the next number
    // could give the tree a second version, so it stops the ingest (fail closed).
    let key = refs.shown_key(&format!("refs/packets/{name}/{version}"));
    let (kind, bytes) = store.read_small_object(other).map_err(|err| {
        Error::corrupt(
            format!("version claim {key}"),
            format!("names record {other}, which cannot be read ({err}); nothing was recorded"),
        )
    })?;
    let other_record = (kind == ObjectKind::Record)
        .then(|| PacketRecord::decode(&bytes).ok())
        .flatten()
        .ok_or_else(|| {
            Error::corrupt(
                format!("version claim {key}"),
                format!("names object {other}, which is not a packet record; nothing was recorded"),
            )
        })?;
    if other_record.tree != *tree {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{name}@{version} already holds this tree (record {other}, claimed in {key} by a writer \
         this catalog has not seen): no new version; `evstore reindex --replace` brings the \
         catalog up to date with the store"
    )))
}

/// The record of version `version` of the packet. Called inside the catalog's write
/// transaction, so that of two records for the same NAME@N (an ingest killed after writing its
/// record, then another), the committed one always has the later `created_unix_nanos`: reindex
/// relies on it.
fn packet_record(to_record: &PacketToRecord<'_>, version: u64) -> PacketRecord {
    let (packet, config) = (to_record.packet, to_record.config);
    let created_unix_nanos = crate::now_unix_nanos();
    let source_date_epoch = config
        .source_date_epoch
        .unwrap_or((created_unix_nanos / 1_000_000_000) as i64);
    PacketRecord {
        name: config.name.clone(),
        version,
        packet_tree_sha256: packet.packet_tree_sha256(),
        tree: packet.tree.root,
        file_count: packet.files.len() as u64,
        total_bytes: packet.total_bytes(),
        created_unix_nanos,
        source_date_epoch,
        tool_version: crate::TOOL_VERSION.to_string(),
        source_path: to_record.source_path.to_string_lossy().into_owned(),
        note: config.note.clone(),
        seal_signer: to_record.seal_signer.map(str::to_string),
    }
}

/// Write the commit marker of a packet version the catalog committed. After the commit: a
/// marker never names an uncommitted record. A failure here leaves a committed packet without
/// its marker (`fsck` notes it; this ingest run again, or `reindex`, writes it: an ingest that
/// finds its tree already archived writes a missing marker too).
fn write_the_commit_marker(refs: &Refs, packet: &PacketRow) -> Result<()> {
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
    })
}

/// Compare a hashed folder with its seal through the gate, exactly as `evstore verify DIR` does
/// (the seal is the expected side); the refusal when it does not pass.
fn refusal_by_seal(seal: &Side, folder: &HashedFolder) -> Result<Option<SealRefusal>> {
    let observed = Side::from_folder(folder)?;
    let report = gate::compare(None, seal, &observed)?;
    Ok((report.verdict != Verdict::Pass).then(|| SealRefusal {
        seal: folder.root.join(SEAL_FILE_NAME),
        report,
    }))
}

/// The catalog's rows for the objects of a packet: one per file's blob and one per tree node.
fn object_rows(packet: &HashedPacket) -> Vec<ObjectRow> {
    let blobs = packet.files.iter().map(|f| ObjectRow {
        id: f.meta.blake3,
        kind: ObjectKind::Blob.name().into(),
        size: f.meta.size,
    });
    let nodes = packet.tree.nodes.iter().map(|(id, bytes)| ObjectRow {
        id: *id,
        kind: ObjectKind::Tree.name().into(),
        size: bytes.len() as u64,
    });
    blobs.chain(nodes).collect()
}
