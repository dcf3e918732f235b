//! A batch of object writes that become durable together, and the pack writer.
//!
//! Every new object of an operation is added to one [`ObjectBatch`]. Objects added from memory
//! (files up to 1 MiB, tree nodes, records) are small: the batch holds them in memory until it
//! has [`crate::store::PACK_MIN_OBJECTS`] of them (fewer on a backend where each put is a request: `ObjectBackend::pack_min_objects`), then appends them, and every later one, to one temp pack
//! (`PackWriter`); with fewer, they are put as loose objects. Streamed objects are compressed
//! into a spool file in `<store>/tmp` as they are read. [`ObjectBatch::commit`] hands every
//! object and the pack to the backend's [`ObjectBackend::put_if_absent`], which makes all of
//! them durable at once. A batch dropped without commit deletes its spool files. The batch holds
//! the shared side of the writers' lock for its whole life, so `gc-temp` never removes a spool
//! file it still needs.
//!
//! **Architecture Invariant:** a batch exists only while it holds the writers' lock
//! ([`crate::store::Store::batch`] fails closed), and nothing it adds is visible under its name
//! before commit.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::TempPath;

use crate::digest::Blake3Digest;
use crate::error::{Error, IoContext, Result};
use crate::format::object::{self, ObjectKind};
use crate::format::pack::{self, PackEntry};
use crate::fsio::Lock;
use crate::store::backend::spool_file;
use crate::store::backend::{ObjectBackend, Published, Put, PutName, PutSource, SpooledFile};

/// The small objects of a batch: held in memory until there are `pack_min_objects` of them,
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
    fn start(spool_dir: &Path) -> Result<PackWriter> {
        let (file, path) = spool_file(spool_dir)?;
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

    fn finish(mut self) -> Result<Put> {
        let trailer = pack::encode_trailer(&mut self.entries);
        self.file
            .write_all(&trailer)
            .at(&self.path, "cannot write temp pack")?;
        let path = self.path;
        self.file
            .into_inner()
            .map_err(|e| Error::io(&*path, "cannot write temp pack", e.into_error()))?;
        Ok(Put {
            name: PutName::Pack {
                name: pack::pack_name(&trailer),
                entries: self.entries,
            },
            source: PutSource::Spooled(SpooledFile {
                path,
                len: self.offset + trailer.len() as u64,
            }),
        })
    }
}

/// The objects a batch skipped because its caller knew them stored, kept until commit confirms
/// the backend still has them: small payloads raw in one spool file, streamed objects as their
/// spool files.
#[derive(Default)]
struct Unconfirmed {
    /// The spool file of small payloads, and how far it is written.
    small_spool: Option<(BufWriter<File>, TempPath, u64)>,
    /// Small objects: (id, kind, offset in the spool, length).
    small: Vec<(Blake3Digest, ObjectKind, u64, u64)>,
    /// Streamed objects, compressed in their spool files.
    streamed: HashMap<Blake3Digest, PutSource>,
}

/// What [`ObjectBatch::commit_with_report`] did.
#[derive(Debug, Default)]
pub struct Committed {
    /// What each publish did.
    pub published: Vec<Published>,
    /// Objects the caller knew stored that the backend no longer had: stored again.
    pub stored_again: Vec<Blake3Digest>,
}

/// A set of object writes that become durable together.
pub struct ObjectBatch<'a> {
    backend: &'a dyn ObjectBackend,
    /// Where streamed objects and packs are spooled (`<store>/tmp`).
    spool_dir: PathBuf,
    pending: Mutex<HashMap<Blake3Digest, PutSource>>,
    small: Mutex<SmallObjects>,
    /// Objects the caller knows are stored (the catalog's ids): skipped without a backend call.
    known: std::collections::HashSet<Blake3Digest>,
    /// Objects skipped because `known` holds them, checked at commit.
    unconfirmed: Mutex<Unconfirmed>,
    /// The shared side of the writers' lock on `<store>/tmp` (see [`Store::gc_temp`]).
    _writer_lock: Lock,
}

/// The outcome of adding one object to a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Staged; it will be written by commit.
    Staged,
    /// The store or the batch already has it.
    AlreadyPresent,
}

