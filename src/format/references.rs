//! The KB references file, `KB_REFERENCES.txt`: for the files of a packet folder in a KB that
//! were not written there (`mirror --dedup reference`), where in the same KB their identical
//! bytes live. See `docs/FORMAT.md` §7a.
//!
//! ```text
//! <sha256, 64 lowercase hex>\t<path in the packet>\t<KB-relative path of the bytes>\n
//! ```
//!
//! One line per reference, sorted by the packet path's bytes, paths unique; the file is
//! non-empty, UTF-8, LF-only and ends with `\n`. [`encode`] writes exactly that text and
//! [`decode`] accepts exactly that text (so `encode(decode(bytes)) == bytes`), refusing anything
//! else with the 1-based line.
//!
//! **Architecture Invariant:** the only reader and writer of the references file's bytes; what a
//! reference means in a KB (resolving it, checking its bytes) is `ops::kb`'s.

use std::path::Path;

use serde::Serialize;

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
use crate::scan::check_rel_path;

/// The references file of a packet folder in a KB.
pub const REFERENCES_FILE_NAME: &str = "KB_REFERENCES.txt";

/// The folder at the top of a KB where mirrors stage packets before renaming them into place. A
/// KB path that enters it is never a valid reference target.
pub const STAGING_DIR_NAME: &str = ".evstore-staging";

/// One line of a references file: the packet file `path`, whose bytes (SHA-256 `sha256`) are at
/// `kb_path`, relative to the KB root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
    /// The file's path in the packet.
    pub path: String,
    /// Where the identical bytes live, relative to the KB root.
    pub kb_path: String,
}

/// The canonical text of a references file: `<sha256>\t<path>\t<kb_path>\n` per reference,
/// sorted by path bytes. Tabs cannot occur in valid paths (control characters are refused).
pub fn encode(references: &[Reference]) -> String {
    let mut sorted: Vec<&Reference> = references.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut out = String::new();
    for r in sorted {
        out.push_str(&format!("{}\t{}\t{}\n", r.sha256, r.path, r.kb_path));
    }
    out
}

/// Parse a references file strictly: exactly the canonical text, or [`Error::UntrustedSeal`]
/// naming `origin` (where the bytes were read, for the message only) and the 1-based line.
pub fn decode(bytes: &[u8], origin: &Path) -> Result<Vec<Reference>> {
    let bad = |line: usize, reason: String| Error::UntrustedSeal {
        path: origin.to_path_buf(),
        line,
        reason,
    };
    if bytes.is_empty() {
        return Err(bad(1, "the references file is empty".into()));
    }
    if !bytes.ends_with(b"\n") {
        let line = bytes.split(|&b| b == b'\n').count();
        return Err(bad(line, "last line does not end with a newline".into()));
    }
    let mut out: Vec<Reference> = Vec::new();
    for (index, raw) in bytes[..bytes.len() - 1].split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let text =
            std::str::from_utf8(raw).map_err(|_| bad(line, "line is not valid UTF-8".into()))?;
        let fields: Vec<&str> = text.split('\t').collect();
        let [sha, path, kb_path] = fields[..] else {
            return Err(bad(
                line,
                "not of the form '<sha256>\\t<path>\\t<kb path>'".into(),
            ));
        };
        let sha256 = Sha256Digest::parse_hex(sha)
            .ok_or_else(|| bad(line, "digest is not 64 lowercase hex digits".into()))?;
        check_rel_path(path).map_err(|reason| bad(line, format!("path: {reason}")))?;
        check_kb_rel_path(kb_path).map_err(|reason| bad(line, format!("kb path: {reason}")))?;
        if let Some(previous) = out.last() {
            if previous.path.as_str() >= path {
                return Err(bad(
                    line,
                    format!("duplicate or out of canonical order: {path:?}"),
                ));
            }
        }
        out.push(Reference {
            sha256,
            path: path.to_string(),
            kb_path: kb_path.to_string(),
        });
    }
    Ok(out)
}

/// A path relative to the KB root: a valid packet path that does not enter the staging folder.
pub fn check_kb_rel_path(path: &str) -> std::result::Result<(), String> {
    check_rel_path(path)?;
    if path == STAGING_DIR_NAME || path.starts_with(&format!("{STAGING_DIR_NAME}/")) {
        return Err(format!("{STAGING_DIR_NAME} is reserved for staging"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_of;

    fn reference(path: &str, kb_path: &str) -> Reference {
        Reference {
            sha256: sha256_of(path.as_bytes()),
            path: path.into(),
            kb_path: kb_path.into(),
        }
    }

    #[test]
    fn references_round_trip_and_sort() {
        let refs = vec![
            reference("validator/v.py", "other/validator/v.py"),
            reference("a b.txt", "x/a b.txt"),
        ];
        let text = encode(&refs);
        let parsed = decode(text.as_bytes(), Path::new("r")).unwrap();
        assert_eq!(parsed[0].path, "a b.txt");
        assert_eq!(parsed[1].path, "validator/v.py");
        assert_eq!(encode(&parsed), text);
    }

    /// The test vector: two references, given out of order, encode to exactly these bytes (the
    /// digests are the SHA-256 of `hello\n` and of the empty input), and decode back.
    #[test]
    fn test_vector_two_references() {
        let hello = Sha256Digest::parse_hex(
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
        )
        .unwrap();
        assert_eq!(hello, sha256_of(b"hello\n"));
        let empty = sha256_of(b"");
        let refs = [
            Reference {
                sha256: hello,
                path: "validator/hello.txt".into(),
                kb_path: "rollback/validator/hello.txt".into(),
            },
            Reference {
                sha256: empty,
                path: "empty".into(),
                kb_path: "rollback/empty".into(),
            },
        ];
        let expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\t\
                        empty\trollback/empty\n\
                        5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\t\
                        validator/hello.txt\trollback/validator/hello.txt\n";
        assert_eq!(encode(&refs), expected);
        let decoded = decode(expected.as_bytes(), Path::new("r")).unwrap();
        assert_eq!(decoded, vec![refs[1].clone(), refs[0].clone()]);
    }

    #[test]
    fn references_are_parsed_strictly() {
        let sha = "a".repeat(64);
        for (text, line) in [
            (String::new(), 1),
            (format!("{sha}\tx\ty"), 1),
            (format!("{sha}\tx\n{sha}\tx\ty\n"), 1),
            (format!("{sha}\tb\ty\n{sha}\ta\ty\n"), 2),
            (format!("{sha}\ta\t../y\n"), 1),
            (format!("{sha}\ta\t/etc/passwd\n"), 1),
            (format!("{sha}\ta\t.evstore-staging/x\n"), 1),
            (format!("{}\ta\ty\n", "A".repeat(64)), 1),
            (format!("{sha}\ta\ty\r\n"), 1),
        ] {
            match decode(text.as_bytes(), Path::new("r")) {
                Err(Error::UntrustedSeal { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }
}
