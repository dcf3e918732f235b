//! The canonical manifest text and `packet_tree_sha256`.
//!
//! A packet's manifest has one line per file: the lowercase hex SHA-256 of the file's bytes, two
//! spaces, the path relative to the packet root, and `\n`; lines sorted by the path's UTF-8 bytes.
//! It is exactly what `find . -type f ! -path ./HASH_MANIFEST.txt ! -path ./HASH_MANIFEST.txt.sig -printf '%P\0' | LC_ALL=C sort
//! -z | xargs -0r sha256sum` prints, and `packet_tree_sha256` is the SHA-256 of that text. The same
//! text is what `HASH_MANIFEST.txt` (the seal) holds.
//!
//! [`Manifest::parse_seal`] reads a seal strictly: any line that is not exactly canonical is an
//! [`Error::UntrustedSeal`] naming the line. A seal is never read leniently.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::digest::{sha256_of, Sha256Digest};
use crate::error::{Error, Result};
use crate::scan::{check_rel_path, SEAL_FILE_NAME};
use crate::text::EscapePath;

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
    ///
    /// When the text is a manifest `sha256sum -c` accepts but not the canonical one (see
    /// [`Manifest::parse_coreutils`]), the error says how to check the folder against it and
    /// how to write a canonical seal.
    pub fn parse_seal(bytes: &[u8], origin: &Path) -> Result<Manifest> {
        Manifest::parse_canonical(bytes, origin).map_err(|err| match err {
            Error::UntrustedSeal { path, line, reason }
                if Manifest::parse_coreutils(bytes, origin).is_ok() =>
            {
                Error::UntrustedSeal {
                    path,
                    line,
                    reason: format!("{reason}; {}", canonical_seal_hint(origin)),
                }
            }
            other => other,
        })
    }

    fn parse_canonical(bytes: &[u8], origin: &Path) -> Result<Manifest> {
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
            let entry = parse_canonical_line(raw, entries.last())
                .map_err(|reason| bad(index + 1, reason))?;
            entries.push(entry);
        }
        let numbered: Vec<(usize, &str)> = entries
            .iter()
            .enumerate()
            .map(|(index, e)| (index + 1, e.path.as_str()))
            .collect();
        if let Some((line, reason)) = path_listed_as_file_and_folder(&numbered) {
            return Err(bad(line, reason));
        }
        Ok(Manifest { entries })
    }
}

/// Parse one line of a canonical seal (without its `\n`), which must sort after `previous`:
/// exactly `<64 lowercase hex>  <path>`, with a path a packet can hold. The error is the reason
/// the line is refused.
fn parse_canonical_line(
    raw: &[u8],
    previous: Option<&ManifestEntry>,
) -> std::result::Result<ManifestEntry, String> {
    if raw.ends_with(b"\r") || raw.contains(&b'\r') {
        return Err("CR line ending (the seal must use LF only)".into());
    }
    let text = std::str::from_utf8(raw).map_err(|_| "line is not valid UTF-8".to_string())?;
    if text.is_empty() {
        return Err("empty line".into());
    }
    // Compare bytes: byte 64 or 66 may fall inside a multi-byte character.
    if text.len() < 67 || &text.as_bytes()[64..66] != b"  " || !text.is_char_boundary(66) {
        return Err("not of the form '<64 lowercase hex digits>  <path>'".into());
    }
    let sha256 = Sha256Digest::parse_hex(&text[..64])
        .ok_or_else(|| "digest is not 64 lowercase hex digits".to_string())?;
    let path = &text[66..];
    check_listed_path(path)?;
    if path == SEAL_FILE_NAME {
        return Err("the seal lists itself".into());
    }
    if let Some(previous) = previous {
        match previous.path.as_str().cmp(path) {
            std::cmp::Ordering::Equal => return Err(format!("duplicate path {path:?}")),
            std::cmp::Ordering::Greater => {
                return Err(format!(
                    "out of canonical order: {path:?} sorts before {:?}",
                    previous.path
                ))
            }
            std::cmp::Ordering::Less => {}
        }
    }
    Ok(ManifestEntry {
        path: path.to_string(),
        sha256,
    })
}

