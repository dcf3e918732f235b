//! The rerun attestation: what `evstore rerun` stores, as an immutable object of kind 4, to
//! prove a regeneration was (or was not) reproducible. See `docs/FORMAT.md` §7b.
//!
//! The payload is UTF-8 compact JSON with the keys of every object sorted by their bytes (the
//! order of serde_json's `Value`), `"format": "evstore/attestation/1"`. Its BLAKE3 is the
//! object id, so the same attestation must always be the same bytes: [`Attestation::encode`] is
//! canonical, and [`Attestation::decode`] accepts only bytes that re-encode to themselves.
//!
//! Two readers: [`Attestation::decode`] takes back the whole attestation this version writes,
//! strictly (every key, no other key, canonical bytes); [`decode_summary`] reads only the fields
//! a catalog `runs` row is made of, which every `evstore/attestation/1` object has had (objects
//! written before 2026-12-01 have a `diff` without `observed_kind` and `not_regular`), so `fsck`
//! and `reindex` keep reading every attestation ever written.
//!
//! **Architecture Invariant:** the stored shape is defined here, by these structs and their own
//! field names, never by a report struct: `ops::rerun` converts its report field by field, so
//! renaming a report or gate field cannot change what is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Sha256Digest;

/// The `format` value of every attestation object this version writes.
pub const ATTESTATION_FORMAT: &str = "evstore/attestation/1";

/// The `format` key: it encodes as [`ATTESTATION_FORMAT`] and decodes only from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormatTag;

impl Serialize for FormatTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(ATTESTATION_FORMAT)
    }
}

impl<'de> Deserialize<'de> for FormatTag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FormatTag, D::Error> {
        let text = String::deserialize(d)?;
        if text == ATTESTATION_FORMAT {
            Ok(FormatTag)
        } else {
            Err(serde::de::Error::custom(format!(
                "`format` is not \"{ATTESTATION_FORMAT}\""
            )))
        }
    }
}

/// A verdict as attestations and events record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordedVerdict {
    /// `PASS`.
    #[serde(rename = "PASS")]
    Pass,
    /// `FAIL`.
    #[serde(rename = "FAIL")]
    Fail,
}

impl RecordedVerdict {
    /// `PASS` or `FAIL`.
    pub fn name(self) -> &'static str {
        match self {
            RecordedVerdict::Pass => "PASS",
            RecordedVerdict::Fail => "FAIL",
        }
    }
}

/// Where the generator's environment came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentMode {
    /// The fixed controlled environment (its variables are recorded).
    Controlled,
    /// The caller's environment (only the variable names are recorded, with empty values).
    Inherited,
}

/// A whole attestation, as this version writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// Always [`ATTESTATION_FORMAT`].
    pub format: FormatTag,
    /// `PASS` or `FAIL`.
    pub verdict: RecordedVerdict,
    /// The packet rerun (`NAME@N`), if it is stored.
    pub packet: Option<String>,
    /// The packet_tree_sha256 every run had to produce.
    #[serde(with = "sha256_hex")]
    pub expected_sha256: Sha256Digest,
    /// The command line (lossy UTF-8), `{out}` not substituted.
    pub command: Vec<String>,
    /// The generator's working directory.
    pub cwd: String,
    /// `controlled` or `inherited`.
    pub environment_mode: EnvironmentMode,
    /// The environment given to the generator (names only, for an inherited one).
    pub environment: BTreeMap<String, String>,
    /// Every run, in order.
    pub runs: Vec<AttestedRun>,
    /// True if the runs produced different trees.
    pub nondeterministic: bool,
    /// The files that differ between runs.
    pub varying_files: Vec<String>,
    /// Why the verdict is FAIL (empty on PASS).
    pub reasons: Vec<String>,
    /// The per-file drift of the first mismatching run against the expected packet, if any.
    pub diff: Option<AttestedDiff>,
    /// Where the first run's output was kept (`--keep`).
    pub kept: Option<String>,
    /// The packet the output was ingested as (`rerun --ingest`), `NAME@N`.
    pub ingested: Option<String>,
    /// The evstore version that wrote it.
    pub tool_version: String,
    /// When it was attested, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
}

