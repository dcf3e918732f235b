//! Issue 12 items 9 and 10 and the scripting rough edge: the seed's Python JSON drift is named
//! `json_escape`, every drift class combined with `trailing_newline`, manifests written by
//! coreutils checked with `verify --seal`, and `hash`/`verify` expectations for scripts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::sandbox::*;

/// The seed's `json_ensure_ascii_drift`, exactly as issue 12 gives it.
const PYTHON_ENSURE_ASCII: &str = "import json;p='r.json';o=json.load(open(p));\
                                   json.dump(o,open(p,'w'),ensure_ascii=True,indent=2)";

fn python_rewrite(dir: &Path) {
    let out = Command::new("python3")
        .args(["-c", PYTHON_ENSURE_ASCII])
        .current_dir(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn classes_of(report: &Value, path: &str) -> Vec<String> {
    let file = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no result for {path}: {report}"));
    file["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| c.as_str().expect("class name").to_string())
        .collect()
}

/// A sealed, archived packet `p` and a pristine copy `original`.
fn sealed_packet(sb: &Sandbox, files: &[(&str, &str)]) {
    for (path, text) in files {
        sb.write(&format!("p/{path}"), text);
        sb.write(&format!("original/{path}"), text);
    }
    let sealed = sb.run_storeless(&["seal", "p"]);
    assert_eq!(code(&sealed), 0, "{}", stderr(&sealed));
    let (rc, ingested) = sb.json(&["ingest", "p", "--name", "p"]);
    assert_eq!(rc, 0, "{ingested}");
    let (rc, report) = sb.json(&["verify", "p", "--against", "p"]);
    assert_eq!(rc, 0, "negative control: {report}");
}

// Item 9.

#[test]
fn regression_seed_json_ensure_ascii_drift_is_named_json_escape_not_json_format() {
    let sb = Sandbox::new();
    let pretty =
        "{\n  \"doc\": \"rehearsal \u{2014} only\",\n  \"status\": \"PASS \u{2014} ok\"\n}\n";
    let compact = "{\"doc\": \"rehearsal \u{2014} only\", \"status\": \"PASS \u{2014} ok\"}\n";
    sealed_packet(&sb, &[("r.json", pretty), ("c/r.json", compact)]);
    python_rewrite(&sb.path("p"));
    python_rewrite(&sb.path("p/c"));
    for mode in [
        vec!["verify", "p", "--against", "p"],
        vec!["verify", "p", "--original", "original"],
    ] {
        let (rc, report) = sb.json(&mode);
        assert_eq!(rc, 1, "{mode:?}: {report}");
        assert_eq!(report["verdict"], "FAIL");
        // Python escaped the em dashes and dropped the final newline.
        assert_eq!(
            classes_of(&report, "r.json"),
            ["trailing_newline", "json_escape"],
            "{mode:?}"
        );
        // Over a compact file it also changed the layout.
        assert_eq!(
            classes_of(&report, "c/r.json"),
            ["trailing_newline", "json_escape", "json_format"],
            "{mode:?}"
        );
    }
    let out = sb.run(&["verify", "p", "--against", "p"]);
    assert_eq!(code(&out), 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL  r.json  [trailing_newline, json_escape]"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.contains("json_escape: 2")),
        "{text}"
    );
}

#[test]
fn regression_every_drift_class_combined_with_trailing_newline_is_named() {
    let sb = Sandbox::new();
    let files: &[(&str, &str)] = &[
        ("crlf.txt", "line one\nline two\n"),
        ("bom.txt", "line one\nline two\n"),
        ("ws.txt", "line one\nline two\n"),
        ("nfc.md", "caf\u{e9} done\n"),
        ("typo.md", "PASS \u{2014} \u{201c}ok\u{201d}\n"),
        ("escape.json", "{\"note\": \"em \u{2014} dash\"}\n"),
        ("format.json", "{\"n\": 100, \"a\": [1, 2]}\n"),
        ("cut.log", "line one\nline two\n"),
        ("edit.txt", "status: PASS\n"),
        ("run.sh", "#!/bin/sh\necho ok\n"),
    ];
    for root in ["p", "original"] {
        sb.write(&format!("{root}/run.sh"), "#!/bin/sh\necho ok\n");
        let script = sb.path(&format!("{root}/run.sh"));
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    }
    sealed_packet(&sb, files);
    let drifted: &[(&str, &str, &[&str])] = &[
        (
            "crlf.txt",
            "line one\r\nline two",
            &["crlf", "trailing_newline"],
        ),
        (
            "bom.txt",
            "\u{feff}line one\nline two",
            &["bom", "trailing_newline"],
        ),
        (
            "ws.txt",
            "line one  \nline two\t",
            &["trailing_newline", "trailing_whitespace"],
        ),
        (
            "nfc.md",
            "cafe\u{301} done",
            &["trailing_newline", "unicode_normalization"],
        ),
        (
            "typo.md",
            "PASS - \"ok\"",
            &["trailing_newline", "typography"],
        ),
        (
            "escape.json",
            "{\"note\": \"em \\u2014 dash\"}",
            &["trailing_newline", "json_escape"],
        ),
        (
            "format.json",
            "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"n\": 1e2\n}",
            &["trailing_newline", "json_format"],
        ),
        (
            "cut.log",
            "line one\nli\n",
            &["trailing_newline", "truncated"],
        ),
        ("edit.txt", "status: FAIL", &["content"]),
        (
            "run.sh",
            "#!/bin/sh\necho ok",
            &["mode", "trailing_newline"],
        ),
    ];
    for (path, text, _) in drifted {
        sb.write(&format!("p/{path}"), text);
    }
    fs::set_permissions(sb.path("p/run.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    let (rc, report) = sb.json(&["verify", "p", "--against", "p"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["counts"]["failed"], drifted.len());
    for (path, _, expected) in drifted {
        assert_eq!(&classes_of(&report, path), expected, "{path}");
    }
    // With the sealed bytes from a copy (a seal records no executable bit, so run.sh is only
    // trailing_newline there).
    let (rc, report) = sb.json(&["verify", "p", "--original", "original"]);
    assert_eq!(rc, 1, "{report}");
    for (path, _, expected) in drifted {
        let expected: Vec<&str> = expected.iter().copied().filter(|c| *c != "mode").collect();
        assert_eq!(classes_of(&report, path), expected, "{path}");
    }
}
