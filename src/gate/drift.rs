//! Drift diagnosis: why two byte strings that should be equal are not.
//!
//! This module is pure logic with no I/O. Given the sealed bytes of a file and the bytes found
//! on disk, [`diagnose`] names the kind of drift with the fixed [`DriftClass`] vocabulary (part
//! of the JSON contract, see `docs/VERIFY.md`): an editor's byte-order mark, git's CRLF, a
//! formatter's em dash, Python's `ensure_ascii`, and so on. A class *explains* a failure; nothing
//! here ever decides that two different byte strings pass.
//!
//! The text classes are found by normalising both sides with a set of transforms and looking for
//! a smallest set that makes them equal (see [`explain_text`]). JSON classes compare parsed
//! values. When nothing explains the difference the class is [`DriftClass::Content`], with the
//! offset of the first differing byte and an excerpt of both sides.

use std::borrow::Cow;
use std::io::{self, Read};

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

/// Files larger than this (either side) are compared by streaming only: the report says
/// `truncated` or `content` with the first differing offset, without the text and JSON classes.
pub const DIAGNOSIS_LIMIT: u64 = 16 * 1024 * 1024;

/// Bytes shown before the first difference in an excerpt.
const EXCERPT_BEFORE: usize = 8;
/// Bytes shown in an excerpt in all.
const EXCERPT_LEN: usize = 32;

/// One kind of drift. The snake_case names are a stable JSON contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftClass {
    /// Sealed, not on disk.
    Missing,
    /// On disk, not sealed.
    Extra,
    /// No longer a regular file (a directory, a symlink, a FIFO).
    Type,
    /// Bytes identical, executable bit differs.
    Mode,
    /// Identical after converting CRLF to LF on both sides.
    Crlf,
    /// Identical after removing a leading UTF-8 byte-order mark on both sides.
    Bom,
    /// Differs only by newlines at the very end.
    TrailingNewline,
    /// Differs only by spaces or tabs at line ends.
    TrailingWhitespace,
    /// Identical after NFC normalisation of both sides.
    UnicodeNormalization,
    /// Identical after mapping typographic characters to ASCII on both sides.
    Typography,
    /// The same JSON value, differing only in how strings are escaped.
    JsonEscape,
    /// The same JSON value, with other whitespace, key order or number spelling.
    JsonFormat,
    /// The disk bytes are a strict prefix of the sealed bytes.
    Truncated,
    /// Nothing above explains the difference.
    Content,
}

impl DriftClass {
    /// Every class, in report order.
    pub const ALL: [DriftClass; 14] = [
        DriftClass::Missing,
        DriftClass::Extra,
        DriftClass::Type,
        DriftClass::Mode,
        DriftClass::Crlf,
        DriftClass::Bom,
        DriftClass::TrailingNewline,
        DriftClass::TrailingWhitespace,
        DriftClass::UnicodeNormalization,
        DriftClass::Typography,
        DriftClass::JsonEscape,
        DriftClass::JsonFormat,
        DriftClass::Truncated,
        DriftClass::Content,
    ];

    /// The class's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            DriftClass::Missing => "missing",
            DriftClass::Extra => "extra",
            DriftClass::Type => "type",
            DriftClass::Mode => "mode",
            DriftClass::Crlf => "crlf",
            DriftClass::Bom => "bom",
            DriftClass::TrailingNewline => "trailing_newline",
            DriftClass::TrailingWhitespace => "trailing_whitespace",
            DriftClass::UnicodeNormalization => "unicode_normalization",
            DriftClass::Typography => "typography",
            DriftClass::JsonEscape => "json_escape",
            DriftClass::JsonFormat => "json_format",
            DriftClass::Truncated => "truncated",
            DriftClass::Content => "content",
        }
    }
}

impl std::fmt::Display for DriftClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where two byte strings first differ, with a short excerpt of each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FirstDifference {
    /// Offset of the first differing byte (the shorter length if one is a prefix of the other).
    pub offset: u64,
    /// Offset of the first byte of both excerpts.
    pub excerpt_offset: u64,
    /// Lowercase hex of the sealed bytes from `excerpt_offset` (up to 32 bytes).
    pub expected_hex: String,
    /// Lowercase hex of the disk bytes from `excerpt_offset` (up to 32 bytes).
    pub observed_hex: String,
    /// The same sealed bytes as text, invalid UTF-8 replaced, control characters escaped.
    pub expected_text: String,
    /// The same disk bytes as text, invalid UTF-8 replaced, control characters escaped.
    pub observed_text: String,
}

