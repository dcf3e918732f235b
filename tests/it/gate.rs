//! The seal-vs-bytes gate: `seal`, `verify` and `diff`, every drift class with a negative control,
//! the six seed cases, and every kind of untrusted seal.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::sandbox::*;

/// The sealed files of the drift fixture; every drifted file sits in a nested folder.
const FILES: &[(&str, &str)] = &[
    (
        "report.json",
        "{\"status\": \"PASS \u{2014} rehearsal only\", \"url\": \"a/b\"}\n",
    ),
    (
        "deep/nested/summary.md",
        "# Summary \u{2014} \u{201c}ok\u{201d}\ncaf\u{e9} done\u{2026}\n",
    ),
    (
        "deep/nested/data.json",
        "{\"note\": \"em \u{2014} dash\", \"n\": 100, \"url\": \"x/y\"}\n",
    ),
    ("deep/nested/log.txt", "line one\nline two\n"),
    ("deep/run.sh", "#!/bin/sh\necho ok\n"),
];

/// A packet folder `p`, sealed with `evstore seal`, archived as packet `p`, and a pristine copy
/// `original` of it. Before returning, it checks the negative control: the byte-identical folder
/// passes in every mode.
struct Fixture {
    sb: Sandbox,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let sb = Sandbox::new();
        for (path, text) in FILES {
            sb.write(&format!("p/{path}"), text);
            sb.write(&format!("original/{path}"), text);
        }
        for root in ["p", "original"] {
            let script = sb.path(&format!("{root}/deep/run.sh"));
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let dir = sb.path("p");
        let sealed = sb.run_storeless(&["seal", "p"]);
        assert_eq!(code(&sealed), 0, "{}", stderr(&sealed));
        let (rc, ingested) = sb.json(&["ingest", "p", "--name", "p"]);
        assert_eq!(rc, 0, "{ingested}");
        let fixture = Fixture { sb, dir };
        for mode in fixture.modes() {
            let (rc, report) = fixture.verify(&mode);
            assert_eq!(rc, 0, "negative control {mode:?}: {report}");
            assert_eq!(report["verdict"], "PASS");
            assert_eq!(report["counts"]["failed"], 0);
        }
        fixture
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The three ways to verify the folder: against the packet, against its seal with the
    /// original bytes, against its seal alone.
    fn modes(&self) -> [Vec<&'static str>; 3] {
        [
            vec!["--against", "p"],
            vec!["--original", "original"],
            vec![],
        ]
    }

    fn verify(&self, mode: &[&str]) -> (i32, Value) {
        let mut args = vec!["verify", "p"];
        args.extend_from_slice(mode);
        self.sb.json(&args)
    }

    /// The classes reported for `path`, in each mode.
    fn classes(&self, path: &str) -> Vec<Vec<String>> {
        self.modes()
            .iter()
            .map(|mode| {
                let (rc, report) = self.verify(mode);
                assert_eq!(rc, 1, "{mode:?} must FAIL: {report}");
                assert_eq!(report["verdict"], "FAIL");
                file_result(&report, path)["classes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    }

    /// Assert the classes with the sealed bytes available (packet, --original) and with a seal
    /// alone.
    fn assert_drift(&self, path: &str, with_bytes: &[&str], seal_only: &[&str]) {
        let got = self.classes(path);
        assert_eq!(got[0], with_bytes, "against the packet");
        assert_eq!(got[1], with_bytes, "against the seal with --original");
        assert_eq!(got[2], seal_only, "against the seal alone");
        // The human output ends with the verdict line naming the classes.
        let out = self.sb.run(&["verify", "p", "--against", "p"]);
        assert_eq!(code(&out), 1);
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap();
        assert!(last.starts_with("FAIL: 1 of "), "{text}");
        for class in with_bytes {
            assert!(last.contains(&format!("{class}: 1")), "{last}");
        }
    }

    fn edit(&self, path: &str, text: impl AsRef<[u8]>) {
        fs::write(self.path(path), text).unwrap();
    }

    fn sealed_text(path: &str) -> &'static str {
        FILES.iter().find(|(p, _)| *p == path).unwrap().1
    }
}

fn file_result<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no result for {path}: {report}"))
}

const LOG: &str = "deep/nested/log.txt";
const DATA: &str = "deep/nested/data.json";
const SUMMARY: &str = "deep/nested/summary.md";

#[test]
fn class_crlf() {
    let f = Fixture::new();
    f.edit(LOG, "line one\r\nline two\r\n");
    f.assert_drift(LOG, &["crlf"], &["content"]);
}

#[test]
fn class_bom() {
    let f = Fixture::new();
    f.edit(LOG, format!("\u{feff}{}", Fixture::sealed_text(LOG)));
    f.assert_drift(LOG, &["bom"], &["content"]);
}

#[test]
fn class_trailing_newline() {
    let f = Fixture::new();
    f.edit(LOG, "line one\nline two");
    f.assert_drift(LOG, &["trailing_newline"], &["content"]);
}

#[test]
fn class_trailing_whitespace() {
    let f = Fixture::new();
    f.edit(LOG, "line one  \nline two\t\n");
    f.assert_drift(LOG, &["trailing_whitespace"], &["content"]);
}

#[test]
fn class_unicode_normalization() {
    let f = Fixture::new();
    let decomposed = Fixture::sealed_text(SUMMARY).replace('\u{e9}', "e\u{301}");
    f.edit(SUMMARY, decomposed);
    f.assert_drift(SUMMARY, &["unicode_normalization"], &["content"]);
}

#[test]
fn class_typography() {
    let f = Fixture::new();
    let ascii = Fixture::sealed_text(SUMMARY)
        .replace(['\u{201c}', '\u{201d}'], "\"")
        .replace('\u{2026}', "...");
    f.edit(SUMMARY, ascii);
    f.assert_drift(SUMMARY, &["typography"], &["content"]);
}

#[test]
fn class_json_escape() {
    let f = Fixture::new();
    f.edit(
        DATA,
        "{\"note\": \"em \\u2014 dash\", \"n\": 100, \"url\": \"x\\/y\"}\n",
    );
    f.assert_drift(DATA, &["json_escape"], &["content"]);
}

#[test]
fn class_json_format() {
    let f = Fixture::new();
    f.edit(
        DATA,
        "{\n  \"url\": \"x/y\",\n  \"n\": 1e2,\n  \"note\": \"em \u{2014} dash\"\n}\n",
    );
    f.assert_drift(DATA, &["json_format"], &["content"]);
}

#[test]
fn class_truncated() {
    let f = Fixture::new();
    f.edit(LOG, "line one\nli");
    f.assert_drift(LOG, &["truncated"], &["content"]);
    let (_, report) = f.verify(&["--against", "p"]);
    assert_eq!(file_result(&report, LOG)["first_difference"]["offset"], 11);
}

#[test]
fn class_content_gives_offset_and_excerpts() {
    let f = Fixture::new();
    f.edit(LOG, "line one\nline 2\n");
    f.assert_drift(LOG, &["content"], &["content"]);
    let (_, report) = f.verify(&["--against", "p"]);
    let diff = &file_result(&report, LOG)["first_difference"];
    assert_eq!(diff["offset"], 14);
    assert_eq!(diff["excerpt_offset"], 6);
    assert_eq!(diff["expected_text"], "ne\\nline two\\n");
    assert_eq!(diff["observed_text"], "ne\\nline 2\\n");
    assert_eq!(diff["expected_hex"], hex(b"ne\nline two\n"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn class_missing() {
    let f = Fixture::new();
    fs::remove_file(f.path(LOG)).unwrap();
    f.assert_drift(LOG, &["missing"], &["missing"]);
}

#[test]
fn class_extra_in_a_subfolder_which_sha256sum_c_does_not_see() {
    let f = Fixture::new();
    f.sb.write("p/deep/nested/new.txt", "added later\n");
    f.assert_drift("deep/nested/new.txt", &["extra"], &["extra"]);
    // The gap this closes: sha256sum -c passes on the same folder.
    let check = Command::new("sha256sum")
        .args(["-c", "--strict", "HASH_MANIFEST.txt"])
        .current_dir(&f.dir)
        .output()
        .unwrap();
    assert!(check.status.success());
}

#[test]
fn class_type_for_a_folder_and_a_symlink() {
    let f = Fixture::new();
    fs::remove_file(f.path(LOG)).unwrap();
    f.sb.write("p/deep/nested/log.txt/inner", "now a folder\n");
    let got = f.classes(LOG);
    assert!(got.iter().all(|c| c == &["type"]), "{got:?}");
    let got = f.classes("deep/nested/log.txt/inner");
    assert!(got.iter().all(|c| c == &["extra"]), "{got:?}");

    let f = Fixture::new();
    fs::remove_file(f.path(LOG)).unwrap();
    symlink("summary.md", f.path(LOG)).unwrap();
    let (rc, report) = f.verify(&["--against", "p"]);
    assert_eq!(rc, 1);
    let result = file_result(&report, LOG);
    assert_eq!(result["classes"][0], "type");
    assert!(result["note"].as_str().unwrap().contains("symbolic link"));
    // An unsealed symlink is extra.
    let f = Fixture::new();
    symlink("log.txt", f.path("deep/nested/link")).unwrap();
    let got = f.classes("deep/nested/link");
    assert!(got.iter().all(|c| c == &["extra"]), "{got:?}");
}

on_both_backends! {
fn class_mode_is_checked_against_a_packet() {
    let f = Fixture::new();
    let script = f.path("deep/run.sh");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let (rc, report) = f.verify(&["--against", "p"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(file_result(&report, "deep/run.sh")["classes"][0], "mode");
    // The tree hash is the same: only the bit differs. A seal does not record executable bits,
    // so a seal alone cannot see this (documented in docs/VERIFY.md).
    assert_eq!(
        report["expected"]["packet_tree_sha256"],
        report["observed"]["packet_tree_sha256"]
    );
    let (rc, _) = f.verify(&[]);
    assert_eq!(rc, 0);
}
}

#[test]
fn classes_combine_bom_and_crlf() {
    let f = Fixture::new();
    f.edit(LOG, "\u{feff}line one\r\nline two\r\n");
    f.assert_drift(LOG, &["crlf", "bom"], &["content"]);
}

#[test]
fn every_failure_is_reported_not_just_the_first() {
    let f = Fixture::new();
    f.edit(LOG, "line one\r\nline two\r\n");
    f.edit(
        DATA,
        "{\"note\": \"em \\u2014 dash\", \"n\": 100, \"url\": \"x/y\"}\n",
    );
    fs::remove_file(f.path("report.json")).unwrap();
    let out = f.sb.run(&["verify", "p", "--against", "p"]);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().last().unwrap(),
        "FAIL: 3 of 5 files differ (crlf: 1, json_escape: 1, missing: 1)"
    );
    let (_, report) = f.verify(&["--against", "p"]);
    assert_eq!(report["counts"]["files"], 5);
    assert_eq!(report["counts"]["ok"], 2);
    assert_eq!(report["counts"]["failed"], 3);
    assert_eq!(report["files"].as_array().unwrap().len(), 5);
    assert_ne!(
        report["expected"]["packet_tree_sha256"],
        report["observed"]["packet_tree_sha256"]
    );
}

// The six fail-closed cases of the seed report's CI seal-vs-bytes gate self-test.

#[test]
fn seed_edited_content() {
    let f = Fixture::new();
    f.edit(
        "report.json",
        "{\"status\": \"FAIL \u{2014} rehearsal only\", \"url\": \"a/b\"}\n",
    );
    f.assert_drift("report.json", &["content"], &["content"]);
}

#[test]
fn seed_emdash_unicode_drift() {
    let f = Fixture::new();
    f.edit(
        "report.json",
        "{\"status\": \"PASS - rehearsal only\", \"url\": \"a/b\"}\n",
    );
    f.assert_drift("report.json", &["typography"], &["content"]);
}

#[test]
fn seed_json_ensure_ascii_drift() {
    let f = Fixture::new();
    // What Python's json.dumps writes by default (ensure_ascii=True).
    f.edit(
        "report.json",
        "{\"status\": \"PASS \\u2014 rehearsal only\", \"url\": \"a/b\"}\n",
    );
    f.assert_drift("report.json", &["json_escape"], &["content"]);
}

#[test]
fn seed_bom_prefix() {
    let f = Fixture::new();
    f.edit(
        "report.json",
        format!("\u{feff}{}", Fixture::sealed_text("report.json")),
    );
    f.assert_drift("report.json", &["bom"], &["content"]);
}

#[test]
fn seed_crlf_drift() {
    let f = Fixture::new();
    f.edit(
        "report.json",
        Fixture::sealed_text("report.json").replace('\n', "\r\n"),
    );
    f.assert_drift("report.json", &["crlf"], &["content"]);
}

#[test]
fn seed_missing_file() {
    let f = Fixture::new();
    fs::remove_file(f.path("report.json")).unwrap();
    f.assert_drift("report.json", &["missing"], &["missing"]);
}

// Untrusted seals: each is an error (exit 2) that names the line, never read leniently.

const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn assert_untrusted(seal: &[u8], line: usize, reason: &str) {
    let sb = Sandbox::new();
    sb.write("p/a", "a\n");
    sb.write("p/b", "b\n");
    sb.write("p/HASH_MANIFEST.txt", seal);
    sb.write("seal.txt", seal);
    for args in [
        vec!["verify", "p"],
        vec!["verify", "p", "--seal", "seal.txt"],
    ] {
        let out = sb.run_storeless(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("line {line}:")), "{err}");
        assert!(err.contains(reason), "{err}");
        assert!(out.stdout.is_empty());
    }
    // With --json the error is one JSON document.
    let (rc, value) = sb.json(&["verify", "p"]);
    assert_eq!(rc, 2);
    assert_eq!(value["error"]["class"], "operational");
}

/// A manifest `sha256sum -c` accepts but that is not canonical: refused as DIR's own seal (exit
/// 2, saying how to make a canonical one), read as a coreutils manifest with `--seal` (these
/// seals list made-up digests, so that is a FAIL, exit 1, never a pass).
fn assert_untrusted_only_as_own_seal(seal: &[u8], line: usize, reason: &str) {
    let sb = Sandbox::new();
    sb.write("p/a", "a\n");
    sb.write("p/b", "b\n");
    sb.write("p/HASH_MANIFEST.txt", seal);
    sb.write("seal.txt", seal);
    let out = sb.run_storeless(&["verify", "p"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("line {line}:")), "{err}");
    assert!(err.contains(reason), "{err}");
    assert!(err.contains("evstore seal p --force"), "{err}");
    let (rc, report) = sb.json(&["verify", "p", "--seal", "seal.txt"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["verdict"], "FAIL");
    assert_eq!(report["expected"]["seal"]["canonical"], false);
}

#[test]
fn untrusted_seal_malformed_line() {
    assert_untrusted(
        format!("{H1}  a\n{H2} b\n").as_bytes(),
        2,
        "not of the form",
    );
}

#[test]
fn untrusted_seal_uppercase_digest() {
    let upper = "A".repeat(64);
    assert_untrusted_only_as_own_seal(
        format!("{H1}  a\n{upper}  b\n").as_bytes(),
        2,
        "64 lowercase hex",
    );
}

#[test]
fn untrusted_seal_short_digest() {
    assert_untrusted(
        format!("{}  a\n", &H1[..63]).as_bytes(),
        1,
        "not of the form",
    );
}

#[test]
fn untrusted_seal_duplicate_path() {
    assert_untrusted(
        format!("{H1}  a\n{H2}  a\n").as_bytes(),
        2,
        "duplicate path",
    );
}

#[test]
fn untrusted_seal_out_of_order() {
    assert_untrusted_only_as_own_seal(
        format!("{H1}  b\n{H2}  a\n").as_bytes(),
        2,
        "out of canonical order",
    );
}

#[test]
fn untrusted_seal_absolute_path() {
    assert_untrusted(
        format!("{H1}  a\n{H2}  /etc/passwd\n").as_bytes(),
        2,
        "absolute path",
    );
}

#[test]
fn untrusted_seal_dot_dot_component() {
    assert_untrusted(format!("{H1}  ../a\n").as_bytes(), 1, "\"..\"");
}

#[test]
fn untrusted_seal_dot_component() {
    assert_untrusted(format!("{H1}  a\n{H2}  b/./c\n").as_bytes(), 2, "\".\"");
}

#[test]
fn untrusted_seal_empty_path() {
    assert_untrusted(
        format!("{H1}  a\n{H2}  \n").as_bytes(),
        2,
        "not of the form",
    );
}

#[test]
fn untrusted_seal_crlf_line_endings() {
    assert_untrusted_only_as_own_seal(
        format!("{H1}  a\r\n{H2}  b\r\n").as_bytes(),
        1,
        "CR line ending",
    );
}

#[test]
fn untrusted_seal_bom() {
    assert_untrusted(
        format!("\u{feff}{H1}  a\n{H2}  b\n").as_bytes(),
        1,
        "byte-order mark",
    );
}

#[test]
fn untrusted_seal_nul_byte_and_missing_final_newline() {
    assert_untrusted(format!("{H1}  a\0b\n").as_bytes(), 1, "control character");
    assert_untrusted_only_as_own_seal(format!("{H1}  a\n{H2}  b").as_bytes(), 2, "newline");
}

// seal

#[test]
fn seal_writes_the_canonical_text_and_needs_no_store() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "packet");
    let out = sb.run_storeless(&["seal", "packet"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        !sb.path(".evstore").exists(),
        "seal must not create a store"
    );
    let check = Command::new("sha256sum")
        .args(["-c", "--strict", "HASH_MANIFEST.txt"])
        .current_dir(&packet)
        .output()
        .unwrap();
    assert!(check.status.success());
    let seal = fs::read(packet.join("HASH_MANIFEST.txt")).unwrap();
    assert_eq!(
        evstore::digest::sha256_of(&seal).to_hex(),
        coreutils_tree_sha256(&packet)
    );
    // verify with the folder's own seal needs no store either.
    let out = sb.run_storeless(&["verify", "packet"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!sb.path(".evstore").exists());
}

#[test]
fn seal_again_is_a_no_op_and_a_different_seal_is_refused_unless_forced() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "packet");
    let (rc, first) = sb.json(&["seal", "packet"]);
    assert_eq!((rc, first["action"].as_str()), (0, Some("written")));
    let seal_path = packet.join("HASH_MANIFEST.txt");
    let before = fs::read(&seal_path).unwrap();
    let (rc, again) = sb.json(&["seal", "packet"]);
    assert_eq!((rc, again["action"].as_str()), (0, Some("unchanged")));
    sb.write("packet/logs/run.log", "step 1 FAILED\n");
    let out = sb.run(&["seal", "packet"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("already holds a different seal"));
    assert_eq!(
        fs::read(&seal_path).unwrap(),
        before,
        "refused seal unchanged"
    );
    let (rc, forced) = sb.json(&["seal", "packet", "--force"]);
    assert_eq!((rc, forced["action"].as_str()), (0, Some("replaced")));
    assert_eq!(forced["packet_tree_sha256"], coreutils_tree_sha256(&packet));
    // No temp file is left behind.
    let names: Vec<_> = fs::read_dir(&packet)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn seal_refuses_what_a_packet_cannot_hold() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "packet");
    symlink("report.json", packet.join("link")).unwrap();
    let out = sb.run(&["seal", "packet"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert!(!packet.join("HASH_MANIFEST.txt").exists());
}

/// Regression: a seal file given as a symlink was refused with the bare `open` error ("Too many
/// levels of symbolic links"), which did not say what to do.
#[test]
fn verify_seal_symlink_is_refused_naming_the_link_and_the_fix() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "packet");
    assert_eq!(code(&sb.run_storeless(&["seal", "packet"])), 0);
    fs::rename(packet.join("HASH_MANIFEST.txt"), sb.path("seal.txt")).unwrap();
    symlink("seal.txt", sb.path("seal-link.txt")).unwrap();
    let out = sb.run_storeless(&["verify", "packet", "--seal", "seal-link.txt"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("seal-link.txt"), "{err}");
    assert!(
        err.contains("is a symbolic link") && err.contains("pass the target"),
        "{err}"
    );
    // The target itself is accepted: the folder matches it.
    let out = sb.run_storeless(&["verify", "packet", "--seal", "seal.txt"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn verify_without_a_seal_says_how_to_make_one() {
    let sb = Sandbox::new();
    write_packet(&sb, "packet");
    let out = sb.run_storeless(&["verify", "packet"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("evstore seal"), "{}", stderr(&out));
}

on_both_backends! {
fn verify_against_a_packet_checks_the_folders_own_seal_too() {
    let f = Fixture::new();
    // Every packet file is intact, but the folder's seal was edited.
    let seal = f.path("HASH_MANIFEST.txt");
    let text = fs::read_to_string(&seal).unwrap();
    fs::write(&seal, text.replace('\n', "\r\n")).unwrap();
    let (rc, report) = f.verify(&["--against", "p"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(
        file_result(&report, "HASH_MANIFEST.txt")["classes"][0],
        "crlf"
    );
}
}

// diff

on_both_backends! {
fn diff_between_folders_seals_and_packets() {
    let f = Fixture::new();
    let sb = &f.sb;
    // Identical: folder vs packet, packet vs folder, seal vs folder, folder vs folder.
    for (a, b) in [
        ("packet:p", "p"),
        ("p", "packet:p"),
        ("p/HASH_MANIFEST.txt", "p"),
        ("original", "p"),
        ("packet:p", "p/HASH_MANIFEST.txt"),
    ] {
        let (rc, report) = sb.json(&["diff", a, b]);
        assert_eq!(rc, 0, "diff {a} {b}: {report}");
    }
    f.edit(LOG, "line one\r\nline two\r\n");
    let (rc, report) = sb.json(&["diff", "original", "p"]);
    assert_eq!(rc, 1);
    assert_eq!(file_result(&report, LOG)["classes"][0], "crlf");
    let (rc, report) = sb.json(&["diff", "p", "original"]);
    assert_eq!(rc, 1);
    assert_eq!(file_result(&report, LOG)["classes"][0], "crlf");
    // A seal alone has no bytes, unless --original gives them.
    let (rc, report) = sb.json(&["diff", "seal:p/HASH_MANIFEST.txt", "folder:p"]);
    assert_eq!(rc, 1);
    assert_eq!(file_result(&report, LOG)["classes"][0], "content");
    let (rc, report) = sb.json(&[
        "diff",
        "seal:p/HASH_MANIFEST.txt",
        "folder:p",
        "--original",
        "original",
    ]);
    assert_eq!(rc, 1);
    assert_eq!(file_result(&report, LOG)["classes"][0], "crlf");
}
}

on_both_backends! {
fn diff_between_packets_skips_equal_subtrees() {
    let f = Fixture::new();
    let sb = &f.sb;
    f.edit("report.json", "{\"status\": \"PASS\"}\n");
    fs::remove_file(f.path("HASH_MANIFEST.txt")).unwrap();
    let (rc, second) = sb.json(&["ingest", "p", "--name", "q"]);
    assert_eq!(rc, 0, "{second}");
    let (rc, report) = sb.json(&["diff", "packet:p", "packet:q"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["subtrees_skipped"], serde_json::json!(["deep"]));
    assert_eq!(report["counts"]["files"], 5);
    assert_eq!(report["counts"]["failed"], 1);
    assert_eq!(file_result(&report, "report.json")["classes"][0], "content");
    assert_eq!(file_result(&report, LOG)["status"], "ok");
    let (rc, same) = sb.json(&["diff", "packet:p", "packet:p@1"]);
    assert_eq!(rc, 0);
    assert_eq!(same["subtrees_skipped"], serde_json::json!([""]));
    assert_eq!(same["counts"]["ok"], 5);
}
}

#[test]
fn verify_json_shape() {
    let f = Fixture::new();
    f.edit(LOG, "line one\r\nline two\r\n");
    let (rc, report) = f.verify(&["--against", "p"]);
    assert_eq!(rc, 1);
    for key in [
        "verdict",
        "expected",
        "observed",
        "counts",
        "files",
        "subtrees_skipped",
        "notes",
    ] {
        assert!(report.get(key).is_some(), "missing {key}: {report}");
    }
    assert_eq!(report["expected"]["kind"], "packet");
    assert_eq!(report["expected"]["label"], "p@1");
    assert_eq!(report["observed"]["kind"], "folder");
    assert_eq!(report["counts"]["classes"]["crlf"], 1);
    let log = file_result(&report, LOG);
    assert_eq!(log["status"], "fail");
    assert_eq!(log["expected"]["size"], 18);
    assert_eq!(log["observed"]["size"], 20);
    assert_eq!(log["expected"]["executable"], false);
    assert!(log["expected"]["sha256"].as_str().unwrap().len() == 64);
    let ok = file_result(&report, "report.json");
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["classes"], serde_json::json!([]));
}

#[test]
fn a_usage_error_with_json_is_one_json_document() {
    let sb = Sandbox::new();
    let (rc, value) = sb.json(&["verify", "p", "--no-such-flag"]);
    assert_eq!(rc, 2);
    assert_eq!(value["error"]["class"], "operational");
    assert!(value["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--no-such-flag"));
}

on_both_backends! {
/// Against a stored packet the folder is checked with BLAKE3; a file whose BLAKE3 differs must
/// still get its own SHA-256 (not the packet's) and the observed tree hash must be the folder's.
fn against_a_packet_a_same_size_edit_gets_its_own_sha256() {
    use sha2::Digest as _;
    let f = Fixture::new();
    let edited = "line one\nline TWO\n";
    f.edit(LOG, edited);
    let (rc, report) = f.verify(&["--against", "p"]);
    assert_eq!(rc, 1, "{report}");
    let result = file_result(&report, LOG);
    assert_eq!(result["classes"], serde_json::json!(["content"]));
    assert_eq!(
        result["observed"]["sha256"],
        hex(&sha2::Sha256::digest(edited.as_bytes()))
    );
    assert_ne!(result["observed"]["sha256"], result["expected"]["sha256"]);
    let (_, by_seal_alone) = f.verify(&[]);
    assert!(
        report["observed"]["packet_tree_sha256"].is_string(),
        "{report}"
    );
    assert_eq!(
        report["observed"]["packet_tree_sha256"],
        by_seal_alone["observed"]["packet_tree_sha256"]
    );
    assert_ne!(
        report["observed"]["packet_tree_sha256"],
        report["expected"]["packet_tree_sha256"]
    );
}
}
