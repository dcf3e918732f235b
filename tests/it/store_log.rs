//! The store's event log as named keys (`log/<seq>`, layout 2) and version claims
//! (`refs/packets/NAME/N`) created before the catalog commits: every event in `log/` with the
//! catalog's bytes; a store rebuilt from its folder alone; the one-time upgrade of a layout-1
//! store; forged log keys named by `fsck`; concurrent ingests under one name.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::sandbox::{code, stderr, Sandbox};

/// The canonical bytes of an event row of `log --json` (FORMAT.md §7d).
fn entry_bytes(event: &Value) -> String {
    format!(
        "evstore-event-1\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
        event["seq"],
        event["time_unix_nanos"],
        event["kind"].as_str().unwrap(),
        event["subject"].as_str().unwrap(),
        event["prev_hash"].as_str().unwrap(),
        event["detail"].as_str().unwrap(),
        event["hash"].as_str().unwrap()
    )
}

fn log_key(store: &Path, seq: u64) -> PathBuf {
    store.join("log").join(format!("{seq:020}"))
}

fn json_ok(sb: &Sandbox, args: &[&str]) -> Value {
    let (rc, value) = sb.json(args);
    assert_eq!(rc, 0, "{args:?}: {value}");
    value
}

fn events(sb: &Sandbox) -> Vec<Value> {
    json_ok(sb, &["log"])["events"].as_array().unwrap().clone()
}

/// Every event the catalog holds is `log/<seq>` with exactly its bytes, and `log/` holds no
/// other key.
fn assert_log_matches_catalog(sb: &Sandbox) -> Vec<Value> {
    let events = events(sb);
    for event in &events {
        let key = log_key(&sb.store(), event["seq"].as_u64().unwrap());
        let bytes = fs::read_to_string(&key).unwrap_or_else(|e| panic!("{key:?}: {e}"));
        assert_eq!(bytes, entry_bytes(event), "{key:?}");
    }
    let keys = fs::read_dir(sb.store().join("log")).unwrap().count();
    assert_eq!(keys, events.len());
    events
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            let mode = entry.metadata().unwrap().permissions().mode();
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// A sandbox holding a copy of the layout-1 fixture store (written by evstore 0.1 before the
/// layout change) and its KB.
fn old_layout_store() -> Sandbox {
    let sb = Sandbox::new();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-0.1-before-layout");
    copy_tree(&fixture.join("store"), &sb.store());
    fs::create_dir_all(sb.store().join("tmp")).unwrap();
    copy_tree(&fixture.join("kb"), &sb.path("kb"));
    sb
}

/// A store with one event of every kind: init, ingest, mirror, kb-verify, rerun, forget,
/// reindex, restore.
fn store_with_every_kind() -> Sandbox {
    let sb = Sandbox::new();
    json_ok(&sb, &["init"]);
    sb.write("p/a.txt", "fixed\n");
    json_ok(&sb, &["ingest", "p"]);
    sb.write("q/b.txt", "to be lost\n");
    let q = json_ok(&sb, &["ingest", "q"]);
    fs::create_dir(sb.path("kb")).unwrap();
    json_ok(&sb, &["mirror", "p", "kb"]);
    json_ok(&sb, &["kb", "verify", "kb"]);
    sb.write("gen.sh", "echo fixed > \"$EVSTORE_OUT/a.txt\"\n");
    json_ok(&sb, &["rerun", "p", "--", "sh", "gen.sh"]);
    // q's record goes missing, is forgotten, comes back, and reindex restores it.
    let (_, shown) = sb.json(&["show", "q@1"]);
    let record = shown["record"].as_str().unwrap().to_string();
    assert_eq!(shown["packet_tree_sha256"], q["packet_tree_sha256"]);
    let path = sb
        .store()
        .join("objects")
        .join(&record[..2])
        .join(&record[2..]);
    let aside = sb.path("record-aside");
    fs::rename(&path, &aside).unwrap();
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 1, "{report}");
    json_ok(&sb, &["forget", "q@1", "--reason", "the test moved it"]);
    fs::rename(&aside, &path).unwrap();
    json_ok(&sb, &["reindex", "--replace"]);
    sb
}

#[test]
fn every_event_kind_lands_in_the_log_with_the_catalogs_bytes_and_hash() {
    let sb = store_with_every_kind();
    let events = assert_log_matches_catalog(&sb);
    let mut kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "forget",
            "ingest",
            "init",
            "kb-verify",
            "mirror",
            "reindex",
            "rerun",
            "restore"
        ]
    );
    assert_eq!(
        fs::read_to_string(sb.store().join("VERSION")).unwrap(),
        "evstore store 2\n"
    );
    let report = json_ok(&sb, &["fsck"]);
    assert_eq!(report["events_checked"], events.len());
}

