//! `mirror --dedup`: an earlier mirror's copy is used only if it is, now, a regular file of the
//! KB reached without a symlink, with the expected size, executable bit (for a hard link) and
//! bytes. Anything else is not a candidate, and the file is written as a copy.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use crate::sandbox::*;

const SHARED: &str = "tools/shared.py";
const SHARED_BYTES: &[u8] = b"print('the same bytes in both packets')\n";

/// Two packets holding the same `tools/shared.py`, the first mirrored (as a copy) into `kb/one`.
fn first_mirrored() -> Sandbox {
    let sb = Sandbox::new();
    fs::create_dir(sb.path("kb")).unwrap();
    for name in ["one", "two"] {
        sb.write(&format!("{name}/{SHARED}"), SHARED_BYTES);
        sb.write(&format!("{name}/own.txt"), format!("{name}\n"));
        assert_eq!(code(&sb.run(&["ingest", name])), 0);
    }
    let (rc, out) = sb.json(&["mirror", "one", "kb"]);
    assert_eq!(rc, 0, "{out}");
    sb
}

fn mirror_second(sb: &Sandbox, dedup: &str) -> serde_json::Value {
    let (rc, out) = sb.json(&["mirror", "two", "kb", "--dedup", dedup]);
    assert_eq!(rc, 0, "{out}");
    out
}

#[test]
fn an_intact_earlier_copy_is_referenced() {
    let sb = first_mirrored();
    let out = mirror_second(&sb, "reference");
    assert_eq!(out["files_referenced"], 1, "{out}");
    assert_eq!(out["files_copied"], 1, "{out}");
    assert_eq!(out["deduplicated"][0]["kb_path"], format!("one/{SHARED}"));
    assert!(!sb.path(&format!("kb/two/{SHARED}")).exists());
}

#[test]
fn an_earlier_copy_with_other_bytes_of_the_same_size_is_not_a_candidate() {
    let sb = first_mirrored();
    let mut edited = SHARED_BYTES.to_vec();
    edited[0] ^= 1;
    fs::write(sb.path(&format!("kb/one/{SHARED}")), &edited).unwrap();
    let out = mirror_second(&sb, "reference");
    assert_eq!(out["files_referenced"], 0, "{out}");
    assert_eq!(out["files_copied"], 2, "{out}");
    assert_eq!(
        fs::read(sb.path(&format!("kb/two/{SHARED}"))).unwrap(),
        SHARED_BYTES
    );
}

#[test]
fn an_earlier_copy_reached_through_a_symlinked_folder_is_not_a_candidate() {
    let sb = first_mirrored();
    // The folder holding the earlier copy is swapped for a symlink to a folder outside the KB
    // holding the very same bytes: never read, never referenced.
    fs::create_dir_all(sb.path("outside")).unwrap();
    fs::rename(sb.path("kb/one/tools"), sb.path("outside/tools")).unwrap();
    symlink(sb.path("outside/tools"), sb.path("kb/one/tools")).unwrap();
    let out = mirror_second(&sb, "reference");
    assert_eq!(out["files_referenced"], 0, "{out}");
    assert_eq!(out["files_copied"], 2, "{out}");
}

#[test]
fn a_hard_link_needs_the_same_executable_bit() {
    let sb = first_mirrored();
    let earlier = sb.path(&format!("kb/one/{SHARED}"));
    fs::set_permissions(&earlier, fs::Permissions::from_mode(0o755)).unwrap();
    let out = mirror_second(&sb, "hardlink");
    assert_eq!(out["files_hardlinked"], 0, "{out}");
    assert_eq!(out["files_copied"], 2, "{out}");
    let written = fs::metadata(sb.path(&format!("kb/two/{SHARED}"))).unwrap();
    assert_ne!(written.ino(), fs::metadata(&earlier).unwrap().ino());
    assert_eq!(written.mode() & 0o111, 0);
}
