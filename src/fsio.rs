//! Durable file-system helpers: the one home of every low-level file operation whose exact
//! semantics matter for safety.
//!
//! - Reading input files: [`open_no_follow`], [`stream_handle`] and its hashing wrappers
//!   ([`sha256_in`], [`blake3_in`]), which refuse a symlink swapped in since the
//!   scan and a file whose size or modification time changed while it was read, and
//!   [`read_limited`] for a small metadata file (a seal) with a size cap.
//! - Durability: [`sync_folder`] (fsync of a folder, so names created or renamed in it survive a
//!   crash) and [`sync_file_system`] (one `syncfs` for everything written below a folder).
//! - Publishing: [`rename_no_replace`] and [`rename_file_no_replace_at`], which never replace
//!   what is at the destination.
//! - Locking: [`Lock`], an `flock` on a folder (shared or exclusive), taken without waiting, with
//!   a wait, or with a bounded wait whose start is announced once through [`crate::notice`]
//!   that the CLI installs (this module prints nothing).
//!
//! **Architecture Invariant:** every `flock` evstore takes is a [`Lock`], and every rename that
//! must not replace anything goes through this module; nothing here prints.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, Instant};

use crate::digest::{Blake3Digest, Sha256Digest};
use crate::error::{Error, IoContext, Result};
use crate::scan::RootDir;
use crate::text::EscapePath;

/// The chunk size of streamed reads.
const CHUNK: usize = 256 * 1024;

/// Open a file for reading without following a symlink swapped in since the scan.
pub fn open_no_follow(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .at(path, "cannot open for reading")
}

/// Open a folder (for locking or syncing it) without following a symlink in its last component.
pub fn open_folder_no_follow(folder: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW).bits() as i32)
        .open(folder)
}

/// The error for a file that changed while it was read.
pub fn changed_while_read(path: &Path) -> Error {
    Error::unsupported(
        path,
        "file changed while it was being read; archive a quiet folder",
    )
}

fn same_file_state(before: &Metadata, after: &Metadata) -> bool {
    before.len() == after.len() && before.modified().ok() == after.modified().ok()
}

/// Refuse a file whose size or modification time differs from `before` (taken before it was
/// read).
pub fn check_unchanged(handle: &File, before: &Metadata, path: &Path) -> Result<()> {
    let after = handle.metadata().at(path, "cannot stat")?;
    if same_file_state(before, &after) {
        Ok(())
    } else {
        Err(changed_while_read(path))
    }
}

/// SHA-256 of the file at the packet path `rel` below `dir` (reached through the folder's
/// handle, never through a symlink). Refuses a symlink swapped in since the scan and a file that
/// changes while it is read.
pub fn sha256_in(dir: &RootDir, rel: &str, scanned_size: u64) -> Result<Sha256Digest> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let handle = dir.open_file(rel)?;
    stream_handle(handle, &dir.display_path(rel), scanned_size, |bytes| {
        hasher.update(bytes);
        Ok(())
    })?;
    Ok(Sha256Digest(hasher.finalize().into()))
}

/// BLAKE3 of the file at the packet path `rel` below `dir`, as [`sha256_in`]: the faster check
/// where the expected side knows each file's BLAKE3 (a stored packet).
pub fn blake3_in(dir: &RootDir, rel: &str, scanned_size: u64) -> Result<Blake3Digest> {
    let mut hasher = blake3::Hasher::new();
    let handle = dir.open_file(rel)?;
    stream_handle(handle, &dir.display_path(rel), scanned_size, |bytes| {
        hasher.update(bytes);
        Ok(())
    })?;
    Ok(Blake3Digest(*hasher.finalize().as_bytes()))
}

