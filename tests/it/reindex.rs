//! `reindex` and the promise that nothing committed is lost: a killed rebuild leaves the old
//! catalog or the new one, the event log survives it, records of failed ingests are never
//! revived, version numbers are never reused, and a committed packet that cannot be rebuilt
//! fails `fsck` until `forget` acknowledges it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::sandbox::{code, stderr, Sandbox};

fn object_path(store: &Path, id: &str) -> PathBuf {
    store.join("objects").join(&id[..2]).join(&id[2..])
}

/// `ls --json` as (label, packet_tree_sha256) pairs.
fn listed(sb: &Sandbox) -> Vec<(String, String)> {
    let (rc, value) = sb.json(&["ls"]);
    assert_eq!(rc, 0, "{value}");
    let mut out: Vec<(String, String)> = value["packets"]
        .as_array()
        .unwrap_or_else(|| panic!("no packets array: {value}"))
        .iter()
        .map(|p| {
            (
                format!("{}@{}", p["name"].as_str().unwrap(), p["version"]),
                p["packet_tree_sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn events(sb: &Sandbox) -> Vec<Value> {
    let (rc, value) = sb.json(&["log"]);
    assert_eq!(rc, 0, "{value}");
    value["events"].as_array().unwrap().clone()
}

fn ingest_small_packets(sb: &Sandbox, count: usize) {
    for i in 1..=count {
        sb.write(&format!("n{i}/top.json"), format!("{{\"n\": {i}}}\n"));
        sb.write(&format!("n{i}/d/a.txt"), format!("a {i}\n"));
        sb.write(&format!("n{i}/d/b.txt"), format!("b {i}\n"));
        let (rc, value) = sb.json(&["ingest", &format!("n{i}")]);
        assert_eq!(rc, 0, "{value}");
    }
}

/// Export every packet and compare it with its source folder, byte for byte.
fn assert_every_packet_exports_identical(sb: &Sandbox, count: usize, tag: &str) {
    for i in 1..=count {
        let dest = sb.path(&format!("export-{tag}-{i}"));
        let out = sb.run(&["export", &format!("n{i}@1"), dest.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "n{i}: {}", stderr(&out));
        for rel in ["top.json", "d/a.txt", "d/b.txt"] {
            assert_eq!(
                fs::read(dest.join(rel)).unwrap(),
                fs::read(sb.path(&format!("n{i}/{rel}"))).unwrap(),
                "n{i}/{rel}"
            );
        }
        fs::remove_dir_all(&dest).unwrap();
    }
}

/// Regression (issue 12, item 2): SIGKILL during `reindex --replace` left no catalog, or a
/// partial or empty one that `fsck` passed; later ingests then reused `NAME@1`. Now, after every
/// kill, every packet committed before the round is listed with its hash and exports
/// byte-identical, the log still holds every event, and `fsck` passes.
#[test]
fn regression_reindex_killed_at_random_moments_loses_no_committed_packet() {
    let sb = Sandbox::new();
    let count = 20;
    ingest_small_packets(&sb, count);
    let before = listed(&sb);
    assert_eq!(before.len(), count);
    let total: u64 = std::env::var("EVSTORE_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut interrupted = 0;
    for round in 0..total {
        let events_before = events(&sb);
        let mut child = sb
            .command()
            .args(["reindex", "--replace"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A spread of moments from "just started" to "probably done" (a rebuild of 20 packets
        // takes about 200 ms here).
        std::thread::sleep(Duration::from_micros((round * 7_919) % 300_000));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.code().is_none() {
            interrupted += 1;
        }
        assert!(sb.store().join("catalog.sqlite").exists(), "round {round}");
        assert_eq!(listed(&sb), before, "round {round}");
        let (rc, report) = sb.json(&["fsck"]);
        assert_eq!(rc, 0, "round {round}: {report}");
        // The log was carried over: every earlier event is still there, unchanged.
        let after = events(&sb);
        assert!(after.len() >= events_before.len(), "round {round}");
        assert_eq!(
            after[..events_before.len()],
            events_before[..],
            "round {round}"
        );
        // Every packet exports byte-identical.
        assert_every_packet_exports_identical(&sb, count, &format!("round-{round}"));
    }
    assert!(interrupted > 0, "no round interrupted a reindex");
    // A new ingest of a known name takes the next version; nothing was renumbered.
    sb.write("n1/new.txt", "changed\n");
    let (rc, value) = sb.json(&["ingest", "n1"]);
    assert_eq!(rc, 0, "{value}");
    assert_eq!(value["version"], 2, "{value}");
    fs::remove_file(sb.path("n1/new.txt")).unwrap();
    assert_every_packet_exports_identical(&sb, count, "end");
    // No rebuild file survives the next reindex.
    let (rc, value) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{value}");
    for entry in fs::read_dir(sb.store()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.contains(".reindex-"), "{name}");
    }
}

/// Regression (issue 12, items 2 and 3): a packet whose tree node was deleted was dropped by
/// `reindex --replace`, after which `fsck` passed and a new ingest reused its `NAME@1`. Now the
/// loss fails reindex and fsck (naming the packet) until `forget` records it, and the version is
/// never reused.
#[test]
fn regression_a_lost_committed_packet_fails_fsck_until_forgotten_and_its_version_is_not_reused() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 2);
    let (_, shown) = sb.json(&["show", "n1@1"]);
    let tree = shown["tree"].as_str().unwrap().to_string();
    let record = shown["record"].as_str().unwrap_or_default().to_string();
    fs::remove_file(object_path(&sb.store(), &tree)).unwrap();

    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1, "{report}");
    let lost = report["lost"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{report}");
    assert_eq!(lost[0]["label"], "n1@1");
    assert_eq!(lost[0]["kind"], "packet");
    if !record.is_empty() {
        assert_eq!(lost[0]["id"], record.as_str());
    }

    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("packet n1@1"), "{problems}");
    assert!(problems.contains("evstore forget n1@1"), "{problems}");
    // A second reindex still fails: the log still says n1@1 was committed.
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1, "{report}");

    // Another tree under the same name never takes the lost version.
    sb.write("n1/new.txt", "another tree\n");
    let (rc, value) = sb.json(&["ingest", "n1"]);
    assert_eq!(rc, 0, "{value}");
    assert_eq!(value["version"], 2, "{value}");
    let out = sb.run(&["show", &tree[..12]]);
    assert_ne!(
        code(&out),
        0,
        "the lost packet's tree prefix must not resolve to another"
    );

    // forget: needs a reason, refuses what is not lost, then records the loss.
    let out = sb.run(&["forget", "n1@1"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = sb.run(&["forget", "n2@1", "--reason", "not lost"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("no lost"), "{}", stderr(&out));
    let (rc, value) = sb.json(&[
        "forget",
        "n1@1",
        "--reason",
        "tree node deleted by the test",
    ]);
    assert_eq!(rc, 0, "{value}");
    assert_eq!(value["forgotten"]["label"], "n1@1");
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    assert!(
        report["notes"]
            .to_string()
            .contains("n1@1 was acknowledged as lost"),
        "{report}"
    );
    let last = events(&sb).last().unwrap().clone();
    assert_eq!(last["kind"], "forget");
    assert!(last["detail"]
        .to_string()
        .contains("tree node deleted by the test"));
    // And the version stays used after the loss is forgotten and the catalog rebuilt.
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    sb.write("n1/third.txt", "a third tree\n");
    let (rc, value) = sb.json(&["ingest", "n1"]);
    assert_eq!(rc, 0, "{value}");
    assert_eq!(value["version"], 3, "{value}");
}

/// Regression (issue 12, item 12): a record object left by an ingest that never committed (its
/// catalog write failed, or it was killed) was revived as a packet by `reindex`. Here the orphan
/// is a record (with its tree and blobs) copied from another store: no event commits it.
#[test]
fn regression_reindex_never_revives_a_record_no_event_commits() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 1);
    add_uncommitted_record(&sb);
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    assert!(
        report["notes"].to_string().contains("no event commits it"),
        "{report}"
    );
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["packets"], 1, "{report}");
    assert_eq!(
        report["uncommitted"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    let names: Vec<String> = listed(&sb).into_iter().map(|(l, _)| l).collect();
    assert_eq!(names, vec!["n1@1".to_string()]);
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}

/// Regression (issue 12, item 3): a deleted attestation was dropped by `reindex --replace` with
/// exit 0. A committed rerun whose attestation is gone fails reindex and fsck until forgotten.
#[test]
fn regression_a_lost_attestation_fails_reindex_and_fsck_until_forgotten() {
    let sb = Sandbox::new();
    sb.write("p/a.txt", "a\n");
    sb.write(
        "p/gen.sh",
        "printf 'a\\n' > \"$1/a.txt\"\ncp \"$0\" \"$1/gen.sh\"\n",
    );
    let (rc, value) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{value}");
    let gen = sb.path("p/gen.sh");
    let (rc, value) = sb.json(&["rerun", "p", "--", "bash", gen.to_str().unwrap(), "{out}"]);
    assert!(rc == 0 || rc == 1, "{value}");
    let (_, runs) = sb.json(&["runs"]);
    let attestation = runs["runs"][0]["attestation"]
        .as_str()
        .unwrap_or_else(|| panic!("{runs}"))
        .to_string();
    let path = object_path(&sb.store(), &attestation);
    if path.exists() {
        fs::remove_file(&path).unwrap();
    } else {
        panic!("attestation {attestation} is not a loose object");
    }
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["lost"][0]["kind"], "attestation", "{report}");
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    assert!(
        report["problems"].to_string().contains(&attestation),
        "{report}"
    );
    let (rc, value) = sb.json(&[
        "forget",
        &attestation[..12],
        "--reason",
        "deleted by the test",
    ]);
    assert_eq!(rc, 0, "{value}");
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}

/// The log survives reindex: events keep their seq, time and hashes, and the chain goes on.
#[test]
fn reindex_carries_the_event_log_over_and_the_chain_stays_sound() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 3);
    let before = events(&sb);
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["carried_events"], before.len());
    let after = events(&sb);
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after.last().unwrap()["kind"], "reindex");
    assert_eq!(
        after.last().unwrap()["prev_hash"],
        before.last().unwrap()["hash"]
    );
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    // The previous catalog is kept whole beside the new one.
    let kept = report_previous(&sb);
    assert!(kept.exists(), "{}", kept.display());
}

fn report_previous(sb: &Sandbox) -> PathBuf {
    fs::read_dir(sb.store())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("catalog.sqlite.replaced-")
        })
        .expect("a replaced catalog")
}

