//! Directory walking: turn a folder into the sorted list of packet paths.
//!
//! This module decides what a packet *is* on disk. It walks a folder without following symlinks,
//! checks every name against the rules of the packet format (UTF-8, no control character, no
//! backslash), and returns every non-directory entry with its path relative to the root, joined
//! with `/`, sorted by the path's bytes (the order of `LC_ALL=C sort`). Empty directories are not
//! part of a packet. A top-level `HASH_MANIFEST.txt` is the packet's seal, and a top-level
//! `HASH_MANIFEST.txt.sig` the seal's signature, not files of the packet; they are returned
//! separately.
//!
//! The walk itself never fails on a symlink or a special file: it reports them as
//! [`EntryKind::Symlink`] or [`EntryKind::Special`], so the gate can call them drift. Callers that
//! archive a packet use [`Scan::require_regular_files`], which refuses them.
//!
//! **Every folder is reached through one handle.** [`RootDir::open`] opens the folder itself with
//! `O_DIRECTORY | O_NOFOLLOW`, so a folder that is a symlink is refused (with a message naming the
//! link and its target) instead of followed: a rerun whose generator swapped its output folder for
//! a link to the original packet, or a `verify LINK`, must never hash the link's target as if it
//! were the folder. Everything below the root is then reached *relative to that handle*, never by
//! path: the walk opens each subfolder with `openat2(RESOLVE_NO_SYMLINKS)` from the root handle
//! (on kernels or sandboxes without `openat2`, one `openat(O_NOFOLLOW)` per path component), and
//! files are read the same way ([`RootDir::open_file`], also `O_NONBLOCK`, so a file swapped for a
//! FIFO cannot block a read). So a root or a subfolder replaced by a symlink after the check is
//! never followed: the open fails, and the caller reports the path. The walk is iterative and holds
//! at most three directory handles at a time (the root, the folder being listed, and its listing
//! stream), whatever the depth: it re-opens each folder from the root handle (one system call with
//! `openat2`) rather than keeping a handle per level, so a deep tree cannot exhaust descriptors.
//! Only the components of the path the user gave *above* the root are resolved as usual (a user
//! may keep packets below a symlinked home folder); the root itself is never a symlink, nor is a
//! trailing `/` allowed to make the kernel resolve one.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawMode};

use crate::error::{Error, Result};
use crate::text::EscapePath;

/// The file name of a packet's seal, at the top level of the packet folder.
pub const SEAL_FILE_NAME: &str = "HASH_MANIFEST.txt";

/// The file name of the seal's detached signature (`evstore seal --sign`: OpenSSH `SSHSIG`,
/// namespace `evstore-seal`), beside the seal. Like the seal, it is not one of the packet's files.
pub const SIGNATURE_FILE_NAME: &str = "HASH_MANIFEST.txt.sig";

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
    /// Every non-directory entry except the top-level seal and its signature, sorted by
    /// `rel_path` bytes.
    pub entries: Vec<ScanEntry>,
    /// The top-level `HASH_MANIFEST.txt`, if there is one.
    pub seal: Option<PathBuf>,
    /// The top-level `HASH_MANIFEST.txt.sig`, if there is one.
    pub signature: Option<PathBuf>,
    /// The folder's handle: read every file through it ([`RootDir::open_file`]).
    pub dir: Arc<RootDir>,
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

/// Walk `root` and return its entries. Fails on a root that is a symlink or not a folder, on
/// unreadable directories and on names the format cannot represent; reports symlinks and special
/// files below the root as entries.
pub fn scan(root: &Path) -> Result<Scan> {
    scan_dir(Arc::new(RootDir::open(root)?))
}

