//! The store alone rebuilds a catalog (issue 14, "Rebuild"): packets, events, runs and mirrors
//! come back from objects, `log/` and `refs/`, by `reindex` after the catalog is lost and by the
//! catch-up of a catalog that is merely behind; `fsck` names a mirror list that is damaged or
//! missing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::Value;

use crate::sandbox::*;

/// What the catalog lists, as the read commands print it.
#[derive(Debug, PartialEq)]
struct Listings {
    packets: Value,
    events: Value,
    runs: Value,
    kb: Value,
}

fn ok(sb: &Sandbox, args: &[&str]) -> Value {
    let (rc, value) = sb.json(args);
    assert_eq!(rc, 0, "{args:?}: {value}");
    value
}

/// `ls`, `log`, `runs` and `kb verify kb` (which logs a `kb-verify` event, so the log is read
/// first and compared without it).
fn listings(sb: &Sandbox) -> Listings {
    let packets = ok(sb, &["ls"]);
    let events = ok(sb, &["log"]);
    let runs = ok(sb, &["runs"]);
    let kb = ok(sb, &["kb", "verify", "kb"]);
    Listings {
        packets,
        events,
        runs,
        kb,
    }
}

fn events(log: &Value) -> &Vec<Value> {
    log["events"].as_array().expect("log --json lists events")
}

fn catalog_files(sb: &Sandbox) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| sb.store().join(format!("catalog.sqlite{suffix}")))
        .collect()
}

fn remove_catalog(sb: &Sandbox) {
    for path in catalog_files(sb) {
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => panic!("cannot remove {}: {err}", path.display()),
        }
    }
}

/// Two packets sharing a file, then: `alpha` mirrored into `kb` by copy, `beta` with `--dedup
/// reference` (its shared file a reference to alpha's copy), `alpha` rerun (PASS) and `beta`
/// rerun by a generator that writes something else (FAIL). `after_first_ingest` runs right after
/// the first ingest.
fn build_store(sb: &Sandbox, after_first_ingest: impl FnOnce(&Sandbox)) {
    sb.write("alpha/shared.txt", "shared\n");
    sb.write("alpha/a.txt", "a\n");
    sb.write("beta/shared.txt", "shared\n");
    sb.write("beta/b.txt", "b\n");
    fs::create_dir(sb.path("kb")).unwrap();
    ok(sb, &["ingest", "alpha"]);
    after_first_ingest(sb);
    ok(sb, &["ingest", "beta"]);
    let first = ok(sb, &["mirror", "alpha", "kb"]);
    assert_eq!(first["files_copied"], 2, "{first}");
    let second = ok(sb, &["mirror", "beta", "kb", "--dedup", "reference"]);
    assert_eq!(second["files_referenced"], 1, "{second}");
    ok(
        sb,
        &[
            "rerun",
            "alpha",
            "--",
            "sh",
            "-c",
            "echo a > {out}/a.txt; echo shared > {out}/shared.txt",
        ],
    );
    let (rc, failed) = sb.json(&["rerun", "beta", "--", "sh", "-c", "echo c > {out}/b.txt"]);
    assert_eq!(rc, 1, "{failed}");
}

/// The mirror list ids the `mirror` events name, in log order.
fn mirror_lists(log: &Value) -> Vec<String> {
    events(log)
        .iter()
        .filter(|e| e["kind"] == "mirror")
        .map(|e| {
            let detail: Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
            detail["mirror_list"]
                .as_str()
                .unwrap_or_else(|| panic!("a new mirror event names its mirror list: {detail}"))
                .to_string()
        })
        .collect()
}

fn object_path(sb: &Sandbox, id: &str) -> PathBuf {
    sb.store().join("objects").join(&id[..2]).join(&id[2..])
}

