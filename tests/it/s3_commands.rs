//! Every command on an S3 store (SeaweedFS, started by `tests/s3/with-seaweedfs.sh`), from two
//! "machines" (two cache folders): what one ingests the other lists on its next command;
//! deleting a cache rebuilds it from the bucket; damaged bytes in the bucket are failures.
//!
//! Without the server's variables these tests FAIL with a message saying how to run them (see
//! `s3_store::bucket`): they never pass silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::s3_store::fresh_url;
use crate::sandbox::{assert_trees_equal, code, stderr, write_packet, Sandbox};

/// One machine's view of an S3 store: the store URL and a cache folder of its own.
pub struct Machine<'a> {
    pub sb: &'a Sandbox,
    pub url: String,
    pub cache: PathBuf,
}

impl<'a> Machine<'a> {
    pub fn new(sb: &'a Sandbox, url: &str, name: &str) -> Machine<'a> {
        Machine {
            sb,
            url: url.to_string(),
            cache: sb.path(&format!("cache-{name}")),
        }
    }

    pub fn command(&self) -> Command {
        let mut cmd = self.sb.command_storeless();
        cmd.arg("--store")
            .arg(&self.url)
            .env("EVSTORE_CACHE", &self.cache);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run evstore")
    }

    /// This machine's cache folder of its one store (`<cache>/stores/<bucket>-<hex>`).
    pub fn store_cache_folder(&self) -> PathBuf {
        let mut folders: Vec<PathBuf> = std::fs::read_dir(self.cache.join("stores"))
            .expect("the cache's stores folder")
            .map(|entry| entry.expect("a cache entry").path())
            .collect();
        assert_eq!(folders.len(), 1, "one store cache: {folders:?}");
        folders.remove(0)
    }

    /// `evstore --json ARGS`: the exit code and the parsed report.
    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        let out = self.command().arg("--json").args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(&text).unwrap_or_else(|err| {
            panic!(
                "{args:?}: not JSON ({err}): {text}\nstderr: {}",
                stderr(&out)
            )
        });
        (code(&out), value)
    }