impl FirstDifference {
    fn new(offset: u64, excerpt_offset: u64, expected: &[u8], observed: &[u8]) -> FirstDifference {
        FirstDifference {
            offset,
            excerpt_offset,
            expected_hex: hex::encode(expected),
            observed_hex: hex::encode(observed),
            expected_text: excerpt_text(expected),
            observed_text: excerpt_text(observed),
        }
    }
}

fn excerpt_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

/// The result of diagnosing one differing file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// The classes that explain the difference, in [`DriftClass::ALL`] order; never empty for
    /// two different inputs.
    pub classes: Vec<DriftClass>,
    /// Where the raw bytes first differ.
    pub first_difference: Option<FirstDifference>,
}

/// Locate the first difference between two byte strings, or `None` if they are equal.
pub fn first_difference(expected: &[u8], observed: &[u8]) -> Option<FirstDifference> {
    let common = expected.len().min(observed.len());
    let offset = expected[..common]
        .iter()
        .zip(&observed[..common])
        .position(|(a, b)| a != b)
        .unwrap_or(common);
    if offset == common && expected.len() == observed.len() {
        return None;
    }
    let start = offset.saturating_sub(EXCERPT_BEFORE);
    let window = |bytes: &[u8]| -> Vec<u8> {
        let end = bytes.len().min(start + EXCERPT_LEN);
        bytes.get(start..end).unwrap_or_default().to_vec()
    };
    Some(FirstDifference::new(
        offset as u64,
        start as u64,
        &window(expected),
        &window(observed),
    ))
}

/// Diagnose why `observed` (disk) differs from `expected` (sealed). Equal inputs give no class.
pub fn diagnose(expected: &[u8], observed: &[u8]) -> Diagnosis {
    let first = first_difference(expected, observed);
    if first.is_none() {
        return Diagnosis {
            classes: Vec::new(),
            first_difference: None,
        };
    }
    let classes = if let Some(classes) = explain_text(expected, observed) {
        classes
    } else if observed.len() < expected.len() && expected.starts_with(observed) {
        vec![DriftClass::Truncated]
    } else if truncated_then_newline(expected, observed) {
        vec![DriftClass::Truncated, DriftClass::TrailingNewline]
    } else if let Some(classes) = explain_json(expected, observed) {
        classes
    } else {
        vec![DriftClass::Content]
    };
    let mut classes = classes;
    classes.sort();
    Diagnosis {
        classes,
        first_difference: first,
    }
}

/// True if, with the newlines at the very end removed from both sides, the disk bytes are a
/// strict prefix of the sealed bytes (a file cut short whose writer then ended it with `\n`).
fn truncated_then_newline(expected: &[u8], observed: &[u8]) -> bool {
    let e = transform(DriftClass::TrailingNewline, expected);
    let o = transform(DriftClass::TrailingNewline, observed);
    o.len() < e.len() && e.starts_with(&o)
}

/// The text transforms, in the order they are applied.
const TEXT_CLASSES: [DriftClass; 6] = [
    DriftClass::Bom,
    DriftClass::Crlf,
    DriftClass::TrailingWhitespace,
    DriftClass::TrailingNewline,
    DriftClass::UnicodeNormalization,
    DriftClass::Typography,
];

