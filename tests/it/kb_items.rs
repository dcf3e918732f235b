//! Issue 12, items 4, 5, 7, 8, 13 and 14: a refused ingest creates nothing (never a store inside
//! the packet), a mirror never lands inside or above a published packet folder, `verify` resolves
//! a KB packet folder's references, a packet may embed a sealed packet, a URL is never a store
//! path, and a command that resolves `NAME` says which version it used.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::sandbox::*;

/// Every stored packet, exported into a fresh folder outside the sandbox, as a tree snapshot.
fn exports(sb: &Sandbox) -> Vec<(String, Vec<TreeEntry>)> {
    let (rc, listed) = sb.json(&["ls"]);
    assert_eq!(rc, 0, "{listed}");
    let mut out = Vec::new();
    for packet in listed["packets"].as_array().unwrap() {
        let label = packet["packet"].as_str().unwrap().to_string();
        let dest = tempfile::tempdir().unwrap();
        let target = dest.path().join("out");
        let out_run = sb.run(&["export", &label, target.to_str().unwrap()]);
        assert_eq!(code(&out_run), 0, "{}", stderr(&out_run));
        out.push((label, tree_snapshot(&target)));
    }
    assert!(!out.is_empty(), "no packet to compare");
    out
}

/// Run the binary in `cwd` with no `--store` and no `$EVSTORE_STORE`.
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    evstore_command()
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn leftovers_named(dir: &Path, prefix: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

// ---- item 4 ---------------------------------------------------------------------------------

#[test]
fn regression_refused_ingest_never_leaves_a_store_inside_the_packet() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "p");
    let sealed = sb.run_storeless(&["seal", "p"]);
    assert_eq!(code(&sealed), 0, "{}", stderr(&sealed));
    let (_, hash_before) = sb.json(&["hash", "p"]);
    let before = tree_snapshot(&packet);

    // `cd PACKET && evstore ingest .` with no store configured: the default ./.evstore would be
    // inside the packet.
    let out = run_in(&packet, &["ingest", "."]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lies inside this folder"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("created a new store"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree_snapshot(&packet), before, "the packet folder changed");

    // The same with the store named inside the packet, by path or through the environment.
    let out = sb.run_storeless(&["--store", "p/.evstore", "ingest", "p"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(tree_snapshot(&packet), before, "the packet folder changed");
    let out = sb
        .command_storeless()
        .args(["--json", "ingest", "p"])
        .env("EVSTORE_STORE", "p/sub/../deeper/store")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["class"], "operational", "{doc}");
    assert_eq!(tree_snapshot(&packet), before, "the packet folder changed");

    // Through a symlink into the packet, also after a `..` out of a folder still to be created.
    fs::create_dir(sb.path("elsewhere")).unwrap();
    symlink(&packet, sb.path("elsewhere/into-p")).unwrap();
    for store in ["elsewhere/into-p/store", "elsewhere/new/../into-p/store"] {
        let out = sb.run_storeless(&["--store", store, "ingest", "p"]);
        assert_eq!(code(&out), 2, "{store}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("lies inside this folder"),
            "{}",
            stderr(&out)
        );
        assert_eq!(
            tree_snapshot(&packet),
            before,
            "{store}: the packet folder changed"
        );
    }
    assert!(!sb.path("elsewhere/new").exists());

    // The packet is untouched, so it still verifies and hashes as before.
    let out = sb.run_storeless(&["verify", "p"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let (_, hash_after) = sb.json(&["hash", "p"]);
    assert_eq!(hash_after, hash_before);
}

#[test]
fn regression_refused_ingest_into_an_existing_store_inside_the_packet_changes_nothing() {
    // A store already inside the folder (and packets in it): the refusal comes before the
    // catalog is opened, so neither the folder nor the store changes.
    let sb = Sandbox::new();
    sb.write("outer/a.txt", "a\n");
    write_packet(&sb, "good");
    let store = sb.path("outer/.evstore");
    let store_arg = store.to_str().unwrap();
    let out = sb.run_storeless(&["--store", store_arg, "ingest", "good"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let before = tree_snapshot(&sb.path("outer"));
    let out = sb.run_storeless(&["--store", store_arg, "ingest", "outer"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lies inside this folder"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        tree_snapshot(&sb.path("outer")),
        before,
        "folder or store changed"
    );
    let out = sb.run_storeless(&["--store", store_arg, "fsck"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn regression_refused_ingest_of_the_folder_holding_the_store_keeps_every_packet() {
    let sb = Sandbox::new();
    write_packet(&sb, "good");
    sb.write("other/x.txt", "x\n");
    for name in ["good", "other"] {
        let (rc, out) = sb.json(&["ingest", name]);
        assert_eq!(rc, 0, "{out}");
    }
    let exported = exports(&sb);
    let store_before = sb.store_snapshot();
    let sandbox_before = tree_snapshot(sb.dir.path());
    // The sandbox holds the store: ingesting it is refused before anything is opened.
    let out = sb.run(&["ingest", ".", "--name", "everything"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lies inside this folder"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree_snapshot(sb.dir.path()), sandbox_before);
    assert_eq!(sb.store_snapshot(), store_before);
    assert_eq!(exports(&sb), exported);
}

#[test]
fn regression_refused_first_ingest_creates_no_store_and_no_folder() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "p");
    let out = sb.run_storeless(&["seal", "p"]);
    assert_eq!(code(&out), 0);
    // Drift after sealing: refused (exit 1) only after every file was read.
    sb.write("p/report.json", "{\"status\": \"PASS - rehearsal only\"}\n");
    let before = tree_snapshot(&packet);
    let out = sb.run_storeless(&["--store", "new/deep/store", "ingest", "p"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("created a new store"),
        "{}",
        stderr(&out)
    );
    assert!(
        !sb.path("new").exists(),
        "a refused first ingest left folders"
    );
    assert!(leftovers_named(sb.dir.path(), ".evstore-init-").is_empty());
    assert_eq!(tree_snapshot(&packet), before);

    // A symlink in the packet: refused (exit 2), nothing created either, also in the default
    // location.
    let out = sb.run_storeless(&["seal", "p", "--force"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    symlink("report.json", sb.path("p/link")).unwrap();
    let out = sb.run_storeless(&["ingest", "p"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        !sb.path(".evstore").exists(),
        "a refused first ingest left a store"
    );
    assert!(leftovers_named(sb.dir.path(), ".evstore-init-").is_empty());

    // Negative control: once the packet is fine, the first ingest creates the store whole.
    fs::remove_file(sb.path("p/link")).unwrap();
    let out = sb.run_storeless(&["--store", "new/deep/store", "ingest", "p"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("created a new store"),
        "{}",
        stderr(&out)
    );
    let out = sb.run_storeless(&["--store", "new/deep/store", "fsck"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(leftovers_named(&sb.path("new/deep"), ".evstore-init-").is_empty());
}

// ---- item 5 ---------------------------------------------------------------------------------

fn mirrored_good() -> Sandbox {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("kb")).unwrap();
    write_packet(&sb, "good");
    sb.write("other/x.txt", "x\n");
    for name in ["good", "other"] {
        let (rc, out) = sb.json(&["ingest", name]);
        assert_eq!(rc, 0, "{out}");
    }
    let (rc, out) = sb.json(&["mirror", "good", "kb"]);
    assert_eq!(rc, 0, "{out}");
    sb
}

fn assert_mirror_refused(sb: &Sandbox, args: &[&str], names: &str) {
    let kb_before = tree_snapshot(&sb.path("kb"));
    let exported = exports(sb);
    let out = sb.run(args);
    assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    let kb = fs::canonicalize(sb.path("kb")).unwrap();
    let named = kb.join(names).display().to_string();
    assert!(
        stderr(&out).contains(&named),
        "{args:?} should name {named}: {}",
        stderr(&out)
    );
    assert_eq!(
        tree_snapshot(&sb.path("kb")),
        kb_before,
        "{args:?} changed the KB"
    );
    assert_eq!(exports(sb), exported, "{args:?} changed the store");
}

#[test]
fn regression_mirror_as_inside_a_published_packet_folder_is_refused() {
    let sb = mirrored_good();
    for target in ["good/inner", "good/a", "good/new/deeper", "good/logs/x"] {
        assert_mirror_refused(&sb, &["mirror", "other", "kb", "--as", target], "good");
        assert_mirror_refused(&sb, &["mirror", "good", "kb", "--as", target], "good");
    }
    let out = sb.run(&["mirror", "good", "kb", "--as", "good/inner"]);
    assert!(stderr(&out).contains("lies inside the published packet folder"));
    // The earlier mirror still verifies, with and without the store.
    for extra in [&[][..], &["--no-store"][..]] {
        let mut args = vec!["kb", "verify", "kb"];
        args.extend_from_slice(extra);
        let (rc, report) = sb.json(&args);
        assert_eq!(rc, 0, "{report}");
        assert_eq!(report["packets_checked"], 1, "{report}");
    }
    // Negative control: a sibling path is fine.
    let (rc, out) = sb.json(&["mirror", "other", "kb", "--as", "good-inner"]);
    assert_eq!(rc, 0, "{out}");
}

#[test]
fn regression_mirror_above_a_published_packet_folder_is_refused() {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("kb")).unwrap();
    write_packet(&sb, "good");
    sb.write("other/x.txt", "x\n");
    for name in ["good", "other"] {
        let (rc, out) = sb.json(&["ingest", name]);
        assert_eq!(rc, 0, "{out}");
    }
    let (rc, out) = sb.json(&["mirror", "good", "kb", "--as", "group/good"]);
    assert_eq!(rc, 0, "{out}");
    assert_mirror_refused(
        &sb,
        &["mirror", "other", "kb", "--as", "group"],
        "group/good",
    );
    let out = sb.run(&["mirror", "other", "kb", "--as", "group"]);
    assert!(
        stderr(&out).contains("holds the published packet folder"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn regression_mirror_into_a_kb_that_is_a_packet_folder_is_refused() {
    // The KB root itself holds a seal: every folder below it is part of that packet.
    let sb = mirrored_good();
    let out = sb.run(&["mirror", "other", "kb/good"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("lies inside the published packet folder"));
    let (rc, report) = sb.json(&["kb", "verify", "kb"]);
    assert_eq!(rc, 0, "{report}");
}

#[test]
fn regression_mirror_inside_or_above_a_recorded_mirror_is_refused_while_its_folder_is_gone() {
    let sb = mirrored_good();
    let (rc, out) = sb.json(&["mirror", "other", "kb", "--as", "shelf/other"]);
    assert_eq!(rc, 0, "{out}");
    fs::remove_dir_all(sb.path("kb/shelf")).unwrap();
    assert_mirror_refused(
        &sb,
        &["mirror", "good", "kb", "--as", "shelf/other/inner"],
        "shelf/other",
    );
    assert_mirror_refused(
        &sb,
        &["mirror", "good", "kb", "--as", "shelf"],
        "shelf/other",
    );
    // Negative control: the recorded mirror itself can be published again.
    let (rc, out) = sb.json(&["mirror", "other", "kb", "--as", "shelf/other"]);
    assert_eq!(rc, 0, "{out}");
}

// ---- item 7 ---------------------------------------------------------------------------------

/// Two packets sharing `validator/v.py`; `b` mirrored with `--dedup reference` after `a`.
fn referenced_kb() -> Sandbox {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("kb")).unwrap();
    for (name, own) in [("a", "one"), ("b", "two")] {
        sb.write(
            &format!("{name}/validator/v.py"),
            "print('shared validator')\n",
        );
        sb.write(&format!("{name}/{own}.txt"), format!("{own}\n"));
        let (rc, out) = sb.json(&["ingest", name]);
        assert_eq!(rc, 0, "{out}");
    }
    let (rc, out) = sb.json(&["mirror", "a", "kb"]);
    assert_eq!(rc, 0, "{out}");
    let (rc, out) = sb.json(&["mirror", "b", "kb", "--dedup", "reference"]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(out["files_referenced"], 1, "{out}");
    assert!(!sb.path("kb/b/validator/v.py").exists());
    sb
}

fn verify_json(sb: &Sandbox, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    sb.json(&all)
}

fn failing_paths(report: &Value) -> Vec<String> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn regression_verify_passes_on_a_folder_mirrored_with_dedup_reference() {
    let sb = referenced_kb();
    let (rc, report) = verify_json(&sb, &["kb/b"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["verdict"], "PASS");
    assert_eq!(report["counts"]["files"], 2, "{report}");
    assert!(
        report["notes"].to_string().contains("KB_REFERENCES.txt"),
        "{report}"
    );
    // Against the stored packet too (executable bits of referenced files are not compared).
    let (rc, report) = verify_json(&sb, &["kb/b", "--against", "b"]);
    assert_eq!(rc, 0, "{report}");
    // And with the KB named explicitly, from another working directory.
    let out = run_in(&sb.path("kb"), &["verify", "b", "--kb", "."]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    // What sha256sum -c says in such a folder (as the docs describe): the referenced file is
    // missing there.
    let check = Command::new("sha256sum")
        .args(["-c", "HASH_MANIFEST.txt"])
        .current_dir(sb.path("kb/b"))
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("validator/v.py: FAILED open or read"));
}

#[test]
fn regression_verify_fails_when_a_reference_resolves_to_other_bytes_or_nothing() {
    let sb = referenced_kb();
    let target = sb.path("kb/a/validator/v.py");
    let original = fs::read(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();

    // Other bytes at the referenced path: FAIL naming the packet file.
    fs::write(&target, "print('edited')\n").unwrap();
    for args in [&["kb/b"][..], &["kb/b", "--against", "b"][..]] {
        let (rc, report) = verify_json(&sb, args);
        assert_eq!(rc, 1, "{args:?}: {report}");
        assert_eq!(failing_paths(&report), vec!["validator/v.py"], "{report}");
    }

    // Nothing there: FAIL, the file missing and the reference named.
    fs::remove_file(&target).unwrap();
    let (rc, report) = verify_json(&sb, &["kb/b"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(
        failing_paths(&report),
        vec!["KB_REFERENCES.txt", "validator/v.py"],
        "{report}"
    );
    let out = sb.run(&["verify", "kb/b"]);
    assert!(
        stdout(&out).contains("a/validator/v.py"),
        "{}",
        stdout(&out)
    );

    // A symlink on the way to the referenced bytes is never followed.
    let elsewhere = tempfile::tempdir().unwrap();
    fs::create_dir(elsewhere.path().join("validator")).unwrap();
    fs::write(elsewhere.path().join("validator/v.py"), &original).unwrap();
    fs::rename(sb.path("kb/a"), sb.path("a-moved")).unwrap();
    symlink(elsewhere.path(), sb.path("kb/a")).unwrap();
    let (rc, report) = verify_json(&sb, &["kb/b"]);
    assert_eq!(rc, 1, "{report}");
    assert!(report.to_string().contains("symbolic link"), "{report}");
    fs::remove_file(sb.path("kb/a")).unwrap();
    fs::rename(sb.path("a-moved"), sb.path("kb/a")).unwrap();

    // A references file pointing outside the KB is refused.
    fs::write(&target, &original).unwrap();
    let refs = sb.path("kb/b/KB_REFERENCES.txt");
    let text = fs::read_to_string(&refs).unwrap();
    fs::write(&refs, text.replace("\ta/validator", "\t../a/validator")).unwrap();
    let (rc, report) = verify_json(&sb, &["kb/b"]);
    assert_eq!(rc, 1, "{report}");
    assert!(failing_paths(&report).contains(&"KB_REFERENCES.txt".to_string()));

    // Negative control: restored, it passes again.
    fs::write(&refs, &text).unwrap();
    let (rc, report) = verify_json(&sb, &["kb/b"]);
    assert_eq!(rc, 0, "{report}");
}

#[test]
fn regression_verify_of_a_referencing_folder_outside_its_kb_needs_the_kb() {
    let sb = referenced_kb();
    // A copy outside the KB: no KB to resolve its references in, so the check cannot be carried
    // out (exit 2), never a pass; naming a KB it is not inside is refused too.
    let copy = sb.path("copy");
    let out = Command::new("cp")
        .args(["-r", "kb/b", "copy"])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = sb.run(&["verify", copy.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--kb"), "{}", stderr(&out));
    let out = sb.run(&["verify", "copy", "--kb", "kb"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("not a folder inside the KB"));

    // Without the staging folder the KB is not found by itself; --kb names it.
    fs::remove_dir(sb.path("kb/.evstore-staging")).unwrap();
    let out = sb.run(&["verify", "kb/b"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = sb.run(&["verify", "kb/b", "--kb", "kb"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

// ---- item 8 ---------------------------------------------------------------------------------

#[test]
fn regression_a_packet_that_embeds_a_sealed_packet_mirrors_and_passes_kb_verify() {
    let sb = Sandbox::new();
    sb.write("p/r", "a\n");
    sb.write("p/embedded/x", "b\n");
    for dir in ["p/embedded", "p"] {
        let out = sb.run_storeless(&["seal", dir]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let (rc, out) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{out}");
    fs::create_dir(sb.path("kb")).unwrap();
    let (rc, out) = sb.json(&["mirror", "p", "kb"]);
    assert_eq!(rc, 0, "{out}");
    for extra in [&[][..], &["--no-store"][..]] {
        let mut args = vec!["kb", "verify", "kb"];
        args.extend_from_slice(extra);
        let (rc, report) = sb.json(&args);
        assert_eq!(rc, 0, "{extra:?}: {report}");
        assert_eq!(report["packets_checked"], 1, "{report}");
        assert_eq!(report["packets"][0]["folder"], "p", "{report}");
        assert_eq!(report["packets"][0]["report"]["counts"]["files"], 3);
    }
    let out = sb.run(&["kb", "verify", "kb"]);
    assert!(!stdout(&out).contains("unknown packet"), "{}", stdout(&out));

    // The embedded files are checked as the outer packet's files.
    let x = sb.path("kb/p/embedded/x");
    fs::set_permissions(&x, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&x, "b\r\n").unwrap();
    let (rc, report) = sb.json(&["kb", "verify", "kb"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["packets_checked"], 1, "{report}");
    assert_eq!(report["packets"][0]["classes"], serde_json::json!(["crlf"]));
}

// ---- item 13 --------------------------------------------------------------------------------

#[test]
fn regression_a_url_store_path_is_refused_not_made_a_local_folder() {
    let sb = Sandbox::new();
    write_packet(&sb, "good");
    // (`s3://` store URLs are S3 stores since issue 14: tests/it/s3_store.rs.)
    for url in [
        "ftp://bkt/ev",
        "https://example.com/ev",
        "file:///tmp/ev",
        "S3+x://b",
    ] {
        for args in [
            &["ingest", "good"][..],
            &["init"][..],
            &["ls"][..],
            &["fsck"][..],
            &["gc-temp"][..],
            &["reindex"][..],
        ] {
            let mut all = vec!["--json", "--store", url];
            all.extend_from_slice(args);
            let out = sb.run_storeless(&all);
            assert_eq!(code(&out), 2, "{url} {args:?}: {}", stderr(&out));
            assert!(stderr(&out).contains("is a URL"), "{}", stderr(&out));
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(doc["error"]["class"], "operational");
            // The same through the environment.
            let out = sb
                .command_storeless()
                .args(args)
                .env("EVSTORE_STORE", url)
                .output()
                .unwrap();
            assert_eq!(code(&out), 2, "$EVSTORE_STORE={url} {args:?}");
            assert!(stderr(&out).contains("is a URL"), "{}", stderr(&out));
        }
    }
    let names: Vec<String> = fs::read_dir(sb.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["good".to_string()], "a folder was created");
    // Negative control: a local folder with a colon, named on purpose.
    let out = sb.run_storeless(&["--store", "./st:1", "ingest", "good"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

// ---- item 14 --------------------------------------------------------------------------------

/// `p@1`, then `p@2` with another tree, then the folder back as it was for `p@1`.
fn two_versions() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("p/report.txt", "first\n");
    let (rc, out) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{out}");
    sb.write("p/report.txt", "second\n");
    let (rc, out) = sb.json(&["ingest", "p"]);
    assert_eq!((rc, out["packet"].as_str()), (0, Some("p@2")), "{out}");
    sb.write("p/report.txt", "first\n");
    sb
}

#[test]
fn regression_ingest_of_an_earlier_tree_names_the_latest_version() {
    let sb = two_versions();
    let out = sb.run(&["ingest", "p"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("already archived as p@1"), "{text}");
    assert!(text.contains("the latest version is p@2"), "{text}");
    let (rc, doc) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{doc}");
    assert_eq!(doc["created"], false);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["latest_version"], 2);
    // Negative control: the latest tree says nothing about another version.
    sb.write("p/report.txt", "second\n");
    let out = sb.run(&["ingest", "p"]);
    assert!(!stdout(&out).contains("latest version"), "{}", stdout(&out));
    let (_, doc) = sb.json(&["ingest", "p"]);
    assert_eq!(
        (doc["version"].as_u64(), doc["latest_version"].as_u64()),
        (Some(2), Some(2))
    );
}

#[test]
fn regression_every_command_that_resolves_a_name_says_which_version_it_used() {
    let sb = two_versions();
    fs::create_dir(sb.path("kb")).unwrap();
    let export_dest = sb.path("exported");
    let export_arg = export_dest.to_str().unwrap().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["show", "p"],
        vec!["manifest", "p"],
        vec!["cat", "p", "report.txt"],
        vec!["export", "p", &export_arg],
        vec!["mirror", "p", "kb"],
        vec!["verify", "p", "--against", "p"],
        vec!["diff", "packet:p", "folder:p"],
        vec!["runs", "p"],
        vec!["rerun", "p", "--", "true"],
    ];
    for args in &commands {
        let out = sb.run(args);
        assert!(
            stderr(&out).contains("p is p@2, its latest version"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = sb.run(&["mirror", "p", "kb"]);
    assert!(stdout(&out).contains("p@2"), "{}", stdout(&out));
    // A named version needs no note; a hash prefix says what it matched.
    let out = sb.run(&["show", "p@1"]);
    assert_eq!(code(&out), 0);
    assert!(!stderr(&out).contains(" is p@"), "{}", stderr(&out));
    let (_, shown) = sb.json(&["show", "p@1"]);
    let prefix = shown["packet_tree_sha256"].as_str().unwrap()[..12].to_string();
    let out = sb.run(&["show", &prefix]);
    assert!(
        stderr(&out).contains(&format!("{prefix} is p@1 (matched by hash prefix)")),
        "{}",
        stderr(&out)
    );
    // --json documents carry the version instead.
    for args in [
        &["manifest", "p"][..],
        &["runs", "p"][..],
        &["mirror", "p", "kb"][..],
    ] {
        let (rc, doc) = sb.json(args);
        assert_eq!(
            (rc, doc["packet"].as_str()),
            (0, Some("p@2")),
            "{args:?}: {doc}"
        );
    }
    let (_, doc) = sb.json(&["runs"]);
    assert!(doc["packet"].is_null(), "{doc}");
}
