//! The event log's format: each event kind with the detail JSON it carries, and the hash that
//! chains events, so the chain can be recomputed from this description alone. See
//! `docs/FORMAT.md` §7d.
//!
//! An event is `seq`, `time_unix_nanos`, `kind`, `subject`, `detail` (compact JSON, the keys of
//! every object sorted by their bytes), `prev_hash` and `hash`, where
//!
//! ```text
//! hash = SHA-256("evstore-event-1\t{seq}\t{time_unix_nanos}\t{kind}\t{subject}\t{prev_hash}\t{detail}\n")
//! ```
//!
//! and `prev_hash` is the previous event's `hash` ([`GENESIS_HASH`] for event 1). The catalog
//! numbers, times, stores and chains events (`catalog::events`); what an event says is built here,
//! by one typed constructor per kind.
//!
//! **Architecture Invariant:** every event is built by a constructor of [`NewEvent`] in this
//! module, so one place fixes the bytes an event's hash covers; no other module spells an event's
//! detail keys when it builds one.

use std::path::Path;

use serde_json::json;

use crate::digest::{sha256_of, Blake3Digest, Sha256Digest};
use crate::format::attestation::{RecordedVerdict, RunSummary};
use crate::format::record::PacketRecord;

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A store was created.
    Init,
    /// A packet version was committed.
    Ingest,
    /// The catalog was rebuilt from the objects.
    Reindex,
    /// A packet was published into (or found in) a KB.
    Mirror,
    /// A KB was verified.
    KbVerify,
    /// A rerun was attested.
    Rerun,
    /// A lost packet or attestation was acknowledged.
    Forget,
    /// A forgotten item was indexed again.
    Restore,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 8] = [
        EventKind::Init,
        EventKind::Ingest,
        EventKind::Reindex,
        EventKind::Mirror,
        EventKind::KbVerify,
        EventKind::Rerun,
        EventKind::Forget,
        EventKind::Restore,
    ];

    /// The kind as the log stores it.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Init => "init",
            EventKind::Ingest => "ingest",
            EventKind::Reindex => "reindex",
            EventKind::Mirror => "mirror",
            EventKind::KbVerify => "kb-verify",
            EventKind::Rerun => "rerun",
            EventKind::Forget => "forget",
            EventKind::Restore => "restore",
        }
    }

    /// The kind a stored name stands for, if any.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// An event to append: its kind, subject and detail bytes, fixed when it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    kind: EventKind,
    subject: String,
    detail: String,
}

/// What a `reindex` event counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReindexCounts {
    /// Packets indexed.
    pub packets: u64,
    /// Runs indexed.
    pub runs: u64,
    /// Objects indexed.
    pub objects: u64,
    /// Objects skipped as corrupt.
    pub skipped: u64,
    /// Committed items the rebuilt catalog does not hold.
    pub lost: u64,
    /// Events carried over from the replaced catalog.
    pub carried_events: u64,
}

/// How a `mirror` event's packet was published (absent when the mirror only noted a folder).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorPublication<'a> {
    /// The dedup mode (`copy`, `hardlink`, `reference`).
    pub dedup: &'a str,
    /// Files written as copies.
    pub copied: u64,
    /// Files hard-linked.
    pub hardlinked: u64,
    /// Files referenced.
    pub referenced: u64,
    /// The mirror list object (`format::mirror_list`) recording every file, from which the
    /// store alone rebuilds the mirror's catalog rows; `None` only for events written before
    /// mirror lists existed (the detail then has no `mirror_list` key).
    pub mirror_list: Option<&'a Blake3Digest>,
}

/// What a `kb-verify` event says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KbVerifyOutcome {
    /// `PASS` or `FAIL`.
    pub verdict: RecordedVerdict,
    /// Packet folders checked.
    pub packets_checked: u64,
    /// Packet folders that failed.
    pub packets_failed: u64,
    /// The failed folders, KB-relative.
    pub failed: Vec<String>,
}

