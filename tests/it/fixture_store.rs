//! A store written by evstore 0.1 before the layout change (`tests/fixtures/store-0.1-before-layout`:
//! two versions of example-packet, a PASS and a FAIL rerun attestation, a mirror into a KB and a
//! kb-verify event) reads, verifies and fscks cleanly with this binary, and its `--json` listings
//! are what that binary printed (`expected-*.json`, compared as parsed JSON). Its attestation
//! objects decode through `format::attestation` and re-encode to their own bytes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::sandbox::{code, stderr, Sandbox};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-0.1-before-layout")
}

/// Copy `from` into `to` (which must not exist), files and folders only, keeping the files'
/// permission bits.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            assert!(kind.is_file(), "{:?} in the fixture", entry.path());
            fs::copy(entry.path(), &target).unwrap();
            let mode = entry.metadata().unwrap().permissions().mode();
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// A sandbox holding a copy of the fixture's store (at `sb.store()`) and KB (at `kb`). Git
/// cannot hold the store's empty `tmp/` folder, so it is created here.
fn fixture() -> Sandbox {
    let sb = Sandbox::new();
    copy_tree(&fixture_dir().join("store"), &sb.store());
    fs::create_dir_all(sb.store().join("tmp")).unwrap();
    copy_tree(&fixture_dir().join("kb"), &sb.path("kb"));
    sb
}

fn expected(name: &str) -> Value {
    let path = fixture_dir().join(format!("expected-{name}.json"));
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

/// Run a `--json` command that must exit 0 and return its document.
fn json_ok(sb: &Sandbox, args: &[&str]) -> Value {
    let (rc, value) = sb.json(args);
    assert_eq!(rc, 0, "{args:?}: {value}");
    value
}

#[test]
fn a_store_written_before_the_layout_change_fscks_clean_and_lists_what_it_listed() {
    let sb = fixture();
    // fsck says what it said then, and since issue 15 also the Merkle root of the fixture's
    // log, which is that of its log/ files' bytes.
    let mut fsck = json_ok(&sb, &["fsck"]);
    let log_files: Vec<Vec<u8>> = (1..=7)
        .map(|seq| fs::read(sb.store().join(format!("log/{seq:020}"))).unwrap())
        .collect();
    let leaves: Vec<[u8; 32]> = log_files
        .iter()
        .map(|bytes| evstore::format::merkle::leaf_hash(bytes))
        .collect();
    let root: String = evstore::format::merkle::root(&leaves)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let object = fsck.as_object_mut().unwrap();
    assert_eq!(object.remove("log_root"), Some(Value::String(root)));
    assert_eq!(object.remove("log_tree_size"), Some(Value::from(7)));
    assert_eq!(object.remove("checkpoints_checked"), Some(Value::from(0)));
    assert_eq!(fsck, expected("fsck"));
    assert_eq!(json_ok(&sb, &["log"]), expected("log"));
    assert_eq!(json_ok(&sb, &["runs"]), expected("runs"));
    assert_eq!(json_ok(&sb, &["ls"]), expected("ls"));
    // `show` says what it said then, and since issue 16 also which keys signed the seal: no key,
    // in a store made before signatures.
    for version in ["1", "2"] {
        let mut shown = json_ok(&sb, &["show", &format!("example-packet@{version}")]);
        let object = shown.as_object_mut().unwrap();
        assert_eq!(
            object.remove("seal_signed_by"),
            Some(Value::Array(Vec::new()))
        );
        assert_eq!(object.remove("seal_signer"), Some(Value::Null));
        assert_eq!(shown, expected(&format!("show_example-packet_{version}")));
    }
}

#[test]
fn the_old_stores_packets_export_and_verify_and_its_kb_verifies() {
    let sb = fixture();
    for (version, tree) in [
        (
            "1",
            "6dc57ee02c16180c31b259dcc7d7697a62dc2a4d0bafd89fa37946d7ab29a3f1",
        ),
        (
            "2",
            "b63b669b06c0654fc2770750a0c1197de33fd6798be8659ee449be9d06a1a78d",
        ),
    ] {
        let out_dir = sb.path(&format!("out-{version}"));
        let out_arg = out_dir.to_str().unwrap();
        let packet = format!("example-packet@{version}");
        let exported = sb.run(&["export", &packet, out_arg]);
        assert_eq!(code(&exported), 0, "{}", stderr(&exported));
        let (rc, verified) = sb.json(&["verify", out_arg]);
        assert_eq!(rc, 0, "{verified}");
        assert_eq!(verified["verdict"], "PASS", "{verified}");
        assert_eq!(
            verified["observed"]["packet_tree_sha256"], tree,
            "{verified}"
        );
        let (rc, against) = sb.json(&["diff", &format!("packet:{packet}"), out_arg]);
        assert_eq!(rc, 0, "{against}");
        assert_eq!(against["verdict"], "PASS", "{against}");
    }
    let kb = sb.path("kb");
    let (rc, report) = sb.json(&["kb", "verify", kb.to_str().unwrap()]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["verdict"], "PASS", "{report}");
    assert_eq!(report["packets_checked"], 1, "{report}");
    // The check is recorded as an event appended to the old chain, which fsck still accepts.
    assert_eq!(json_ok(&sb, &["fsck"])["events_checked"], 8);
}

#[test]
fn reindex_of_the_old_store_rebuilds_the_same_catalog_and_fsck_stays_clean() {
    let sb = fixture();
    let (rc, report) = sb.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(report["packets"], 2, "{report}");
    assert_eq!(report["runs"], 2, "{report}");
    // Its one mirror was recorded before mirror lists existed: counted, not rebuilt, no failure.
    assert_eq!(report["mirrors"], 0, "{report}");
    assert_eq!(report["mirrors_without_list"], 1, "{report}");
    let fsck = json_ok(&sb, &["fsck"]);
    assert_eq!(fsck["verdict"], "PASS", "{fsck}");
    assert_eq!(fsck["problems"], serde_json::json!([]), "{fsck}");
    // The runs are rebuilt from the attestation objects: the same rows (their times are the
    // attestations' own).
    assert_eq!(json_ok(&sb, &["runs"]), expected("runs"));
    assert_eq!(json_ok(&sb, &["ls"]), expected("ls"));
    // The carried log keeps the old events byte for byte; reindex appends its own.
    let log = json_ok(&sb, &["log"]);
    let events = log["events"].as_array().unwrap();
    let old = expected("log");
    let old_events = old["events"].as_array().unwrap();
    assert_eq!(&events[..old_events.len()], &old_events[..]);
    assert_eq!(events.len(), old_events.len() + 1);
    assert_eq!(events.last().unwrap()["kind"], "reindex");
}

/// The fixture's two attestation objects, read with the store API, decode through the strict
/// decoder of `format::attestation`, re-encode to exactly their bytes (so their ids), and give
/// back the summary their `runs` rows hold.
#[test]
fn the_old_attestations_decode_strictly_and_re_encode_to_their_own_bytes() {
    use evstore::digest::{blake3_of, Blake3Digest};
    use evstore::format::attestation::{decode_summary, Attestation, RecordedVerdict};
    use evstore::format::object::ObjectKind;

    let sb = fixture();
    let store = evstore::store::Store::open(&sb.store()).unwrap();
    let runs = expected("runs");
    let rows = runs["runs"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let mut verdicts = Vec::new();
    for row in rows {
        let id = Blake3Digest::parse_hex(row["attestation"].as_str().unwrap()).unwrap();
        let (kind, bytes) = store.read_small_object(&id).unwrap();
        assert_eq!(kind, ObjectKind::Attestation);
        let attestation = Attestation::decode(&bytes).unwrap_or_else(|err| panic!("{id}: {err}"));
        assert_eq!(attestation.encode().unwrap(), bytes, "{id} re-encodes");
        assert_eq!(blake3_of(&attestation.encode().unwrap()), id);
        assert_eq!(
            attestation.packet.as_deref(),
            row["summary"]["packet"].as_str()
        );
        assert_eq!(
            attestation.expected_sha256.to_hex(),
            row["expected_sha256"].as_str().unwrap()
        );
        assert_eq!(
            attestation.time_unix_nanos,
            row["time_unix_nanos"].as_u64().unwrap()
        );
        assert_eq!(attestation.verdict.name(), row["verdict"].as_str().unwrap());
        let summary = decode_summary(&bytes).unwrap();
        assert_eq!(summary, attestation.summary());
        assert_eq!(summary.summary, row["summary"]);
        verdicts.push(attestation.verdict);
        // The FAIL rerun explains itself with the per-file drift of its output.
        if attestation.verdict == RecordedVerdict::Fail {
            let diff = attestation
                .diff
                .as_ref()
                .expect("a FAIL against a packet has a diff");
            assert!(!diff.files.is_empty());
            assert_eq!(diff.verdict, RecordedVerdict::Fail);
        }
    }
    assert_eq!(verdicts, [RecordedVerdict::Pass, RecordedVerdict::Fail]);
}

/// The keys of a JSON value at every level (arrays by their first item), for comparing shapes.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), shape(item)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().take(1).map(shape).collect()),
        _ => Value::Null,
    }
}

