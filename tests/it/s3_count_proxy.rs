//! `benches/s3-count-proxy.py`, the request counter of `benches/compare.sh --s3`, in front of the
//! real S3 server (SeaweedFS, started by `tests/s3/with-seaweedfs.sh`): what it forwards still
//! works (an `evstore init` with its conditional-create probe, a multipart upload of a 20 MiB
//! object and its read back, both signed for the proxy's address), and what it counts is what it
//! forwarded, by kind and by bytes, through `/__counts__`, `/__reset__` and the file it writes on
//! SIGTERM. The benchmark's request counts rest on this.
//!
//! Without the server's variables the test FAILS with how to run it, as `s3_store`'s tests do.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use evstore::digest::blake3_of;
use evstore::format::object::ObjectKind;
use evstore::store::s3::S3Backend;
use evstore::store::{S3Url, Store};
use serde_json::Value;

use crate::sandbox::{code, random_bytes, stderr, Sandbox};

/// The server's endpoint and the test bucket, from the environment `with-seaweedfs.sh` sets.
fn server() -> (String, String) {
    let how = "the S3 tests need a real S3 server: run them as \
               `bash tests/s3/with-seaweedfs.sh cargo test`";
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .unwrap_or_else(|_| panic!("$AWS_ENDPOINT_URL is not set: {how}"));
    let bucket = std::env::var("EVSTORE_TEST_S3_BUCKET")
        .unwrap_or_else(|_| panic!("$EVSTORE_TEST_S3_BUCKET is not set: {how}"));
    (endpoint, bucket)
}

/// The counting proxy, killed when dropped.
struct CountProxy {
    child: Child,
    port: u16,
    log: PathBuf,
    counts_file: PathBuf,
}

impl CountProxy {
    fn start(sb: &Sandbox, upstream: &str) -> CountProxy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/s3-count-proxy.py");
        let port_file = sb.path("proxy.port");
        let mut proxy = CountProxy {
            child: Command::new("python3")
                .arg(script)
                .arg(upstream)
                .arg(&port_file)
                .arg(sb.path("counts.json"))
                .arg(sb.path("requests.log"))
                .stdin(Stdio::null())
                .spawn()
                .expect("start python3 benches/s3-count-proxy.py"),
            port: 0,
            log: sb.path("requests.log"),
            counts_file: sb.path("counts.json"),
        };
        let start = Instant::now();
        while !port_file.exists() {
            if let Some(status) = proxy.child.try_wait().unwrap() {
                panic!("the counting proxy exited: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the counting proxy did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy.port = std::fs::read_to_string(&port_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        proxy
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One request to the proxy's own paths (`/__counts__`, `/__reset__`): its JSON answer.
    fn own(&self, method: &str, path: &str) -> Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        serde_json::from_str(body).unwrap()
    }

    /// The request log: (method, path and query, status, bytes up, bytes down) per request.
    fn requests(&self) -> Vec<(String, String, u16, u64, u64)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                assert_eq!(f.len(), 5, "{line}");
                let n = |i: usize| f[i].parse::<u64>().unwrap();
                (f[0].to_string(), f[1].to_string(), n(2) as u16, n(3), n(4))
            })
            .collect()
    }
}

impl Drop for CountProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kind(counts: &Value, kind: &str) -> u64 {
    counts["by_kind"][kind].as_u64().unwrap()
}

