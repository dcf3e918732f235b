//! The library's error type.
//!
//! Every error names what it is about (a path, an object id, a packet) and why it happened, so the
//! CLI can print it as one sentence. Errors fall into two classes that the CLI maps to exit codes:
//! a [`ErrorClass::Verification`] error means stored or sealed bytes did not match (exit 1), and an
//! [`ErrorClass::Operational`] error means the request could not be carried out at all: bad usage,
//! unsupported input, I/O failure, a lock held elsewhere ([`Error::Busy`]), a bug
//! ([`Error::Internal`]) (exit 2). The library never picks exit codes itself.

use std::io;
use std::path::{Path, PathBuf};

use crate::text::escape_path;

/// A specialised `Result` for evstore operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which exit code class an error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bytes did not match what was sealed or stored: drift, mismatch, corruption (exit 1).
    Verification,
    /// The operation could not be carried out: usage, unsupported input, I/O, a busy lock, a bug
    /// (exit 2).
    Operational,
}

/// Everything that can go wrong in evstore.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a named path failed.
    #[error("{}: {action}: {source}", escape_path(.path))]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// The input folder holds something the packet format cannot represent faithfully.
    #[error("{}: {reason}", escape_path(.path))]
    UnsupportedInput { path: PathBuf, reason: String },

    /// A seal (`HASH_MANIFEST.txt` or a seal file) is malformed and cannot be trusted.
    #[error("{}: line {line}: {reason}", escape_path(.path))]
    UntrustedSeal {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A stored object, tree node, record or catalog row is damaged.
    #[error("corrupt {what}: {reason}")]
    Corrupt { what: String, reason: String },

    /// Bytes on disk differ from what was sealed or recorded.
    #[error("{what}: {reason}")]
    Mismatch { what: String, reason: String },

    /// A packet reference, path or object could not be found.
    #[error("{0}")]
    NotFound(String),

    /// The request is not valid as given (bad argument, conflicting state).
    #[error("{0}")]
    Usage(String),

    /// Something to be created exists already (a store, a KB packet folder).
    #[error("{0}")]
    AlreadyExists(String),

    /// A lock another process holds was not free (a write in progress during `gc-temp`, a
    /// catalog open during `reindex`, a wait for the catalog lock that ran out). Operational: run
    /// the command again once the other process is done.
    #[error("{0}")]
    Busy(String),

    /// A bug in evstore, not a problem with the input or the system: something that cannot
    /// happen did (an in-memory value that would not encode). Operational; the message says what.
    #[error("internal error (a bug in evstore; please report it): {0}")]
    Internal(String),

    /// A termination signal (SIGINT, SIGTERM, SIGHUP) arrived: the command stopped before its
    /// point of no return and removes what it created (see `interrupt`). Operational; `cli`
    /// exits with 128 + `signal`.
    #[error("interrupted by {}", crate::interrupt::signal_name(*signal))]
    Interrupted { signal: i32 },

    /// The SQLite catalog reported an error.
    #[error("catalog {}: {source}", escape_path(.path))]
    Catalog {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Error {
        match never {}
    }
}

impl Error {
    /// The exit code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Corrupt { .. } | Error::Mismatch { .. } => ErrorClass::Verification,
            Error::Catalog { source, .. } if is_damaged_database(source) => {
                ErrorClass::Verification
            }
            _ => ErrorClass::Operational,
        }
    }

    /// Build an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// Build an [`Error::UnsupportedInput`] for `path`.
    pub fn unsupported(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::UnsupportedInput {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Build an [`Error::Corrupt`].
    pub fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// True if SQLite says the catalog file itself is damaged ("database disk image is malformed",
/// "file is not a database"): that is corruption of stored data, not a failed operation.
pub(crate) fn is_damaged_database(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Attach a path and an action to an `io::Result`.
pub trait IoContext<T> {
    /// Turn an `io::Error` into an [`Error::Io`] naming `path`.
    fn at(self, path: &Path, action: &'static str) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path, action: &'static str) -> Result<T> {
        self.map_err(|source| Error::io(path, action, source))
    }
}