#[test]
fn with_the_catalog_deleted_reindex_rebuilds_events_packets_and_runs_from_the_folder() {
    let sb = store_with_every_kind();
    let log_before = events(&sb);
    let ls_before = json_ok(&sb, &["ls"]);
    let runs_before = json_ok(&sb, &["runs"]);
    fs::remove_file(sb.store().join("catalog.sqlite")).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(sb.store().join(format!("catalog.sqlite{suffix}")));
    }
    let report = json_ok(&sb, &["reindex"]);
    assert_eq!(report["carried_events"], log_before.len(), "{report}");
    assert!(report["log_not_carried"].is_null(), "{report}");
    let log_after = events(&sb);
    // Every event, byte for byte, and then the rebuild's own `reindex` event.
    assert_eq!(log_after[..log_before.len()], log_before[..]);
    assert_eq!(log_after.len(), log_before.len() + 1);
    assert_eq!(log_after.last().unwrap()["kind"], "reindex");
    assert_eq!(json_ok(&sb, &["ls"]), ls_before);
    assert_eq!(json_ok(&sb, &["runs"]), runs_before);
    assert_log_matches_catalog(&sb);
    json_ok(&sb, &["fsck"]);
}

#[test]
fn an_old_layout_store_upgrades_once_with_a_notice_and_then_fscks_clean() {
    let sb = old_layout_store();
    let log_before = events_without_upgrade(&sb);
    let out = sb.run(&["ls"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let notice = stderr(&out);
    assert!(
        notice.contains("upgraded the store") && notice.contains("layout 2"),
        "{notice}"
    );
    assert_eq!(
        fs::read_to_string(sb.store().join("VERSION")).unwrap(),
        "evstore store 2\n"
    );
    // The log holds the catalog's events, unchanged.
    assert_eq!(assert_log_matches_catalog(&sb), log_before);
    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let out = sb.run(&["ls"]);
    assert_eq!(code(&out), 0);
    assert_eq!(stderr(&out), "", "a second command says nothing");
}

/// `log --json` of a store as a user who cannot write it sees it: no upgrade.
fn events_without_upgrade(sb: &Sandbox) -> Vec<Value> {
    let expected = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/store-0.1-before-layout/expected-log.json");
    let value: Value = serde_json::from_slice(&fs::read(expected).unwrap()).unwrap();
    assert!(!sb.store().join("log").exists());
    value["events"].as_array().unwrap().clone()
}

#[test]
fn a_store_of_an_unknown_later_layout_is_refused_clearly() {
    let sb = Sandbox::new();
    json_ok(&sb, &["init"]);
    let version = sb.store().join("VERSION");
    fs::set_permissions(&version, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&version, "evstore store 3\n").unwrap();
    for args in [&["ls"][..], &["fsck"], &["reindex", "--replace"]] {
        let out = sb.run(args);
        assert_eq!(code(&out), 2, "{args:?}");
        let text = stderr(&out);
        assert!(
            text.contains("unsupported store version")
                && text.contains("evstore store 3")
                && text.contains("layout 1 and 2"),
            "{text}"
        );
    }
}

/// Replace the log key `seq` (read-only, as evstore made it) with `bytes`.
fn forge(sb: &Sandbox, seq: u64, bytes: &[u8]) -> PathBuf {
    let key = log_key(&sb.store(), seq);
    let _ = fs::remove_file(&key);
    fs::write(&key, bytes).unwrap();
    key
}

fn fsck_fails_naming(sb: &Sandbox, key: &Path, reason: &str) {
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains(&key.display().to_string()) && problems.contains(reason),
        "{problems}"
    );
}

#[test]
fn a_forged_log_key_fails_fsck_naming_the_key() {
    let sb = Sandbox::new();
    json_ok(&sb, &["init"]);
    for name in ["a", "b"] {
        sb.write(&format!("{name}/f.txt"), name);
        json_ok(&sb, &["ingest", name]);
    }
    let events = events(&sb);
    let second = entry_bytes(&events[1]);

    // A bad hash.
    let forged = second.replace(events[1]["hash"].as_str().unwrap(), &"ab".repeat(32));
    let key = forge(&sb, 2, forged.as_bytes());
    fsck_fails_naming(&sb, &key, "its fields hash to");
    forge(&sb, 2, second.as_bytes());
    json_ok(&sb, &["fsck"]);

    // Bytes that do not decode.
    let key = forge(&sb, 2, b"not an event\n");
    fsck_fails_naming(&sb, &key, "tab-separated fields");
    forge(&sb, 2, second.as_bytes());

    // A gap: event 2 missing.
    let key = log_key(&sb.store(), 2);
    fs::remove_file(&key).unwrap();
    fsck_fails_naming(&sb, &key, "not in the store's event log");
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1);
    assert!(report["problems"].to_string().contains("gap"), "{report}");
    forge(&sb, 2, second.as_bytes());
    json_ok(&sb, &["fsck"]);
}

