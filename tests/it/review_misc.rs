//! Issue 12, defects a hostile review found after the fixes: a read-only reader holding every
//! other command on the store, URL-like paths becoming local folders, a symlink left at
//! `--keep`, `rerun --expect` refused for a read-only default store, `--timeout 0` and a file as
//! `--cwd`, writes into the store folder, and the full-disk message.
//!
//! The tests that run evstore as `nobody` (through `setpriv`) or mount a tmpfs need root; run as
//! another user, they fail saying so (CI runs the suite as root).

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::sandbox::{
    code, open_to_other_users, require_root, stderr, tree_snapshot, write_packet, Sandbox, Tmpfs,
};

fn evstore(sb: &Sandbox) -> Command {
    sb.command_storeless()
}

fn run_in(sb: &Sandbox, args: &[&str]) -> Output {
    evstore(sb).args(args).output().unwrap()
}

fn ingest(sb: &Sandbox, dir: &str) {
    let out = sb.run(&["ingest", dir]);
    assert_eq!(code(&out), 0, "ingest {dir}: {}", stderr(&out));
}

/// `bin ARGS` as uid/gid 65534 with no supplementary groups, in the sandbox.
fn as_nobody(sb: &Sandbox, bin: &Path, args: &[&str]) -> Command {
    let mut cmd = sb.command_as_nobody(bin);
    cmd.args(args);
    cmd
}

/// The exclusive side of the catalog lock (an `flock` on the store folder), as `reindex` or an
/// `immutable` reader holds it; released when dropped.
fn hold_catalog_lock_exclusively(store: &Path) -> fs::File {
    let dir = fs::File::open(store).unwrap();
    rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    dir
}

fn no_runs_recorded(sb: &Sandbox) {
    let (rc, runs) = sb.json(&["runs"]);
    assert_eq!(rc, 0);
    assert_eq!(runs["runs"], Value::Array(Vec::new()), "{runs}");
}

// Item 1 (review of item 6): waiting for the catalog lock is said, bounded, and refused by name.

#[test]
fn regression_a_command_waiting_for_the_catalog_lock_says_so_and_gives_up_after_the_timeout() {
    let sb = Sandbox::new();
    write_packet(&sb, "p1");
    ingest(&sb, "p1");
    sb.write("p8/new.txt", "another packet\n");
    let before = tree_snapshot(&sb.store());
    let lock = hold_catalog_lock_exclusively(&sb.store());
    for args in [&["ls"][..], &["ingest", "p8"], &["show", "p1"]] {
        let out = evstore(&sb)
            .env("EVSTORE_LOCK_TIMEOUT_SECS", "1")
            .arg("--store")
            .arg(sb.store())
            .args(args)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{args:?}: {err}");
        let store = sb.store().display().to_string();
        assert!(
            err.contains(&format!(
                "{store}: another evstore process (reindex, or a reader of a store it cannot \
                 write) holds the catalog lock; waiting up to 1 s"
            )),
            "{args:?}: the wait is not announced: {err}"
        );
        assert_eq!(
            err.matches("waiting up to").count(),
            1,
            "{args:?}: said more than once: {err}"
        );
        assert!(
            err.contains(&format!(
                "{store}: gave up waiting for the catalog lock (an flock on this folder) after 1 s"
            )),
            "{args:?}: {err}"
        );
    }
    drop(lock);
    assert_eq!(
        tree_snapshot(&sb.store()),
        before,
        "a refused command changed the store"
    );
    // A malformed override is a usage error, not an unbounded wait.
    let lock = hold_catalog_lock_exclusively(&sb.store());
    let out = evstore(&sb)
        .env("EVSTORE_LOCK_TIMEOUT_SECS", "soon")
        .arg("--store")
        .arg(sb.store())
        .arg("ls")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("EVSTORE_LOCK_TIMEOUT_SECS"),
        "{}",
        stderr(&out)
    );
    drop(lock);
}

