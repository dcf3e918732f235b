//! Rerun reproducibility with real generator scripts.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::sandbox::*;

fn example_packet() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/example-packet"))
}

/// Archive a packet folder written by `write`, named `name`.
fn archived(sb: &Sandbox, name: &str, files: &[(&str, &str)], extra: &[&str]) {
    for (path, text) in files {
        sb.write(&format!("{name}/{path}"), text);
    }
    let mut args = vec!["ingest", name];
    args.extend_from_slice(extra);
    let (rc, out) = sb.json(&args);
    assert_eq!(rc, 0, "{out}");
}

fn rerun(sb: &Sandbox, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["rerun"];
    all.extend_from_slice(args);
    sb.json(&all)
}

#[test]
fn the_example_packets_rerun_sh_passes() {
    let sb = Sandbox::new();
    let (rc, _) = sb.json(&["ingest", example_packet().to_str().unwrap()]);
    assert_eq!(rc, 0);
    let script = example_packet().join("rerun.sh");
    let out = sb.run(&[
        "rerun",
        "example-packet",
        "--",
        "bash",
        script.to_str().unwrap(),
        "{out}",
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text
        .lines()
        .last()
        .unwrap()
        .starts_with("PASS (PACKET_TREE MATCH) 6dc57ee0"));
    // The attestation is listed, stored as an object, and the store stays sound.
    let (rc, runs) = sb.json(&["runs", "example-packet"]);
    assert_eq!(rc, 0);
    let list = runs["runs"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["verdict"], "PASS");
    let id = list[0]["attestation"].as_str().unwrap();
    assert!(sb
        .store()
        .join("objects")
        .join(&id[..2])
        .join(&id[2..])
        .exists());
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}

on_both_backends! {
fn a_generator_embedding_the_time_fails_and_names_the_file() {
    let sb = Sandbox::new();
    archived(
        &sb,
        "p",
        &[("a.txt", "fixed\n"), ("logs/time.txt", "generated at 0\n")],
        &[],
    );
    sb.write(
        "gen.sh",
        "mkdir -p \"$EVSTORE_OUT/logs\"\necho fixed > \"$EVSTORE_OUT/a.txt\"\n\
         echo \"generated at $(date +%s%N)\" > \"$EVSTORE_OUT/logs/time.txt\"\n",
    );
    let (rc, report) = rerun(&sb, &["p", "--", "sh", "gen.sh"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["verdict"], "FAIL");
    let files = report["diff"]["files"].as_array().unwrap();
    let time = files.iter().find(|f| f["path"] == "logs/time.txt").unwrap();
    assert_eq!(time["classes"][0], "content");
    let ok = files.iter().find(|f| f["path"] == "a.txt").unwrap();
    assert_eq!(ok["status"], "ok");
    let out = sb.run(&["rerun", "p", "--", "sh", "gen.sh"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().last().unwrap(), "FAIL (PACKET_TREE MISMATCH)");
    assert!(text.contains("FAIL  logs/time.txt  [content]"), "{text}");
}
}

on_both_backends! {
fn crlf_on_the_second_run_is_classified_crlf() {
    let sb = Sandbox::new();
    archived(
        &sb,
        "p",
        &[("data/report.txt", "line one\nline two\n")],
        &[],
    );
    sb.write(
        "gen.sh",
        "mkdir -p \"$EVSTORE_OUT/data\"\n\
         if [ -e state/ran ]; then printf 'line one\\r\\nline two\\r\\n'; else printf 'line one\\nline two\\n'; fi > \"$EVSTORE_OUT/data/report.txt\"\n\
         mkdir -p state && touch state/ran\n",
    );
    let (rc, report) = rerun(&sb, &["p", "--runs", "2", "--", "sh", "gen.sh"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(
        report["runs"][0]["observed_sha256"],
        report["expected_sha256"]
    );
    assert_eq!(report["nondeterministic"], true);
    assert_eq!(
        report["varying_files"],
        serde_json::json!(["data/report.txt"])
    );
    let file = &report["diff"]["files"][0];
    assert_eq!(file["path"], "data/report.txt");
    assert_eq!(file["classes"], serde_json::json!(["crlf"]));
}
}

on_both_backends! {
fn random_output_fails_as_nondeterministic_with_three_runs() {
    let sb = Sandbox::new();
    archived(&sb, "p", &[("n.txt", "0\n")], &[]);
    sb.write("gen.sh", "echo $RANDOM$RANDOM > \"$EVSTORE_OUT/n.txt\"\n");
    let (rc, report) = rerun(&sb, &["p", "--runs", "3", "--", "bash", "gen.sh"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["nondeterministic"], true);
    assert_eq!(report["runs"].as_array().unwrap().len(), 3);
    let reasons = report["reasons"].to_string();
    assert!(
        reasons.contains("nondeterministic between runs"),
        "{reasons}"
    );
    assert!(reasons.contains("n.txt"), "{reasons}");
}
}

on_both_backends! {
fn a_failing_command_a_timeout_and_an_empty_output_each_fail() {
    let sb = Sandbox::new();
    archived(&sb, "p", &[("a.txt", "a\n")], &[]);
    sb.write("a.txt.src", "a\n");
    // Exits 1 even though it wrote the right bytes.
    let (rc, report) = rerun(
        &sb,
        &[
            "p",
            "--",
            "sh",
            "-c",
            "cp a.txt.src \"$EVSTORE_OUT/a.txt\"; exit 1",
        ],
    );
    assert_eq!(rc, 1);
    assert_eq!(
        report["runs"][0]["observed_sha256"],
        report["expected_sha256"]
    );
    assert!(report["reasons"][0]
        .as_str()
        .unwrap()
        .contains("exited with code 1"));
    // Killed by the timeout (its child too: the whole process group).
    let (rc, report) = rerun(
        &sb,
        &[
            "p",
            "--timeout",
            "1",
            "--",
            "sh",
            "-c",
            "sleep 30 & sleep 30",
        ],
    );
    assert_eq!(rc, 1);
    assert_eq!(report["runs"][0]["timed_out"], true);
    assert!(report["reasons"][0].as_str().unwrap().contains("timeout"));
    // Writes nothing.
    let (rc, report) = rerun(&sb, &["p", "--", "true"]);
    assert_eq!(rc, 1);
    assert!(report["reasons"][0]
        .as_str()
        .unwrap()
        .contains("wrote no file"));
    // A command that cannot start is not a FAIL of the packet but an operational error (exit 2),
    // and records nothing (issue 12; see regression_rerun_of_a_generator_that_cannot_start_*).
    let (rc, report) = rerun(&sb, &["p", "--", "/no/such/generator"]);
    assert_eq!(rc, 2, "{report}");
    assert!(report["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot start"));
    let (_, runs) = sb.json(&["runs"]);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 3);
    assert!(runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["verdict"] == "FAIL"));
}
}

on_both_backends! {
fn source_date_epoch_is_honoured() {
    let sb = Sandbox::new();
    archived(
        &sb,
        "p",
        &[("built.txt", "Tue Nov 14 22:13:20 UTC 2023\n")],
        &["--source-date-epoch", "1700000000"],
    );
    sb.write(
        "gen.sh",
        "date -d @$SOURCE_DATE_EPOCH > \"$EVSTORE_OUT/built.txt\"\n",
    );
    let (rc, report) = rerun(&sb, &["p", "--", "sh", "gen.sh"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["environment"]["SOURCE_DATE_EPOCH"], "1700000000");
    assert_eq!(report["environment"]["TZ"], "UTC");
    assert_eq!(report["environment_mode"], "controlled");
}
}

#[test]
fn the_controlled_environment_hides_the_callers() {
    let sb = Sandbox::new();
    archived(&sb, "p", &[("env.txt", "unset\n")], &[]);
    sb.write(
        "gen.sh",
        "echo \"${EVSTORE_SECRET:-unset}\" > \"$EVSTORE_OUT/env.txt\"\n",
    );
    let out = sb
        .command()
        .env("EVSTORE_SECRET", "leaked")
        .args(["rerun", "p", "--", "sh", "gen.sh"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    let out = sb
        .command()
        .env("EVSTORE_SECRET", "leaked")
        .args(["rerun", "p", "--keep-env", "--", "sh", "gen.sh"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
}

on_both_backends! {
fn keep_ingest_and_expect() {
    let sb = Sandbox::new();
    archived(&sb, "p", &[("a.txt", "a\n")], &[]);
    let (_, shown) = sb.json(&["show", "p"]);
    let sha = shown["packet_tree_sha256"].as_str().unwrap().to_string();
    sb.write("kept/not-empty", "x");
    let out = sb.run(&[
        "rerun",
        "p",
        "--keep",
        "kept",
        "--",
        "sh",
        "-c",
        "echo a > {out}/a.txt",
    ]);
    assert_eq!(code(&out), 2, "--keep refuses a non-empty folder");
    let (rc, report) = rerun(
        &sb,
        &[
            "p",
            "--keep",
            "kept2",
            "--ingest",
            "--",
            "sh",
            "-c",
            "echo a > {out}/a.txt",
        ],
    );
    assert_eq!(rc, 0, "{report}");
    assert_eq!(fs::read_to_string(sb.path("kept2/a.txt")).unwrap(), "a\n");
    assert_eq!(report["ingested"], "p.rerun@1");
    // --expect needs no stored packet, and no store at all.
    let bare = Sandbox::new();
    let out = bare.run_storeless(&[
        "rerun",
        "--expect",
        &sha,
        "--",
        "sh",
        "-c",
        "echo a > {out}/a.txt",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!bare.path(".evstore").exists());
    let out = bare.run_storeless(&["rerun", "--expect", "abc", "--", "true"]);
    assert_eq!(code(&out), 2);
}
}

/// Run three reruns of `p` (PASS, FAIL, and one by `--expect` with no packet) and return the
/// `runs --json` list.
fn three_recorded_runs(sb: &Sandbox) -> Value {
    archived(sb, "p", &[("a.txt", "a\n")], &[]);
    let (_, shown) = sb.json(&["show", "p"]);
    let sha = shown["packet_tree_sha256"].as_str().unwrap().to_string();
    let (rc, _) = rerun(sb, &["p", "--", "sh", "-c", "echo a > {out}/a.txt"]);
    assert_eq!(rc, 0);
    let (rc, _) = rerun(sb, &["p", "--", "sh", "-c", "echo b > {out}/a.txt"]);
    assert_eq!(rc, 1);
    let (rc, _) = rerun(
        sb,
        &["--expect", &sha, "--", "sh", "-c", "echo a > {out}/a.txt"],
    );
    assert_eq!(rc, 0);
    let (rc, runs) = sb.json(&["runs"]);
    assert_eq!(rc, 0);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 3, "{runs}");
    runs
}

/// Regression: `reindex` rebuilt packets but not `runs`, so a deleted catalog lost the list of
/// reruns although every attestation object survived.
#[test]
fn reindex_rebuilds_the_runs_list_from_attestation_objects() {
    let sb = Sandbox::new();
    let before = three_recorded_runs(&sb);
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(sb.store().join(format!("catalog.sqlite{suffix}")));
    }
    let (rc, report) = sb.json(&["reindex"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["packets"], 1);
    assert_eq!(report["runs"], 3);
    let (rc, after) = sb.json(&["runs"]);
    assert_eq!(rc, 0);
    assert_eq!(after, before);
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}

#[test]
fn fsck_names_a_runs_row_that_disagrees_with_its_attestation() {
    let sb = Sandbox::new();
    let runs = three_recorded_runs(&sb);
    let failed = runs["runs"][1].clone();
    assert_eq!(failed["verdict"], "FAIL");
    let db = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    db.execute_batch(
        "DROP TRIGGER runs_no_update; UPDATE runs SET verdict = 'PASS' WHERE verdict = 'FAIL'; \
         CREATE TRIGGER runs_no_update BEFORE UPDATE ON runs BEGIN SELECT RAISE(ABORT, 'put back'); END;",
    )
    .unwrap();
    drop(db);
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["subject"], format!("run {}", failed["id"]));
    let reason = problems[0]["reason"].as_str().unwrap();
    assert!(reason.contains("disagrees with attestation"), "{reason}");
}

#[test]
fn fsck_names_a_run_whose_attestation_object_is_missing() {
    let sb = Sandbox::new();
    let runs = three_recorded_runs(&sb);
    let id = runs["runs"][0]["attestation"].as_str().unwrap();
    let object = sb.store().join("objects").join(&id[..2]).join(&id[2..]);
    fs::remove_file(&object).unwrap();
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains(&format!("attestation {id} is missing from the store")),
        "{problems}"
    );
}

/// A well-formed attestation that names a stored packet but expects another tree hash (which
/// `evstore rerun` never writes) is named by fsck: a PASS must not be shown under the wrong packet.
#[test]
fn fsck_names_an_attestation_expecting_another_hash_than_its_packet() {
    use evstore::digest::Sha256Digest;
    use evstore::ops::rerun::{attest, RerunReport, RunResult};
    let sb = Sandbox::new();
    archived(&sb, "p", &[("a.txt", "a\n")], &[]);
    let store = evstore::store::Store::open(&sb.store()).unwrap();
    let mut catalog = evstore::catalog::Catalog::open_existing(&store.catalog_path()).unwrap();
    let packet = catalog.packets().unwrap().remove(0);
    let other = Sha256Digest::parse_hex(&"ab".repeat(32)).unwrap();
    let report = RerunReport {
        verdict: evstore::gate::Verdict::Pass,
        packet: Some("p@1".into()),
        expected_sha256: other,
        command: vec!["true".into()],
        cwd: sb.dir.path().to_path_buf(),
        environment_mode: "controlled",
        environment: Default::default(),
        runs: vec![RunResult {
            run: 1,
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            duration_ms: 1,
            observed_sha256: Some(other),
            files: 1,
            failure: None,
            output_tail: String::new(),
            out_dir: sb.path("unused"),
        }],
        nondeterministic: false,
        varying_files: vec![],
        reasons: vec![],
        diff: None,
        kept: None,
    };
    let id = attest(&store, &mut catalog, &report, Some(packet.id), None).unwrap();
    drop(catalog);
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{fsck}");
    let problems = fsck["problems"].to_string();
    assert!(
        problems.contains(&format!(
            "attestation {id} claims a rerun of p@1 but expects"
        )),
        "{problems}"
    );
}

/// Review of issue 13: when `rerun --ingest` archived the output and then could not record its
/// attestation, the error named only the attestation, and nobody learned that a packet had been
/// archived.
#[test]
fn regression_rerun_ingest_says_what_it_archived_when_the_attestation_fails() {
    let sb = Sandbox::new();
    archived(&sb, "p", &[("a.txt", "a\n")], &[]);
    // The rerun's commit marker cannot be written: refs/runs is a link (refused, never followed).
    let runs = sb.store().join("refs/runs");
    let moved = sb.path("elsewhere-runs");
    if runs.exists() {
        fs::rename(&runs, &moved).unwrap();
    } else {
        fs::create_dir(&moved).unwrap();
    }
    std::os::unix::fs::symlink(&moved, &runs).unwrap();
    let out = sb.run(&[
        "rerun",
        "p",
        "--ingest",
        "--",
        "sh",
        "-c",
        "echo a > {out}/a.txt",
    ]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("archived as p.rerun@1 before the attestation failed"),
        "{}",
        stderr(&out)
    );
    assert!(
        fs::read_dir(&moved).unwrap().next().is_none(),
        "nothing written through the link"
    );
    let (rc, listed) = sb.json(&["ls"]);
    assert_eq!(rc, 0);
    assert!(listed.to_string().contains("p.rerun@1"), "{listed}");
}
