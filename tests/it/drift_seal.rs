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

// Item 10.

/// Run a shell pipeline inside `dir`; it must succeed.
fn sh(dir: &Path, script: &str) {
    let out = Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A packet `p` with nested folders, a name with spaces and non-ASCII, and `a-b` / `a/b`, whose
/// order differs between `find` and the canonical sort.
fn coreutils_packet(sb: &Sandbox) -> std::path::PathBuf {
    let p = write_packet(sb, "p");
    sb.write("p/z/last.txt", "last\n");
    sb.write("p/0first.txt", "first\n");
    p
}

fn deviations(report: &Value) -> Vec<String> {
    report["expected"]["seal"]["deviations"]
        .as_array()
        .unwrap_or_else(|| panic!("no deviations: {report}"))
        .iter()
        .map(|d| d.as_str().expect("name").to_string())
        .collect()
}

#[test]
fn regression_manifest_written_by_coreutils_is_accepted_by_verify_seal() {
    let sb = Sandbox::new();
    let p = coreutils_packet(&sb);
    let (_, hashed) = sb.json(&["hash", "p"]);
    let tree = hashed["packet_tree_sha256"]
        .as_str()
        .expect("hash")
        .to_string();
    // Unsorted `find | xargs sha256sum`, reversed so it is surely out of order; `-b` markers and
    // uppercase hex; `--tag`; each one sha256sum -c itself accepts.
    let pipelines: &[(&str, &str, &[&str])] = &[
        (
            "find.txt",
            "find . -type f -print0 | xargs -0 sha256sum | sort -r > ../find.txt",
            &["out_of_order", "dot_slash_prefix"],
        ),
        (
            "binary.txt",
            "find . -type f -printf '%P\\0' | xargs -0 sha256sum -b | sed 's/^[0-9a-f]*/\\U&/' | sort -r > ../binary.txt",
            &["out_of_order", "binary_marker", "uppercase_hex"],
        ),
        (
            "tag.txt",
            "find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum --tag > ../tag.txt",
            &["bsd_tag"],
        ),
    ];
    for (file, pipeline, expected_deviations) in pipelines {
        sh(&p, pipeline);
        sh(&p, &format!("sha256sum --quiet -c ../{file}"));
        let (rc, report) = sb.json(&["verify", "p", "--seal", file]);
        assert_eq!(rc, 0, "{file}: {report}");
        assert_eq!(report["verdict"], "PASS");
        assert_eq!(report["counts"]["ok"], 9, "{file}: {report}");
        assert_eq!(report["expected"]["seal"]["canonical"], false);
        assert_eq!(&deviations(&report), expected_deviations, "{file}");
        // The expected packet_tree_sha256 is that of the canonical text of the entries.
        assert_eq!(report["expected"]["packet_tree_sha256"], tree.as_str());
        assert_eq!(report["observed"]["packet_tree_sha256"], tree.as_str());
        let own = report["expected"]["seal"]["sha256"].as_str().expect("sha");
        assert_ne!(own, tree, "{file}");
        let notes = report["notes"].to_string();
        assert!(notes.contains("is not canonical"), "{notes}");
        // Text: a note says so, and how to make a canonical seal.
        let out = sb.run_storeless(&["verify", "p", "--seal", file]);
        assert_eq!(code(&out), 0);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("note: the seal "), "{text}");
        assert!(text.contains("evstore seal p --force"), "{text}");
        assert!(text
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("PASS: 9 of 9")));
        // diff reads a seal operand the same way.
        let (rc, report) = sb.json(&["diff", &format!("seal:{file}"), "p"]);
        assert_eq!(rc, 0, "{report}");
    }
    // A canonical seal file is reported as canonical, with no note.
    sh(&p, "find . -type f ! -path ./HASH_MANIFEST.txt ! -path ./HASH_MANIFEST.txt.sig -printf '%P\\0' | LC_ALL=C sort -z | xargs -0r sha256sum > ../canonical.txt");
    let (rc, report) = sb.json(&["verify", "p", "--seal", "canonical.txt"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["expected"]["seal"]["canonical"], true);
    assert_eq!(report["expected"]["seal"]["sha256"], tree.as_str());
    assert_eq!(report["notes"], serde_json::json!([]));
}

