//! The mirror list: what one recorded KB mirror is, stored as an object (kind 5) so that the
//! store alone can give a new catalog back its `mirrors` and `mirror_files` rows.
//!
//! `mirror` writes it (through an object batch, durable) before its `mirror` event, whose detail
//! names it (`"mirror_list"`); catch-up and `reindex` read it back. Encoding (see
//! `docs/FORMAT.md` §7e), a canonical CBOR array:
//!
//! ```text
//! ["evstore/mirror-list", 1, kb_root, rel_path, record (32 bytes), packet_tree_sha256 (32 bytes),
//!  dedup, [[path, sha256 (32 bytes), stored_as, kb_path], ...]]
//! ```
//!
//! `dedup` and each `stored_as` are `copy`, `reference` or `hardlink`; the files are listed in
//! strictly ascending byte order of `path`, each once; a `copy` lives at `rel_path/path`.
//!
//! **Architecture Invariant:** the decoder accepts only bytes that are the canonical encoding of
//! a list that passes every rule above, so one mirror list has exactly one id.

use crate::digest::{blake3_of, Blake3Digest, Sha256Digest};
use crate::format::cbor::{self, Fields, Value};
use crate::format::references::check_kb_rel_path;

const LIST_TAG: &str = "evstore/mirror-list";
const LIST_VERSION: u64 = 1;
const LIST_FIELDS: usize = 8;
const FILE_FIELDS: usize = 4;

/// The spellings of a dedup mode and of how one file was published.
pub const PUBLICATION_KINDS: [&str; 3] = ["copy", "reference", "hardlink"];

/// One file of a mirror: where its bytes live in the KB.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MirrorFile {
    /// Path in the packet.
    pub path: String,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
    /// `copy`, `reference` or `hardlink`.
    pub stored_as: String,
    /// KB-relative path of the bytes.
    pub kb_path: String,
}

/// One recorded mirror of a packet into a KB folder, with every file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorList {
    /// The KB folder, canonical (absolute).
    pub kb_root: String,
    /// The packet folder, relative to the KB.
    pub rel_path: String,
    /// The id of the mirrored packet's record object.
    pub record: Blake3Digest,
    /// The mirrored packet's packet_tree_sha256.
    pub packet_tree_sha256: Sha256Digest,
    /// The dedup mode the mirror was recorded with: `copy`, `reference` or `hardlink`.
    pub dedup: String,
    /// Every file the packet folder's seal lists, by path.
    pub files: Vec<MirrorFile>,
}