/// Copy every object file of `from` into `to`'s store (as a restore from backup would).
fn copy_objects(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from.join("objects")) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(from).unwrap();
            let dest = to.join(rel);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            if !dest.exists() {
                fs::copy(entry.path(), &dest).unwrap();
            }
        }
    }
}

/// Regression (review of issue 12, items 2 and 3): a catalog replaced by an older copy (a backup,
/// or a `catalog.sqlite.replaced-*` file) made a committed packet look like a failed ingest:
/// `fsck` passed, `reindex` dropped it, and the next ingest reused its `NAME@1`. The store's
/// commit markers and event log now keep it committed, and the catalog catches up with them.
#[test]
fn regression_an_older_catalog_cannot_drop_a_committed_packet_or_reuse_its_version() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 2);
    let catalog = sb.store().join("catalog.sqlite");
    let backup = sb.path("catalog-backup.sqlite");
    fs::copy(&catalog, &backup).unwrap();
    sb.write("late/f", "v1\n");
    let (rc, first) = sb.json(&["ingest", "late"]);
    assert_eq!(rc, 0, "{first}");
    assert_eq!(first["version"], 1);
    // The older catalog comes back.
    fs::copy(&backup, &catalog).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(sb.store().join(format!("catalog.sqlite{suffix}")));
    }
    // The catalog is a cache of the store: the next command takes the store's log events
    // past the older catalog's last one in, with late@1's rows (layout 2).
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    let names: Vec<String> = listed(&sb).into_iter().map(|(l, _)| l).collect();
    assert!(names.contains(&"late@1".to_string()), "{names:?}");
    // Another tree under that name takes the next version, never the committed one's.
    sb.write("late/f", "v2, another tree\n");
    let (rc, second) = sb.json(&["ingest", "late"]);
    assert_eq!(rc, 0, "{second}");
    assert_eq!(second["version"], 2, "{second}");
    // reindex restores the first one; both are listed and sound.
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    let names: Vec<String> = listed(&sb).into_iter().map(|(l, _)| l).collect();
    assert!(names.contains(&"late@1".to_string()), "{names:?}");
    assert!(names.contains(&"late@2".to_string()), "{names:?}");
    let (_, shown) = sb.json(&["show", "late@1"]);
    assert_eq!(shown["packet_tree_sha256"], first["packet_tree_sha256"]);
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}

