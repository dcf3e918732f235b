//! Pack files: a packet of many small files is stored as one pack; packed objects read back,
//! deduplicate and are checked exactly like loose ones, and damage to a pack is named.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::sandbox::{
    assert_each_refuses_corrupt_bytes, assert_trees_equal, code, stderr, Sandbox,
};

/// Enough files that one ingest packs them (the store packs 64 or more small objects).
const FILES: usize = 120;

fn many_small_files(sb: &Sandbox, rel: &str) -> PathBuf {
    for i in 0..FILES {
        sb.write(
            &format!("{rel}/d{}/f{i:03}.json", i % 4),
            format!(
                "{{\"file\": {i}, \"note\": \"evidence \u{2014} {}\"}}\n",
                "x".repeat(i)
            ),
        );
    }
    sb.path(rel)
}

fn packs(sb: &Sandbox) -> Vec<PathBuf> {
    let dir = sb.store().join("packs");
    let mut out: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(listing) => listing.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// A store holding packet `p` of [`FILES`] small files, in exactly one pack.
fn packed_store() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    many_small_files(&sb, "p");
    let (rc, report) = sb.json(&["ingest", "p"]);
    assert_eq!(rc, 0, "{report}");
    let found = packs(&sb);
    assert_eq!(found.len(), 1, "{found:?}");
    (sb, found[0].clone())
}

/// The (offset, length) of object `id` in `pack`, read from its index as docs/FORMAT.md says.
fn packed_range(pack: &Path, id: &str) -> (usize, usize) {
    let bytes = fs::read(pack).unwrap();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let count = word(bytes.len() - 16);
    let index = bytes.len() - 16 - count * 48;
    let id = hex::decode(id).unwrap();
    (0..count)
        .map(|i| index + i * 48)
        .find(|at| bytes[*at..*at + 32] == id[..])
        .map(|at| (word(at + 32), word(at + 40)))
        .expect("object in the pack index")
}

fn entry_blake3(sb: &Sandbox, path: &str) -> String {
    let (_, shown) = sb.json(&["show", "p"]);
    shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap()["blake3"]
        .as_str()
        .unwrap()
        .to_string()
}

fn rewrite(path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(path).unwrap();
    edit(&mut bytes);
    fs::write(path, bytes).unwrap();
}

fn fsck_problems(sb: &Sandbox) -> String {
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    report["problems"].to_string()
}

