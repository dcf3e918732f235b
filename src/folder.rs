//! Hashing a folder on disk: the one folder hasher that ingest, `hash`, `seal`, the gate's
//! folder sides and rerun's outputs all use.
//!
//! [`hash_folder`] takes a [`Scan`] (the folder walked once, through its handle) and reads every
//! regular file once, in parallel across cores, feeding each chunk to SHA-256 and, where a packet
//! needs it ([`Digests::Both`]), BLAKE3 in the same pass and, when ingesting, to the store's object
//! batch (zstd) as well. Entries that are not regular files (symlinks, FIFOs, ...) are listed,
//! never followed or read: the gate calls them drift, and an ingest refuses them before anything
//! is hashed ([`Scan::require_regular_files`]).
//!
//! Files are streamed in 256 KiB chunks; files up to [`SMALL_FILE_LIMIT`] are read into one
//! buffer, so their object can be skipped before compressing when the store already has it. A
//! file whose size or modification time changes while it is read is an error.
//!
//! **Architecture Invariant:** a folder is hashed here and nowhere else, and each byte of a file
//! is read once, except where a caller offers the digests it expects ([`KnownFile`]): a file whose
//! BLAKE3 then differs is read a second time for its SHA-256. This module sits beside
//! [`crate::packet`] (a *stored* packet); it never prints and never touches the catalog.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::digest::{Blake3Digest, Sha256Digest};
use crate::error::{IoContext, Result};
use crate::format::object::ObjectKind;
use crate::format::tree::{FileMeta, HashedFile};
use crate::fsio::{blake3_in, changed_while_read, check_unchanged};
use crate::progress::Progress;
use crate::scan::{EntryKind, RootDir, Scan};
use crate::store::ObjectBatch;

/// Files up to this size are read into memory whole (still once).
pub const SMALL_FILE_LIMIT: u64 = 1024 * 1024;

/// What a caller already knows about a file at some path (a stored packet's file): its size,
/// BLAKE3 and SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownFile {
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the bytes.
    pub blake3: Blake3Digest,
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
}

/// What a caller knows about the file at a packet path, if anything.
pub type KnownFiles<'a> = dyn Fn(&str) -> Option<KnownFile> + Sync + 'a;

/// Which digests of each file to compute (in the same pass either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digests {
    /// SHA-256 and BLAKE3: what a packet records (ingest, `hash`).
    Both,
    /// SHA-256 alone: all a comparison with a seal or another folder needs (BLAKE3 would cost
    /// CPU time for nothing).
    Sha256,
}

/// How to hash a folder.
#[derive(Clone, Copy)]
pub struct FolderHashConfig<'a> {
    /// The progress phase the bytes are reported under (`ingest`, `hash`, `verify`).
    pub phase: &'static str,
    /// Which digests to compute.
    pub digests: Digests,
    /// Where to report the bytes read.
    pub progress: &'a Progress,
    /// Stage every file's object into this batch while it is hashed (ingest).
    pub batch: Option<&'a ObjectBatch<'a>>,
    /// Files whose digests are known (comparing with a stored packet): a file of the known size
    /// is hashed with BLAKE3 alone first and, where it matches, takes the known SHA-256 without
    /// computing it.
    pub known: Option<&'a KnownFiles<'a>>,
}

impl<'a> FolderHashConfig<'a> {
    /// Hash for a report under `phase`: `digests`, no batch, nothing known.
    pub fn new(
        phase: &'static str,
        digests: Digests,
        progress: &'a Progress,
    ) -> FolderHashConfig<'a> {
        FolderHashConfig {
            phase,
            digests,
            progress,
            batch: None,
            known: None,
        }
    }
}

/// One regular file of a hashed folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderFile {
    /// Path relative to the folder, components joined with `/`.
    pub rel_path: String,
    /// Size in bytes.
    pub size: u64,
    /// True if the owner-execute bit is set.
    pub executable: bool,
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
    /// BLAKE3 of the bytes, when computed ([`Digests::Both`], or a file matching a
    /// [`KnownFile`]).
    pub blake3: Option<Blake3Digest>,
}

impl FolderFile {
    /// The file as a packet records it; `None` without its BLAKE3.
    pub fn packet_file(&self) -> Option<HashedFile> {
        Some(HashedFile {
            rel_path: self.rel_path.clone(),
            meta: FileMeta {
                size: self.size,
                executable: self.executable,
                blake3: self.blake3?,
                sha256: self.sha256,
            },
        })
    }
}