/// [`scan`] an already opened folder.
pub fn scan_dir(dir: Arc<RootDir>) -> Result<Scan> {
    let mut entries = Vec::new();
    let mut seal = None;
    let mut signature = None;
    walk(&dir, |item| {
        let path = dir.display_path(item.rel);
        check_component(item.name, &path)?;
        let file_type = FileType::from_raw_mode(RawMode::from(item.stat.st_mode));
        if file_type == FileType::Directory {
            // A top-level folder named like the seal, even an empty one: the folder has a seal,
            // and it is unusable (an empty one would otherwise vanish and leave no seal at all).
            if item.rel == Path::new(SEAL_FILE_NAME) {
                return Err(Error::unsupported(
                    path,
                    "the seal HASH_MANIFEST.txt must be a regular file, not a directory",
                ));
            }
            if item.rel == Path::new(SIGNATURE_FILE_NAME) {
                return Err(Error::unsupported(
                    path,
                    "the seal's signature HASH_MANIFEST.txt.sig must be a regular file, not a \
                     directory",
                ));
            }
            return Ok(true);
        }
        let rel_path = relative_path(item.rel, &path)?;
        let kind = match file_type {
            FileType::RegularFile => EntryKind::Regular {
                size: u64::try_from(item.stat.st_size)
                    .map_err(|_| Error::unsupported(&path, "has a negative size"))?,
                executable: RawMode::from(item.stat.st_mode) & 0o100 != 0,
            },
            FileType::Symlink => EntryKind::Symlink,
            FileType::Fifo => EntryKind::Special("FIFO"),
            FileType::Socket => EntryKind::Special("socket"),
            FileType::BlockDevice => EntryKind::Special("block device"),
            FileType::CharacterDevice => EntryKind::Special("character device"),
            _ => EntryKind::Special("file of unknown type"),
        };
        if rel_path == SEAL_FILE_NAME {
            if !matches!(kind, EntryKind::Regular { .. }) {
                return Err(Error::unsupported(
                    path,
                    "the seal HASH_MANIFEST.txt must be a regular file",
                ));
            }
            seal = Some(path);
            return Ok(false);
        }
        if rel_path == SIGNATURE_FILE_NAME {
            if !matches!(kind, EntryKind::Regular { .. }) {
                return Err(Error::unsupported(
                    path,
                    "the seal's signature HASH_MANIFEST.txt.sig must be a regular file",
                ));
            }
            signature = Some(path);
            return Ok(false);
        }
        entries.push(ScanEntry {
            rel_path,
            abs_path: path,
            kind,
        });
        Ok(false)
    })?;
    let root = dir.path();
    entries.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok(Scan {
        root: root.to_path_buf(),
        entries,
        seal,
        signature,
        dir,
    })
}

/// Flags for every folder evstore opens to read: a real directory, never through a symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Flags for every file read below a [`RootDir`]: never through a symlink, and without blocking
/// on a FIFO swapped in since the walk (the caller checks that it opened a regular file).
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY);

