//! Regressions found by the second review of issue 13 (the layout change): each is a way a
//! folder or a store could be taken for something it is not, or a command could hang.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::sandbox::*;

/// A `HASH_MANIFEST.txt` that is an empty folder vanished from the scan, so a drifted folder was
/// archived as if it had no seal.
#[test]
fn regression_a_seal_that_is_an_empty_folder_is_refused_not_ignored() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    assert_eq!(code(&sb.run_storeless(&["seal", "p"])), 0);
    fs::remove_file(sb.path("p/HASH_MANIFEST.txt")).unwrap();
    fs::create_dir(sb.path("p/HASH_MANIFEST.txt")).unwrap();
    sb.write("p/logs/run.log", "tampered\n");
    for args in [&["ingest", "p"][..], &["verify", "p"], &["hash", "p"]] {
        let out = sb.run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("HASH_MANIFEST.txt")
                && stderr(&out).contains("not a regular file")
                || stderr(&out).contains("must be a regular file"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!sb.store().exists(), "nothing archived, no store created");
}

/// A KB packet folder mirrored with `--dedup reference` lacks the referenced files: `verify`
/// resolves them in the KB and passes, so `ingest` printing them as missing contradicted it.
#[test]
fn regression_ingest_refuses_a_kb_folder_of_references_instead_of_contradicting_verify() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    sb.write("p2/extra.txt", "one more\n");
    for entry in [
        "report.json",
        "logs/run.log",
        "logs/empty.log",
        "a-b",
        "a/b",
    ] {
        let from = sb.path(&format!("p/{entry}"));
        sb.write(&format!("p2/{entry}"), fs::read(from).unwrap());
    }
    assert_eq!(code(&sb.run(&["ingest", "p2"])), 0);
    fs::create_dir(sb.path("kb")).unwrap();
    assert_eq!(code(&sb.run(&["mirror", "p", "kb"])), 0);
    let out = sb.run(&["mirror", "p2", "kb", "--dedup", "reference"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(sb.path("kb/p2/KB_REFERENCES.txt").exists());
    assert_eq!(code(&sb.run_storeless(&["verify", "kb/p2"])), 0);
    let other = sb.path("other-store");
    let out = sb
        .command_storeless()
        .args(["--store", other.to_str().unwrap(), "ingest", "kb/p2"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("KB_REFERENCES.txt"),
        "{}",
        stderr(&out)
    );
    assert!(!other.exists(), "nothing archived");
}

/// A marker that is a FIFO made `reindex --replace` (which fsck recommends) block forever on
/// its open, holding the catalog lock.
#[test]
fn regression_a_fifo_among_the_commit_markers_never_hangs_reindex() {
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    let marker = sb.store().join("refs/packets/p/1");
    fs::remove_file(&marker).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&marker)
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = sb
        .command()
        .args(["reindex", "--replace"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("reindex --replace blocked on a FIFO marker");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(
        status.code(),
        Some(0),
        "a FIFO marker is never a sound store"
    );
}

/// Markers written by evstore before this change are private (0600): a writer that meets one
/// (`reindex --replace`, which the fsck message names) makes it readable, so a read-only auditor
/// can then check the store.
#[test]
fn regression_reindex_makes_private_markers_of_an_older_store_readable() {
    require_root("run fsck as another user");
    let sb = Sandbox::new();
    write_packet(&sb, "p");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    let marker = sb.store().join("refs/packets/p/1");
    fs::set_permissions(&marker, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(sb.path(""), fs::Permissions::from_mode(0o755)).unwrap();
    let bin = sb.path("evstore-bin");
    fs::copy(EVSTORE_BIN, &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let store = sb.store();
    let fsck_as_nobody = || {
        sb.command_as_nobody(&bin)
            .args(["--store", store.to_str().unwrap(), "fsck"])
            .output()
            .unwrap()
    };
    let out = fsck_as_nobody();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
    assert!(text.contains("reindex --replace"), "{text}");
    assert!(
        !text.contains("has no commit marker"),
        "the marker is there: {text}"
    );
    assert_eq!(code(&sb.run(&["reindex", "--replace"])), 0);
    let mode = fs::metadata(&marker).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o444);
    let out = fsck_as_nobody();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