#[test]
fn many_small_files_are_packed_read_back_and_deduplicated() {
    let (sb, pack) = packed_store();
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with(".pack") && name.len() == 64 + 5, "{name}");
    assert_eq!(
        fs::metadata(&pack).unwrap().permissions().mode() & 0o222,
        0,
        "a pack is read-only"
    );
    // No blob is stored loose; only the record (a batch of one) is.
    let blob = entry_blake3(&sb, "d1/f001.json");
    assert!(!sb
        .store()
        .join("objects")
        .join(&blob[..2])
        .join(&blob[2..])
        .exists());
    assert_eq!(sb.object_files().len(), 1, "{:?}", sb.object_files());
    let (rc, report) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    let out = sb.run(&["cat", "p", "d1/f001.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(out.stdout, fs::read(sb.path("p/d1/f001.json")).unwrap());
    assert_eq!(code(&sb.run(&["export", "p", "out"])), 0);
    assert_trees_equal(&sb.path("p"), &sb.path("out"));
    assert_eq!(code(&sb.run(&["verify", "p", "--against", "p"])), 0);
    // The same files under another name: nothing new but the record and a tree node or two.
    fs::rename(sb.path("p"), sb.path("q")).unwrap();
    sb.write("q/new.txt", "one new file\n");
    let (rc, report) = sb.json(&["ingest", "q"]);
    assert_eq!(rc, 0, "{report}");
    assert!(report["objects_written"].as_u64().unwrap() <= 4, "{report}");
    assert_eq!(packs(&sb).len(), 1);
}

#[test]
fn a_flipped_byte_in_a_packed_blob_is_named_and_not_handed_out() {
    let (sb, pack) = packed_store();
    let blob = entry_blake3(&sb, "d2/f002.json");
    let (offset, len) = packed_range(&pack, &blob);
    rewrite(&pack, |bytes| bytes[offset + len - 1] ^= 0x20);
    let problems = fsck_problems(&sb);
    assert!(problems.contains(&format!("object {blob}")), "{problems}");
    assert!(
        problems.contains(pack.file_name().unwrap().to_str().unwrap()),
        "{problems}"
    );
    assert_each_refuses_corrupt_bytes(
        &sb,
        &[&["cat", "p", "d2/f002.json"], &["export", "p", "out"]],
    );
    assert!(!sb.path("out").exists());
    // The other files of the pack are still readable.
    assert_eq!(code(&sb.run(&["cat", "p", "d1/f001.json"])), 0);
}

#[test]
fn a_damaged_pack_index_is_named_and_its_objects_are_missing() {
    let (sb, pack) = packed_store();
    let blob = entry_blake3(&sb, "d3/f003.json");
    let (_, _) = packed_range(&pack, &blob);
    // Flip a bit in the first index entry's offset field.
    rewrite(&pack, |bytes| {
        let count =
            u64::from_le_bytes(bytes[bytes.len() - 16..bytes.len() - 8].try_into().unwrap());
        let index = bytes.len() - 16 - count as usize * 48;
        bytes[index + 32] ^= 0x01;
    });
    let problems = fsck_problems(&sb);
    assert!(problems.contains("pack "), "{problems}");
    assert!(problems.contains("not to its name"), "{problems}");
    assert!(problems.contains("packet p@1"), "{problems}");
    let out = sb.run(&["cat", "p", "d3/f003.json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}

#[test]
fn a_truncated_pack_a_deleted_pack_and_a_stray_file_are_named() {
    let (sb, pack) = packed_store();
    rewrite(&pack, |bytes| bytes.truncate(bytes.len() - 5));
    let problems = fsck_problems(&sb);
    assert!(problems.contains("no pack footer"), "{problems}");

    let (sb, pack) = packed_store();
    fs::set_permissions(sb.store().join("packs"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(&pack).unwrap();
    let problems = fsck_problems(&sb);
    assert!(problems.contains("missing from the store"), "{problems}");
    assert_eq!(code(&sb.run(&["export", "p", "out"])), 1);

    let (sb, _) = packed_store();
    sb.write("store/packs/not-a-pack", "junk");
    let problems = fsck_problems(&sb);
    assert!(problems.contains("not-a-pack"), "{problems}");
}

#[test]
fn reindex_rebuilds_the_catalog_from_packed_objects() {
    let (sb, _) = packed_store();
    let (_, before) = sb.json(&["ls"]);
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(sb.store().join(format!("catalog.sqlite{suffix}")));
    }
    let (rc, report) = sb.json(&["reindex"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["packets"], 1);
    let (_, after) = sb.json(&["ls"]);
    let key = |v: &Value| v["packets"][0]["packet_tree_sha256"].clone();
    assert_eq!(key(&after), key(&before));
    assert_eq!(code(&sb.run(&["fsck"])), 0);
}

#[test]
fn reindex_names_a_damaged_pack_and_does_not_index_its_packet() {
    let (sb, pack) = packed_store();
    rewrite(&pack, |bytes| bytes.truncate(bytes.len() - 1));
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(sb.store().join(format!("catalog.sqlite{suffix}")));
    }
    let (rc, report) = sb.json(&["reindex"]);
    assert_eq!(
        rc, 1,
        "skipping corrupt objects is a failed check: {report}"
    );
    assert_eq!(report["packets"], 0, "{report}");
    let skipped = report["skipped_corrupt"].to_string();
    assert!(skipped.contains("no pack footer"), "{skipped}");
    assert!(skipped.contains("packet p@1"), "{skipped}");
}
