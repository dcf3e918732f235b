//! The store's contract, checked the same way against both backends (the store folder and the
//! memory backend): batches, packs, streams, named keys, commit markers and the writers' lock.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Barrier};

use super::*;
use crate::digest::blake3_of;
use crate::format::object::ObjectKind;
use crate::store::refs::Refs;

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug)]
enum Which {
    Local,
    Memory,
}

const BOTH: [Which; 2] = [Which::Local, Which::Memory];

/// A new empty store of the given backend, in a temp folder kept alive by the returned guard.
fn new_store(which: Which) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = match which {
        Which::Local => Store::init(&dir.path().join("store")).expect("init"),
        Which::Memory => {
            let root = dir.path().join("store");
            fs::create_dir_all(root.join("tmp")).expect("tmp");
            Store::with_backend(&root, Box::new(MemoryBackend::new()))
        }
    };
    (dir, store)
}

/// Deterministic bytes that differ per `seed`.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn read_back(store: &Store, id: &Blake3Digest) -> Vec<u8> {
    let mut out = Vec::new();
    store.read_object(id, &mut out).expect("read back");
    out
}

fn listed_ids(store: &Store) -> Vec<(Blake3Digest, bool)> {
    let mut ids: Vec<(Blake3Digest, bool)> = store
        .backend()
        .list()
        .expect("list")
        .into_iter()
        .filter_map(|item| match item {
            ListedObject::Object { id, location, .. } => {
                Some((id, matches!(location, ObjectLocation::Packed { .. })))
            }
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_few_small_objects_are_stored_loose_read_back_verified_and_never_stored_twice() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        let payloads: Vec<Vec<u8>> = (0..3).map(|i| payload(i, 100 + i as usize)).collect();
        let ids: Vec<Blake3Digest> = payloads.iter().map(|p| blake3_of(p)).collect();
        let batch = store.batch().expect("batch");
        for (id, bytes) in ids.iter().zip(&payloads) {
            assert_eq!(
                batch.add_bytes(*id, ObjectKind::Blob, bytes).unwrap(),
                Added::Staged
            );
            // The same object twice in one batch is staged once.
            assert_eq!(
                batch.add_bytes(*id, ObjectKind::Blob, bytes).unwrap(),
                Added::AlreadyPresent
            );
        }
        assert!(
            !store.backend().exists(&ids[0]).unwrap(),
            "{which:?}: nothing is visible before commit"
        );
        let published = batch.commit().expect("commit");
        assert_eq!(published.len(), 3, "{which:?}");
        assert!(published.iter().all(|p| p.newly_stored), "{which:?}");
        for (id, bytes) in ids.iter().zip(&payloads) {
            assert_eq!(&read_back(&store, id), bytes, "{which:?}");
            assert!(store.backend().stat(id).unwrap().is_some(), "{which:?}");
        }
        let listed = listed_ids(&store);
        assert_eq!(listed.len(), 3, "{which:?}");
        assert!(listed.iter().all(|(_, packed)| !packed), "{which:?}: loose");
        // A later batch finds them stored.
        let batch = store.batch().expect("batch");
        assert_eq!(
            batch
                .add_bytes(ids[1], ObjectKind::Blob, &payloads[1])
                .unwrap(),
            Added::AlreadyPresent,
            "{which:?}"
        );
        assert!(batch.commit().unwrap().is_empty(), "{which:?}");
    }
}

#[test]
fn many_small_objects_go_into_one_pack_that_reads_back_entry_by_entry() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        let count = PACK_MIN_OBJECTS + 10;
        let payloads: Vec<Vec<u8>> = (0..count as u64).map(|i| payload(i, 50)).collect();
        let batch = store.batch().expect("batch");
        for bytes in &payloads {
            batch
                .add_bytes(blake3_of(bytes), ObjectKind::Blob, bytes)
                .unwrap();
        }
        let published = batch.commit().expect("commit");
        assert_eq!(published.len(), count, "{which:?}");
        let listed = listed_ids(&store);
        assert_eq!(listed.len(), count, "{which:?}");
        assert!(
            listed.iter().all(|(_, packed)| *packed),
            "{which:?}: packed"
        );
        for bytes in &payloads {
            assert_eq!(&read_back(&store, &blake3_of(bytes)), bytes, "{which:?}");
        }
        // Every listed copy decodes from its own location.
        for item in store.backend().list().unwrap() {
            if let ListedObject::Object { id, location, .. } = item {
                let mut out = Vec::new();
                store
                    .read_object_at(&id, &location, &mut out)
                    .expect("read at");
                assert_eq!(blake3_of(&out), id, "{which:?}");
            }
        }
    }
}

