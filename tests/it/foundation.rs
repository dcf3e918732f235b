//! Foundation: ingest, export, hash, the coreutils one-liner, format vectors, dedup, refused
//! inputs, fsck, the append-only catalog, reindex, packet references, concurrency.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::sandbox::*;

on_both_backends! {
fn ingest_export_round_trip_is_byte_identical() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "packet");
    let (rc, ingested) = sb.json(&["ingest", packet.to_str().unwrap(), "--name", "fix7"]);
    assert_eq!(rc, 0, "{ingested}");
    assert_eq!(ingested["packet"], "fix7@1");
    assert_eq!(ingested["created"], true);
    assert_eq!(ingested["files"], 7);
    let sha = ingested["packet_tree_sha256"].as_str().unwrap().to_string();
    assert_eq!(sha, coreutils_tree_sha256(&packet));

    let (rc, exported) = sb.json(&["export", "fix7", "out"]);
    assert_eq!(rc, 0, "{exported}");
    assert_eq!(exported["packet_tree_sha256"], sha.as_str());
    let out = sb.path("out");
    assert_trees_equal(&packet, &out);
    assert_eq!(coreutils_tree_sha256(&out), sha);
    // HASH_MANIFEST.txt is the canonical text: sha256sum -c passes, and its own hash is the root.
    let check = Command::new("sha256sum")
        .args(["-c", "--strict", "HASH_MANIFEST.txt"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let seal = fs::read(out.join("HASH_MANIFEST.txt")).unwrap();
    assert_eq!(evstore::digest::sha256_of(&seal).to_hex(), sha);
    // The tree of the export equals the stored tree (executable bits included).
    let (_, hashed) = sb.json(&["hash", out.to_str().unwrap()]);
    assert_eq!(hashed["tree"], ingested["tree"]);
    // `manifest` prints the same text, and `cat` the same bytes.
    let manifest = sb.run(&["manifest", "fix7@1"]);
    assert_eq!(manifest.stdout, seal);
    let cat = sb.run(&["cat", &sha[..12], "logs/run.log"]);
    assert_eq!(code(&cat), 0);
    assert_eq!(cat.stdout, b"step 1 ok\nstep 2 ok\n");
}
}

#[test]
fn hash_equals_the_coreutils_one_liner_on_generated_trees() {
    let sb = Sandbox::new();
    for (index, depth) in [1usize, 3, 8].iter().enumerate() {
        let root = format!("tree{index}");
        let mut dir = root.clone();
        for level in 0..*depth {
            dir = format!("{dir}/d{level} \u{e9}\u{2014}");
            sb.write(
                &format!("{dir}/file{level}.json"),
                format!("{{\"level\": {level}}}\n"),
            );
            sb.write(&format!("{dir}/zero{level}"), "");
            sb.write(
                &format!("{dir}/\u{65e5}\u{672c}{level}.txt"),
                "unicode name\n",
            );
        }
        let path = sb.path(&root);
        let (rc, hashed) = sb.json(&["hash", path.to_str().unwrap()]);
        assert_eq!(rc, 0);
        assert_eq!(
            hashed["packet_tree_sha256"],
            coreutils_tree_sha256(&path).as_str()
        );
    }
    // A multi-MiB file takes the streaming path.
    let big = random_bytes(5 * 1024 * 1024, 7);
    sb.write("big/blob.bin", &big);
    sb.write("big/small.txt", "x");
    let path = sb.path("big");
    let (_, hashed) = sb.json(&["hash", path.to_str().unwrap()]);
    assert_eq!(
        hashed["packet_tree_sha256"],
        coreutils_tree_sha256(&path).as_str()
    );
    let (rc, ingested) = sb.json(&["ingest", path.to_str().unwrap()]);
    assert_eq!(rc, 0);
    assert_eq!(ingested["tree"], hashed["tree"]);
    let cat = sb.run(&["cat", "big", "blob.bin"]);
    assert_eq!(code(&cat), 0);
    assert!(
        cat.stdout == big,
        "cat returned other bytes for the large file"
    );
}

