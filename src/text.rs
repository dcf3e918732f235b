//! Small helpers for the text evstore shows people: paths escaped so every byte is visible,
//! counted nouns ("1 file", "2 files"), and RFC 3339 times.
//!
//! **Architecture Invariant:** a path or file name from the file system is shown through
//! [`escape_path`] (or [`EscapePath::escaped`]), never through `Path::display`, which replaces
//! bytes that are not UTF-8 with U+FFFD and so hides which byte it was.

use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// A path shown with every byte visible: see [`escape_path`].
#[derive(Clone, Copy, Debug)]
pub struct EscapedPath<'a>(&'a [u8]);

/// Show `path` so that every byte is visible: UTF-8 text as it is, each byte that is not part of
/// valid UTF-8 as `\xNN`, control characters as `\n`, `\t`, `\r` or `\u{NN}`, and a backslash as
/// `\\` (so the escapes are unambiguous).
pub fn escape_path(path: &Path) -> EscapedPath<'_> {
    EscapedPath(path.as_os_str().as_bytes())
}

/// Show an OS string (a file name) as [`escape_path`] does.
pub fn escape_os(name: &OsStr) -> EscapedPath<'_> {
    EscapedPath(name.as_bytes())
}

/// `path.escaped()` in place of `path.display()`.
pub trait EscapePath {
    /// The path with every byte visible (see [`escape_path`]).
    fn escaped(&self) -> EscapedPath<'_>;
}

impl<T: AsRef<Path> + ?Sized> EscapePath for T {
    fn escaped(&self) -> EscapedPath<'_> {
        escape_path(self.as_ref())
    }
}

impl fmt::Display for EscapedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\t' => f.write_str("\\t")?,
                    '\r' => f.write_str("\\r")?,
                    c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                    c => f.write_char(c)?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// Serialise a path as its escaped text (serde's own `Path` serialisation fails on a path that is
/// not UTF-8, which would turn a `--json` report into `null` or a panic).
pub fn serialize_escaped<P: AsRef<Path>, S: serde::Serializer>(
    path: &P,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&escape_path(path.as_ref()))
}

/// `n` and the noun, in the plural unless `n` is 1: `count(1, "file")` is `1 file`,
/// `count(0, "file")` is `0 files`. For nouns whose plural adds an `s`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A Unix time in nanoseconds as RFC 3339 UTC with nanoseconds
/// (`2026-12-01T20:19:39.123456789Z`), lossless. A negative time (never written by evstore) is
/// shown as its number.
pub fn rfc3339_nanos(unix_nanos: i64) -> String {
    match u64::try_from(unix_nanos) {
        // u64 nanoseconds end in 2554, well before the year 10000 humantime refuses.
        Ok(nanos) => {
            humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
        }
        Err(_) => format!("{unix_nanos} ns (before 1970)"),
    }
}

/// A Unix time in seconds as RFC 3339 UTC (`2026-12-01T20:19:39Z`); a time outside what RFC 3339
/// can write (before 1970, after 9999) is shown as its number.
pub fn rfc3339_seconds(unix_seconds: i64) -> String {
    match u64::try_from(unix_seconds) {
        Ok(secs) if secs < 253_402_300_800 => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        }
        _ => format!("{unix_seconds} s since 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_make_every_byte_visible() {
        let path = Path::new(OsStr::from_bytes(b"p/caf\xc3\xa9 \xff\\x\n\x1b.txt"));
        assert_eq!(
            escape_path(path).to_string(),
            "p/caf\u{e9} \\xff\\\\x\\n\\u{1b}.txt"
        );
        assert_eq!(Path::new("plain/name").escaped().to_string(), "plain/name");
    }

    #[test]
    fn counts_pluralise() {
        assert_eq!(count(0, "packet"), "0 packets");
        assert_eq!(count(1, "packet"), "1 packet");
        assert_eq!(count(2, "event"), "2 events");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(
            rfc3339_nanos(1_795_601_602_419_802_721),
            "2026-11-25T10:13:22.419802721Z"
        );
        assert_eq!(rfc3339_seconds(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_nanos(-1), "-1 ns (before 1970)");
        assert_eq!(
            rfc3339_seconds(i64::MAX),
            format!("{} s since 1970", i64::MAX)
        );
    }
}