/// The store's catalog is deleted: `reindex` gives back every packet, event, run and mirror, and
/// the rebuilt catalog knows the mirrors (a third mirror still finds the earlier copy to
/// reference; a mirror folder removed from the KB is reported as a recorded mirror missing).
#[test]
fn reindex_after_the_catalog_is_deleted_gives_back_runs_and_mirrors() {
    let sb = Sandbox::new();
    build_store(&sb, |_| {});
    let before = listings(&sb);
    assert_eq!(before.runs["runs"].as_array().unwrap().len(), 2);
    assert_eq!(before.kb["packets_checked"], 2, "{}", before.kb);
    assert_eq!(mirror_lists(&before.events).len(), 2);

    remove_catalog(&sb);
    let report = ok(&sb, &["reindex"]);
    assert_eq!(report["packets"], 2, "{report}");
    assert_eq!(report["runs"], 2, "{report}");
    assert_eq!(report["mirrors"], 2, "{report}");
    assert_eq!(report["mirrors_without_list"], 0, "{report}");
    let fsck = ok(&sb, &["fsck"]);
    assert_eq!(fsck["problems"], serde_json::json!([]), "{fsck}");

    let after = listings(&sb);
    assert_eq!(after.packets, before.packets);
    assert_eq!(after.runs, before.runs);
    assert_eq!(after.kb, before.kb);
    // The log is the same events, then the first listing's `kb-verify` event and the rebuild's
    // `reindex` event.
    let (old, new) = (events(&before.events), events(&after.events));
    assert_eq!(new.len(), old.len() + 2, "{}", after.events);
    assert_eq!(new[..old.len()], old[..]);
    assert_eq!(new[old.len()]["kind"], "kb-verify");
    assert_eq!(new[old.len() + 1]["kind"], "reindex");

    // The rebuilt catalog knows where alpha's copy of shared.txt is.
    sb.write("gamma/shared.txt", "shared\n");
    sb.write("gamma/g.txt", "g\n");
    ok(&sb, &["ingest", "gamma"]);
    let third = ok(&sb, &["mirror", "gamma", "kb", "--dedup", "reference"]);
    assert_eq!(third["files_referenced"], 1, "{third}");
    assert_eq!(third["deduplicated"][0]["kb_path"], "alpha/shared.txt");
    // And which folders it published: one removed from the KB is a recorded mirror missing.
    fs::remove_dir_all(sb.path("kb/gamma")).unwrap();
    let (rc, kb) = sb.json(&["kb", "verify", "kb"]);
    assert_eq!(rc, 1, "{kb}");
    let gone = kb["packets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["folder"] == "gamma")
        .unwrap_or_else(|| panic!("{kb}"));
    assert!(
        gone["reasons"]
            .to_string()
            .contains("recorded mirror missing"),
        "{gone}"
    );
}

/// A catalog that is merely behind (copied aside after the first ingest, put back after the
/// rest): the next read command catches it up from `log/`, with the runs and mirrors.
#[test]
fn catch_up_of_a_catalog_left_behind_gives_back_runs_and_mirrors() {
    let sb = Sandbox::new();
    let aside = sb.path("catalog-after-first-ingest");
    build_store(&sb, |sb| {
        for (from, suffix) in catalog_files(sb).iter().zip(["", "-wal", "-shm"]) {
            if from.exists() {
                fs::copy(from, format!("{}{suffix}", aside.display())).unwrap();
            }
        }
    });
    let before = listings(&sb);
    remove_catalog(&sb);
    for (to, suffix) in catalog_files(&sb).iter().zip(["", "-wal", "-shm"]) {
        let from = PathBuf::from(format!("{}{suffix}", aside.display()));
        if from.exists() {
            fs::copy(&from, to).unwrap();
        }
    }
    // Behind: the old catalog holds one packet, no run, no mirror; `ls` catches it up.
    let after = listings(&sb);
    assert_eq!(after.packets, before.packets);
    assert_eq!(after.runs, before.runs);
    assert_eq!(after.kb, before.kb);
    // The same events, then the first listing's `kb-verify` event.
    let (old, new) = (events(&before.events), events(&after.events));
    assert_eq!(new[..old.len()], old[..]);
    assert_eq!(new.len(), old.len() + 1);
    assert_eq!(new[old.len()]["kind"], "kb-verify");
    let fsck = ok(&sb, &["fsck"]);
    assert_eq!(fsck["problems"], serde_json::json!([]), "{fsck}");
    // The caught-up catalog knows the mirrors: the same mirror again is only logged.
    let again = ok(&sb, &["mirror", "beta", "kb", "--dedup", "reference"]);
    assert_eq!(again["action"], "unchanged", "{again}");
    let log = ok(&sb, &["log"]);
    let last = events(&log).last().unwrap();
    assert_eq!(last["kind"], "mirror");
    assert!(
        !last["detail"].as_str().unwrap().contains("mirror_list"),
        "a recorded mirror is not recorded twice: {last}"
    );
}

/// fsck passes on a rebuilt store and names a mirror list object that is damaged or missing
/// (exit 1); reindex then skips that mirror and fails too.
#[test]
fn fsck_names_a_damaged_or_missing_mirror_list() {
    let sb = Sandbox::new();
    build_store(&sb, |_| {});
    let log = ok(&sb, &["log"]);
    let lists = mirror_lists(&log);
    remove_catalog(&sb);
    ok(&sb, &["reindex"]);
    let fsck = ok(&sb, &["fsck"]);
    assert_eq!(fsck["verdict"], "PASS", "{fsck}");

    // Damaged: one byte of the payload changed.
    let damaged = &lists[0];
    let path = object_path(&sb, damaged);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, &bytes).unwrap();
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{fsck}");
    let named: Vec<&Value> = fsck["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["subject"] == format!("mirror list {damaged}"))
        .collect();
    assert_eq!(named.len(), 1, "{fsck}");
    let reason = named[0]["reason"].as_str().unwrap();
    assert!(reason.contains("is corrupt"), "{reason}");
    assert!(reason.contains("cannot rebuild this mirror"), "{reason}");

    // Missing.
    let missing = &lists[1];
    fs::remove_file(object_path(&sb, missing)).unwrap();
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{fsck}");
    let problems = fsck["problems"].to_string();
    assert!(
        problems.contains(&format!("\"mirror list {missing}\"")),
        "{problems}"
    );
    assert!(problems.contains("is missing from the store"), "{problems}");

    // reindex cannot give those mirrors back: it says so, and fails.
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["mirrors"], 0, "{report}");
    let skipped = report["skipped_corrupt"].to_string();
    assert!(
        skipped.contains(&format!("mirror list {damaged}")),
        "{skipped}"
    );
    assert!(
        skipped.contains(&format!("mirror list {missing}")),
        "{skipped}"
    );
}