/// Regression (review of issue 12, items 2 and 12): with its catalog deleted or unreadable,
/// `reindex` revived records of failed ingests and forgot acknowledged losses. The commit
/// markers now say what was committed and what was forgotten.
#[test]
fn regression_reindex_without_a_catalog_trusts_the_commit_markers() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 3);
    add_uncommitted_record(&sb);
    // n3@1 is lost and forgotten.
    let (_, shown) = sb.json(&["show", "n3@1"]);
    let record = shown["record"].as_str().unwrap().to_string();
    fs::remove_file(object_path(&sb.store(), &record)).unwrap();
    let (rc, _) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1);
    let (rc, value) = sb.json(&["forget", "n3@1", "--reason", "deleted by the test"]);
    assert_eq!(rc, 0, "{value}");
    let mut before = listed(&sb);

    for damage in ["delete", "garbage"] {
        let catalog = sb.store().join("catalog.sqlite");
        match damage {
            "delete" => fs::remove_file(&catalog).unwrap(),
            _ => fs::write(&catalog, vec![0x5a; 8192]).unwrap(),
        }
        let args: &[&str] = if damage == "delete" {
            &["reindex"]
        } else {
            &["reindex", "--replace"]
        };
        // The orphan is not revived: the store's event log (log/, layout 2) says no event
        // committed it, so without a catalog reindex still tells it from a commit.
        let (rc, report) = sb.json(args);
        assert_eq!(rc, 0, "{damage}: {report}");
        assert!(report["log_not_carried"].is_null(), "{damage}: {report}");
        assert_eq!(report["unknown"].as_array().unwrap().len(), 0, "{report}");
        assert_eq!(
            report["uncommitted"].as_array().unwrap().len(),
            1,
            "{report}"
        );
        assert_eq!(listed(&sb), before, "{damage}");
        let (rc, report) = sb.json(&["fsck"]);
        assert_eq!(rc, 0, "{damage}: {report}");
        // Versions continue after the highest one ever committed.
        sb.write("n3/next.txt", damage);
        let (rc, value) = sb.json(&["ingest", "n3"]);
        assert_eq!(rc, 0, "{value}");
        assert!(value["version"].as_u64().unwrap() >= 2, "{value}");
        let label = format!("n3@{}", value["version"]);
        let mut expected = before.clone();
        expected.push((
            label,
            value["packet_tree_sha256"].as_str().unwrap().to_string(),
        ));
        expected.sort();
        assert_eq!(listed(&sb), expected);
        // The next round starts from the grown list.
        fs::remove_file(sb.path("n3/next.txt")).unwrap();
        before = expected;
    }
}