/// Refuse a listed path a packet cannot hold: longer than [`MAX_SEAL_PATH_BYTES`], or not a
/// safe relative path (`check_rel_path`). The error is the reason.
fn check_listed_path(path: &str) -> std::result::Result<(), String> {
    if path.len() > MAX_SEAL_PATH_BYTES {
        return Err(format!("path is longer than {MAX_SEAL_PATH_BYTES} bytes"));
    }
    check_rel_path(path).map_err(|reason| format!("{reason}: {path:?}"))
}

/// The first listed path (in the order given, each with its 1-based line) that has a parent
/// folder also listed as a file, as its line and the reason: a path cannot be both a file and a
/// folder holding files.
fn path_listed_as_file_and_folder(paths: &[(usize, &str)]) -> Option<(usize, String)> {
    let files: HashSet<&str> = paths.iter().map(|(_, path)| *path).collect();
    for (line, path) in paths {
        let mut prefix = *path;
        while let Some(cut) = prefix.rfind('/') {
            prefix = &prefix[..cut];
            if files.contains(prefix) {
                return Some((
                    *line,
                    format!("{prefix:?} is listed as a file and as a folder"),
                ));
            }
        }
    }
    None
}

/// How a manifest departs from the canonical text while staying one `sha256sum -c` accepts.
/// The snake_case names are part of the `--json` contract (`expected.seal.deviations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deviation {
    /// Lines are not sorted by path bytes (`find | xargs sha256sum`).
    OutOfOrder,
    /// `<hex> *<path>` lines (`sha256sum -b`).
    BinaryMarker,
    /// Digests with uppercase hex digits.
    UppercaseHex,
    /// Paths written as `./path` (`find .`).
    DotSlashPrefix,
    /// BSD-style `SHA256 (<path>) = <hex>` lines (`sha256sum --tag`).
    BsdTag,
    /// CRLF line endings.
    CrlfLineEndings,
    /// The last line does not end with `\n`.
    NoFinalNewline,
    /// Empty lines or `#` comment lines, which `sha256sum -c` skips.
    CommentOrEmptyLines,
    /// Spaces or tabs before the digest, or a tab between digest and path.
    Whitespace,
}

impl Deviation {
    /// The deviation's snake_case name (`out_of_order`, ...), as reports and attestations
    /// store it.
    pub fn name(self) -> &'static str {
        match self {
            Deviation::OutOfOrder => "out_of_order",
            Deviation::BinaryMarker => "binary_marker",
            Deviation::UppercaseHex => "uppercase_hex",
            Deviation::DotSlashPrefix => "dot_slash_prefix",
            Deviation::BsdTag => "bsd_tag",
            Deviation::CrlfLineEndings => "crlf_line_endings",
            Deviation::NoFinalNewline => "no_final_newline",
            Deviation::CommentOrEmptyLines => "comment_or_empty_lines",
            Deviation::Whitespace => "whitespace",
        }
    }

    /// A short description for text reports.
    pub fn describe(self) -> &'static str {
        match self {
            Deviation::OutOfOrder => "lines out of path order",
            Deviation::BinaryMarker => "'*' binary-mode markers",
            Deviation::UppercaseHex => "uppercase hex digits",
            Deviation::DotSlashPrefix => "paths starting with ./",
            Deviation::BsdTag => "BSD-style 'SHA256 (path) = hash' lines",
            Deviation::CrlfLineEndings => "CRLF line endings",
            Deviation::NoFinalNewline => "no newline at the end",
            Deviation::CommentOrEmptyLines => "comment or empty lines",
            Deviation::Whitespace => "extra spaces or tabs around the digest",
        }
    }
}

/// What to do about a packet's own seal that `sha256sum -c` accepts but that is not canonical.
pub fn canonical_seal_hint(seal: &Path) -> String {
    let dir = match seal.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.escaped().to_string(),
        _ => ".".to_string(),
    };
    format!(
        "it is a sha256sum manifest, but not the canonical text a packet's seal must be (its \
         SHA-256 is the packet's name): check the folder against it with `evstore verify {dir} \
         --seal {seal}`, and once that passes {}",
        canonical_seal_command(&dir),
        seal = seal.escaped()
    )
}

