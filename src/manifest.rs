//! The canonical manifest text and `packet_tree_sha256`.
//!
//! A packet's manifest has one line per file: the lowercase hex SHA-256 of the file's bytes, two
//! spaces, the path relative to the packet root, and `\n`; lines sorted by the path's UTF-8 bytes.
//! It is exactly what `find . -type f ! -path ./HASH_MANIFEST.txt -printf '%P\0' | LC_ALL=C sort
//! -z | xargs -0r sha256sum` prints, and `packet_tree_sha256` is the SHA-256 of that text. The same
//! text is what `HASH_MANIFEST.txt` (the seal) holds.
//!
//! [`Manifest::parse_seal`] reads a seal strictly: any line that is not exactly canonical is an
//! [`Error::UntrustedSeal`] naming the line. A seal is never read leniently.

use std::collections::HashSet;
use std::path::Path;

use crate::digest::{sha256_of, Sha256Digest};
use crate::error::{Error, Result};
use crate::scan::{check_rel_path, SEAL_FILE_NAME};

/// The longest path a seal line may carry, in bytes (Linux `PATH_MAX`).
pub const MAX_SEAL_PATH_BYTES: usize = 4096;

/// One manifest line: a file's SHA-256 and its packet path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Path relative to the packet root, `/`-separated.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: Sha256Digest,
}