/// A folder, hashed now.
#[derive(Clone, Debug)]
pub struct HashedFolder {
    /// The folder, as it was named.
    pub root: PathBuf,
    /// The folder's handle: every file was read through it.
    pub dir: Arc<RootDir>,
    /// Every regular file except the top-level seal, sorted by path bytes.
    pub files: Vec<FolderFile>,
    /// Entries that are not regular files: path and what they are (`symbolic link`, `FIFO`,
    /// ...), sorted by path bytes.
    pub others: Vec<(String, &'static str)>,
    /// The top-level `HASH_MANIFEST.txt`, if present.
    pub seal: Option<PathBuf>,
    /// The top-level `HASH_MANIFEST.txt.sig`, if present.
    pub signature: Option<PathBuf>,
}

impl HashedFolder {
    /// The sum of the regular files' sizes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Hash every regular file of a scanned folder once (see the module documentation).
pub fn hash_folder(scanned: Scan, config: &FolderHashConfig<'_>) -> Result<HashedFolder> {
    let mut regular = Vec::new();
    let mut others = Vec::new();
    for entry in &scanned.entries {
        match entry.kind {
            EntryKind::Regular { size, executable } => {
                regular.push((entry.rel_path.as_str(), &entry.abs_path, size, executable))
            }
            EntryKind::Symlink => others.push((entry.rel_path.clone(), "symbolic link")),
            EntryKind::Special(what) => others.push((entry.rel_path.clone(), what)),
        }
    }
    let dir = scanned.dir.as_ref();
    let _phase = config
        .progress
        .phase(config.phase, regular.iter().map(|r| r.2).sum());
    let files: Vec<FolderFile> = regular
        .par_iter()
        .map(|&(rel, abs, size, executable)| {
            let file = FileToHash {
                rel,
                abs,
                size,
                executable,
            };
            hash_one(dir, &file, config)
        })
        .collect::<Result<_>>()?;
    Ok(HashedFolder {
        root: scanned.root,
        dir: scanned.dir,
        files,
        others,
        seal: scanned.seal,
        signature: scanned.signature,
    })
}

struct FileToHash<'a> {
    rel: &'a str,
    abs: &'a Path,
    size: u64,
    executable: bool,
}

fn hash_one(
    dir: &RootDir,
    file: &FileToHash<'_>,
    config: &FolderHashConfig<'_>,
) -> Result<FolderFile> {
    let known = config
        .known
        .and_then(|known| known(file.rel))
        .filter(|known| known.size == file.size);
    let (Some(known), None) = (known, config.batch) else {
        let digest = hash_file(dir, file, config.digests, config.batch, config.progress)?;
        return Ok(folder_file(file, digest));
    };
    let blake3 = blake3_in(dir, file.rel, file.size)?;
    // Each file's bytes are reported once, whether or not a second pass follows.
    config.progress.advance(file.size);
    if blake3 != known.blake3 {
        let digest = hash_file(dir, file, config.digests, None, &Progress::silent())?;
        return Ok(folder_file(file, digest));
    }
    Ok(FolderFile {
        rel_path: file.rel.to_string(),
        size: file.size,
        executable: file.executable,
        sha256: known.sha256,
        blake3: Some(blake3),
    })
}

fn folder_file(file: &FileToHash<'_>, digest: FileDigest) -> FolderFile {
    FolderFile {
        rel_path: file.rel.to_string(),
        size: digest.len,
        executable: file.executable,
        sha256: digest.sha256,
        blake3: digest.blake3,
    }
}

/// The digests of one file's bytes.
struct FileDigest {
    sha256: Sha256Digest,
    blake3: Option<Blake3Digest>,
    len: u64,
}

/// Feeds each chunk to the digests asked for.
struct FileHasher {
    sha256: sha2::Sha256,
    blake3: Option<Box<blake3::Hasher>>,
    len: u64,
}

impl FileHasher {
    fn new(digests: Digests) -> FileHasher {
        FileHasher {
            sha256: sha2::Sha256::default(),
            blake3: match digests {
                Digests::Both => Some(Box::default()),
                Digests::Sha256 => None,
            },
            len: 0,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.sha256, bytes);
        if let Some(blake3) = self.blake3.as_mut() {
            blake3.update(bytes);
        }
        self.len += bytes.len() as u64;
    }