#[test]
fn the_benchmark_counting_proxy_forwards_unchanged_and_counts_what_it_forwarded() {
    let (endpoint, bucket) = server();
    let sb = Sandbox::new();
    let proxy = CountProxy::start(&sb, &endpoint);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("s3://{bucket}/count-proxy-{}-{nanos}", std::process::id());

    // `evstore init` through the proxy: the client signs for the proxy's address, the proxy
    // passes that Host on, the server accepts the signatures. The probe creates one key twice
    // (the second create answered 412), deletes it, then init creates VERSION.
    let out = sb
        .command_storeless()
        .args(["--store", &url, "init"])
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .env("EVSTORE_CACHE", sb.path("cache"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let counts = proxy.own("GET", "/__counts__");
    let log = proxy.requests();
    assert_eq!(counts["requests"].as_u64().unwrap(), log.len() as u64);
    // Each kind is what the log shows: a listing is a GET of the bucket (no key), the probe's
    // cleanup a POST (multi-object delete), and its second create the one 412.
    let tally =
        |f: &dyn Fn(&str, &str) -> bool| log.iter().filter(|(m, p, ..)| f(m, p)).count() as u64;
    let has_key = |p: &str| p.split('?').next().unwrap().trim_matches('/').contains('/');
    assert_eq!(kind(&counts, "PUT"), tally(&|m, _| m == "PUT"), "{log:?}");
    assert!(kind(&counts, "PUT") >= 3, "{log:?}");
    assert_eq!(
        kind(&counts, "LIST"),
        tally(&|m, p| m == "GET" && !has_key(p)),
        "{log:?}"
    );
    assert!(kind(&counts, "LIST") >= 1, "{log:?}");
    assert_eq!(
        kind(&counts, "GET"),
        tally(&|m, p| m == "GET" && has_key(p)),
        "{log:?}"
    );
    assert_eq!(kind(&counts, "POST"), tally(&|m, _| m == "POST"), "{log:?}");
    assert_eq!(kind(&counts, "HEAD"), tally(&|m, _| m == "HEAD"), "{log:?}");
    assert_eq!(counts["not_2xx"]["PUT 412"], 1, "{counts}");
    let by_kind: u64 = ["PUT", "GET", "LIST", "HEAD", "POST", "DELETE", "OTHER"]
        .iter()
        .map(|k| kind(&counts, k))
        .sum();
    assert_eq!(by_kind, log.len() as u64, "{counts}");
    let up: u64 = log.iter().map(|r| r.3).sum();
    assert_eq!(counts["bytes_up"].as_u64().unwrap(), up);

    // Reset: zero, and the proxy's own paths are neither forwarded nor counted.
    let zero = proxy.own("POST", "/__reset__");
    assert_eq!(zero["requests"], 0, "{zero}");
    assert_eq!(proxy.own("GET", "/__counts__")["requests"], 0);
    assert_eq!(proxy.requests().len(), log.len());

    // A 20 MiB object through the proxy: a multipart upload (create, 3 parts of 8 MiB, complete)
    // whose bodies are streamed through, then read back whole through a fresh client.
    let parsed = S3Url::parse(Path::new(&url)).unwrap().unwrap();
    let through = || S3Backend::open_with_endpoint(&parsed, Some(&proxy.endpoint())).unwrap();
    std::fs::create_dir_all(sb.path("spool/tmp")).unwrap();
    let store = Store::with_backend(&sb.path("spool"), Box::new(through()));
    let large = random_bytes(20 * 1024 * 1024, 14);
    let batch = store.batch().unwrap();
    let mut writer = batch.stream(ObjectKind::Blob, large.len() as u64).unwrap();
    writer.write_all(&large).unwrap();
    batch.add_stream(blake3_of(&large), writer).unwrap();
    batch.commit().unwrap();
    // The proxy records a request after it has sent the answer on: the multipart complete may
    // be answered (and the commit return) a moment before it is counted. Wait for it, a while.
    let multipart_posts = |requests: &[(String, String, u16, u64, u64)]| {
        requests
            .iter()
            .filter(|(m, p, ..)| m == "POST" && (p.contains("?uploads") || p.contains("uploadId=")))
            .count()
    };
    let mut all = proxy.requests();
    for _ in 0..50 {
        if multipart_posts(&all[log.len()..]) >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        all = proxy.requests();
    }
    let written = proxy.own("GET", "/__counts__");
    assert_eq!(kind(&written, "PUT_PART"), 3, "{written}");
    // POSTs: the multipart create and complete, and the new client's probe cleanup.
    let since_reset = &all[log.len()..];
    let multipart = multipart_posts(since_reset);
    assert_eq!(multipart, 2, "{since_reset:?}");
    assert_eq!(
        kind(&written, "POST"),
        since_reset.iter().filter(|(m, ..)| m == "POST").count() as u64,
        "{written}"
    );
    assert!(
        written["bytes_up"].as_u64().unwrap() >= large.len() as u64,
        "{written}"
    );
    let reader = Store::with_backend(&sb.path("spool"), Box::new(through()));
    let mut back = Vec::new();
    reader
        .read_object(&blake3_of(&large), &mut back)
        .expect("read back through the proxy");
    assert!(
        back == large,
        "the object read back through the proxy differs"
    );
    let read = proxy.own("GET", "/__counts__");
    let down = read["bytes_down"].as_u64().unwrap() - written["bytes_down"].as_u64().unwrap();
    assert!(down >= large.len() as u64, "{read}");

    // SIGTERM: the counts are written to the counts file, and the proxy exits 0.
    let mut proxy = proxy;
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&proxy.child),
        rustix::process::Signal::Term,
    )
    .unwrap();
    assert!(proxy.child.wait().unwrap().success());
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&proxy.counts_file).unwrap()).unwrap();
    assert_eq!(file, read);
}
