//! Directory walking: turn a folder into the sorted list of packet paths.
//!
//! This module decides what a packet *is* on disk. It walks a folder without following symlinks,
//! checks every name against the rules of the packet format (UTF-8, no control character, no
//! backslash), and returns every non-directory entry with its path relative to the root, joined
//! with `/`, sorted by the path's bytes (the order of `LC_ALL=C sort`). Empty directories are not
//! part of a packet. A top-level `HASH_MANIFEST.txt` is the packet's seal, not one of its files; it
//! is returned separately.
//!
//! The walk itself never fails on a symlink or a special file: it reports them as
//! [`EntryKind::Symlink`] or [`EntryKind::Special`], so the gate can call them drift. Callers that
//! archive a packet use [`Scan::require_regular_files`], which refuses them.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// The file name of a packet's seal, at the top level of the packet folder.
pub const SEAL_FILE_NAME: &str = "HASH_MANIFEST.txt";

/// What kind of thing a scanned path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    Regular {
        /// Size in bytes when scanned.
        size: u64,
        /// True if the owner-execute bit (`0o100`) is set.
        executable: bool,
    },
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO, socket or device; the string names which.
    Special(&'static str),
}

/// One non-directory entry below the scanned root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanEntry {
    /// Path relative to the root, components joined with `/`.
    pub rel_path: String,
    /// Path on disk.
    pub abs_path: PathBuf,
    /// What the entry is.
    pub kind: EntryKind,
}

/// A regular file of a packet, ready to be hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketFile {
    /// Path relative to the packet root, components joined with `/`.
    pub rel_path: String,
    /// Path on disk.
    pub abs_path: PathBuf,
    /// Size in bytes when scanned.
    pub size: u64,
    /// True if the owner-execute bit is set.
    pub executable: bool,
}

/// The result of walking a folder.
#[derive(Clone, Debug)]
pub struct Scan {
    /// The folder that was walked.
    pub root: PathBuf,
    /// Every non-directory entry except the top-level seal, sorted by `rel_path` bytes.
    pub entries: Vec<ScanEntry>,
    /// The top-level `HASH_MANIFEST.txt`, if there is one.
    pub seal: Option<PathBuf>,
}

impl Scan {
    /// The packet's files, refusing anything that is not a regular file, and refusing an empty
    /// packet.
    pub fn require_regular_files(&self) -> Result<Vec<PacketFile>> {
        let mut files = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            match entry.kind {
                EntryKind::Regular { size, executable } => files.push(PacketFile {
                    rel_path: entry.rel_path.clone(),
                    abs_path: entry.abs_path.clone(),
                    size,
                    executable,
                }),
                EntryKind::Symlink => {
                    return Err(Error::unsupported(
                        &entry.abs_path,
                        "is a symbolic link; packets hold regular files only (copy the target in instead)",
                    ))
                }
                EntryKind::Special(what) => {
                    return Err(Error::unsupported(
                        &entry.abs_path,
                        format!("is a {what}; packets hold regular files only"),
                    ))
                }
            }
        }
        if files.is_empty() {
            return Err(Error::unsupported(
                &self.root,
                "is an empty packet: it holds no regular file (empty directories are not part of a packet)",
            ));
        }
        Ok(files)
    }
}

/// Check that one path component can be represented in a packet, and return it as `&str`.
///
/// The rules make `sha256sum` print every path verbatim (it escapes names holding a backslash or
/// a newline) and keep manifest lines unambiguous.
pub fn check_component<'a>(name: &'a std::ffi::OsStr, path: &Path) -> Result<&'a str> {
    let Some(text) = name.to_str() else {
        return Err(Error::unsupported(path, "file name is not valid UTF-8"));
    };
    check_component_text(text).map_err(|reason| Error::unsupported(path, reason))?;
    Ok(text)
}

/// The text rules for one path component; the error is a reason sentence.
pub fn check_component_text(text: &str) -> std::result::Result<(), String> {
    if text.is_empty() {
        return Err("empty path component".into());
    }
    if text == "." || text == ".." {
        return Err(format!("path component {text:?} is not allowed"));
    }
    if text.contains('/') {
        return Err("path component contains '/'".into());
    }
    if text.contains('\\') {
        return Err("file name contains a backslash, which sha256sum would escape".into());
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "file name contains the control character U+{:04X}",
            c as u32
        ));
    }
    Ok(())
}

/// Check a whole relative packet path (`a/b/c.txt`); the error is a reason sentence.
pub fn check_rel_path(path: &str) -> std::result::Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    for component in path.split('/') {
        check_component_text(component)?;
    }
    Ok(())
}