#[test]
fn regression_a_command_waiting_for_the_catalog_lock_goes_on_once_it_is_released() {
    let sb = Sandbox::new();
    write_packet(&sb, "p1");
    ingest(&sb, "p1");
    sb.write("p8/new.txt", "another packet\n");
    let lock = hold_catalog_lock_exclusively(&sb.store());
    let mut child = evstore(&sb)
        .arg("--store")
        .arg(sb.store())
        .args(["ingest", "p8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line on stderr is the announcement: the ingest is now waiting.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(
        first.contains("holds the catalog lock; waiting up to 120 s"),
        "{first}"
    );
    drop(lock);
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{first}{rest}");
    let (rc, ls) = sb.json(&["ls"]);
    assert_eq!(rc, 0);
    assert_eq!(ls["packets"].as_array().unwrap().len(), 2, "{ls}");
}

#[test]
fn regression_a_read_only_user_streaming_cat_into_a_stalled_pipe_does_not_hold_other_commands() {
    require_root("this test");
    let sb = Sandbox::new();
    // Bigger than a pipe's buffer, so `cat` blocks writing it while nobody reads.
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    sb.write("bigp/f", &big);
    ingest(&sb, "bigp");
    sb.write("p8/new.txt", "another packet\n");
    let bin = open_to_other_users(&sb);
    // No process has the catalog open: no `-shm`, so `nobody` reads it `immutable`.
    assert!(!sb.store().join("catalog.sqlite-shm").exists());
    let store = sb.store().display().to_string();
    let mut cat = as_nobody(&sb, &bin, &["--store", &store, "cat", "bigp", "f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // One byte read: `cat` is streaming the blob (and the pipe then fills and stalls it).
    let mut first = [0u8; 1];
    cat.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(first[0], big[0]);
    // Another reader and a writer go on; were the catalog lock still held, they would wait the
    // 5 s below and exit 2.
    for args in [&["ls"][..], &["ingest", "p8"]] {
        let out = evstore(&sb)
            .env("EVSTORE_LOCK_TIMEOUT_SECS", "5")
            .arg("--store")
            .arg(sb.store())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("waiting"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // The stalled reader still hands out the whole verified file.
    let mut rest = Vec::new();
    cat.stdout.take().unwrap().read_to_end(&mut rest).unwrap();
    assert!(cat.wait().unwrap().success());
    assert_eq!(rest.len() + 1, big.len());
    assert!(rest == big[1..]);
}

// Item 2 (review of item 13): URL-like and blank-edged paths are refused, not made local.

#[test]
fn regression_url_like_store_export_and_keep_paths_are_refused_not_made_local_folders() {
    let sb = Sandbox::new();
    write_packet(&sb, "good");
    let before = tree_snapshot(sb.dir.path());
    for store in ["s3:/bkt/ev", "s3:bkt", " s3://b", "st ", "https:"] {
        let out = run_in(&sb, &["--store", store, "ingest", "good"]);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "--store {store:?}: {err}");
        assert!(err.contains("on purpose"), "--store {store:?}: {err}");
        assert_eq!(
            tree_snapshot(sb.dir.path()),
            before,
            "--store {store:?} created something"
        );
    }
    let out = run_in(&sb, &["--store", "s3:bkt", "ingest", "good"]);
    assert!(stderr(&out).contains("./s3:bkt"), "{}", stderr(&out));

    ingest(&sb, "good");
    let before = tree_snapshot(sb.dir.path());
    for dest in ["s3://bkt/out", "s3:bkt", " out", "out "] {
        let out = sb.run(&["export", "good", dest]);
        assert_eq!(code(&out), 2, "export to {dest:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("export destination"),
            "{}",
            stderr(&out)
        );
        let out = sb.run(&[
            "rerun", "good", "--keep", dest, "--", "cp", "-r", "good/.", "{out}/",
        ]);
        assert_eq!(code(&out), 2, "--keep {dest:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--keep folder"), "{}", stderr(&out));
        assert_eq!(
            tree_snapshot(sb.dir.path()),
            before,
            "{dest:?} created something"
        );
    }
    no_runs_recorded(&sb);

    // A local folder of such a name, on purpose.
    let out = run_in(&sb, &["--store", "./s3:bkt", "ingest", "good"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(sb.path("s3:bkt/VERSION").is_file());
    let out = sb.run(&["export", "good", "./s3:out"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(sb.path("s3:out/HASH_MANIFEST.txt").is_file());
}

// Item 3: a refused rerun removes the symlink the generator left at a --keep path it created.

#[test]
fn regression_refused_rerun_removes_the_symlink_the_generator_left_at_the_keep_path() {
    let sb = Sandbox::new();
    write_packet(&sb, "p1");
    ingest(&sb, "p1");
    let copy = write_packet(&sb, "copy");
    let copy_before = tree_snapshot(&copy);
    let replace = format!("rmdir \"$1\" && ln -s {} \"$1\"", copy.display());
    let out = sb.run(&[
        "rerun", "p1", "--keep", "kept9", "--", "bash", "-c", &replace, "_", "{out}",
    ]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert!(
        fs::symlink_metadata(sb.path("kept9")).is_err(),
        "the generator's symlink stays at the --keep path: {err}"
    );
    assert!(err.contains("removed the symbolic link"), "{err}");
    assert_eq!(
        tree_snapshot(&copy),
        copy_before,
        "the link's target changed"
    );

    // A --keep folder that existed before is the user's: left, and said.
    fs::create_dir(sb.path("kept10")).unwrap();
    let out = sb.run(&[
        "rerun", "p1", "--keep", "kept10", "--", "bash", "-c", &replace, "_", "{out}",
    ]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(fs::symlink_metadata(sb.path("kept10"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(err.contains("existed before this rerun"), "{err}");
    assert_eq!(
        tree_snapshot(&copy),
        copy_before,
        "the link's target changed"
    );
    no_runs_recorded(&sb);
}

// Item 4: `rerun --expect` does not need, and does not use, a default store it cannot write.

#[test]
fn regression_rerun_expect_with_a_read_only_default_store_runs_and_says_nothing_was_recorded() {
    require_root("this test");
    let sb = Sandbox::new();
    let packet = write_packet(&sb, "p1");
    // The default store, ./.evstore in the working directory, owned by root.
    let out = run_in(&sb, &["ingest", "p1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sha = {
        let out = run_in(&sb, &["hash", "p1", "--quiet"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let bin = open_to_other_users(&sb);
    let store = sb.path(".evstore");
    let before = tree_snapshot(&store);
    let source = format!("{}/.", packet.display());
    let out = as_nobody(
        &sb,
        &bin,
        &[
            "rerun", "--expect", &sha, "--", "cp", "-r", &source, "{out}/",
        ],
    )
    .output()
    .unwrap();
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PASS (PACKET_TREE MATCH)"),
        "{err}"
    );
    assert!(
        err.contains("the attestation was not recorded because the default store")
            && err.contains("read-only for this user"),
        "{err}"
    );
    assert_eq!(tree_snapshot(&store), before, "the read-only store changed");

    // A store named on purpose is still refused: the user asked for a record.
    let store_arg = store.display().to_string();
    let out = as_nobody(
        &sb,
        &bin,
        &[
            "--store", &store_arg, "rerun", "--expect", &sha, "--", "cp", "-r", &source, "{out}/",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("read-only for this user"),
        "{}",
        stderr(&out)
    );
}

// Item 5: `--timeout 0` and a file as `--cwd` are usage errors; nothing runs, nothing is recorded.

#[test]
fn regression_rerun_timeout_zero_and_a_file_as_cwd_are_refused_before_anything_runs() {
    let sb = Sandbox::new();
    write_packet(&sb, "p1");
    ingest(&sb, "p1");
    let marker = sb.path("generator-ran");
    let marker_arg = marker.display().to_string();
    let out = sb.run(&["rerun", "p1", "--timeout", "0", "--", "touch", &marker_arg]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--timeout 0"), "{}", stderr(&out));
    let afile = sb.write("afile", "not a folder\n");
    let out = sb.run(&[
        "rerun",
        "p1",
        "--cwd",
        &afile.display().to_string(),
        "--",
        "touch",
        &marker_arg,
    ]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.contains(&afile.display().to_string()) && err.contains("--cwd is not a folder"),
        "{err}"
    );
    assert!(!marker.exists(), "the generator ran");
    no_runs_recorded(&sb);
}

// Item 6: nothing is archived from, or written into, the store folder.

#[test]
fn regression_ingest_export_and_keep_inside_the_store_are_refused() {
    let sb = Sandbox::new();
    write_packet(&sb, "p1");
    ingest(&sb, "p1");
    let before = tree_snapshot(&sb.store());
    let store = sb.store().display().to_string();
    let inside = |rel: &str| format!("{store}/{rel}");
    let cases: Vec<Vec<String>> = vec![
        vec!["ingest".into(), inside("objects")],
        vec![
            "ingest".into(),
            inside("objects"),
            "--name".into(),
            "x".into(),
        ],
        vec!["export".into(), "p1".into(), inside("objects/zz")],
        vec!["export".into(), "p1".into(), inside("zz")],
        vec![
            "rerun".into(),
            "p1".into(),
            "--keep".into(),
            inside("objects/kk"),
            "--".into(),
            "cp".into(),
            "-r".into(),
            sb.path("p1/.").display().to_string(),
            "{out}/".into(),
        ],
    ];
    for args in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sb.run(&args);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{args:?}: {err}");
        assert!(err.contains("is inside the store"), "{args:?}: {err}");
    }
    // Through a symlink to the store, too.
    std::os::unix::fs::symlink(sb.store(), sb.path("alias")).unwrap();
    let out = sb.run(&[
        "export",
        "p1",
        &sb.path("alias/objects/zz").display().to_string(),
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(tree_snapshot(&sb.store()), before, "the store changed");
    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    no_runs_recorded(&sb);
}

// Item 7: a catalog write refused for want of space says the threshold and the free space.

#[test]
fn regression_full_disk_catalog_write_says_the_256_kib_threshold_and_the_free_space() {
    require_root("this test");
    let sb = Sandbox::new();
    write_packet(&sb, "p1");
    sb.write("p2/only.txt", "second packet\n");
    let fs_dir = sb.path("fs");
    let tmpfs = Tmpfs::mount(fs_dir.clone());
    let store = fs_dir.join("store");
    let store_arg = store.display().to_string();
    let out = run_in(&sb, &["--store", &store_arg, "ingest", "p1"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    tmpfs.fill_leaving(128 * 1024);
    let before = tree_snapshot(&store);
    let out = run_in(&sb, &["--store", &store_arg, "ingest", "p2"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.contains(&format!("{store_arg}/catalog.sqlite"))
            && err.contains("less than 256 KiB free on the store's file system (")
            && err.contains("KiB): too little for a catalog write; free some space"),
        "{err}"
    );
    assert!(!err.contains("os error 28"), "{err}");
    assert_eq!(
        tree_snapshot(&store),
        before,
        "the refused write changed the store"
    );
    // Reads still work.
    let out = run_in(&sb, &["--store", &store_arg, "ls"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    drop(tmpfs);
}
