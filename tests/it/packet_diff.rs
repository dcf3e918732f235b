//! Issue 13: a packet-to-packet `diff` lists the files of equal subtrees from the stored tree
//! (the read path's promise), never from the catalog's `entries` rows.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::sandbox::*;

/// Two versions of `p` that differ in `a.txt` and share the folder `shared`.
fn two_versions(sb: &Sandbox) {
    sb.write("p/a.txt", "one\n");
    sb.write("p/shared/x.txt", "x\n");
    sb.write("p/shared/y.txt", "y\n");
    let (rc, first) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{first}");
    sb.write("p/a.txt", "two\n");
    let (rc, second) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{second}");
}

fn paths_with_status(report: &Value) -> Vec<(String, String)> {
    report["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn equal_subtree_files_are_listed_even_without_their_catalog_rows() {
    let sb = Sandbox::new();
    two_versions(&sb);
    let conn = rusqlite::Connection::open(sb.store().join("catalog.sqlite")).unwrap();
    conn.execute_batch("DROP TRIGGER entries_no_delete; DELETE FROM entries;")
        .unwrap();
    drop(conn);
    let (rc, report) = sb.json(&["diff", "packet:p@1", "packet:p@2"]);
    assert_eq!(rc, 1, "{report}");
    assert_eq!(report["subtrees_skipped"], serde_json::json!(["shared"]));
    assert_eq!(
        paths_with_status(&report),
        [
            ("a.txt".to_string(), "fail".to_string()),
            ("shared/x.txt".to_string(), "ok".to_string()),
            ("shared/y.txt".to_string(), "ok".to_string()),
        ]
    );
    assert_eq!(report["counts"]["files"], 3);
}

#[test]
fn a_corrupt_node_in_an_equal_subtree_is_an_error_not_an_ok_listing() {
    let sb = Sandbox::new();
    two_versions(&sb);
    // The node of `shared`: the tree of the folder holding only x.txt and y.txt.
    sb.write("only/x.txt", "x\n");
    sb.write("only/y.txt", "y\n");
    let shared = evstore::ops::ingest::hash_packet(&sb.path("only"))
        .unwrap()
        .tree
        .root
        .to_hex();
    let object = sb
        .store()
        .join("objects")
        .join(&shared[..2])
        .join(&shared[2..]);
    assert!(object.exists(), "no loose object {}", object.display());
    fs::set_permissions(&object, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&object, b"not a tree node").unwrap();
    let out = sb.run(&["diff", "packet:p@1", "packet:p@2"]);
    // Corruption is a verification error (exit 1) naming the node, and no report is printed.
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains(&shared), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