/// A canonical manifest: entries with unique paths, sorted by path bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// Build a manifest from entries in any order. Fails on a duplicate or invalid path.
    pub fn from_entries(mut entries: Vec<ManifestEntry>) -> Result<Manifest> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        for pair in entries.windows(2) {
            if pair[0].path == pair[1].path {
                return Err(Error::Usage(format!(
                    "duplicate path in manifest: {}",
                    pair[0].path
                )));
            }
        }
        for entry in &entries {
            check_rel_path(&entry.path)
                .map_err(|reason| Error::Usage(format!("{}: {reason}", entry.path)))?;
        }
        Ok(Manifest { entries })
    }

    /// The entries, sorted by path bytes.
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// The number of files listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no file is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The SHA-256 listed for `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Sha256Digest> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i].sha256)
    }

    /// The canonical text, as `HASH_MANIFEST.txt` holds it.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.entries.len() * 100);
        for entry in &self.entries {
            out.push_str(&entry.sha256.to_hex());
            out.push_str("  ");
            out.push_str(&entry.path);
            out.push('\n');
        }
        out
    }

    /// `packet_tree_sha256`: the SHA-256 of the canonical text.
    pub fn packet_tree_sha256(&self) -> Sha256Digest {
        sha256_of(self.text().as_bytes())
    }

    /// Parse a seal strictly. `origin` names the seal in errors.
    ///
    /// Refused, each naming the 1-based line: a byte-order mark, CR line endings, a last line
    /// without `\n`, text that is not UTF-8, a line that is not `<64 lowercase hex>  <path>`, an
    /// absolute path, `.` or `..` or empty components, a backslash or control character, a path
    /// longer than [`MAX_SEAL_PATH_BYTES`], the seal listing itself, a duplicate path, lines out
    /// of canonical order, a path that is also a parent folder of another, and an empty seal.
    pub fn parse_seal(bytes: &[u8], origin: &Path) -> Result<Manifest> {
        let bad = |line: usize, reason: String| Error::UntrustedSeal {
            path: origin.to_path_buf(),
            line,
            reason,
        };
        if bytes.starts_with(b"\xef\xbb\xbf") {
            return Err(bad(1, "starts with a UTF-8 byte-order mark".into()));
        }
        if bytes.is_empty() {
            return Err(bad(1, "the seal lists no files".into()));
        }
        if !bytes.ends_with(b"\n") {
            let line = bytes.split(|&b| b == b'\n').count();
            return Err(bad(line, "last line does not end with a newline".into()));
        }
        let mut entries: Vec<ManifestEntry> = Vec::new();
        let body = &bytes[..bytes.len() - 1];
        for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
            let line = index + 1;
            if raw.ends_with(b"\r") || raw.contains(&b'\r') {
                return Err(bad(
                    line,
                    "CR line ending (the seal must use LF only)".into(),
                ));
            }
            let text = std::str::from_utf8(raw)
                .map_err(|_| bad(line, "line is not valid UTF-8".into()))?;
            if text.is_empty() {
                return Err(bad(line, "empty line".into()));
            }
            // Compare bytes: byte 64 or 66 may fall inside a multi-byte character.
            if text.len() < 67 || &text.as_bytes()[64..66] != b"  " || !text.is_char_boundary(66) {
                return Err(bad(
                    line,
                    "not of the form '<64 lowercase hex digits>  <path>'".into(),
                ));
            }
            let sha256 = Sha256Digest::parse_hex(&text[..64])
                .ok_or_else(|| bad(line, "digest is not 64 lowercase hex digits".into()))?;
            let path = &text[66..];
            if path.len() > MAX_SEAL_PATH_BYTES {
                return Err(bad(
                    line,
                    format!("path is longer than {MAX_SEAL_PATH_BYTES} bytes"),
                ));
            }
            check_rel_path(path).map_err(|reason| bad(line, format!("{reason}: {path:?}")))?;
            if path == SEAL_FILE_NAME {
                return Err(bad(line, "the seal lists itself".into()));
            }
            if let Some(previous) = entries.last() {
                match previous.path.as_str().cmp(path) {
                    std::cmp::Ordering::Equal => {
                        return Err(bad(line, format!("duplicate path {path:?}")))
                    }
                    std::cmp::Ordering::Greater => {
                        return Err(bad(
                            line,
                            format!(
                                "out of canonical order: {path:?} sorts before {:?}",
                                previous.path
                            ),
                        ))
                    }
                    std::cmp::Ordering::Less => {}
                }
            }
            entries.push(ManifestEntry {
                path: path.to_string(),
                sha256,
            });
        }
        // A path cannot be both a file and a folder holding files.
        let files: HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        for (index, entry) in entries.iter().enumerate() {
            let mut prefix = entry.path.as_str();
            while let Some(cut) = prefix.rfind('/') {
                prefix = &prefix[..cut];
                if files.contains(prefix) {
                    return Err(bad(
                        index + 1,
                        format!("{:?} is listed as a file and as a folder", prefix),
                    ));
                }
            }
        }
        Ok(Manifest { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_multibyte_character_at_the_separator_is_refused_not_a_panic() {
        // Found by review: a line of 64 hex digits followed by "\u{20ac}" sliced a character.
        let hex = "a".repeat(64);
        for line in [
            format!("{hex}\u{20ac}x\n"),
            format!("{hex} \u{20ac}x\n"),
            format!("{}\u{e9}  x\n", "a".repeat(63)),
        ] {
            let err = Manifest::parse_seal(line.as_bytes(), Path::new("s")).unwrap_err();
            assert!(
                matches!(err, Error::UntrustedSeal { line: 1, .. }),
                "{line:?}: {err}"
            );
        }
    }

    fn line(hex_byte: &str, path: &str) -> String {
        format!("{}  {path}\n", hex_byte.repeat(32))
    }

    fn parse(text: &[u8]) -> Result<Manifest> {
        Manifest::parse_seal(text, Path::new("SEAL"))
    }

    fn line_of(err: Error) -> usize {
        match err {
            Error::UntrustedSeal { line, .. } => line,
            other => panic!("expected an untrusted seal error, got {other}"),
        }
    }

    #[test]
    fn canonical_text_round_trips() {
        let text = format!("{}{}", line("ab", "a/b"), line("cd", "a-c"));
        // Out of order: "a-c" sorts before "a/b".
        assert_eq!(line_of(parse(text.as_bytes()).unwrap_err()), 2);
        let text = format!("{}{}", line("cd", "a-c"), line("ab", "a/b"));
        let manifest = parse(text.as_bytes()).unwrap();
        assert_eq!(manifest.text(), text);
        assert_eq!(manifest.packet_tree_sha256(), sha256_of(text.as_bytes()));
    }

    #[test]
    fn untrusted_seals_name_the_line() {
        let good = line("ab", "a");
        let cases: Vec<(Vec<u8>, usize)> = vec![
            (format!("\u{feff}{good}").into_bytes(), 1),
            (good.replace('\n', "\r\n").into_bytes(), 1),
            (format!("{good}{}", line("AB", "b")).into_bytes(), 2),
            (format!("{good}{}", line("ab", "a")).into_bytes(), 2),
            (
                format!("{good}{}", line("ab", "/etc/passwd")).into_bytes(),
                2,
            ),
            (format!("{good}{}", line("ab", "b/../c")).into_bytes(), 2),
            (format!("{good}{}", line("ab", "b/./c")).into_bytes(), 2),
            (format!("{good}{}  \n", "ab".repeat(32)).into_bytes(), 2),
            (format!("{good}{} *b\n", "ab".repeat(32)).into_bytes(), 2),
            (format!("{good}{}", line("ab", "b\0c")).into_bytes(), 2),
            (
                format!("{good}{}", line("ab", "HASH_MANIFEST.txt")).into_bytes(),
                2,
            ),
            (format!("{good}{}", line("ab", "a/b")).into_bytes(), 2),
            (
                format!("{good}{}", line("ab", &"x".repeat(5000))).into_bytes(),
                2,
            ),
            (good.trim_end().as_bytes().to_vec(), 1),
            (b"".to_vec(), 1),
            (format!("{good}\n").into_bytes(), 2),
        ];
        for (text, expected_line) in cases {
            let err = parse(&text).expect_err(&String::from_utf8_lossy(&text));
            assert_eq!(
                line_of(err),
                expected_line,
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }
}