/// An attestation this binary writes for the old store has the shape, key for key, of the one
/// the old binary wrote for the same rerun, and the strict decoder reads it.
#[test]
fn a_new_attestation_has_the_shape_of_the_old_ones() {
    use evstore::digest::Blake3Digest;
    use evstore::format::attestation::Attestation;

    let sb = fixture();
    let script = sb.path("kb/example-packet/rerun.sh");
    let (rc, report) = sb.json(&[
        "rerun",
        "example-packet@1",
        "--",
        "bash",
        script.to_str().unwrap(),
        "{out}",
    ]);
    assert_eq!(rc, 0, "{report}");
    let runs = json_ok(&sb, &["runs"]);
    let rows = runs["runs"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let store = evstore::store::Store::open(&sb.store()).unwrap();
    let read = |row: &Value| {
        let id = Blake3Digest::parse_hex(row["attestation"].as_str().unwrap()).unwrap();
        store.read_small_object(&id).unwrap().1
    };
    let old = read(&rows[0]);
    let new = read(&rows[2]);
    assert_eq!(rows[2]["verdict"], "PASS");
    Attestation::decode(&new).unwrap();
    let old: Value = serde_json::from_slice(&old).unwrap();
    let new: Value = serde_json::from_slice(&new).unwrap();
    assert_eq!(shape(&new), shape(&old));
    assert_eq!(new["command"].as_array().unwrap().len(), 3);
}