/// One run of the generator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedRun {
    /// 1-based run number.
    pub run: u32,
    /// The exit code, if the command exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// True if the timeout killed it.
    pub timed_out: bool,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// The output's packet_tree_sha256, when it could be hashed.
    #[serde(with = "optional_sha256_hex")]
    pub observed_sha256: Option<Sha256Digest>,
    /// Files in the output.
    pub files: u64,
    /// Why this run fails, if it does.
    pub failure: Option<String>,
    /// The end of the command's combined stdout and stderr.
    pub output_tail: String,
}

/// A per-file comparison (the shape of the gate's report, `docs/VERIFY.md`, fixed here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedDiff {
    /// `PASS` or `FAIL`.
    pub verdict: RecordedVerdict,
    /// The side that says what should be there.
    pub expected: AttestedSide,
    /// The side that was found.
    pub observed: AttestedSide,
    /// Counts over `files`.
    pub counts: AttestedCounts,
    /// Every path, in path-byte order.
    pub files: Vec<AttestedFile>,
    /// Folders whose subtrees were equal by tree id and not descended into.
    pub subtrees_skipped: Vec<String>,
    /// Remarks that do not change the verdict.
    pub notes: Vec<String>,
    /// Checks of the observed packet_tree_sha256; the key is absent when there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expectations: Vec<AttestedExpectation>,
}

/// What a compared side is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestedSideKind {
    /// A folder on disk.
    Folder,
    /// A seal file.
    Seal,
    /// A stored packet.
    Packet,
}

/// One side of a comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedSide {
    /// `folder`, `seal` or `packet`.
    pub kind: AttestedSideKind,
    /// The folder or seal path, or `NAME@N`.
    pub label: String,
    /// Its packet_tree_sha256 (null for a folder holding entries that are not regular files).
    #[serde(with = "optional_sha256_hex")]
    pub packet_tree_sha256: Option<Sha256Digest>,
    /// How many regular files it lists.
    pub files: u64,
    /// Entries that are not regular files, counted by kind (`symbolic link`, `FIFO`, ...).
    pub not_regular: BTreeMap<String, u64>,
    /// For a seal side: the seal file itself; the key is absent for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<AttestedSeal>,
}

/// A seal side's own file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedSeal {
    /// The SHA-256 of the seal file's bytes.
    #[serde(with = "sha256_hex")]
    pub sha256: Sha256Digest,
    /// True if the file is the canonical manifest of its entries.
    pub canonical: bool,
    /// How a non-canonical manifest departs from the canonical text (snake_case names).
    pub deviations: Vec<String>,
}

/// Counts over a comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedCounts {
    /// Paths compared.
    pub files: u64,
    /// Paths that match.
    pub ok: u64,
    /// Paths that fail.
    pub failed: u64,
    /// Failing paths per drift class name.
    pub classes: BTreeMap<String, u64>,
}

/// Whether one path matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// It matched.
    Ok,
    /// It did not.
    Fail,
}

/// The result for one path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedFile {
    /// The packet path.
    pub path: String,
    /// `ok` or `fail`.
    pub status: FileStatus,
    /// The drift class names that explain a failure (empty when ok).
    pub classes: Vec<String>,
    /// What the expected side lists at this path.
    pub expected: Option<AttestedFileFacts>,
    /// What the observed side holds at this path, when it is a regular file.
    pub observed: Option<AttestedFileFacts>,
    /// What the observed side holds when it is not a regular file (`symbolic link`, ...).
    pub observed_kind: Option<String>,
    /// Where the bytes first differ.
    pub first_difference: Option<AttestedFirstDifference>,
    /// A sentence of context.
    pub note: Option<String>,
}