/// How to write a canonical seal for `dir` (from its bytes now, so only after a check passed).
pub fn canonical_seal_command(dir: &str) -> String {
    format!(
        "write a canonical seal with `evstore seal {dir} --force` (or, inside the folder: \
         find . -type f ! -path ./HASH_MANIFEST.txt ! -path ./HASH_MANIFEST.txt.sig -printf '%P\\0' | LC_ALL=C sort -z | \
         xargs -0r sha256sum > HASH_MANIFEST.txt)"
    )
}

impl Manifest {
    /// Parse a manifest as `sha256sum -c` reads it, for a seal file named explicitly
    /// (`verify --seal FILE`, a `diff` seal operand). Never used for a packet's own
    /// `HASH_MANIFEST.txt`, which must be canonical ([`Manifest::parse_seal`]).
    ///
    /// Accepted, each reported as a [`Deviation`]: lines in any order; `<hex>  <path>` and
    /// `<hex> *<path>` lines (a space or tab after the digest, as coreutils allows); BSD-style
    /// `SHA256 (<path>) = <hex>` lines; digests in either case; a `./` before a path; CRLF line
    /// endings; a last line without `\n`; empty lines and lines starting with `#` (which
    /// `sha256sum -c` skips); spaces or tabs before the digest.
    ///
    /// Refused with [`Error::UntrustedSeal`] naming the 1-based line: a byte-order mark (which
    /// `sha256sum -c` would skip as an improperly formatted line), text that is not UTF-8, any
    /// line `sha256sum -c` would skip as improperly formatted (it only warns about those),
    /// backslash-escaped lines (coreutils writes them for names with a backslash, newline or
    /// CR, which a packet cannot hold), the reversed `<hex> <path>` format with one space, a
    /// digest that is not 64 hex digits or a BSD line for another algorithm, and, as for a
    /// canonical seal, unsafe or unrepresentable paths, a path over [`MAX_SEAL_PATH_BYTES`],
    /// `HASH_MANIFEST.txt` itself, duplicate paths (also `a` and `./a`), a path listed as a file
    /// and as a folder, and a manifest listing no file.
    pub fn parse_coreutils(bytes: &[u8], origin: &Path) -> Result<(Manifest, Vec<Deviation>)> {
        let bad = |line: usize, reason: String| Error::UntrustedSeal {
            path: origin.to_path_buf(),
            line,
            reason,
        };
        if bytes.starts_with(b"\xef\xbb\xbf") {
            return Err(bad(
                1,
                "starts with a UTF-8 byte-order mark (sha256sum -c would skip this line as \
                 improperly formatted)"
                    .into(),
            ));
        }
        let mut deviations: BTreeSet<Deviation> = BTreeSet::new();
        let mut entries: Vec<(usize, ManifestEntry)> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, raw) in coreutils_lines(bytes, &mut deviations)
            .into_iter()
            .enumerate()
        {
            let line = index + 1;
            let Some(entry) =
                parse_coreutils_entry(raw, &mut deviations).map_err(|reason| bad(line, reason))?
            else {
                continue;
            };
            if let Some(first) = seen.insert(entry.path.clone(), line) {
                return Err(bad(
                    line,
                    format!("duplicate path {:?} (also on line {first})", entry.path),
                ));
            }
            entries.push((line, entry));
        }
        if entries.is_empty() {
            return Err(bad(1, "the manifest lists no files".into()));
        }
        if entries.windows(2).any(|w| w[0].1.path > w[1].1.path) {
            deviations.insert(Deviation::OutOfOrder);
            entries.sort_by(|a, b| a.1.path.cmp(&b.1.path));
        }
        let numbered: Vec<(usize, &str)> = entries
            .iter()
            .map(|(line, e)| (*line, e.path.as_str()))
            .collect();
        if let Some((line, reason)) = path_listed_as_file_and_folder(&numbered) {
            return Err(bad(line, reason));
        }
        let manifest = Manifest {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
        };
        Ok((manifest, deviations.into_iter().collect()))
    }
}