/// Read a small metadata file (a seal) whole from an open handle: it must be a regular file of
/// at most `limit` bytes.
pub fn read_limited(file: File, path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = file.metadata().at(path, "cannot stat seal")?;
    if !meta.is_file() {
        return Err(Error::unsupported(path, "the seal is not a regular file"));
    }
    if meta.len() > limit {
        return Err(Error::unsupported(
            path,
            format!("the seal is larger than {limit} bytes"),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .at(path, "cannot read seal")?;
    if bytes.len() as u64 > limit {
        return Err(Error::unsupported(
            path,
            format!("the seal is larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// Feed every byte of the open file `handle` (`path` names it in messages) to `consume`, once,
/// in chunks of up to 256 KiB. Refuses a file that is not regular, or whose size or
/// modification time changes while it is read, or whose size is not `scanned_size`. Stops at a
/// termination signal, and at the first error `consume` returns.
pub fn stream_handle(
    mut handle: File,
    path: &Path,
    scanned_size: u64,
    mut consume: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let before = handle.metadata().at(path, "cannot stat")?;
    if !before.is_file() || before.len() != scanned_size {
        return Err(changed_while_read(path));
    }
    let mut buf = vec![0u8; CHUNK.min(scanned_size as usize + 1).max(1)];
    let mut total: u64 = 0;
    loop {
        crate::interrupt::check()?;
        let n = match handle.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io(path, "cannot read", err)),
        };
        total += n as u64;
        if total > scanned_size {
            return Err(changed_while_read(path));
        }
        consume(&buf[..n])?;
    }
    if total != scanned_size {
        return Err(changed_while_read(path));
    }
    check_unchanged(&handle, &before, path)
}

/// Fsync the folder `folder`, so the names created, removed or renamed in it are durable.
pub fn sync_folder(folder: &Path) -> Result<()> {
    File::open(folder)
        .and_then(|dir| dir.sync_all())
        .at(folder, "cannot fsync folder")
}

/// Fsync the folder holding `path`, so a rename to `path` is durable.
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_folder(parent),
        _ => sync_folder(Path::new(".")),
    }
}

/// Flush everything written below `folder` to stable storage: one `syncfs` of its file system
/// on Linux, an fsync of the folder elsewhere (where the caller has fsynced its files).
pub fn sync_file_system(folder: &Path) -> Result<()> {
    let handle = File::open(folder).at(folder, "cannot open for sync")?;
    #[cfg(target_os = "linux")]
    rustix::fs::syncfs(&handle)
        .map_err(|errno| Error::io(folder, "syncfs failed", errno.into()))?;
    #[cfg(not(target_os = "linux"))]
    handle.sync_all().at(folder, "cannot fsync")?;
    Ok(())
}

/// Rename `from` to `to` (a file or a folder), failing with `AlreadyExists` rather than
/// replacing anything at `to`.
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
            // The file system cannot rename without replacing. For a file, a hard link never
            // replaces; for a folder, check first (racy, but only on such file systems).
            if std::fs::symlink_metadata(from).is_ok_and(|meta| meta.is_file()) {
                std::fs::hard_link(from, to)?;
                return std::fs::remove_file(from);
            }
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            std::fs::rename(from, to)
        }
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// Rename the file `from` to `to`, both names in the folder `dir`, never replacing anything at
/// `to`. On a file system without `RENAME_NOREPLACE` the file is hard-linked instead (which
/// never replaces) and `from` is left for the caller to remove.
pub fn rename_file_no_replace_at(
    dir: impl std::os::fd::AsFd,
    from: &str,
    to: &str,
) -> io::Result<()> {
    use rustix::fs::{linkat, renameat_with, AtFlags, RenameFlags};
    let dir = dir.as_fd();
    match renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            linkat(dir, from, dir, to, AtFlags::empty())
        }
        other => other,
    }
    .map_err(io::Error::from)
}

/// Which side of a [`Lock`] to take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once (writers of a store, users of a catalog).
    Shared,
    /// One holder, and no shared holder (gc-temp, reindex, a KB publish).
    Exclusive,
}

/// The default bound of a [`Lock::wait_bounded`] wait, in seconds, unless
/// `$EVSTORE_LOCK_TIMEOUT_SECS` says otherwise.
pub const DEFAULT_LOCK_TIMEOUT_SECS: u64 = 120;

/// The bound of an announced lock wait: `$EVSTORE_LOCK_TIMEOUT_SECS` (whole seconds, 0 to
/// 86400) when set, else [`DEFAULT_LOCK_TIMEOUT_SECS`]. A malformed value is a usage error.
pub fn lock_timeout() -> Result<Duration> {
    match std::env::var("EVSTORE_LOCK_TIMEOUT_SECS") {
        Err(std::env::VarError::NotPresent) => Ok(Duration::from_secs(DEFAULT_LOCK_TIMEOUT_SECS)),
        // Digits only (no sign, no space), at most a day: a larger wait is no timeout at all,
        // and `Instant + Duration` must not overflow.
        Ok(text) => match text.parse::<u64>() {
            Ok(secs) if text.bytes().all(|b| b.is_ascii_digit()) && secs <= 86_400 => {
                Ok(Duration::from_secs(secs))
            }
            _ => Err(Error::Usage(format!(
                "$EVSTORE_LOCK_TIMEOUT_SECS {text:?} is not a whole number of seconds from 0 to \
                 86400"
            ))),
        },
        Err(std::env::VarError::NotUnicode(text)) => Err(Error::Usage(format!(
            "$EVSTORE_LOCK_TIMEOUT_SECS {text:?} is not a whole number of seconds"
        ))),
    }
}

