//! Regressions found by the review of issue 14's first slice (the store's `log/` and version
//! claims as the truth, the catalog as its cache): a layout-2 store must never be rebuilt from
//! its catalog in a way that silently drops what the catalog lacks.

use std::fs;

use crate::sandbox::*;

fn store_with_events(sb: &Sandbox) {
    write_packet(sb, "p");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
    fs::create_dir(sb.path("kb")).unwrap();
    assert_eq!(code(&sb.run(&["mirror", "p", "kb"])), 0);
    sb.write("p/logs/run.log", "changed\n");
    assert_eq!(code(&sb.run(&["ingest", "p"])), 0);
}

#[test]
fn regression_a_layout_2_store_that_lost_its_log_fails_and_is_never_rebuilt_from_the_catalog() {
    let sb = Sandbox::new();
    store_with_events(&sb);
    let log = sb.store().join("log");
    fs::remove_dir_all(&log).unwrap();
    let out = sb.run(&["fsck"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
    assert!(text.contains("log/ key space is missing"), "{text}");
    for args in [
        &["ingest", "p"][..],
        &["reindex", "--replace"],
        &["forget", "p@1", "--reason", "x"],
    ] {
        let out = sb.run(args);
        assert_ne!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("log/ key space is missing"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(
        !log.exists(),
        "log/ is never rebuilt from the catalog of a layout-2 store"
    );
}

#[test]
fn regression_reindex_refuses_to_drop_a_catalog_event_the_log_lacks() {
    let sb = Sandbox::new();
    store_with_events(&sb);
    let (_, before) = sb.json(&["log"]);
    // Event 4 (the second ingest) is the newest: its log key going missing leaves no gap, so only
    // the catalog still shows it.
    let key = sb.store().join("log/00000000000000000004");
    assert!(key.exists());
    fs::remove_file(&key).unwrap();
    assert_eq!(code(&sb.run(&["fsck"])), 1);
    let out = sb.run(&["reindex", "--replace"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("would lose"), "{}", stderr(&out));
    let (_, after) = sb.json(&["log"]);
    assert_eq!(before, after, "the catalog was left as it was");
    assert_eq!(
        code(&sb.run(&["fsck"])),
        1,
        "still named, never passed over"
    );
}

#[test]
fn regression_reindex_reports_a_forged_or_damaged_version_claim() {
    let sb = Sandbox::new();
    store_with_events(&sb);
    let claims = sb.store().join("refs/packets/p");
    let record = fs::read(claims.join("1")).unwrap();
    for (name, bytes) in [("abc", record.clone()), ("7", b"junk\n".to_vec())] {
        let forged = claims.join(name);
        fs::write(&forged, &bytes).unwrap();
        let out = sb.run(&["reindex", "--replace"]);
        assert_eq!(code(&out), 1, "{name}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
        assert!(
            text.contains(&format!("refs/packets/p/{name}")),
            "{name}: {text}"
        );
        fs::remove_file(&forged).unwrap();
    }
}

/// A FIFO in place of the next log key was called a "commit marker" (the review's finding 8).
#[test]
fn regression_a_bad_log_key_is_named_as_an_event_log_key() {
    let sb = Sandbox::new();
    store_with_events(&sb);
    let next = sb.store().join("log/00000000000000000005");
    let status = std::process::Command::new("mkfifo")
        .arg(&next)
        .status()
        .unwrap();
    assert!(status.success());
    sb.write("p/logs/run.log", "changed again\n");
    let out = sb.run(&["ingest", "p"]);
    assert_ne!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("event log key"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("commit marker"), "{}", stderr(&out));
}
