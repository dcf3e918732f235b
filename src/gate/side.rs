//! The sides a comparison matches: a folder on disk (hashed now by the one folder hasher,
//! [`crate::folder`]), a seal file (`HASH_MANIFEST.txt` text, parsed strictly or as `sha256sum
//! -c` reads it), or a stored packet (its verified tree, [`crate::packet`]). A side lists its
//! regular files by path with what it knows of each (SHA-256; size, executable bit and BLAKE3
//! where it records them), its entries that are not regular files, and where its bytes can be
//! read for diagnosing a difference.
//!
//! **Architecture Invariant:** a side never writes anything; a folder side reads every file
//! through the folder's handle (no symlink followed), and a packet side's files come from the
//! stored tree, never from the catalog.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::seal::{read_seal_bytes, read_seal_in};
use crate::catalog::PacketRow;
use crate::digest::{sha256_of, Blake3Digest, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::folder::{hash_folder, Digests, FolderHashConfig, HashedFolder, KnownFile};
use crate::format::manifest::{canonical_seal_command, Deviation, Manifest, ManifestEntry};
use crate::format::record::PacketRecord;
use crate::format::tree::FileMeta;
use crate::fsio::stream_handle;
use crate::packet::verified_files;
use crate::progress::Progress;
use crate::scan::{scan_dir, RootDir, SEAL_FILE_NAME, SIGNATURE_FILE_NAME};
use crate::store::Store;
use crate::text::EscapePath;

/// What kind of thing a side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SideKind {
    /// A folder on disk.
    Folder,
    /// A seal file.
    Seal,
    /// A packet in the store.
    Packet,
}

/// One file as a side lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SideFile {
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
    /// Size in bytes, if known (a seal does not record it).
    pub size: Option<u64>,
    /// Executable bit, if known (a seal does not record it).
    pub executable: Option<bool>,
    /// BLAKE3, for stored packets: the id of the blob holding the bytes.
    #[serde(skip)]
    pub blake3: Option<Blake3Digest>,
}

impl From<&FileMeta> for SideFile {
    fn from(meta: &FileMeta) -> SideFile {
        SideFile {
            sha256: meta.sha256,
            size: Some(meta.size),
            executable: Some(meta.executable),
            blake3: Some(meta.blake3),
        }
    }
}

/// Where a side's bytes can be read for diagnosis.
#[derive(Clone, Debug)]
pub(super) enum ByteSource {
    /// Nowhere: a seal alone.
    None,
    /// Files below this folder, trusted as they are (a compared folder), read through its handle.
    Folder(Arc<RootDir>),
    /// Files below this folder, used only where they hash to the listed SHA-256 (`--original`).
    Original(Arc<RootDir>),
    /// The store's blobs.
    Store,
}

/// One side of a comparison.
#[derive(Clone, Debug)]
pub struct Side {
    /// What it is.
    pub kind: SideKind,
    /// How to name it to a user: the folder or seal path, or `NAME@N`.
    pub label: String,
    /// The packet_tree_sha256 of what it lists (for a folder: of its regular files now).
    pub packet_tree_sha256: Sha256Digest,
    /// How many files it holds in all (may exceed `files.len()` for a pruned tree walk).
    pub file_count: u64,
    /// Regular files by path.
    pub(super) files: BTreeMap<String, SideFile>,
    /// Entries that are not regular files (folders only): path → what they are.
    pub(super) others: BTreeMap<String, &'static str>,
    /// The folder's top-level `HASH_MANIFEST.txt`, if a folder side has one.
    pub(super) folder_seal: Option<PathBuf>,
    /// For a folder: its top-level `HASH_MANIFEST.txt.sig`, if any (never one of its files).
    pub(super) folder_signature: Option<PathBuf>,
    pub(super) bytes: ByteSource,
    /// Files whose bytes live elsewhere (KB references): path → the KB folder and the file's
    /// path below it, read through the KB folder's handle.
    pub(super) elsewhere: BTreeMap<String, (Arc<RootDir>, String)>,
    /// For a seal side: the seal file's own SHA-256 and how it departs from the canonical text.
    pub(super) seal: Option<SealInfo>,
}

/// What a seal side's file is, beyond the entries it lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SealInfo {
    /// The SHA-256 of the seal file's bytes (the packet_tree_sha256 only when canonical).
    pub sha256: Sha256Digest,
    /// True if the file is byte for byte the canonical manifest of its entries.
    pub canonical: bool,
    /// How a non-canonical manifest departs from the canonical text (empty when canonical).
    pub deviations: Vec<Deviation>,
}