/// Apply one text transform. Transforms that need text leave invalid UTF-8 unchanged.
fn transform(class: DriftClass, bytes: &[u8]) -> Cow<'_, [u8]> {
    match class {
        DriftClass::Bom => Cow::Borrowed(bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)),
        DriftClass::Crlf => {
            if !bytes.windows(2).any(|w| w == b"\r\n") {
                return Cow::Borrowed(bytes);
            }
            let mut out = Vec::with_capacity(bytes.len());
            for (i, &b) in bytes.iter().enumerate() {
                if b == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    continue;
                }
                out.push(b);
            }
            Cow::Owned(out)
        }
        DriftClass::TrailingWhitespace => {
            let mut out = Vec::with_capacity(bytes.len());
            let mut lines = bytes.split(|&b| b == b'\n').peekable();
            while let Some(line) = lines.next() {
                let (body, cr) = match line.strip_suffix(b"\r") {
                    Some(body) => (body, true),
                    None => (line, false),
                };
                let kept = body
                    .iter()
                    .rposition(|&b| b != b' ' && b != b'\t')
                    .map_or(0, |i| i + 1);
                out.extend_from_slice(&body[..kept]);
                if cr {
                    out.push(b'\r');
                }
                if lines.peek().is_some() {
                    out.push(b'\n');
                }
            }
            if out == bytes {
                Cow::Borrowed(bytes)
            } else {
                Cow::Owned(out)
            }
        }
        DriftClass::TrailingNewline => {
            let kept = bytes.iter().rposition(|&b| b != b'\n').map_or(0, |i| i + 1);
            Cow::Borrowed(&bytes[..kept])
        }
        DriftClass::UnicodeNormalization => match std::str::from_utf8(bytes) {
            Ok(text) => {
                let normal: String = text.nfc().collect();
                if normal.as_bytes() == bytes {
                    Cow::Borrowed(bytes)
                } else {
                    Cow::Owned(normal.into_bytes())
                }
            }
            Err(_) => Cow::Borrowed(bytes),
        },
        DriftClass::Typography => match std::str::from_utf8(bytes) {
            Ok(text) if text.chars().any(|c| typographic_ascii(c).is_some()) => {
                let mut out = String::with_capacity(text.len());
                for c in text.chars() {
                    match typographic_ascii(c) {
                        Some(ascii) => out.push_str(ascii),
                        None => out.push(c),
                    }
                }
                Cow::Owned(out.into_bytes())
            }
            _ => Cow::Borrowed(bytes),
        },
        _ => Cow::Borrowed(bytes),
    }
}

/// The ASCII spelling of a typographic character, as the `typography` class maps it.
pub fn typographic_ascii(c: char) -> Option<&'static str> {
    match c {
        // Em dash, en dash, figure dash, hyphen, non-breaking hyphen, minus sign.
        '\u{2014}' | '\u{2013}' | '\u{2012}' | '\u{2010}' | '\u{2011}' | '\u{2212}' => Some("-"),
        // Curly single quotes and the low single quote.
        '\u{2018}' | '\u{2019}' | '\u{201A}' => Some("'"),
        // Curly double quotes and the low double quote.
        '\u{201C}' | '\u{201D}' | '\u{201E}' => Some("\""),
        // No-break space, narrow no-break space, figure space.
        '\u{00A0}' | '\u{202F}' | '\u{2007}' => Some(" "),
        // Horizontal ellipsis.
        '\u{2026}' => Some("..."),
        _ => None,
    }
}

fn apply_all<'a>(classes: &[DriftClass], bytes: &'a [u8]) -> Cow<'a, [u8]> {
    let mut current = Cow::Borrowed(bytes);
    for &class in TEXT_CLASSES.iter().filter(|c| classes.contains(c)) {
        current = match current {
            Cow::Borrowed(b) => transform(class, b),
            Cow::Owned(v) => Cow::Owned(transform(class, &v).into_owned()),
        };
    }
    current
}

/// Find a smallest set of text classes that explains the difference: normalising both sides with
/// all of them must make the sides equal, and dropping any one of them must not. Returns `None`
/// when the text transforms cannot explain it.
pub fn explain_text(expected: &[u8], observed: &[u8]) -> Option<Vec<DriftClass>> {
    if expected == observed {
        return None;
    }
    let mut set: Vec<DriftClass> = TEXT_CLASSES.to_vec();
    if apply_all(&set, expected) != apply_all(&set, observed) {
        return None;
    }
    for class in TEXT_CLASSES {
        let without: Vec<DriftClass> = set.iter().copied().filter(|&c| c != class).collect();
        if apply_all(&without, expected) == apply_all(&without, observed) {
            set = without;
        }
    }
    // Two different inputs are never equal under the empty set, so `set` is not empty.
    Some(set)
}

