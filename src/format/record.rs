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

use crate::digest::{blake3_of, Blake3Digest, Sha256Digest};
use crate::format::cbor::{self, Fields, Value};

const RECORD_TAG: &str = "evstore/packet";
const RECORD_VERSION: u64 = 1;
const RECORD_FIELDS: usize = 13;

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
}

impl PacketRecord {
    /// The canonical CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::text(RECORD_TAG),
            cbor::uint(RECORD_VERSION),
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
        ]))
    }

    /// Decode strictly; the error is a reason fragment.
    pub fn decode(bytes: &[u8]) -> Result<PacketRecord, String> {
        let value = cbor::decode_canonical(bytes)?;
        let f = Fields::open(
            &value,
            "packet record",
            RECORD_TAG,
            RECORD_VERSION,
            RECORD_FIELDS,
        )?;
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
        ) {
            let record = PacketRecord {
                name, version,
                packet_tree_sha256: Sha256Digest(sha),
                tree: Blake3Digest(tree),
                file_count: counts.0, total_bytes: counts.1, created_unix_nanos: counts.2,
                source_date_epoch: epoch,
                tool_version: "0.1.0".into(),
                source_path: source, note,
            };
            let bytes = record.encode();
            let back = PacketRecord::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &record);
            prop_assert_eq!(back.encode(), bytes);
        }
    }
}
