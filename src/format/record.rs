//! The packet record: what one archived packet version is, stored as an object.
//!
//! Because records are objects, the whole catalog can be rebuilt from the object store alone
//! (`evstore reindex`). Encoding (see `docs/FORMAT.md`):
//!
//! ```text
//! ["evstore/packet", 1, name, version, packet_tree_sha256 (32 bytes), tree (32 bytes),
//!  file_count, total_bytes, created_unix_nanos, source_date_epoch, tool_version,
//!  source_path, note or null]
//! ```
//!
//! A packet archived from a folder whose seal was signed (`seal --sign`) has a version-2
//! record: the same fields, tag version `2`, and a 14th, `seal_signer`, the signing key's
//! SHA-256 fingerprint (`SHA256:…`). A record without a signer is always version 1, so records
//! written before signatures keep their bytes and ids.

use crate::digest::{blake3_of, Blake3Digest, Sha256Digest};
use crate::format::cbor::{self, Fields, Value};

const RECORD_TAG: &str = "evstore/packet";
const RECORD_VERSION: u64 = 1;
const RECORD_FIELDS: usize = 13;
const SIGNED_RECORD_VERSION: u64 = 2;
const SIGNED_RECORD_FIELDS: usize = 14;

/// One archived packet version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PacketRecord {
    /// The packet's name.
    pub name: String,
    /// The version under that name, from 1.
    pub version: u64,
    /// SHA-256 of the canonical manifest text.
    pub packet_tree_sha256: Sha256Digest,
    /// BLAKE3 id of the root tree node.
    pub tree: Blake3Digest,
    /// Number of files.
    pub file_count: u64,
    /// Sum of the file sizes.
    pub total_bytes: u64,
    /// When the packet was archived, in nanoseconds since the Unix epoch.
    pub created_unix_nanos: u64,
    /// The packet's source date (`SOURCE_DATE_EPOCH` for reruns), in seconds since the epoch.
    pub source_date_epoch: i64,
    /// The evstore version that archived it.
    pub tool_version: String,
    /// The folder it was archived from.
    pub source_path: String,
    /// An optional free-text note.
    pub note: Option<String>,
    /// The SHA-256 fingerprint (`SHA256:…`) of the key whose signature of the folder's seal
    /// (`HASH_MANIFEST.txt.sig`) ingest checked and kept (`signatures/seals/`); `None` for a
    /// packet archived without one.
    pub seal_signer: Option<String>,
}