/// Walk `root` and return its entries. Fails on unreadable directories and on names the format
/// cannot represent; reports symlinks and special files as entries.
pub fn scan(root: &Path) -> Result<Scan> {
    let meta = fs::metadata(root).at(root, "cannot read packet folder")?;
    if !meta.is_dir() {
        return Err(Error::unsupported(root, "is not a directory"));
    }
    let mut entries = Vec::new();
    let mut seal = None;
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .sort_by_file_name();
    for item in walker {
        let item = item.map_err(|err| {
            let path = err.path().unwrap_or(root).to_path_buf();
            match err.into_io_error() {
                Some(io) => Error::io(path, "cannot read", io),
                None => Error::unsupported(path, "symbolic link loop"),
            }
        })?;
        let path = item.path();
        check_component(item.file_name(), path)?;
        let file_type = item.file_type();
        if file_type.is_dir() {
            continue;
        }
        let rel_path = relative_path(root, path)?;
        let kind = if file_type.is_file() {
            let meta = item.metadata().map_err(|err| {
                Error::io(
                    path,
                    "cannot stat",
                    err.into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("stat failed")),
                )
            })?;
            EntryKind::Regular {
                size: meta.size(),
                executable: meta.permissions().mode() & 0o100 != 0,
            }
        } else if file_type.is_symlink() {
            EntryKind::Symlink
        } else if file_type.is_fifo() {
            EntryKind::Special("FIFO")
        } else if file_type.is_socket() {
            EntryKind::Special("socket")
        } else if file_type.is_block_device() {
            EntryKind::Special("block device")
        } else if file_type.is_char_device() {
            EntryKind::Special("character device")
        } else {
            EntryKind::Special("file of unknown type")
        };
        if rel_path == SEAL_FILE_NAME {
            if !matches!(kind, EntryKind::Regular { .. }) {
                return Err(Error::unsupported(
                    path,
                    "the seal HASH_MANIFEST.txt must be a regular file",
                ));
            }
            seal = Some(path.to_path_buf());
            continue;
        }
        entries.push(ScanEntry {
            rel_path,
            abs_path: path.to_path_buf(),
            kind,
        });
    }
    // A top-level directory named like the seal would put files under a path the coreutils
    // one-liner excludes only at the top level; refuse it rather than guess.
    if entries
        .iter()
        .any(|e| e.rel_path.starts_with("HASH_MANIFEST.txt/"))
    {
        return Err(Error::unsupported(
            root.join(SEAL_FILE_NAME),
            "the seal HASH_MANIFEST.txt must be a regular file, not a directory",
        ));
    }
    entries.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok(Scan {
        root: root.to_path_buf(),
        entries,
        seal,
    })
}

fn relative_path(root: &Path, path: &Path) -> Result<String> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| Error::unsupported(path, "is not below the packet root"))?;
    let mut out = String::new();
    for component in rel.components() {
        let std::path::Component::Normal(name) = component else {
            return Err(Error::unsupported(path, "unexpected path component"));
        };
        let text = check_component(name, path)?;
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_rules() {
        assert!(check_component_text("report.json").is_ok());
        assert!(check_component_text("r\u{e9}sum\u{e9} \u{2014} x").is_ok());
        assert!(check_component_text("").is_err());
        assert!(check_component_text(".").is_err());
        assert!(check_component_text("..").is_err());
        assert!(check_component_text("a\\b").is_err());
        assert!(check_component_text("a\nb").is_err());
        assert!(check_component_text("a\u{7f}b").is_err());
        assert!(check_component_text("a\u{85}b").is_err());
    }

    #[test]
    fn rel_path_rules() {
        assert!(check_rel_path("a/b/c").is_ok());
        assert!(check_rel_path("/a").is_err());
        assert!(check_rel_path("a//b").is_err());
        assert!(check_rel_path("a/").is_err());
        assert!(check_rel_path("a/../b").is_err());
        assert!(check_rel_path("./a").is_err());
    }

    #[test]
    fn scan_sorts_by_path_bytes_not_by_walk_order() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        fs::write(dir.path().join("a/b"), "1").unwrap();
        fs::write(dir.path().join("a-c"), "2").unwrap();
        fs::create_dir(dir.path().join("empty")).unwrap();
        fs::write(dir.path().join(SEAL_FILE_NAME), "").unwrap();
        let scan = scan(dir.path()).unwrap();
        let paths: Vec<_> = scan.entries.iter().map(|e| e.rel_path.as_str()).collect();
        assert_eq!(paths, ["a-c", "a/b"]);
        assert!(scan.seal.is_some());
    }
}