    /// `ls --json` as (name, version, packet_tree_sha256), sorted.
    pub fn packets(&self) -> Vec<(String, u64, String)> {
        let (rc, list) = self.json(&["ls"]);
        assert_eq!(rc, 0, "{list}");
        let mut out: Vec<(String, u64, String)> = list["packets"]
            .as_array()
            .unwrap_or_else(|| panic!("ls --json has no packets: {list}"))
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["version"].as_u64().unwrap(),
                    p["packet_tree_sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// `log --json` as (seq, kind, hash).
    pub fn events(&self) -> Vec<(i64, String, String)> {
        let (rc, log) = self.json(&["log"]);
        assert_eq!(rc, 0, "{log}");
        log["events"]
            .as_array()
            .unwrap_or_else(|| panic!("log --json has no events: {log}"))
            .iter()
            .map(|e| {
                (
                    e["seq"].as_i64().unwrap(),
                    e["kind"].as_str().unwrap().to_string(),
                    e["hash"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// A store with the packet `pkt` (`write_packet`) ingested by machine "a", in a fresh prefix named
/// after `test`: the packet folder and the machine.
fn store_with_a_packet<'a>(sb: &'a Sandbox, test: &str) -> (PathBuf, Machine<'a>) {
    let url = fresh_url(test);
    let a = Machine::new(sb, &url, "a");
    assert_eq!(code(&a.run(&["init"])), 0);
    let pkt = write_packet(sb, "pkt");
    assert_eq!(a.json(&["ingest", pkt.to_str().unwrap()]).0, 0);
    (pkt, a)
}

/// Send one raw request for `key` of the store at `url` (a key below its prefix) straight to
/// the server, behind evstore's back (`tests/s3/s3req.py`): `body` for a PUT.
fn raw_request(method: &str, url: &str, key: &str, body: Option<&str>) {
    let bucket = crate::s3_store::bucket();
    let prefix = url.trim_start_matches(&format!("s3://{bucket}/"));
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/s3req.py"))
        .arg(method)
        .arg(format!("/{bucket}/{prefix}/{key}"));
    if let Some(body) = body {
        cmd.arg(body);
    }
    assert!(cmd.status().unwrap().success(), "{method} {key}");
}

/// Delete the loose object `id` (hex) of the store at `url` behind evstore's back.
fn delete_loose_object(url: &str, id: &str) {
    raw_request(
        "DELETE",
        url,
        &format!("objects/{}/{}", &id[..2], &id[2..]),
        None,
    );
}

fn example_packet() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/example-packet"))
}

/// `rerun example-packet` with its own `rerun.sh` on machine `m`, which must pass.
fn rerun_the_example_packet(m: &Machine) {
    let script = example_packet().join("rerun.sh");
    let out = m.run(&[
        "rerun",
        "example-packet",
        "--",
        "bash",
        script.to_str().unwrap(),
        "{out}",
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn every_command_works_on_an_s3_store_and_another_machine_sees_each_write_on_its_next_command() {
    let sb = Sandbox::new();
    let url = fresh_url("commands");
    let a = Machine::new(&sb, &url, "a");
    let b = Machine::new(&sb, &url, "b");
    let out = a.run(&["init"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // Machine A ingests; machine B lists it on its very next command.
    let pkt = write_packet(&sb, "pkt");
    let (rc, report) = a.json(&["ingest", pkt.to_str().unwrap()]);
    assert_eq!(rc, 0, "{report}");
    let (rc, report) = b.json(&["ingest", example_packet().to_str().unwrap()]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(a.packets(), b.packets());
    assert_eq!(a.packets().len(), 2);
    // The same tree again is no new version, from either machine.
    let (rc, again) = b.json(&["ingest", pkt.to_str().unwrap()]);
    assert_eq!(rc, 0, "{again}");
    assert_eq!(a.packets().len(), 2, "{again}");

    // Reads on B of what A wrote: show, manifest, cat, export, verify --against, diff.
    for args in [
        &["show", "pkt"][..],
        &["manifest", "pkt"][..],
        &["cat", "pkt", "logs/run.log"][..],
    ] {
        let out = b.run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
    }
    let out = b.run(&["cat", "pkt", "logs/run.log"]);
    assert_eq!(out.stdout, b"step 1 ok\nstep 2 ok\n");
    let exported = sb.path("exported");
    let out = b.run(&["export", "pkt", exported.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_trees_equal(&pkt, &exported);
    let out = b.run(&["verify", pkt.to_str().unwrap(), "--against", "pkt"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    sb.write("exported/logs/run.log", "step 1 ok\nstep 2 FAILED\n");
    let out = b.run(&["verify", exported.to_str().unwrap(), "--against", "pkt"]);
    assert_eq!(code(&out), 1, "an edited file must fail: {}", stderr(&out));
    let out = a.run(&["diff", "pkt", "example-packet"]);
    assert_eq!(
        code(&out),
        1,
        "two different packets differ: {}",
        stderr(&out)
    );

    // Mirror from the S3 store into a local KB, verified against the store from the other
    // machine.
    let kb = sb.path("kb");
    std::fs::create_dir(&kb).unwrap();
    let out = a.run(&["mirror", "pkt", kb.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = b.run(&["kb", "verify", kb.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // Rerun: the attestation goes into the bucket; the other machine lists the run.
    rerun_the_example_packet(&b);
    let (rc, runs) = a.json(&["runs", "example-packet"]);
    assert_eq!(rc, 0, "{runs}");
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");

    // Both caches hold one log; fsck passes from both; reindex rebuilds B's cache.
    assert_eq!(a.events(), b.events());
    for m in [&a, &b] {
        let (rc, report) = m.json(&["fsck"]);
        assert_eq!(rc, 0, "{report}");
    }
    let before = b.packets();
    let (rc, report) = b.json(&["reindex", "--replace"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(b.packets(), before);
    assert_eq!(a.events(), b.events());

    // Nothing was created in the working folder for the URL.
    assert!(!sb.path("s3:").exists());
}

#[test]
fn a_deleted_cache_is_rebuilt_from_the_bucket_with_every_packet_event_mirror_and_run() {
    let sb = Sandbox::new();
    let url = fresh_url("rebuild");
    let a = Machine::new(&sb, &url, "a");
    assert_eq!(code(&a.run(&["init"])), 0);
    let pkt = write_packet(&sb, "pkt");
    assert_eq!(a.json(&["ingest", pkt.to_str().unwrap()]).0, 0);
    assert_eq!(a.json(&["ingest", example_packet().to_str().unwrap()]).0, 0);
    let kb = sb.path("kb");
    std::fs::create_dir(&kb).unwrap();
    assert_eq!(code(&a.run(&["mirror", "pkt", kb.to_str().unwrap()])), 0);
    rerun_the_example_packet(&a);
    let packets = a.packets();
    let events = a.events();
    let runs = a.json(&["runs"]).1;

    std::fs::remove_dir_all(&a.cache).unwrap();
    assert_eq!(a.packets(), packets);
    assert_eq!(a.events(), events);
    let (rc, rebuilt_runs) = a.json(&["runs"]);
    assert_eq!(rc, 0);
    assert_eq!(
        rebuilt_runs["runs"].as_array().map(Vec::len),
        runs["runs"].as_array().map(Vec::len),
        "{rebuilt_runs}"
    );
    let out = a.run(&["kb", "verify", kb.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (rc, report) = a.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    // `reindex` rebuilds the cache from the bucket alone too, mirror and run included.
    std::fs::remove_dir_all(&a.cache).unwrap();
    let (rc, report) = a.json(&["reindex"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(
        (&report["packets"], &report["runs"], &report["mirrors"]),
        (&Value::from(2), &Value::from(1), &Value::from(1)),
        "{report}"
    );
    assert_eq!(a.packets(), packets);
}

#[test]
fn an_object_damaged_in_the_bucket_fails_reads_and_fsck() {
    let sb = Sandbox::new();
    let url = fresh_url("damaged");
    let a = Machine::new(&sb, &url, "a");
    assert_eq!(code(&a.run(&["init"])), 0);
    // A file large enough to be a loose object (over 1 MiB: streamed, not packed).
    sb.write("big/data.bin", crate::sandbox::random_bytes(2_000_000, 7));
    sb.write("big/notes.txt", "notes\n");
    assert_eq!(a.json(&["ingest", sb.path("big").to_str().unwrap()]).0, 0);
    let backend = crate::s3_store::backend(&url);
    let loose: Vec<String> = evstore::store::ObjectBackend::list(&backend)
        .unwrap()
        .into_iter()
        .filter_map(|listed| match listed {
            evstore::store::ListedObject::Object {
                location: evstore::store::ObjectLocation::Loose(path),
                stored_size,
                ..
            } if stored_size > 1_000_000 => Some(path.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(loose.len(), 1, "{loose:?}");
    // Overwrite the object's key with other bytes through a plain PUT (the server allows it;
    // evstore never does it).
    let bucket = crate::s3_store::bucket();
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/s3req.py"))
        .arg("PUT")
        .arg(format!("/{bucket}/{}", loose[0]))
        .arg("not the object")
        .status()
        .unwrap();
    assert!(status.success());
    let out = a.run(&["cat", "big", "data.bin"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let (rc, report) = a.json(&["fsck"]);
    assert_eq!(rc, 1, "{report}");
    let out = a.run(&["export", "big", sb.path("out").to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}

#[test]
fn a_lost_reply_to_a_conditional_create_is_retried_and_the_retry_finds_its_own_write() {
    // The proxy stores each first create of a log/ or refs/ key, then answers 503 as if the
    // reply were lost; the client retries, meets its own key (412), and must take it as its own
    // write: no second event, no skipped version, no error.
    let sb = Sandbox::new();
    let url = fresh_url("lost-reply");
    let proxy = crate::s3_store::Proxy::start(&sb, "lose-reply");
    let mut a = Machine::new(&sb, &url, "a");
    let through = |m: &Machine, args: &[&str]| {
        let mut cmd = m.command();
        cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint);
        cmd.args(args).output().unwrap()
    };
    let out = through(&a, &["init"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pkt = write_packet(&sb, "pkt");
    let out = through(&a, &["ingest", pkt.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    sb.write("pkt/more.txt", "a second version\n");
    let out = through(&a, &["ingest", pkt.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // The double really lost replies and the client really met its own keys.
    let answered = proxy.answered();
    let lost: Vec<_> = answered.iter().filter(|(_, _, s)| s == "503").collect();
    assert!(lost.len() >= 5, "{answered:?}");
    for (_, path, _) in &lost {
        assert!(
            answered
                .iter()
                .any(|(m, p, s)| m == "PUT" && p == path && s == "412"),
            "no retry of {path}: {answered:?}"
        );
    }
    // Straight to the server, from a fresh cache: versions 1 and 2, events 1, 2, 3.
    a.cache = sb.path("cache-fresh");
    let versions: Vec<u64> = a.packets().into_iter().map(|(_, v, _)| v).collect();
    assert_eq!(versions, vec![1, 2]);
    let kinds: Vec<(i64, String)> = a.events().into_iter().map(|(s, k, _)| (s, k)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, "init".to_string()),
            (2, "ingest".to_string()),
            (3, "ingest".to_string())
        ]
    );
    let (rc, report) = a.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}

#[test]
fn a_cache_whose_last_event_the_bucket_no_longer_holds_is_refused_not_read() {
    // The bucket is the truth: a log cut short (or a store made again at the same URL) must not
    // be read through a cache that describes something else, nor chained onto by a writer.
    let sb = Sandbox::new();
    let (pkt, a) = store_with_a_packet(&sb, "stale-cache");
    let url = a.url.clone();
    raw_request("DELETE", &url, "log/00000000000000000002", None);
    for args in [
        &["ls"][..],
        &["ingest", pkt.to_str().unwrap(), "--name", "other"][..],
    ] {
        let out = a.run(args);
        assert_eq!(code(&out), 1, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("log/00000000000000000002 is missing") && err.contains("catalog cache"),
            "{args:?}: {err}"
        );
    }
    // Nothing was written after the cut: the log still ends at event 1.
    assert_eq!(
        evstore::store::NamedKeys::list_names(&crate::s3_store::backend(&url), "log/").unwrap(),
        vec![evstore::store::ListedName::Name(
            "00000000000000000001".to_string()
        )]
    );
}

#[test]
fn a_fresh_cache_that_cannot_read_the_bucket_fails_instead_of_listing_nothing() {
    // Reads of objects and packs keep failing (503 past the client's retries): the catch-up of a
    // new cache must fail (exit 2 naming the key), not answer "no packets archived yet".
    let sb = Sandbox::new();
    let (_, a) = store_with_a_packet(&sb, "failing-reads");
    let url = a.url.clone();
    let proxy = crate::s3_store::Proxy::start(&sb, "fail-reads");
    let fresh = Machine::new(&sb, &url, "fresh");
    let mut cmd = fresh.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint);
    let out = cmd.args(["--json", "ls"]).output().unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
    // Once the bucket reads again, the same cache catches up whole.
    assert_eq!(fresh.packets(), a.packets());
}

#[test]
fn an_export_of_many_small_files_reads_their_pack_in_a_few_windows_not_one_get_each() {
    let sb = Sandbox::new();
    let url = fresh_url("windows");
    let a = Machine::new(&sb, &url, "a");
    assert_eq!(code(&a.run(&["init"])), 0);
    for i in 0..300 {
        sb.write(&format!("many/f{i:03}.txt"), format!("small file {i}\n"));
    }
    assert_eq!(a.json(&["ingest", sb.path("many").to_str().unwrap()]).0, 0);
    let proxy = crate::s3_store::Proxy::start(&sb, "pass");
    let mut cmd = a.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.endpoint);
    let out = cmd
        .args(["export", "many", sb.path("out").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_trees_equal(&sb.path("many"), &sb.path("out"));
    let pack_gets = proxy
        .requests()
        .into_iter()
        .filter(|(m, p)| m == "GET" && p.contains("/packs/"))
        .count();
    // The pack's index (a few range reads), then one exact read and one window per run of files
    // read in pack order (files are hashed in parallel, so the pack's order is only mostly the
    // tree's, and export reads with a thread per core): a few dozen at most (8 to 11 measured with
    // the last 32 read ends remembered; 99 to 203 with only the last one), not one per file.
    eprintln!("export of 300 small files: {pack_gets} GETs of the pack");
    assert!(pack_gets <= 60, "{pack_gets} GETs of the pack");
}

#[test]
fn fsck_on_s3_fails_when_a_version_claim_is_removed_from_the_bucket() {
    // On S3 a version's claim is made before its commit: a missing one was removed, which fsck
    // must fail on (a local store made before claims only notes it).
    let sb = Sandbox::new();
    let (_, a) = store_with_a_packet(&sb, "claim-removed");
    let url = a.url.clone();
    raw_request("DELETE", &url, "refs/packets/pkt/1", None);
    for machine in ["a", "fresh"] {
        let m = Machine::new(&sb, &url, machine);
        let (rc, report) = m.json(&["fsck"]);
        assert_eq!(rc, 1, "{machine}: {report}");
        assert!(
            report["problems"]
                .to_string()
                .contains("refs/packets/pkt/1 is missing"),
            "{machine}: {report}"
        );
    }
}

#[test]
fn a_forget_on_one_machine_reaches_the_cache_of_another_that_held_the_packet() {
    // Machine B indexed `pkt@1` while it was whole. Its record is then deleted from the bucket
    // (behind evstore's back), machine C (a new cache) finds the packet lost, and forgets it.
    // B's next command must not go on listing a packet the store has forgotten: its cache is
    // rebuilt from the bucket (the old one moved aside), and fsck passes from every machine.
    let sb = Sandbox::new();
    let (_, a) = store_with_a_packet(&sb, "forget-reaches");
    let b = Machine::new(&sb, &a.url, "b");
    assert_eq!(b.packets().len(), 1);
    let (rc, listed) = a.json(&["ls"]);
    assert_eq!(rc, 0, "{listed}");
    let record = listed["packets"][0]["record"].as_str().unwrap().to_string();
    // Its stored bytes, to put back later (a restore).
    let backend = crate::s3_store::backend(&a.url);
    let record_id = evstore::digest::Blake3Digest::parse_hex(&record).unwrap();
    let mut stored = Vec::new();
    std::io::Read::read_to_end(
        &mut evstore::store::ObjectBackend::open(&backend, &record_id)
            .unwrap()
            .expect("the record is stored"),
        &mut stored,
    )
    .unwrap();
    delete_loose_object(&a.url, &record);

    let c = Machine::new(&sb, &a.url, "c");
    assert!(c.packets().is_empty(), "the record is gone: pkt@1 is lost");
    let (rc, report) = c.json(&["fsck"]);
    assert_eq!(rc, 1, "a lost packet fails fsck until forgotten: {report}");
    let out = c.run(&["forget", "pkt@1", "--reason", "its record was deleted"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (rc, report) = c.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");

    // While another process has B's cache open, it cannot be set aside: exit 2, saying why.
    let cache_folder = b.store_cache_folder();
    let held_open = evstore::catalog::Catalog::open(&cache_folder.join("catalog.sqlite"))
        .expect("open B's cache");
    let out = b.run(&["ls"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pkt@1") && stderr(&out).contains("another evstore process"),
        "{}",
        stderr(&out)
    );
    drop(held_open);

    let out = b.run(&["ls"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("forgets") && stderr(&out).contains("rebuilt"),
        "the rebuild is announced: {}",
        stderr(&out)
    );
    assert!(b.packets().is_empty(), "machine B still lists pkt@1");
    for m in [&a, &b, &c] {
        let (rc, report) = m.json(&["fsck"]);
        assert_eq!(rc, 0, "fsck from {}: {report}", m.cache.display());
    }
    let moved_aside = std::fs::read_dir(b.store_cache_folder())
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("catalog.sqlite.stale-")
        })
        .count();
    assert!(moved_aside >= 1, "the stale cache is kept aside");

    // The record is put back and machine C's `reindex --replace` restores the packet (a
    // `restore` event): B's very next command lists it again, and fsck passes from B and from a
    // new cache.
    let put = evstore::store::Put {
        name: evstore::store::PutName::Object(record_id),
        source: evstore::store::PutSource::Bytes(stored),
    };
    evstore::store::ObjectBackend::put_if_absent(&backend, vec![put]).unwrap();
    let out = c.run(&["reindex", "--replace"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(b.packets().len(), 1, "machine B lists the restored packet");
    let d = Machine::new(&sb, &a.url, "d");
    for m in [&b, &d] {
        let (rc, report) = m.json(&["fsck"]);
        assert_eq!(rc, 0, "fsck from {}: {report}", m.cache.display());
    }
}

#[test]
fn an_ingest_stores_again_the_shared_objects_deleted_from_the_bucket_behind_its_back() {
    // Machine A's cache lists the objects of `one` as stored. They are deleted from the bucket
    // (its pack of small objects and tree nodes, and its one large loose object) behind evstore's
    // back. The same folder ingested again as `two` must not name objects the bucket lacks: the
    // ingest confirms the objects it shares (one listing of packs/, one HEAD for the loose
    // object), stores the missing ones again, says so, and the store is whole again.
    let sb = Sandbox::new();
    let url = fresh_url("stored-again");
    let a = Machine::new(&sb, &url, "a");
    assert_eq!(code(&a.run(&["init"])), 0);
    let pkt = write_packet(&sb, "pkt");
    sb.write("pkt/big.bin", crate::sandbox::random_bytes(2_000_000, 11));
    let out = a.run(&["ingest", "--name", "one", pkt.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    // Ingesting it again while the bucket is whole stores nothing and says nothing.
    let out = a.run(&[
        "--json",
        "ingest",
        "--name",
        "same-again",
        pkt.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("missing"), "{}", stderr(&out));

    let backend = crate::s3_store::backend(&url);
    let mut deleted = 0;
    for listed in evstore::store::ObjectBackend::list(&backend).unwrap() {
        let key = match listed {
            evstore::store::ListedObject::Object {
                location: evstore::store::ObjectLocation::Loose(path),
                stored_size,
                ..
            } if stored_size > 1_000_000 => path,
            evstore::store::ListedObject::Object {
                location: evstore::store::ObjectLocation::Packed { pack, .. },
                ..
            } => pack.to_path_buf(),
            _ => continue,
        };
        let bucket = crate::s3_store::bucket();
        let status = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/s3req.py"))
            .arg("DELETE")
            .arg(format!("/{bucket}/{}", key.to_string_lossy()))
            .status()
            .unwrap();
        assert!(status.success());
        deleted += 1;
    }
    assert!(deleted >= 2, "a pack and the loose object were deleted");
    let (rc, report) = a.json(&["fsck"]);
    assert_eq!(rc, 1, "the bucket lost objects: {report}");

    let out = a.run(&["--json", "ingest", "--name", "two", pkt.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("missing") && stderr(&out).contains("stored them again"),
        "{}",
        stderr(&out)
    );
    let exported = sb.path("out-two");
    let out = a.run(&["export", "two", exported.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::read(exported.join("big.bin")).unwrap(),
        std::fs::read(pkt.join("big.bin")).unwrap()
    );
    let c = Machine::new(&sb, &url, "c");
    for m in [&a, &c] {
        let (rc, report) = m.json(&["fsck"]);
        assert_eq!(rc, 0, "fsck from {}: {report}", m.cache.display());
    }
}

#[test]
fn a_damaged_cache_is_moved_aside_and_rebuilt_from_the_bucket() {
    // The cache is only this machine's copy of the bucket: junk in its SQLite file is not the
    // store's damage. The next command moves it aside, says so, and answers from a rebuilt one.
    let sb = Sandbox::new();
    let (_, a) = store_with_a_packet(&sb, "damaged-cache");
    let folder = a.store_cache_folder();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(folder.join(format!("catalog.sqlite{suffix}")));
    }
    std::fs::write(folder.join("catalog.sqlite"), vec![0x5a; 8192]).unwrap();
    let out = a.run(&["ls"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("damaged") && err.contains("rebuilt"), "{err}");
    assert_eq!(a.packets().len(), 1);
    let (rc, report) = a.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
}

#[test]
fn a_relative_evstore_cache_is_refused() {
    let sb = Sandbox::new();
    let (_, a) = store_with_a_packet(&sb, "relative-cache");
    let out = a
        .command()
        .env("EVSTORE_CACHE", "relative/cache")
        .current_dir(sb.dir.path())
        .arg("ls")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("must be absolute"),
        "{}",
        stderr(&out)
    );
    assert!(!sb.path("relative").exists(), "nothing was created there");
}

#[test]
fn init_inside_another_s3_store_is_refused_and_a_store_without_version_is_damage() {
    let sb = Sandbox::new();
    let (_, a) = store_with_a_packet(&sb, "nested");
    for inner in ["log", "team/sub"] {
        let nested = Machine::new(&sb, &format!("{}/{inner}", a.url), "n");
        let out = nested.run(&["init"]);
        assert_eq!(code(&out), 2, "{inner}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("lies inside the evstore store"),
            "{}",
            stderr(&out)
        );
    }
    let (rc, report) = a.json(&["fsck"]);
    assert_eq!(rc, 0, "nothing was written into the store: {report}");

    // VERSION deleted behind evstore's back: the log and objects are still there.
    raw_request("DELETE", &a.url, "VERSION", None);
    let out = a.run(&["ls"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("VERSION key was deleted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_cache_found_damaged_after_it_was_opened_is_moved_aside_and_the_next_command_rebuilds_it() {
    // SQLite finds a damaged page only when it reads it: here the `objects` table, which `fsck`
    // reads and opening the cache does not. The store in the bucket is sound, so `fsck` exits 2
    // (not 1) saying the cache was moved aside, and the next `fsck` passes from a rebuilt cache.
    let sb = Sandbox::new();
    let (_, a) = store_with_a_packet(&sb, "damaged-page");
    let folder = a.store_cache_folder();
    let file = folder.join("catalog.sqlite");
    let (root_page, page_size): (i64, i64) = {
        let db = rusqlite::Connection::open(&file).unwrap();
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let root = db
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'objects'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let size = db.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        (root, size)
    };
    let mut bytes = std::fs::read(&file).unwrap();
    let start = usize::try_from((root_page - 1) * page_size).unwrap();
    let end = start + usize::try_from(page_size).unwrap();
    bytes[start..end].fill(0xa5);
    std::fs::write(&file, bytes).unwrap();

    let out = a.run(&["fsck"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cache") && err.contains("damaged") && err.contains("moved aside"),
        "{err}"
    );
    let (rc, report) = a.json(&["fsck"]);
    assert_eq!(rc, 0, "{report}");
    assert_eq!(a.packets().len(), 1);
}

#[test]
fn init_inside_a_store_whose_version_key_was_deleted_is_refused() {
    let sb = Sandbox::new();
    let (_, a) = store_with_a_packet(&sb, "nested-damaged");
    raw_request("DELETE", &a.url, "VERSION", None);
    for inner in ["sub", "objects/zz"] {
        let nested = Machine::new(&sb, &format!("{}/{inner}", a.url), "n");
        let out = nested.run(&["init"]);
        assert_eq!(code(&out), 2, "{inner}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("without a VERSION key"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_forgotten_rerun_attestation_is_named_as_one_when_another_machine_rebuilds_its_cache() {
    let sb = Sandbox::new();
    let url = fresh_url("forget-run");
    let a = Machine::new(&sb, &url, "a");
    assert_eq!(code(&a.run(&["init"])), 0);
    assert_eq!(a.json(&["ingest", example_packet().to_str().unwrap()]).0, 0);
    rerun_the_example_packet(&a);
    let b = Machine::new(&sb, &url, "b");
    let (rc, runs) = b.json(&["runs"]);
    assert_eq!(rc, 0, "{runs}");
    let attestation = runs["runs"][0]["attestation"]
        .as_str()
        .unwrap_or_else(|| panic!("{runs}"))
        .to_string();
    delete_loose_object(&url, &attestation);
    let c = Machine::new(&sb, &url, "c");
    let out = c.run(&["forget", &attestation[..16], "--reason", "deleted"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = b.run(&["runs"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the rerun attestation {}", &attestation[..12])),
        "{err}"
    );
    let (rc, runs) = b.json(&["runs"]);
    assert_eq!(rc, 0, "{runs}");
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
}
