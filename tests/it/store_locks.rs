//! The store's writers' lock and lock errors, seen from the command line: an ingest that cannot
//! take the writers' lock stores nothing and says why; lock contention is an operational error.

use std::fs;

use crate::sandbox::{code, stderr, write_packet, Sandbox};

/// Without its writers' lock (`<store>/tmp` cannot be opened) an ingest refuses before writing
/// anything (exit 2), naming the lock folder and the reason, and records no packet.
#[test]
fn an_ingest_that_cannot_take_the_writers_lock_fails_closed() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    let packet = write_packet(&sb, "p");
    fs::remove_dir(sb.store().join("tmp")).unwrap();
    let out = sb.run(&["ingest", packet.to_str().unwrap(), "--name", "p"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let message = stderr(&out);
    assert!(
        message.contains(&format!("{}", sb.store().join("tmp").display()))
            && message.contains("writers' lock")
            && message.contains("No such file or directory"),
        "{message}"
    );
    assert!(sb.object_files().is_empty(), "no object was stored");
    let (rc, listing) = sb.json(&["ls"]);
    assert_eq!(rc, 0);
    assert_eq!(
        listing["packets"].as_array().map(Vec::len),
        Some(0),
        "{listing}"
    );
}

/// `gc-temp` during a write is lock contention: an operational error (exit 2) in JSON too.
#[test]
fn gc_temp_during_a_write_is_an_operational_error_in_json() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    let store = evstore::store::Store::open(&sb.store()).unwrap();
    let batch = store.batch().unwrap();
    let (rc, report) = sb.json(&["gc-temp"]);
    assert_eq!(rc, 2);
    assert_eq!(report["error"]["class"], "operational", "{report}");
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("a write is in progress")),
        "{report}"
    );
    drop(batch);
}

/// Many processes that open one catalog that does not exist yet (the S3 cache of a machine
/// whose first commands run at once) all open it: turning a new file into WAL mode takes an
/// exclusive lock SQLite does not wait for, so the open waits for it itself. Found by CI:
/// `one_name_many_trees_*_on_s3` failed once with "database is locked" in its first round.
#[test]
fn regression_many_first_opens_of_one_new_catalog_all_succeed() {
    let sb = Sandbox::new();
    for round in 0..6 {
        let path = sb.path(&format!("fresh-{round}.sqlite"));
        let start = std::sync::Arc::new(std::sync::Barrier::new(12));
        let openers: Vec<_> = (0..12)
            .map(|_| {
                let path = path.clone();
                let start = std::sync::Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    evstore::catalog::Catalog::open(&path).map(|_| ())
                })
            })
            .collect();
        for opener in openers {
            let opened = opener.join().expect("the opener thread");
            assert!(opened.is_ok(), "round {round}: {:?}", opened.err());
        }
    }
}