#[test]
fn regression_coreutils_manifest_is_still_checked_fail_closed() {
    let sb = Sandbox::new();
    let p = coreutils_packet(&sb);
    sh(
        &p,
        "find . -type f -print0 | xargs -0 sha256sum -b | sort -r > ../m.txt",
    );
    let (rc, _) = sb.json(&["verify", "p", "--seal", "m.txt"]);
    assert_eq!(rc, 0);
    // A changed byte, an extra file (in a subfolder, which sha256sum -c does not see), a
    // missing file: each a FAIL naming the path.
    let cases: &[(&str, &str)] = &[
        ("edit", "logs/run.log"),
        ("extra", "a/new.txt"),
        ("missing", "z/last.txt"),
    ];
    for (what, path) in cases {
        let sb2 = Sandbox::new();
        let p2 = coreutils_packet(&sb2);
        fs::copy(sb.path("m.txt"), sb2.path("m.txt")).unwrap();
        match *what {
            "edit" => {
                sb2.write("p/logs/run.log", "step 1 ok\nstep 2 FAILED\n");
            }
            "extra" => {
                sb2.write("p/a/new.txt", "not sealed\n");
            }
            _ => fs::remove_file(p2.join(path)).unwrap(),
        }
        let (rc, report) = sb2.json(&["verify", "p", "--seal", "m.txt"]);
        assert_eq!(rc, 1, "{what}: {report}");
        assert_eq!(report["verdict"], "FAIL");
        let expected_class = match *what {
            "edit" => "content",
            "extra" => "extra",
            _ => "missing",
        };
        assert_eq!(classes_of(&report, path), [expected_class], "{what}");
        assert_eq!(report["counts"]["failed"], 1, "{what}: {report}");
    }
}

