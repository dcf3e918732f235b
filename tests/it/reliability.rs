//! Reliability and hostile input: kills during ingest, gc-temp, corruption of every kind of stored
//! thing, and inputs built to break a naive archiver.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::sandbox::*;

/// Run with `--json --store STORE` (not the sandbox's store) and parse stdout.
fn json_at(sb: &Sandbox, store: &str, args: &[&str]) -> (i32, Value) {
    let out = sb
        .command_storeless()
        .args(["--json", "--store", store])
        .args(args)
        .output()
        .unwrap();
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr(&out)));
    (code(&out), value)
}

fn rounds(default: u64) -> u64 {
    std::env::var("EVSTORE_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn ingest_killed_at_random_moments_leaves_a_sound_store() {
    let sb = Sandbox::new();
    for i in 0..300 {
        let len = if i % 50 == 0 { 200_000 } else { 1500 + i };
        sb.write(
            &format!("p/d{}/f{i}.json", i % 12),
            random_bytes(len, i as u64),
        );
    }
    let (_, hashed) = sb.json(&["hash", "p"]);
    let expected = hashed["packet_tree_sha256"].as_str().unwrap().to_string();
    let total = rounds(50);
    let mut interrupted = 0;
    for round in 0..total {
        let store = sb.path(&format!("store-{round}"));
        let mut child = sb
            .command_storeless()
            .arg("--store")
            .arg(&store)
            .args(["ingest", "p"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A spread of moments from "just started" to "probably done".
        std::thread::sleep(Duration::from_micros((round * 2_971) % 90_000));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.code().is_none() {
            interrupted += 1;
        }
        let store_arg = store.to_str().unwrap();
        if store.join("VERSION").exists() {
            // A store exists only whole (catalog included), and it is sound.
            let (rc, report) = json_at(&sb, store_arg, &["fsck"]);
            assert_eq!(rc, 0, "round {round}: {report}");
        } else {
            assert!(!store.exists(), "round {round}: a store without VERSION");
        }
        // Rerunning the same ingest succeeds with the same hashes, and gc-temp cleans up.
        let (rc, again) = json_at(&sb, store_arg, &["ingest", "p"]);
        assert_eq!(rc, 0, "round {round}: {again}");
        assert_eq!(again["packet_tree_sha256"], expected.as_str());
        let (rc, gc) = json_at(&sb, store_arg, &["gc-temp"]);
        assert_eq!(rc, 0, "{gc}");
        assert_eq!(fs::read_dir(store.join("tmp")).unwrap().count(), 0);
        let (rc, report) = json_at(&sb, store_arg, &["fsck"]);
        assert_eq!(rc, 0, "round {round}: {report}");
        // The only notes a kill may leave are an orphan record object (killed between writing
        // the record and the catalog commit) and a packet without its commit marker (killed
        // right after the commit); both documented. gc-temp removed every temp file.
        for note in report["notes"].as_array().unwrap() {
            let note = note.as_str().unwrap();
            assert!(
                note.contains("is not in the catalog") || note.contains("has no commit marker"),
                "round {round}: {note}"
            );
        }
        fs::remove_dir_all(&store).unwrap();
    }
    assert!(interrupted > 0, "no round interrupted an ingest");
}

#[test]
fn gc_temp_refuses_while_a_write_is_in_progress() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    sb.write("store/tmp/obj-leftover", "partial");
    let store = evstore::store::Store::open(&sb.store()).unwrap();
    let batch = store.batch().unwrap();
    let out = sb.run(&["gc-temp"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("in progress"), "{}", stderr(&out));
    assert!(sb.path("store/tmp/obj-leftover").exists());
    drop(batch);
    let (rc, report) = sb.json(&["gc-temp"]);
    assert_eq!(rc, 0);
    assert_eq!(report["removed"], 1);
    assert!(!sb.path("store/tmp/obj-leftover").exists());
}

/// `reindex --replace` moves the catalog aside; an ingest writing meanwhile would commit to the
/// old file. So it refuses (exit 2, catalog untouched) while any write is in progress.
#[test]
fn reindex_refuses_while_a_write_is_in_progress() {
    let (sb, _) = one_packet();
    let catalog = fs::read(sb.store().join("catalog.sqlite")).unwrap();
    let store = evstore::store::Store::open(&sb.store()).unwrap();
    let batch = store.batch().unwrap();
    let out = sb.run(&["reindex", "--replace"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run reindex again"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read(sb.store().join("catalog.sqlite")).unwrap(),
        catalog
    );
    drop(batch);
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["packets"], 1);
}

/// `reindex --replace` moves the catalog aside. A command that has it open would write into the
/// old file, and when it closed, SQLite would delete the new catalog's `-wal`/`-shm` by name. So
/// reindex refuses while any handle is open; and a write through a handle whose file was
/// replaced anyway (by hand) is refused instead of landing in the old file.
#[test]
fn reindex_refuses_while_the_catalog_is_open_and_a_replaced_catalog_takes_no_write() {
    let (sb, _) = one_packet();
    let path = sb.store().join("catalog.sqlite");
    let store = evstore::store::Store::open(&sb.store()).unwrap();
    let open = evstore::catalog::Catalog::open_existing(&store.catalog_path()).unwrap();
    let out = sb.run(&["reindex", "--replace"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("catalog is open in another evstore process"),
        "{}",
        stderr(&out)
    );
    assert!(path.exists());
    drop(open);
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");

    let mut stale = evstore::catalog::Catalog::open_existing(&path).unwrap();
    fs::rename(&path, sb.path("moved.sqlite")).unwrap();
    fs::copy(sb.path("moved.sqlite"), &path).unwrap();
    let err = stale
        .log_event(&evstore::catalog::NewEvent::init(
            std::path::Path::new("late"),
            "0",
        ))
        .unwrap_err();
    assert!(err.to_string().contains("catalog was replaced"), "{err}");
}

/// Regression: a damaged catalog file ("file is not a database") made `fsck` exit 2, as if the
/// check could not run, instead of 1 for corruption found; and it did not say how to recover.
#[test]
fn a_damaged_catalog_file_is_corruption_and_reindex_recovers_it() {
    let (sb, shown) = one_packet();
    let catalog = sb.store().join("catalog.sqlite");
    let mut bytes = fs::read(&catalog).unwrap();
    bytes[..16].copy_from_slice(b"not sqlite at al");
    fs::write(&catalog, &bytes).unwrap();
    for args in [vec!["fsck"], vec!["ls"], vec!["show", "p"]] {
        let out = sb.run(&args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("corrupt catalog"), "{err}");
        assert!(err.contains("catalog.sqlite"), "{err}");
        assert!(err.contains("evstore reindex --replace"), "{err}");
    }
    let (rc, value) = sb.json(&["fsck"]);
    assert_eq!(rc, 1);
    assert_eq!(value["error"]["class"], "verification");
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    let (rc, again) = sb.json(&["show", "p"]);
    assert_eq!(rc, 0);
    assert_eq!(again["packet_tree_sha256"], shown["packet_tree_sha256"]);
}

/// A store with one packet `p`, its `show --json`, and the packet folder `p`.
fn one_packet() -> (Sandbox, Value) {
    let sb = Sandbox::new();
    sb.write("p/top.txt", "top level\n");
    sb.write("p/sub/inner.txt", "inner file\n");
    let (rc, _) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0);
    let (_, shown) = sb.json(&["show", "p"]);
    (sb, shown)
}

fn object_path(sb: &Sandbox, id: &str) -> std::path::PathBuf {
    sb.store().join("objects").join(&id[..2]).join(&id[2..])
}

fn flip_byte(path: &std::path::Path) {
    let mut perms = fs::metadata(path).unwrap().permissions();
    perms.set_mode(0o644);
    fs::set_permissions(path, perms).unwrap();
    let mut content = fs::read(path).unwrap();
    let last = content.len() - 1;
    content[last] ^= 0x40;
    fs::write(path, content).unwrap();
}

fn fsck_names(sb: &Sandbox, needle: &str) {
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains(needle), "{needle} not in {problems}");
}

#[test]
fn a_corrupt_tree_node_is_named_and_no_command_hands_out_its_packet() {
    let (sb, shown) = one_packet();
    let tree = shown["tree"].as_str().unwrap();
    flip_byte(&object_path(&sb, tree));
    fsck_names(&sb, &format!("object {tree}"));
    assert_each_refuses_corrupt_bytes(
        &sb,
        &[
            &["show", "p"],
            &["manifest", "p"],
            &["cat", "p", "top.txt"],
            &["export", "p", "out"],
            &["verify", "p", "--against", "p"],
        ],
    );
    assert!(!sb.path("out").exists());
}

#[test]
fn a_corrupt_blob_is_not_used_to_diagnose() {
    let (sb, shown) = one_packet();
    let entry = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "top.txt")
        .unwrap();
    flip_byte(&object_path(&sb, entry["blake3"].as_str().unwrap()));
    // The folder matches the tree, so verify reads no blob and passes on the tree's digests.
    assert_eq!(code(&sb.run(&["verify", "p", "--against", "p"])), 0);
    // A changed file needs the stored bytes to diagnose; corrupt bytes are refused (exit 1).
    sb.write("p/top.txt", "top level, edited\n");
    let out = sb.run(&["verify", "p", "--against", "p"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
}

#[test]
fn a_tampered_catalog_row_is_named() {
    let (sb, _) = one_packet();
    let db = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    db.execute_batch(
        "DROP TRIGGER entries_no_update; \
         UPDATE entries SET sha256 = '0000000000000000000000000000000000000000000000000000000000000000' WHERE path = 'top.txt';",
    )
    .unwrap();
    drop(db);
    fsck_names(&sb, "catalog entries differ from the stored tree");
    // Reads use the stored tree, not the tampered row.
    let out = sb.run(&["cat", "p", "top.txt"]);
    assert_eq!(code(&out), 0);
    assert_eq!(out.stdout, b"top level\n");
}

/// Regression: opening the catalog took SQLite's write lock for its schema check, so `ls`,
/// `show`, `cat`, `verify --against` and `fsck` queued behind any writer and failed after 120 s.
#[test]
fn readers_do_not_wait_for_a_writer_holding_the_catalog_lock() {
    let (sb, _) = one_packet();
    let writer = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE;").unwrap();
    for args in [
        vec!["ls"],
        vec!["show", "p"],
        vec!["manifest", "p"],
        vec!["verify", "p", "--against", "p"],
        vec!["fsck"],
    ] {
        let (rc, report) = sb.json(&args);
        assert_eq!(rc, 0, "{args:?} while a writer holds the lock: {report}");
    }
    let out = sb.run(&["cat", "p", "top.txt"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(out.stdout, b"top level\n");
    writer.execute_batch("ROLLBACK;").unwrap();
}

#[test]
fn a_stray_file_inside_a_fan_out_folder_is_named() {
    let (sb, shown) = one_packet();
    let tree = shown["tree"].as_str().unwrap();
    let stray = sb
        .store()
        .join("objects")
        .join(&tree[..2])
        .join("not-an-object");
    fs::write(&stray, "junk").unwrap();
    fsck_names(&sb, "not-an-object");
}

#[test]
fn hostile_symlinks_are_refused_and_nothing_is_stored() {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("outside")).unwrap();
    fs::write(sb.path("outside/secret"), "secret\n").unwrap();
    for (name, target) in [
        ("to-dir", "../outside"),
        ("escaping", "/etc/passwd"),
        ("loop", "loop"),
    ] {
        let dir = format!("p-{name}");
        sb.write(&format!("{dir}/ok.txt"), "ok\n");
        symlink(target, sb.path(&format!("{dir}/{name}"))).unwrap();
        let out = sb.run(&["ingest", &dir]);
        assert_eq!(code(&out), 2, "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
        let out = sb.run(&["seal", &dir]);
        assert_eq!(code(&out), 2, "{name}");
    }
    // A refused first ingest creates no store at all (issue 12 item 4).
    assert!(!sb.store().exists(), "a refused ingest created a store");
}

/// A folder whose files lie deeper than `PATH_MAX` (4096 bytes; each name is 200 bytes, below
/// every file system's `NAME_MAX`, and 30 of them make a 6030-byte path) is refused by `hash`,
/// `ingest` and `seal` alike: exit 2, naming the folder that could not be opened and the
/// operating system's reason, with no store created and no seal written. The limit is the
/// kernel's, not the file system's: Linux refuses any path argument longer than `PATH_MAX` with
/// `ENAMETOOLONG` (os error 36) before a file system sees it, so this holds on the temp folder
/// whatever it is mounted on (ext4 here, tmpfs or overlayfs elsewhere).
#[test]
fn a_tree_deeper_than_path_max_is_refused_naming_the_folder() {
    let sb = Sandbox::new();
    let name = "d".repeat(200);
    let script = format!(
        "set -e; mkdir deep; cd deep; for i in $(seq 30); do mkdir {name}; cd {name}; done; echo x > f"
    );
    let made = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(sb.dir.path())
        .status()
        .unwrap();
    assert!(made.success());
    sb.write("deep/top.txt", "top\n");
    // The first folder too long to open: 21 names of 201 bytes (with the slash) after "deep/"
    // pass 4096 bytes.
    let too_long = format!("deep/{}", vec![name.as_str(); 21].join("/"));
    assert!(too_long.len() > 4096 && too_long.len() - 201 <= 4096);
    for args in [
        &["hash", "deep"][..],
        &["ingest", "deep"],
        &["seal", "deep"],
    ] {
        let out = sb.run(args);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "{too_long}: cannot open folder: File name too long (os error 36)"
            )),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        // A refused first ingest creates no store at all (issue 12 item 4).
        assert!(!sb.store().exists(), "{args:?} created a store");
        assert!(!sb.path("deep/HASH_MANIFEST.txt").exists(), "{args:?}");
    }
}

#[test]
fn one_hundred_thousand_empty_files() {
    let sb = Sandbox::new();
    for d in 0..100 {
        let dir = sb.path(&format!("many/d{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            fs::File::create(dir.join(format!("f{f:04}"))).unwrap();
        }
    }
    let (rc, out) = sb.json(&["ingest", "many"]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(out["files"], 100_000);
    assert_eq!(out["bytes"], 0);
    // The 100 folders are identical, so the Merkle tree stores one node for all of them: one
    // empty blob, one folder node, the root node and the record.
    assert_eq!(out["objects_written"], 4);
}

#[test]
fn a_4_gib_sparse_file_streams_in_bounded_memory() {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("sparse")).unwrap();
    let file = fs::File::create(sb.path("sparse/disk.img")).unwrap();
    file.set_len(4 << 30).unwrap();
    drop(file);
    let time = std::path::Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        sb.command_through(
            "/usr/bin/time",
            &["-f", "maxrss_kib=%M"],
            Path::new(EVSTORE_BIN),
        )
    } else {
        sb.command_storeless()
    };
    let out = cmd
        .arg("--store")
        .arg(sb.store())
        .args(["--json", "ingest", "sparse"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["bytes"], 4u64 << 30);
    // Zeros compress: the store holds far less than the file.
    assert!(
        report["bytes_newly_stored"].as_u64().unwrap() < 4 << 20,
        "{report}"
    );
    if time.exists() {
        let err = stderr(&out);
        let rss: u64 = err
            .lines()
            .find_map(|l| l.strip_prefix("maxrss_kib="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no RSS in {err}"));
        assert!(rss < 200 * 1024, "peak RSS {rss} KiB");
    }
}

on_both_backends! {
fn a_file_that_grows_while_it_is_read_fails() {
    let sb = Sandbox::new();
    sb.write("p/growing.log", random_bytes(32 << 20, 3));
    let path = sb.path("p/growing.log");
    let mut child = sb
        .command()
        .args(["ingest", "p"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut appender = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let status = loop {
        use std::io::Write;
        appender.write_all(b"more\n").unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("changed while it was being read"), "{err}");
    // A refused first ingest creates no store at all (issue 12 item 4).
    assert!(!sb.store().exists(), "a refused ingest created a store");
}
}

#[test]
fn a_store_path_that_is_a_file_or_unwritable_is_refused() {
    let sb = Sandbox::new();
    sb.write("p/a.txt", "a\n");
    sb.write("a-file", "not a store\n");
    let out = sb
        .command_storeless()
        .args(["--store", "a-file", "ingest", "p"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("a-file"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(sb.path("a-file")).unwrap(),
        "not a store\n"
    );
    // An unwritable store, as an unprivileged user when we are root.
    assert_eq!(code(&sb.run(&["init"])), 0);
    for dir in [sb.dir.path().to_path_buf(), sb.path("p")] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    }
    fs::set_permissions(sb.path("p/a.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = if is_root {
        sb.command_as_nobody(Path::new(EVSTORE_BIN))
    } else {
        fs::set_permissions(sb.store(), fs::Permissions::from_mode(0o555)).unwrap();
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
    fs::set_permissions(sb.store(), fs::Permissions::from_mode(0o755)).unwrap();
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["packets_checked"], 0);
}

#[test]
fn a_file_size_limit_reached_mid_write_commits_nothing() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    sb.write("p/big.bin", random_bytes(8 << 20, 9));
    sb.write("p/small.txt", "small\n");
    // ulimit -f counts 1024-byte blocks here: 2 MiB, less than the incompressible 8 MiB object.
    let out = sb
        .command_through(
            "bash",
            &["-c", "ulimit -f 2048; exec \"$0\" \"$@\""],
            Path::new(EVSTORE_BIN),
        )
        .arg("--store")
        .arg(sb.store())
        .args(["ingest", "p"])
        .output()
        .unwrap();
    assert_ne!(code_or_signal(&out), 0, "{}", stderr(&out));
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["packets_checked"], 0);
    let (_, listed) = sb.json(&["ls"]);
    assert!(listed["packets"].as_array().unwrap().is_empty());
    // With the limit lifted, the same ingest works.
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
}

fn code_or_signal(out: &std::process::Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    out.status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0))
}

#[test]
fn a_seal_with_a_huge_line_is_refused_naming_the_line() {
    let sb = Sandbox::new();
    sb.write("p/a", "a\n");
    let long = "x/".repeat(3000) + "y";
    sb.write(
        "p/HASH_MANIFEST.txt",
        format!("{}  a\n{}  {long}\n", "1".repeat(64), "2".repeat(64)),
    );
    let out = sb.run(&["verify", "p"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("longer than 4096"),
        "{}",
        stderr(&out)
    );
}

on_both_backends! {
fn readers_during_concurrent_ingests_never_see_a_partial_packet() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    for p in 0..4 {
        for i in 0..150 {
            let shared = i % 2 == 0;
            let seed = if shared { i } else { 1000 * (p + 1) + i };
            sb.write(
                &format!("p{p}/d{}/f{i}.bin", i % 7),
                random_bytes(4096, seed as u64),
            );
        }
    }
    let mut writers: Vec<_> = (0..4)
        .map(|p| {
            sb.command()
                .args(["ingest", &format!("p{p}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut checks = 0;
    loop {
        let running = writers.iter_mut().any(|w| w.try_wait().unwrap().is_none());
        let (rc, listed) = sb.json(&["ls"]);
        assert_eq!(rc, 0, "{listed}");
        for packet in listed["packets"].as_array().unwrap() {
            // Every listed packet is complete: its record, tree and every blob verify.
            let label = packet["packet"].as_str().unwrap();
            let out = sb.run(&["export", label, &format!("out-{checks}-{label}")]);
            assert_eq!(code(&out), 0, "{label}: {}", stderr(&out));
        }
        let (rc, report) = sb.json(&["fsck"]);
        assert_eq!(rc, 0, "fsck during writes: {report}");
        checks += 1;
        if !running {
            break;
        }
    }
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let (_, listed) = sb.json(&["ls"]);
    assert_eq!(listed["packets"].as_array().unwrap().len(), 4);
    assert!(checks >= 1);
}
}