/// One file as a side lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedFileFacts {
    /// SHA-256 of the bytes.
    #[serde(with = "sha256_hex")]
    pub sha256: Sha256Digest,
    /// Size in bytes, if the side records it.
    pub size: Option<u64>,
    /// Executable bit, if the side records it.
    pub executable: Option<bool>,
}

/// Where two files' bytes first differ, with an excerpt of each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedFirstDifference {
    /// Offset of the first differing byte.
    pub offset: u64,
    /// Offset of the first byte of both excerpts.
    pub excerpt_offset: u64,
    /// Lowercase hex of the expected bytes from `excerpt_offset`.
    pub expected_hex: String,
    /// Lowercase hex of the observed bytes from `excerpt_offset`.
    pub observed_hex: String,
    /// The expected excerpt as escaped text.
    pub expected_text: String,
    /// The observed excerpt as escaped text.
    pub observed_text: String,
}

/// How an expectation relates a packet_tree_sha256 to a given SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// It must be that SHA-256.
    Equal,
    /// It must not be.
    Differ,
}

/// One check of the observed packet_tree_sha256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedExpectation {
    /// `equal` or `differ`.
    pub relation: Relation,
    /// The SHA-256 given.
    #[serde(with = "sha256_hex")]
    pub sha256: Sha256Digest,
    /// The packet_tree_sha256 found, if the side has one.
    #[serde(with = "optional_sha256_hex")]
    pub actual: Option<Sha256Digest>,
    /// True if the relation holds.
    pub holds: bool,
}

impl Attestation {
    /// The canonical bytes: compact JSON, the keys of every object sorted by their bytes, no
    /// whitespace. The error (a bug, never input) is a reason fragment.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let value = serde_json::to_value(self).map_err(|err| err.to_string())?;
        Ok(value.to_string().into_bytes())
    }

    /// Decode an attestation strictly: JSON of exactly this shape (every key present, no other
    /// key, every value of its type), in canonical form (`encode` gives back the same bytes).
    /// The error is a reason fragment naming what is off.
    pub fn decode(bytes: &[u8]) -> Result<Attestation, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|err| format!("not JSON: {err}"))?;
        let Value::Object(fields) = &value else {
            return Err("not a JSON object".into());
        };
        for key in ATTESTATION_KEYS {
            if !fields.contains_key(key) {
                return Err(format!("`{key}` is missing"));
            }
        }
        let attestation = Attestation::deserialize(&value).map_err(|err| err.to_string())?;
        if attestation.encode()? != bytes {
            return Err(
                "not in canonical form (compact JSON, keys sorted, every key of the format present \
                 once)"
                    .into(),
            );
        }
        Ok(attestation)
    }

    /// The summary of this rerun that the catalog's `runs` row and `rerun` event hold.
    pub fn run_summary(&self) -> RunSummary {
        RunSummary {
            packet: self.packet.clone(),
            command: self.command.clone(),
            observed: self.runs.iter().map(|r| r.observed_sha256).collect(),
            ingested: self.ingested.clone(),
        }
    }

    /// What the catalog's `runs` row holds about this attestation (what [`decode_summary`]
    /// reads back from its bytes).
    pub fn summary(&self) -> AttestationSummary {
        AttestationSummary {
            packet: self.packet.clone(),
            expected_sha256: self.expected_sha256,
            verdict: self.verdict.name().to_string(),
            time_unix_nanos: self.time_unix_nanos,
            summary: self.run_summary().to_json(),
        }
    }
}

/// The top-level keys of an attestation, sorted (the order they are encoded in).
pub const ATTESTATION_KEYS: [&str; 17] = [
    "command",
    "cwd",
    "diff",
    "environment",
    "environment_mode",
    "expected_sha256",
    "format",
    "ingested",
    "kept",
    "nondeterministic",
    "packet",
    "reasons",
    "runs",
    "time_unix_nanos",
    "tool_version",
    "varying_files",
    "verdict",
];

