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

/// A set of object writes that become durable together.
pub struct ObjectBatch<'a> {
    backend: &'a dyn ObjectBackend,
    /// Where streamed objects and packs are spooled (`<store>/tmp`).
    spool_dir: PathBuf,
    pending: Mutex<HashMap<Blake3Digest, PutSource>>,
    small: Mutex<SmallObjects>,
    /// Objects the caller knows are stored (the catalog's ids): skipped without a backend call.
    known: std::collections::HashSet<Blake3Digest>,
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
            _writer_lock: writer_lock,
        }
    }

    /// This batch, told which objects are stored already.
    pub(crate) fn knowing(mut self, known: std::collections::HashSet<Blake3Digest>) -> Self {
        self.known = known;
        self
    }

    fn already_has(&self, id: &Blake3Digest) -> Result<bool> {
        if self.lock().contains_key(id) || self.lock_small().ids.contains(id) {
            return Ok(true);
        }
        if self.known.contains(id) {
            return Ok(true);
        }
        if !self.backend.exists_is_cheap() {
            // Put it with create-if-absent: at worst a second copy in a pack, never a lost one.
            return Ok(false);
        }
        self.backend.exists(id)
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
        if self.already_has(&id)? {
            return Ok(Added::AlreadyPresent);
        }
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
        if self.already_has(&id)? {
            return Ok(Added::AlreadyPresent);
        }
        let writer = encoder.finish().at(&path, "cannot finish zstd")?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::io(&*path, "cannot write temp object", e.into_error()))?;
        let stored_size = file.metadata().at(&path, "cannot stat temp object")?.len();
        drop(file);
        self.insert(
            id,
            PutSource::Spooled(SpooledFile {
                path,
                len: stored_size,
            }),
        );
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
        self.backend.put_if_absent(puts)
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