#[test]
fn a_streamed_object_is_spooled_and_read_back_and_a_dropped_batch_stores_nothing() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        let bytes = payload(7, 3 * 1024 * 1024 + 5);
        let id = blake3_of(&bytes);
        let batch = store.batch().expect("batch");
        let mut writer = batch.stream(ObjectKind::Blob, bytes.len() as u64).unwrap();
        for chunk in bytes.chunks(256 * 1024) {
            writer.write_all(chunk).unwrap();
        }
        assert_eq!(batch.add_stream(id, writer).unwrap(), Added::Staged);
        batch.commit().expect("commit");
        assert_eq!(read_back(&store, &id), bytes, "{which:?}");

        let other = payload(8, 2 * 1024 * 1024);
        let batch = store.batch().expect("batch");
        let mut writer = batch.stream(ObjectKind::Blob, other.len() as u64).unwrap();
        writer.write_all(&other).unwrap();
        batch.add_stream(blake3_of(&other), writer).unwrap();
        drop(batch);
        assert!(
            !store.backend().exists(&blake3_of(&other)).unwrap(),
            "{which:?}"
        );
        let spooled = fs::read_dir(store.tmp_path()).unwrap().count();
        assert_eq!(
            spooled, 0,
            "{which:?}: the dropped batch removed its spool files"
        );
    }
}

#[test]
fn a_named_key_is_created_once_and_the_loser_gets_the_winners_bytes() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        let keys = store.backend();
        assert_eq!(
            keys.create_key_if_absent("refs/runs/a", b"first\n")
                .unwrap(),
            KeyCreated::Created
        );
        assert_eq!(
            keys.create_key_if_absent("refs/runs/a", b"second\n")
                .unwrap(),
            KeyCreated::AlreadyExists(b"first\n".to_vec()),
            "{which:?}"
        );
        assert_eq!(
            keys.read_key("refs/runs/a", 100).unwrap(),
            KeyRead::Found(b"first\n".to_vec())
        );
        assert_eq!(keys.read_key("refs/runs/a", 3).unwrap(), KeyRead::TooLarge);
        assert_eq!(keys.read_key("refs/runs/b", 100).unwrap(), KeyRead::Missing);
        keys.create_key_if_absent("refs/runs/c", b"c").unwrap();
        keys.create_key_if_absent("refs/packets/x/2", b"2").unwrap();
        assert_eq!(
            keys.list_names("refs/runs/").unwrap(),
            vec![ListedName::Name("a".into()), ListedName::Name("c".into())],
            "{which:?}"
        );
        assert_eq!(
            keys.list_names("refs/").unwrap(),
            vec![
                ListedName::Name("packets".into()),
                ListedName::Name("runs".into())
            ],
            "{which:?}"
        );
        assert!(keys.list_names("refs/none/").unwrap().is_empty());
        for bad in ["", "../x", "refs/../x", "refs//x", "/refs/x", "refs/./x"] {
            assert!(
                matches!(
                    keys.create_key_if_absent(bad, b"x"),
                    Err(Error::Internal(_))
                ),
                "{which:?}: {bad:?} is not a key"
            );
        }
    }
}

#[test]
fn of_racing_creators_of_one_key_exactly_one_wins() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        let store = Arc::new(store);
        let racers = 8;
        let barrier = Arc::new(Barrier::new(racers));
        let handles: Vec<_> = (0..racers)
            .map(|i| {
                let store = Arc::clone(&store);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    let bytes = format!("racer {i}\n").into_bytes();
                    let outcome = store
                        .backend()
                        .create_key_if_absent("refs/packets/p/1", &bytes)
                        .unwrap();
                    (bytes, outcome)
                })
            })
            .collect();
        let outcomes: Vec<(Vec<u8>, KeyCreated)> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<&Vec<u8>> = outcomes
            .iter()
            .filter(|(_, o)| *o == KeyCreated::Created)
            .map(|(bytes, _)| bytes)
            .collect();
        assert_eq!(winners.len(), 1, "{which:?}: exactly one creator wins");
        for (_, outcome) in &outcomes {
            if let KeyCreated::AlreadyExists(existing) = outcome {
                assert_eq!(existing, winners[0], "{which:?}: losers see the winner");
            }
        }
        assert_eq!(
            store.backend().read_key("refs/packets/p/1", 100).unwrap(),
            KeyRead::Found(winners[0].clone())
        );
    }
}