/// The summary of a rerun that the catalog's `runs` row and the `rerun` event hold, so that
/// `evstore runs` can list reruns without reading attestation objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// The packet rerun (`NAME@N`), if it is stored.
    pub packet: Option<String>,
    /// The command line.
    pub command: Vec<String>,
    /// Each run's observed packet_tree_sha256, or null.
    pub observed: Vec<Option<Sha256Digest>>,
    /// The packet the output was ingested as.
    pub ingested: Option<String>,
}

impl RunSummary {
    /// `{"command", "ingested", "observed", "packet", "runs"}` (`runs` is the count).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "packet": self.packet,
            "command": self.command,
            "runs": self.observed.len(),
            "observed": self.observed,
            "ingested": self.ingested,
        })
    }
}

/// What the catalog's `runs` row says about an attestation, taken back from the object itself
/// (`reindex` rebuilds `runs` from these; `fsck` checks each `runs` row against one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationSummary {
    /// The packet rerun (`NAME@N`), if it was stored.
    pub packet: Option<String>,
    /// The packet_tree_sha256 expected.
    pub expected_sha256: Sha256Digest,
    /// `PASS` or `FAIL`.
    pub verdict: String,
    /// When the rerun was attested.
    pub time_unix_nanos: u64,
    /// The summary the `runs` row holds ([`RunSummary::to_json`]).
    pub summary: Value,
}

/// Read back the fields of an attestation object's payload that the catalog indexes. Strict on
/// those fields (the rules of `docs/FORMAT.md` §7b), silent on the others, so that it reads every
/// `evstore/attestation/1` object ever written; the error is a reason fragment.
pub fn decode_summary(payload: &[u8]) -> Result<AttestationSummary, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|err| format!("not JSON: {err}"))?;
    if value["format"] != ATTESTATION_FORMAT {
        return Err(format!("`format` is not \"{ATTESTATION_FORMAT}\""));
    }
    let optional_string = |key: &str| match &value[key] {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text.clone())),
        _ => Err(format!("`{key}` is neither a string nor null")),
    };
    let packet = optional_string("packet")?;
    let ingested = optional_string("ingested")?;
    let expected_sha256 = value["expected_sha256"]
        .as_str()
        .and_then(Sha256Digest::parse_hex)
        .ok_or("`expected_sha256` is not 64 lowercase hex digits")?;
    let verdict = match value["verdict"].as_str() {
        Some(verdict @ ("PASS" | "FAIL")) => verdict.to_string(),
        _ => return Err("`verdict` is neither \"PASS\" nor \"FAIL\"".into()),
    };
    let time_unix_nanos = value["time_unix_nanos"]
        .as_u64()
        .ok_or("`time_unix_nanos` is not an unsigned integer")?;
    let command: Vec<String> = value["command"]
        .as_array()
        .and_then(|args| args.iter().map(|a| a.as_str().map(String::from)).collect())
        .ok_or("`command` is not a list of strings")?;
    let observed: Vec<Option<Sha256Digest>> = value["runs"]
        .as_array()
        .ok_or("`runs` is not a list")?
        .iter()
        .map(|run| match &run["observed_sha256"] {
            Value::Null => Ok(None),
            Value::String(hex) => Sha256Digest::parse_hex(hex)
                .map(Some)
                .ok_or("a run's `observed_sha256` is not 64 lowercase hex digits"),
            _ => Err("a run's `observed_sha256` is neither a string nor null"),
        })
        .collect::<Result<_, _>>()?;
    let summary = RunSummary {
        packet: packet.clone(),
        command,
        observed,
        ingested,
    }
    .to_json();
    Ok(AttestationSummary {
        packet,
        expected_sha256,
        verdict,
        time_unix_nanos,
        summary,
    })
}

/// A SHA-256 as 64 lowercase hex digits, and nothing else.
mod sha256_hex {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::digest::Sha256Digest;

