//! Seal files: reading one safely ([`read_seal_bytes`], [`read_seal_in`]: no symlink followed,
//! a regular file of at most [`MAX_SEAL_BYTES`]) and writing a folder's canonical
//! `HASH_MANIFEST.txt` ([`seal_folder`]: through the folder's handle, never replacing a seal
//! unless asked), with `--sign` its signature `HASH_MANIFEST.txt.sig` ([`super::signature`]).
//!
//! **Architecture Invariant:** every seal the gate, ingest or `kb verify` reads goes through
//! [`read_seal_bytes`] or [`read_seal_in`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::{sha256_of, Sha256Digest};
use crate::error::{Error, Result};
use crate::folder::{hash_folder, Digests, FolderHashConfig};
use crate::format::manifest::{Manifest, ManifestEntry};
use crate::fsio::{open_no_follow, read_limited};
use crate::gate::signature::{read_signature_in, SshSigningKey, SEAL_NAMESPACE};
use crate::progress::Progress;
use crate::scan::{scan, RootDir, SEAL_FILE_NAME, SIGNATURE_FILE_NAME};
use crate::text::EscapePath;

/// The largest seal file the gate reads (a seal line is at most ~4 KiB; this allows millions).
pub const MAX_SEAL_BYTES: u64 = 1 << 30;

/// Read a seal file (or another small metadata file) whole, refusing anything but a regular
/// file and anything over [`MAX_SEAL_BYTES`]; a symlink is not followed.
pub fn read_seal_bytes(path: &Path) -> Result<Vec<u8>> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::unsupported(
            path,
            "is a symbolic link; evstore reads seals only from regular files (pass the target)",
        ));
    }
    read_limited(open_no_follow(path)?, path, MAX_SEAL_BYTES)
}

/// [`read_seal_bytes`] of the file `rel` below an opened folder, reached through its handle.
pub fn read_seal_in(dir: &RootDir, rel: &str) -> Result<Vec<u8>> {
    let path = dir.display_path(rel);
    let handle = dir.open_file(rel).map_err(|err| {
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            Error::unsupported(
                &path,
                "is a symbolic link; evstore reads seals only from regular files",
            )
        } else {
            err
        }
    })?;
    read_limited(handle, &path, MAX_SEAL_BYTES)
}

/// What [`seal_folder`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SealAction {
    /// There was no seal; one was written.
    Written,
    /// The same seal was already there; nothing was written.
    Unchanged,
    /// A different seal was replaced (`--force`).
    Replaced,
}

/// The result of sealing a folder.
#[derive(Clone, Debug, Serialize)]
pub struct SealReport {
    /// What was done.
    pub action: SealAction,
    /// The seal's path.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub seal: PathBuf,
    /// The packet_tree_sha256 (the SHA-256 of the seal).
    pub packet_tree_sha256: Sha256Digest,
    /// Files listed.
    pub files: u64,
    /// What was done with the seal's signature (`--sign`); absent without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureWritten>,
}

/// The signature `seal --sign` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct SignatureWritten {
    /// Written, unchanged (the same signature was there), or replaced (`--force`).
    pub action: SealAction,
    /// The signature file.
    #[serde(serialize_with = "crate::text::serialize_escaped")]
    pub file: PathBuf,
    /// The namespace signed in (`evstore-seal`).
    pub namespace: &'static str,
    /// The signing key's SHA-256 fingerprint (`SHA256:…`, as `ssh-keygen -l` prints it).
    pub key_fingerprint: String,
}

/// How to seal a folder.
#[derive(Default)]
pub struct SealConfig<'a> {
    /// Replace a different existing seal (and signature).
    pub force: bool,
    /// Sign the seal with this key, writing `HASH_MANIFEST.txt.sig`.
    pub sign: Option<&'a SshSigningKey>,
}