/// The lines of a manifest as `sha256sum -c` reads them: split at `\n`, the last one with or
/// without its `\n` (without is a [`Deviation::NoFinalNewline`]); no line at all for empty text.
fn coreutils_lines<'a>(bytes: &'a [u8], deviations: &mut BTreeSet<Deviation>) -> Vec<&'a [u8]> {
    let body = match bytes.strip_suffix(b"\n") {
        Some(body) => body,
        None => {
            if !bytes.is_empty() {
                deviations.insert(Deviation::NoFinalNewline);
            }
            bytes
        }
    };
    if body.is_empty() && bytes.is_empty() {
        Vec::new()
    } else {
        body.split(|&b| b == b'\n').collect()
    }
}

/// Parse one line of a manifest (without its `\n`) as `sha256sum -c` reads it: `None` for a
/// comment or empty line, which it skips; the entry (its path without a `./`) otherwise. Each
/// departure from the canonical form is added to `deviations`. The error is the reason the line
/// is refused.
fn parse_coreutils_entry(
    raw: &[u8],
    deviations: &mut BTreeSet<Deviation>,
) -> std::result::Result<Option<ManifestEntry>, String> {
    // As coreutils: a comment is a line whose first byte is '#'; then one CR is removed.
    if raw.first() == Some(&b'#') {
        deviations.insert(Deviation::CommentOrEmptyLines);
        return Ok(None);
    }
    let raw = match raw.strip_suffix(b"\r") {
        Some(raw) => {
            deviations.insert(Deviation::CrlfLineEndings);
            raw
        }
        None => raw,
    };
    if raw.is_empty() {
        deviations.insert(Deviation::CommentOrEmptyLines);
        return Ok(None);
    }
    if raw.contains(&b'\r') {
        return Err("a CR inside the line".into());
    }
    let text = std::str::from_utf8(raw).map_err(|_| "line is not valid UTF-8".to_string())?;
    let (path, sha256) = parse_coreutils_line(text, deviations)?;
    let path = match path.strip_prefix("./") {
        Some(rest) => {
            deviations.insert(Deviation::DotSlashPrefix);
            rest
        }
        None => path,
    };
    check_listed_path(path)?;
    if path == SEAL_FILE_NAME {
        return Err(
            "lists HASH_MANIFEST.txt, which is a packet's seal, not one of its files".into(),
        );
    }
    Ok(Some(ManifestEntry {
        path: path.to_string(),
        sha256,
    }))
}

/// The accepted forms of one line, for [`Manifest::parse_coreutils`].
const COREUTILS_FORMS: &str =
    "not of the form '<64 hex digits>  <path>', '<64 hex digits> *<path>' or 'SHA256 (<path>) = <64 hex digits>'";

/// A space or a tab: what `sha256sum -c` skips around a digest.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parse one non-empty manifest line (CR removed) into its path (as written) and digest.
fn parse_coreutils_line<'a>(
    text: &'a str,
    deviations: &mut BTreeSet<Deviation>,
) -> std::result::Result<(&'a str, Sha256Digest), String> {
    let trimmed = text.trim_start_matches(is_blank);
    if trimmed.len() != text.len() {
        deviations.insert(Deviation::Whitespace);
    }
    if trimmed.starts_with('\\') {
        return Err(
            "a backslash-escaped line (sha256sum writes these for names containing a \
                    backslash, newline or CR, which a packet cannot hold)"
                .into(),
        );
    }
    if let Some(parsed) = parse_bsd_tag_line(trimmed, deviations) {
        return parsed;
    }
    parse_digest_then_path_line(trimmed, deviations)
}

/// Parse a BSD-style `SHA256 (<path>) = <hex>` line (leading blanks removed); `None` when the
/// line does not start that way.
fn parse_bsd_tag_line<'a>(
    trimmed: &'a str,
    deviations: &mut BTreeSet<Deviation>,
) -> Option<std::result::Result<(&'a str, Sha256Digest), String>> {
    let rest = trimmed.strip_prefix("SHA256")?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let inner = rest.strip_prefix('(')?;
    Some(parse_bsd_tag_after_parenthesis(inner, deviations))
}