#[test]
fn a_key_space_is_created_whole_once() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        let keys = store.backend();
        assert!(!keys.key_space_exists("old/").unwrap(), "{which:?}");
        let first = vec![
            ("old/a/1".to_string(), b"one".to_vec()),
            ("old/b".to_string(), b"two".to_vec()),
        ];
        assert!(keys.create_key_space("old/", &first).unwrap(), "{which:?}");
        assert!(keys.key_space_exists("old/").unwrap());
        let second = vec![("old/c".to_string(), b"three".to_vec())];
        assert!(
            !keys.create_key_space("old/", &second).unwrap(),
            "{which:?}"
        );
        assert_eq!(
            keys.read_key("old/a/1", 10).unwrap(),
            KeyRead::Found(b"one".to_vec())
        );
        assert_eq!(keys.read_key("old/c", 10).unwrap(), KeyRead::Missing);
    }
}

#[test]
fn commit_markers_go_through_named_keys_with_the_documented_bytes() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        let record = blake3_of(b"record");
        let other = blake3_of(b"other");
        {
            let refs = Refs::for_writer(&store).expect("refs");
            refs.ensure(|| Ok(Vec::new())).unwrap();
            refs.mark_packet("name", 3, &record).unwrap();
            refs.mark_packet("name", 3, &record).unwrap();
            let err = refs.mark_packet("name", 3, &other).unwrap_err();
            assert_eq!(err.class(), crate::error::ErrorClass::Verification);
            refs.mark_run(&other, &"ab".repeat(32)).unwrap();
            assert_eq!(refs.highest_version("name").unwrap(), 3);
            assert_eq!(refs.highest_version("none").unwrap(), 0);
            let markers = refs.read_all().unwrap();
            assert_eq!(
                markers.records.get(&record).map(String::as_str),
                Some("name@3")
            );
            assert_eq!(markers.attestations.len(), 1);
            assert!(
                markers.problems.is_empty(),
                "{which:?}: {:?}",
                markers.problems
            );
        }
        assert_eq!(
            store
                .backend()
                .read_key("refs/packets/name/3", 100)
                .unwrap(),
            KeyRead::Found(format!("{}\n", record.to_hex()).into_bytes()),
            "{which:?}"
        );
        if let Which::Local = which {
            let on_disk = fs::read(store.root().join("refs/packets/name/3")).unwrap();
            assert_eq!(on_disk, format!("{}\n", record.to_hex()).into_bytes());
        }
    }
}

#[test]
fn ensure_creates_the_markers_of_an_old_store_only_when_it_has_none() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        if let Which::Local = which {
            // A store made before markers: no refs/ folder.
            fs::remove_dir(store.root().join(REFS_DIR)).unwrap();
        }
        let record = blake3_of(b"record");
        let refs = Refs::for_writer(&store).expect("refs");
        assert!(!refs.present(), "{which:?}");
        let mut calls = 0;
        refs.ensure(|| {
            calls += 1;
            Ok(vec![refs::Marker::Packet {
                name: "p".into(),
                version: 2,
                record,
            }])
        })
        .unwrap();
        assert!(refs.present(), "{which:?}");
        refs.ensure(|| {
            calls += 1;
            Ok(Vec::new())
        })
        .unwrap();
        assert_eq!(
            calls, 1,
            "{which:?}: the list is made only for a store without markers"
        );
        assert_eq!(refs.highest_version("p").unwrap(), 2);
    }
}

const REFS_DIR: &str = refs::REFS_DIR_NAME;