/// Write `HASH_MANIFEST.txt` in the opened folder `dir`: a new temp file (`O_EXCL`, mode
/// `0644`), fsynced, renamed to the seal's name (without replacing anything unless `replace`),
/// then the folder fsynced. Every step is relative to the folder's handle.
fn write_seal_in(dir: &RootDir, text: &[u8], replace: bool) -> Result<()> {
    write_file_in(dir, SEAL_FILE_NAME, text, replace)
}

/// Write the top-level file `file_name` (the seal or its signature) in the opened folder `dir`,
/// as [`write_seal_in`] writes the seal.
fn write_file_in(dir: &RootDir, file_name: &str, text: &[u8], replace: bool) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsFd;
    let fd = dir.as_fd();
    let seal_path = dir.display_path(file_name);
    let mut attempt = 0u32;
    let (temp_name, handle) = loop {
        let name = format!(
            ".{file_name}.{}.{}.{attempt}.tmp",
            std::process::id(),
            crate::now_unix_nanos()
        );
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(fd, name.as_str(), flags, Mode::from_raw_mode(0o644)) {
            Ok(handle) => break (name, File::from(handle)),
            Err(rustix::io::Errno::EXIST) if attempt < 100 => attempt += 1,
            Err(errno) => {
                return Err(Error::io(
                    dir.path(),
                    "cannot create a temporary seal file in",
                    errno.into(),
                ))
            }
        }
    };
    let temp_path = dir.display_path(&temp_name);
    let remove_temp = || {
        let _ = rustix::fs::unlinkat(fd, temp_name.as_str(), rustix::fs::AtFlags::empty());
    };
    let mut handle = handle;
    if let Err(err) = handle.write_all(text).and_then(|()| handle.sync_all()) {
        remove_temp();
        return Err(Error::io(temp_path, "cannot write the seal", err));
    }
    drop(handle);
    // The point of no return: after a signal, the temp file is removed and no seal written.
    if let Err(err) = crate::interrupt::check() {
        remove_temp();
        return Err(err);
    }
    let renamed = if replace {
        rustix::fs::renameat(fd, temp_name.as_str(), fd, file_name)
            .map_err(|errno| Error::io(&seal_path, "cannot replace the seal", errno.into()))
    } else {
        // Without RENAME_NOREPLACE this links (never replaces); the unlink below removes the temp.
        crate::fsio::rename_file_no_replace_at(fd, &temp_name, file_name).map_err(|err| {
            Error::io(
                &seal_path,
                "cannot write the seal (appeared meanwhile?)",
                err,
            )
        })
    };
    // After a rename the temp name is gone (unlink fails harmlessly); after a link or a failure it
    // is removed here.
    remove_temp();
    renamed?;
    rustix::fs::fsync(fd).map_err(|errno| Error::io(dir.path(), "cannot sync", errno.into()))
}