/// Explain a difference between two JSON documents that parse (after removing a leading
/// byte-order mark) to the same value. Each aspect that differs is named on its own:
///
/// - `bom` when one side has a byte-order mark and the other not;
/// - `json_escape` when string literals are spelled differently (`\u2014` against `—`, `\/`
///   against `/`): the same decoded strings, spelled otherwise;
/// - with every string literal rewritten in one canonical spelling on both sides, what is left
///   is explained with the text classes when they can (`crlf`, `trailing_newline`,
///   `trailing_whitespace`), else it is `json_format` (other whitespace, key order, number
///   spelling), with `trailing_newline` and `crlf` beside it when the final newline or the line
///   endings also changed.
///
/// So Python's `json.dump(..., ensure_ascii=True)` over a file with em dashes, which also drops
/// the final newline, reads `json_escape` + `trailing_newline`; with `indent=2` over a compact
/// file, `json_escape` + `json_format` + `trailing_newline`.
pub fn explain_json(expected: &[u8], observed: &[u8]) -> Option<Vec<DriftClass>> {
    const BOM: &[u8] = b"\xef\xbb\xbf";
    let e = expected.strip_prefix(BOM).unwrap_or(expected);
    let o = observed.strip_prefix(BOM).unwrap_or(observed);
    let ev = json_values(e)?;
    let ov = json_values(o)?;
    if ev.len() != ov.len() || ev.iter().zip(&ov).any(|(a, b)| !same_json_value(a, b)) {
        return None;
    }
    let mut classes = Vec::new();
    if (e.len() == expected.len()) != (o.len() == observed.len()) {
        classes.push(DriftClass::Bom);
    }
    let (Some(ce), Some(co)) = (canonical_string_escapes(e), canonical_string_escapes(o)) else {
        classes.push(DriftClass::JsonFormat);
        return Some(classes);
    };
    if ce == co {
        // Outside string literals the texts are identical, so any difference is in a literal.
        if e != o {
            classes.push(DriftClass::JsonEscape);
        }
    } else {
        if escapes_differ(e, o) {
            classes.push(DriftClass::JsonEscape);
        }
        // Strings are equal here, so only the layout classes can explain what is left (mapping
        // characters could make two key orders look alike).
        let layout = explain_text(&ce, &co).filter(|text| {
            !text.contains(&DriftClass::UnicodeNormalization)
                && !text.contains(&DriftClass::Typography)
        });
        match layout {
            Some(text) => classes.extend(text),
            None => {
                classes.push(DriftClass::JsonFormat);
                let newlines = |b: &[u8]| b.iter().rev().take_while(|&&c| c == b'\n').count();
                if newlines(&ce) != newlines(&co) {
                    classes.push(DriftClass::TrailingNewline);
                }
                let crlf = |b: &[u8]| b.windows(2).any(|w| w == b"\r\n");
                if crlf(&ce) != crlf(&co) {
                    classes.push(DriftClass::Crlf);
                }
            }
        }
    }
    if classes.is_empty() {
        // Unreachable for different inputs; never explain a difference with nothing.
        return None;
    }
    Some(classes)
}

/// The JSON values of a document: one for a JSON file, one per line for JSON Lines (`.jsonl`
/// logs are common in packets); `None` if it is not a sequence of JSON values.
fn json_values(bytes: &[u8]) -> Option<Vec<serde_json::Value>> {
    let values: std::result::Result<Vec<serde_json::Value>, _> =
        serde_json::Deserializer::from_slice(bytes)
            .into_iter::<serde_json::Value>()
            .collect();
    values.ok().filter(|v| !v.is_empty())
}

/// True if the two documents hold the same decoded strings (as multisets) but spell some of
/// them differently. Both must be valid JSON.
fn escapes_differ(expected: &[u8], observed: &[u8]) -> bool {
    let (Some(mut a), Some(mut b)) = (string_literals(expected), string_literals(observed)) else {
        return false;
    };
    a.sort();
    b.sort();
    let decoded = |v: &[(String, &[u8])]| v.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    let mut da = decoded(&a);
    let mut db = decoded(&b);
    da.sort();
    db.sort();
    da == db && a != b
}

/// Every string literal of a valid JSON document: where it starts and ends in `text` (quotes
/// included) and its decoded value. `None` if a literal does not decode.
fn literal_spans(text: &[u8]) -> Option<Vec<(std::ops::Range<usize>, String)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        loop {
            match text.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        let decoded: String = serde_json::from_slice(text.get(start..=i)?).ok()?;
        out.push((start..i + 1, decoded));
        i += 1;
    }
    Some(out)
}

/// Every string literal of a valid JSON document: its decoded value and its raw bytes, quotes
/// included. `None` if a literal does not decode.
fn string_literals(text: &[u8]) -> Option<Vec<(String, &[u8])>> {
    Some(
        literal_spans(text)?
            .into_iter()
            .map(|(span, decoded)| (decoded, &text[span]))
            .collect(),
    )
}

