//! Issue 12 item 6: a store this user cannot write, and a store on a full file system, can be
//! read; commands that must write say why they cannot.
//!
//! These tests need root: they run evstore as `nobody` through `setpriv`, and mount a tmpfs.
//! Run as another user, they fail saying so (CI runs the suite as root).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::sandbox::{
    assert_trees_equal, code, open_to_other_users, require_root, stderr, write_packet, Sandbox,
    Tmpfs, NOBODY,
};

/// Everything under `root`: each path with its type and permission bits, and each file's
/// SHA-256 (catalog files included: a read-only command must not change a byte of them, nor
/// create `-wal`/`-shm`). Read by child processes: closing a descriptor of `catalog.sqlite` in
/// this process would drop the POSIX locks of a connection the test holds open on it.
fn snapshot(root: &Path) -> Vec<String> {
    let lines = |args: &[&str]| -> Vec<String> {
        let out = Command::new("find").arg(root).args(args).output().unwrap();
        assert!(out.status.success(), "find {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let mut all = lines(&["-printf", "%P %y %m\\n"]);
    all.extend(lines(&["-type", "f", "-exec", "sha256sum", "{}", "+"]));
    all.sort();
    all
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Run evstore as uid/gid 65534 with no supplementary groups.
fn as_nobody(sb: &Sandbox, bin: &Path, store: &Path, args: &[&str]) -> Output {
    sb.command_as_nobody(bin)
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("run setpriv (util-linux)")
}

/// Each read-only command exits 0 as `nobody` and leaves the store byte for byte unchanged.
fn assert_reads_change_nothing(
    sb: &Sandbox,
    bin: &Path,
    store: &Path,
    commands: &[&[&str]],
) -> Vec<Output> {
    let mut outputs = Vec::new();
    for args in commands {
        let before = snapshot(store);
        let out = as_nobody(sb, bin, store, args);
        assert_eq!(code(&out), 0, "{args:?} as nobody: {}", stderr(&out));
        assert_eq!(
            snapshot(store),
            before,
            "{args:?} as nobody changed the store"
        );
        outputs.push(out);
    }
    outputs
}

fn assert_no_wal_files(store: &Path) {
    for suffix in ["-wal", "-shm"] {
        let path = store.join(format!("catalog.sqlite{suffix}"));
        assert!(!path.exists(), "{} exists", path.display());
    }
}

/// A store with two packets, one mirrored into `kb`; everything owned by root.
fn populated(sb: &Sandbox) {
    write_packet(sb, "p1");
    sb.write("p2/only.txt", "second packet\n");
    for (dir, name) in [("p1", "p1"), ("p2", "p2")] {
        let out = sb.run(&["ingest", dir, "--name", name]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    fs::create_dir(sb.path("kb")).unwrap();
    let out = sb.run(&["mirror", "p1", "kb"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn regression_read_only_store_can_be_read_by_a_user_who_cannot_write_it() {
    require_root("this test");
    let sb = Sandbox::new();
    populated(&sb);
    let bin = open_to_other_users(&sb);
    let store = sb.store();
    // The store folder is root's 0755: nobody can create `-wal`/`-shm` in it, and none exist.
    assert_no_wal_files(&store);
    let out_dir = sb.path("out");
    fs::create_dir(&out_dir).unwrap();
    std::os::unix::fs::chown(&out_dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let before = snapshot(&store);
    let outputs = assert_reads_change_nothing(
        &sb,
        &bin,
        &store,
        &[
            &["--json", "ls"],
            &["show", "p1"],
            &["manifest", "p1"],
            &["cat", "p1", "logs/run.log"],
            &["log"],
            &["fsck"],
            &["runs"],
            &["verify", "p1", "--against", "p1"],
            &["diff", "p1", "p1@1"],
            &["export", "p1", "out/p1"],
            &["kb", "verify", "kb"],
        ],
    );
    let listed: Value = serde_json::from_slice(&outputs[0].stdout).unwrap();
    let names: Vec<&str> = listed["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p1", "p2"]);
    assert_eq!(outputs[3].stdout, b"step 1 ok\nstep 2 ok\n");
    assert!(String::from_utf8_lossy(&outputs[5].stdout).starts_with("PASS"));
    assert_trees_equal(&sb.path("p1"), &out_dir.join("p1"));
    let kb = stderr(&outputs[10]);
    assert!(
        kb.contains("the kb-verify event was not logged") && kb.contains("read-only"),
        "{kb}"
    );
    assert!(String::from_utf8_lossy(&outputs[10].stdout).contains("PASS: 0 of 1"));
    assert_eq!(snapshot(&store), before);
    // The owner still writes to it as before: the catalog was not left in a state it cannot use.
    sb.write("p3/x", "x\n");
    let out = sb.run(&["ingest", "p3", "--name", "p3"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn regression_read_only_store_refuses_writes_saying_it_is_read_only() {
    require_root("this test");
    let sb = Sandbox::new();
    populated(&sb);
    sb.write("p3/x", "x\n");
    let bin = open_to_other_users(&sb);
    let store = sb.store();
    let kb2 = sb.path("kb2");
    fs::create_dir(&kb2).unwrap();
    std::os::unix::fs::chown(&kb2, Some(NOBODY), Some(NOBODY)).unwrap();
    let before = snapshot(&store);
    for args in [
        &["ingest", "p3", "--name", "p3"][..],
        &["mirror", "p1", "kb2"],
        &["rerun", "p1", "--", "true"],
        &["reindex", "--replace"],
        &["gc-temp"],
    ] {
        let out = as_nobody(&sb, &bin, &store, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the store is read-only for this user"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(snapshot(&store), before, "{args:?} changed the store");
    }
    assert_eq!(
        fs::read_dir(&kb2).unwrap().count(),
        0,
        "mirror wrote into kb2"
    );
}

#[test]
fn regression_store_folder_chmod_a_w_is_read_by_its_owner_without_wal_files() {
    require_root("this test");
    let sb = Sandbox::new();
    populated(&sb);
    let bin = open_to_other_users(&sb);
    // nobody owns the store, under a name that needs percent-encoding in a SQLite URI, and its
    // folder is read-only: the catalog file is writable, but no `-wal`/`-shm` can be created.
    let store = sb.path("odd ?name#x=1&y%41");
    fs::rename(sb.store(), &store).unwrap();
    let status = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(&store)
        .status()
        .unwrap();
    assert!(status.success());
    chmod(&store, 0o555);
    let out_dir = sb.path("out");
    fs::create_dir(&out_dir).unwrap();
    std::os::unix::fs::chown(&out_dir, Some(NOBODY), Some(NOBODY)).unwrap();
    let outputs = assert_reads_change_nothing(
        &sb,
        &bin,
        &store,
        &[
            &["ls"],
            &["show", "p2"],
            &["fsck"],
            &["export", "p1", "out/p1"],
            &["kb", "verify", "kb"],
        ],
    );
    assert!(String::from_utf8_lossy(&outputs[0].stdout).contains("p2@1"));
    assert!(String::from_utf8_lossy(&outputs[2].stdout).starts_with("PASS"));
    assert_trees_equal(&sb.path("p1"), &out_dir.join("p1"));
    assert!(stderr(&outputs[4]).contains("the kb-verify event was not logged"));
    assert_no_wal_files(&store);
    sb.write("p3/x", "x\n");
    let out = as_nobody(&sb, &bin, &store, &["ingest", "p3", "--name", "p3"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the store is read-only for this user"),
        "{}",
        stderr(&out)
    );
    chmod(&store, 0o755);
}

/// Hold a connection open on the catalog (as a long-running evstore process would), so the
/// next commit stays in `catalog.sqlite-wal` and is not checkpointed into the file.
fn hold_catalog_open(store: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(store.join("catalog.sqlite")).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM packets", [], |r| r.get(0))
        .unwrap();
    assert!(count > 0);
    conn
}

#[test]
fn regression_read_only_user_sees_commits_still_in_the_wal_of_a_store_in_use() {
    require_root("this test");
    let sb = Sandbox::new();
    write_packet(&sb, "p1");
    let out = sb.run(&["ingest", "p1", "--name", "p1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let store = sb.store();
    let held = hold_catalog_open(&store);
    sb.write("p2/only.txt", "committed into the WAL only\n");
    let out = sb.run(&["ingest", "p2", "--name", "p2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let wal = store.join("catalog.sqlite-wal");
    assert!(
        fs::metadata(&wal).unwrap().len() > 0,
        "p2 is not in the WAL"
    );
    let bin = open_to_other_users(&sb);
    // The `-wal` and `-shm` exist and nobody cannot write them: SQLite reads them read-only.
    let outputs = assert_reads_change_nothing(
        &sb,
        &bin,
        &store,
        &[&["ls"], &["cat", "p2", "only.txt"], &["fsck"]],
    );
    assert!(String::from_utf8_lossy(&outputs[0].stdout).contains("p2@1"));
    assert_eq!(outputs[1].stdout, b"committed into the WAL only\n");
    assert!(String::from_utf8_lossy(&outputs[2].stdout).starts_with("PASS"));

    // A copy of that store without its `-shm` (as a crash or a careless copy leaves it), in a
    // folder nobody cannot write: the commits in the `-wal` cannot be read, so nothing is read.
    let copy = sb.path("copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&store)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    drop(held);
    fs::remove_file(copy.join("catalog.sqlite-shm")).unwrap();
    assert!(fs::metadata(copy.join("catalog.sqlite-wal")).unwrap().len() > 0);
    let before = snapshot(&copy);
    for args in [&["ls"][..], &["fsck"], &["show", "p1"]] {
        let out = as_nobody(&sb, &bin, &copy, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("write-ahead log") && stderr(&out).contains("catalog.sqlite"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(snapshot(&copy), before);
    }
    // Its owner replays the log, and then nobody can read it too.
    let out = sb
        .command_storeless()
        .arg("--store")
        .arg(&copy)
        .arg("ls")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = as_nobody(&sb, &bin, &copy, &["ls"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("p2@1"));
}

fn run_with_store(sb: &Sandbox, store: &Path, args: &[&str]) -> Output {
    sb.command_storeless()
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

fn assert_no_space_error(out: &Output, path: &Path, what: &str) {
    let err = stderr(out);
    assert_eq!(code(out), 2, "{what}: {err}");
    assert!(
        err.to_lowercase().contains("no space left on device"),
        "{what}: {err}"
    );
    assert!(
        err.contains(&path.display().to_string()),
        "{what}: does not name {}: {err}",
        path.display()
    );
}

#[test]
fn regression_store_on_a_full_disk_is_readable_and_writes_say_no_space_left_on_device() {
    require_root("this test");
    let sb = Sandbox::new();
    let fs_dir = sb.path("fs");
    let tmpfs = Tmpfs::mount(fs_dir.clone());
    let store = fs_dir.join("store");
    write_packet(&sb, "p1");
    let out = run_with_store(&sb, &store, &["ingest", "p1", "--name", "p1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_no_wal_files(&store);
    fs::create_dir(sb.path("kb")).unwrap();
    let filler = tmpfs.fill();

    for args in [
        &["ls"][..],
        &["show", "p1"],
        &["log"],
        &["fsck"],
        &["cat", "p1", "a/b"],
        &["verify", "p1", "--against", "p1"],
        &["export", "p1", "out/p1"],
    ] {
        let before = snapshot(&store);
        let out = run_with_store(&sb, &store, args);
        assert_eq!(code(&out), 0, "{args:?} on a full disk: {}", stderr(&out));
        assert_eq!(snapshot(&store), before, "{args:?} changed the store");
    }
    assert_trees_equal(&sb.path("p1"), &sb.path("out/p1"));

    // Writes fail, saying why and where.
    sb.write("p2/new.txt", "new\n");
    let out = run_with_store(&sb, &store, &["ingest", "p2", "--name", "p2"]);
    assert_no_space_error(&out, &store, "ingest");
    let out = run_with_store(&sb, &store, &["mirror", "p1", "kb"]);
    assert_no_space_error(&out, &store, "mirror");
    assert!(!sb.path("kb/p1").exists());
    // The refused writes left nothing in the store (no `-wal`/`-shm` either).
    assert_no_wal_files(&store);

    // Space freed: nothing was lost or half-written, and the same commands succeed.
    fs::remove_file(filler).unwrap();
    let out = run_with_store(&sb, &store, &["fsck"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run_with_store(&sb, &store, &["ingest", "p2", "--name", "p2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run_with_store(&sb, &store, &["mirror", "p1", "kb"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run_with_store(&sb, &store, &["export", "p2", "out/p2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_trees_equal(&sb.path("p2"), &sb.path("out/p2"));
    let out = run_with_store(&sb, &store, &["fsck"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    drop(tmpfs);
}

#[test]
fn regression_mirror_into_a_full_kb_names_the_kb_path() {
    require_root("this test");
    let sb = Sandbox::new();
    // One file larger than every buffer, so the failing write happens while the blob streams.
    let big: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    sb.write("big/blob.bin", &big);
    let out = sb.run(&["ingest", "big", "--name", "big"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let kb = sb.path("kbfs");
    let tmpfs = Tmpfs::mount(kb.clone());
    let filler = tmpfs.fill();
    let before = snapshot(&sb.store());
    let out = sb.run(&["mirror", "big", "kbfs"]);
    assert_no_space_error(&out, &kb, "mirror into a full KB");
    assert!(
        !stderr(&out).contains("cannot read object"),
        "{}",
        stderr(&out)
    );
    assert!(!kb.join("big").exists());
    assert_eq!(snapshot(&sb.store()), before);
    fs::remove_file(filler).unwrap();
    let out = sb.run(&["mirror", "big", "kbfs"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = sb.run(&["kb", "verify", "kbfs"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    drop(tmpfs);
}

#[test]
fn regression_full_disk_catalog_write_says_no_space_and_kb_verify_still_verifies() {
    require_root("this test");
    let sb = Sandbox::new();
    let fs_dir = sb.path("fs");
    let tmpfs = Tmpfs::mount(fs_dir.clone());
    let store = fs_dir.join("store");
    write_packet(&sb, "p1");
    let out = run_with_store(&sb, &store, &["ingest", "p1", "--name", "p1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    fs::create_dir(sb.path("kb")).unwrap();
    let out = run_with_store(&sb, &store, &["mirror", "p1", "kb"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Another process has the catalog open, so its `-shm` exists and opening needs no space:
    // the failure comes from SQLite's own write into the `-wal`.
    let held = hold_catalog_open(&store);
    let filler = tmpfs.fill();

    // The `-shm` is SQLite's shared scratch memory (readers mark it as they read): every byte
    // but its contents must stay as it was.
    let snapshot_but_shm = |root: &Path| -> Vec<String> {
        snapshot(root)
            .into_iter()
            .filter(|line| !line.ends_with("/catalog.sqlite-shm"))
            .collect()
    };
    let before = snapshot_but_shm(&store);
    for args in [&["ls"][..], &["fsck"], &["show", "p1"]] {
        let out = run_with_store(&sb, &store, args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
    let out = run_with_store(&sb, &store, &["kb", "verify", "kb"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let note = stderr(&out);
    assert!(
        note.contains("the kb-verify event was not logged")
            && note.to_lowercase().contains("no space left on device"),
        "{note}"
    );
    assert_eq!(snapshot_but_shm(&store), before);

    // The first write is the mirror event's `log/` key, before the catalog's.
    let out = run_with_store(&sb, &store, &["mirror", "p1", "kb", "--as", "again"]);
    assert_no_space_error(&out, &store, "mirror");

    fs::remove_file(filler).unwrap();
    drop(held);
    // The mirror that could not be recorded is recorded by running it again.
    let out = run_with_store(&sb, &store, &["mirror", "p1", "kb", "--as", "again"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run_with_store(&sb, &store, &["kb", "verify", "kb"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("not logged"), "{}", stderr(&out));
    let out = run_with_store(&sb, &store, &["fsck"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    drop(tmpfs);
}