    pub fn serialize<S: Serializer>(digest: &Sha256Digest, s: S) -> Result<S::Ok, S::Error> {
        digest.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Sha256Digest, D::Error> {
        let text = String::deserialize(d)?;
        Sha256Digest::parse_hex(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a SHA-256 digest (64 lowercase hex digits)"
            ))
        })
    }
}

/// A SHA-256 as 64 lowercase hex digits, or null.
mod optional_sha256_hex {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::digest::Sha256Digest;

    pub fn serialize<S: Serializer>(
        digest: &Option<Sha256Digest>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        digest.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Sha256Digest>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => Sha256Digest::parse_hex(&text).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a SHA-256 digest (64 lowercase hex digits)"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::blake3_of;

    /// The test vector of `docs/FORMAT.md` §7b: a FAIL rerun of `p@1` whose one run wrote `a`
    /// with other bytes.
    fn vector() -> Attestation {
        let sha = |c: &str| Sha256Digest::parse_hex(&c.repeat(32)).unwrap();
        let side = |kind, label: &str, tree: &str| AttestedSide {
            kind,
            label: label.into(),
            packet_tree_sha256: Some(sha(tree)),
            files: 1,
            not_regular: BTreeMap::new(),
            seal: None,
        };
        Attestation {
            format: FormatTag,
            verdict: RecordedVerdict::Fail,
            packet: Some("p@1".into()),
            expected_sha256: sha("11"),
            command: vec!["sh".into(), "gen.sh".into(), "{out}".into()],
            cwd: "/w".into(),
            environment_mode: EnvironmentMode::Controlled,
            environment: BTreeMap::from([
                ("LANG".into(), "C.UTF-8".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ]),
            runs: vec![AttestedRun {
                run: 1,
                exit_code: Some(0),
                signal: None,
                timed_out: false,
                duration_ms: 5,
                observed_sha256: Some(sha("22")),
                files: 1,
                failure: None,
                output_tail: String::new(),
            }],
            nondeterministic: false,
            varying_files: vec![],
            reasons: vec!["PACKET_TREE MISMATCH".into()],
            diff: Some(AttestedDiff {
                verdict: RecordedVerdict::Fail,
                expected: side(AttestedSideKind::Packet, "p@1", "11"),
                observed: side(AttestedSideKind::Folder, "/t/out-1", "22"),
                counts: AttestedCounts {
                    files: 1,
                    ok: 0,
                    failed: 1,
                    classes: BTreeMap::from([("trailing_newline".into(), 1)]),
                },
                files: vec![AttestedFile {
                    path: "a".into(),
                    status: FileStatus::Fail,
                    classes: vec!["trailing_newline".into()],
                    expected: Some(AttestedFileFacts {
                        sha256: sha("33"),
                        size: Some(2),
                        executable: Some(false),
                    }),
                    observed: Some(AttestedFileFacts {
                        sha256: sha("44"),
                        size: Some(1),
                        executable: Some(false),
                    }),
                    observed_kind: None,
                    first_difference: Some(AttestedFirstDifference {
                        offset: 1,
                        excerpt_offset: 0,
                        expected_hex: "610a".into(),
                        observed_hex: "61".into(),
                        expected_text: "a\\n".into(),
                        observed_text: "a".into(),
                    }),
                    note: None,
                }],
                subtrees_skipped: vec![],
                notes: vec![],
                expectations: vec![],
            }),
            kept: None,
            ingested: None,
            tool_version: "0.1.0".into(),
            time_unix_nanos: 1_796_164_996_983_227_499,
        }
    }

    /// The vector's bytes, as `docs/FORMAT.md` §7b shows them.
    const VECTOR_JSON: &str = concat!(
        r#"{"command":["sh","gen.sh","{out}"],"cwd":"/w","diff":{"counts":{"classes":"#,
        r#"{"trailing_newline":1},"failed":1,"files":1,"ok":0},"expected":{"files":1,"#,
        r#""kind":"packet","label":"p@1","not_regular":{},"packet_tree_sha256":"#,
        r#""1111111111111111111111111111111111111111111111111111111111111111"},"files":"#,
        r#"[{"classes":["trailing_newline"],"expected":{"executable":false,"sha256":"#,
        r#""3333333333333333333333333333333333333333333333333333333333333333","size":2},"#,
        r#""first_difference":{"excerpt_offset":0,"expected_hex":"610a","expected_text":"#,
        r#""a\\n","observed_hex":"61","observed_text":"a","offset":1},"note":null,"#,
        r#""observed":{"executable":false,"sha256":"#,
        r#""4444444444444444444444444444444444444444444444444444444444444444","size":1},"#,
        r#""observed_kind":null,"path":"a","status":"fail"}],"notes":[],"observed":"#,
        r#"{"files":1,"kind":"folder","label":"/t/out-1","not_regular":{},"#,
        r#""packet_tree_sha256":"#,
        r#""2222222222222222222222222222222222222222222222222222222222222222"},"#,
        r#""subtrees_skipped":[],"verdict":"FAIL"},"environment":{"LANG":"C.UTF-8","#,
        r#""PATH":"/usr/bin:/bin"},"environment_mode":"controlled","expected_sha256":"#,
        r#""1111111111111111111111111111111111111111111111111111111111111111","format":"#,
        r#""evstore/attestation/1","ingested":null,"kept":null,"nondeterministic":false,"#,
        r#""packet":"p@1","reasons":["PACKET_TREE MISMATCH"],"runs":[{"duration_ms":5,"#,
        r#""exit_code":0,"failure":null,"files":1,"observed_sha256":"#,
        r#""2222222222222222222222222222222222222222222222222222222222222222","#,
        r#""output_tail":"","run":1,"signal":null,"timed_out":false}],"#,
        r#""time_unix_nanos":1796164996983227499,"tool_version":"0.1.0","#,
        r#""varying_files":[],"verdict":"FAIL"}"#,
    );

    /// The vector's object id (BLAKE3 of its bytes), as `docs/FORMAT.md` §7b shows it.
    const VECTOR_ID: &str = "432a0af3e24326dd4d9acb163f368e1331743af86bee96c41dd38b6ff2d6e7d2";

    #[test]
    fn test_vector_encodes_to_the_documented_bytes_and_id() {
        let bytes = vector().encode().unwrap();
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), VECTOR_JSON);
        assert_eq!(blake3_of(&bytes).to_hex(), VECTOR_ID);
        assert_eq!(Attestation::decode(&bytes).unwrap(), vector());
        let doc = include_str!("../../docs/FORMAT.md");
        assert!(doc.contains(VECTOR_JSON), "FORMAT.md §7b shows other bytes");
        assert!(doc.contains(VECTOR_ID), "FORMAT.md §7b shows another id");
    }

