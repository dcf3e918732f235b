//! What a comparison found: the [`GateReport`] (every path's [`FileResult`], the counts, the
//! verdict, notes, and `--expect` checks) and its one-line verdict.
//!
//! **Architecture Invariant:** a report is counted and its verdict decided in one place
//! (`GateReport::recount`), from the per-file results, the two tree hashes and the `--expect`
//! checks: PASS only when all three agree; a failing result added later never leaves a PASS.

use std::collections::BTreeMap;

use serde::Serialize;

use super::drift::{DriftClass, FirstDifference};
use super::side::{Side, SideFile, SideSummary};
use super::signature::SignatureCheck;
use crate::digest::Sha256Digest;

/// The result for one path.
#[derive(Clone, Debug, Serialize)]
pub struct FileResult {
    /// The packet path.
    pub path: String,
    /// `ok` or `fail`.
    pub status: &'static str,
    /// Why it fails; empty when it is ok.
    pub classes: Vec<DriftClass>,
    /// What the expected side lists, if it lists this path.
    pub expected: Option<SideFile>,
    /// What the observed side holds, if it holds a regular file at this path.
    pub observed: Option<SideFile>,
    /// What the observed side holds at this path when it is not a regular file (`symbolic link`,
    /// `FIFO`, `folder`, ...): such an entry is never followed or read, so it has no hash.
    pub observed_kind: Option<&'static str>,
    /// Where the bytes first differ, when both sides' bytes could be read.
    pub first_difference: Option<FirstDifference>,
    /// A sentence of context (what a non-regular entry is, why diagnosis was limited).
    pub note: Option<String>,
}

impl FileResult {
    /// A failing result for a path that neither side's bytes describe (a seal, a references
    /// file), with its classes and a sentence saying why.
    pub fn failure(path: &str, classes: Vec<DriftClass>, note: String) -> FileResult {
        FileResult {
            path: path.to_string(),
            status: "fail",
            classes,
            expected: None,
            observed: None,
            observed_kind: None,
            first_difference: None,
            note: Some(note),
        }
    }

    /// True if this path passed.
    pub fn is_ok(&self) -> bool {
        self.classes.is_empty()
    }
}

/// Counts over a report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Paths compared (the union of both sides).
    pub files: u64,
    /// Paths that match.
    pub ok: u64,
    /// Paths that fail.
    pub failed: u64,
    /// Failing paths per class (a path with two classes counts in both).
    pub classes: BTreeMap<DriftClass, u64>,
}

/// The verdict: PASS only when nothing differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Every byte and bit matches.
    #[serde(rename = "PASS")]
    Pass,
    /// Something differs.
    #[serde(rename = "FAIL")]
    Fail,
}

/// The full result of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct GateReport {
    /// PASS or FAIL.
    pub verdict: Verdict,
    /// The side that says what should be there.
    pub expected: SideSummary,
    /// The side that was found.
    pub observed: SideSummary,
    /// Counts.
    pub counts: Counts,
    /// Every path, in path-byte order.
    pub files: Vec<FileResult>,
    /// Folders whose subtrees were equal by tree id and not descended into (packet diffs).
    pub subtrees_skipped: Vec<String>,
    /// Remarks that do not change the verdict.
    pub notes: Vec<String>,
    /// `--expect` / `--expect-not` checks of the observed packet_tree_sha256 (absent if none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expectations: Vec<Expectation>,
    /// `--signed-by`: the check of the seal's signature (absent if none was asked for). Only a
    /// valid one lets the verdict be PASS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureCheck>,
}

/// How `--expect` (`equal`) or `--expect-not` (`differ`) relates a packet_tree_sha256 to a SHA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// `--expect SHA`: must be SHA.
    Equal,
    /// `--expect-not SHA`: must not be SHA.
    Differ,
}

/// One `--expect` / `--expect-not` check of a packet_tree_sha256, and whether it held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// `equal` or `differ`.
    pub relation: Relation,
    /// The SHA given on the command line.
    pub sha256: Sha256Digest,
    /// The packet_tree_sha256 found; `None` for a folder that holds entries that are not
    /// regular files (it has no tree hash, so no expectation about it holds).
    pub actual: Option<Sha256Digest>,
    /// True if the relation holds.
    pub holds: bool,
}

impl Expectation {
    /// Check `actual` against `sha256`.
    pub fn check(
        relation: Relation,
        sha256: Sha256Digest,
        actual: Option<Sha256Digest>,
    ) -> Expectation {
        // Fail closed: without a tree hash neither relation holds.
        let holds = actual.is_some_and(|actual| match relation {
            Relation::Equal => sha256 == actual,
            Relation::Differ => sha256 != actual,
        });
        Expectation {
            relation,
            sha256,
            actual,
            holds,
        }
    }

