//! Issue 12, items 1, 12a and 12c: a folder evstore hashes or verifies is a real folder, opened
//! without following a symlink and read through that handle; a generator that cannot start and a
//! caller's `PATH` leave no permanent record.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::sandbox::*;

type TreeSnapshot = Vec<TreeEntry>;

/// Everything the store holds that a failed command must leave as it was: its files (catalog
/// aside, which SQLite may touch), every packet's export, the packet list, the runs list and the
/// event log.
struct StoreState {
    files: Vec<(String, Vec<u8>)>,
    exports: Vec<(String, TreeSnapshot)>,
    ls: Value,
    runs: Value,
    log: Value,
}

fn store_state(sb: &Sandbox, tag: &str) -> StoreState {
    let (rc, ls) = sb.json(&["ls"]);
    assert_eq!(rc, 0, "{ls}");
    let mut exports = Vec::new();
    for packet in ls["packets"].as_array().unwrap() {
        let label = packet["packet"].as_str().unwrap().to_string();
        let dest = sb.path(&format!("export-{tag}-{label}"));
        let out = sb.run(&["export", &label, dest.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        exports.push((label, tree_snapshot(&dest)));
        fs::remove_dir_all(&dest).unwrap();
    }
    let (rc, runs) = sb.json(&["runs"]);
    assert_eq!(rc, 0, "{runs}");
    let (rc, log) = sb.json(&["log"]);
    assert_eq!(rc, 0, "{log}");
    StoreState {
        files: sb.store_snapshot(),
        exports,
        ls,
        runs,
        log,
    }
}

fn assert_store_unchanged(sb: &Sandbox, before: &StoreState) {
    let after = store_state(sb, "after");
    assert_eq!(after.files, before.files, "the store's files changed");
    assert_eq!(
        after.exports, before.exports,
        "a packet exports differently"
    );
    assert_eq!(after.ls, before.ls, "the packet list changed");
    assert_eq!(after.runs, before.runs, "a rerun was recorded");
    assert_eq!(after.log, before.log, "the event log changed");
}

/// A store holding `p1`, and a copy of `p1` (with its seal) elsewhere: what a malicious or buggy
/// generator links to.
fn store_with_packet_and_copy(sb: &Sandbox) -> (PathBuf, String) {
    let p1 = write_packet(sb, "p1");
    let (rc, out) = sb.json(&["ingest", p1.to_str().unwrap()]);
    assert_eq!(rc, 0, "{out}");
    let sha = out["packet_tree_sha256"].as_str().unwrap().to_string();
    let copy = sb.path("copy-of-p1");
    let out = sb.run(&["export", "p1", copy.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    (copy, sha)
}

/// The generator of the issue: it writes nothing and puts a symlink to `target` where its output
/// folder was.
fn symlinking_generator(target: &Path) -> Vec<String> {
    vec![
        "--".into(),
        "bash".into(),
        "-c".into(),
        format!("rmdir \"$1\" && ln -s '{}' \"$1\"", target.display()),
        "_".into(),
        "{out}".into(),
    ]
}

fn assert_refused_as_symlink(out: &Output, path_part: &str) {
    assert_eq!(code(out), 2, "{}", stderr(out));
    let text = stderr(out);
    assert!(text.contains("symbolic link"), "{text}");
    assert!(text.contains(path_part), "{text}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PASS"));
}

fn run_args(sb: &Sandbox, head: &[&str], tail: &[String]) -> Output {
    let mut args: Vec<&str> = head.to_vec();
    args.extend(tail.iter().map(String::as_str));
    sb.run(&args)
}

#[test]
fn regression_rerun_output_replaced_by_a_symlink_never_passes() {
    let sb = Sandbox::new();
    let (copy, _) = store_with_packet_and_copy(&sb);
    let packet_before = tree_snapshot(&sb.path("p1"));
    let copy_before = tree_snapshot(&copy);
    let before = store_state(&sb, "before");
    let out = run_args(&sb, &["rerun", "p1"], &symlinking_generator(&copy));
    assert_refused_as_symlink(&out, "replaced its output folder with a symbolic link");
    assert!(stderr(&out).contains(copy.to_str().unwrap()));
    // Nothing attested (PASS or otherwise), nothing ingested, nothing touched.
    assert_store_unchanged(&sb, &before);
    assert_eq!(tree_snapshot(&copy), copy_before);
    assert_eq!(tree_snapshot(&sb.path("p1")), packet_before);
    // No temp folder of this rerun is left to point at the copy.
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{fsck}");
}

#[test]
fn regression_rerun_output_replaced_by_a_symlink_never_passes_with_expect_and_no_store() {
    let sb = Sandbox::new();
    let (copy, sha) = store_with_packet_and_copy(&sb);
    let copy_before = tree_snapshot(&copy);
    let mut args = vec!["rerun".to_string(), "--expect".into(), sha];
    args.extend(symlinking_generator(&copy));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sb.run_storeless(&args);
    assert_refused_as_symlink(&out, "replaced its output folder with a symbolic link");
    assert_eq!(tree_snapshot(&copy), copy_before);
    assert!(!sb.path(".evstore").exists(), "no store was created");
}

#[test]
fn regression_rerun_output_replaced_by_a_symlink_never_passes_with_keep() {
    let sb = Sandbox::new();
    let (copy, _) = store_with_packet_and_copy(&sb);
    let copy_before = tree_snapshot(&copy);
    let before = store_state(&sb, "before");
    let kept = sb.path("kept");
    let out = run_args(
        &sb,
        &["--json", "rerun", "p1", "--keep", kept.to_str().unwrap()],
        &symlinking_generator(&copy),
    );
    assert_refused_as_symlink(&out, "replaced its output folder with a symbolic link");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["class"], "operational", "{report}");
    assert!(report.get("kept").is_none(), "{report}");
    // The rerun created the --keep folder, so the link the generator put in its place is removed
    // (never what it points to: see review_misc), and nothing was written through it.
    assert!(
        fs::symlink_metadata(&kept).is_err(),
        "the generator's link stays"
    );
    assert_eq!(tree_snapshot(&copy), copy_before);
    assert_store_unchanged(&sb, &before);

    // A --keep folder that is itself a symlink is refused before anything runs.
    let elsewhere = sb.path("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let link = sb.path("keep-link");
    symlink(&elsewhere, &link).unwrap();
    let out = sb.run(&[
        "rerun",
        "p1",
        "--keep",
        link.to_str().unwrap(),
        "--",
        "bash",
        "-c",
        "touch ran; cp -r p1/. \"$1\"",
        "_",
        "{out}",
    ]);
    assert_refused_as_symlink(&out, "keep-link");
    assert!(stderr(&out).contains(elsewhere.to_str().unwrap()));
    assert!(!sb.path("ran").exists(), "the generator did not run");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_store_unchanged(&sb, &before);
}

#[test]
fn regression_rerun_output_replaced_by_a_symlink_never_passes_with_ingest() {
    let sb = Sandbox::new();
    let (copy, _) = store_with_packet_and_copy(&sb);
    let copy_before = tree_snapshot(&copy);
    let before = store_state(&sb, "before");
    let out = run_args(
        &sb,
        &["rerun", "p1", "--ingest", "--runs", "2"],
        &symlinking_generator(&copy),
    );
    assert_refused_as_symlink(&out, "replaced its output folder with a symbolic link");
    // No `p1.rerun` packet, no attestation, no event.
    assert_store_unchanged(&sb, &before);
    assert_eq!(tree_snapshot(&copy), copy_before);
}

#[test]
fn a_generator_that_writes_into_its_folder_still_passes_and_ingests() {
    // The control for the tests above: the same packet written for real passes, and --ingest
    // archives exactly what was hashed.
    let sb = Sandbox::new();
    let (copy, sha) = store_with_packet_and_copy(&sb);
    let (rc, report) = sb.json(&[
        "rerun",
        "p1",
        "--ingest",
        "--",
        "bash",
        "-c",
        "cp -a \"$2\"/. \"$1\"/ && rm \"$1\"/HASH_MANIFEST.txt",
        "_",
        "{out}",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["verdict"], "PASS");
    assert_eq!(report["ingested"], "p1.rerun@1");
    let (rc, show) = sb.json(&["show", "p1.rerun"]);
    assert_eq!(rc, 0, "{show}");
    assert_eq!(show["packet_tree_sha256"], sha.as_str());
}

#[test]
fn regression_verify_hash_ingest_and_seal_refuse_a_folder_given_as_a_symlink() {
    let sb = Sandbox::new();
    let (copy, _) = store_with_packet_and_copy(&sb);
    let link = sb.path("link");
    symlink(&copy, &link).unwrap();
    let link_text = link.to_str().unwrap();
    let copy_before = tree_snapshot(&copy);
    let before = store_state(&sb, "before");
    let seal = copy.join("HASH_MANIFEST.txt");
    let commands: Vec<Vec<&str>> = vec![
        vec!["hash", link_text],
        vec!["verify", link_text],
        vec!["verify", link_text, "--seal", seal.to_str().unwrap()],
        vec!["verify", link_text, "--against", "p1"],
        vec!["ingest", link_text, "--name", "via-link"],
        vec!["seal", link_text, "--force"],
        vec!["diff", "packet:p1", link_text],
        vec!["diff", link_text, copy.to_str().unwrap()],
        vec![
            "verify",
            copy.to_str().unwrap(),
            "--seal",
            seal.to_str().unwrap(),
            "--original",
            link_text,
        ],
    ];
    for args in &commands {
        let out = sb.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains(&format!(
                "{link_text}: is a symbolic link (to {})",
                copy.display()
            )),
            "{args:?}: {text}"
        );
    }
    // A trailing slash (as a shell completes a symlink to a folder) does not make it followed.
    let slashed = format!("{link_text}/");
    let dotted = format!("{link_text}/.");
    for args in [
        vec!["hash", slashed.as_str()],
        vec!["verify", dotted.as_str()],
        vec!["ingest", slashed.as_str(), "--name", "via-link"],
        vec!["seal", slashed.as_str(), "--force"],
    ] {
        let out = sb.run(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is a symbolic link (to"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // The JSON error names the link too.
    let (rc, report) = sb.json(&["verify", link_text]);
    assert_eq!(rc, 2);
    assert_eq!(report["error"]["class"], "operational");
    assert!(report["error"]["message"]
        .as_str()
        .unwrap()
        .contains("symbolic link"));
    // Without a store: ingest creates none.
    let out = sb.run_storeless(&["ingest", link_text]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!sb.path(".evstore").exists());
    assert_eq!(tree_snapshot(&copy), copy_before);
    assert_store_unchanged(&sb, &before);
    // The real folder works with every command.
    for args in [
        vec!["hash", copy.to_str().unwrap()],
        vec!["verify", copy.to_str().unwrap()],
        vec!["verify", copy.to_str().unwrap(), "--against", "p1"],
    ] {
        let out = sb.run(&args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn regression_kb_packet_folder_that_is_a_symlink_fails_kb_verify() {
    let sb = Sandbox::new();
    let (copy, _) = store_with_packet_and_copy(&sb);
    let kb = sb.path("kb");
    fs::create_dir(&kb).unwrap();
    let out = sb.run(&["mirror", "p1", kb.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = sb.run(&["kb", "verify", kb.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // A "packet folder" that is a symlink to a sealed folder outside the KB.
    let evil = kb.join("evil");
    symlink(&copy, &evil).unwrap();
    let kb_before = tree_snapshot(&kb);
    let copy_before = tree_snapshot(&copy);
    let before = store_state(&sb, "before");
    for args in [
        vec!["kb", "verify", kb.to_str().unwrap()],
        vec!["kb", "verify", kb.to_str().unwrap(), "--no-store"],
    ] {
        let out = sb.run(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains(&format!(
                "{}: is a symbolic link (to {}) to a packet folder",
                evil.display(),
                copy.display()
            )),
            "{text}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("PASS"));
    }
    // A KB folder named as a symlink is refused too (KB_DIR may itself be a packet folder).
    fs::remove_file(&evil).unwrap();
    let kb_link = sb.path("kb-link");
    symlink(&kb, &kb_link).unwrap();
    for given in [
        kb_link.display().to_string(),
        format!("{}/", kb_link.display()),
    ] {
        let out = sb.run(&["kb", "verify", &given]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("is a symbolic link"),
            "{}",
            stderr(&out)
        );
    }
    // A KB packet folder swapped for a symlink to a good copy of itself is refused as well.
    let moved = sb.path("moved-p1");
    fs::rename(kb.join("p1"), &moved).unwrap();
    symlink(&moved, kb.join("p1")).unwrap();
    let out = sb.run(&["kb", "verify", kb.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("to a packet folder"),
        "{}",
        stderr(&out)
    );
    fs::remove_file(kb.join("p1")).unwrap();
    fs::rename(&moved, kb.join("p1")).unwrap();
    // Nothing was changed: the KB (as it was before the links), the copy, the store (the failed
    // checks logged no kb-verify event).
    symlink(&copy, &evil).unwrap();
    assert_eq!(tree_snapshot(&kb), kb_before);
    assert_eq!(tree_snapshot(&copy), copy_before);
    assert_store_unchanged(&sb, &before);
}

#[test]
fn a_symlink_to_an_unsealed_folder_in_a_kb_is_noted_not_followed() {
    let sb = Sandbox::new();
    store_with_packet_and_copy(&sb);
    let kb = sb.path("kb");
    fs::create_dir(&kb).unwrap();
    let out = sb.run(&["mirror", "p1", kb.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let assets = sb.path("assets");
    fs::create_dir(&assets).unwrap();
    fs::write(assets.join("logo.txt"), "logo\n").unwrap();
    symlink(&assets, kb.join("assets")).unwrap();
    let (rc, report) = sb.json(&["kb", "verify", kb.to_str().unwrap()]);
    assert_eq!(rc, 0, "{report}");
    assert!(
        report["notes"].to_string().contains("was not followed"),
        "{report}"
    );
}

#[test]
fn regression_rerun_of_a_generator_that_cannot_start_records_nothing() {
    let sb = Sandbox::new();
    store_with_packet_and_copy(&sb);
    let before = store_state(&sb, "before");
    let objects_before = sb.object_files();
    let not_executable = sb.write("gen.sh", "#!/bin/sh\necho hi > \"$1/x\"\n");
    fs::set_permissions(&not_executable, fs::Permissions::from_mode(0o644)).unwrap();
    let kept = sb.path("kept");
    for args in [
        vec!["rerun", "p1", "--", "/nonexistent/gen"],
        vec!["rerun", "p1", "--ingest", "--", "/nonexistent/gen", "{out}"],
        vec!["rerun", "p1", "--runs", "3", "--", "./gen.sh", "{out}"],
        vec![
            "rerun",
            "p1",
            "--keep",
            kept.to_str().unwrap(),
            "--",
            "no-such-generator-on-path",
        ],
    ] {
        let out = sb.run(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(text.contains("cannot start the generator"), "{text}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("attestation"));
    }
    let (rc, report) = sb.json(&["rerun", "p1", "--", "/nonexistent/gen"]);
    assert_eq!(rc, 2);
    assert_eq!(report["error"]["class"], "operational", "{report}");
    assert!(report["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/gen"));
    // No runs row, no attestation object, no event; the --keep folder it created is gone again.
    assert_eq!(sb.object_files(), objects_before);
    assert_store_unchanged(&sb, &before);
    assert!(before.runs["runs"].as_array().unwrap().is_empty());
    assert!(!kept.exists());
}

/// Run evstore with `PATH` set to `path`.
fn run_with_path(sb: &Sandbox, path: &str, args: &[&str]) -> Output {
    sb.command()
        .args(args)
        .env("PATH", path)
        .output()
        .expect("run evstore")
}

fn stored_attestation(sb: &Sandbox, id: &str) -> String {
    let store = evstore::store::Store::open(&sb.store()).unwrap();
    let id = evstore::digest::Blake3Digest::parse_hex(id).unwrap();
    let mut payload = Vec::new();
    store.read_object(&id, &mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

#[test]
fn regression_rerun_attestation_stores_no_caller_path() {
    let sb = Sandbox::new();
    // The generator writes the PATH it was given: the packet expects the controlled one.
    sb.write("want/path.txt", "/usr/local/bin:/usr/bin:/bin");
    let (rc, out) = sb.json(&["ingest", "want"]);
    assert_eq!(rc, 0, "{out}");
    let marker = "/home/someone/secret-tool-dir-8c1f";
    let caller_path = format!("{marker}:{}", std::env::var("PATH").unwrap());
    let generator = [
        "--",
        "bash",
        "-c",
        "printf %s \"$PATH\" > \"$1/path.txt\"",
        "_",
        "{out}",
    ];
    let mut args = vec!["--json", "rerun", "want"];
    args.extend_from_slice(&generator);
    let out = run_with_path(&sb, &caller_path, &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "PASS", "{report}");
    assert_eq!(
        report["environment"]["PATH"], "/usr/local/bin:/usr/bin:/bin",
        "{report}"
    );
    let stored = stored_attestation(&sb, report["attestation"].as_str().unwrap());
    assert!(!stored.contains(marker), "{stored}");
    assert!(
        stored.contains("\"PATH\":\"/usr/local/bin:/usr/bin:/bin\""),
        "{stored}"
    );

    // --keep-env passes the caller's environment and records only the names.
    let out = run_with_path(
        &sb,
        &caller_path,
        &[
            "--json",
            "rerun",
            "want",
            "--keep-env",
            "--",
            "bash",
            "-c",
            "printf %s /usr/local/bin:/usr/bin:/bin > \"$1/path.txt\"",
            "_",
            "{out}",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["environment_mode"], "inherited");
    assert_eq!(report["environment"]["PATH"], "", "{report}");
    let stored = stored_attestation(&sb, report["attestation"].as_str().unwrap());
    assert!(!stored.contains(marker), "{stored}");
    // The log and the runs list hold no PATH either.
    for listing in [["log"], ["runs"]] {
        let (rc, value) = sb.json(&listing);
        assert_eq!(rc, 0);
        assert!(!value.to_string().contains(marker), "{value}");
    }
}

#[test]
fn the_rerun_verdict_ignores_executable_bits_as_cli_md_says() {
    let sb = Sandbox::new();
    let (copy, sha) = store_with_packet_and_copy(&sb);
    let kept = sb.path("kept");
    // The same bytes with every executable bit cleared (p1's rerun.sh is 0755).
    let (rc, report) = sb.json(&[
        "rerun",
        "p1",
        "--keep",
        kept.to_str().unwrap(),
        "--",
        "bash",
        "-c",
        "cp -r \"$2\"/. \"$1\"/ && rm \"$1\"/HASH_MANIFEST.txt && chmod -R a-x+X \"$1\"",
        "_",
        "{out}",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["verdict"], "PASS");
    assert_eq!(report["runs"][0]["observed_sha256"], sha.as_str());
    // verify --against compares the modes the tree hash does not hold.
    let (rc, verify) = sb.json(&["verify", kept.to_str().unwrap(), "--against", "p1"]);
    assert_eq!(rc, 1, "{verify}");
    assert!(verify["counts"].to_string().contains("mode"), "{verify}");
}
