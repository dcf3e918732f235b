//! Issue 13: ingest checks a sealed folder through the gate. A folder that drifted from its own
//! `HASH_MANIFEST.txt` is refused with exactly the report `evstore verify DIR` prints (per-file
//! FAIL lines and drift classes, text and `--json`), exit 1, and nothing is stored.

use std::fs;

use serde_json::Value;

use crate::sandbox::*;

/// A sealed packet `p` with one file per kind of drift to come.
fn sealed_packet(sb: &Sandbox) {
    sb.write("p/crlf.txt", "one\ntwo\n");
    sb.write("p/bom.md", "# Title\n");
    sb.write("p/typography.log", "done \u{2014} ok\n");
    sb.write("p/edited.json", "{\"example_only\": true}\n");
    sb.write("p/missing.log", "gone soon\n");
    sb.write("p/kept/same.txt", "unchanged\n");
    let out = sb.run(&["seal", "p"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// Drift every file but one: CRLF, BOM, typography, an edit, a missing file and an extra one.
fn drift(sb: &Sandbox) {
    sb.write("p/crlf.txt", "one\r\ntwo\r\n");
    sb.write("p/bom.md", "\u{feff}# Title\n");
    sb.write("p/typography.log", "done -- ok\n");
    sb.write("p/edited.json", "{\"example_only\": false}\n");
    fs::remove_file(sb.path("p/missing.log")).unwrap();
    sb.write("p/extra.txt", "new\n");
}

fn packet_count(sb: &Sandbox) -> usize {
    let (rc, listed) = sb.json(&["ls"]);
    assert_eq!(rc, 0, "{listed}");
    listed["packets"].as_array().expect("packets").len()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

on_both_backends! {
fn ingest_of_a_drifted_sealed_folder_prints_what_verify_prints_and_stores_nothing() {
    let sb = Sandbox::new();
    sealed_packet(&sb);
    // A store with one packet in it already, so that "nothing stored" is checked on a store
    // that exists.
    sb.write("other/a.txt", "a\n");
    let (rc, ingested) = sb.json(&["ingest", "other"]);
    assert_eq!(rc, 0, "{ingested}");
    drift(&sb);
    let before = sb.store_snapshot();

    let verified = sb.run(&["verify", "p"]);
    assert_eq!(code(&verified), 1, "{}", stderr(&verified));
    let refused = sb.run(&["ingest", "p"]);
    assert_eq!(code(&refused), 1, "{}", stderr(&refused));
    assert_eq!(stdout(&refused), stdout(&verified));
    for line in [
        "FAIL  bom.md  [content]",
        "FAIL  crlf.txt  [content]",
        "FAIL  edited.json  [content]",
        "FAIL  extra.txt  [extra]",
        "FAIL  missing.log  [missing]",
        "FAIL  typography.log  [content]",
        "FAIL: 6 of 7 files differ (content: 4, extra: 1, missing: 1)",
    ] {
        assert!(
            stdout(&refused).lines().any(|l| l == line),
            "no line {line:?} in:\n{}",
            stdout(&refused)
        );
    }
    assert!(!stdout(&refused).contains("kept/same.txt"));
    assert_eq!(
        stderr(&refused).trim_end(),
        "evstore: p/HASH_MANIFEST.txt: the folder does not match its seal, so it is not archived"
    );

    let (verify_rc, verify_json) = sb.json(&["verify", "p"]);
    let (ingest_rc, ingest_json) = sb.json(&["ingest", "p"]);
    assert_eq!((verify_rc, ingest_rc), (1, 1));
    assert_eq!(ingest_json, verify_json);
    assert_eq!(ingest_json["verdict"], "FAIL");
    let classes = |path: &str| -> Vec<Value> {
        ingest_json["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no result for {path}: {ingest_json}"))["classes"]
            .as_array()
            .expect("classes")
            .clone()
    };
    assert_eq!(classes("crlf.txt"), ["content"]);
    assert_eq!(classes("missing.log"), ["missing"]);
    assert_eq!(classes("extra.txt"), ["extra"]);
    assert!(classes("kept/same.txt").is_empty());

    assert_eq!(sb.store_snapshot(), before);
    assert_eq!(packet_count(&sb), 1);
}
}

#[test]
fn a_refused_first_ingest_creates_no_store() {
    let sb = Sandbox::new();
    sealed_packet(&sb);
    drift(&sb);
    let refused = sb.run(&["ingest", "p"]);
    assert_eq!(code(&refused), 1, "{}", stderr(&refused));
    assert!(stdout(&refused).contains("FAIL  crlf.txt  [content]"));
    assert!(!sb.store().exists());
    // No temp store was left beside it either.
    let leftovers: Vec<_> = fs::read_dir(sb.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".evstore-init-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

on_both_backends! {
fn a_sealed_folder_that_matches_its_seal_is_archived_with_the_sealed_tree_hash() {
    let sb = Sandbox::new();
    sealed_packet(&sb);
    let seal = fs::read(sb.path("p/HASH_MANIFEST.txt")).unwrap();
    let sealed = evstore::digest::sha256_of(&seal).to_hex();
    let (rc, ingested) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{ingested}");
    assert_eq!(ingested["packet_tree_sha256"], sealed.as_str());
    assert_eq!(packet_count(&sb), 1);
}
}

on_both_backends! {
fn a_sealed_folder_with_only_a_mode_change_is_archived() {
    // The seal records no executable bit, so the gate (like `verify`) compares none: the folder
    // matches its seal and is archived.
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sealed_packet(&sb);
    fs::set_permissions(sb.path("p/crlf.txt"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code(&sb.run(&["verify", "p"])), 0);
    let (rc, ingested) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{ingested}");
}
}
