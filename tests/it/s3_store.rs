//! The S3 backend against a real S3 server (SeaweedFS, started by `tests/s3/with-seaweedfs.sh`):
//! the backend contract (put-if-absent of objects and packs, verified reads, list order, racing
//! creators of one named key), `init` on an `s3://` store URL, the conditional-create probe
//! (passing on SeaweedFS, refusing a double that overwrites), and an unreachable endpoint.
//!
//! Without the server's variables these tests FAIL with a message saying how to run them: they
//! never pass silently.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use evstore::digest::blake3_of;
use evstore::format::object::ObjectKind;
use evstore::store::s3::{S3Backend, OVERWRITES_MESSAGE};
use evstore::store::{KeyCreated, KeyRead, ListedName, NamedKeys, S3Url, Store};

use crate::sandbox::{code, random_bytes, stderr, Sandbox};

const HOW_TO_RUN: &str = "the S3 tests need a real S3 server: run them as \
     `bash tests/s3/with-seaweedfs.sh cargo test` (it installs and starts SeaweedFS and sets \
     AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP and \
     EVSTORE_TEST_S3_BUCKET)";

/// The test bucket from the environment `with-seaweedfs.sh` sets; panics (fails the test) with
/// how to run the S3 tests when it is missing.
pub fn bucket() -> String {
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(
            std::env::var_os(var).is_some(),
            "${var} is not set: {HOW_TO_RUN}"
        );
    }
    std::env::var("EVSTORE_TEST_S3_BUCKET")
        .unwrap_or_else(|_| panic!("$EVSTORE_TEST_S3_BUCKET is not set: {HOW_TO_RUN}"))
}

/// A store URL of a prefix no other test uses.
pub fn fresh_url(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("s3://{}/{test}-{}-{nanos}", bucket(), std::process::id())
}

pub fn backend(url: &str) -> S3Backend {
    let url = S3Url::parse(Path::new(url)).unwrap().unwrap();
    S3Backend::open(&url).expect("S3 client")
}

/// `evstore` in the sandbox with the store URL and a cache folder of the sandbox.
fn s3_command(sb: &Sandbox, url: &str) -> Command {
    let mut cmd = sb.command_storeless();
    cmd.arg("--store")
        .arg(url)
        .env("EVSTORE_CACHE", sb.path("cache"));
    cmd
}

fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args).output().expect("run evstore")
}