/// What a `forget` event acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForgetDetail<'a> {
    /// `packet` or `attestation`.
    pub item_kind: &'a str,
    /// The record or attestation id, 64 lowercase hex digits.
    pub id: &'a str,
    /// The event that committed the item, if the log has it.
    pub committed_by_event: Option<i64>,
    /// Why it is lost, as the user said.
    pub reason: &'a str,
}

impl NewEvent {
    /// An event of `kind` about `subject` (a tab or newline in it becomes a space: the hashed
    /// text is tab-separated) with `detail` as compact JSON with sorted keys.
    fn new(kind: EventKind, subject: &str, detail: serde_json::Value) -> NewEvent {
        NewEvent {
            kind,
            subject: subject.replace(['\t', '\n'], " "),
            detail: detail.to_string(),
        }
    }

    /// `init`: the store at `store` was created by `tool_version`.
    pub fn init(store: &Path, tool_version: &str) -> NewEvent {
        NewEvent::new(
            EventKind::Init,
            &store.display().to_string(),
            json!({ "tool_version": tool_version }),
        )
    }

    /// `ingest`: the record `record_id` (of `NAME@N`) was committed.
    pub fn ingest(record_id: &Blake3Digest, record: &PacketRecord) -> NewEvent {
        NewEvent::new(
            EventKind::Ingest,
            &format!("{}@{}", record.name, record.version),
            json!({
                "packet_tree_sha256": record.packet_tree_sha256.to_hex(),
                "tree": record.tree.to_hex(),
                "record": record_id.to_hex(),
                "files": record.file_count,
                "bytes": record.total_bytes,
            }),
        )
    }

    /// `reindex`: the catalog of the store at `store` was rebuilt.
    pub fn reindex(store: &Path, counts: &ReindexCounts) -> NewEvent {
        NewEvent::new(
            EventKind::Reindex,
            &store.display().to_string(),
            json!({
                "packets": counts.packets,
                "runs": counts.runs,
                "objects": counts.objects,
                "skipped": counts.skipped,
                "lost": counts.lost,
                "carried_events": counts.carried_events,
            }),
        )
    }

    /// `mirror`: the packet `packet` (`NAME@N`) at `kb_folder` (the canonical KB path, `/`, the
    /// folder's KB-relative path) was `action` (`published`, `republished`, `unchanged`); with
    /// how its files were written when the mirror recorded them.
    pub fn mirror(
        kb_folder: &str,
        packet: &str,
        packet_tree_sha256: &Sha256Digest,
        action: &str,
        publication: Option<&MirrorPublication<'_>>,
    ) -> NewEvent {
        let detail = match publication {
            Some(p) => {
                let mut detail = json!({
                    "packet": packet,
                    "packet_tree_sha256": packet_tree_sha256,
                    "action": action,
                    "dedup": p.dedup,
                    "copied": p.copied,
                    "hardlinked": p.hardlinked,
                    "referenced": p.referenced,
                });
                if let (Some(id), Some(map)) = (p.mirror_list, detail.as_object_mut()) {
                    map.insert("mirror_list".into(), json!(id.to_hex()));
                }
                detail
            }
            None => json!({
                "packet": packet,
                "packet_tree_sha256": packet_tree_sha256,
                "action": action,
            }),
        };
        NewEvent::new(EventKind::Mirror, kb_folder, detail)
    }

    /// `kb-verify`: the KB at `kb` was verified.
    pub fn kb_verify(kb: &Path, outcome: &KbVerifyOutcome) -> NewEvent {
        NewEvent::new(
            EventKind::KbVerify,
            &kb.display().to_string(),
            json!({
                "verdict": outcome.verdict.name(),
                "packets_checked": outcome.packets_checked,
                "packets_failed": outcome.packets_failed,
                "failed": outcome.failed,
            }),
        )
    }

    /// `rerun`: the attestation `attestation` was committed; `subject` is the packet rerun
    /// (`NAME@N`) or, without one, the expected packet_tree_sha256.
    pub fn rerun(
        subject: &str,
        verdict: RecordedVerdict,
        attestation: &Blake3Digest,
        expected_sha256: &Sha256Digest,
        summary: &RunSummary,
    ) -> NewEvent {
        NewEvent::new(
            EventKind::Rerun,
            subject,
            json!({
                "verdict": verdict.name(),
                "attestation": attestation,
                "expected_sha256": expected_sha256,
                "summary": summary.to_json(),
            }),
        )
    }