/// Write `dir/HASH_MANIFEST.txt` with the canonical manifest of the folder, and with
/// `config.sign` its signature `HASH_MANIFEST.txt.sig`. The folder must hold only regular files
/// (as for ingest). A different existing seal or signature is refused unless `config.force`; a
/// new seal beside a signature of another seal is refused without `--sign` (the signature would
/// sign bytes no longer there).
pub fn seal_folder(dir: &Path, config: &SealConfig<'_>) -> Result<SealReport> {
    let scanned = scan(dir)?;
    scanned.require_regular_files()?;
    let dir_handle = scanned.dir.clone();
    let seal = scanned.seal.clone();
    let old_signature = scanned.signature.clone();
    let progress = Progress::silent();
    let folder = hash_folder(
        scanned,
        &FolderHashConfig::new("hash", Digests::Sha256, &progress),
    )?;
    let entries: Vec<ManifestEntry> = folder
        .files
        .iter()
        .map(|f| ManifestEntry {
            path: f.rel_path.clone(),
            sha256: f.sha256,
        })
        .collect();
    let manifest = Manifest::from_entries(entries)?;
    let text = manifest.text();
    let seal_path = dir.join(SEAL_FILE_NAME);
    let signature_path = dir.join(SIGNATURE_FILE_NAME);
    let existing = match &seal {
        Some(_) => Some(read_seal_in(&dir_handle, SEAL_FILE_NAME)?),
        None => None,
    };
    let seal_action = match &existing {
        None => SealAction::Written,
        Some(existing) if existing.as_slice() == text.as_bytes() => SealAction::Unchanged,
        Some(existing) if !config.force => {
            return Err(Error::Usage(format!(
                "{} already holds a different seal (its SHA-256 is {}, the folder's \
                 packet_tree_sha256 is {}); run `evstore verify {}` to see what changed, or pass \
                 --force to replace the seal",
                seal_path.escaped(),
                sha256_of(existing),
                manifest.packet_tree_sha256(),
                dir.escaped()
            )));
        }
        Some(_) => SealAction::Replaced,
    };
    let signature = match config.sign {
        Some(key) => Some((key, key.sign(SEAL_NAMESPACE, text.as_bytes())?)),
        None => None,
    };
    let old_signature_bytes = match &old_signature {
        Some(_) => Some(read_signature_in(&dir_handle, SIGNATURE_FILE_NAME)?),
        None => None,
    };
    let signature_action = match (&signature, &old_signature_bytes) {
        (None, None) => None,
        (None, Some(_)) if seal_action == SealAction::Unchanged => None,
        (None, Some(_)) if existing.is_none() => {
            return Err(Error::Usage(format!(
                "{} is there without the seal it signs; sign the new seal with --sign KEY, or \
                 remove the signature first",
                signature_path.escaped()
            )));
        }
        (None, Some(_)) => {
            return Err(Error::Usage(format!(
                "{} signs the seal this would replace; sign the new seal with --sign KEY, or \
                 remove the signature first",
                signature_path.escaped()
            )));
        }
        (Some(_), None) => Some(SealAction::Written),
        (Some((_, new)), Some(old)) if old.as_slice() == new.as_bytes() => {
            Some(SealAction::Unchanged)
        }
        (Some(_), Some(_)) if config.force => Some(SealAction::Replaced),
        (Some(_), Some(_)) => {
            return Err(Error::Usage(format!(
                "{} already holds a different signature (by another key, or of another seal); \
                 pass --force to replace it",
                signature_path.escaped()
            )));
        }
    };
    crate::interrupt::check()?;
    // Written through the folder's handle, like everything the scan read: if DIR was swapped for
    // a symlink since, the seal still lands in the folder that was hashed, never elsewhere. The
    // seal first: an interrupted run leaves a seal without its signature (which fails
    // `verify --signed-by`), never a signature of a seal that is not there.
    if seal_action != SealAction::Unchanged {
        write_seal_in(&dir_handle, text.as_bytes(), existing.is_some())?;
    }
    let written = match (signature, signature_action) {
        (Some((key, signature)), Some(action)) => {
            if action != SealAction::Unchanged {
                crate::interrupt::check()?;
                write_file_in(
                    &dir_handle,
                    SIGNATURE_FILE_NAME,
                    signature.as_bytes(),
                    action == SealAction::Replaced,
                )?;
            }
            Some(SignatureWritten {
                action,
                file: signature_path,
                namespace: SEAL_NAMESPACE,
                key_fingerprint: key.fingerprint(),
            })
        }
        _ => None,
    };
    Ok(SealReport {
        action: seal_action,
        seal: seal_path,
        packet_tree_sha256: manifest.packet_tree_sha256(),
        files: manifest.len() as u64,
        signature: written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_is_written_into_the_folder_that_was_opened_even_if_it_was_swapped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.txt"), "a\n").unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let opened = RootDir::open(&root).unwrap();
        std::fs::rename(&root, dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &root).unwrap();
        write_seal_in(&opened, b"seal text\n", false).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("moved").join(SEAL_FILE_NAME)).unwrap(),
            b"seal text\n"
        );
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        // A new seal never replaces one that is there; --force does, and no temp file stays.
        assert!(write_seal_in(&opened, b"other\n", false).is_err());
        write_seal_in(&opened, b"other\n", true).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("moved"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
