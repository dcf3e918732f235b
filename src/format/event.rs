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
            Some(p) => json!({
                "packet": packet,
                "packet_tree_sha256": packet_tree_sha256,
                "action": action,
                "dedup": p.dedup,
                "copied": p.copied,
                "hardlinked": p.hardlinked,
                "referenced": p.referenced,
            }),
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
        _ => return None,
    };
    let detail: serde_json::Value = serde_json::from_str(detail).ok()?;
    let id = Blake3Digest::parse_hex(detail.get(field)?.as_str()?)?;
    Some(wrap(id))
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

    #[test]
    fn kind_names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::from_name("kb_verify"), None);
    }
}