    fn finish(self) -> FileDigest {
        FileDigest {
            sha256: Sha256Digest(sha2::Digest::finalize(self.sha256).into()),
            blake3: self
                .blake3
                .map(|hasher| Blake3Digest(*hasher.finalize().as_bytes())),
            len: self.len,
        }
    }
}

/// Read one file once, hashing it and (with a batch) staging its object. A batch needs the
/// BLAKE3 (the object's id): with one, both digests are computed whatever `digests` says.
fn hash_file(
    dir: &RootDir,
    file: &FileToHash<'_>,
    digests: Digests,
    batch: Option<&ObjectBatch<'_>>,
    progress: &Progress,
) -> Result<FileDigest> {
    crate::interrupt::check()?;
    let path = file.abs;
    let mut handle = dir.open_file(file.rel)?;
    let before = handle.metadata().at(path, "cannot stat")?;
    if !before.is_file() || before.len() != file.size {
        return Err(changed_while_read(path));
    }
    let digests = if batch.is_some() {
        Digests::Both
    } else {
        digests
    };
    let mut hasher = FileHasher::new(digests);
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
        if let (Some(batch), Some(blake3)) = (batch, digest.blake3) {
            batch.add_bytes(blake3, ObjectKind::Blob, &buf)?;
        }
        check_unchanged(&handle, &before, path)?;
        progress.advance(file.size);
        return Ok(digest);
    }
    let mut writer = match batch {
        Some(batch) => Some(batch.stream(ObjectKind::Blob, file.size)?),
        None => None,
    };
    // The one streaming read (fsio): it checks size and mtime around the read, as above.
    crate::fsio::stream_handle(handle, path, file.size, |bytes| {
        hasher.update(bytes);
        if let Some(writer) = writer.as_mut() {
            writer
                .write_all(bytes)
                .at(path, "cannot compress into the store")?;
        }
        progress.advance(bytes.len() as u64);
        Ok(())
    })?;
    let digest = hasher.finish();
    if let (Some(batch), Some(writer), Some(blake3)) = (batch, writer, digest.blake3) {
        batch.add_stream(blake3, writer)?;
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::dual_of;
    use crate::scan::scan;

    #[test]
    fn a_folder_is_hashed_with_both_digests_and_its_other_entries_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let big = vec![7u8; (SMALL_FILE_LIMIT + 3) as usize];
        std::fs::write(dir.path().join("sub/big.bin"), &big).unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        let progress = Progress::silent();
        let folder = hash_folder(
            scan(dir.path()).unwrap(),
            &FolderHashConfig::new("hash", Digests::Both, &progress),
        )
        .unwrap();
        let paths: Vec<&str> = folder.files.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "sub/big.bin"]);
        let small = dual_of(b"a\n");
        assert_eq!(folder.files[0].sha256, small.sha256);
        assert_eq!(folder.files[0].blake3, Some(small.blake3));
        let large = dual_of(&big);
        assert_eq!(folder.files[1].sha256, large.sha256);
        assert_eq!(folder.files[1].blake3, Some(large.blake3));
        assert_eq!(folder.files[1].size, big.len() as u64);
        assert_eq!(folder.others, vec![("link".to_string(), "symbolic link")]);
        assert_eq!(folder.total_bytes(), 2 + big.len() as u64);
        // SHA-256 alone: the same SHA-256s, no BLAKE3.
        let sha_only = hash_folder(
            scan(dir.path()).unwrap(),
            &FolderHashConfig::new("verify", Digests::Sha256, &progress),
        )
        .unwrap();
        let shas: Vec<_> = sha_only
            .files
            .iter()
            .map(|f| (f.sha256, f.blake3))
            .collect();
        assert_eq!(shas, [(small.sha256, None), (large.sha256, None)]);
    }

    /// Records a phase's total and the bytes reported done.
    #[derive(Default)]
    struct Counted(std::sync::Mutex<(u64, u64)>);

    impl crate::progress::ProgressSink for Counted {
        fn begin(&self, _phase: &str, total_bytes: u64) {
            self.0.lock().unwrap().0 = total_bytes;
        }
        fn advance(&self, bytes: u64) {
            self.0.lock().unwrap().1 += bytes;
        }
        fn finish(&self) {}
    }

    #[test]
    fn a_known_file_keeps_its_known_sha256_only_where_its_blake3_matches() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("same.txt"), "same\n").unwrap();
        std::fs::write(dir.path().join("other.txt"), "other\n").unwrap();
        let same = dual_of(b"same\n");
        // The SHA-256 offered for a file whose BLAKE3 matches is taken as it is (so a made-up
        // one shows that no SHA-256 was computed); for a file whose BLAKE3 differs it is not.
        let made_up = Sha256Digest([9; 32]);
        let known = |rel: &str| -> Option<KnownFile> {
            let blake3 = match rel {
                "same.txt" => same.blake3,
                _ => Blake3Digest([1; 32]),
            };
            Some(KnownFile {
                size: if rel == "same.txt" { 5 } else { 6 },
                blake3,
                sha256: made_up,
            })
        };
        let counted = std::sync::Arc::new(Counted::default());
        let progress = Progress::to(counted.clone());
        let config = FolderHashConfig {
            known: Some(&known),
            ..FolderHashConfig::new("verify", Digests::Sha256, &progress)
        };
        let folder = hash_folder(scan(dir.path()).unwrap(), &config).unwrap();
        let by_path = |p: &str| {
            folder
                .files
                .iter()
                .find(|f| f.rel_path == p)
                .unwrap()
                .clone()
        };
        assert_eq!(by_path("same.txt").sha256, made_up);
        assert_eq!(by_path("other.txt").sha256, dual_of(b"other\n").sha256);
        // The file read twice (its BLAKE3 differed) is still reported once.
        let (total, done) = *counted.0.lock().unwrap();
        assert_eq!((total, done), (11, 11));
    }
}