/// The test vector of docs/FORMAT.md: a fixed tree with known roots.
#[test]
fn format_md_test_vector() {
    let sb = Sandbox::new();
    sb.write("vector/hello.txt", "hello\n");
    sb.write("vector/empty", "");
    let script = sb.write("vector/bin/run.sh", "#!/bin/sh\necho ok\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let path = sb.path("vector");
    let (rc, hashed) = sb.json(&["hash", path.to_str().unwrap()]);
    assert_eq!(rc, 0);
    assert_eq!(
        hashed["packet_tree_sha256"],
        FORMAT_VECTOR_PACKET_TREE_SHA256
    );
    assert_eq!(hashed["tree"], FORMAT_VECTOR_TREE);
    let manifest = evstore::format::tree::manifest_of(
        &evstore::ops::ingest::hash_packet(&path).unwrap().files,
    )
    .unwrap();
    assert_eq!(manifest.text(), FORMAT_VECTOR_MANIFEST);
}

const FORMAT_VECTOR_MANIFEST: &str = "\
b4d644d4279594903f1a9911956432d9473041f2984fc6014c14d7402c7d126c  bin/run.sh
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  empty
5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  hello.txt
";
const FORMAT_VECTOR_PACKET_TREE_SHA256: &str =
    "c0d6d95b74fb315f53138f2734996d0a31bf9c99f9f8b2b545266a47d3c804d8";
const FORMAT_VECTOR_TREE: &str = "d79f26e2d55796d3a5991eee2c02010e2fc86b3964750be4ad2dff4d4e2b446e";

#[test]
fn second_packet_sharing_files_stores_only_new_bytes() {
    let sb = Sandbox::new();
    let large = random_bytes(2 * 1024 * 1024, 0x9e37_79b9_7f4a_7c15);
    sb.write("one/validator.py", &large);
    sb.write("one/report.json", "{\"packet\": 1}\n");
    sb.write("two/validator.py", &large);
    sb.write("two/report.json", "{\"packet\": 2}\n");
    let (_, first) = sb.json(&["ingest", sb.path("one").to_str().unwrap()]);
    let first_bytes = first["bytes_newly_stored"].as_u64().unwrap();
    assert!(
        first_bytes > 2 * 1024 * 1024,
        "random data should not compress: {first}"
    );
    let (rc, second) = sb.json(&["ingest", sb.path("two").to_str().unwrap()]);
    assert_eq!(rc, 0);
    let second_bytes = second["bytes_newly_stored"].as_u64().unwrap();
    // Only the new report, a root node and a record: far less than the shared 2 MiB file.
    assert!(second_bytes < 4096, "{second}");
    assert_eq!(second["objects_written"], 3);
}

on_both_backends! {
fn re_ingesting_the_same_tree_creates_no_new_version() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "p");
    let (_, first) = sb.json(&["ingest", packet.to_str().unwrap()]);
    let before = sb.store_snapshot();
    let again = sb.run(&["ingest", packet.to_str().unwrap()]);
    assert_eq!(code(&again), 0);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already archived as p@1"));
    assert_eq!(sb.store_snapshot(), before);
    let (_, listed) = sb.json(&["ls"]);
    assert_eq!(listed["packets"].as_array().unwrap().len(), 1);
    // A changed tree under the same name is version 2.
    sb.write("p/new.txt", "new\n");
    let (_, second) = sb.json(&["ingest", packet.to_str().unwrap()]);
    assert_eq!(second["packet"], "p@2");
    assert_ne!(second["tree"], first["tree"]);
}
}

