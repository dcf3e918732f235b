//! Criterion benchmarks of evstore's hot paths, through the public library API only.
//!
//! Groups:
//!
//! - `dual_hash`: [`DualHasher`] over a 16 MiB buffer, with BLAKE3 alone and SHA-256 alone for
//!   comparison (bytes/s).
//! - `ingest_large`: [`ingest`] of a packet holding one 64 MiB file (half pseudo-random bytes,
//!   half JSON-lines text) into a fresh store (bytes/s).
//! - `ingest_small`: [`ingest`] of a packet of 2000 files of 1-8 KiB in 20 folders into a fresh
//!   store (files/s).
//! - `hash_packet`: [`hash_packet`] of the small-files packet (files/s).
//! - `build_tree`: [`build_tree`] of 20 000 synthetic entries (entries/s).
//! - `scan`: [`scan`] of the small-files packet (entries/s).
//!
//! Every input is generated deterministically (xorshift64*), so runs compare. The ingest groups
//! create the store and open its catalog outside the timed region (`iter_custom`), and delete it
//! outside the timed region too; what is timed is exactly one `ingest` call, which includes the
//! store's `syncfs` calls, so those numbers depend on the disk under `$TMPDIR`.
//!
//! Run: `cargo bench --bench ingest` (all) or `cargo bench --bench ingest -- ingest_small`;
//! smoke test: `cargo bench --bench ingest -- --test`.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tempfile::TempDir;

use evstore::catalog::Catalog;
use evstore::digest::{blake3_of, sha256_of, Blake3Digest, DualHasher, Sha256Digest};
use evstore::format::tree::{build_tree, FileMeta, HashedFile};
use evstore::ops::ingest::{hash_packet, ingest, IngestConfig, IngestOutcome};
use evstore::scan::scan;
use evstore::store::Store;

const MIB: usize = 1024 * 1024;
const DUAL_HASH_BYTES: usize = 16 * MIB;
const LARGE_FILE_BYTES: usize = 64 * MIB;
const SMALL_FILES: usize = 2000;
const SMALL_FOLDERS: usize = 20;
const TREE_ENTRIES: usize = 20_000;

/// xorshift64*: tiny, fast, deterministic; good enough to defeat compression.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Any non-zero state works; mix the seed so nearby seeds diverge at once.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn fill(&mut self, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        self.fill(&mut out);
        out
    }
}

const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];
const WORDS: [&str; 12] = [
    "request", "served", "cache", "miss", "retry", "upstream", "timeout", "ok", "shard", "replica",
    "commit", "flush",
];

/// Append JSON-lines log text to `out` until it holds exactly `target` bytes.
fn push_json_lines(out: &mut Vec<u8>, target: usize, rng: &mut Rng) {
    let mut seq: u64 = 0;
    while out.len() < target {
        let msg: Vec<&str> = (0..3 + rng.below(5))
            .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
            .collect();
        let line = format!(
            "{{\"seq\":{seq},\"ts\":{},\"host\":\"node-{:02}\",\"level\":\"{}\",\"latency_ms\":{},\"msg\":\"{}\"}}\n",
            1_700_000_000_000u64 + seq * 17 + rng.below(17),
            rng.below(64),
            LEVELS[rng.below(4) as usize],
            rng.below(5000),
            msg.join(" "),
        );
        out.extend_from_slice(line.as_bytes());
        seq += 1;
    }
    out.truncate(target);
}

/// `len` bytes: the first half pseudo-random, the second half JSON-lines text.
fn mixed_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = vec![0u8; len / 2];
    rng.fill(&mut out);
    push_json_lines(&mut out, len, &mut rng);
    out
}

/// A packet folder with one 64 MiB file.
fn large_packet() -> TempDir {
    let dir = tempfile::tempdir().expect("create large packet tempdir");
    fs::write(
        dir.path().join("capture.bin"),
        mixed_bytes(LARGE_FILE_BYTES, 0x1a26e),
    )
    .expect("write large packet file");
    dir
}

/// A packet folder of 2000 distinct JSON-lines files of 1-8 KiB in 20 folders; returns it and
/// its total size.
fn small_packet() -> (TempDir, u64) {
    let dir = tempfile::tempdir().expect("create small packet tempdir");
    let mut rng = Rng::new(0x5a11);
    let mut total = 0u64;
    for folder in 0..SMALL_FOLDERS {
        let sub = dir.path().join(format!("run-{folder:02}"));
        fs::create_dir(&sub).expect("create small packet folder");
        for file in 0..SMALL_FILES / SMALL_FOLDERS {
            let len = 1024 + rng.below(7 * 1024 + 1) as usize;
            let mut text = format!("{{\"file\":{folder},\"index\":{file}}}\n").into_bytes();
            push_json_lines(&mut text, len, &mut rng);
            fs::write(sub.join(format!("report-{file:03}.json")), &text)
                .expect("write small packet file");
            total += text.len() as u64;
        }
    }
    (dir, total)
}