/// Parse what follows `SHA256 (` on a BSD-style line: `<path>) = <hex>`.
fn parse_bsd_tag_after_parenthesis<'a>(
    inner: &'a str,
    deviations: &mut BTreeSet<Deviation>,
) -> std::result::Result<(&'a str, Sha256Digest), String> {
    // As coreutils: the path runs to the last ')'.
    let close = inner
        .rfind(')')
        .ok_or_else(|| format!("a BSD-style line without ')'; {COREUTILS_FORMS}"))?;
    let path = &inner[..close];
    let after = inner[close + 1..].trim_start_matches(is_blank);
    let digest = after
        .strip_prefix('=')
        .map(|d| d.trim_start_matches(is_blank))
        .ok_or_else(|| format!("a BSD-style line without '= <hex>'; {COREUTILS_FORMS}"))?;
    deviations.insert(Deviation::BsdTag);
    let sha256 = parse_any_case_hex(digest, deviations)?;
    Ok((path, sha256))
}

/// Parse a `<hex>  <path>` or `<hex> *<path>` line (leading blanks removed; a tab may stand for
/// the first space).
fn parse_digest_then_path_line<'a>(
    trimmed: &'a str,
    deviations: &mut BTreeSet<Deviation>,
) -> std::result::Result<(&'a str, Sha256Digest), String> {
    let bytes = trimmed.as_bytes();
    let hex_len = bytes.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if hex_len == 0 {
        return Err(not_a_digest_line(trimmed));
    }
    if hex_len != 64 {
        return Err(format!(
            "the digest has {hex_len} hex digits, not 64 (is this a SHA-256 manifest?); \
             {COREUTILS_FORMS}"
        ));
    }
    // Bytes 0..64 are ASCII, so 64, 65 and 66 are character boundaries when present.
    let (Some(&sep), Some(&mark)) = (bytes.get(64), bytes.get(65)) else {
        return Err(format!("no path after the digest; {COREUTILS_FORMS}"));
    };
    if sep != b' ' && sep != b'\t' {
        return Err(format!("no space after the digest; {COREUTILS_FORMS}"));
    }
    if mark != b' ' && mark != b'*' {
        return Err(format!(
            "one space between digest and path (the reversed '<hex> <path>' format, which \
             sha256sum -c accepts only in some files); {COREUTILS_FORMS}"
        ));
    }
    if sep == b'\t' {
        deviations.insert(Deviation::Whitespace);
    }
    if mark == b'*' {
        deviations.insert(Deviation::BinaryMarker);
    }
    let sha256 = parse_any_case_hex(&trimmed[..64], deviations)?;
    let path = &trimmed[66..];
    if path.is_empty() {
        return Err(format!("empty path; {COREUTILS_FORMS}"));
    }
    Ok((path, sha256))
}

/// Why a line that does not start with a hex digit is refused: a BSD-style line for another
/// algorithm (`MD5 (...)`), or no manifest line at all.
fn not_a_digest_line(trimmed: &str) -> String {
    let tag_len = trimmed
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-')
        .count();
    if tag_len > 0
        && matches!(
            trimmed[tag_len..].trim_start_matches(' ').chars().next(),
            Some('(')
        )
    {
        return format!(
            "a BSD-style line for another digest than SHA256 ({:?})",
            &trimmed[..tag_len]
        );
    }
    format!("not a manifest line; {COREUTILS_FORMS}")
}