impl<'a> ObjectBatch<'a> {
    /// A batch writing through `backend`, spooling in `spool_dir`, holding `writer_lock` (the
    /// shared side of the writers' lock) until it is dropped.
    pub(crate) fn new(
        backend: &'a dyn ObjectBackend,
        spool_dir: PathBuf,
        writer_lock: Lock,
    ) -> ObjectBatch<'a> {
        ObjectBatch {
            backend,
            spool_dir,
            pending: Mutex::new(HashMap::new()),
            small: Mutex::new(SmallObjects::default()),
            known: std::collections::HashSet::new(),
            unconfirmed: Mutex::new(Unconfirmed::default()),
            _writer_lock: writer_lock,
        }
    }

    /// This batch, told which objects are stored already.
    pub(crate) fn knowing(mut self, known: std::collections::HashSet<Blake3Digest>) -> Self {
        self.known = known;
        self
    }

    /// True if the batch or the store has the object already. An object the caller knows is
    /// stored counts as stored only until commit, which confirms it (`Presence::Known`).
    fn already_has(&self, id: &Blake3Digest) -> Result<Presence> {
        if self.lock().contains_key(id) || self.lock_small().ids.contains(id) {
            return Ok(Presence::Present);
        }
        if self.known.contains(id) {
            return Ok(Presence::Known);
        }
        if !self.backend.exists_is_cheap() {
            // Put it with create-if-absent: at worst a second copy in a pack, never a lost one.
            return Ok(Presence::Absent);
        }
        Ok(if self.backend.exists(id)? {
            Presence::Present
        } else {
            Presence::Absent
        })
    }

    fn lock_unconfirmed(&self) -> std::sync::MutexGuard<'_, Unconfirmed> {
        // Each update is one push or insert after the spool write it records: a panic cannot
        // leave an entry naming bytes that were not written.
        self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep the payload of a small object the caller knows is stored, in case commit finds it
    /// missing.
    fn keep_unconfirmed_small(
        &self,
        id: Blake3Digest,
        kind: ObjectKind,
        payload: &[u8],
    ) -> Result<()> {
        let mut unconfirmed = self.lock_unconfirmed();
        if unconfirmed.small.iter().any(|(kept, ..)| *kept == id) {
            return Ok(());
        }
        if unconfirmed.small_spool.is_none() {
            let (file, path) = spool_file(&self.spool_dir)?;
            unconfirmed.small_spool = Some((BufWriter::new(file), path, 0));
        }
        let Some((file, path, written)) = unconfirmed.small_spool.as_mut() else {
            return Err(Error::Internal(
                "the spool of known objects vanished".into(),
            ));
        };
        file.write_all(payload)
            .at(&*path, "cannot write temp object")?;
        let offset = *written;
        *written += payload.len() as u64;
        unconfirmed
            .small
            .push((id, kind, offset, payload.len() as u64));
        Ok(())
    }

    fn lock_small(&self) -> std::sync::MutexGuard<'_, SmallObjects> {
        // A panic mid-append leaves a pack whose entries do not match its bytes; the batch is
        // then never committed (the panic unwinds through the caller), so the lock is safe to use.
        self.small.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Blake3Digest, PutSource>> {
        // A panic while holding the lock cannot leave the map half-updated (inserts are atomic),
        // so a poisoned lock is still safe to use.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add an object whose payload is in memory. The caller has hashed it: `id` is its BLAKE3.
    pub fn add_bytes(&self, id: Blake3Digest, kind: ObjectKind, payload: &[u8]) -> Result<Added> {
        match self.already_has(&id)? {
            Presence::Present => return Ok(Added::AlreadyPresent),
            Presence::Known => {
                self.keep_unconfirmed_small(id, kind, payload)?;
                return Ok(Added::AlreadyPresent);
            }
            Presence::Absent => {}
        }
        self.stage_small(id, kind, payload)
    }

    /// Stage a small object the batch and the store do not have.
    fn stage_small(&self, id: Blake3Digest, kind: ObjectKind, payload: &[u8]) -> Result<Added> {
        let encoded = object::encode_in_memory(kind, payload)
            .map_err(|e| Error::io("zstd", "compress", e))?;
        let mut small = self.lock_small();
        if !small.ids.insert(id) {
            return Ok(Added::AlreadyPresent);
        }
        if small.pack.is_none() && small.buffered.len() + 1 < self.backend.pack_min_objects() {
            small.buffered.push((id, encoded));
            return Ok(Added::Staged);
        }
        if small.pack.is_none() {
            let mut writer = PackWriter::start(&self.spool_dir)?;
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

    /// Start streaming an object of `len` payload bytes, compressed with zstd.
    pub fn stream(&self, kind: ObjectKind, len: u64) -> Result<StreamWriter> {
        let (file, path) = spool_file(&self.spool_dir)?;
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
        let presence = self.already_has(&id)?;
        if presence == Presence::Present {
            return Ok(Added::AlreadyPresent);
        }
        let writer = encoder.finish().at(&path, "cannot finish zstd")?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::io(&*path, "cannot write temp object", e.into_error()))?;
        let stored_size = file.metadata().at(&path, "cannot stat temp object")?.len();
        drop(file);
        let source = PutSource::Spooled(SpooledFile {
            path,
            len: stored_size,
        });
        if presence == Presence::Known {
            self.lock_unconfirmed().streamed.entry(id).or_insert(source);
            return Ok(Added::AlreadyPresent);
        }
        self.insert(id, source);
        Ok(Added::Staged)
    }

    fn insert(&self, id: Blake3Digest, staged: PutSource) {
        // If two threads staged the same new object, the second copy is dropped (its temp file
        // is deleted); either copy holds the same bytes.
        self.lock().entry(id).or_insert(staged);
    }

    /// Make every staged object durable and return what each publish did.
    ///
    /// # Errors
    ///
    /// A temp pack cannot be finished, or the backend cannot store or sync a put; nothing the
    /// batch names is then known to be durable.
    pub fn commit(self) -> Result<Vec<Published>> {
        Ok(self.commit_with_report()?.published)
    }

    /// [`ObjectBatch::commit`], first confirming that the backend still has the objects the
    /// batch skipped because its caller knew them stored ([`ObjectBackend::find_missing`]):
    /// those it lacks (deleted behind evstore's back) are stored again, and listed.
    ///
    /// # Errors
    ///
    /// As [`ObjectBatch::commit`]; the check cannot be made, or a kept payload cannot be read.
    pub fn commit_with_report(self) -> Result<Committed> {
        let stored_again = self.stage_the_missing_known()?;
        let small = std::mem::take(&mut *self.lock_small());
        let mut puts: Vec<Put> = std::mem::take(&mut *self.lock())
            .into_iter()
            .map(|(id, source)| Put {
                name: PutName::Object(id),
                source,
            })
            .collect();
        match small.pack {
            Some(writer) => puts.push(writer.finish()?),
            None => puts.extend(small.buffered.into_iter().map(|(id, encoded)| Put {
                name: PutName::Object(id),
                source: PutSource::Bytes(encoded),
            })),
        }
        Ok(Committed {
            published: self.backend.put_if_absent(puts)?,
            stored_again,
        })
    }

    /// Ask the backend which skipped known objects it lacks, and stage those from what the
    /// batch kept of them.
    fn stage_the_missing_known(&self) -> Result<Vec<Blake3Digest>> {
        let unconfirmed = std::mem::take(&mut *self.lock_unconfirmed());
        let mut ids: Vec<Blake3Digest> = unconfirmed.small.iter().map(|(id, ..)| *id).collect();
        ids.extend(unconfirmed.streamed.keys().copied());
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let missing: HashSet<Blake3Digest> = self.backend.find_missing(&ids)?.into_iter().collect();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let mut streamed = unconfirmed.streamed;
        for id in &missing {
            if let Some(source) = streamed.remove(id) {
                self.insert(*id, source);
            }
        }
        if let Some((file, path, _)) = unconfirmed.small_spool {
            let mut file = file
                .into_inner()
                .map_err(|e| Error::io(&*path, "cannot write temp object", e.into_error()))?;
            for (id, kind, offset, len) in &unconfirmed.small {
                if !missing.contains(id) {
                    continue;
                }
                let mut payload = vec![0; usize::try_from(*len).unwrap_or(usize::MAX)];
                io::Seek::seek(&mut file, io::SeekFrom::Start(*offset))
                    .and_then(|_| io::Read::read_exact(&mut file, &mut payload))
                    .at(&path, "cannot read back a kept object")?;
                if crate::digest::blake3_of(&payload) != *id {
                    return Err(Error::corrupt(
                        path.display().to_string(),
                        format!("the kept copy of object {id} no longer hashes to its id"),
                    ));
                }
                self.stage_small(*id, *kind, &payload)?;
            }
        }
        let mut stored_again: Vec<Blake3Digest> = missing.into_iter().collect();
        stored_again.sort();
        Ok(stored_again)
    }
}

/// Whether an object a batch is given is stored already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    /// The batch has it, or the backend said so.
    Present,
    /// The caller knows it is stored; commit confirms it.
    Known,
    /// Neither: stage it.
    Absent,
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