    /// One sentence: what was expected and what was found.
    pub fn describe(&self) -> String {
        let Some(actual) = self.actual else {
            return format!(
                "no packet_tree_sha256 (the folder holds entries that are not regular files), so \
                 {} {} cannot hold",
                match self.relation {
                    Relation::Equal => "--expect",
                    Relation::Differ => "--expect-not",
                },
                self.sha256
            );
        };
        match (self.relation, self.holds) {
            (Relation::Equal, true) => {
                format!(
                    "packet_tree_sha256 is {}, as --expect requires",
                    self.sha256
                )
            }
            (Relation::Equal, false) => format!(
                "packet_tree_sha256 is {}, not {} as --expect requires",
                actual, self.sha256
            ),
            (Relation::Differ, true) => format!(
                "packet_tree_sha256 is {}, which differs from {} as --expect-not requires",
                actual, self.sha256
            ),
            (Relation::Differ, false) => format!(
                "packet_tree_sha256 is still {}, which --expect-not forbids",
                self.sha256
            ),
        }
    }
}

impl GateReport {
    /// Check the observed packet_tree_sha256 against `--expect` / `--expect-not`; any that does
    /// not hold makes the verdict FAIL.
    pub fn with_expectations(mut self, wanted: &[(Relation, Sha256Digest)]) -> GateReport {
        let actual = self.observed.packet_tree_sha256;
        self.expectations = wanted
            .iter()
            .map(|&(relation, sha256)| Expectation::check(relation, sha256, actual))
            .collect();
        if self.expectations.iter().any(|e| !e.holds) {
            self.verdict = Verdict::Fail;
        }
        self
    }

    /// The one-line verdict, such as `FAIL: 3 of 21 files differ (crlf: 1, missing: 2)`. It
    /// counts the packet's files only: a failing file outside the compared sides (a folder's own
    /// seal, a KB packet folder's references file) is named after the count, never counted as a
    /// file of the packet.
    pub fn verdict_line(&self) -> String {
        let packet = self.packet_counts();
        let matches = |n: u64| if n == 1 { "matches" } else { "match" };
        match self.verdict {
            Verdict::Pass => format!(
                "PASS: {} of {} {} (packet_tree_sha256 {}){}",
                self.counts.ok,
                crate::text::count(self.counts.files, "file"),
                matches(self.counts.ok),
                // A PASS holds no entry that is not a regular file, so this is always set.
                self.observed
                    .packet_tree_sha256
                    .or(self.expected.packet_tree_sha256)
                    .map_or_else(|| "none".to_string(), |sha| sha.to_hex()),
                match &self.signature {
                    Some(check) => format!(
                        "; seal signed by {} ({})",
                        check.principals.join("; "),
                        check.key_fingerprint.as_deref().unwrap_or("?")
                    ),
                    None => String::new(),
                }
            ),
            Verdict::Fail if packet.failed == 0 => {
                let signature = self.signature.as_ref().filter(|check| !check.is_valid());
                let but = if !packet.outside.is_empty() {
                    packet.outside.join(", and ")
                } else if let Some(check) = signature {
                    format!("the seal's signature is {}", check.status.words())
                } else {
                    match self.expectations.iter().find(|e| !e.holds) {
                        Some(failed) => failed.describe(),
                        None => "the packet_tree_sha256 values differ".to_string(),
                    }
                };
                format!(
                    "FAIL: {} of {} {}, but {but}",
                    self.counts.ok,
                    crate::text::count(packet.files, "file"),
                    matches(self.counts.ok),
                )
            }
            Verdict::Fail => {
                let mut classes: Vec<String> = packet
                    .classes
                    .iter()
                    .map(|(class, n)| format!("{class}: {n}"))
                    .collect();
                classes.sort();
                let mut line = format!(
                    "FAIL: {} of {} {} ({})",
                    packet.failed,
                    crate::text::count(packet.files, "file"),
                    if packet.failed == 1 {
                        "differs"
                    } else {
                        "differ"
                    },
                    classes.join(", ")
                );
                if !packet.outside.is_empty() {
                    line.push_str(&format!("; also {}", packet.outside.join(", ")));
                }
                if let Some(check) = &self.signature {
                    line.push_str(&format!(
                        "; the seal's signature is {}",
                        check.status.words()
                    ));
                }
                line
            }
        }
    }