/// JSON value equality where numbers compare by value when either is a float (`1.0` equals `1`,
/// `1e2` equals `100`); integers compare exactly.
pub fn same_json_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.as_f64() == y.as_f64()
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json_value(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json_value(v, w)))
        }
        _ => a == b,
    }
}

/// Rewrite every JSON string literal in `text` in one canonical spelling (as `serde_json` writes
/// it: UTF-8 as is, only `"`, `\` and control characters escaped), keeping every other byte.
/// `None` if a literal does not decode. The input must be a valid JSON document.
fn canonical_string_escapes(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut copied = 0;
    for (span, decoded) in literal_spans(text)? {
        out.extend_from_slice(&text[copied..span.start]);
        out.extend_from_slice(serde_json::to_string(&decoded).ok()?.as_bytes());
        copied = span.end;
    }
    out.extend_from_slice(&text[copied..]);
    Some(out)
}

/// Compare two streams without holding either in memory: `None` if they are equal, else the first
/// difference and whether `observed` is a strict prefix of `expected`.
pub fn compare_streams<E: Read, O: Read>(
    mut expected: E,
    mut observed: O,
) -> io::Result<Option<(FirstDifference, bool)>> {
    const CHUNK: usize = 256 * 1024;
    let mut e_buf = vec![0u8; CHUNK];
    let mut o_buf = vec![0u8; CHUNK];
    let mut base: u64 = 0;
    loop {
        let e_len = fill(&mut expected, &mut e_buf)?;
        let o_len = fill(&mut observed, &mut o_buf)?;
        let (e, o) = (&e_buf[..e_len], &o_buf[..o_len]);
        if let Some(diff) = first_difference(e, o) {
            let truncated = o_len < e_len && e.starts_with(o);
            let shifted = FirstDifference {
                offset: base + diff.offset,
                excerpt_offset: base + diff.excerpt_offset,
                ..diff
            };
            return Ok(Some((shifted, truncated)));
        }
        if e_len < CHUNK {
            return Ok(None);
        }
        base += e_len as u64;
    }
}