/// Run ingest on a bad input: exit 2, an error naming the path, the store unchanged.
fn assert_refused(sb: &Sandbox, dir: &Path, needle: &str) {
    let before = sb.store_snapshot();
    let out = sb.run(&["ingest", dir.to_str().unwrap(), "--name", "bad"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(&out)
    );
    assert_eq!(sb.store_snapshot(), before, "the store changed");
    let (_, listed) = sb.json(&["ls"]);
    assert!(listed["packets"].as_array().unwrap().is_empty());
}

#[test]
fn refused_inputs_exit_2_and_leave_the_store_unchanged() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);

    let dir = sb.path("nonutf8");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
    assert_refused(&sb, &dir, "not valid UTF-8");

    sb.write("control/a\x01b", "x");
    assert_refused(&sb, &sb.path("control"), "control character");

    sb.write("newline/a\nb", "x");
    assert_refused(&sb, &sb.path("newline"), "control character");

    sb.write("backslash/a\\b", "x");
    assert_refused(&sb, &sb.path("backslash"), "backslash");

    sb.write("link/target.txt", "x");
    symlink("target.txt", sb.path("link/alias.txt")).unwrap();
    assert_refused(&sb, &sb.path("link"), "symbolic link");

    sb.write("fifo/a.txt", "x");
    let made = Command::new("mkfifo")
        .arg(sb.path("fifo/pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    assert_refused(&sb, &sb.path("fifo"), "FIFO");

    sb.write("socket/a.txt", "x");
    let _listener = std::os::unix::net::UnixListener::bind(sb.path("socket/sock")).unwrap();
    assert_refused(&sb, &sb.path("socket"), "socket");

    fs::create_dir_all(sb.path("empty/sub/deeper")).unwrap();
    assert_refused(&sb, &sb.path("empty"), "empty packet");

    // The store itself inside the packet.
    assert_refused(&sb, sb.dir.path(), "lies inside this folder");
}

#[test]
fn unreadable_file_is_refused() {
    let sb = Sandbox::new();
    sb.write("p/ok.txt", "x");
    let secret = sb.write("p/secret.txt", "y");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads any file, so run the binary as an unprivileged user when we are root.
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = if is_root {
        for dir in [sb.dir.path().to_path_buf(), sb.path("p")] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        }
        sb.command_as_nobody(Path::new(EVSTORE_BIN))
    } else {
        sb.command_storeless()
    };
    let out = cmd
        .arg("--store")
        .arg(sb.store())
        .arg("ingest")
        .arg(sb.path("p"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("secret.txt"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ermission denied"),
        "{}",
        stderr(&out)
    );
}

on_both_backends! {
fn a_sealed_packet_is_never_archived_drifted() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "sealed");
    let sha = coreutils_tree_sha256(&packet);
    let manifest = Command::new("bash")
        .arg("-c")
        .arg("find . -type f ! -path ./HASH_MANIFEST.txt ! -path ./HASH_MANIFEST.txt.sig -printf '%P\\0' | LC_ALL=C sort -z | xargs -0r sha256sum")
        .current_dir(&packet)
        .output()
        .unwrap();
    fs::write(packet.join("HASH_MANIFEST.txt"), &manifest.stdout).unwrap();
    // Drift: CRLF in one file.
    fs::write(packet.join("logs/run.log"), "step 1 ok\r\nstep 2 ok\r\n").unwrap();
    assert_eq!(code(&sb.run(&["init"])), 0);
    let before = sb.store_snapshot();
    let out = sb.run(&["ingest", packet.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    // The gate's report names the drifted file and its class, as `verify` does.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL  logs/run.log  [content]"), "{stdout}");
    assert!(
        stderr(&out).contains("does not match its seal, so it is not archived"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sb.store_snapshot(), before);
    // Restored, it archives with the sealed hash.
    fs::write(packet.join("logs/run.log"), "step 1 ok\nstep 2 ok\n").unwrap();
    let (rc, ingested) = sb.json(&["ingest", packet.to_str().unwrap()]);
    assert_eq!(rc, 0);
    assert_eq!(ingested["packet_tree_sha256"], sha.as_str());
    // A malformed seal is an operational error naming the line.
    fs::write(packet.join("HASH_MANIFEST.txt"), "not a seal\n").unwrap();
    let out = sb.run(&["ingest", packet.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}
}

/// Ingest a packet and return the sandbox and the packet's tree.
fn store_with_packet() -> (Sandbox, Value) {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "p");
    let (rc, ingested) = sb.json(&["ingest", packet.to_str().unwrap()]);
    assert_eq!(rc, 0);
    assert_eq!(code(&sb.run(&["fsck"])), 0);
    (sb, ingested)
}

fn blob_path(sb: &Sandbox, content: &[u8]) -> PathBuf {
    let hex = evstore::digest::blake3_of(content).to_hex();
    sb.store().join("objects").join(&hex[..2]).join(&hex[2..])
}

fn make_writable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

fn assert_fsck_names(sb: &Sandbox, needle: &str) {
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["verdict"], "FAIL");
    let text = report["problems"].to_string();
    assert!(text.contains(needle), "expected {needle} in {text}");
}

#[test]
fn fsck_names_a_flipped_byte() {
    let (sb, _) = store_with_packet();
    let path = blob_path(&sb, b"step 1 ok\nstep 2 ok\n");
    make_writable(&path);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    fs::write(&path, bytes).unwrap();
    let id = evstore::digest::blake3_of(b"step 1 ok\nstep 2 ok\n").to_hex();
    assert_fsck_names(&sb, &format!("object {id}"));
    // Readers refuse to hand the bytes out.
    let cat = sb.run(&["cat", "p", "logs/run.log"]);
    assert_eq!(code(&cat), 1, "{}", stderr(&cat));
    assert!(cat.stdout.is_empty(), "cat printed corrupted bytes");
    let export = sb.run(&["export", "p", "out"]);
    assert_eq!(code(&export), 1, "{}", stderr(&export));
    assert!(
        !sb.path("out").exists(),
        "a failed export left a folder behind"
    );
}

#[test]
fn fsck_names_a_truncated_object() {
    let (sb, _) = store_with_packet();
    let path = blob_path(&sb, b"inside a\n");
    make_writable(&path);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    assert_fsck_names(&sb, &evstore::digest::blake3_of(b"inside a\n").to_hex());
}

#[test]
fn fsck_names_a_deleted_object() {
    let (sb, _) = store_with_packet();
    let path = blob_path(&sb, b"inside a\n");
    fs::remove_file(&path).unwrap();
    let id = evstore::digest::blake3_of(b"inside a\n").to_hex();
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1);
    let text = report["problems"].to_string();
    assert!(
        text.contains(&format!("a/b: blob {id} is missing")),
        "{text}"
    );
}

#[test]
fn fsck_names_a_stray_file_and_a_corrupt_record() {
    let (sb, ingested) = store_with_packet();
    sb.write("store/objects/zz-stray", "junk");
    assert_fsck_names(&sb, "zz-stray");
    fs::remove_file(sb.path("store/objects/zz-stray")).unwrap();
    let record = ingested["record"].as_str().unwrap();
    let path = sb
        .store()
        .join("objects")
        .join(&record[..2])
        .join(&record[2..]);
    make_writable(&path);
    fs::write(&path, b"EVSO").unwrap();
    assert_fsck_names(&sb, &format!("object {record}"));
    assert_fsck_names(&sb, "packet p@1");
}

#[test]
fn objects_are_read_only_on_disk() {
    let (sb, _) = store_with_packet();
    let objects = sb.object_files();
    assert!(!objects.is_empty());
    for path in objects {
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o222, 0, "{} is writable", path.display());
    }
}

#[test]
fn a_tampered_event_row_is_detected() {
    let (sb, _) = store_with_packet();
    let conn = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    conn.execute_batch("DROP TRIGGER events_no_update;")
        .unwrap();
    conn.execute(
        "UPDATE events SET detail = '{\"files\":1}' WHERE seq = 2",
        [],
    )
    .unwrap();
    drop(conn);
    assert_fsck_names(&sb, "event 2");
}

#[test]
fn catalog_refuses_update_and_delete() {
    let (sb, _) = store_with_packet();
    let conn = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    for sql in [
        "UPDATE packets SET name = 'x'",
        "DELETE FROM packets",
        "UPDATE entries SET sha256 = 'x'",
        "DELETE FROM entries",
        "UPDATE events SET kind = 'x'",
        "DELETE FROM events",
        "UPDATE objects SET kind = 'x'",
        "DELETE FROM objects",
    ] {
        let err = conn.execute(sql, []).expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}

#[test]
fn reindex_rebuilds_a_deleted_catalog() {
    let (sb, _) = store_with_packet();
    sb.write("p/extra.txt", "v2\n");
    let (_, _) = sb.json(&["ingest", sb.path("p").to_str().unwrap()]);
    let (_, before) = sb.json(&["ls"]);
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(sb.store().join(format!("catalog.sqlite{suffix}")));
    }
    // Without a catalog, commands refuse rather than show an empty store.
    let out = sb.run(&["ls"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("evstore reindex"), "{}", stderr(&out));
    assert_eq!(code(&sb.run(&["fsck"])), 2);
    let (rc, report) = sb.json(&["reindex"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["packets"], 2);
    let (_, after) = sb.json(&["ls"]);
    let strip = |v: &Value| -> Vec<(Value, Value, Value, Value)> {
        v["packets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["packet"].clone(),
                    p["packet_tree_sha256"].clone(),
                    p["tree"].clone(),
                    p["record"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&after), strip(&before));
    assert_eq!(code(&sb.run(&["fsck"])), 0);
    // An existing catalog is not replaced without --replace.
    assert_eq!(code(&sb.run(&["reindex"])), 2);
}

on_both_backends! {
fn packet_references() {
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "p");
    let (_, first) = sb.json(&["ingest", packet.to_str().unwrap(), "--name", "alpha"]);
    sb.write("p/more.txt", "more\n");
    let (_, second) = sb.json(&["ingest", packet.to_str().unwrap(), "--name", "alpha"]);
    let (_, latest) = sb.json(&["show", "alpha"]);
    assert_eq!(latest["packet"], "alpha@2");
    let (_, one) = sb.json(&["show", "alpha@1"]);
    assert_eq!(one["tree"], first["tree"]);
    let prefix = &second["packet_tree_sha256"].as_str().unwrap()[..10];
    let (rc, by_prefix) = sb.json(&["show", prefix]);
    assert_eq!(rc, 0);
    assert_eq!(by_prefix["packet"], "alpha@2");
    for (reference, expected) in [("alpha@3", 2), ("nope", 2), ("alpha@0", 2), ("a/b", 2)] {
        let out = sb.run(&["show", reference]);
        assert_eq!(code(&out), expected, "{reference}: {}", stderr(&out));
    }
}
}

on_both_backends! {
fn an_ambiguous_prefix_is_refused() {
    let sb = Sandbox::new();
    // Ingest packets until two packet_tree_sha256 values share their first 8 hex digits is too
    // slow; instead the same tree is archived under two names, so one prefix matches both.
    let packet = write_packet(&sb, "p");
    let (_, ingested) = sb.json(&["ingest", packet.to_str().unwrap(), "--name", "p1"]);
    let prefix = &ingested["packet_tree_sha256"].as_str().unwrap()[..8];
    let (rc, _) = sb.json(&["ingest", packet.to_str().unwrap(), "--name", "p2"]);
    assert_eq!(rc, 0);
    let out = sb.run(&["show", prefix]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("is ambiguous: it matches 2 packets (p1@1, p2@1)"),
        "{}",
        stderr(&out)
    );
    // A name that is itself a hex prefix, which made a name and a prefix collide, is refused.
    sb.write("q/x.txt", "x");
    let (rc, _) = sb.json(&["ingest", sb.path("q").to_str().unwrap(), "--name", prefix]);
    assert_eq!(rc, 2);
}
}

#[test]
fn commands_on_a_missing_store_say_how_to_create_one() {
    let sb = Sandbox::new();
    let out = sb.run(&["ls"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("evstore init"), "{}", stderr(&out));
    let (rc, value) = sb.json(&["fsck"]);
    assert_eq!(rc, 2);
    assert_eq!(value["error"]["class"], "operational");
    // A store path that is a file.
    sb.write("store", "not a folder");
    let out = sb.run(&["ls"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("not a folder"), "{}", stderr(&out));
}

on_both_backends! {
fn export_refuses_a_non_empty_destination() {
    let (sb, _) = store_with_packet();
    sb.write("dest/keep.txt", "mine");
    let out = sb.run(&["export", "p", sb.path("dest").to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("not empty"));
    assert_eq!(fs::read(sb.path("dest/keep.txt")).unwrap(), b"mine");
}
}

on_both_backends! {
fn log_lists_init_and_ingest_events() {
    let (sb, _) = store_with_packet();
    let (rc, log) = sb.json(&["log"]);
    assert_eq!(rc, 0);
    let kinds: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["init", "ingest"]);
}
}

on_both_backends! {
fn four_concurrent_ingests_of_overlapping_packets_all_succeed() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    let shared = random_bytes(300 * 1024, 42);
    for i in 0..4 {
        sb.write(&format!("p{i}/shared.bin"), &shared);
        sb.write(&format!("p{i}/common/notes.txt"), "same in every packet\n");
        sb.write(&format!("p{i}/own.txt"), format!("packet {}\n", i % 2));
    }
    let children: Vec<_> = (0..4)
        .map(|i| {
            sb.command()
                .args(["ingest", "--name", "shared"])
                .arg(sb.path(&format!("p{i}")))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    // Two distinct trees (own.txt is "packet 0" or "packet 1"): exactly two versions.
    let (_, listed) = sb.json(&["ls"]);
    let packets = listed["packets"].as_array().unwrap();
    assert_eq!(packets.len(), 2, "{listed}");
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}
}

#[test]
fn regression_concurrent_first_ingests_into_a_new_store_all_succeed() {
    // Found by review: the store's VERSION was visible before its catalog existed, so a second
    // ingest creating the same new store failed with "catalog.sqlite is missing".
    for round in 0..5 {
        let sb = Sandbox::new();
        for i in 0..3 {
            sb.write(&format!("p{i}/file.txt"), format!("packet {i}\n"));
        }
        let children: Vec<_> = (0..3)
            .map(|i| {
                sb.command()
                    .args(["ingest", "--name", &format!("p{i}")])
                    .arg(sb.path(&format!("p{i}")))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert_eq!(code(&out), 0, "round {round}: {}", stderr(&out));
        }
        let (_, listed) = sb.json(&["ls"]);
        assert_eq!(listed["packets"].as_array().unwrap().len(), 3, "{listed}");
        let (rc, report) = sb.json(&["fsck"]);
        assert_eq!(rc, 0, "{report}");
        // Exactly one init event, and no temp folder left beside the store.
        let (_, log) = sb.json(&["log"]);
        let inits = log["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "init")
            .count();
        assert_eq!(inits, 1);
        let leftovers: Vec<_> = fs::read_dir(sb.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".evstore-init-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn regression_ingest_of_a_missing_folder_creates_no_store() {
    let sb = Sandbox::new();
    let out = sb.run(&["ingest", "no-such-folder"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("no-such-folder"), "{}", stderr(&out));
    assert!(!sb.store().exists());
}
