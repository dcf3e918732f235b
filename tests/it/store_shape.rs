//! The store's own folders and files: who may read them, and that evstore never works through a
//! symbolic link inside a store.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use crate::sandbox::{code, stderr, write_packet, Sandbox, EVSTORE_BIN, NOBODY};

/// Only the sandbox folder itself is opened to other users (`chmod 755`), nothing below it: what
/// evstore created must be readable as it was created.
fn open_only_the_sandbox_folder(sb: &Sandbox) -> std::path::PathBuf {
    let root = sb.path("");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = sb.path("evstore-bin");
    fs::copy(EVSTORE_BIN, &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn regression_a_read_only_auditor_can_fsck_a_store_as_evstore_made_it() {
    crate::sandbox::require_root("run fsck as another user");
    let sb = Sandbox::new();
    write_packet(&sb, "pkt");
    assert_eq!(code(&sb.run(&["ingest", "pkt"])), 0);
    // A second version and a rerun attestation: more markers of more kinds.
    sb.write("pkt/logs/run.log", "step 1 ok\nstep 2 ok\nstep 3 ok\n");
    assert_eq!(code(&sb.run(&["ingest", "pkt"])), 0);
    let marker = sb.store().join("refs/packets/pkt/1");
    let mode = fs::metadata(&marker).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o444,
        "a commit marker is read-only for everyone, as objects are"
    );
    let refs_mode = fs::metadata(sb.store().join("refs"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        refs_mode & 0o005,
        0o005,
        "refs/ is readable and searchable by everyone"
    );
    let bin = open_only_the_sandbox_folder(&sb);
    let store = sb.store();
    let out = sb
        .command_as_nobody(&bin)
        .args(["--store", store.to_str().unwrap(), "fsck"])
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        0,
        "uid {NOBODY} must be able to check the store: {}",
        stderr(&out)
    );
}

#[test]
fn regression_a_symlinked_tmp_folder_is_refused_and_gc_temp_deletes_nothing_outside() {
    let sb = Sandbox::new();
    write_packet(&sb, "pkt");
    assert_eq!(code(&sb.run(&["ingest", "pkt"])), 0);
    let precious = sb.write("outside/important.txt", "precious\n");
    fs::remove_dir(sb.store().join("tmp")).unwrap();
    symlink("../outside", sb.store().join("tmp")).unwrap();
    for args in [&["gc-temp"][..], &["fsck"], &["ingest", "pkt"], &["ls"]] {
        let out = sb.run(args);
        assert_eq!(
            code(&out),
            1,
            "{args:?} on a store whose tmp/ is a link: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("tmp") && stderr(&out).contains("symbolic link"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(fs::read_to_string(&precious).unwrap(), "precious\n");
    assert_eq!(fs::read_dir(sb.path("outside")).unwrap().count(), 1);
}

#[test]
fn regression_a_symlinked_objects_folder_is_refused() {
    // (A symlinked refs/ is `reindex::regression_a_symlinked_refs_folder_is_refused`.)
    let sb = Sandbox::new();
    write_packet(&sb, "pkt");
    assert_eq!(code(&sb.run(&["ingest", "pkt"])), 0);
    let real = sb.store().join("objects");
    let moved = sb.path("elsewhere-objects");
    fs::rename(&real, &moved).unwrap();
    symlink(&moved, &real).unwrap();
    for args in [&["fsck"][..], &["ingest", "pkt"], &["show", "pkt"]] {
        let out = sb.run(args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("symbolic link"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn regression_a_marker_folder_that_is_a_symlink_is_never_written_through() {
    let sb = Sandbox::new();
    write_packet(&sb, "pkt");
    assert_eq!(code(&sb.run(&["ingest", "pkt"])), 0);
    let folder = sb.store().join("refs/packets/pkt");
    let moved = sb.path("elsewhere");
    fs::rename(&folder, &moved).unwrap();
    symlink(&moved, &folder).unwrap();
    // A new version would write refs/packets/pkt/2 through the link.
    sb.write("pkt/logs/run.log", "changed\n");
    let out = sb.run(&["ingest", "pkt"]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert!(
        !moved.join("2").exists(),
        "no marker is written through the link"
    );
    let out = sb.run(&["fsck"]);
    assert_eq!(
        code(&out),
        1,
        "fsck names the linked marker folder: {}",
        stderr(&out)
    );
}