    /// `forget`: the lost item `label` (`NAME@N`, or for an attestation the packet or expected
    /// hash it was of) is acknowledged as lost.
    pub fn forget(label: &str, detail: &ForgetDetail<'_>) -> NewEvent {
        NewEvent::new(
            EventKind::Forget,
            label,
            json!({
                "kind": detail.item_kind,
                "id": detail.id,
                "committed_by_event": detail.committed_by_event,
                "reason": detail.reason,
            }),
        )
    }

    /// `restore`: the forgotten `item_kind` (`packet`, `attestation`) `id`, labelled `label`,
    /// was indexed again.
    pub fn restore(label: &str, item_kind: &str, id: &Blake3Digest) -> NewEvent {
        NewEvent::new(
            EventKind::Restore,
            label,
            json!({ "kind": item_kind, "id": id.to_hex() }),
        )
    }

    /// What happened.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// What it happened to (no tab or newline).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The detail: compact JSON with sorted keys.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// This event's hash once it is event `seq`, at `time_unix_nanos`, after `prev_hash`.
    pub fn hash(&self, seq: i64, time_unix_nanos: i64, prev_hash: &str) -> Sha256Digest {
        event_hash(
            seq,
            time_unix_nanos,
            self.kind.name(),
            &self.subject,
            prev_hash,
            &self.detail,
        )
    }
}

/// The object a stored event is about, as the commitments of the log are read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamedObject {
    /// An `ingest` event's `record`: the record object it committed.
    Record(Blake3Digest),
    /// A `rerun` event's `attestation`: the attestation object it committed.
    Attestation(Blake3Digest),
    /// A `forget` event's `id`: the record or attestation acknowledged as lost.
    Forgotten(Blake3Digest),
    /// A `restore` event's `id`: the forgotten record or attestation indexed again.
    Restored(Blake3Digest),
    /// A `mirror` event's `mirror_list`: the mirror list object recording the mirror's files.
    MirrorList(Blake3Digest),
}

/// What object a stored event of `kind` with `detail` names, if it names one: `None` for the
/// other kinds, and for a detail that is not JSON or lacks the id (a reader of the log takes
/// such an event as naming nothing; `fsck` checks every event's hash).
pub fn named_object(kind: &str, detail: &str) -> Option<NamedObject> {
    let (field, wrap): (&str, fn(Blake3Digest) -> NamedObject) = match EventKind::from_name(kind)? {
        EventKind::Ingest => ("record", NamedObject::Record),
        EventKind::Rerun => ("attestation", NamedObject::Attestation),
        EventKind::Forget => ("id", NamedObject::Forgotten),
        EventKind::Restore => ("id", NamedObject::Restored),
        EventKind::Mirror => ("mirror_list", NamedObject::MirrorList),
        _ => return None,
    };
    let detail: serde_json::Value = serde_json::from_str(detail).ok()?;
    let id = Blake3Digest::parse_hex(detail.get(field)?.as_str()?)?;
    Some(wrap(id))
}

/// Whether a stored event of `kind` with `detail` is a `mirror` event that recorded a mirror's
/// files (its detail has `dedup`) without naming a mirror list: written before mirror lists
/// existed, so the store alone cannot rebuild that mirror's catalog rows.
pub fn mirror_without_list(kind: &str, detail: &str) -> bool {
    if EventKind::from_name(kind) != Some(EventKind::Mirror) {
        return false;
    }
    serde_json::from_str::<serde_json::Value>(detail)
        .is_ok_and(|d| d.get("dedup").is_some() && d.get("mirror_list").is_none())
}

/// The hash of an event: SHA-256 of
/// `evstore-event-1\t{seq}\t{time_unix_nanos}\t{kind}\t{subject}\t{prev_hash}\t{detail}\n`.
pub fn event_hash(
    seq: i64,
    time_unix_nanos: i64,
    kind: &str,
    subject: &str,
    prev_hash: &str,
    detail: &str,
) -> Sha256Digest {
    let text = format!(
        "evstore-event-1\t{seq}\t{time_unix_nanos}\t{kind}\t{subject}\t{prev_hash}\t{detail}\n"
    );
    sha256_of(text.as_bytes())
}