/// A folder opened as a real directory (never through a symlink at its last component); every
/// path below it is reached relative to this handle, without following any symlink. See the
/// module documentation.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl RootDir {
    /// Open `path` as a folder. A symlink is refused (naming its target), as is anything that
    /// is not a folder; the error is operational (exit 2).
    pub fn open(path: &Path) -> Result<RootDir> {
        // `LINK/` or `LINK/.` would make the kernel resolve LINK despite `O_NOFOLLOW` (shells
        // complete a symlink to a folder with a trailing slash): open the last real component.
        let last = without_trailing_slash(path);
        match rustix::fs::open(&last, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(RootDir {
                fd,
                path: path.to_path_buf(),
            }),
            Err(errno) => {
                refuse_symlink(path)?;
                match fs::symlink_metadata(path) {
                    Ok(meta) if !meta.is_dir() => {
                        Err(Error::unsupported(path, "is not a directory"))
                    }
                    _ => Err(Error::io(path, "cannot open folder", errno.into())),
                }
            }
        }
    }

    /// The path the folder was opened by (as given), for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How to name `rel` (a path below the folder) in messages.
    pub fn display_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }

    /// Open the file at the packet path `rel` below this folder for reading, following no
    /// symlink on the way. The caller checks that it is a regular file (`fstat`).
    pub fn open_file(&self, rel: &str) -> Result<File> {
        let path = self.display_path(rel);
        check_rel_path(rel).map_err(|reason| Error::unsupported(&path, reason))?;
        open_beneath(self.fd.as_fd(), Path::new(rel), FILE_FLAGS)
            .map(File::from)
            .map_err(|errno| Error::io(path, "cannot open for reading", errno.into()))
    }

    /// Open the folder at `rel` below this one (`""`: this folder again), following no symlink
    /// on the way. Names in messages are this folder's path joined with `rel`.
    pub fn open_dir(&self, rel: &str) -> Result<RootDir> {
        let path = self.display_path(rel);
        let fd = if rel.is_empty() {
            rustix::fs::openat(self.fd.as_fd(), ".", DIR_FLAGS, Mode::empty())
        } else {
            check_rel_path(rel).map_err(|reason| Error::unsupported(&path, reason))?;
            open_beneath(self.fd.as_fd(), Path::new(rel), DIR_FLAGS)
        };
        match fd {
            Ok(fd) => Ok(RootDir { fd, path }),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => Err(Error::unsupported(
                &path,
                "is not a folder reached without symlinks (it, or a folder above it, is a \
                 symbolic link or not a folder); evstore never follows a symlink below a folder \
                 it reads",
            )),
            Err(errno) => Err(Error::io(path, "cannot open folder", errno.into())),
        }
    }

    /// True if the folder holds no entry at all.
    pub fn is_empty(&self) -> Result<bool> {
        let mut listing = rustix::fs::Dir::read_from(&self.fd)
            .map_err(|errno| Error::io(&self.path, "cannot read folder", errno.into()))?;
        while let Some(item) = listing.read() {
            let item =
                item.map_err(|errno| Error::io(&self.path, "cannot read folder", errno.into()))?;
            let name = item.file_name().to_bytes();
            if name != b"." && name != b".." {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl AsFd for RootDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// If `path` itself (its last component) is a symlink, the operational error that refuses it,
/// naming where it points. Never follows it.
pub fn refuse_symlink(path: &Path) -> Result<()> {
    let last = without_trailing_slash(path);
    match fs::symlink_metadata(&last) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::read_link(&last)
                .map(|t| t.escaped().to_string())
                .unwrap_or_else(|err| format!("an unreadable target: {err}"));
            Err(Error::unsupported(
                path,
                format!(
                    "is a symbolic link (to {target}); evstore never follows a symlink to a \
                     folder it hashes or verifies: name the folder itself"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// `path` without a trailing `/` or `/.` (`Path::components` drops them), so that its last
/// component is a name the kernel does not resolve as a folder first.
fn without_trailing_slash(path: &Path) -> PathBuf {
    let cleaned: PathBuf = path.components().collect();
    if cleaned.as_os_str().is_empty() {
        path.to_path_buf()
    } else {
        cleaned
    }
}

/// Whether the kernel lacks `openat2` (or a sandbox refuses it); then [`open_beneath`] opens one
/// component at a time.
#[cfg(target_os = "linux")]
static NO_OPENAT2: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Open `rel` (relative, no `.` or `..` component) below `dir` without following any symlink:
/// a symlink anywhere on the way is `ELOOP`.
fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::ResolveFlags;
        use std::sync::atomic::Ordering;
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            match rustix::fs::openat2(
                dir,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                // Not available here: use the portable way from now on.
                Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed)
                }
                // Retry once the portable way (a rename raced the lookup).
                Err(rustix::io::Errno::AGAIN) => {}
                other => return other,
            }
        }
    }
    open_by_components(dir, rel, flags)
}

/// [`open_beneath`] without `openat2`: one `openat(O_NOFOLLOW)` per component.
fn open_by_components(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    let mut components = rel.iter().peekable();
    let mut current: Option<OwnedFd> = None;
    while let Some(name) = components.next() {
        let base = current.as_ref().map_or(dir, |fd| fd.as_fd());
        if components.peek().is_none() {
            return rustix::fs::openat(base, name, flags, Mode::empty());
        }
        current = Some(rustix::fs::openat(base, name, DIR_FLAGS, Mode::empty())?);
    }
    Err(rustix::io::Errno::INVAL)
}

/// One entry met by [`walk`].
pub struct WalkItem<'a> {
    /// Its path relative to the walked folder.
    pub rel: &'a Path,
    /// Its name.
    pub name: &'a OsStr,
    /// `lstat` of it (a symlink is described, not followed).
    pub stat: &'a rustix::fs::Stat,
    /// The folder holding it.
    pub parent: BorrowedFd<'a>,
}

/// Visit every entry below `root` (not `root` itself), each folder's entries in name order,
/// depth first. `visit` returns whether to descend into an entry that is a folder. Every folder
/// is opened relative to `root`'s handle without following a symlink.
pub fn walk(root: &RootDir, mut visit: impl FnMut(&WalkItem<'_>) -> Result<bool>) -> Result<()> {
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let opened;
        let dir = if rel.as_os_str().is_empty() {
            root.fd.as_fd()
        } else {
            opened = open_beneath(root.fd.as_fd(), &rel, DIR_FLAGS).map_err(|errno| {
                Error::io(root.display_path(&rel), "cannot open folder", errno.into())
            })?;
            opened.as_fd()
        };
        let display = || root.display_path(&rel);
        let mut names = Vec::new();
        let mut listing = rustix::fs::Dir::read_from(dir)
            .map_err(|errno| Error::io(display(), "cannot read", errno.into()))?;
        while let Some(item) = listing.read() {
            let item = item.map_err(|errno| Error::io(display(), "cannot read", errno.into()))?;
            let name = item.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        drop(listing);
        names.sort();
        let mut subfolders = Vec::new();
        for name in &names {
            let child = rel.join(name);
            let stat = rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|errno| {
                    Error::io(root.display_path(&child), "cannot stat", errno.into())
                })?;
            let item = WalkItem {
                rel: &child,
                name,
                stat: &stat,
                parent: dir,
            };
            let descend = visit(&item)?;
            if descend
                && FileType::from_raw_mode(RawMode::from(stat.st_mode)) == FileType::Directory
            {
                subfolders.push(child);
            }
        }
        // Depth first, in name order: the stack pops the first name first.
        pending.extend(subfolders.into_iter().rev());
    }
    Ok(())
}

fn relative_path(rel: &Path, path: &Path) -> Result<String> {
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
    fn a_root_swapped_for_a_symlink_after_it_was_opened_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("written.txt"), "the generator's\n").unwrap();
        let other = dir.path().join("original");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("packet.txt"), "not the output\n").unwrap();
        let opened = Arc::new(RootDir::open(&root).unwrap());
        // Swap: the folder moves away and a symlink to another folder takes its name.
        fs::rename(&root, dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&other, &root).unwrap();
        let scanned = scan_dir(opened).unwrap();
        let paths: Vec<_> = scanned
            .entries
            .iter()
            .map(|e| e.rel_path.as_str())
            .collect();
        assert_eq!(paths, ["written.txt"]);
        assert!(scanned.dir.open_file("packet.txt").is_err());
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut scanned.dir.open_file("written.txt").unwrap(),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "the generator's\n");
        // Opened by its path now, it is refused, naming the target.
        let err = RootDir::open(&root).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link (to"), "{err}");
        assert!(err.contains("original"), "{err}");
    }

    #[test]
    fn a_subfolder_swapped_for_a_symlink_is_not_followed_by_either_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/f"), "inside\n").unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("f"), "outside\n").unwrap();
        let opened = RootDir::open(&root).unwrap();
        assert!(opened.open_file("sub/f").is_ok());
        fs::rename(root.join("sub"), root.join("was-sub")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("sub")).unwrap();
        assert!(opened.open_file("sub/f").is_err());
        assert!(opened.open_dir("sub").is_err());
        // A symlink on the way: ELOOP (or ENOTDIR, which O_DIRECTORY | O_NOFOLLOW gives).
        let errno = open_by_components(opened.fd.as_fd(), Path::new("sub/f"), FILE_FLAGS).err();
        assert!(
            matches!(
                errno,
                Some(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)
            ),
            "{errno:?}"
        );
        assert!(open_by_components(opened.fd.as_fd(), Path::new("was-sub/f"), FILE_FLAGS).is_ok());
        // The scan reports the symlink as an entry and never lists what is behind it.
        let scanned = scan_dir(Arc::new(opened)).unwrap();
        let listed: Vec<_> = scanned
            .entries
            .iter()
            .map(|e| (e.rel_path.as_str(), e.kind.clone()))
            .collect();
        assert_eq!(listed[0].0, "sub");
        assert_eq!(listed[0].1, EntryKind::Symlink);
        assert_eq!(listed[1].0, "was-sub/f");
        assert_eq!(listed.len(), 2);
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