impl PacketRecord {
    /// The canonical CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let version = match self.seal_signer {
            None => RECORD_VERSION,
            Some(_) => SIGNED_RECORD_VERSION,
        };
        let mut fields = vec![
            cbor::text(RECORD_TAG),
            cbor::uint(version),
            cbor::text(&self.name),
            cbor::uint(self.version),
            cbor::bytes(self.packet_tree_sha256.as_bytes()),
            cbor::bytes(self.tree.as_bytes()),
            cbor::uint(self.file_count),
            cbor::uint(self.total_bytes),
            cbor::uint(self.created_unix_nanos),
            cbor::int(self.source_date_epoch),
            cbor::text(&self.tool_version),
            cbor::text(&self.source_path),
            cbor::optional_text(self.note.as_deref()),
        ];
        if let Some(signer) = &self.seal_signer {
            fields.push(cbor::text(signer));
        }
        cbor::encode(&Value::Array(fields))
    }

    /// Decode strictly; the error is a reason fragment.
    pub fn decode(bytes: &[u8]) -> Result<PacketRecord, String> {
        let value = cbor::decode_canonical(bytes)?;
        let (f, version) = Fields::open_versioned(
            &value,
            "packet record",
            RECORD_TAG,
            &[
                (RECORD_VERSION, RECORD_FIELDS),
                (SIGNED_RECORD_VERSION, SIGNED_RECORD_FIELDS),
            ],
        )?;
        let seal_signer = match version {
            SIGNED_RECORD_VERSION => {
                let signer = f.text(13, "seal_signer")?;
                if !signer.starts_with("SHA256:")
                    || signer.len() != "SHA256:".len() + 43
                    || !signer["SHA256:".len()..]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
                {
                    return Err(format!(
                        "packet record's seal_signer {signer:?} is not a SHA256 key fingerprint"
                    ));
                }
                Some(signer.to_string())
            }
            _ => None,
        };
        let record = PacketRecord {
            name: f.text(2, "name")?.to_string(),
            version: f.uint(3, "version")?,
            packet_tree_sha256: f.sha256(4, "packet_tree_sha256")?,
            tree: f.blake3(5, "tree")?,
            file_count: f.uint(6, "file_count")?,
            total_bytes: f.uint(7, "total_bytes")?,
            created_unix_nanos: f.uint(8, "created_unix_nanos")?,
            source_date_epoch: f.int(9, "source_date_epoch")?,
            tool_version: f.text(10, "tool_version")?.to_string(),
            source_path: f.text(11, "source_path")?.to_string(),
            note: f.optional_text(12, "note")?.map(str::to_string),
            seal_signer,
        };
        crate::packet_ref::check_packet_name(&record.name)?;
        if record.version == 0 {
            return Err("packet record has version 0".into());
        }
        Ok(record)
    }

    /// The record's object id.
    pub fn id(&self) -> Blake3Digest {
        blake3_of(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(seal_signer: Option<&str>) -> PacketRecord {
        PacketRecord {
            name: "p".into(),
            version: 1,
            packet_tree_sha256: Sha256Digest([1; 32]),
            tree: Blake3Digest([2; 32]),
            file_count: 1,
            total_bytes: 2,
            created_unix_nanos: 3,
            source_date_epoch: 4,
            tool_version: "0.1.0".into(),
            source_path: "/p".into(),
            note: None,
            seal_signer: seal_signer.map(str::to_string),
        }
    }

    #[test]
    fn a_record_with_a_seal_signer_is_version_2_and_one_without_keeps_version_1() {
        use crate::format::cbor::{decode_canonical, Value};
        let version_of = |record: &PacketRecord| match decode_canonical(&record.encode()) {
            Ok(Value::Array(items)) => (items[1].clone(), items.len()),
            other => panic!("{other:?}"),
        };
        let unsigned = record(None);
        assert_eq!(version_of(&unsigned), (Value::Integer(1), 13));
        let fingerprint = "SHA256:z/fSv0Z0RZS+Lccbc6ZoOWwt/fbj1VFJGSBKQbo4icE";
        let signed = record(Some(fingerprint));
        assert_eq!(version_of(&signed), (Value::Integer(2), 14));
        assert_eq!(PacketRecord::decode(&signed.encode()).unwrap(), signed);
        // Version 2 without a signer, version 1 with one, or a signer that is not a fingerprint:
        // refused (one encoding per record).
        let mut items = match decode_canonical(&signed.encode()).unwrap() {
            Value::Array(items) => items,
            _ => unreachable!(),
        };
        let last = items.pop().unwrap();
        assert!(PacketRecord::decode(&cbor::encode(&Value::Array(items.clone()))).is_err());
        items.push(Value::Null);
        assert!(PacketRecord::decode(&cbor::encode(&Value::Array(items.clone()))).is_err());
        items.pop();
        items[1] = Value::Integer(1);
        items.push(last);
        assert!(PacketRecord::decode(&cbor::encode(&Value::Array(items))).is_err());
        let bad = record(Some("SHA256:short"));
        assert!(PacketRecord::decode(&bad.encode()).is_err());
    }

    proptest! {
        #[test]
        fn encode_decode_encode_is_identity(
            name in "[a-z][a-z0-9._-]{0,20}",
            version in 1u64..1000,
            sha in any::<[u8; 32]>(),
            tree in any::<[u8; 32]>(),
            counts in any::<(u64, u64, u64)>(),
            epoch in any::<i64>(),
            source in "\\PC{0,40}",
            note in proptest::option::of("\\PC{0,40}"),
            signer in proptest::option::of("[A-Za-z0-9+/]{43}"),
        ) {
            let record = PacketRecord {
                name, version,
                packet_tree_sha256: Sha256Digest(sha),
                tree: Blake3Digest(tree),
                file_count: counts.0, total_bytes: counts.1, created_unix_nanos: counts.2,
                source_date_epoch: epoch,
                tool_version: "0.1.0".into(),
                source_path: source, note,
                seal_signer: signer.map(|s| format!("SHA256:{s}")),
            };
            let bytes = record.encode();
            let back = PacketRecord::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &record);
            prop_assert_eq!(back.encode(), bytes);
        }
    }
}