#[test]
fn regression_coreutils_manifest_duplicates_and_unsafe_paths_are_refused() {
    let sb = Sandbox::new();
    coreutils_packet(&sb);
    let a = "ab".repeat(32);
    let upper = a.to_uppercase();
    let cases: &[(String, &str)] = &[
        (
            format!("{a}  a-b\n{upper} *./a-b\n"),
            "line 2: duplicate path \"a-b\" (also on line 1)",
        ),
        (
            format!("{a}  a-b\n{a}  ../outside\n"),
            "line 2: path component \"..\"",
        ),
        (format!("{a}  /etc/passwd\n"), "line 1: absolute path"),
        (
            format!("{a}  a-b\n\\{a}  a\\\\b\n"),
            "line 2: a backslash-escaped line",
        ),
        (
            format!("\u{feff}{a}  a-b\n"),
            "line 1: starts with a UTF-8 byte-order mark",
        ),
        (
            format!("{a}  a-b\n{a} a/b\n"),
            "line 2: one space between digest and path",
        ),
        (
            format!("{a}  a-b\ngarbage\n"),
            "line 2: not a manifest line",
        ),
        (
            format!("{a}  HASH_MANIFEST.txt\n"),
            "line 1: lists HASH_MANIFEST.txt",
        ),
        (
            "# only a comment\n".to_string(),
            "line 1: the manifest lists no files",
        ),
    ];
    for (text, message) in cases {
        sb.write("m.txt", text);
        let out = sb.run_storeless(&["verify", "p", "--seal", "m.txt"]);
        assert_eq!(code(&out), 2, "{text:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert!(err.contains("m.txt: "), "{err}");
        assert!(err.contains(message), "{text:?}: {err}");
        let (rc, value) = sb.json(&["verify", "p", "--seal", "m.txt"]);
        assert_eq!(rc, 2);
        assert_eq!(value["error"]["class"], "operational");
    }
}

#[test]
fn regression_non_canonical_own_seal_is_refused_with_how_to_make_a_canonical_one() {
    let sb = Sandbox::new();
    let p = coreutils_packet(&sb);
    sh(
        &p,
        "find . -type f -printf '%P\\0' | LC_ALL=C sort -zr | xargs -0 sha256sum > ../m && mv ../m HASH_MANIFEST.txt",
    );
    let seal_before = fs::read(p.join("HASH_MANIFEST.txt")).unwrap();
    // HASH_MANIFEST.txt at a packet's top stays strict: verify and ingest refuse it (exit 2)...
    for args in [vec!["verify", "p"], vec!["ingest", "p"]] {
        let out = sb.run(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("HASH_MANIFEST.txt: line 2: out of canonical order"),
            "{err}"
        );
        // ... and say how to check the folder against it and make a canonical one.
        assert!(
            err.contains("evstore verify p --seal p/HASH_MANIFEST.txt"),
            "{err}"
        );
        assert!(err.contains("evstore seal p --force"), "{err}");
        assert!(
            err.contains("LC_ALL=C sort -z | xargs -0r sha256sum > HASH_MANIFEST.txt"),
            "{err}"
        );
    }
    assert!(
        !sb.store().join("catalog.sqlite").exists() || {
            let (_, ls) = sb.json(&["ls"]);
            ls["packets"] == serde_json::json!([])
        }
    );
    // Following the advice works: the check passes, then the seal is rewritten canonically.
    let (rc, report) = sb.json(&["verify", "p", "--seal", "p/HASH_MANIFEST.txt"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["expected"]["seal"]["canonical"], false);
    assert_eq!(fs::read(p.join("HASH_MANIFEST.txt")).unwrap(), seal_before);
    let out = sb.run_storeless(&["seal", "p", "--force"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (rc, report) = sb.json(&["verify", "p"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["expected"]["seal"]["canonical"], true);
}

// Rough edge: asserting "must differ" and "must be equal" without shell tricks.

const OTHER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn regression_hash_expect_and_expect_not_assert_before_apply_rollback() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    let out = sb.run_storeless(&["hash", "--quiet", "p"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let quiet = String::from_utf8(out.stdout).expect("utf-8");
    let before = quiet.trim_end().to_string();
    assert_eq!(quiet, format!("{before}\n"), "one bare line");
    assert_eq!(before, coreutils_tree_sha256(&sb.path("p")));
    let expect = |args: &[&str]| -> i32 {
        let mut all = vec!["hash", "p"];
        all.extend_from_slice(args);
        code(&sb.run_storeless(&all))
    };
    // Before: equal holds, differ does not.
    assert_eq!(expect(&["--expect", &before]), 0);
    assert_eq!(expect(&["--expect-not", &before]), 1);
    assert_eq!(expect(&["--expect", OTHER]), 1);
    // Apply: now it differs.
    let saved = fs::read(sb.path("p/report.json")).unwrap();
    sb.write("p/report.json", "{\"status\": \"applied\"}\n");
    assert_eq!(expect(&["--expect-not", &before]), 0);
    assert_eq!(expect(&["--expect", &before]), 1);
    let out = sb.run_storeless(&["hash", "p", "--expect", &before]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("FAIL: packet_tree_sha256 is ")
                && l.contains(&format!("not {before} as --expect requires"))),
        "{text}"
    );
    let out = sb.run_storeless(&["hash", "--quiet", "p", "--expect", &before]);
    assert_eq!(code(&out), 1);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(
        stderr(&out).contains("FAIL: p: packet_tree_sha256 is "),
        "{}",
        stderr(&out)
    );
    let (rc, value) = sb.json(&["hash", "p", "--expect", &before, "--expect-not", OTHER]);
    assert_eq!(rc, 1);
    assert_eq!(value["verdict"], "FAIL");
    assert_eq!(value["expectations"][0]["relation"], "equal");
    assert_eq!(value["expectations"][0]["holds"], false);
    assert_eq!(value["expectations"][1]["relation"], "differ");
    assert_eq!(value["expectations"][1]["holds"], true);
    // Roll back: equal again, byte for byte.
    fs::write(sb.path("p/report.json"), saved).unwrap();
    assert_eq!(expect(&["--expect", &before]), 0);
    assert_eq!(expect(&["--expect-not", &before]), 1);
    assert_eq!(expect(&["--expect", &before, "--expect-not", OTHER]), 0);
    let (rc, value) = sb.json(&["hash", "p", "--expect", &before]);
    assert_eq!(rc, 0);
    assert_eq!(value["verdict"], "PASS");
}

#[test]
fn regression_malformed_expected_sha_is_a_usage_error_on_hash_and_verify() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    assert_eq!(code(&sb.run_storeless(&["seal", "p"])), 0);
    let upper = "A".repeat(64);
    let short = "a".repeat(63);
    for bad in ["xyz", upper.as_str(), short.as_str(), ""] {
        for flag in ["--expect", "--expect-not"] {
            for command in ["hash", "verify"] {
                let out = sb.run_storeless(&[command, "p", flag, bad]);
                assert_eq!(code(&out), 2, "{command} {flag} {bad:?}: {}", stderr(&out));
                assert!(stderr(&out).contains(flag), "{}", stderr(&out));
                assert!(out.stdout.is_empty());
            }
        }
    }
    let (rc, value) = sb.json(&["hash", "--quiet", "p"]);
    assert_eq!(rc, 2);
    assert_eq!(value["error"]["class"], "operational");
}

#[test]
fn regression_verify_expect_and_expect_not_pin_the_packet_tree_sha256() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    assert_eq!(code(&sb.run_storeless(&["seal", "p"])), 0);
    let (rc, ingested) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{ingested}");
    let tree = ingested["packet_tree_sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    fs::copy(sb.path("p/HASH_MANIFEST.txt"), sb.path("seal.txt")).unwrap();
    let modes: [Vec<&str>; 3] = [vec![], vec!["--seal", "seal.txt"], vec!["--against", "p"]];
    for mode in &modes {
        let run = |extra: &[&str]| -> (i32, Value) {
            let mut args = vec!["verify", "p"];
            args.extend_from_slice(mode);
            args.extend_from_slice(extra);
            sb.json(&args)
        };
        let (rc, report) = run(&["--expect", &tree]);
        assert_eq!(rc, 0, "{mode:?}: {report}");
        assert_eq!(report["verdict"], "PASS");
        assert_eq!(report["expectations"][0]["holds"], true);
        let (rc, report) = run(&["--expect-not", OTHER]);
        assert_eq!(rc, 0, "{mode:?}: {report}");
        // Every file matches its seal, but the packet is not the one expected: FAIL.
        for extra in [["--expect", OTHER], ["--expect-not", tree.as_str()]] {
            let (rc, report) = run(&extra);
            assert_eq!(rc, 1, "{mode:?} {extra:?}: {report}");
            assert_eq!(report["verdict"], "FAIL");
            assert_eq!(report["counts"]["failed"], 0);
            assert_eq!(report["expectations"][0]["holds"], false);
        }
        let mut args = vec!["verify", "p"];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["--expect", OTHER]);
        let out = sb.run(&args);
        assert_eq!(code(&out), 1);
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("FAIL: 7 of 7 files match, but packet_tree_sha256 is ")
                && last.ends_with("as --expect requires"),
            "{text}"
        );
    }
    // A drifted folder fails whatever is expected of it.
    sb.write("p/logs/run.log", "edited\n");
    let (rc, report) = sb.json(&["verify", "p", "--expect-not", &tree]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["verdict"], "FAIL");
}

/// The README's before / apply / rollback block, run as it is written.
#[test]
fn regression_readme_before_apply_rollback_block_works() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```sh\n# before / apply / rollback")
        .expect("the README shows the before/apply/rollback pattern");
    let body = &readme[start + "```sh\n".len()..];
    let block = &body[..body.find("```").expect("block ends")];
    let run = |script: &str| -> i32 {
        let sb = Sandbox::new();
        write_packet(&sb, "tmp/packet");
        sb.write(
            "tmp/packet/summary.md",
            "A summary \u{2014} with an em dash.\n",
        );
        // The README's /tmp paths go into the sandbox.
        let script = script.replace("/tmp/", &format!("{}/", sb.path("tmp").display()));
        let bin = Path::new(EVSTORE_BIN)
            .parent()
            .expect("bin dir")
            .to_path_buf();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(sb.path(""))
            .env("PATH", path)
            .env_remove("EVSTORE_STORE")
            .output()
            .expect("bash runs");
        out.status.code().expect("exit code")
    };
    assert_eq!(run(block), 0, "{block}");
    // Negative controls: without the change, or without the rollback, the block fails.
    let no_apply: String = block
        .lines()
        .filter(|l| !l.contains("# apply"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(no_apply, block);
    assert_eq!(run(&no_apply), 1, "{no_apply}");
    let no_rollback: String = block
        .lines()
        .filter(|l| !l.contains("# roll back"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(no_rollback, block);
    assert_eq!(run(&no_rollback), 1, "{no_rollback}");
}