/// Parse exactly 64 hex digits of either case.
fn parse_any_case_hex(
    digest: &str,
    deviations: &mut BTreeSet<Deviation>,
) -> std::result::Result<Sha256Digest, String> {
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "the digest is not 64 hex digits; {COREUTILS_FORMS}"
        ));
    }
    if digest.bytes().any(|b| b.is_ascii_uppercase()) {
        deviations.insert(Deviation::UppercaseHex);
    }
    Sha256Digest::parse_hex(&digest.to_ascii_lowercase())
        .ok_or_else(|| "the digest is not 64 hex digits".to_string())
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
    fn both_parsers_name_the_line_of_the_path_nested_under_a_listed_file() {
        // The check is shared by both parsers: it names the line of the nested path, and the
        // lenient parser keeps each entry's own line when it sorts lines out of order.
        let canonical = format!("{}{}", line("ab", "a"), line("cd", "a/b"));
        match parse(canonical.as_bytes()) {
            Err(Error::UntrustedSeal { line, reason, .. }) => {
                assert_eq!(line, 2, "{reason}");
                assert_eq!(reason, "\"a\" is listed as a file and as a folder");
            }
            other => panic!("expected an untrusted seal error, got {other:?}"),
        }
        let out_of_order = format!("{}{}", line("cd", "b/c"), line("ab", "b"));
        match Manifest::parse_coreutils(out_of_order.as_bytes(), Path::new("SEAL")) {
            Err(Error::UntrustedSeal { line, reason, .. }) => {
                assert_eq!(line, 1, "{reason}");
                assert_eq!(reason, "\"b\" is listed as a file and as a folder");
            }
            other => panic!("expected an untrusted seal error, got {other:?}"),
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

    fn coreutils(text: &[u8]) -> Result<(Manifest, Vec<Deviation>)> {
        Manifest::parse_coreutils(text, Path::new("SEAL"))
    }

    #[test]
    fn coreutils_manifest_forms_are_accepted_and_named() {
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        let canonical = format!("{a}  a-c\n{b}  a/b\n");
        let (manifest, deviations) = coreutils(canonical.as_bytes()).unwrap();
        assert!(deviations.is_empty());
        assert_eq!(manifest, parse(canonical.as_bytes()).unwrap());
        let upper_b = b.to_uppercase();
        let cases: Vec<(String, Vec<Deviation>)> = vec![
            (format!("{b}  a/b\n{a}  a-c\n"), vec![Deviation::OutOfOrder]),
            (
                format!("{a} *a-c\n{b} *a/b\n"),
                vec![Deviation::BinaryMarker],
            ),
            (
                format!("{a}  a-c\n{upper_b}  a/b\n"),
                vec![Deviation::UppercaseHex],
            ),
            (
                format!("{a}  ./a-c\n{b}  ./a/b\n"),
                vec![Deviation::DotSlashPrefix],
            ),
            (
                format!("SHA256 (a-c) = {a}\nSHA256 (a/b) = {b}\n"),
                vec![Deviation::BsdTag],
            ),
            (
                format!("{a}  a-c\r\n{b}  a/b\r\n"),
                vec![Deviation::CrlfLineEndings],
            ),
            (
                format!("{a}  a-c\n{b}  a/b"),
                vec![Deviation::NoFinalNewline],
            ),
            (
                format!("# made by hand\n\n{a}  a-c\n{b}  a/b\n"),
                vec![Deviation::CommentOrEmptyLines],
            ),
            (
                format!(" {a}  a-c\n{b}\t a/b\n"),
                vec![Deviation::Whitespace],
            ),
        ];
        for (text, expected) in cases {
            let (parsed, deviations) = coreutils(text.as_bytes()).expect(&text);
            assert_eq!(parsed, manifest, "{text:?}");
            assert_eq!(deviations, expected, "{text:?}");
            // The strict parser refuses each of them, saying how to make a canonical seal.
            let err = parse(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains("evstore seal . --force"), "{err}");
            assert!(err.contains("evstore verify . --seal SEAL"), "{err}");
        }
    }

    #[test]
    fn coreutils_manifest_refusals_name_the_line() {
        let (a, b) = ("ab".repeat(32), "cd".repeat(32));
        let cases: Vec<(String, usize, &str)> = vec![
            (format!("\u{feff}{a}  a\n"), 1, "byte-order mark"),
            (
                format!("{a}  a\n{b}  ./a\n"),
                2,
                "duplicate path \"a\" (also on line 1)",
            ),
            (format!("{a}  a\n{b}  ../x\n"), 2, "\"..\""),
            (format!("{a}  a\n{b}  /etc/passwd\n"), 2, "absolute path"),
            (format!("{a}  a\n\\{b}  a\\\\b\n"), 2, "backslash-escaped"),
            (format!("{a}  a\n{b} b\n"), 2, "reversed"),
            (
                format!("{a}  a\nMD5 (b) = {}\n", &b[..32]),
                2,
                "another digest",
            ),
            (format!("{a}{a}  a\n"), 1, "128 hex digits"),
            (format!("{a}  a\n{}  b\n", &b[..63]), 2, "63 hex digits"),
            (format!("{a}  a\n{b}  HASH_MANIFEST.txt\n"), 2, "seal"),
            (
                format!("{a}  a\n{b}  a/b\n"),
                2,
                "as a file and as a folder",
            ),
            (format!("{a}  a\nSHA256 (b) {b}\n"), 2, "without '= <hex>'"),
            (format!("{a}  a\n{b}  \n"), 2, "empty path"),
            (format!("{a}  a\nhello\n"), 2, "not of the form"),
            (format!("{a}  a\r\r\n"), 1, "CR inside"),
            ("# nothing\n\n".to_string(), 1, "lists no files"),
            (String::new(), 1, "lists no files"),
        ];
        for (text, line, reason) in cases {
            match coreutils(text.as_bytes()) {
                Err(Error::UntrustedSeal {
                    line: got,
                    reason: why,
                    ..
                }) => {
                    assert_eq!(got, line, "{text:?}: {why}");
                    assert!(why.contains(reason), "{text:?}: {why}");
                }
                other => panic!("{text:?}: expected a refusal, got {other:?}"),
            }
        }
    }

    mod coreutils_properties {
        use super::*;
        use proptest::prelude::*;

        fn path_strategy() -> impl Strategy<Value = String> {
            proptest::collection::vec("[a-z0-9 ._-]{1,6}", 1..4)
                .prop_map(|parts| parts.join("/"))
                .prop_filter("valid packet path", |p| {
                    check_rel_path(p).is_ok() && p != SEAL_FILE_NAME
                })
        }

        proptest! {
            #[test]
            fn any_permutation_with_markers_and_hex_case_parses_to_the_same_entries(
                files in proptest::collection::btree_map(path_strategy(), any::<[u8; 32]>(), 1..12),
                order in Just((0..12).collect::<Vec<usize>>()).prop_shuffle(),
                flags in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 12),
            ) {
                let entries: Vec<ManifestEntry> = files
                    .iter()
                    .map(|(path, bytes)| ManifestEntry {
                        path: path.clone(),
                        sha256: Sha256Digest::parse_hex(&hex::encode(bytes)).expect("hex"),
                    })
                    .collect();
                let Ok(canonical) = Manifest::from_entries(entries) else {
                    // A path listed as a file and as a folder is refused by both parsers.
                    return Ok(());
                };
                let Ok(strict) = Manifest::parse_seal(canonical.text().as_bytes(), Path::new("S")) else {
                    return Ok(());
                };
                let lines: Vec<String> = canonical
                    .entries()
                    .iter()
                    .zip(&flags)
                    .map(|(e, &(star, upper, dot))| {
                        let hex = e.sha256.to_hex();
                        let hex = if upper { hex.to_uppercase() } else { hex };
                        let mark = if star { '*' } else { ' ' };
                        let dot = if dot { "./" } else { "" };
                        format!("{hex} {mark}{dot}{}\n", e.path)
                    })
                    .collect();
                // Any permutation: the shuffled indices that fall inside the manifest.
                let text: String = order
                    .iter()
                    .filter_map(|&i| lines.get(i).map(String::as_str))
                    .collect();
                let (parsed, _) = Manifest::parse_coreutils(text.as_bytes(), Path::new("S"))
                    .expect("a sha256sum -c manifest parses");
                prop_assert_eq!(&parsed, &strict);
                prop_assert_eq!(parsed.packet_tree_sha256(), strict.packet_tree_sha256());
                // The canonical text itself has no deviation.
                let (same, deviations) =
                    Manifest::parse_coreutils(canonical.text().as_bytes(), Path::new("S"))
                        .expect("canonical parses");
                prop_assert_eq!(same, strict);
                prop_assert!(deviations.is_empty());
            }

            #[test]
            fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = Manifest::parse_coreutils(&bytes, Path::new("S"));
                let _ = Manifest::parse_seal(&bytes, Path::new("S"));
            }

            #[test]
            fn never_panics_on_manifest_like_text(text in "([0-9a-fA-F]{60,66}[ \t*]{0,3}[a-z./()=\\\\]{0,8}\r?\n){0,4}") {
                let _ = Manifest::parse_coreutils(text.as_bytes(), Path::new("S"));
            }
        }
    }
}