/// Regression (review of issue 12): two `forget`s of one lost item at once both succeeded and
/// logged two events. The check and the event are one transaction.
#[test]
fn regression_two_concurrent_forgets_of_one_item_record_it_once() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 1);
    let (_, shown) = sb.json(&["show", "n1@1"]);
    fs::remove_file(object_path(&sb.store(), shown["record"].as_str().unwrap())).unwrap();
    let (rc, _) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1);
    for round in 0..3 {
        let spawn = |reason: &str| {
            sb.command()
                .args(["forget", "n1@1", "--reason", reason])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let (mut a, mut b) = (spawn("a"), spawn("b"));
        let codes = [a.wait().unwrap().code(), b.wait().unwrap().code()];
        let forgets = events(&sb).iter().filter(|e| e["kind"] == "forget").count();
        if round == 0 {
            assert!(
                codes.contains(&Some(0)) && codes.contains(&Some(2)),
                "round {round}: {codes:?}"
            );
        } else {
            assert_eq!(codes, [Some(2), Some(2)], "round {round}");
        }
        assert_eq!(forgets, 1, "round {round}");
    }
}

/// Regression (review of issue 12): a forgotten packet stayed unreachable after its objects were
/// restored. `reindex` indexes it again (and says so); `fsck` passes without the note.
#[test]
fn regression_a_forgotten_packet_whose_objects_come_back_is_indexed_again() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 2);
    let (_, shown) = sb.json(&["show", "n1@1"]);
    let record = shown["record"].as_str().unwrap().to_string();
    let path = object_path(&sb.store(), &record);
    let saved = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let (rc, _) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1);
    let (rc, _) = sb.json(&["forget", "n1@1", "--reason", "gone"]);
    assert_eq!(rc, 0);
    fs::write(&path, saved).unwrap();
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    assert!(
        report["restored"].to_string().contains("whole again"),
        "{report}"
    );
    let (rc, again) = sb.json(&["show", "n1@1"]);
    assert_eq!(rc, 0, "{again}");
    assert_eq!(again["packet_tree_sha256"], shown["packet_tree_sha256"]);
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    assert!(
        !report["notes"].to_string().contains("acknowledged"),
        "{report}"
    );
}