/// 20 000 synthetic hashed files spread over a few levels of folders, sorted by path bytes.
fn synthetic_files() -> Vec<HashedFile> {
    let mut rng = Rng::new(0x7eee);
    let mut files: Vec<HashedFile> = (0..TREE_ENTRIES)
        .map(|i| HashedFile {
            rel_path: format!(
                "suite-{:02}/case-{:03}/artifact-{i:05}.json",
                i % 20,
                (i / 20) % 50
            ),
            meta: FileMeta {
                size: rng.below(1 << 20),
                executable: i % 97 == 0,
                blake3: Blake3Digest(rng.bytes32()),
                sha256: Sha256Digest(rng.bytes32()),
            },
        })
        .collect();
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    files
}

/// Time `iters` ingests of `packet`, each into a fresh store whose setup and removal are not
/// timed.
fn time_fresh_ingests(packet: &Path, iters: u64) -> Duration {
    let config = IngestConfig {
        name: "bench-packet".into(),
        note: None,
        source_date_epoch: Some(1_700_000_000),
        progress: evstore::progress::Progress::silent(),
    };
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let holder = tempfile::tempdir().expect("create store tempdir");
        let store_root: PathBuf = holder.path().join("store");
        let store = Store::init(&store_root).expect("init store");
        let mut catalog = Catalog::open(&store.catalog_path()).expect("open catalog");
        let start = Instant::now();
        let report = ingest(&store, &mut catalog, packet, &config)
            .and_then(IngestOutcome::archived)
            .expect("ingest packet");
        total += start.elapsed();
        assert!(report.created, "a fresh store must create the packet");
        black_box(report);
        drop(catalog);
        drop(store);
        drop(holder);
    }
    total
}

fn bench_dual_hash(c: &mut Criterion) {
    let data = mixed_bytes(DUAL_HASH_BYTES, 0xd0a1);
    let mut group = c.benchmark_group("dual_hash");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("dual_16MiB", |b| {
        b.iter(|| {
            let mut hasher = DualHasher::new();
            hasher.update(black_box(&data));
            hasher.finish()
        })
    });
    group.bench_function("blake3_16MiB", |b| b.iter(|| blake3_of(black_box(&data))));
    group.bench_function("sha256_16MiB", |b| b.iter(|| sha256_of(black_box(&data))));
    group.finish();
}

fn bench_ingest_large(c: &mut Criterion) {
    let packet = large_packet();
    let mut group = c.benchmark_group("ingest_large");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(LARGE_FILE_BYTES as u64));
    group.bench_function("one_64MiB_file", |b| {
        b.iter_custom(|iters| time_fresh_ingests(packet.path(), iters))
    });
    group.finish();
}

fn bench_ingest_small(c: &mut Criterion) {
    let (packet, _bytes) = small_packet();
    let mut group = c.benchmark_group("ingest_small");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(SMALL_FILES as u64));
    group.bench_function("2000_files_1-8KiB", |b| {
        b.iter_custom(|iters| time_fresh_ingests(packet.path(), iters))
    });
    group.finish();
}

fn bench_hash_packet(c: &mut Criterion) {
    let (packet, bytes) = small_packet();
    let mut group = c.benchmark_group("hash_packet");
    group.sample_size(20);
    group.throughput(Throughput::Elements(SMALL_FILES as u64));
    group.bench_function("2000_files_1-8KiB", |b| {
        b.iter(|| {
            let hashed = hash_packet(black_box(packet.path())).expect("hash packet");
            assert_eq!(hashed.total_bytes(), bytes);
            hashed
        })
    });
    group.finish();
}

fn bench_build_tree(c: &mut Criterion) {
    let files = synthetic_files();
    let mut group = c.benchmark_group("build_tree");
    group.throughput(Throughput::Elements(files.len() as u64));
    group.bench_function("20000_entries", |b| {
        b.iter(|| build_tree(black_box(&files)).expect("build tree"))
    });
    group.finish();
}

fn bench_scan(c: &mut Criterion) {
    let (packet, _bytes) = small_packet();
    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Elements(SMALL_FILES as u64));
    group.bench_function("2000_files_20_folders", |b| {
        b.iter(|| {
            let scanned = scan(black_box(packet.path())).expect("scan packet");
            assert_eq!(scanned.entries.len(), SMALL_FILES);
            scanned
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_dual_hash,
    bench_ingest_large,
    bench_ingest_small,
    bench_hash_packet,
    bench_build_tree,
    bench_scan
);
criterion_main!(benches);