#[test]
fn concurrent_ingests_under_one_name_get_distinct_versions_and_claims_naming_their_records() {
    let sb = Sandbox::new();
    json_ok(&sb, &["init"]);
    let count = 6;
    for i in 0..count {
        sb.write(&format!("t{i}/f.txt"), format!("tree {i}\n"));
    }
    let children: Vec<_> = (0..count)
        .map(|i| {
            sb.command()
                .args(["--json", "ingest", &format!("t{i}"), "--name", "shared"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut versions = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let value: Value = serde_json::from_slice(&out.stdout).unwrap();
        versions.push(value["version"].as_u64().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=count as u64).collect::<Vec<_>>());
    for version in 1..=count {
        let shown = json_ok(&sb, &["show", &format!("shared@{version}")]);
        let claim = sb.store().join(format!("refs/packets/shared/{version}"));
        assert_eq!(
            fs::read_to_string(&claim).unwrap(),
            format!("{}\n", shown["record"].as_str().unwrap())
        );
    }
    assert_log_matches_catalog(&sb);
    json_ok(&sb, &["fsck"]);
}

/// A claim created by a writer that bypassed the catalog (its catalog row never committed): the
/// next ingest of that name takes the next version, and the catalog catches up with the claim.
#[test]
fn a_claim_the_catalog_lacks_is_picked_up_and_never_reused() {
    let sb = Sandbox::new();
    json_ok(&sb, &["init"]);
    sb.write("t1/f.txt", "one\n");
    json_ok(&sb, &["ingest", "t1", "--name", "n"]);
    let backup = sb.path("catalog-backup.sqlite");
    fs::copy(sb.store().join("catalog.sqlite"), &backup).unwrap();
    sb.write("t2/f.txt", "two\n");
    let second = json_ok(&sb, &["ingest", "t2", "--name", "n"]);
    assert_eq!(second["version"], 2);
    // The catalog loses n@2 and its event; the log keys and the claim stay.
    fs::copy(&backup, sb.store().join("catalog.sqlite")).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(sb.store().join(format!("catalog.sqlite{suffix}")));
    }
    sb.write("t3/f.txt", "three\n");
    let third = json_ok(&sb, &["ingest", "t3", "--name", "n"]);
    assert_eq!(third["version"], 3, "{third}");
    let shown = json_ok(&sb, &["show", "n@2"]);
    assert_eq!(shown["packet_tree_sha256"], second["packet_tree_sha256"]);
    assert_log_matches_catalog(&sb);
    json_ok(&sb, &["fsck"]);
}

/// A log event the catalog lacks (an older catalog copy came back): `fsck` by a user who cannot
/// write the store fails naming the log key and changes nothing; the next command of a user who
/// can takes the event in, with its packet, and `fsck` passes.
#[test]
fn a_log_event_the_catalog_lacks_fails_a_read_only_fsck_and_a_writer_takes_it_in() {
    crate::sandbox::require_root("this test");
    let sb = Sandbox::new();
    json_ok(&sb, &["init"]);
    sb.write("a/f.txt", "a\n");
    json_ok(&sb, &["ingest", "a"]);
    let backup = sb.path("catalog-backup.sqlite");
    fs::copy(sb.store().join("catalog.sqlite"), &backup).unwrap();
    sb.write("b/f.txt", "b\n");
    json_ok(&sb, &["ingest", "b"]);
    fs::copy(&backup, sb.store().join("catalog.sqlite")).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(sb.store().join(format!("catalog.sqlite{suffix}")));
    }
    let bin = crate::sandbox::open_to_other_users(&sb);
    let out = sb
        .command_as_nobody(&bin)
        .arg("--store")
        .arg(sb.store())
        .args(["--json", "fsck"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].to_string();
    let key = log_key(&sb.store(), 3);
    assert!(
        problems.contains(&key.display().to_string())
            && problems.contains("is in the store's event log but not in the catalog"),
        "{problems}"
    );
    json_ok(&sb, &["fsck"]);
    let names: Vec<String> = json_ok(&sb, &["ls"])["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_log_matches_catalog(&sb);
}
