//! Many writers on one store, and ingests killed mid-write (issue 14), on an S3 store (SeaweedFS,
//! started by `tests/s3/with-seaweedfs.sh`) and on a local store folder.
//!
//! *Many writers, one store*: four `evstore ingest` processes, two per "machine", each ingest 50
//! overlapping packets at the same time, some under names the other processes use too and some
//! with a tree another process ingests as well. On an S3 store a machine is a `$EVSTORE_CACHE`
//! folder; on a local store the two machines are two groups of processes on the one catalog.
//! Afterwards both machines (and, on S3, a third one with an empty cache) list exactly the same
//! packets, each name's versions are 1..=k, no tree ingested is missing, the log is one unbroken
//! chain with one `ingest` event per packet, and `fsck` passes from each.
//!
//! *Crash and retry*: an ingest of a new packet (some rounds with a 20 MiB file, so a multipart
//! upload happens on S3) is killed with `SIGKILL` after a random delay drawn from a seed
//! (`$EVSTORE_CRASH_SEED` replays a run; the seed is in every assertion message), then `fsck`
//! must pass from a fresh cache and from the writer's, every version claim must name a record
//! whose whole packet `show` and `export` read back, and the same ingest run again must succeed.
//! The local store runs the same loop on an existing store with versions chaining under a few
//! names; `reliability::ingest_killed_at_random_moments_leaves_a_sound_store` kills the first
//! ingest that creates a local store, and `signals.rs` the clean stops on SIGINT and SIGTERM.
//!
//! The S3 tests FAIL (never skip) without the server's variables, saying how to run them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::s3_commands::Machine;
use crate::s3_store::fresh_url;
use crate::sandbox::{code, random_bytes, stderr, Sandbox};

/// Processes that ingest at once, and packets each ingests (the numbers).
const PROCESSES: usize = 4;
const PACKETS_EACH: usize = 50;

/// Where the store of a test lives.
enum Where {
    /// A new prefix of the test bucket.
    S3,
    /// A store folder in the sandbox.
    Local,
}

/// The store URL or folder of a new store for `test`.
fn new_store(sb: &Sandbox, place: &Where, test: &str) -> String {
    match place {
        Where::S3 => fresh_url(test),
        Where::Local => sb.store().to_string_lossy().into_owned(),
    }
}

/// A 64-bit FNV-1a hash: a seed from a text.
fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Write a small packet whose content depends only on `key` into the sandbox folder `rel`.
fn write_keyed_packet(sb: &Sandbox, rel: &str, key: &str) -> PathBuf {
    sb.write(
        &format!("{rel}/report.json"),
        format!("{{\"key\": \"{key}\"}}\n"),
    );
    sb.write(
        &format!("{rel}/data/blob.bin"),
        random_bytes(3000, seed_of(key)),
    );
    sb.write(&format!("{rel}/common.txt"), "the same in every packet\n");
    sb.path(rel)
}

/// What process `p` ingests as its `i`th packet: the name, and the key its content depends on.
/// Even `i` use five names every process uses (`shared-0` … `shared-8`): for `i % 4 == 0` with
/// the same content in every process (racing writers of one name and one tree), otherwise with
/// content of this process (racing writers of one name, different trees). Odd `i` use a name of
/// this process, with content every process has for `i % 3 == 0` (one tree under four names).
fn plan(p: usize, i: usize) -> (String, String) {
    if i % 2 == 0 {
        let key = if i % 4 == 0 {
            format!("i{i}")
        } else {
            format!("p{p}-i{i}")
        };
        (format!("shared-{}", i % 10), key)
    } else {
        let key = if i % 3 == 0 {
            format!("i{i}")
        } else {
            format!("p{p}-i{i}")
        };
        (format!("p{p}-{i}"), key)
    }
}

/// `hash --json DIR`: the folder's packet_tree_sha256, computed without a store.
fn tree_sha256_of(sb: &Sandbox, dir: &Path) -> String {
    let out = sb
        .command_storeless()
        .args(["--json", "hash"])
        .arg(dir)
        .output()
        .expect("run evstore hash");
    assert_eq!(code(&out), 0, "hash {}: {}", dir.display(), stderr(&out));
    let value: Value = serde_json::from_slice(&out.stdout).expect("hash --json");
    text(&value, "packet_tree_sha256")
}

/// A string field of a JSON object, or a failure naming it.
fn text(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field:?} in {value}"))
        .to_string()
}

/// An unsigned field of a JSON object, or a failure naming it.
fn number(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no unsigned {field:?} in {value}"))
}

/// `ls --json` of machine `m`: every packet version, as printed, sorted by (name, version).
fn listing(m: &Machine<'_>) -> Vec<Value> {
    let (rc, list) = m.json(&["ls"]);
    assert_eq!(rc, 0, "ls from {}: {list}", m.cache.display());
    let mut packets = list["packets"]
        .as_array()
        .unwrap_or_else(|| panic!("ls --json has no packets: {list}"))
        .clone();
    packets.sort_by_key(|p| (text(p, "name"), number(p, "version")));
    packets
}

/// `log --json` of machine `m`: every event, as printed.
fn events(m: &Machine<'_>) -> Vec<Value> {
    let (rc, log) = m.json(&["log"]);
    assert_eq!(rc, 0, "log from {}: {log}", m.cache.display());
    log["events"]
        .as_array()
        .unwrap_or_else(|| panic!("log --json has no events: {log}"))
        .clone()
}

/// `fsck --json` from machine `m` passes (exit 0, verdict PASS).
fn assert_fsck_passes(m: &Machine<'_>, context: &str) {
    let (rc, report) = m.json(&["fsck"]);
    assert_eq!(
        rc,
        0,
        "{context}: fsck from {} failed: {report}",
        m.cache.display()
    );
    assert_eq!(report["verdict"], "PASS", "{context}: {report}");
}