    /// The encoder writes what `serde_json::Value` writes (the encoder of every attestation
    /// before this module): keys sorted at every level, compact.
    #[test]
    fn encoding_is_the_sorted_compact_json_of_the_value() {
        let bytes = vector().encode().unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value.to_string().into_bytes(), bytes);
        assert_eq!(
            value.as_object().unwrap().keys().collect::<Vec<_>>(),
            ATTESTATION_KEYS.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_strict_decoder_refuses_every_other_shape_or_spelling() {
        let good: Value = serde_json::from_str(VECTOR_JSON).unwrap();
        let edited = |edit: &dyn Fn(&mut Value)| {
            let mut value = good.clone();
            edit(&mut value);
            value.to_string()
        };
        let cases: Vec<(String, &str)> = vec![
            (
                edited(&|v| {
                    v.as_object_mut().unwrap().remove("kept");
                }),
                "`kept` is missing",
            ),
            (
                edited(&|v| v["extra"] = Value::Null),
                "unknown field `extra`",
            ),
            (
                edited(&|v| v["runs"][0]["extra"] = Value::Null),
                "unknown field `extra`",
            ),
            (
                edited(&|v| {
                    v["runs"][0].as_object_mut().unwrap().remove("failure");
                }),
                "canonical",
            ),
            (
                edited(&|v| v["format"] = "evstore/attestation/2".into()),
                "format",
            ),
            (edited(&|v| v["verdict"] = "pass".into()), "unknown variant"),
            (
                edited(&|v| v["expected_sha256"] = "AB".repeat(32).into()),
                "not a SHA-256 digest",
            ),
            (
                edited(&|v| v["diff"]["files"][0]["status"] = "bad".into()),
                "unknown variant",
            ),
            (
                edited(&|v| v["diff"]["expectations"] = serde_json::json!([])),
                "canonical",
            ),
            (
                edited(&|v| v["time_unix_nanos"] = (-1).into()),
                "invalid value",
            ),
            (VECTOR_JSON.replace(":", ": "), "canonical"),
            (
                VECTOR_JSON.replacen(
                    r#""command":["sh","gen.sh","{out}"],"cwd":"/w","#,
                    r#""cwd":"/w","command":["sh","gen.sh","{out}"],"#,
                    1,
                ),
                "canonical",
            ),
            ("[]".into(), "not a JSON object"),
            ("{not json".into(), "not JSON"),
        ];
        for (text, named) in cases {
            let err = Attestation::decode(text.as_bytes())
                .expect_err("a malformed attestation is refused");
            assert!(err.contains(named), "expected {named:?} in: {err}");
        }
    }

    fn minimal_attestation() -> Value {
        serde_json::json!({
            "format": ATTESTATION_FORMAT,
            "verdict": "FAIL",
            "packet": "p@2",
            "expected_sha256": "ab".repeat(32),
            "command": ["sh", "-c", "true"],
            "runs": [{"observed_sha256": "cd".repeat(32)}, {"observed_sha256": null}],
            "ingested": null,
            "time_unix_nanos": 7,
        })
    }

    #[test]
    fn decode_summary_takes_back_what_the_runs_row_holds() {
        let payload = minimal_attestation().to_string();
        let decoded = decode_summary(payload.as_bytes()).expect("valid attestation");
        assert_eq!(decoded.packet.as_deref(), Some("p@2"));
        assert_eq!(decoded.expected_sha256.to_hex(), "ab".repeat(32));
        assert_eq!(decoded.verdict, "FAIL");
        assert_eq!(decoded.time_unix_nanos, 7);
        assert_eq!(
            decoded.summary,
            serde_json::json!({
                "packet": "p@2",
                "command": ["sh", "-c", "true"],
                "runs": 2,
                "observed": ["cd".repeat(32), null],
                "ingested": null,
            })
        );
    }

    #[test]
    fn decode_summary_agrees_with_the_full_decoder() {
        let bytes = vector().encode().unwrap();
        assert_eq!(decode_summary(&bytes).unwrap(), vector().summary());
    }

    #[test]
    fn decode_summary_refuses_every_malformed_field() {
        let cases: [(&str, Value, &str); 7] = [
            (
                "format",
                serde_json::json!("evstore/attestation/2"),
                "format",
            ),
            ("verdict", serde_json::json!("pass"), "verdict"),
            ("packet", serde_json::json!(3), "packet"),
            (
                "expected_sha256",
                serde_json::json!("AB".repeat(32)),
                "expected_sha256",
            ),
            ("time_unix_nanos", serde_json::json!(-1), "time_unix_nanos"),
            ("command", serde_json::json!(["sh", 1]), "command"),
            (
                "runs",
                serde_json::json!([{"observed_sha256": "x"}]),
                "observed_sha256",
            ),
        ];
        for (key, bad, named) in cases {
            let mut value = minimal_attestation();
            value[key] = bad;
            let err = decode_summary(value.to_string().as_bytes())
                .expect_err("a malformed attestation is refused");
            assert!(err.contains(named), "{key}: {err}");
        }
        let err = decode_summary(b"{not json").expect_err("not JSON");
        assert!(err.starts_with("not JSON"), "{err}");
    }
}