/// fsck checks the catalog's mirror rows against the mirror list their event names: a row
/// edited behind evstore's back is named.
#[test]
fn fsck_names_mirror_rows_that_disagree_with_their_mirror_list() {
    let sb = Sandbox::new();
    build_store(&sb, |_| {});
    let db = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    db.execute_batch(
        "DROP TRIGGER mirror_files_no_update; \
         UPDATE mirror_files SET stored_as = 'copy' WHERE stored_as = 'reference'; \
         CREATE TRIGGER mirror_files_no_update BEFORE UPDATE ON mirror_files \
         BEGIN SELECT RAISE(ABORT, 'put back'); END;",
    )
    .unwrap();
    drop(db);
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{fsck}");
    let problems = fsck["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{fsck}");
    let kb = fs::canonicalize(sb.path("kb")).unwrap();
    assert_eq!(
        problems[0]["subject"],
        format!("mirror {}/beta", kb.display())
    );
    let reason = problems[0]["reason"].as_str().unwrap();
    assert!(reason.contains("disagree with mirror list"), "{reason}");

    // A mirror row removed from the catalog is named too.
    let db = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    db.execute_batch(
        "DROP TRIGGER mirror_files_no_delete; DROP TRIGGER mirrors_no_delete; \
         DELETE FROM mirror_files WHERE mirror_id = (SELECT id FROM mirrors WHERE rel_path = 'alpha'); \
         DELETE FROM mirrors WHERE rel_path = 'alpha';",
    )
    .unwrap();
    drop(db);
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{fsck}");
    let gone = fsck["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["subject"] == format!("mirror {}/alpha", kb.display()))
        .unwrap_or_else(|| panic!("{fsck}"));
    let reason = gone["reason"].as_str().unwrap();
    assert!(reason.contains("does not record the mirror"), "{reason}");
}

/// A packet folder already in the KB that the catalog did not know is recorded by the mirror
/// that finds it (`unchanged`) with a mirror list too, so a rebuilt catalog knows it.
#[test]
fn a_mirror_recorded_late_is_rebuilt_too() {
    let sb = Sandbox::new();
    sb.write("alpha/a.txt", "a\n");
    fs::create_dir(sb.path("kb")).unwrap();
    ok(&sb, &["ingest", "alpha"]);
    ok(&sb, &["export", "alpha", "kb/alpha"]);
    let found = ok(&sb, &["mirror", "alpha", "kb"]);
    assert_eq!(found["action"], "unchanged", "{found}");
    let log = ok(&sb, &["log"]);
    assert_eq!(mirror_lists(&log).len(), 1);
    remove_catalog(&sb);
    let report = ok(&sb, &["reindex"]);
    assert_eq!(report["mirrors"], 1, "{report}");
    fs::remove_dir_all(sb.path("kb/alpha")).unwrap();
    let (rc, kb) = sb.json(&["kb", "verify", "kb"]);
    assert_eq!(rc, 1, "{kb}");
    assert!(kb.to_string().contains("recorded mirror missing"), "{kb}");
}