/// Read until `buf` is full or the stream ends; returns the number of bytes read.
fn fill<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use DriftClass::*;

    fn classes(expected: &str, observed: &str) -> Vec<DriftClass> {
        diagnose(expected.as_bytes(), observed.as_bytes()).classes
    }

    #[test]
    fn equal_inputs_have_no_class() {
        assert!(diagnose(b"same\n", b"same\n").classes.is_empty());
        assert!(diagnose(b"", b"").first_difference.is_none());
    }

    #[test]
    fn each_text_class_alone() {
        assert_eq!(classes("a\nb\n", "a\r\nb\r\n"), [Crlf]);
        assert_eq!(classes("a\r\nb\r\n", "a\nb\n"), [Crlf]);
        assert_eq!(classes("{}\n", "\u{feff}{}\n"), [Bom]);
        assert_eq!(classes("\u{feff}{}\n", "{}\n"), [Bom]);
        assert_eq!(classes("a\nb\n", "a\nb"), [TrailingNewline]);
        assert_eq!(classes("a\nb", "a\nb\n"), [TrailingNewline]);
        assert_eq!(classes("a\nb\n", "a  \nb\t\n"), [TrailingWhitespace]);
        assert_eq!(
            classes("caf\u{e9}\n", "cafe\u{301}\n"),
            [UnicodeNormalization]
        );
        assert_eq!(classes("a \u{2014} b\n", "a - b\n"), [Typography]);
        assert_eq!(
            classes("\u{201c}q\u{201d}\u{2026}\n", "\"q\"...\n"),
            [Typography]
        );
    }

    #[test]
    fn classes_combine() {
        assert_eq!(classes("x\ny\n", "\u{feff}x\r\ny\r\n"), [Crlf, Bom]);
        assert_eq!(classes("a \u{2014} b\n", "a - b\r\n"), [Crlf, Typography]);
    }

    #[test]
    fn truncated_is_a_strict_prefix() {
        assert_eq!(classes("hello world\n", "hello"), [Truncated]);
        let d = diagnose(b"hello world\n", b"hello");
        assert_eq!(d.first_difference.map(|f| f.offset), Some(5));
        // A longer file is not truncated.
        assert_eq!(classes("hello", "hello world"), [Content]);
    }

    #[test]
    fn json_escape_and_format() {
        let sealed = "{\"note\": \"a \u{2014} b\", \"url\": \"x/y\"}\n";
        assert_eq!(
            classes(sealed, "{\"note\": \"a \\u2014 b\", \"url\": \"x\\/y\"}\n"),
            [JsonEscape]
        );
        assert_eq!(
            classes(
                sealed,
                "{\n  \"url\": \"x/y\",\n  \"note\": \"a \u{2014} b\"\n}\n"
            ),
            [JsonFormat]
        );
        assert_eq!(classes("{\"n\": 100}", "{\"n\": 1e2}"), [JsonFormat]);
        assert_eq!(
            classes(
                "{\"a\": \"\u{2014}\"}\n",
                "\u{feff}{\"a\": \"\\u2014\"}\r\n"
            ),
            [Crlf, Bom, JsonEscape]
        );
        // A different value is content, whatever the spelling.
        assert_eq!(classes("{\"n\": 1}", "{\"n\": 2}"), [Content]);
        assert_eq!(
            classes("{\"n\": 9007199254740993}", "{\"n\": 9007199254740992}"),
            [Content]
        );
    }

    #[test]
    fn regression_python_ensure_ascii_rewrite_is_json_escape_not_json_format() {
        // The seed's json_ensure_ascii_drift: json.dump(o, f, ensure_ascii=True, indent=2)
        // over an indent=2 file with em dashes escapes them and drops the final newline.
        let sealed = "{\n  \"note\": \"a \u{2014} b\",\n  \"n\": 1\n}\n";
        let python = "{\n  \"note\": \"a \\u2014 b\",\n  \"n\": 1\n}";
        assert_eq!(classes(sealed, python), [TrailingNewline, JsonEscape]);
        // The same over a compact file also reformats it.
        let compact = "{\"note\": \"a \u{2014} b\", \"n\": 1}\n";
        assert_eq!(
            classes(compact, python),
            [TrailingNewline, JsonEscape, JsonFormat]
        );
        // Reformatting alone, with the escapes kept, is not json_escape.
        let reordered = "{\"n\": 1, \"note\": \"a \u{2014} b\"}";
        assert_eq!(classes(compact, reordered), [TrailingNewline, JsonFormat]);
        // Escapes that only moved between equal strings are still an escape change.
        assert_eq!(
            classes("[\"a\", \"\\u0061\"]", "[\"\\u0061\", \"a\"]"),
            [JsonEscape]
        );
        // Key order is json_format even when a typographic mapping would make the keys alike.
        assert_eq!(
            classes("{\"\\u2014\": 1, \"-\": 1}", "{\"-\": 1, \"\u{2014}\": 1}"),
            [JsonEscape, JsonFormat]
        );
    }

    #[test]
    fn every_class_combines_with_trailing_newline() {
        // (sealed, disk, classes): each byte-level class, then the same drift with the final
        // newline dropped (or added). missing, extra and type are about whole files, and mode is
        // the gate's (tests/it); content absorbs anything else.
        let cases: &[(&str, &str, &[DriftClass])] = &[
            ("a\nb\n", "a\r\nb", &[Crlf, TrailingNewline]),
            ("a\r\nb", "a\nb\n", &[Crlf, TrailingNewline]),
            ("{}\n", "\u{feff}{}", &[Bom, TrailingNewline]),
            ("a\nb\n", "a  \nb\t", &[TrailingNewline, TrailingWhitespace]),
            (
                "caf\u{e9}\n",
                "cafe\u{301}",
                &[TrailingNewline, UnicodeNormalization],
            ),
            ("a \u{2014} b\n", "a - b", &[TrailingNewline, Typography]),
            ("a \u{2014} b", "a - b\n", &[TrailingNewline, Typography]),
            (
                "{\"a\": \"\u{2014}\"}\n",
                "{\"a\": \"\\u2014\"}",
                &[TrailingNewline, JsonEscape],
            ),
            (
                "{\"a\": \"\\u2014\"}",
                "{\"a\": \"\u{2014}\"}\n",
                &[TrailingNewline, JsonEscape],
            ),
            (
                "{\"a\": 1}\n",
                "{\n  \"a\": 1\n}",
                &[TrailingNewline, JsonFormat],
            ),
            (
                "{\"n\": 100}",
                "{\"n\": 1e2}\n\n",
                &[TrailingNewline, JsonFormat],
            ),
            (
                "{\"a\": \"\u{2014}\"}\n",
                "\u{feff}{\"a\": \"\\u2014\"}\r\n\r\n",
                &[Crlf, Bom, TrailingNewline, JsonEscape],
            ),
            (
                "line one\nline two\n",
                "line one\nli\n",
                &[TrailingNewline, Truncated],
            ),
            (
                "line one\nline two",
                "line one\nli\n",
                &[TrailingNewline, Truncated],
            ),
            ("status: PASS\n", "status: FAIL", &[Content]),
        ];
        for (sealed, disk, expected) in cases {
            assert_eq!(&classes(sealed, disk), expected, "{sealed:?} -> {disk:?}");
        }
        // Truncation alone keeps its own class.
        assert_eq!(classes("line one\nline two\n", "line one\nli"), [Truncated]);
    }

    #[test]
    fn content_reports_offset_and_excerpts() {
        let d = diagnose(b"status: PASS\n", b"status: FAIL\n");
        assert_eq!(d.classes, [Content]);
        let f = d.first_difference.expect("differs");
        assert_eq!(f.offset, 8);
        assert_eq!(f.excerpt_offset, 0);
        assert_eq!(f.expected_text, "status: PASS\\n");
        assert_eq!(f.observed_text, "status: FAIL\\n");
        assert_eq!(f.expected_hex, hex::encode(b"status: PASS\n"));
    }

    #[test]
    fn streams_find_the_same_difference_across_chunks() {
        let expected = vec![7u8; 600_000];
        let mut observed = expected.clone();
        observed[300_001] = 8;
        let (diff, truncated) = compare_streams(&expected[..], &observed[..])
            .expect("in memory")
            .expect("differs");
        assert_eq!(diff.offset, 300_001);
        assert!(!truncated);
        let (diff, truncated) = compare_streams(&expected[..], &expected[..524_288])
            .expect("in memory")
            .expect("differs");
        assert_eq!(diff.offset, 524_288);
        assert!(truncated);
        assert!(compare_streams(&expected[..], &expected[..])
            .expect("in memory")
            .is_none());
    }

    #[test]
    fn json_lines_rewritten_with_ensure_ascii_is_json_escape() {
        let expected = "{\"step\": \"build \u{2014} ok\"}\n{\"step\": \"test\"}\n";
        let observed = "{\"step\": \"build \\u2014 ok\"}\n{\"step\": \"test\"}\n";
        assert_eq!(classes(expected, observed), [JsonEscape]);
        // A changed value is content, never an escape.
        let edited = "{\"step\": \"build \\u2014 ok\"}\n{\"step\": \"tests\"}\n";
        assert!(!classes(expected, edited).contains(&JsonEscape));
    }

    proptest! {
        #[test]
        fn never_empty_for_different_inputs(a in proptest::collection::vec(any::<u8>(), 0..64),
                                            b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let d = diagnose(&a, &b);
            prop_assert_eq!(d.classes.is_empty(), a == b);
            prop_assert_eq!(d.first_difference.is_none(), a == b);
            if d.classes.contains(&Truncated) {
                // Cut short, possibly then ended with a newline (`truncated` + `trailing_newline`).
                let trim = |x: &[u8]| x[..x.iter().rposition(|&c| c != b'\n').map_or(0, |i| i + 1)].to_vec();
                let (a, b) = if d.classes.contains(&TrailingNewline) {
                    (trim(&a), trim(&b))
                } else {
                    (a.clone(), b.clone())
                };
                prop_assert!(a.starts_with(&b) && b.len() < a.len());
            }
        }

        #[test]
        fn crlf_conversion_is_named(lines in proptest::collection::vec("[a-z ]{0,12}[a-z]", 1..8)) {
            let lf = lines.join("\n") + "\n";
            let crlf = lf.replace('\n', "\r\n");
            prop_assert_eq!(classes(&lf, &crlf), vec![Crlf]);
        }

        #[test]
        fn bom_is_named(text in "[a-z{}\":, \n]{1,40}") {
            prop_assert_eq!(classes(&text, &format!("\u{feff}{text}")), vec![Bom]);
        }

        #[test]
        fn stream_comparison_agrees_with_slices(a in proptest::collection::vec(any::<u8>(), 0..300),
                                                b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let streamed = compare_streams(&a[..], &b[..]).expect("in memory");
            let sliced = first_difference(&a, &b);
            prop_assert_eq!(streamed.map(|(f, _)| f), sliced);
        }
    }
}