/// What a bounded lock wait announces when it starts waiting: the CLI shows it on stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockWaitNotice {
    /// The locked folder.
    pub folder: PathBuf,
    /// Who holds the lock, as a clause ("another evstore process (…) holds the catalog lock").
    pub holder: &'static str,
    /// How long the wait lasts at most.
    pub timeout: Duration,
}

impl std::fmt::Display for LockWaitNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}; waiting up to {} s",
            self.folder.escaped(),
            self.holder,
            self.timeout.as_secs()
        )
    }
}

/// Whether this process already announced a lock wait (it is announced once per process,
/// through [`crate::notice`]).
static ANNOUNCED_WAIT: AtomicBool = AtomicBool::new(false);

/// A bounded, announced wait for a [`Lock`] (see [`Lock::wait_bounded`]).
#[derive(Debug)]
pub struct BoundedWait {
    /// The longest wait, from the first time the lock was found held.
    pub timeout: Duration,
    /// When the wait ends; set at the first wait and kept, so a caller that takes the lock more
    /// than once waits at most `timeout` in all.
    pub deadline: Option<Instant>,
    /// Who holds the lock while this waits, for the notice.
    pub holder: &'static str,
}

/// An `flock` on a folder, held until dropped (the kernel also drops it when the process dies).
#[derive(Debug)]
pub struct Lock {
    folder: File,
}

fn flock_operation(mode: LockMode, wait: bool) -> rustix::fs::FlockOperation {
    use rustix::fs::FlockOperation;
    match (mode, wait) {
        (LockMode::Shared, true) => FlockOperation::LockShared,
        (LockMode::Shared, false) => FlockOperation::NonBlockingLockShared,
        (LockMode::Exclusive, true) => FlockOperation::LockExclusive,
        (LockMode::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
    }
}

impl Lock {
    /// Take the lock on the opened `folder` without waiting: `None` while another handle holds
    /// the conflicting side.
    ///
    /// # Errors
    ///
    /// The `flock` failed for another reason than contention (the caller names the folder).
    pub fn try_take(folder: File, mode: LockMode) -> io::Result<Option<Lock>> {
        match rustix::fs::flock(&folder, flock_operation(mode, false)) {
            Ok(()) => Ok(Some(Lock { folder })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Take the lock on the opened `folder`, waiting as long as it takes. evstore's signal
    /// handlers are installed with `SA_RESTART`, so the kernel restarts the wait after a
    /// termination signal: the first SIGINT/SIGTERM/SIGHUP does not end it, a second one at least
    /// 1 s later exits at once (see `interrupt`). An `EINTR` (a handler without `SA_RESTART`) is
    /// an error if a termination signal is pending, and retried otherwise.
    ///
    /// # Errors
    ///
    /// The `flock` failed, or it was interrupted while a termination signal is pending.
    pub fn wait(folder: File, mode: LockMode) -> io::Result<Lock> {
        loop {
            match rustix::fs::flock(&folder, flock_operation(mode, true)) {
                Ok(()) => return Ok(Lock { folder }),
                Err(rustix::io::Errno::INTR) if crate::interrupt::check().is_ok() => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Take the lock on the opened `folder` (`path` names it in the notice), waiting until
    /// `wait`'s deadline: `None` when it is still held then. The first wait of the process is
    /// announced through [`crate::notice`].
    ///
    /// # Errors
    ///
    /// The `flock` failed for another reason than contention.
    pub fn wait_bounded(
        folder: File,
        path: &Path,
        mode: LockMode,
        wait: &mut BoundedWait,
    ) -> io::Result<Option<Lock>> {
        loop {
            match rustix::fs::flock(&folder, flock_operation(mode, false)) {
                Ok(()) => return Ok(Some(Lock { folder })),
                Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(errno) => return Err(errno.into()),
            }
            let now = Instant::now();
            let until = *wait.deadline.get_or_insert(now + wait.timeout);
            if now >= until {
                return Ok(None);
            }
            if !ANNOUNCED_WAIT.swap(true, Ordering::Relaxed) {
                crate::notice::notice(
                    &LockWaitNotice {
                        folder: path.to_path_buf(),
                        holder: wait.holder,
                        timeout: wait.timeout,
                    }
                    .to_string(),
                );
            }
            std::thread::sleep(Duration::from_millis(50).min(until - now));
        }
    }

    /// The locked folder's handle.
    pub fn folder(&self) -> &File {
        &self.folder
    }
}

/// Write `bytes` to the new file `path` (`O_EXCL`: never over an existing file) with `mode`,
/// synced; a partly written file is removed. `what` names the file in errors.
///
/// # Errors
///
/// [`Error::Usage`] if `path` exists; I/O errors creating or writing it.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32, what: &str) -> Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Usage(format!(
                "{} exists; {what} is never written over an existing file: choose another path",
                path.escaped()
            )),
            _ => Error::io(path, "cannot create", err),
        })?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(err) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(Error::io(path, "cannot write", err));
    }
    Ok(())
}

/// Read a file a user gave whole, if it holds at most `max` bytes; a larger one is refused (a
/// usage error naming the limit), never cut short.
///
/// # Errors
///
/// [`Error::Usage`] for a file that cannot be read or is larger than `max`.
pub fn read_input_at_most(path: &Path, what: &str, max: u64) -> Result<Vec<u8>> {
    let cannot = |err: std::io::Error| {
        Error::Usage(format!("{}: cannot read {what}: {err}", path.escaped()))
    };
    // Opened without blocking (a FIFO would wait for a writer forever), then checked to be a
    // regular file through the handle, so nothing can swap the path between check and read.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(Error::Usage(format!(
            "{}: not a regular file, so not {what}",
            path.escaped()
        )));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, max + 1), &mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > max {
        return Err(Error::Usage(format!(
            "{}: larger than {}, so not {what}",
            path.escaped(),
            size_words(max)
        )));
    }
    Ok(bytes)
}