    /// The counts of the packet's own files, for the verdict line: a failing result outside the
    /// compared sides (a folder's own seal, a KB packet folder's references file: neither side
    /// lists it) is left out and described on its own.
    fn packet_counts(&self) -> PacketCounts {
        let outside: Vec<&FileResult> = self
            .files
            .iter()
            .filter(|f| {
                !f.is_ok()
                    && f.expected.is_none()
                    && f.observed.is_none()
                    && f.observed_kind.is_none()
            })
            .collect();
        let mut classes = self.counts.classes.clone();
        for file in &outside {
            for class in &file.classes {
                if let Some(n) = classes.get_mut(class) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        classes.retain(|_, n| *n > 0);
        PacketCounts {
            files: self.counts.files.saturating_sub(outside.len() as u64),
            failed: self.counts.failed.saturating_sub(outside.len() as u64),
            classes,
            outside: outside
                .iter()
                .map(|f| {
                    let classes: Vec<&str> = f.classes.iter().map(|c| c.name()).collect();
                    format!("{} fails ({})", f.path, classes.join(", "))
                })
                .collect(),
        }
    }

    /// The report of a comparison: `files` sorted by path, counted, and the verdict decided.
    pub(super) fn finish(
        expected: &Side,
        observed: &Side,
        files: Vec<FileResult>,
        subtrees_skipped: Vec<String>,
        notes: Vec<String>,
    ) -> GateReport {
        let mut report = GateReport {
            verdict: Verdict::Fail,
            expected: expected.summary(),
            observed: observed.summary(),
            counts: Counts::default(),
            files,
            subtrees_skipped,
            notes,
            expectations: Vec::new(),
            signature: None,
        };
        report.recount();
        if report.counts.failed == 0 && !tree_hashes_match(&report.expected, &report.observed) {
            report
                .notes
                .push("every listed file matches but the packet_tree_sha256 values differ".into());
        }
        report
    }

    /// Sort the results by path, count them, and decide the verdict again. Fail closed: the
    /// verdict comes from the per-file results, independently from the two tree hashes, and from
    /// the `--expect` checks; any one of them failing is a FAIL. The one place a report is
    /// counted.
    fn recount(&mut self) {
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut counts = Counts {
            files: self.files.len() as u64,
            ..Counts::default()
        };
        for file in &self.files {
            if file.is_ok() {
                counts.ok += 1;
            } else {
                counts.failed += 1;
                for class in &file.classes {
                    *counts.classes.entry(*class).or_insert(0) += 1;
                }
            }
        }
        let trees_equal = tree_hashes_match(&self.expected, &self.observed);
        let expectations_hold = self.expectations.iter().all(|e| e.holds);
        let signature_holds = self.signature.as_ref().is_none_or(SignatureCheck::is_valid);
        self.verdict = if counts.failed == 0 && trees_equal && expectations_hold && signature_holds
        {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        self.counts = counts;
    }

    /// Add the check of the seal's signature (`--signed-by`), deciding the verdict again: a
    /// signature that is not valid is a FAIL; a valid one never turns a FAIL into a PASS.
    pub fn with_signature(mut self, check: SignatureCheck) -> GateReport {
        self.signature = Some(check);
        self.recount();
        self
    }

    /// Add results found outside [`compare`](fn@super::compare) (a folder's own seal, problems with a KB
    /// packet folder's references), recounting and deciding the verdict again: never a PASS with
    /// a failing one.
    pub fn with_failures(mut self, extra: Vec<FileResult>) -> GateReport {
        self.files.extend(extra);
        self.recount();
        self
    }
}

/// A report's counts over the packet's own files ([`GateReport::packet_counts`]).
struct PacketCounts {
    files: u64,
    failed: u64,
    classes: BTreeMap<DriftClass, u64>,
    /// Each failing result outside the packet, described: `PATH fails (CLASSES)`.
    outside: Vec<String>,
}

/// True only if both sides have a packet_tree_sha256 and they are equal: a side holding entries
/// that are not regular files has none, so it never matches (fail closed).
fn tree_hashes_match(expected: &SideSummary, observed: &SideSummary) -> bool {
    matches!(
        (expected.packet_tree_sha256, observed.packet_tree_sha256),
        (Some(a), Some(b)) if a == b
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{compare, own_seal_result};
    use crate::progress::Progress;

    /// A folder holding `a.txt` compared with its own canonical seal: a PASS.
    fn passing_report() -> GateReport {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
        let seal_text = format!("{}  a.txt\n", crate::digest::sha256_of(b"a\n"));
        let seal_path = dir.path().join("elsewhere.txt");
        let expected = Side::seal_bytes(&seal_path, seal_text.as_bytes()).unwrap();
        let observed = Side::folder(dir.path(), &Progress::silent()).unwrap();
        compare(None, &expected, &observed).unwrap()
    }

    #[test]
    fn a_failure_added_later_is_counted_and_turns_a_pass_into_a_fail() {
        let report = passing_report();
        assert_eq!(report.verdict, Verdict::Pass);
        assert_eq!((report.counts.files, report.counts.ok), (1, 1));
        let own_seal = own_seal_result(b"canonical\n", b"other\n").expect("they differ");
        let report = report.with_failures(vec![own_seal]);
        assert_eq!(report.verdict, Verdict::Fail);
        assert_eq!(
            (report.counts.files, report.counts.ok, report.counts.failed),
            (2, 1, 1)
        );
        assert_eq!(report.counts.classes.values().sum::<u64>(), 1);
        let paths: Vec<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["HASH_MANIFEST.txt", "a.txt"]);
    }

    #[test]
    fn recounting_never_forgets_a_failed_expectation() {
        let report = passing_report()
            .with_expectations(&[(Relation::Equal, Sha256Digest([0; 32]))])
            .with_failures(Vec::new());
        assert_eq!(report.verdict, Verdict::Fail);
    }

    #[test]
    fn an_own_seal_that_differs_only_invisibly_still_fails() {
        // Every differing pair has a class: never an ok-looking failure.
        let result = own_seal_result(b"a  x\n", b"a  x\r\n").expect("they differ");
        assert!(!result.is_ok());
        assert_eq!(result.status, "fail");
        assert!(own_seal_result(b"same\n", b"same\n").is_none());
    }
}