/// The key prefix of the event log in a store (FORMAT.md §7d).
pub const LOG_PREFIX: &str = "log/";

/// The digits of a log key's sequence number: zero-padded, so keys list in sequence order.
pub const LOG_KEY_DIGITS: usize = 20;

/// The key `log/<seq, zero-padded to 20 digits>` of event `seq`.
pub fn log_key(seq: i64) -> String {
    format!("{LOG_PREFIX}{seq:0width$}", width = LOG_KEY_DIGITS)
}

/// The sequence number a log key's last component names, if it is exactly 20 decimal digits
/// naming a number from 1.
pub fn parse_log_key_name(name: &str) -> Option<i64> {
    if name.len() != LOG_KEY_DIGITS || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse::<i64>().ok().filter(|seq| *seq >= 1)
}

/// One stored event, as the `log/` key holds it and the catalog's `events` row holds it: every
/// field of the hash chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    /// Position in the log, from 1.
    pub seq: i64,
    /// When it happened (nanoseconds since the Unix epoch).
    pub time_unix_nanos: i64,
    /// The kind's name (`init`, `ingest`...).
    pub kind: String,
    /// What it happened to (no tab or newline).
    pub subject: String,
    /// Compact JSON (no tab or newline).
    pub detail: String,
    /// The previous event's hash (64 lowercase hex digits; [`GENESIS_HASH`] for event 1).
    pub prev_hash: String,
    /// This event's hash (64 lowercase hex digits): [`event_hash`] of the fields above.
    pub hash: String,
}

/// The largest log entry a reader accepts.
pub const MAX_LOG_ENTRY_BYTES: u64 = 1024 * 1024;

