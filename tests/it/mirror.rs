//! The KB mirror: `mirror` and `kb verify`, the seed's 21/20 shape, tampers, append-only
//! refusals, escapes, and kills during a mirror.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::sandbox::*;

/// Two packets shaped like the seed's: 21 files each, sharing only a large validator script.
fn seed_shaped(sb: &Sandbox) {
    let validator = random_bytes(18_172, 7);
    for (name, salt) in [("rollback", 1u64), ("rehearsal", 2u64)] {
        sb.write(
            &format!("{name}/validator/hardened_dryrun_validator.py"),
            &validator,
        );
        for i in 0..19 {
            sb.write(
                &format!("{name}/reports/r{i:02}.json"),
                format!("{{\"packet\": \"{name}\", \"item\": {i}, \"salt\": {salt}}}\n"),
            );
        }
        let script = sb.write(
            &format!("{name}/rerun.sh"),
            format!("#!/bin/sh\necho {name} ok\n"),
        );
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let (rc, out) = sb.json(&["ingest", name]);
        assert_eq!(rc, 0, "{out}");
    }
}

fn regular_files(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

fn kb_verify(sb: &Sandbox, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["kb", "verify", "kb"];
    args.extend_from_slice(extra);
    sb.json(&args)
}

fn packet_report<'a>(report: &'a Value, folder: &str) -> &'a Value {
    report["packets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["folder"] == folder)
        .unwrap_or_else(|| panic!("no report for {folder}: {report}"))
}