/// A store written before commit markers (no refs/, layout 1) gets every marker from the catalog
/// when it is upgraded to layout 2, by the first command of a user who can write it.
#[test]
fn a_store_without_commit_markers_gets_them_all_on_the_next_write() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 3);
    let refs = sb.store().join("refs");
    fs::remove_dir_all(&refs).unwrap();
    // A store from before markers is layout 1, which also has no log/ (a layout-2 store without
    // refs/ is corrupt: `review14.rs`).
    fs::remove_dir_all(sb.store().join("log")).unwrap();
    fs::write(sb.store().join("VERSION"), "evstore store 1\n").unwrap();
    // The first command of a user who can write the store upgrades it to layout 2, with every
    // marker made from the catalog (a reader alone would only note it).
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    assert!(refs.join("packets/n1/1").exists(), "{report}");
    sb.write("n1/more.txt", "more\n");
    let (rc, value) = sb.json(&["ingest", "n1"]);
    assert_eq!(rc, 0, "{value}");
    for (label, version) in [("n1", 1), ("n1", 2), ("n2", 1), ("n3", 1)] {
        let marker = refs.join("packets").join(label).join(version.to_string());
        let text = fs::read_to_string(&marker).unwrap_or_else(|e| panic!("{marker:?}: {e}"));
        let (_, shown) = sb.json(&["show", &format!("{label}@{version}")]);
        assert_eq!(text, format!("{}\n", shown["record"].as_str().unwrap()));
    }
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    assert!(!report["notes"].to_string().contains("marker"), "{report}");
}

/// Put into `sb`'s store a record (with its tree and blobs) that no ingest committed there: an
/// ingest into another store, whose objects are copied over.
fn add_uncommitted_record(sb: &Sandbox) {
    sb.write("orphan/x.txt", "never committed here\n");
    let other = sb.path("other-store");
    let out = sb
        .command_storeless()
        .arg("--store")
        .arg(&other)
        .args(["ingest", "orphan"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    copy_objects(&other, &sb.store());
}

/// Regression (second review of issue 12): with no catalog, a committed packet whose commit
/// marker was never written (a full disk right after its commit) was dropped by `reindex` with
/// exit 0. The store's event log (log/, layout 2) now says it was committed: it is indexed.
#[test]
fn regression_reindex_without_a_catalog_fails_on_a_record_no_marker_names() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 3);
    fs::remove_file(sb.store().join("refs/packets/n2/1")).unwrap();
    fs::remove_file(sb.store().join("catalog.sqlite")).unwrap();
    let (rc, report) = sb.json(&["reindex"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["unknown"].as_array().unwrap().len(), 0, "{report}");
    let names: Vec<String> = listed(&sb).into_iter().map(|(l, _)| l).collect();
    assert_eq!(names, ["n1@1", "n2@1", "n3@1"]);
}

/// Regression (second review of issue 12): an ingest whose marker could not be written said
/// "run it again", but the retry found the tree archived and wrote no marker.
#[test]
fn regression_ingest_of_an_archived_tree_writes_its_missing_commit_marker() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 1);
    let marker = sb.store().join("refs/packets/n1/1");
    let text = fs::read_to_string(&marker).unwrap();
    fs::remove_file(&marker).unwrap();
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    assert!(
        report["notes"].to_string().contains("no commit marker"),
        "{report}"
    );
    let (rc, value) = sb.json(&["ingest", "n1"]);
    assert_eq!(rc, 0, "{value}");
    assert_eq!(value["created"], false, "{value}");
    assert_eq!(fs::read_to_string(&marker).unwrap(), text);
}