#[test]
fn a_batch_fails_closed_when_it_cannot_take_the_writers_lock() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        fs::remove_dir_all(store.tmp_path()).unwrap();
        let err = match store.batch() {
            Ok(_) => panic!("{which:?}: a batch without the writers' lock"),
            Err(err) => err,
        };
        let message = err.to_string();
        assert!(
            message.contains(&store.tmp_path().escaped().to_string())
                && message.contains("writers' lock"),
            "{which:?}: {message}"
        );
        assert_eq!(err.class(), crate::error::ErrorClass::Operational);
    }
}

#[test]
fn gc_temp_is_busy_while_a_batch_holds_the_writers_lock() {
    for which in BOTH {
        let (_dir, store) = new_store(which);
        let batch = store.batch().expect("batch");
        match store.gc_temp() {
            Err(Error::Busy(message)) => assert!(message.contains("a write is in progress")),
            other => panic!("{which:?}: {other:?}"),
        }
        drop(batch);
        assert!(store.gc_temp().is_ok(), "{which:?}");
    }
}

#[test]
fn a_local_put_never_replaces_an_existing_object_file() {
    let (_dir, store) = new_store(Which::Local);
    let bytes = payload(1, 10);
    let id = blake3_of(&bytes);
    let batch = store.batch().unwrap();
    batch.add_bytes(id, ObjectKind::Blob, &bytes).unwrap();
    batch.commit().unwrap();
    let local = LocalBackend::new(store.root());
    let path = local.object_path(&id);
    let before = fs::read(&path).unwrap();
    let published = store
        .backend()
        .put_if_absent(vec![Put {
            name: PutName::Object(id),
            source: PutSource::Bytes(b"other bytes".to_vec()),
        }])
        .unwrap();
    assert!(!published[0].newly_stored);
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(Path::new(&path).exists());
}

/// A backend whose puts fail, as the reliability issue's fault-injecting wrapper will: any
/// backend can be wrapped, since the traits speak bytes and streams only.
struct FailingPuts(MemoryBackend);

impl NamedKeys for FailingPuts {
    fn create_key_if_absent(&self, key: &str, bytes: &[u8]) -> Result<KeyCreated> {
        self.0.create_key_if_absent(key, bytes)
    }
    fn read_key(&self, key: &str, max_len: u64) -> Result<KeyRead> {
        self.0.read_key(key, max_len)
    }
    fn list_names(&self, prefix: &str) -> Result<Vec<ListedName>> {
        self.0.list_names(prefix)
    }
    fn key_space_exists(&self, prefix: &str) -> Result<bool> {
        self.0.key_space_exists(prefix)
    }
    fn create_key_space(&self, prefix: &str, keys: &[(String, Vec<u8>)]) -> Result<bool> {
        self.0.create_key_space(prefix, keys)
    }
}

impl ObjectBackend for FailingPuts {
    fn describe(&self) -> String {
        "failing puts".into()
    }
    fn open(&self, id: &Blake3Digest) -> Result<Option<Box<dyn std::io::Read + Send>>> {
        self.0.open(id)
    }
    fn open_at(&self, location: &ObjectLocation) -> Result<Box<dyn std::io::Read + Send>> {
        self.0.open_at(location)
    }
    fn stat(&self, id: &Blake3Digest) -> Result<Option<u64>> {
        self.0.stat(id)
    }
    fn list(&self) -> Result<Vec<ListedObject>> {
        self.0.list()
    }
    fn put_if_absent(&self, _puts: Vec<Put>) -> Result<Vec<Published>> {
        Err(Error::io(
            "failing puts",
            "cannot store",
            std::io::Error::other("injected fault"),
        ))
    }
}

#[test]
fn a_commit_whose_put_fails_is_an_error_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let store = Store::with_backend(dir.path(), Box::new(FailingPuts(MemoryBackend::new())));
    let bytes = payload(3, 2 * 1024 * 1024);
    let id = blake3_of(&bytes);
    let batch = store.batch().unwrap();
    let mut writer = batch.stream(ObjectKind::Blob, bytes.len() as u64).unwrap();
    writer.write_all(&bytes).unwrap();
    batch.add_stream(id, writer).unwrap();
    let err = batch.commit().unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert!(!store.backend().exists(&id).unwrap());
    assert_eq!(
        fs::read_dir(store.tmp_path()).unwrap().count(),
        0,
        "the failed commit left no spool file"
    );
}