/// The store's soundness as the listing and the log of one machine show it: each name's versions
/// are exactly 1..=k, a name never has two versions of one tree, the log is one chain from the
/// `init` event, and it holds exactly one `ingest` event per listed packet, naming its record.
fn assert_sound(packets: &[Value], log: &[Value], context: &str) {
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut trees: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for p in packets {
        let (name, version) = (text(p, "name"), number(p, "version"));
        versions.entry(name.clone()).or_default().push(version);
        trees
            .entry((name, text(p, "tree")))
            .or_default()
            .push(version);
    }
    for (name, got) in &versions {
        let expected: Vec<u64> = (1..=got.len() as u64).collect();
        assert_eq!(
            got, &expected,
            "{context}: the versions of {name} are not 1..=k"
        );
    }
    let doubled: Vec<_> = trees.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "{context}: one tree got several versions of one name ((name, tree) → versions): {doubled:?}"
    );

    let zeros = "0".repeat(64);
    let mut previous = zeros.as_str();
    for (index, event) in log.iter().enumerate() {
        assert_eq!(
            number(event, "seq"),
            index as u64 + 1,
            "{context}: the log has a gap before {event}"
        );
        assert_eq!(
            event["prev_hash"].as_str(),
            Some(previous),
            "{context}: event {} does not follow the one before it",
            index + 1
        );
        previous = event["hash"].as_str().unwrap_or("");
    }
    assert_eq!(
        log.first().map(|e| text(e, "kind")).as_deref(),
        Some("init"),
        "{context}"
    );
    let mut ingests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in log.iter().filter(|e| e["kind"] == "ingest") {
        let detail: Value = serde_json::from_str(&text(event, "detail")).expect("detail JSON");
        ingests
            .entry(text(event, "subject"))
            .or_default()
            .push(text(&detail, "record"));
    }
    let listed: BTreeMap<String, Vec<String>> = packets
        .iter()
        .map(|p| (text(p, "packet"), vec![text(p, "record")]))
        .collect();
    let keys: BTreeSet<&String> = ingests.keys().chain(listed.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| ingests.get(*k) != listed.get(*k))
        .map(|k| {
            format!(
                "{k}: ingest events name {:?}, listed {:?}",
                ingests.get(k),
                listed.get(k)
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{context}: the log's ingest events are not one per listed packet, naming its record:\n{}",
        differ.join("\n")
    );
}

/// One ingest of the many-writers test and what it printed.
struct Ingested {
    process: usize,
    index: usize,
    name: String,
    key: String,
    out: Output,
}

fn many_writers_one_store(place: Where) {
    let sb = Sandbox::new();
    let store = new_store(&sb, &place, "writers");
    let machines = [
        Machine::new(&sb, &store, "a"),
        Machine::new(&sb, &store, "b"),
    ];
    let out = machines[0].run(&["init"]);
    assert_eq!(code(&out), 0, "init: {}", stderr(&out));

    let mut expected_sha256: BTreeMap<String, String> = BTreeMap::new();
    for p in 0..PROCESSES {
        for i in 0..PACKETS_EACH {
            let (_, key) = plan(p, i);
            let dir = write_keyed_packet(&sb, &format!("src/p{p}/i{i}"), &key);
            expected_sha256
                .entry(key)
                .or_insert_with(|| tree_sha256_of(&sb, &dir));
        }
    }

    // Four processes at once: each runs its 50 ingests one after the other, as a shell loop would.
    let started = Instant::now();
    let barrier = Barrier::new(PROCESSES);
    let ingested: Vec<Ingested> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..PROCESSES)
            .map(|p| {
                let (machine, barrier, sb) = (&machines[p % 2], &barrier, &sb);
                scope.spawn(move || {
                    barrier.wait();
                    (0..PACKETS_EACH)
                        .map(|i| {
                            let (name, key) = plan(p, i);
                            let out = machine
                                .command()
                                .args(["--json", "ingest", "--name", &name])
                                .arg(sb.path(&format!("src/p{p}/i{i}")))
                                .output()
                                .expect("run evstore ingest");
                            Ingested {
                                process: p,
                                index: i,
                                name,
                                key,
                                out,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer thread"))
            .collect()
    });
    let elapsed = started.elapsed();
    eprintln!(
        "many writers: {} ingests by {PROCESSES} processes in {:.1} s",
        ingested.len(),
        elapsed.as_secs_f64()
    );

    let failed: Vec<String> = ingested
        .iter()
        .filter(|ing| code(&ing.out) != 0)
        .map(|ing| {
            format!(
                "process {} packet {} ({}): exit {}: {}",
                ing.process,
                ing.index,
                ing.name,
                code(&ing.out),
                stderr(&ing.out).trim()
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} ingests failed:\n{}",
        failed.len(),
        ingested.len(),
        failed.join("\n")
    );

    // Both machines list exactly the same packets and the same log; so does a machine whose
    // cache is new (on a local store, the same catalog again).
    let third = Machine::new(&sb, &store, "c");
    let packets = listing(&machines[0]);
    let log = events(&machines[0]);
    for m in [&machines[1], &third] {
        assert!(
            listing(m) == packets,
            "machines list different packets: {}",
            m.cache.display()
        );
        assert!(
            events(m) == log,
            "machines read different logs: {}",
            m.cache.display()
        );
    }
    assert_sound(&packets, &log, "after the writers");

    // No packet lost: every (name, tree) ingested is listed, and each ingest's report names a
    // listed version of that name with the folder's tree.
    let listed: BTreeSet<(String, u64, String, String)> = packets
        .iter()
        .map(|p| {
            (
                text(p, "name"),
                number(p, "version"),
                text(p, "packet_tree_sha256"),
                text(p, "record"),
            )
        })
        .collect();
    let listed_trees: BTreeSet<(String, String)> = listed
        .iter()
        .map(|(name, _, sha, _)| (name.clone(), sha.clone()))
        .collect();
    let mut created = 0;
    for ing in &ingested {
        let sha = &expected_sha256[&ing.key];
        assert!(
            listed_trees.contains(&(ing.name.clone(), sha.clone())),
            "process {} packet {}: {} with packet_tree_sha256 {sha} is lost",
            ing.process,
            ing.index,
            ing.name
        );
        let report: Value = serde_json::from_slice(&ing.out.stdout).expect("ingest --json");
        let reported = (
            text(&report, "name"),
            number(&report, "version"),
            text(&report, "packet_tree_sha256"),
            text(&report, "record"),
        );
        assert_eq!(&reported.2, sha, "{report}");
        assert!(
            listed.contains(&reported),
            "process {} packet {}: the reported version is not listed: {report}",
            ing.process,
            ing.index
        );
        if report["created"] == true {
            created += 1;
        }
    }
    // Every (name, tree) is one version, made by exactly one of the ingests that reported it
    // created.
    assert_eq!(
        created,
        listed_trees.len(),
        "ingests reporting a new version vs distinct (name, tree)"
    );
    assert_eq!(listed.len(), listed_trees.len());

    for m in [&machines[0], &machines[1], &third] {
        assert_fsck_passes(m, "after the writers");
    }
    eprintln!(
        "many writers: {} packets, {} events; total test time {:.1} s",
        packets.len(),
        log.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn many_writers_four_processes_on_two_machines_ingest_into_one_s3_store() {
    many_writers_one_store(Where::S3);
}

#[test]
fn many_writers_four_processes_in_two_groups_ingest_into_one_local_store() {
    many_writers_one_store(Where::Local);
}

/// One name, many trees, all at once: six packets, each ingested by one process on each of two
/// machines (twelve processes) under the same name, for a few rounds on new stores. Each tree
/// gets exactly one version of the name, every ingest reports that version, and `fsck` passes
/// from both machines. (The review of issue 14 saw one tree get two versions in 2 of 9 such
/// rounds: a process's catalog held another machine's `ingest` event, taken in by an append,
/// without its rows, and numbered past it without comparing trees.)
fn one_name_many_trees_at_once(place: Where) {
    const TREES: usize = 6;
    const ROUNDS: usize = 4;
    let sb = Sandbox::new();
    let dirs: Vec<PathBuf> = (0..TREES)
        .map(|t| write_keyed_packet(&sb, &format!("src/t{t}"), &format!("tree-{t}")))
        .collect();
    for round in 0..ROUNDS {
        let store = match place {
            Where::S3 => fresh_url(&format!("one-name-{round}")),
            Where::Local => sb
                .path(&format!("store-{round}"))
                .to_string_lossy()
                .into_owned(),
        };
        let machines = [
            Machine::new(&sb, &store, &format!("a{round}")),
            Machine::new(&sb, &store, &format!("b{round}")),
        ];
        let out = machines[0].run(&["init"]);
        assert_eq!(code(&out), 0, "init: {}", stderr(&out));
        let children: Vec<_> = dirs
            .iter()
            .flat_map(|dir| machines.iter().map(move |m| (dir, m)))
            .map(|(dir, m)| {
                let child = m
                    .command()
                    .args(["--json", "ingest", "--name", "same"])
                    .arg(dir)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start evstore ingest");
                (dir, child)
            })
            .collect();
        let mut reported: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        for (dir, child) in children {
            let out = child.wait_with_output().expect("wait for evstore ingest");
            let context = format!("round {round}, {}", dir.display());
            assert_eq!(code(&out), 0, "{context}: {}", stderr(&out));
            let report: Value = serde_json::from_slice(&out.stdout).expect("ingest --json");
            reported
                .entry(text(&report, "tree"))
                .or_default()
                .insert(number(&report, "version"));
        }
        let context = format!("round {round}");
        let packets = listing(&machines[0]);
        assert_sound(&packets, &events(&machines[0]), &context);
        assert_eq!(packets.len(), TREES, "{context}: {packets:?}");
        assert!(
            reported.values().all(|versions| versions.len() == 1),
            "{context}: the two ingests of one tree reported different versions: {reported:?}"
        );
        assert_eq!(listing(&machines[1]), packets, "{context}");
        for m in &machines {
            assert_fsck_passes(m, &context);
        }
    }
}

#[test]
fn one_name_many_trees_from_two_machines_at_once_gives_each_tree_one_version_on_s3() {
    one_name_many_trees_at_once(Where::S3);
}

#[test]
fn one_name_many_trees_from_two_process_groups_at_once_gives_each_tree_one_version_locally() {
    one_name_many_trees_at_once(Where::Local);
}

/// The seed of the crash test: `$EVSTORE_CRASH_SEED`, else the clock.
fn crash_seed() -> u64 {
    std::env::var("EVSTORE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}

/// Rounds of the crash test: `$EVSTORE_KILL_ROUNDS`, else `default`.
fn crash_rounds(default: u64) -> u64 {
    std::env::var("EVSTORE_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The version claims of the store: `refs/packets/NAME/N` → the record id the key holds (its
/// text, newline included). On S3 listed and read through the backend's named keys; in a local
/// store read from its folder.
fn claims(place: &Where, store: &str) -> BTreeMap<(String, u64), String> {
    let mut out = BTreeMap::new();
    match place {
        Where::S3 => {
            use evstore::store::{KeyRead, ListedName, NamedKeys};
            let keys = crate::s3_store::backend(store);
            for name in keys.list_names("refs/packets/").expect("list claims") {
                let ListedName::Name(name) = name else {
                    panic!("a claim name that is not UTF-8: {name:?}");
                };
                let versions = keys
                    .list_names(&format!("refs/packets/{name}/"))
                    .expect("list versions");
                for version in versions {
                    let ListedName::Name(version) = version else {
                        panic!("refs/packets/{name}/: a key that is not UTF-8: {version:?}");
                    };
                    let key = format!("refs/packets/{name}/{version}");
                    let bytes = match keys.read_key(&key, 1000).expect("read claim") {
                        KeyRead::Found(bytes) => bytes,
                        other => panic!("{key}: listed but reads as {other:?}"),
                    };
                    let n: u64 = version
                        .parse()
                        .unwrap_or_else(|_| panic!("{key}: not a version number"));
                    out.insert((name.clone(), n), String::from_utf8_lossy(&bytes).into());
                }
            }
        }
        Where::Local => {
            let root = Path::new(store).join("refs/packets");
            for name in std::fs::read_dir(&root).into_iter().flatten() {
                let name = name.expect("read refs/packets");
                for version in std::fs::read_dir(name.path()).expect("read a claim folder") {
                    let version = version.expect("read a claim folder");
                    let n: u64 = version
                        .file_name()
                        .to_string_lossy()
                        .parse()
                        .unwrap_or_else(|_| panic!("{}: not a version", version.path().display()));
                    let bytes = std::fs::read(version.path()).expect("read a claim");
                    out.insert(
                        (name.file_name().to_string_lossy().into_owned(), n),
                        String::from_utf8_lossy(&bytes).into(),
                    );
                }
            }
        }
    }
    out
}

/// True for the rounds of the crash test whose packet has a 20 MiB file (every fourth).
fn has_large_file(round: u64) -> bool {
    round % 4 == 0
}

/// The packet of crash round `round`: 30 small files and, every fourth round, a 20 MiB file
/// (over the S3 backend's multipart threshold of 16 MiB), all new.
fn write_crash_packet(sb: &Sandbox, round: u64) -> PathBuf {
    let rel = format!("crash/r{round}");
    for f in 0..30u64 {
        let len = 500 + ((round * 31 + f * 97) % 4000) as usize;
        sb.write(
            &format!("{rel}/d{}/f{f}.txt", f % 4),
            random_bytes(len, 10_000 * (round + 1) + f),
        );
    }
    if has_large_file(round) {
        sb.write(
            &format!("{rel}/large.bin"),
            random_bytes(20 * 1024 * 1024, 7_000_000 + round),
        );
    }
    sb.path(&rel)
}

fn crash_and_retry(place: Where, default_rounds: u64) {
    let seed = crash_seed();
    let rounds = crash_rounds(default_rounds);
    eprintln!("crash and retry: seed {seed} ($EVSTORE_CRASH_SEED replays it), {rounds} rounds");
    // The kill delays: eight bytes of the seed's stream per round.
    let draws = random_bytes(8 * rounds as usize, seed);
    let draw = |round: u64| {
        let at = 8 * round as usize;
        draws[at..at + 8]
            .iter()
            .fold(0u64, |n, byte| (n << 8) | u64::from(*byte))
    };
    let sb = Sandbox::new();
    let store = new_store(&sb, &place, "crash");
    let writer = Machine::new(&sb, &store, "writer");
    let out = writer.run(&["init"]);
    assert_eq!(code(&out), 0, "init: {}", stderr(&out));

    // How long one whole ingest takes here, of a packet with the large file and of one without:
    // each round's kill delay spreads from 0 to a little past the time of its kind.
    let mut whole_ms = [0u64; 2];
    for (large, warm_round) in [(true, 1_000_000), (false, 1_000_001)] {
        let warm = write_crash_packet(&sb, warm_round);
        let started = Instant::now();
        let (rc, report) = writer.json(&[
            "ingest",
            "--name",
            &format!("warm-up-{warm_round}"),
            warm.to_str().unwrap(),
        ]);
        assert_eq!(rc, 0, "{report}");
        whole_ms[usize::from(large)] = started.elapsed().as_millis() as u64;
    }
    let max_delay_ms = whole_ms.map(|ms| ms * 5 / 4 + 20);

    let test_started = Instant::now();
    let mut checked: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut finished_before_kill = 0;
    let mut delays = Vec::new();
    for round in 0..rounds {
        let context = format!("seed {seed}, round {round}");
        let dir = write_crash_packet(&sb, round);
        let name = format!("crash-{}", round % 3);
        let expected = tree_sha256_of(&sb, &dir);
        let delay = draw(round) % (max_delay_ms[usize::from(has_large_file(round))] + 1);
        delays.push(delay);
        let mut child = writer
            .command()
            .args(["ingest", "--name", &name])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn evstore ingest");
        std::thread::sleep(Duration::from_millis(delay));
        // SIGKILL: no handler runs, nothing is cleaned up.
        let _ = child.kill();
        let status = child.wait().expect("wait for the killed ingest");
        if status.code().is_some() {
            assert_eq!(status.code(), Some(0), "{context}: the ingest failed");
            finished_before_kill += 1;
        }

        // The store as the kill left it: sound from a machine that never saw it, and from the
        // writer's own cache.
        let fresh = Machine::new(&sb, &store, &format!("fresh-{round}"));
        assert_fsck_passes(&fresh, &context);
        assert_fsck_passes(&writer, &context);

        // Every version claim names a record whose whole packet reads back; each new claim is
        // shown and exported.
        let packets = listing(&writer);
        for ((claim_name, version), content) in claims(&place, &store) {
            let label = format!("{claim_name}@{version}");
            let listed = packets
                .iter()
                .find(|p| p["packet"] == label.as_str())
                .unwrap_or_else(|| panic!("{context}: the claim of {label} is not listed"));
            assert_eq!(
                content,
                format!("{}\n", text(listed, "record")),
                "{context}: refs/packets/{claim_name}/{version} holds another record than ls"
            );
            if !checked.insert((claim_name, version)) {
                continue;
            }
            let (rc, shown) = fresh.json(&["show", &label]);
            assert_eq!(rc, 0, "{context}: show {label}: {shown}");
            assert_eq!(shown["record"], listed["record"], "{context}: show {label}");
            let out_dir = sb.path(&format!("exported/{round}-{label}"));
            let out = fresh.run(&["export", &label, out_dir.to_str().unwrap()]);
            assert_eq!(code(&out), 0, "{context}: export {label}: {}", stderr(&out));
            assert_eq!(
                tree_sha256_of(&sb, &out_dir),
                text(listed, "packet_tree_sha256"),
                "{context}: export {label}"
            );
            std::fs::remove_dir_all(&out_dir).expect("remove the exported copy");
        }
        assert!(
            listing(&fresh) == packets,
            "{context}: the machines list different packets"
        );
        assert!(
            events(&fresh) == events(&writer),
            "{context}: the machines read different logs"
        );
        assert_sound(&packets, &events(&writer), &context);

        // The same ingest again succeeds, with the folder's tree.
        let (rc, again) = writer.json(&["ingest", "--name", &name, dir.to_str().unwrap()]);
        assert_eq!(rc, 0, "{context}: the ingest run again: {again}");
        assert_eq!(text(&again, "packet_tree_sha256"), expected, "{context}");
        std::fs::remove_dir_all(&dir).expect("remove the round's packet");
    }

    // The end state, from a machine that never saw the store.
    let last = Machine::new(&sb, &store, "last");
    let packets = listing(&last);
    assert!(
        packets == listing(&writer),
        "seed {seed}: the machines list different packets"
    );
    let log = events(&last);
    assert!(
        log == events(&writer),
        "seed {seed}: the machines read different logs"
    );
    assert_sound(&packets, &log, &format!("seed {seed}, at the end"));
    assert_fsck_passes(&last, &format!("seed {seed}, at the end"));
    assert_eq!(
        packets.len() as u64,
        rounds + 2,
        "seed {seed}: one packet per round and the two warm-ups"
    );
    eprintln!(
        "crash and retry: {rounds} rounds in {:.1} s; one whole ingest {} ms with the 20 MiB file, \
         {} ms without; kill delays up to {max_delay_ms:?} ms (without, with it): {delays:?}; \
         {finished_before_kill} ingests finished before the kill",
        test_started.elapsed().as_secs_f64(),
        whole_ms[1],
        whole_ms[0]
    );
    assert!(
        finished_before_kill < rounds,
        "seed {seed}: no round killed an ingest"
    );
}

#[test]
fn crash_and_retry_ingests_killed_at_random_moments_leave_an_s3_store_sound() {
    crash_and_retry(Where::S3, 20);
}

#[test]
fn crash_and_retry_ingests_killed_at_random_moments_leave_a_local_store_sound() {
    crash_and_retry(Where::Local, 20);
}

/// A second catalog of the local store in `sb` ("machine B"), attached to the store's log and
/// holding nothing yet.
fn machine_b_catalog(sb: &Sandbox, store: &evstore::store::Store) -> evstore::catalog::Catalog {
    let mut catalog =
        evstore::catalog::Catalog::open(&sb.path("machine-b.sqlite")).expect("machine B's catalog");
    catalog.attach_log(evstore::store::log::SharedLog::of(store));
    catalog
}

/// What a catch-up in these tests reads back: packets (no runs or mirrors are made here).
struct PacketsOnly<'a>(&'a evstore::store::Store);

impl evstore::catalog::FindInStore for PacketsOnly<'_> {
    fn packet(
        &mut self,
        record: &evstore::digest::Blake3Digest,
    ) -> Option<evstore::catalog::FoundPacket> {
        found_packet(self.0, record)
    }

    fn run(
        &mut self,
        _attestation: &evstore::digest::Blake3Digest,
    ) -> Option<evstore::catalog::FoundRun> {
        None
    }

    fn mirror_list(
        &mut self,
        _id: &evstore::digest::Blake3Digest,
    ) -> Option<evstore::catalog::MirrorList> {
        None
    }
}

/// What a catch-up reads back for a version claim: the record and its files (no object rows).
fn found_packet(
    store: &evstore::store::Store,
    id: &evstore::digest::Blake3Digest,
) -> Option<evstore::catalog::FoundPacket> {
    let (_, bytes) = store.read_small_object(id).ok()?;
    let record = evstore::format::record::PacketRecord::decode(&bytes).ok()?;
    let (files, _) = evstore::packet::walk_tree(store, &record.tree).ok()?;
    Some(evstore::catalog::FoundPacket {
        record_id: *id,
        record,
        files,
        objects: Vec::new(),
    })
}

/// Regression (many writers on S3; the log held 35 duplicate `ingest` events after 200 ingests
/// by four processes on two machines): machine B's catch-up listed the log when it held only
/// `init`, then the version claims of `q` and `p` before their writers had logged them; by the
/// time it appends their events, the writers have. Its append for `q` takes `p`'s event in, then
/// finds `q`'s own event (logged once, not again), and the claim of `p` is then named by a taken
/// event (indexed, no second event). Replayed on a local store folder: its own catalog is
/// machine A, a second catalog machine B.
#[test]
fn regression_a_catch_up_racing_the_writers_of_its_claims_logs_each_commit_once() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    for name in ["p", "q"] {
        let dir = write_keyed_packet(&sb, &format!("src/{name}"), name);
        let out = sb.run(&["ingest", "--name", name, dir.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let store = evstore::store::Store::open(&sb.store()).expect("open the store");
    let log = evstore::store::log::EventLog::of(&store);
    let entries = log.read_after(0).expect("read the log");
    assert_eq!(entries.len(), 3, "init, ingest p, ingest q");
    let refs = evstore::store::refs::Refs::unlocked(&store);
    let claim = |name: &str| refs.read_packet_claim(name, 1).expect("a claim");
    let (p, q) = (claim("p"), claim("q"));

    let mut b = machine_b_catalog(&sb, &store);
    let caught = b
        .catch_up(&entries[..1], &[q, p], &mut PacketsOnly(&store))
        .expect("catch up");
    assert_eq!(caught.packets, 2, "{caught:?}");
    let after = log.read_after(0).expect("read the log");
    let subjects: Vec<&str> = after.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects.len(), 3, "one event per commit: {subjects:?}");
    let b_hashes: Vec<String> = b
        .events()
        .expect("machine B's events")
        .into_iter()
        .map(|e| e.hash)
        .collect();
    let log_hashes: Vec<String> = after.iter().map(|e| e.hash.clone()).collect();
    assert_eq!(b_hashes, log_hashes, "machine B holds the log");
    assert_eq!(b.packets().expect("machine B's packets").len(), 2);
}

/// Regression (many writers on S3; after 200 ingests by four processes on two machines, two
/// names each had one tree at versions 1 and 2): machine B caught up before another machine
/// committed `x` with this tree, then ingests the same tree as `x`. The claim `refs/packets/x/1`
/// is above what its catalog holds, so it catches up before numbering and reports `x@1` as
/// already archived, instead of claiming `x@2` for the same tree. Replayed on a local store
/// folder (its own catalog machine A, a second catalog machine B).
#[test]
fn regression_a_tree_another_machine_claimed_meanwhile_is_already_archived_not_a_new_version() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    let store = evstore::store::Store::open(&sb.store()).expect("open the store");
    let mut b = machine_b_catalog(&sb, &store);
    evstore::ops::markers::catch_up(&store, &mut b).expect("machine B catches up");

    let dir = write_keyed_packet(&sb, "src/x", "x");
    let out = sb.run(&["--json", "ingest", "--name", "x", dir.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let by_a: Value = serde_json::from_slice(&out.stdout).expect("ingest --json");

    let config = evstore::ops::ingest::IngestConfig {
        name: "x".into(),
        note: None,
        source_date_epoch: None,
        progress: evstore::progress::Progress::silent(),
    };
    let report = evstore::ops::ingest::ingest(&store, &mut b, &dir, &config)
        .expect("machine B's ingest")
        .archived()
        .expect("archived");
    assert!(!report.created, "a second version of one tree: {report:?}");
    assert_eq!(report.packet.record.version, 1);
    assert_eq!(report.packet.record_id.to_hex(), text(&by_a, "record"));
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{fsck}");
    assert_eq!(listing_of(&sb).len(), 1);
}

/// `ls --json` of the sandbox's store.
fn listing_of(sb: &Sandbox) -> Vec<Value> {
    let (rc, list) = sb.json(&["ls"]);
    assert_eq!(rc, 0, "{list}");
    list["packets"].as_array().cloned().unwrap_or_default()
}

/// Regression (review of issue 14): an append that finds another machine's `rerun` event at its
/// log number takes the event in without its `runs` row; the next catch-up indexes the row from
/// the attestation, though the log has nothing new. Replayed on a local store folder: its own
/// catalog is machine A, a second catalog machine B.
#[test]
fn regression_a_rerun_event_taken_in_by_an_append_gets_its_run_row_at_the_next_catch_up() {
    let sb = Sandbox::new();
    let example = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/example-packet"));
    assert_eq!(code(&sb.run(&["init"])), 0);
    let out = sb.run(&["ingest", example.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let store = evstore::store::Store::open(&sb.store()).expect("open the store");
    let mut b = machine_b_catalog(&sb, &store);
    evstore::ops::markers::catch_up(&store, &mut b).expect("machine B catches up");
    // Machine A reruns: its event takes the log's next number.
    let script = example.join("rerun.sh");
    let out = sb.run(&[
        "rerun",
        "example-packet",
        "--",
        "bash",
        script.to_str().unwrap(),
        "{out}",
    ]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    // Machine B appends an event of its own: its append meets A's `rerun` event first.
    b.log_event(&evstore::catalog::NewEvent::init(&sb.store(), "machine-b"))
        .expect("machine B appends");
    let kinds: Vec<String> = b.events().unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["init", "ingest", "rerun", "init"]);
    assert!(
        b.runs(None).unwrap().is_empty(),
        "the taken event came without its row"
    );
    let caught = evstore::ops::markers::catch_up(&store, &mut b).expect("catch up");
    assert_eq!(caught.runs, 1, "{caught:?}");
    assert_eq!(b.runs(None).unwrap().len(), 1);
    // Nothing is left to index: the next catch-up does nothing.
    assert!(!b.has_events_without_their_rows().unwrap());
}

/// Regression (review of issue 14: one tree got two versions of one name when twelve processes
/// on two machines ingested six trees under it at once): machine B holds its own `same@2` and,
/// taken in by the append of that version's event, machine A's `ingest` event of `same@1`
/// without its rows. Its next ingest of `same@1`'s tree must find that version (the claim of
/// `same@1` is one its catalog holds no rows of, so it catches up before numbering), not claim
/// `same@3` past a version whose tree it never compared. Replayed on a local store folder: its
/// own catalog is machine A, a second catalog machine B.
#[test]
fn regression_a_logged_version_without_rows_is_compared_before_a_new_version_is_claimed() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    let store = evstore::store::Store::open(&sb.store()).expect("open the store");
    let log = evstore::store::log::EventLog::of(&store);
    let init_only = log.read_after(0).expect("read the log");
    let x = write_keyed_packet(&sb, "src/x", "x");
    let y = write_keyed_packet(&sb, "src/y", "y");
    for dir in [&x, &y] {
        let out = sb.run(&["ingest", "--name", "same", dir.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let refs = evstore::store::refs::Refs::unlocked(&store);
    let claim_of_2 = refs
        .read_packet_claim("same", 2)
        .expect("the claim of same@2");

    // Machine B: only `init`, then the rows of same@2, whose event its append finds in the log
    // after same@1's, which it takes in without rows.
    let mut b = machine_b_catalog(&sb, &store);
    b.catch_up(&init_only, &[claim_of_2], &mut PacketsOnly(&store))
        .expect("machine B takes in same@2");
    let held: Vec<u64> = b
        .packets()
        .expect("machine B's packets")
        .iter()
        .map(|p| p.record.version)
        .collect();
    assert_eq!(held, [2], "the event of same@1 came without its rows");
    assert_eq!(b.events().expect("machine B's events").len(), 3);

    let config = evstore::ops::ingest::IngestConfig {
        name: "same".into(),
        note: None,
        source_date_epoch: None,
        progress: evstore::progress::Progress::silent(),
    };
    let report = evstore::ops::ingest::ingest(&store, &mut b, &x, &config)
        .expect("machine B's ingest")
        .archived()
        .expect("archived");
    assert!(!report.created, "a second version of one tree: {report:?}");
    assert_eq!(report.packet.record.version, 1);
    assert_eq!(listing_of(&sb).len(), 2);
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{fsck}");
}

/// The catalog's side of the regression above, for an event that comes in after the ingest's
/// check of the claims (another process's append on the same catalog): `add_packet` of a tree an
/// `ingest` event without rows names under the name records nothing and says which version to
/// catch up on; asked again with that version looked up (a packet lost or forgotten), it numbers
/// past every logged version.
#[test]
fn add_packet_stops_at_a_logged_version_of_its_tree_without_rows() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    let store = evstore::store::Store::open(&sb.store()).expect("open the store");
    let init_only = evstore::store::log::EventLog::of(&store)
        .read_after(0)
        .expect("read the log");
    for key in ["x", "y"] {
        let dir = write_keyed_packet(&sb, &format!("src/{key}"), key);
        let out = sb.run(&["ingest", "--name", "same", dir.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let refs = evstore::store::refs::Refs::unlocked(&store);
    let claim = |version| refs.read_packet_claim("same", version).expect("a claim");
    let mut b = machine_b_catalog(&sb, &store);
    b.catch_up(&init_only, &[claim(2)], &mut PacketsOnly(&store))
        .expect("machine B takes in same@2");
    let x = found_packet(&store, &claim(1)).expect("same@1");

    let mut config = evstore::catalog::NewVersionConfig {
        version_floor: 2,
        logged_versions_looked_up: BTreeSet::new(),
    };
    let mut offered = Vec::new();
    let mut add = |b: &mut evstore::catalog::Catalog,
                   config: &evstore::catalog::NewVersionConfig| {
        b.add_packet("same", &x.record.tree, &x.files, &[], config, |v| {
            offered.push(v.number);
            Err(evstore::Error::Usage(
                "nothing is recorded in this test".into(),
            ))
        })
    };
    match add(&mut b, &config) {
        Ok(evstore::catalog::AddOutcome::LoggedWithoutRows { version }) => assert_eq!(version, 1),
        other => panic!("expected LoggedWithoutRows for same@1, got {other:?}"),
    }
    config.logged_versions_looked_up.insert(1);
    assert!(add(&mut b, &config).is_err(), "the closure's error");
    assert_eq!(offered, [3], "numbered past every logged version, once");
    assert_eq!(b.packets().expect("machine B's packets").len(), 1);
}

/// A local store's backend, with one thing done at the first listing of one prefix: after the
/// listing is read and before it is returned, as another writer acting in that instant would.
struct ActsAfterListing {
    inner: std::sync::Arc<dyn evstore::store::ObjectBackend>,
    prefix: &'static str,
    act: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl evstore::store::NamedKeys for ActsAfterListing {
    fn create_key_if_absent(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> evstore::Result<evstore::store::KeyCreated> {
        self.inner.create_key_if_absent(key, bytes)
    }
    fn read_key(&self, key: &str, max_len: u64) -> evstore::Result<evstore::store::KeyRead> {
        self.inner.read_key(key, max_len)
    }
    fn list_names(&self, prefix: &str) -> evstore::Result<Vec<evstore::store::ListedName>> {
        let listed = self.inner.list_names(prefix)?;
        if prefix == self.prefix {
            let act = self.act.lock().expect("the act's lock").take();
            if let Some(act) = act {
                act();
            }
        }
        Ok(listed)
    }
    fn list_names_after(
        &self,
        prefix: &str,
        after: &str,
    ) -> evstore::Result<Vec<evstore::store::ListedName>> {
        self.inner.list_names_after(prefix, after)
    }
    fn list_keys_below(&self, prefix: &str) -> evstore::Result<Vec<String>> {
        self.inner.list_keys_below(prefix)
    }
    fn key_space_exists(&self, prefix: &str) -> evstore::Result<bool> {
        self.inner.key_space_exists(prefix)
    }
    fn create_key_space(&self, prefix: &str, keys: &[(String, Vec<u8>)]) -> evstore::Result<bool> {
        self.inner.create_key_space(prefix, keys)
    }
}

impl evstore::store::ObjectBackend for ActsAfterListing {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn exists(&self, id: &evstore::digest::Blake3Digest) -> evstore::Result<bool> {
        self.inner.exists(id)
    }
    fn exists_is_cheap(&self) -> bool {
        self.inner.exists_is_cheap()
    }
    fn find_missing(
        &self,
        ids: &[evstore::digest::Blake3Digest],
    ) -> evstore::Result<Vec<evstore::digest::Blake3Digest>> {
        self.inner.find_missing(ids)
    }
    fn pack_min_objects(&self) -> usize {
        self.inner.pack_min_objects()
    }
    fn open(
        &self,
        id: &evstore::digest::Blake3Digest,
    ) -> evstore::Result<Option<Box<dyn std::io::Read + Send>>> {
        self.inner.open(id)
    }
    fn open_at(
        &self,
        location: &evstore::store::ObjectLocation,
    ) -> evstore::Result<Box<dyn std::io::Read + Send>> {
        self.inner.open_at(location)
    }
    fn stat(&self, id: &evstore::digest::Blake3Digest) -> evstore::Result<Option<u64>> {
        self.inner.stat(id)
    }
    fn list(&self) -> evstore::Result<Vec<evstore::store::ListedObject>> {
        self.inner.list()
    }
    fn put_if_absent(
        &self,
        puts: Vec<evstore::store::Put>,
    ) -> evstore::Result<Vec<evstore::store::Published>> {
        self.inner.put_if_absent(puts)
    }
}

/// Publish a record of `packet`'s tree as `name@version` in `store`: its object, then its
/// version claim. The record's id.
fn claim_as(
    store: &evstore::store::Store,
    packet: &evstore::catalog::FoundPacket,
    name: &str,
    version: u64,
) -> (
    evstore::digest::Blake3Digest,
    evstore::format::record::PacketRecord,
) {
    let record = evstore::format::record::PacketRecord {
        name: name.into(),
        version,
        ..packet.record.clone()
    };
    let encoded = record.encode();
    let id = evstore::digest::blake3_of(&encoded);
    let batch = store.batch().expect("a batch");
    batch
        .add_bytes(id, evstore::format::object::ObjectKind::Record, &encoded)
        .expect("add the record");
    batch.commit().expect("publish the record");
    let claimed = evstore::store::refs::Refs::unlocked(store)
        .claim_packet(name, version, &id)
        .expect("claim the version");
    assert_eq!(claimed, None, "{name}@{version} was free");
    (id, record)
}

/// Regression (CI, S3, `one_name_many_trees_*_on_s3` round 3 gave one tree versions 5 and 7):
/// machine B lists the claims of `same` when only `same@1` is claimed. Then, before it numbers,
/// machine A claims `same@2` for tree T and has not logged it yet (between its claim and its
/// event), and another process on machine B commits tree U as `same@3` in B's catalog. B then
/// ingests T: its catalog knows versions 1 and 3, so it is offered 4, and version 2 is one it
/// cannot account for. It must read that claim, find T there, and report `same@2` as already
/// archived instead of claiming `same@4` for T. Replayed on a local store folder (its own
/// catalog machine A, a second catalog machine B).
#[test]
fn regression_a_tree_claimed_in_flight_below_the_offered_version_is_not_given_a_second_one() {
    let sb = Sandbox::new();
    assert_eq!(code(&sb.run(&["init"])), 0);
    let x = write_keyed_packet(&sb, "src/x", "x");
    let t = write_keyed_packet(&sb, "src/t", "t");
    let u = write_keyed_packet(&sb, "src/u", "u");
    for (dir, name) in [(&x, "same"), (&t, "t-elsewhere"), (&u, "u-elsewhere")] {
        let out = sb.run(&["ingest", "--name", name, dir.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let plain = evstore::store::Store::open(&sb.store()).expect("open the store");
    let refs = evstore::store::refs::Refs::unlocked(&plain);
    let claimed = |name: &str| {
        let id = refs.read_packet_claim(name, 1).expect("a claim");
        found_packet(&plain, &id).expect("its packet")
    };
    let (t_packet, u_packet) = (claimed("t-elsewhere"), claimed("u-elsewhere"));
    let mut b = machine_b_catalog(&sb, &plain);
    evstore::ops::markers::catch_up(&plain, &mut b).expect("machine B catches up");

    let store_root = sb.store();
    let b_catalog = sb.path("machine-b.sqlite");
    let in_flight = std::sync::Arc::new(std::sync::Mutex::new(None));
    let in_flight_record = std::sync::Arc::clone(&in_flight);
    let act = move || {
        let store = evstore::store::Store::open(&store_root).expect("open the store");
        // Another process on machine B: it numbered past version 2 (its floor), commits U as
        // same@3 in B's catalog, and logs it.
        let mut b2 = evstore::catalog::Catalog::open(&b_catalog).expect("B's catalog again");
        b2.attach_log(evstore::store::log::SharedLog::of(&store));
        let config = evstore::catalog::NewVersionConfig {
            version_floor: 2,
            logged_versions_looked_up: BTreeSet::new(),
        };
        let added = b2.add_packet(
            "same",
            &u_packet.record.tree,
            &u_packet.files,
            &[],
            &config,
            |offered| Ok(claim_as(&store, &u_packet, "same", offered.number)),
        );
        assert!(
            matches!(added, Ok(evstore::catalog::AddOutcome::Added(ref row)) if row.record.version == 3),
            "U as same@3: {added:?}"
        );
        // Machine A, in flight: T claimed as same@2, not logged yet.
        *in_flight_record.lock().expect("lock") = Some(claim_as(&store, &t_packet, "same", 2).0);
    };
    let hooked = evstore::store::Store::with_backend(
        &sb.store(),
        Box::new(ActsAfterListing {
            inner: plain.shared_backend(),
            prefix: "refs/packets/same/",
            act: std::sync::Mutex::new(Some(Box::new(act))),
        }),
    );
    let config = evstore::ops::ingest::IngestConfig {
        name: "same".into(),
        note: None,
        source_date_epoch: None,
        progress: evstore::progress::Progress::silent(),
    };
    let report = evstore::ops::ingest::ingest(&hooked, &mut b, &t, &config)
        .expect("machine B's ingest")
        .archived()
        .expect("archived");
    let in_flight = in_flight
        .lock()
        .expect("lock")
        .expect("machine A's claim was made");
    assert!(!report.created, "a second version of one tree: {report:?}");
    assert_eq!(report.packet.record.version, 2);
    assert_eq!(report.packet.record_id, in_flight);
    let versions: BTreeSet<u64> = b
        .packets()
        .expect("machine B's packets")
        .into_iter()
        .filter(|p| p.record.name == "same")
        .map(|p| p.record.version)
        .collect();
    assert_eq!(versions, BTreeSet::from([1, 2, 3]));
    let (rc, fsck) = sb.json(&["fsck"]);
    assert_eq!(rc, 0, "{fsck}");
}