/// Regression (second review of issue 12): a `forget` stayed in force after its packet came
/// back and was indexed, so losing it a second time passed silently. Indexing it again logs a
/// `restore` event (and marker) that ends the forget.
#[test]
fn regression_a_restored_packet_lost_again_fails_again() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 2);
    let (_, shown) = sb.json(&["show", "n1@1"]);
    let tree = object_path(&sb.store(), shown["tree"].as_str().unwrap());
    let saved = fs::read(&tree).unwrap();
    fs::remove_file(&tree).unwrap();
    let (rc, _) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1);
    let (rc, _) = sb.json(&["forget", "n1@1", "--reason", "first loss"]);
    assert_eq!(rc, 0);
    fs::write(&tree, &saved).unwrap();
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["restored"].as_array().unwrap().len(), 1, "{report}");
    assert!(events(&sb).iter().any(|e| e["kind"] == "restore"));
    fs::remove_file(&tree).unwrap();
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1, "{report}");
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    assert!(
        report["problems"].to_string().contains("packet n1@1"),
        "{report}"
    );
}

/// Regression (second review of issue 12): with the catalog moved away but its `-wal` left
/// behind, plain `reindex` renamed its new catalog in and SQLite replayed the stale WAL onto it
/// ("database disk image is malformed"). A stray `-wal`/`-shm` is moved aside first.
#[test]
fn regression_reindex_moves_a_stray_wal_aside_before_its_catalog_takes_the_name() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 2);
    let catalog = sb.store().join("catalog.sqlite");
    // Hold the catalog open in another process, so the WAL outlives evstore's connections.
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1]); \
             c.execute('select count(*) from packets').fetchall(); print('ready', flush=True); \
             time.sleep(60)",
        ])
        .arg(&catalog)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    sb.write("late/a.txt", "late\n");
    let (rc, value) = sb.json(&["ingest", "late"]);
    assert_eq!(rc, 0, "{value}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    let wal = sb.store().join("catalog.sqlite-wal");
    assert!(
        fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0,
        "no WAL left behind"
    );
    fs::rename(&catalog, sb.path("moved-away.sqlite")).unwrap();
    let (rc, report) = sb.json(&["reindex"]);
    assert_eq!(rc, 0, "{report}");
    assert!(!wal.exists());
    let names: Vec<String> = listed(&sb).into_iter().map(|(l, _)| l).collect();
    assert_eq!(names, ["late@1", "n1@1", "n2@1"]);
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}

/// Regression (second review of issue 12): a `refs` that is a symlink was read as "no markers",
/// and the next ingest wrote its markers through it, outside the store.
#[test]
fn regression_a_symlinked_refs_folder_is_refused() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 1);
    let refs = sb.store().join("refs");
    fs::rename(&refs, sb.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(sb.path("elsewhere"), &refs).unwrap();
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    assert!(
        report["problems"].to_string().contains("not a real folder"),
        "{report}"
    );
    sb.write("n1/more.txt", "more\n");
    let out = sb.run(&["ingest", "n1"]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a real folder"),
        "{}",
        stderr(&out)
    );
    assert!(!sb.path("elsewhere/packets/n1/2").exists());
}

/// Regression (second review of issue 12): `$EVSTORE_LOCK_TIMEOUT_SECS` was read only when the
/// lock was busy, and a huge value panicked (exit 101).
#[test]
fn regression_a_malformed_lock_timeout_is_a_usage_error_at_once() {
    let sb = Sandbox::new();
    ingest_small_packets(&sb, 1);
    for value in ["abc", "+2", " 3", "18446744073709551615", "86401"] {
        let out = sb
            .command()
            .arg("ls")
            .env("EVSTORE_LOCK_TIMEOUT_SECS", value)
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{value:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("EVSTORE_LOCK_TIMEOUT_SECS"),
            "{}",
            stderr(&out)
        );
    }
}