#[test]
fn objects_and_packs_are_put_if_absent_and_read_back_verified() {
    let url = fresh_url("contract");
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("spool/tmp")).unwrap();
    let store = Store::with_backend(&sb.path("spool"), Box::new(backend(&url)));

    // 70 small objects (a batch packs them: one pack) and one 20 MiB stream (multipart).
    let small: Vec<Vec<u8>> = (0..70u64)
        .map(|i| random_bytes(100 + i as usize, i))
        .collect();
    let large = random_bytes(20 * 1024 * 1024, 99);
    let large_id = blake3_of(&large);
    let batch = store.batch().unwrap();
    for bytes in &small {
        batch
            .add_bytes(blake3_of(bytes), ObjectKind::Blob, bytes)
            .unwrap();
    }
    let mut writer = batch.stream(ObjectKind::Blob, large.len() as u64).unwrap();
    std::io::Write::write_all(&mut writer, &large).unwrap();
    batch.add_stream(large_id, writer).unwrap();
    let published = batch.commit().unwrap();
    assert_eq!(published.len(), 71);
    assert!(published.iter().all(|p| p.newly_stored), "{published:?}");

    // Read back through a fresh client (no cached pack index): every object verified.
    let reader = Store::with_backend(&sb.path("spool"), Box::new(backend(&url)));
    for bytes in small.iter().chain([&large]) {
        let mut out = Vec::new();
        let decoded = reader.read_object(&blake3_of(bytes), &mut out).unwrap();
        assert_eq!(decoded.digest.blake3, blake3_of(bytes));
        assert!(out == *bytes, "object read back differs");
    }
    let listed = reader.backend().list().unwrap();
    let ids: std::collections::BTreeSet<_> = listed
        .iter()
        .filter_map(|item| match item {
            evstore::store::ListedObject::Object { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 71, "{listed:?}");
    assert!(ids.contains(&large_id));
    // Stored: a 16-byte header and the zstd frame of incompressible bytes, over 20 MiB.
    let stored = reader.backend().stat(&large_id).unwrap();
    assert!(stored.is_some_and(|n| n > 20 * 1024 * 1024), "{stored:?}");

    // The same objects again: nothing is newly stored (content names: the same bytes).
    let again = reader.batch().unwrap();
    for bytes in &small {
        again
            .add_bytes(blake3_of(bytes), ObjectKind::Blob, bytes)
            .unwrap();
    }
    let published = again.commit().unwrap();
    assert!(published.iter().all(|p| !p.newly_stored), "{published:?}");

    // An object never stored is absent, not an error.
    let absent = blake3_of(b"never stored");
    assert!(reader.backend().open(&absent).unwrap().is_none());
}

#[test]
fn named_keys_list_in_key_order_and_read_back() {
    let url = fresh_url("keys");
    let keys = backend(&url);
    for name in ["10", "2", "1", "b", "A", "a/x"] {
        let key = format!("refs/p/{name}");
        assert_eq!(
            keys.create_key_if_absent(&key, name.as_bytes()).unwrap(),
            KeyCreated::Created
        );
    }
    let names = keys.list_names("refs/p/").unwrap();
    let expected: Vec<ListedName> = ["1", "10", "2", "A", "a", "b"]
        .iter()
        .map(|n| ListedName::Name(n.to_string()))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(
        keys.read_key("refs/p/10", 100).unwrap(),
        KeyRead::Found(b"10".to_vec())
    );
    assert_eq!(keys.read_key("refs/p/10", 1).unwrap(), KeyRead::TooLarge);
    assert_eq!(keys.read_key("refs/p/3", 100).unwrap(), KeyRead::Missing);
    assert!(keys.key_space_exists("refs/").unwrap());
    assert!(!keys.key_space_exists("log/").unwrap());
    assert_eq!(
        keys.create_key_if_absent("refs/p/1", b"other").unwrap(),
        KeyCreated::AlreadyExists(b"1".to_vec())
    );
}

#[test]
fn of_8_racing_creators_of_one_key_exactly_one_wins_and_the_others_see_its_bytes() {
    let url = fresh_url("race");
    for round in 0..3 {
        let key = format!("refs/race/{round}");
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (url, key, barrier) = (url.clone(), key.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let keys = backend(&url);
                    let bytes = format!("writer-{i}").into_bytes();
                    barrier.wait();
                    (
                        bytes.clone(),
                        keys.create_key_if_absent(&key, &bytes).unwrap(),
                    )
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<&Vec<u8>> = results
            .iter()
            .filter(|(_, r)| *r == KeyCreated::Created)
            .map(|(b, _)| b)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (_, result) in &results {
            if let KeyCreated::AlreadyExists(bytes) = result {
                assert_eq!(bytes, winners[0], "round {round}: a loser saw other bytes");
            }
        }
        assert_eq!(
            backend(&url).read_key(&key, 100).unwrap(),
            KeyRead::Found(winners[0].clone())
        );
    }
}

#[test]
fn init_on_an_s3_url_writes_version_and_the_first_event_once() {
    let url = fresh_url("init");
    let sb = Sandbox::new();
    let out = run(s3_command(&sb, &url), &["init"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        backend(&url).read_key("VERSION", 100).unwrap(),
        KeyRead::Found(evstore::store::STORE_VERSION_TEXT.as_bytes().to_vec())
    );
    // The probe's pass is remembered in the cache folder, and its scratch key is gone.
    let cached: Vec<_> = std::fs::read_dir(sb.path("cache/probe")).unwrap().collect();
    assert_eq!(cached.len(), 1);
    assert!(backend(&url).list_names("probe/").unwrap().is_empty());

    let out = run(s3_command(&sb, &url), &["init"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is already an evstore store"),
        "{}",
        stderr(&out)
    );
    // `init` wrote the first event, `init`, as log key 1 (create-if-absent), and nothing else.
    let log = backend(&url).list_names("log/").unwrap();
    assert_eq!(
        log,
        vec![ListedName::Name("00000000000000000001".to_string())]
    );
    let Ok(KeyRead::Found(first)) = backend(&url).read_key("log/00000000000000000001", 4096) else {
        panic!("log key 1 does not read back");
    };
    let first = evstore::format::event::LogEntry::decode(&first).unwrap();
    assert_eq!((first.seq, first.kind.as_str()), (1, "init"));
    assert!(!sb.path("s3:").exists(), "a local folder was made");

    // A prefix holding other keys is not made a store.
    let other = fresh_url("init-other");
    assert_eq!(
        backend(&other).create_key_if_absent("junk", b"x").unwrap(),
        KeyCreated::Created
    );
    let out = run(s3_command(&sb, &other), &["init"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert_eq!(
        backend(&other).read_key("VERSION", 100).unwrap(),
        KeyRead::Missing
    );
}

/// The proxy double of `tests/s3/overwriting-proxy.py` in front of the real server, killed when
/// dropped.
pub struct Proxy {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
}

impl Proxy {
    pub fn start(sb: &Sandbox, mode: &str) -> Proxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/overwriting-proxy.py");
        let port_file = sb.path(&format!("proxy-{mode}.port"));
        let log = sb.path(&format!("proxy-{mode}.log"));
        let child = Command::new("python3")
            .arg(script)
            .arg(std::env::var("AWS_ENDPOINT_URL").unwrap())
            .arg(mode)
            .arg(&port_file)
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start python3 tests/s3/overwriting-proxy.py");
        let mut proxy = Proxy {
            child,
            endpoint: String::new(),
            log,
        };
        // Wait for the port file (the child exiting early fails the test).
        let start = Instant::now();
        while !port_file.exists() {
            if let Some(status) = proxy.child.try_wait().unwrap() {
                panic!("the proxy exited: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the proxy did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let port = std::fs::read_to_string(&port_file).unwrap();
        proxy.endpoint = format!("http://127.0.0.1:{}", port.trim());
        proxy
    }

    /// (method, path, status answered) of each request the proxy forwarded.
    pub fn answered(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                Some((
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                    parts.next()?.to_string(),
                ))
            })
            .collect()
    }

    /// (method, path) of each request the proxy forwarded.
    pub fn requests(&self) -> Vec<(String, String)> {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            file.read_to_string(&mut text).unwrap();
        }
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                Some((parts.next()?.to_string(), parts.next()?.to_string()))
            })
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_probe_refuses_a_server_that_overwrites_and_passes_seaweedfs() {
    let sb = Sandbox::new();
    let url = fresh_url("probe");
    let overwriting = Proxy::start(&sb, "overwrite");
    let mut cmd = s3_command(&sb, &url);
    cmd.env("AWS_ENDPOINT_URL", &overwriting.endpoint);
    let out = run(cmd, &["--json", "init"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    eprintln!("overwriting double: {}", stderr(&out));
    assert!(
        stderr(&out).contains(OVERWRITES_MESSAGE),
        "{}",
        stderr(&out)
    );
    // Nothing was made a store, and no pass was remembered.
    assert_eq!(
        backend(&url).read_key("VERSION", 100).unwrap(),
        KeyRead::Missing
    );
    assert!(
        !sb.path("cache/probe").exists()
            || std::fs::read_dir(sb.path("cache/probe")).unwrap().count() == 0
    );
    // The double really overwrote: two PUTs of one probe key, both forwarded.
    let puts: Vec<_> = overwriting
        .requests()
        .into_iter()
        .filter(|(m, p)| m == "PUT" && p.contains("/probe/"))
        .collect();
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert_eq!(puts[0].1, puts[1].1);

    // The same path through a proxy that forwards unchanged: the probe passes, init works.
    let passing = Proxy::start(&sb, "pass");
    let mut cmd = s3_command(&sb, &url);
    cmd.env("AWS_ENDPOINT_URL", &passing.endpoint);
    let out = run(cmd, &["init"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let requests = passing.requests();
    let count = |method: &str| requests.iter().filter(|(m, _)| m == method).count();
    // Probe PUT x2 (+ DELETE), the VERSION PUT, the first log key's PUT.
    assert_eq!(count("PUT"), 4, "{requests:?}");
    assert!(requests.len() <= 16, "{requests:?}");
    eprintln!("init on S3 (probe not cached): {requests:?}");
}

#[test]
fn a_batch_of_small_objects_is_one_put_and_a_large_one_a_multipart_upload() {
    let sb = Sandbox::new();
    let url = fresh_url("requests");
    let proxy = Proxy::start(&sb, "pass");
    let parsed = S3Url::parse(Path::new(&url)).unwrap().unwrap();
    let counted = S3Backend::open_with_endpoint(&parsed, Some(&proxy.endpoint)).unwrap();
    counted.probe().unwrap();
    let after_probe = proxy.requests().len();
    std::fs::create_dir_all(sb.path("spool/tmp")).unwrap();
    let store = Store::with_backend(&sb.path("spool"), Box::new(counted));
    // 200 small objects: one pack, one conditional PUT, no request per object.
    let batch = store.batch().unwrap();
    for i in 0..200u64 {
        let bytes = random_bytes(1000, 1000 + i);
        batch
            .add_bytes(blake3_of(&bytes), ObjectKind::Blob, &bytes)
            .unwrap();
    }
    batch.commit().unwrap();
    let small: Vec<_> = proxy.requests()[after_probe..].to_vec();
    let puts: Vec<_> = small.iter().filter(|(m, _)| m == "PUT").collect();
    assert_eq!(puts.len(), 1, "{small:?}");
    assert!(puts[0].1.contains("/packs/"), "{small:?}");
    // ObjectBatch asks the backend whether each new object exists: one HEAD per object.
    let heads = small.iter().filter(|(m, _)| m == "HEAD").count();
    eprintln!(
        "200 small objects: {} requests: {} PUT, {heads} HEAD, {} GET",
        small.len(),
        puts.len(),
        small.iter().filter(|(m, _)| m == "GET").count()
    );

    // One 20 MiB object: a HEAD, then a multipart upload (create, 3 parts of 8 MiB, complete).
    let before = proxy.requests().len();
    let large = random_bytes(20 * 1024 * 1024, 7);
    let batch = store.batch().unwrap();
    let mut writer = batch.stream(ObjectKind::Blob, large.len() as u64).unwrap();
    std::io::Write::write_all(&mut writer, &large).unwrap();
    batch.add_stream(blake3_of(&large), writer).unwrap();
    batch.commit().unwrap();
    let big: Vec<_> = proxy.requests()[before..].to_vec();
    let part_puts = big
        .iter()
        .filter(|(m, p)| m == "PUT" && p.contains("partNumber="))
        .count();
    assert_eq!(part_puts, 3, "{big:?}");
    eprintln!("one 20 MiB object: {} requests: {big:?}", big.len());

    // Reading all 201 back through a fresh client.
    let before = proxy.requests().len();
    let reader = Store::with_backend(
        &sb.path("spool"),
        Box::new(S3Backend::open_with_endpoint(&parsed, Some(&proxy.endpoint)).unwrap()),
    );
    for i in 0..200u64 {
        let bytes = random_bytes(1000, 1000 + i);
        reader
            .read_object(&blake3_of(&bytes), std::io::sink())
            .unwrap();
    }
    let reads: Vec<_> = proxy.requests()[before..].to_vec();
    eprintln!(
        "reading 200 packed objects: {} requests ({} GET)",
        reads.len(),
        reads.iter().filter(|(m, _)| m == "GET").count()
    );
}

#[test]
fn an_unreachable_endpoint_is_a_clear_exit_2() {
    let _ = bucket();
    let sb = Sandbox::new();
    // A port nothing listens on: bind one, then release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = s3_command(&sb, "s3://evstore-test/unreachable");
    cmd.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    let start = Instant::now();
    let out = run(cmd, &["init"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("s3://evstore-test/unreachable"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    eprintln!(
        "unreachable endpoint: exit 2 after {:?}: {err}",
        start.elapsed()
    );
}

// ---- no server needed ----------------------------------------------------------------------

#[test]
fn s3_store_urls_are_parsed_strictly() {
    for fine in [
        "s3://my-bucket/team_1/ci-runs.v2",
        "s3://my-bucket/a+b=c@d,e",
    ] {
        assert!(S3Url::parse(Path::new(fine)).unwrap().is_some(), "{fine}");
    }
    let ok = S3Url::parse(Path::new("s3://my-bucket/a/b/"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (ok.bucket.as_str(), ok.prefix.as_str()),
        ("my-bucket", "a/b/")
    );
    assert_eq!(ok.to_string(), "s3://my-bucket/a/b");
    let root = S3Url::parse(Path::new("s3://my-bucket")).unwrap().unwrap();
    assert_eq!(root.prefix, "");
    assert!(S3Url::parse(Path::new("./s3://x")).unwrap().is_none());
    for bad in [
        "s3://B/x",
        "s3://ab/x",
        "s3://-bucket/x",
        "s3://bucket/a//b",
        "s3://bucket/a/../b",
        "s3://bucket/a b",
        // A server may rewrite these (SeaweedFS stores `w\x` under `w/x/`).
        "s3://bucket/w\\x",
        "s3://bucket/a%2Fb",
        "s3://bucket/a?b",
        "s3://bucket/a#b",
    ] {
        let err = S3Url::parse(Path::new(bad)).unwrap_err();
        assert!(matches!(err, evstore::Error::Usage(_)), "{bad}: {err:?}");
    }
}

#[test]
fn commands_on_an_s3_prefix_that_is_no_store_say_how_to_make_one_and_create_nothing() {
    let sb = Sandbox::new();
    sb.write("pkt/a.txt", "a\n");
    let url = fresh_url("nostore");
    for args in [
        &["ls"][..],
        &["fsck"][..],
        &["ingest", "pkt"][..],
        &["reindex"][..],
    ] {
        let out = run(s3_command(&sb, &url), args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("no evstore store at {url}")), "{err}");
        assert!(err.contains("evstore init --store"), "{err}");
    }
    assert!(backend(&url).list_names("").unwrap().is_empty());
    let out = run(s3_command(&sb, "s3://Bad_Bucket/ev"), &["init"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not an S3 bucket name"),
        "{}",
        stderr(&out)
    );
    // Nothing local was created: no cache, no folder named after the URL.
    let names: Vec<_> = std::fs::read_dir(sb.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["pkt".to_string()]);
}