fn classes(value: &Value) -> Vec<String> {
    value["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn mirrored_seed() -> Sandbox {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("kb")).unwrap();
    seed_shaped(&sb);
    let (rc, first) = sb.json(&["mirror", "rollback", "kb"]);
    assert_eq!(rc, 0, "{first}");
    let (rc, second) = sb.json(&["mirror", "rehearsal", "kb", "--dedup", "reference"]);
    assert_eq!(rc, 0, "{second}");
    for mode in [&[][..], &["--no-store"][..]] {
        let (rc, report) = kb_verify(&sb, mode);
        assert_eq!(rc, 0, "negative control {mode:?}: {report}");
    }
    sb
}

on_both_backends! {
fn mirror_writes_a_folder_sha256sum_accepts() {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("kb")).unwrap();
    let packet = write_packet(&sb, "packet");
    let (rc, ingested) = sb.json(&["ingest", "packet", "--name", "fix7"]);
    assert_eq!(rc, 0);
    let (rc, mirrored) = sb.json(&["mirror", "fix7", "kb", "--as", "reports/fix7-packet"]);
    assert_eq!(rc, 0, "{mirrored}");
    assert_eq!(mirrored["action"], "published");
    let dest = sb.path("kb/reports/fix7-packet");
    let check = Command::new("sha256sum")
        .args(["-c", "--strict", "--ignore-missing", "HASH_MANIFEST.txt"])
        .current_dir(&dest)
        .output()
        .unwrap();
    assert!(check.status.success());
    let seal = fs::read(dest.join("HASH_MANIFEST.txt")).unwrap();
    assert_eq!(
        evstore::digest::sha256_of(&seal).to_hex(),
        ingested["packet_tree_sha256"].as_str().unwrap()
    );
    // Executable bits are kept; the tree is the stored tree.
    let (_, hashed) = sb.json(&["hash", dest.to_str().unwrap()]);
    assert_eq!(hashed["tree"], ingested["tree"]);
    let mode = fs::metadata(dest.join("rerun.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(regular_files(&dest).len(), 8);
    let _ = packet;
}
}

on_both_backends! {
fn seed_shape_21_listed_20_written_with_a_reference() {
    let sb = mirrored_seed();
    let (rc, again) = sb.json(&[
        "mirror",
        "rehearsal",
        "kb",
        "--as",
        "copy-check",
        "--dedup",
        "reference",
    ]);
    assert_eq!(rc, 0, "{again}");
    let dest = sb.path("kb/rehearsal");
    let seal = fs::read_to_string(dest.join("HASH_MANIFEST.txt")).unwrap();
    assert_eq!(seal.lines().count(), 21, "21 files listed");
    let written: Vec<String> = regular_files(&dest)
        .into_iter()
        .filter(|p| p != "HASH_MANIFEST.txt" && p != "KB_REFERENCES.txt")
        .collect();
    assert_eq!(written.len(), 20, "{written:?}");
    let references = fs::read_to_string(dest.join("KB_REFERENCES.txt")).unwrap();
    assert_eq!(references.lines().count(), 1);
    assert!(references.contains(
        "\tvalidator/hardened_dryrun_validator.py\trollback/validator/hardened_dryrun_validator.py\n"
    ));
    let (_, report) = kb_verify(&sb, &[]);
    assert_eq!(packet_report(&report, "rehearsal")["references"], 1);
    assert_eq!(packet_report(&report, "rehearsal")["packet"], "rehearsal@1");
}
}

fn assert_kb_fails(sb: &Sandbox, folder: &str, class: &str, path: Option<&str>) {
    for mode in [&[][..], &["--no-store"][..]] {
        let (rc, report) = kb_verify(sb, mode);
        assert_eq!(rc, 1, "{mode:?}: {report}");
        assert_eq!(report["verdict"], "FAIL");
        let packet = packet_report(&report, folder);
        assert_eq!(packet["verdict"], "FAIL");
        if mode.is_empty() || !["crlf", "bom"].contains(&class) {
            assert!(
                classes(packet).contains(&class.to_string()),
                "{mode:?} {folder}: {packet}"
            );
        }
        if let Some(path) = path {
            let file = packet["report"]["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["path"] == path)
                .unwrap_or_else(|| panic!("no {path}: {packet}"));
            assert_eq!(file["status"], "fail");
        }
    }
}

on_both_backends! {
fn tamper_edited_file() {
    let sb = mirrored_seed();
    sb.write("kb/rehearsal/reports/r03.json", "{\"edited\": true}\n");
    assert_kb_fails(&sb, "rehearsal", "content", Some("reports/r03.json"));
}
}

on_both_backends! {
fn tamper_crlf() {
    let sb = mirrored_seed();
    let path = sb.path("kb/rollback/reports/r00.json");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace('\n', "\r\n")).unwrap();
    assert_kb_fails(&sb, "rollback", "crlf", Some("reports/r00.json"));
}
}

on_both_backends! {
fn tamper_extra_file() {
    let sb = mirrored_seed();
    sb.write("kb/rehearsal/reports/notes.txt", "added\n");
    assert_kb_fails(&sb, "rehearsal", "extra", Some("reports/notes.txt"));
}
}

on_both_backends! {
fn tamper_deleted_file() {
    let sb = mirrored_seed();
    fs::remove_file(sb.path("kb/rollback/rerun.sh")).unwrap();
    assert_kb_fails(&sb, "rollback", "missing", Some("rerun.sh"));
}
}

#[test]
fn tamper_referenced_file_edited_at_its_other_location() {
    let sb = mirrored_seed();
    let validator = "validator/hardened_dryrun_validator.py";
    let path = sb.path(&format!("kb/rollback/{validator}"));
    let mut content = fs::read(&path).unwrap();
    content[100] ^= 1;
    fs::write(&path, content).unwrap();
    // Both the packet that holds it and the one that references it fail, naming the file.
    assert_kb_fails(&sb, "rollback", "content", Some(validator));
    assert_kb_fails(&sb, "rehearsal", "content", Some(validator));
}

on_both_backends! {
fn tamper_deleted_packet_folder() {
    let sb = mirrored_seed();
    fs::remove_dir_all(sb.path("kb/rehearsal")).unwrap();
    // With a store, the catalog knows the mirror was there.
    let (rc, report) = kb_verify(&sb, &[]);
    assert_eq!(rc, 1, "{report}");
    let gone = packet_report(&report, "rehearsal");
    assert_eq!(classes(gone), ["missing"]);
    // The KB alone cannot know a folder is gone; nothing else fails.
    let (rc, _) = kb_verify(&sb, &["--no-store"]);
    assert_eq!(rc, 0);
    // A packet deleted from under a reference fails the referencing packet even without a store.
    let sb = mirrored_seed();
    fs::remove_dir_all(sb.path("kb/rollback")).unwrap();
    let (rc, report) = kb_verify(&sb, &["--no-store"]);
    assert_eq!(rc, 1);
    assert!(classes(packet_report(&report, "rehearsal")).contains(&"missing".to_string()));
}
}

fn kb_snapshot(sb: &Sandbox) -> Vec<(String, Vec<u8>, u64)> {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(sb.path("kb"))
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| !e.path().starts_with(sb.path("kb/.evstore-staging")))
        .map(|e| {
            let meta = e.path().symlink_metadata().unwrap();
            let content = if meta.is_file() {
                fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (e.path().display().to_string(), content, meta.ino())
        })
        .collect()
}

on_both_backends! {
fn re_mirror_is_a_no_op_and_a_conflict_is_refused() {
    let sb = mirrored_seed();
    let before = kb_snapshot(&sb);
    let (rc, again) = sb.json(&["mirror", "rehearsal", "kb", "--dedup", "reference"]);
    assert_eq!(rc, 0, "{again}");
    assert_eq!(again["action"], "unchanged");
    assert_eq!(kb_snapshot(&sb), before);
    let out = sb.run(&["mirror", "rollback", "kb", "--as", "rehearsal"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("append-only"), "{}", stderr(&out));
    assert_eq!(kb_snapshot(&sb), before);
    // Events: every mirror and every verification is in the log.
    let (_, log) = sb.json(&["log"]);
    let kinds: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "mirror").count(), 3);
    assert!(kinds.contains(&"kb-verify"));
}
}

#[test]
fn escapes_are_refused_and_the_kb_is_unchanged() {
    let sb = mirrored_seed();
    fs::create_dir(sb.path("outside")).unwrap();
    symlink(sb.path("outside"), sb.path("kb/link")).unwrap();
    let before = kb_snapshot(&sb);
    for rel in [
        "../escape",
        "/tmp/abs",
        "a/../../b",
        "./x",
        "link/p",
        "link",
        ".evstore-staging/x",
    ] {
        let out = sb.run(&["mirror", "rollback", "kb", "--as", rel]);
        assert_eq!(code(&out), 2, "--as {rel}: {}", stderr(&out));
        assert_eq!(kb_snapshot(&sb), before, "--as {rel}");
    }
    assert_eq!(fs::read_dir(sb.path("outside")).unwrap().count(), 0);
    // A KB inside the store is refused.
    fs::create_dir(sb.store().join("kb-inside")).unwrap();
    let out = sb.run(&[
        "mirror",
        "rollback",
        sb.store().join("kb-inside").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("inside the store"));
}

#[test]
fn reference_mode_refuses_a_packet_holding_the_references_file_name() {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("kb")).unwrap();
    sb.write("p/KB_REFERENCES.txt", "not metadata\n");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    let out = sb.run(&["mirror", "p", "kb", "--dedup", "reference"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("KB_REFERENCES.txt"));
    // As a copy it is an ordinary packet file.
    assert_eq!(code(&sb.run(&["mirror", "p", "kb"])), 0);
    let (rc, report) = kb_verify(&sb, &[]);
    assert_eq!(rc, 0, "{report}");
}

on_both_backends! {
fn hardlink_mode_links_to_the_existing_copy() {
    use std::os::unix::fs::MetadataExt;
    let sb = Sandbox::new();
    fs::create_dir(sb.path("kb")).unwrap();
    seed_shaped(&sb);
    assert_eq!(code(&sb.run(&["mirror", "rollback", "kb"])), 0);
    let (rc, out) = sb.json(&["mirror", "rehearsal", "kb", "--dedup", "hardlink"]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(out["files_hardlinked"], 1);
    let v = "validator/hardened_dryrun_validator.py";
    let a = fs::metadata(sb.path(&format!("kb/rollback/{v}"))).unwrap();
    let b = fs::metadata(sb.path(&format!("kb/rehearsal/{v}"))).unwrap();
    assert_eq!(a.ino(), b.ino());
    let (rc, report) = kb_verify(&sb, &[]);
    assert_eq!(rc, 0, "{report}");
}
}

on_both_backends! {
fn a_mirror_killed_at_any_moment_leaves_no_partial_packet_folder() {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("kb")).unwrap();
    for i in 0..300 {
        sb.write(
            &format!("big/d{}/f{i}.txt", i % 10),
            random_bytes(2048 + i, i as u64),
        );
    }
    assert_eq!(code(&sb.run(&["ingest", "big"])), 0);
    let rounds: u64 = std::env::var("EVSTORE_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut dests: Vec<PathBuf> = Vec::new();
    for round in 0..rounds {
        let rel = format!("copies/r{round}");
        let mut child = sb
            .command()
            .args(["mirror", "big", "kb", "--as", &rel])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + (round * 37) % 120));
        let _ = child.kill();
        let _ = child.wait();
        let dest = sb.path(&format!("kb/{rel}"));
        if dest.exists() {
            // Whatever is visible at the destination is complete.
            let check = Command::new("sha256sum")
                .args(["-c", "--strict", "--quiet", "HASH_MANIFEST.txt"])
                .current_dir(&dest)
                .output()
                .unwrap();
            assert!(check.status.success(), "round {round}: partial packet");
            assert_eq!(regular_files(&dest).len(), 301, "round {round}");
        }
        dests.push(dest);
    }
    // The KB as a whole verifies (staging leftovers are only a note), and every mirror can be
    // completed afterwards.
    let (rc, report) = kb_verify(&sb, &[]);
    assert_eq!(rc, 0, "{report}");
    for round in 0..rounds {
        let rel = format!("copies/r{round}");
        let out = sb.run(&["mirror", "big", "kb", "--as", &rel]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let (rc, report) = kb_verify(&sb, &[]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["packets_checked"], rounds);
    // `kb gc-staging` removes what the killed mirrors left in staging, and nothing else.
    let published = kb_snapshot(&sb);
    let (rc, gc) = sb.json(&["kb", "gc-staging", "kb"]);
    assert_eq!(rc, 0, "{gc}");
    assert!(gc["left_alone"].as_array().unwrap().is_empty(), "{gc}");
    assert_eq!(
        fs::read_dir(sb.path("kb/.evstore-staging"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(kb_snapshot(&sb), published);
    let (rc, report) = kb_verify(&sb, &[]);
    assert_eq!(rc, 0, "{report}");
    assert!(!report["notes"].to_string().contains("staging"), "{report}");
}
}

#[test]
fn gc_staging_removes_only_mirror_leftovers_and_waits_for_no_mirror() {
    let sb = mirrored_seed();
    let staging = sb.path("kb/.evstore-staging");
    fs::create_dir_all(staging.join("mirror-left/packet/reports")).unwrap();
    fs::write(staging.join("mirror-left/packet/reports/r.json"), "{}\n").unwrap();
    fs::write(staging.join("notes.txt"), "someone else's\n").unwrap();
    fs::create_dir(staging.join("other")).unwrap();
    let published = kb_snapshot(&sb);

    // A live mirror holds the shared side of the staging lock: gc refuses and removes nothing.
    let held = fs::File::open(&staging).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockShared).unwrap();
    let out = sb.run(&["kb", "gc-staging", "kb"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mirror into this KB is in progress"),
        "{}",
        stderr(&out)
    );
    assert!(staging.join("mirror-left").exists());
    drop(held);

    let (rc, gc) = sb.json(&["kb", "gc-staging", "kb"]);
    assert_eq!(rc, 0, "{gc}");
    assert_eq!(gc["removed"], serde_json::json!(["mirror-left"]));
    assert_eq!(gc["left_alone"], serde_json::json!(["notes.txt", "other"]));
    assert!(!staging.join("mirror-left").exists());
    assert_eq!(
        fs::read_to_string(staging.join("notes.txt")).unwrap(),
        "someone else's\n"
    );
    assert_eq!(kb_snapshot(&sb), published);
    // Mirrors still work after a clean-up, and a second clean-up has nothing to do.
    let out = sb.run(&["mirror", "rollback", "kb", "--as", "again/rollback"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (rc, gc) = sb.json(&["kb", "gc-staging", "kb"]);
    assert_eq!(rc, 0, "{gc}");
    assert_eq!(gc["removed"], serde_json::json!([]));
}

#[test]
fn gc_staging_refuses_a_symlinked_staging_folder_and_touches_nothing() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("kb")).unwrap();
    fs::create_dir_all(sb.path("elsewhere/mirror-precious")).unwrap();
    fs::write(sb.path("elsewhere/mirror-precious/data"), "keep\n").unwrap();
    symlink("../elsewhere", sb.path("kb/.evstore-staging")).unwrap();
    let out = sb.run_storeless(&["kb", "gc-staging", "kb"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(".evstore-staging"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(sb.path("elsewhere/mirror-precious/data")).unwrap(),
        "keep\n"
    );
    // A KB without a staging folder has nothing to clean.
    fs::create_dir_all(sb.path("kb2")).unwrap();
    let out = sb.run_storeless(&["kb", "gc-staging", "kb2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