/// Side summary, as reports show it.
#[derive(Clone, Debug, Serialize)]
pub struct SideSummary {
    /// `folder`, `seal` or `packet`.
    pub kind: SideKind,
    /// The folder or seal path, or `NAME@N`.
    pub label: String,
    /// Its packet_tree_sha256; `None` for a folder that holds entries that are not regular files
    /// (symlinks, FIFOs, ...): such a folder is not a packet and has no tree hash (the hash of
    /// its regular files alone would look like a match where there is none).
    pub packet_tree_sha256: Option<Sha256Digest>,
    /// How many regular files it lists.
    pub files: u64,
    /// Entries that are not regular files, counted by kind (`symbolic link`, `FIFO`, ...).
    pub not_regular: BTreeMap<&'static str, u64>,
    /// For a seal: its own SHA-256 and whether it is canonical (absent for other kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealInfo>,
}

impl Side {
    /// Hash a folder now: every regular file's SHA-256, in parallel; symlinks and special files are recorded so they can be reported, never
    /// followed. A folder that is a symlink is refused.
    pub fn folder(root: &Path, progress: &Progress) -> Result<Side> {
        Side::folder_in(Arc::new(RootDir::open(root)?), progress)
    }

    /// [`Side::folder`] of an already opened folder.
    pub fn folder_in(root: Arc<RootDir>, progress: &Progress) -> Result<Side> {
        let config = FolderHashConfig::new("verify", Digests::Sha256, progress);
        let folder = hash_folder(scan_dir(root)?, &config)?;
        Side::from_folder(&folder)
    }

    /// Hash a folder now to compare it with `expected`, a stored packet, using the faster
    /// digest: a file whose size and BLAKE3 equal the packet's is the packet's file (so it has
    /// the packet's SHA-256, which is not recomputed); any other file gets its SHA-256.
    pub fn folder_against(root: &Path, expected: &Side, progress: &Progress) -> Result<Side> {
        let root = Arc::new(RootDir::open(root)?);
        let known = |rel: &str| -> Option<KnownFile> {
            let file = expected.files.get(rel)?;
            Some(KnownFile {
                size: file.size?,
                blake3: file.blake3?,
                sha256: file.sha256,
            })
        };
        let config = FolderHashConfig {
            known: Some(&known),
            ..FolderHashConfig::new("verify", Digests::Sha256, progress)
        };
        Side::from_folder(&hash_folder(scan_dir(root)?, &config)?)
    }

    /// The side of a folder hashed by [`hash_folder`] (an ingest's, a rerun's output): its
    /// regular files, its other entries, its own seal, and its bytes read through its handle.
    pub fn from_folder(folder: &HashedFolder) -> Result<Side> {
        let files: BTreeMap<String, SideFile> = folder
            .files
            .iter()
            .map(|f| {
                let file = SideFile {
                    sha256: f.sha256,
                    size: Some(f.size),
                    executable: Some(f.executable),
                    blake3: f.blake3,
                };
                (f.rel_path.clone(), file)
            })
            .collect();
        let manifest = manifest_of_side(&files)?;
        Ok(Side {
            kind: SideKind::Folder,
            label: folder.root.escaped().to_string(),
            packet_tree_sha256: manifest.packet_tree_sha256(),
            file_count: files.len() as u64,
            files,
            others: folder.others.iter().cloned().collect(),
            folder_seal: folder.seal.clone(),
            folder_signature: folder.signature.clone(),
            bytes: ByteSource::Folder(folder.dir.clone()),
            elsewhere: BTreeMap::new(),
            seal: None,
        })
    }

    /// Read a seal file strictly. An untrusted seal is an error naming the line.
    pub fn seal(path: &Path) -> Result<Side> {
        Side::seal_bytes(path, &read_seal_bytes(path)?)
    }

    /// [`Side::seal`] of seal bytes already read from `path`.
    pub fn seal_bytes(path: &Path, bytes: &[u8]) -> Result<Side> {
        let manifest = Manifest::parse_seal(bytes, path)?;
        Ok(Side::from_seal(path, bytes, &manifest, Vec::new()))
    }