impl MirrorList {
    /// The canonical CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let files = self
            .files
            .iter()
            .map(|f| {
                cbor::array(vec![
                    cbor::text(&f.path),
                    cbor::bytes(f.sha256.as_bytes()),
                    cbor::text(&f.stored_as),
                    cbor::text(&f.kb_path),
                ])
            })
            .collect();
        cbor::encode(&Value::Array(vec![
            cbor::text(LIST_TAG),
            cbor::uint(LIST_VERSION),
            cbor::text(&self.kb_root),
            cbor::text(&self.rel_path),
            cbor::bytes(self.record.as_bytes()),
            cbor::bytes(self.packet_tree_sha256.as_bytes()),
            cbor::text(&self.dedup),
            cbor::array(files),
        ]))
    }

    /// The list's object id (the BLAKE3 of its encoding).
    pub fn id(&self) -> Blake3Digest {
        blake3_of(&self.encode())
    }

    /// Decode strictly; the error is a reason fragment.
    pub fn decode(bytes: &[u8]) -> Result<MirrorList, String> {
        let value = cbor::decode_canonical(bytes)?;
        let f = Fields::open(&value, "mirror list", LIST_TAG, LIST_VERSION, LIST_FIELDS)?;
        let mut files = Vec::new();
        for item in f.array(7, "files")? {
            let g = Fields::plain(item, "mirror list file")?;
            if g.len() != FILE_FIELDS {
                return Err(format!(
                    "mirror list file has {} fields, expected {FILE_FIELDS}",
                    g.len()
                ));
            }
            files.push(MirrorFile {
                path: g.text(0, "path")?.to_string(),
                sha256: g.sha256(1, "sha256")?,
                stored_as: g.text(2, "stored_as")?.to_string(),
                kb_path: g.text(3, "kb_path")?.to_string(),
            });
        }
        let list = MirrorList {
            kb_root: f.text(2, "kb_root")?.to_string(),
            rel_path: f.text(3, "rel_path")?.to_string(),
            record: f.blake3(4, "record")?,
            packet_tree_sha256: f.sha256(5, "packet_tree_sha256")?,
            dedup: f.text(6, "dedup")?.to_string(),
            files,
        };
        list.check()?;
        Ok(list)
    }

    /// The rules a list must meet beyond its CBOR shape.
    fn check(&self) -> Result<(), String> {
        if !self.kb_root.starts_with('/') {
            return Err(format!(
                "mirror list: kb_root {:?} is not an absolute path",
                self.kb_root
            ));
        }
        check_kb_rel_path(&self.rel_path)
            .map_err(|reason| format!("mirror list: rel_path {:?}: {reason}", self.rel_path))?;
        if !PUBLICATION_KINDS.contains(&self.dedup.as_str()) {
            return Err(format!(
                "mirror list: dedup {:?} is not copy, reference or hardlink",
                self.dedup
            ));
        }
        if self.files.is_empty() {
            return Err("mirror list: lists no file".into());
        }
        for (i, file) in self.files.iter().enumerate() {
            if i > 0 && self.files[i - 1].path.as_bytes() >= file.path.as_bytes() {
                return Err(format!(
                    "mirror list: file {:?} is not after {:?} in byte order (or is listed twice)",
                    file.path,
                    self.files[i - 1].path
                ));
            }
            if file.path.is_empty() {
                return Err("mirror list: a file has an empty path".into());
            }
            if !PUBLICATION_KINDS.contains(&file.stored_as.as_str()) {
                return Err(format!(
                    "mirror list: file {:?} is stored_as {:?}, not copy, reference or hardlink",
                    file.path, file.stored_as
                ));
            }
            check_kb_rel_path(&file.kb_path).map_err(|reason| {
                format!(
                    "mirror list: file {:?} has kb_path {:?}: {reason}",
                    file.path, file.kb_path
                )
            })?;
            if file.stored_as == "copy"
                && file.kb_path != format!("{}/{}", self.rel_path, file.path)
            {
                return Err(format!(
                    "mirror list: file {:?} is a copy, but its kb_path {:?} is not {:?}",
                    file.path,
                    file.kb_path,
                    format!("{}/{}", self.rel_path, file.path)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The list of `docs/FORMAT.md` §7e's test vector.
    fn vector_list() -> MirrorList {
        MirrorList {
            kb_root: "/kb".into(),
            rel_path: "p".into(),
            record: Blake3Digest([0x11; 32]),
            packet_tree_sha256: Sha256Digest([0x22; 32]),
            dedup: "reference".into(),
            files: vec![
                MirrorFile {
                    path: "a.txt".into(),
                    sha256: Sha256Digest([0x33; 32]),
                    stored_as: "copy".into(),
                    kb_path: "p/a.txt".into(),
                },
                MirrorFile {
                    path: "b.txt".into(),
                    sha256: Sha256Digest([0x44; 32]),
                    stored_as: "reference".into(),
                    kb_path: "q/b.txt".into(),
                },
            ],
        }
    }

    /// The hex of FORMAT.md §7e's test vector, read from the document itself.
    fn documented_vector(name: &str) -> String {
        let doc = include_str!("../../docs/FORMAT.md");
        let start = doc
            .find(&format!("<!-- vector: {name} -->"))
            .expect("the vector is marked in FORMAT.md");
        let block = &doc[start..];
        let open = block.find("```text\n").expect("a text block follows") + "```text\n".len();
        let close = block[open..].find("```").expect("the block ends") + open;
        block[open..close].split_whitespace().collect()
    }

    #[test]
    fn test_vector_matches_format_md() {
        let list = vector_list();
        let bytes = list.encode();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, documented_vector("mirror-list bytes"));
        assert_eq!(list.id().to_hex(), documented_vector("mirror-list id"));
        assert_eq!(MirrorList::decode(&bytes).unwrap(), list);
    }

    #[test]
    fn lists_that_break_a_rule_are_refused_naming_it() {
        type Breakage = Box<dyn Fn(&mut MirrorList)>;
        let cases: Vec<(Breakage, &str)> = vec![
            (Box::new(|l| l.kb_root = "kb".into()), "absolute"),
            (Box::new(|l| l.rel_path = "../p".into()), "rel_path"),
            (Box::new(|l| l.dedup = "symlink".into()), "dedup"),
            (Box::new(|l| l.files.clear()), "no file"),
            (Box::new(|l| l.files.swap(0, 1)), "byte order"),
            (
                Box::new(|l| l.files[1] = l.files[0].clone()),
                "listed twice",
            ),
            (
                Box::new(|l| l.files[1].stored_as = "move".into()),
                "stored_as",
            ),
            (
                Box::new(|l| l.files[0].kb_path = "elsewhere/a.txt".into()),
                "is a copy",
            ),
            (Box::new(|l| l.files[1].kb_path = "/abs".into()), "kb_path"),
        ];
        for (break_it, expected) in cases {
            let mut list = vector_list();
            break_it(&mut list);
            let err = MirrorList::decode(&list.encode()).unwrap_err();
            assert!(err.contains(expected), "{err} should say {expected}");
        }
    }

    #[test]
    fn a_non_canonical_or_foreign_encoding_is_refused() {
        let mut bytes = vector_list().encode();
        bytes.push(0);
        assert!(MirrorList::decode(&bytes).is_err());
        let record = crate::format::record::PacketRecord {
            name: "p".into(),
            version: 1,
            packet_tree_sha256: Sha256Digest([0; 32]),
            tree: Blake3Digest([0; 32]),
            file_count: 1,
            total_bytes: 1,
            created_unix_nanos: 1,
            source_date_epoch: 0,
            tool_version: "0".into(),
            source_path: "/".into(),
            note: None,
            seal_signer: None,
        };
        let err = MirrorList::decode(&record.encode()).unwrap_err();
        assert!(err.contains("mirror list"), "{err}");
    }

    proptest! {
        #[test]
        fn encode_decode_encode_is_identity(
            names in proptest::collection::btree_set("[a-z]{1,8}", 1..6),
            kinds in proptest::collection::vec(0usize..3, 6),
            sha in any::<[u8; 32]>(),
        ) {
            let files: Vec<MirrorFile> = names
                .iter()
                .zip(&kinds)
                .map(|(name, kind)| {
                    let stored_as = PUBLICATION_KINDS[*kind];
                    MirrorFile {
                        path: name.clone(),
                        sha256: Sha256Digest(sha),
                        stored_as: stored_as.into(),
                        kb_path: if stored_as == "copy" {
                            format!("rel/{name}")
                        } else {
                            format!("other/{name}")
                        },
                    }
                })
                .collect();
            let list = MirrorList {
                kb_root: "/srv/kb".into(),
                rel_path: "rel".into(),
                record: Blake3Digest(sha),
                packet_tree_sha256: Sha256Digest(sha),
                dedup: "hardlink".into(),
                files,
            };
            let bytes = list.encode();
            let back = MirrorList::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &list);
            prop_assert_eq!(back.encode(), bytes);
        }
    }
}