/// A byte limit in words: `1 MiB`, `64 MiB`, or a count of bytes.
fn size_words(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Refuse a private key file that group or others can read or write (as `ssh` refuses one):
/// [`Error::Usage`] naming the path, its mode, and the `chmod` that fixes it.
///
/// # Errors
///
/// As above, or the file's metadata cannot be read.
pub fn refuse_key_readable_by_others(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = std::fs::metadata(path).map_err(|err| {
        Error::Usage(format!(
            "{}: cannot read the key file: {err}",
            path.escaped()
        ))
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Usage(format!(
            "{}: the private key is readable or writable by others (mode {mode:04o}); \
             `chmod 600 {}` and try again",
            path.escaped(),
            path.escaped()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> File {
        File::open(dir).unwrap()
    }

    #[test]
    fn an_exclusive_lock_excludes_shared_and_exclusive_holders_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Lock::try_take(open(dir.path()), LockMode::Shared)
            .unwrap()
            .expect("free");
        let second_shared = Lock::try_take(open(dir.path()), LockMode::Shared).unwrap();
        assert!(second_shared.is_some(), "shared holders coexist");
        assert!(Lock::try_take(open(dir.path()), LockMode::Exclusive)
            .unwrap()
            .is_none());
        drop(shared);
        drop(second_shared);
        let exclusive = Lock::try_take(open(dir.path()), LockMode::Exclusive)
            .unwrap()
            .expect("free again");
        assert!(Lock::try_take(open(dir.path()), LockMode::Shared)
            .unwrap()
            .is_none());
        drop(exclusive);
        assert!(Lock::wait(open(dir.path()), LockMode::Shared).is_ok());
    }

    #[test]
    fn a_bounded_wait_gives_up_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Lock::try_take(open(dir.path()), LockMode::Exclusive)
            .unwrap()
            .expect("free");
        let mut wait = BoundedWait {
            timeout: Duration::ZERO,
            deadline: None,
            holder: "a test holds it",
        };
        let taken =
            Lock::wait_bounded(open(dir.path()), dir.path(), LockMode::Shared, &mut wait).unwrap();
        assert!(taken.is_none());
        assert!(wait.deadline.is_some());
    }

    #[test]
    fn the_lock_wait_notice_names_the_folder_holder_and_bound() {
        let notice = LockWaitNotice {
            folder: PathBuf::from("/s"),
            holder: "another process holds it",
            timeout: Duration::from_secs(7),
        };
        assert_eq!(
            notice.to_string(),
            "/s: another process holds it; waiting up to 7 s"
        );
    }

    #[test]
    fn rename_no_replace_never_replaces_a_file_or_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "new").unwrap();
        std::fs::write(&b, "old").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"old");
        let c = dir.path().join("c");
        rename_no_replace(&a, &c).unwrap();
        assert_eq!(std::fs::read(&c).unwrap(), b"new");
        assert!(!a.exists());
        let (d, e) = (dir.path().join("d"), dir.path().join("e"));
        std::fs::create_dir(&d).unwrap();
        std::fs::create_dir(&e).unwrap();
        std::fs::write(e.join("kept"), "").unwrap();
        assert!(rename_no_replace(&d, &e).is_err());
        assert!(e.join("kept").exists());
    }
}