impl LogEntry {
    /// The entry's canonical bytes: the event's hashed text with its hash inserted before the
    /// final newline,
    /// `evstore-event-1\t{seq}\t{time}\t{kind}\t{subject}\t{prev_hash}\t{detail}\t{hash}\n`.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "evstore-event-1\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            self.seq,
            self.time_unix_nanos,
            self.kind,
            self.subject,
            self.prev_hash,
            self.detail,
            self.hash
        )
        .into_bytes()
    }

    /// Decode an entry strictly: UTF-8, one line ending in a newline, exactly eight
    /// tab-separated fields, the magic `evstore-event-1`, a known kind, a sequence number from 1,
    /// 64-lowercase-hex hashes, a detail that is JSON, the hash equal to the hash of the other
    /// fields, and bytes that re-encode to themselves (no leading zero, no `+`).
    ///
    /// # Errors
    ///
    /// A text saying what is wrong.
    pub fn decode(bytes: &[u8]) -> std::result::Result<LogEntry, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())?;
        let line = text
            .strip_suffix('\n')
            .filter(|line| !line.contains('\n'))
            .ok_or("is not one line ending in a newline")?;
        let fields: Vec<&str> = line.split('\t').collect();
        let [magic, seq, time, kind, subject, prev_hash, detail, hash] = fields[..] else {
            return Err(format!("has {} tab-separated fields, not 8", fields.len()));
        };
        if magic != "evstore-event-1" {
            return Err(format!("starts with {magic:?}, not \"evstore-event-1\""));
        }
        let seq: i64 = seq.parse().ok().filter(|s| *s >= 1).ok_or(format!(
            "has the sequence number {seq:?}, not a number from 1"
        ))?;
        let time_unix_nanos: i64 = time
            .parse()
            .map_err(|_| format!("has the time {time:?}, not a number"))?;
        if EventKind::from_name(kind).is_none() {
            return Err(format!(
                "has the kind {kind:?}, which evstore does not know"
            ));
        }
        for (what, value) in [("prev_hash", prev_hash), ("hash", hash)] {
            if Sha256Digest::parse_hex(value).is_none() {
                return Err(format!(
                    "its {what} {value:?} is not 64 lowercase hex digits"
                ));
            }
        }
        if serde_json::from_str::<serde_json::Value>(detail).is_err() {
            return Err("its detail is not JSON".into());
        }
        let entry = LogEntry {
            seq,
            time_unix_nanos,
            kind: kind.to_string(),
            subject: subject.to_string(),
            detail: detail.to_string(),
            prev_hash: prev_hash.to_string(),
            hash: hash.to_string(),
        };
        if entry.encode() != bytes {
            return Err(
                "is not in canonical form (a number with a leading zero or a sign?)".into(),
            );
        }
        let computed = event_hash(seq, time_unix_nanos, kind, subject, prev_hash, detail).to_hex();
        if computed != hash {
            return Err(format!(
                "holds the hash {hash}, but its fields hash to {computed}"
            ));
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The log of the store written by evstore 0.1 before the layout change
    /// (`tests/fixtures/store-0.1-before-layout`), as `evstore log --json` printed it.
    const FIXTURE_LOG: &str =
        include_str!("../../tests/fixtures/store-0.1-before-layout/expected-log.json");

    fn sha(hex: &Value) -> Sha256Digest {
        Sha256Digest::parse_hex(hex.as_str().unwrap()).unwrap()
    }

    fn blake3(hex: &Value) -> Blake3Digest {
        Blake3Digest::parse_hex(hex.as_str().unwrap()).unwrap()
    }

    fn verdict(text: &Value) -> RecordedVerdict {
        match text.as_str().unwrap() {
            "PASS" => RecordedVerdict::Pass,
            _ => RecordedVerdict::Fail,
        }
    }

    /// Rebuild an event of the fixture with the typed constructor of its kind, from the values
    /// its detail holds.
    fn rebuilt(event: &Value) -> NewEvent {
        let subject = event["subject"].as_str().unwrap();
        let detail: Value = serde_json::from_str(event["detail"].as_str().unwrap()).unwrap();
        match EventKind::from_name(event["kind"].as_str().unwrap()).unwrap() {
            EventKind::Init => {
                NewEvent::init(Path::new(subject), detail["tool_version"].as_str().unwrap())
            }
            EventKind::Ingest => {
                let (name, version) = subject.rsplit_once('@').unwrap();
                let record = PacketRecord {
                    name: name.into(),
                    version: version.parse().unwrap(),
                    packet_tree_sha256: sha(&detail["packet_tree_sha256"]),
                    tree: blake3(&detail["tree"]),
                    file_count: detail["files"].as_u64().unwrap(),
                    total_bytes: detail["bytes"].as_u64().unwrap(),
                    created_unix_nanos: 0,
                    source_date_epoch: 0,
                    tool_version: String::new(),
                    source_path: String::new(),
                    note: None,
                    seal_signer: None,
                };
                NewEvent::ingest(&blake3(&detail["record"]), &record)
            }
            EventKind::Rerun => {
                let summary = &detail["summary"];
                let optional = |v: &Value| v.as_str().map(String::from);
                NewEvent::rerun(
                    subject,
                    verdict(&detail["verdict"]),
                    &blake3(&detail["attestation"]),
                    &sha(&detail["expected_sha256"]),
                    &RunSummary {
                        packet: optional(&summary["packet"]),
                        command: summary["command"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|a| a.as_str().unwrap().to_string())
                            .collect(),
                        observed: summary["observed"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|o| (!o.is_null()).then(|| sha(o)))
                            .collect(),
                        ingested: optional(&summary["ingested"]),
                    },
                )
            }
            EventKind::Mirror => NewEvent::mirror(
                subject,
                detail["packet"].as_str().unwrap(),
                &sha(&detail["packet_tree_sha256"]),
                detail["action"].as_str().unwrap(),
                Some(&MirrorPublication {
                    dedup: detail["dedup"].as_str().unwrap(),
                    copied: detail["copied"].as_u64().unwrap(),
                    hardlinked: detail["hardlinked"].as_u64().unwrap(),
                    referenced: detail["referenced"].as_u64().unwrap(),
                    mirror_list: None,
                }),
            ),
            EventKind::KbVerify => NewEvent::kb_verify(
                Path::new(subject),
                &KbVerifyOutcome {
                    verdict: verdict(&detail["verdict"]),
                    packets_checked: detail["packets_checked"].as_u64().unwrap(),
                    packets_failed: detail["packets_failed"].as_u64().unwrap(),
                    failed: detail["failed"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f.as_str().unwrap().to_string())
                        .collect(),
                },
            ),
            other => panic!("the fixture holds no {other:?} event"),
        }
    }

    /// Every event the binary wrote before this module existed is rebuilt byte for byte by its
    /// kind's constructor, and its hash (and so the chain) recomputes from the format alone.
    #[test]
    fn the_fixture_log_is_rebuilt_byte_for_byte_and_its_chain_recomputes() {
        let log: Value = serde_json::from_str(FIXTURE_LOG).unwrap();
        let events = log["events"].as_array().unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "init",
                "ingest",
                "ingest",
                "rerun",
                "rerun",
                "mirror",
                "kb-verify"
            ]
        );
        let mut prev = GENESIS_HASH.to_string();
        for event in events {
            let built = rebuilt(event);
            assert_eq!(built.detail(), event["detail"].as_str().unwrap());
            assert_eq!(built.subject(), event["subject"].as_str().unwrap());
            assert_eq!(built.kind().name(), event["kind"].as_str().unwrap());
            assert_eq!(event["prev_hash"].as_str().unwrap(), prev);
            let hash = built.hash(
                event["seq"].as_i64().unwrap(),
                event["time_unix_nanos"].as_i64().unwrap(),
                &prev,
            );
            assert_eq!(hash.to_hex(), event["hash"].as_str().unwrap());
            prev = hash.to_hex();
        }
    }

    /// The test vector of `docs/FORMAT.md` §7d: the fixture store's `init` event, its hashed
    /// text and its hash.
    #[test]
    fn test_vector_init_event() {
        let event = NewEvent::init(Path::new("/tmp/fx/store"), "0.1.0");
        let text = format!(
            "evstore-event-1\t1\t1796164996894041932\tinit\t/tmp/fx/store\t{GENESIS_HASH}\t{}\n",
            event.detail()
        );
        assert_eq!(
            text,
            "evstore-event-1\t1\t1796164996894041932\tinit\t/tmp/fx/store\t\
             0000000000000000000000000000000000000000000000000000000000000000\t\
             {\"tool_version\":\"0.1.0\"}\n"
        );
        let hash = "0ca2a2abdec362c1ee54af47b78f585577ecf64349500b969781a593340bde96";
        assert_eq!(sha256_of(text.as_bytes()).to_hex(), hash);
        assert_eq!(
            event
                .hash(1, 1_796_164_996_894_041_932, GENESIS_HASH)
                .to_hex(),
            hash
        );
        let doc = include_str!("../../docs/FORMAT.md");
        assert!(doc.contains(hash), "FORMAT.md §7d shows another hash");
        assert!(
            doc.contains(
                "evstore-event-1\\t1\\t1796164996894041932\\tinit\\t/tmp/fx/store\\t\
                 0000000000000000000000000000000000000000000000000000000000000000\\t\
                 {\"tool_version\":\"0.1.0\"}\\n"
            ),
            "FORMAT.md §7d shows another hashed text"
        );
    }

    /// The details of the kinds the fixture has no event of, byte for byte (FORMAT.md §7d).
    #[test]
    fn details_of_the_other_kinds() {
        let id = Blake3Digest::parse_hex(&"ab".repeat(32)).unwrap();
        let sha = Sha256Digest::parse_hex(&"cd".repeat(32)).unwrap();
        let cases = [
            (
                NewEvent::reindex(
                    Path::new("/s"),
                    &ReindexCounts {
                        packets: 2,
                        runs: 1,
                        objects: 30,
                        skipped: 0,
                        lost: 0,
                        carried_events: 7,
                    },
                ),
                "reindex",
                "/s",
                r#"{"carried_events":7,"lost":0,"objects":30,"packets":2,"runs":1,"skipped":0}"#
                    .to_string(),
            ),
            (
                NewEvent::mirror("/kb/p", "p@1", &sha, "republished", None),
                "mirror",
                "/kb/p",
                format!(
                    r#"{{"action":"republished","packet":"p@1","packet_tree_sha256":"{sha}"}}"#
                ),
            ),
            (
                NewEvent::forget(
                    "p@1",
                    &ForgetDetail {
                        item_kind: "packet",
                        id: &id.to_hex(),
                        committed_by_event: Some(2),
                        reason: "disk died",
                    },
                ),
                "forget",
                "p@1",
                format!(
                    r#"{{"committed_by_event":2,"id":"{id}","kind":"packet","reason":"disk died"}}"#
                ),
            ),
            (
                NewEvent::restore("p@1", "packet", &id),
                "restore",
                "p@1",
                format!(r#"{{"id":"{id}","kind":"packet"}}"#),
            ),
            (
                NewEvent::init(Path::new("/a\tb\nc"), "0.1.0"),
                "init",
                "/a b c",
                r#"{"tool_version":"0.1.0"}"#.to_string(),
            ),
        ];
        for (event, kind, subject, detail) in cases {
            assert_eq!(event.kind().name(), kind);
            assert_eq!(event.subject(), subject);
            assert_eq!(event.detail(), detail);
        }
    }

    #[test]
    fn events_name_the_objects_they_commit() {
        let log: Value = serde_json::from_str(FIXTURE_LOG).unwrap();
        let named: Vec<Option<NamedObject>> = log["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| named_object(e["kind"].as_str().unwrap(), e["detail"].as_str().unwrap()))
            .collect();
        let id = |hex: &str| Blake3Digest::parse_hex(hex).unwrap();
        assert_eq!(
            named,
            [
                None,
                Some(NamedObject::Record(id(
                    "0af3bc69a4a3e0cabfab72d15c6a4da302ba9c5d475f657c1b4440b8fe030783"
                ))),
                Some(NamedObject::Record(id(
                    "7d50c14af309387657bff32749c00a0be00c91aa3786e48e4c1e6a4667ac499e"
                ))),
                Some(NamedObject::Attestation(id(
                    "781aae8818ff4f34ce25f076e9ca099ca15adce07ac072a7056d896d52e89b3f"
                ))),
                Some(NamedObject::Attestation(id(
                    "132372bd217a06467fe7d9a5356192f00867c1cdfd73e469ef803ce92bab159f"
                ))),
                None,
                None,
            ]
        );
        let lost = Blake3Digest::parse_hex(&"ab".repeat(32)).unwrap();
        let forget = NewEvent::forget(
            "p@1",
            &ForgetDetail {
                item_kind: "packet",
                id: &lost.to_hex(),
                committed_by_event: None,
                reason: "r",
            },
        );
        assert_eq!(
            named_object("forget", forget.detail()),
            Some(NamedObject::Forgotten(lost))
        );
        let restore = NewEvent::restore("p@1", "packet", &lost);
        assert_eq!(
            named_object("restore", restore.detail()),
            Some(NamedObject::Restored(lost))
        );
        assert_eq!(named_object("ingest", "{not json"), None);
        assert_eq!(named_object("ingest", r#"{"record":"AB"}"#), None);
        assert_eq!(named_object("init", forget.detail()), None);
    }

    /// The test vector of FORMAT.md §7d: the fixture's `init` event as the key
    /// `log/00000000000000000001` holds it.
    #[test]
    fn test_vector_log_entry() {
        let entry = LogEntry {
            seq: 1,
            time_unix_nanos: 1_796_164_996_894_041_932,
            kind: "init".into(),
            subject: "/tmp/fx/store".into(),
            detail: r#"{"tool_version":"0.1.0"}"#.into(),
            prev_hash: GENESIS_HASH.into(),
            hash: "0ca2a2abdec362c1ee54af47b78f585577ecf64349500b969781a593340bde96".into(),
        };
        let bytes = "evstore-event-1\t1\t1796164996894041932\tinit\t/tmp/fx/store\t\
             0000000000000000000000000000000000000000000000000000000000000000\t\
             {\"tool_version\":\"0.1.0\"}\t\
             0ca2a2abdec362c1ee54af47b78f585577ecf64349500b969781a593340bde96\n";
        assert_eq!(String::from_utf8(entry.encode()).unwrap(), bytes);
        assert_eq!(LogEntry::decode(bytes.as_bytes()), Ok(entry));
        assert_eq!(log_key(1), "log/00000000000000000001");
        assert_eq!(parse_log_key_name("00000000000000000001"), Some(1));
        let doc = include_str!("../../docs/FORMAT.md");
        assert!(
            doc.contains(&bytes.replace('\t', "\\t").replace('\n', "\\n")),
            "FORMAT.md §7d shows other log entry bytes"
        );
    }

    #[test]
    fn log_entries_decode_strictly() {
        let good = LogEntry {
            seq: 2,
            time_unix_nanos: 5,
            kind: "init".into(),
            subject: "s".into(),
            detail: "{}".into(),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        let good = LogEntry {
            hash: event_hash(2, 5, "init", "s", GENESIS_HASH, "{}").to_hex(),
            ..good
        };
        let bytes = String::from_utf8(good.encode()).unwrap();
        assert_eq!(LogEntry::decode(bytes.as_bytes()), Ok(good.clone()));
        let bad_hash = bytes.replace(&good.hash, &"ab".repeat(32));
        let cases = [
            bytes.trim_end().to_string(),
            format!("{bytes}\n"),
            bytes.replace("\t2\t", "\t02\t"),
            bytes.replace("\t2\t", "\t0\t"),
            bytes.replace("\t5\t", "\t+5\t"),
            bytes.replace("init", "nope"),
            bytes.replace("{}", "{"),
            bytes.replace("evstore-event-1", "evstore-event-2"),
            bytes.replace(&good.hash, &good.hash.to_uppercase()),
            bytes.replacen('\t', "\t\t", 1),
            bad_hash,
        ];
        for case in cases {
            assert!(LogEntry::decode(case.as_bytes()).is_err(), "{case:?}");
        }
        assert!(LogEntry::decode(b"\xff\n").is_err());
        assert_eq!(parse_log_key_name("1"), None);
        assert_eq!(parse_log_key_name("00000000000000000000"), None);
        assert_eq!(parse_log_key_name("0000000000000000000a"), None);
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::from_name("kb_verify"), None);
    }

    /// A recorded mirror's event names its mirror list (the key sorted among the others); an
    /// event written before mirror lists names none and is told apart, and a mirror event that
    /// recorded nothing is neither.
    #[test]
    fn a_mirror_event_names_its_mirror_list() {
        let sha = Sha256Digest([0x22; 32]);
        let list = Blake3Digest([0x55; 32]);
        let publication = |mirror_list| MirrorPublication {
            dedup: "copy",
            copied: 2,
            hardlinked: 0,
            referenced: 0,
            mirror_list,
        };
        let with = NewEvent::mirror(
            "/kb/p",
            "p@1",
            &sha,
            "published",
            Some(&publication(Some(&list))),
        );
        assert_eq!(
            with.detail(),
            format!(
                "{{\"action\":\"published\",\"copied\":2,\"dedup\":\"copy\",\"hardlinked\":0,\
                 \"mirror_list\":\"{list}\",\"packet\":\"p@1\",\"packet_tree_sha256\":\"{sha}\",\
                 \"referenced\":0}}"
            )
        );
        assert_eq!(
            named_object("mirror", with.detail()),
            Some(NamedObject::MirrorList(list))
        );
        assert!(!mirror_without_list("mirror", with.detail()));
        let old = NewEvent::mirror("/kb/p", "p@1", &sha, "published", Some(&publication(None)));
        assert!(!old.detail().contains("mirror_list"));
        assert_eq!(named_object("mirror", old.detail()), None);
        assert!(mirror_without_list("mirror", old.detail()));
        let logged = NewEvent::mirror("/kb/p", "p@1", &sha, "unchanged", None);
        assert!(!mirror_without_list("mirror", logged.detail()));
        assert!(!mirror_without_list("ingest", old.detail()));
    }
}