    /// Read a seal file named explicitly (`verify --seal FILE`, a `diff` seal operand) as
    /// `sha256sum -c` would ([`Manifest::parse_coreutils`]): any order, `*` markers, either hex
    /// case, BSD tags. Its packet_tree_sha256 is that of the canonical text of its entries; how
    /// it departs from that text is in [`SealInfo`]. A malformed manifest is an error naming the
    /// line.
    pub fn seal_file(path: &Path) -> Result<Side> {
        let bytes = read_seal_bytes(path)?;
        Side::seal_file_bytes(path, &bytes)
    }

    /// [`Side::seal_file`] of bytes read already (by a caller that also checks their signature).
    pub fn seal_file_bytes(path: &Path, bytes: &[u8]) -> Result<Side> {
        let (manifest, deviations) = Manifest::parse_coreutils(bytes, path)?;
        Ok(Side::from_seal(path, bytes, &manifest, deviations))
    }

    fn from_seal(
        path: &Path,
        bytes: &[u8],
        manifest: &Manifest,
        deviations: Vec<Deviation>,
    ) -> Side {
        let files = manifest
            .entries()
            .iter()
            .map(|e| {
                (
                    e.path.clone(),
                    SideFile {
                        sha256: e.sha256,
                        size: None,
                        executable: None,
                        blake3: None,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        let sha256 = sha256_of(bytes);
        let packet_tree_sha256 = manifest.packet_tree_sha256();
        Side {
            kind: SideKind::Seal,
            label: path.escaped().to_string(),
            packet_tree_sha256,
            file_count: files.len() as u64,
            files,
            others: BTreeMap::new(),
            folder_seal: None,
            folder_signature: None,
            bytes: ByteSource::None,
            elsewhere: BTreeMap::new(),
            seal: Some(SealInfo {
                sha256,
                canonical: sha256 == packet_tree_sha256 && deviations.is_empty(),
                deviations,
            }),
        }
    }

    /// A remark for reports when this side is a seal that is not canonical; `folder` is the
    /// folder it is compared with, if any.
    pub fn seal_note(&self, folder: Option<&str>) -> Option<String> {
        let info = self.seal.as_ref().filter(|info| !info.canonical)?;
        let how: Vec<&str> = info.deviations.iter().map(|d| d.describe()).collect();
        Some(format!(
            "the seal {} is not canonical ({}); it was read as sha256sum -c reads it and every \
             file it lists was checked, and its packet_tree_sha256 is that of the canonical \
             text of its entries (the file's own SHA-256 is {}); once this check passes, {}",
            self.label,
            how.join(", "),
            info.sha256,
            canonical_seal_command(folder.unwrap_or("DIR"))
        ))
    }

    /// A stored packet: its record and tree, read from the objects and verified.
    pub fn packet(store: &Store, row: &PacketRow) -> Result<Side> {
        let (record, files) = verified_files(store, row)?;
        let files = files
            .iter()
            .map(|f| (f.rel_path.clone(), SideFile::from(&f.meta)))
            .collect();
        Ok(Side::stored(&record, files))
    }

    /// A stored packet's side listing `files` (all of its files, or those a packet diff met),
    /// its bytes read from the store.
    pub(super) fn stored(record: &PacketRecord, files: BTreeMap<String, SideFile>) -> Side {
        Side {
            kind: SideKind::Packet,
            label: format!("{}@{}", record.name, record.version),
            packet_tree_sha256: record.packet_tree_sha256,
            file_count: record.file_count,
            files,
            others: BTreeMap::new(),
            folder_seal: None,
            folder_signature: None,
            bytes: ByteSource::Store,
            elsewhere: BTreeMap::new(),
            seal: None,
        }
    }

    /// Use the files below `dir` as the expected bytes for diagnosis, where they hash to what
    /// this side lists (for a seal: `--original DIR`, such as a KB mirror of the sealed packet).
    /// A folder that is a symlink is refused.
    pub fn with_original(mut self, dir: &Path) -> Result<Side> {
        let opened = Arc::new(RootDir::open(dir)?);
        if matches!(self.bytes, ByteSource::None) {
            self.bytes = ByteSource::Original(opened);
        }
        Ok(self)
    }

    /// Stop comparing executable bits against this side (when it is one of several packets that
    /// share a packet_tree_sha256 and may differ in executable bits).
    pub fn without_modes(mut self) -> Side {
        for file in self.files.values_mut() {
            file.executable = None;
        }
        self
    }

    /// Remove a regular file from a folder side (a KB's `KB_REFERENCES.txt`, which is mirror
    /// metadata, not a packet file). Returns what was listed.
    pub fn remove_file(&mut self, path: &str) -> Option<SideFile> {
        let removed = self.files.remove(path);
        if removed.is_some() {
            self.refresh_tree_hash();
        }
        removed
    }

    /// True if this side holds a regular file or another entry at `path`.
    pub fn holds(&self, path: &str) -> bool {
        self.files.contains_key(path) || self.others.contains_key(path)
    }

    /// Add a file of a folder side whose bytes live elsewhere (a KB reference): at `rel` below
    /// the folder `base` (the KB), reached through its handle without following a symlink,
    /// hashed now. Its executable bit is not compared.
    pub fn add_elsewhere(&mut self, path: &str, base: &Arc<RootDir>, rel: &str) -> Result<()> {
        let abs_path = base.display_path(rel);
        let handle = base.open_file(rel)?;
        let meta = handle.metadata().at(&abs_path, "cannot stat")?;
        if !meta.is_file() {
            return Err(Error::unsupported(abs_path, "is not a regular file"));
        }
        let size = meta.len();
        let sha256 = {
            use sha2::Digest as _;
            let mut hasher = sha2::Sha256::new();
            stream_handle(handle, &abs_path, size, |bytes| {
                hasher.update(bytes);
                Ok(())
            })?;
            Sha256Digest(hasher.finalize().into())
        };
        self.files.insert(
            path.to_string(),
            SideFile {
                sha256,
                size: Some(size),
                executable: None,
                blake3: None,
            },
        );
        self.elsewhere
            .insert(path.to_string(), (base.clone(), rel.to_string()));
        self.refresh_tree_hash();
        Ok(())
    }

    fn refresh_tree_hash(&mut self) {
        if self.kind == SideKind::Folder {
            if let Ok(manifest) = manifest_of_side(&self.files) {
                self.packet_tree_sha256 = manifest.packet_tree_sha256();
            }
            self.file_count = self.files.len() as u64;
        }
    }

    /// The canonical manifest of what this side lists.
    pub fn manifest(&self) -> Result<Manifest> {
        manifest_of_side(&self.files)
    }

    /// The folder's own `HASH_MANIFEST.txt`, for a folder side that has one.
    pub fn folder_seal(&self) -> Option<&Path> {
        self.folder_seal.as_deref()
    }

    /// The bytes of the folder's own `HASH_MANIFEST.txt` (read through the folder's handle), for
    /// a folder side that has one.
    pub fn read_folder_seal(&self) -> Result<Option<Vec<u8>>> {
        match (&self.folder_seal, &self.bytes) {
            (Some(_), ByteSource::Folder(dir)) => read_seal_in(dir, SEAL_FILE_NAME).map(Some),
            // `folder_seal` is set only for a folder side, which always reads through its
            // handle; anything else is a bug, and never a skipped check.
            (Some(path), _) => Err(Error::unsupported(
                path,
                "internal error: a folder seal without its folder handle; nothing was verified",
            )),
            (None, _) => Ok(None),
        }
    }

    /// The bytes of the folder's own `HASH_MANIFEST.txt.sig` (read through the folder's handle,
    /// at most [`crate::gate::signature::MAX_SIGNATURE_BYTES`]), for a folder side that has one.
    pub fn read_folder_signature(&self) -> Result<Option<Vec<u8>>> {
        match (&self.folder_signature, &self.bytes) {
            (Some(_), ByteSource::Folder(dir)) => {
                crate::gate::signature::read_signature_in(dir, SIGNATURE_FILE_NAME).map(Some)
            }
            (Some(path), _) => Err(Error::unsupported(
                path,
                "internal error: a folder signature without its folder handle; nothing was \
                 verified",
            )),
            (None, _) => Ok(None),
        }
    }

    /// The summary reports show.
    pub fn summary(&self) -> SideSummary {
        let mut not_regular = BTreeMap::new();
        for what in self.others.values() {
            *not_regular.entry(*what).or_insert(0) += 1;
        }
        SideSummary {
            kind: self.kind,
            label: self.label.clone(),
            packet_tree_sha256: if self.others.is_empty() {
                Some(self.packet_tree_sha256)
            } else {
                None
            },
            files: self.file_count,
            not_regular,
            seal: self.seal.clone(),
        }
    }
}

pub(super) fn manifest_of_side(files: &BTreeMap<String, SideFile>) -> Result<Manifest> {
    Manifest::from_entries(
        files
            .iter()
            .map(|(path, f)| ManifestEntry {
                path: path.clone(),
                sha256: f.sha256,
            })
            .collect(),
    )
}
