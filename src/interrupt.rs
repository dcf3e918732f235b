//! Termination signals (SIGINT, SIGTERM, SIGHUP) for the commands that write.
//!
//! Without this, such a signal killed evstore at once and left behind what it was writing: temp
//! files in the store's `tmp/`, a mirror's staging folder, a partial export, a rerun's temp folders
//! and its generator, still running in its own process group. [`install`] (called by `cli` for
//! `ingest`, `export`, `mirror`, `rerun` and `seal`) replaces the default action with a flag. The
//! long loops call [`check`] (per file, per 256 KiB chunk read or written, per 10 ms poll of a
//! generator; rayon workers too, the flag is global) and return [`Error::Interrupted`]; then the
//! ordinary `Drop` of temp files and folders, and each command's error path, remove what the
//! command created, and `cli` exits with 128 + the signal number.
//!
//! Each command checks once more right before its point of no return: the catalog transaction of
//! an ingest (just before its record object is published), the rename of a mirror, the publish
//! of an attestation, the rename of a seal. A signal that arrives after that point is too late:
//! the command completes, and `cli` says so.
//!
//! A second signal at least [`SECOND_SIGNAL_AFTER_MS`] after the first ends the process at once
//! (after sending `SIGKILL` to a running generator's process group), for a command stuck where it
//! does not check, such as a catalog lock held by another process; that can leave temp files
//! behind, as a crash does. One sooner is taken as the same request delivered twice: `timeout`
//! and service managers signal the process and then its whole group.
//!
//! What an interrupted command removed is reported through [`on_interrupt`] guards; `cli` checks
//! each claim against the file system (the path is really gone, or empty) before printing it.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};

use crate::error::{Error, Result};
use crate::text::EscapePath;

/// The signals handled, with their names.
const SIGNALS: [(i32, &str); 3] = [(SIGHUP, "SIGHUP"), (SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")];

/// The first handled signal that arrived (0: none yet).
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// When it arrived, in milliseconds of `CLOCK_MONOTONIC` (0: not yet).
static FIRST_AT_MS: AtomicU64 = AtomicU64::new(0);

/// A signal this soon after the first is the same request delivered twice, not a second one.
pub const SECOND_SIGNAL_AFTER_MS: u64 = 1000;

/// The process group of the rerun generator running now (0: none).
static GENERATOR_GROUP: AtomicI32 = AtomicI32::new(0);

/// What interrupted commands cleaned up, in the order it happened.
static CLEANUPS: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());

/// Handle SIGINT, SIGTERM and SIGHUP by setting the flag [`check`] reads; a second one (see
/// [`SECOND_SIGNAL_AFTER_MS`]) exits at once with 128 + its number. A SIGINT or SIGHUP that the
/// caller set to be ignored (`nohup`, a background job of a non-interactive shell) stays ignored.
pub fn install() -> io::Result<()> {
    for (signal, _) in SIGNALS {
        if signal != SIGTERM && is_ignored(signal)? {
            continue;
        }
        // SAFETY: `register` needs an async-signal-safe action. `on_signal` only uses atomics
        // and calls clock_gettime(2), kill(2), write(2) and _exit(2), all async-signal-safe
        // (POSIX); it allocates nothing, takes no lock and cannot panic.
        unsafe { signal_hook::low_level::register(signal, move || on_signal(signal)) }?;
    }
    Ok(())
}

/// Milliseconds of `CLOCK_MONOTONIC`, at least 1 (0 if the clock cannot be read).
fn monotonic_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writes one `timespec` into valid, writable memory; it is
    // async-signal-safe.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return 0;
    }
    let ms = (now.tv_sec as u64)
        .saturating_mul(1000)
        .saturating_add(now.tv_nsec as u64 / 1_000_000);
    ms.max(1)
}

/// The signal action. It runs inside the signal handler: only async-signal-safe calls here.
fn on_signal(signal: i32) {
    let now = monotonic_ms();
    let _ = FIRST_AT_MS.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    if SIGNAL
        .compare_exchange(0, signal as usize, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        return;
    }
    if now.saturating_sub(FIRST_AT_MS.load(Ordering::SeqCst)) < SECOND_SIGNAL_AFTER_MS {
        return;
    }
    let group = GENERATOR_GROUP.load(Ordering::SeqCst);
    const MESSAGE: &[u8] = b"evstore: second signal: stopped at once; temp files may remain \
        (evstore gc-temp, evstore kb gc-staging KB remove them)\n";
    // SAFETY: kill(2) and write(2) are async-signal-safe; MESSAGE is a valid buffer of its length.
    unsafe {
        if group > 0 {
            libc::kill(-group, libc::SIGKILL);
        }
        libc::write(libc::STDERR_FILENO, MESSAGE.as_ptr().cast(), MESSAGE.len());
    }
    signal_hook::low_level::exit(128 + signal);
}

/// True if `signal`'s current action is "ignore".
fn is_ignored(signal: i32) -> io::Result<bool> {
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, sigaction(2) changes nothing and only writes the current
    // action into `current`, which is writable memory of the right type.
    let rc = unsafe { libc::sigaction(signal, std::ptr::null(), current.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: all-zero bytes are a valid `sigaction`, and sigaction(2) succeeded in filling it.
    let current = unsafe { current.assume_init() };
    Ok(current.sa_sigaction == libc::SIG_IGN)
}

/// The signal that interrupted this process, if one did.
pub fn signal() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        signal => i32::try_from(signal).ok(),
    }
}

/// `SIGINT`, `SIGTERM`, `SIGHUP`, or the number.
pub fn signal_name(signal: i32) -> String {
    SIGNALS
        .iter()
        .find(|(number, _)| *number == signal)
        .map_or_else(
            || format!("signal {signal}"),
            |(_, name)| (*name).to_string(),
        )
}

/// `Err(Error::Interrupted)` once a handled signal has arrived.
pub fn check() -> Result<()> {
    match signal() {
        None => Ok(()),
        Some(signal) => Err(Error::Interrupted { signal }),
    }
}

/// `err`, or [`Error::Interrupted`] if a signal has arrived: for errors an [`Interruptible`]
/// writer caused (they carry no more than "interrupted").
pub fn prefer(err: Error) -> Error {
    match signal() {
        Some(signal) => Error::Interrupted { signal },
        None => err,
    }
}

/// A writer that fails once a signal has arrived, so a long copy (decoding a large blob) stops
/// within one write. Map the error it causes with [`prefer`].
pub struct Interruptible<W>(pub W);

impl<W: Write> Write for Interruptible<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(signal) = signal() {
            return Err(io::Error::other(format!(
                "interrupted by {}",
                signal_name(signal)
            )));
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The rerun generator's process group, killed by a second signal while this guard lives.
pub struct GeneratorGroup(());

impl GeneratorGroup {
    /// Make `pgid` the group a second signal kills, until the guard is dropped.
    pub fn watch(pgid: i32) -> GeneratorGroup {
        GENERATOR_GROUP.store(pgid, Ordering::SeqCst);
        GeneratorGroup(())
    }
}

impl Drop for GeneratorGroup {
    fn drop(&mut self) {
        GENERATOR_GROUP.store(0, Ordering::SeqCst);
    }
}

/// Something an interrupted command cleaned up (or deliberately left), as `cli` reports it.
#[derive(Clone, Debug)]
pub enum Cleanup {
    /// A file or folder this command created and removes on the way out.
    Removed {
        /// What it is ("the staging folder").
        what: &'static str,
        /// Where.
        path: PathBuf,
    },
    /// A folder that was empty before this command, emptied again on the way out.
    Emptied {
        /// The folder.
        path: PathBuf,
    },
    /// A folder deliberately left in place.
    Kept {
        /// What it holds.
        what: &'static str,
        /// Where.
        path: PathBuf,
    },
    /// Something done that no path shows.
    Note(String),
}

impl Cleanup {
    /// One clause for the message, checked against the file system now: a path claimed removed
    /// that is still there is reported as not removed.
    pub fn describe(&self) -> String {
        match self {
            Cleanup::Removed { what, path } => match std::fs::symlink_metadata(path) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    format!("removed {what} {}", path.escaped())
                }
                _ => format!(
                    "could not remove {what} {}; remove it by hand",
                    path.escaped()
                ),
            },
            Cleanup::Emptied { path } => match std::fs::read_dir(path).map(|mut i| i.next()) {
                Ok(None) => format!("left {} empty, as it was", path.escaped()),
                _ => format!(
                    "could not empty {} (it was empty before); empty it by hand",
                    path.escaped()
                ),
            },
            Cleanup::Kept { what, path } => format!("left {what} in {}", path.escaped()),
            Cleanup::Note(text) => text.clone(),
        }
    }
}

/// Record `cleanup` now, for the message of an interrupted command.
pub fn record(cleanup: Cleanup) {
    CLEANUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(cleanup);
}

/// Take what was recorded so far.
pub fn take_cleanups() -> Vec<Cleanup> {
    std::mem::take(&mut *CLEANUPS.lock().unwrap_or_else(PoisonError::into_inner))
}

/// A guard that records `cleanup` when dropped after a signal arrived. Create it beside the temp
/// file or folder whose removal it reports; `cli` checks the claim only after every guard and
/// temp object has been dropped.
#[must_use = "the cleanup is recorded when the guard is dropped"]
pub struct OnInterrupt(Option<Cleanup>);

/// See [`OnInterrupt`].
pub fn on_interrupt(cleanup: Cleanup) -> OnInterrupt {
    OnInterrupt(Some(cleanup))
}

impl Drop for OnInterrupt {
    fn drop(&mut self) {
        if signal().is_some() {
            if let Some(cleanup) = self.0.take() {
                record(cleanup);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cleanup_is_reported_only_as_far_as_the_file_system_confirms_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let gone = dir.path().join("gone");
        let there = dir.path().join("there");
        std::fs::create_dir(&there).expect("create");
        let removed = |path: &std::path::Path| Cleanup::Removed {
            what: "the staging folder",
            path: path.to_path_buf(),
        };
        assert!(removed(&gone)
            .describe()
            .starts_with("removed the staging folder"));
        assert!(removed(&there).describe().starts_with("could not remove"));
        let emptied = Cleanup::Emptied {
            path: there.clone(),
        };
        assert!(
            emptied.describe().starts_with("left"),
            "{}",
            emptied.describe()
        );
        std::fs::write(there.join("partial"), "x").expect("write");
        assert!(emptied.describe().starts_with("could not empty"));
        assert!(Cleanup::Emptied { path: gone }
            .describe()
            .starts_with("could not empty"));
    }

    #[test]
    fn signals_are_named_and_no_signal_means_no_interruption() {
        assert_eq!(signal_name(SIGINT), "SIGINT");
        assert_eq!(signal_name(SIGTERM), "SIGTERM");
        assert_eq!(signal_name(SIGHUP), "SIGHUP");
        assert_eq!(signal_name(10), "signal 10");
        // The unit tests install no handler, so the flag is never set here.
        assert!(check().is_ok());
        let err = Error::Usage("kept".into());
        assert!(matches!(prefer(err), Error::Usage(_)));
        let mut out = Interruptible(Vec::new());
        out.write_all(b"bytes")
            .expect("no signal, so the write goes through");
        assert_eq!(out.0, b"bytes");
    }
}
