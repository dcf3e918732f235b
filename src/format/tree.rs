//! The Merkle tree manifest: one CBOR node per directory, addressed by BLAKE3.
//!
//! A node lists a directory's entries sorted by name bytes, each either a file (name, size,
//! executable bit, BLAKE3 and SHA-256 of the content) or a directory (name, id of its node). The
//! node's id is the BLAKE3 of its canonical encoding (see `docs/FORMAT.md`):
//!
//! ```text
//! node      = ["evstore/tree", 1, [entry, ...]]
//! file      = [0, name, size, executable, blake3 (32 bytes), sha256 (32 bytes)]
//! directory = [1, name, node id (32 bytes)]
//! ```
//!
//! The root node's id is the packet's `tree`. Equal subtrees have equal ids, so the store keeps
//! them once. This module builds trees from hashed files and decodes each node strictly; reading
//! stored trees back into files is `packet`'s job.

use std::collections::BTreeMap;

use crate::digest::{blake3_of, Blake3Digest, Sha256Digest};
use crate::error::{Error, Result};
use crate::format::cbor::{self, Fields, Value};
use crate::format::manifest::{Manifest, ManifestEntry};
use crate::scan::check_component_text;

const NODE_TAG: &str = "evstore/tree";
const NODE_VERSION: u64 = 1;
const FILE_ENTRY: u64 = 0;
const DIR_ENTRY: u64 = 1;

/// The deepest tree evstore reads (a path of 4096 bytes has at most 2048 components).
pub const MAX_DEPTH: usize = 2048;

/// A file's content as the tree records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// Size in bytes.
    pub size: u64,
    /// True if the owner-execute bit is set.
    pub executable: bool,
    /// BLAKE3 of the content: the blob's object id.
    pub blake3: Blake3Digest,
    /// SHA-256 of the content.
    pub sha256: Sha256Digest,
}

/// One entry of a tree node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeEntry {
    /// A file.
    File {
        /// The file name (one path component).
        name: String,
        /// Its content.
        meta: FileMeta,
    },
    /// A directory.
    Dir {
        /// The directory name (one path component).
        name: String,
        /// The id of its node.
        tree: Blake3Digest,
    },
}

impl TreeEntry {
    /// The entry's name.
    pub fn name(&self) -> &str {
        match self {
            TreeEntry::File { name, .. } | TreeEntry::Dir { name, .. } => name,
        }
    }
}

/// A directory node: entries with unique names, sorted by name bytes, at least one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeNode {
    entries: Vec<TreeEntry>,
}

impl TreeNode {
    /// Build a node; fails if names are invalid, unsorted, duplicated, or if there is none.
    pub fn new(entries: Vec<TreeEntry>) -> std::result::Result<TreeNode, String> {
        if entries.is_empty() {
            return Err("tree node has no entries".into());
        }
        for entry in &entries {
            check_component_text(entry.name())
                .map_err(|reason| format!("entry {:?}: {reason}", entry.name()))?;
        }
        for pair in entries.windows(2) {
            if pair[0].name() >= pair[1].name() {
                return Err(format!(
                    "entries not strictly sorted by name: {:?} then {:?}",
                    pair[0].name(),
                    pair[1].name()
                ));
            }
        }
        Ok(TreeNode { entries })
    }

    /// The entries, sorted by name.
    pub fn entries(&self) -> &[TreeEntry] {
        &self.entries
    }

    /// The canonical CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let entries = self
            .entries
            .iter()
            .map(|entry| match entry {
                TreeEntry::File { name, meta } => Value::Array(vec![
                    cbor::uint(FILE_ENTRY),
                    cbor::text(name),
                    cbor::uint(meta.size),
                    Value::Bool(meta.executable),
                    cbor::bytes(meta.blake3.as_bytes()),
                    cbor::bytes(meta.sha256.as_bytes()),
                ]),
                TreeEntry::Dir { name, tree } => Value::Array(vec![
                    cbor::uint(DIR_ENTRY),
                    cbor::text(name),
                    cbor::bytes(tree.as_bytes()),
                ]),
            })
            .collect();
        cbor::encode(&Value::Array(vec![
            cbor::text(NODE_TAG),
            cbor::uint(NODE_VERSION),
            Value::Array(entries),
        ]))
    }

    /// Decode a node strictly; the error is a reason fragment.
    pub fn decode(bytes: &[u8]) -> std::result::Result<TreeNode, String> {
        let value = cbor::decode_canonical(bytes)?;
        let node = Fields::open(&value, "tree node", NODE_TAG, NODE_VERSION, 3)?;
        let mut entries = Vec::new();
        for item in node.array(2, "entries")? {
            let fields = Fields::plain(item, "tree entry")?;
            let kind = fields.uint(0, "kind")?;
            let name = fields.text(1, "name")?.to_string();
            let entry = match (kind, fields.len()) {
                (FILE_ENTRY, 6) => TreeEntry::File {
                    name,
                    meta: FileMeta {
                        size: fields.uint(2, "size")?,
                        executable: fields.boolean(3, "executable")?,
                        blake3: fields.blake3(4, "blake3")?,
                        sha256: fields.sha256(5, "sha256")?,
                    },
                },
                (DIR_ENTRY, 3) => TreeEntry::Dir {
                    name,
                    tree: fields.blake3(2, "tree")?,
                },
                (kind, len) => {
                    return Err(format!("tree entry of kind {kind} with {len} fields"));
                }
            };
            entries.push(entry);
        }
        TreeNode::new(entries)
    }

    /// The node's id: the BLAKE3 of its encoding.
    pub fn id(&self) -> Blake3Digest {
        blake3_of(&self.encode())
    }
}

/// A hashed packet file, ready to go into a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashedFile {
    /// Path relative to the packet root.
    pub rel_path: String,
    /// Its content.
    pub meta: FileMeta,
}

/// A tree built from files: its root id and every node, children before parents.
#[derive(Clone, Debug)]
pub struct BuiltTree {
    /// The root node's id: the packet's `tree`.
    pub root: Blake3Digest,
    /// `(id, encoding)` of each distinct node.
    pub nodes: Vec<(Blake3Digest, Vec<u8>)>,
}

enum Slot<'a> {
    File(&'a FileMeta),
    Dir(Vec<(&'a str, &'a FileMeta)>),
}

/// Build the Merkle tree of a packet's files (paths already validated, unique, non-empty set).
pub fn build_tree(files: &[HashedFile]) -> Result<BuiltTree> {
    let mut nodes = Vec::new();
    let items: Vec<(&str, &FileMeta)> = files
        .iter()
        .map(|f| (f.rel_path.as_str(), &f.meta))
        .collect();
    let root = build_dir(&items, &mut nodes).map_err(Error::Usage)?;
    let mut seen = std::collections::HashSet::new();
    nodes.retain(|(id, _)| seen.insert(*id));
    Ok(BuiltTree { root, nodes })
}

fn build_dir<'a>(
    items: &[(&'a str, &'a FileMeta)],
    nodes: &mut Vec<(Blake3Digest, Vec<u8>)>,
) -> std::result::Result<Blake3Digest, String> {
    let mut slots: BTreeMap<&'a str, Slot<'a>> = BTreeMap::new();
    for &(path, meta) in items {
        match path.split_once('/') {
            None => {
                if slots.insert(path, Slot::File(meta)).is_some() {
                    return Err(format!("{path:?} appears twice"));
                }
            }
            Some((dir, rest)) => match slots.entry(dir).or_insert_with(|| Slot::Dir(Vec::new())) {
                Slot::Dir(children) => children.push((rest, meta)),
                Slot::File(_) => return Err(format!("{dir:?} is both a file and a folder")),
            },
        }
    }
    let mut entries = Vec::with_capacity(slots.len());
    for (name, slot) in slots {
        entries.push(match slot {
            Slot::File(meta) => TreeEntry::File {
                name: name.to_string(),
                meta: *meta,
            },
            Slot::Dir(children) => TreeEntry::Dir {
                name: name.to_string(),
                tree: build_dir(&children, nodes)?,
            },
        });
    }
    let node = TreeNode::new(entries)?;
    let encoded = node.encode();
    let id = blake3_of(&encoded);
    nodes.push((id, encoded));
    Ok(id)
}

/// The canonical manifest of hashed files.
pub fn manifest_of(files: &[HashedFile]) -> Result<Manifest> {
    Manifest::from_entries(
        files
            .iter()
            .map(|f| ManifestEntry {
                path: f.rel_path.clone(),
                sha256: f.meta.sha256,
            })
            .collect(),
    )
}

/// A hashed file at `path` holding `content`, for the unit tests of every module that builds or
/// walks trees.
#[cfg(test)]
pub(crate) fn test_file(path: &str, content: &[u8], executable: bool) -> HashedFile {
    let digest = crate::digest::dual_of(content);
    HashedFile {
        rel_path: path.into(),
        meta: FileMeta {
            size: digest.len,
            executable,
            blake3: digest.blake3,
            sha256: digest.sha256,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(path: &str, content: &[u8], executable: bool) -> HashedFile {
        test_file(path, content, executable)
    }

    #[test]
    fn equal_subtrees_share_one_node() {
        let files = vec![
            file("a/x.txt", b"x", false),
            file("b/x.txt", b"x", false),
            file("run.sh", b"#!/bin/sh\n", true),
        ];
        let built = build_tree(&files).unwrap();
        // Two identical subtrees "a" and "b", plus the root: two distinct nodes.
        assert_eq!(built.nodes.len(), 2);
        assert_eq!(built.nodes.last().unwrap().0, built.root);
    }

    #[test]
    fn decode_refuses_unsorted_and_non_canonical() {
        let meta = file("x", b"x", false).meta;
        let good = TreeNode::new(vec![TreeEntry::File {
            name: "a".into(),
            meta,
        }])
        .unwrap();
        let bytes = good.encode();
        assert_eq!(TreeNode::decode(&bytes).unwrap(), good);
        // An indefinite-length outer array is the same value with other bytes.
        let mut indefinite = vec![0x9f];
        indefinite.extend_from_slice(&bytes[1..]);
        indefinite.push(0xff);
        assert!(TreeNode::decode(&indefinite).is_err());
        let unsorted = TreeNode::new(vec![
            TreeEntry::File {
                name: "b".into(),
                meta,
            },
            TreeEntry::File {
                name: "a".into(),
                meta,
            },
        ]);
        assert!(unsorted.is_err());
        assert!(TreeNode::decode(&cbor::encode(&Value::Array(vec![]))).is_err());
    }

    fn arb_name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ._\u{e9}\u{2014}-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    fn arb_entry() -> impl Strategy<Value = TreeEntry> {
        prop_oneof![
            (
                arb_name(),
                any::<u64>(),
                any::<bool>(),
                any::<[u8; 32]>(),
                any::<[u8; 32]>()
            )
                .prop_map(|(name, size, executable, b, s)| TreeEntry::File {
                    name,
                    meta: FileMeta {
                        size,
                        executable,
                        blake3: Blake3Digest(b),
                        sha256: Sha256Digest(s),
                    },
                }),
            (arb_name(), any::<[u8; 32]>()).prop_map(|(name, t)| TreeEntry::Dir {
                name,
                tree: Blake3Digest(t)
            }),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_encode_is_identity(entries in proptest::collection::vec(arb_entry(), 1..20)) {
            let mut by_name = BTreeMap::new();
            for entry in entries {
                by_name.insert(entry.name().to_string(), entry);
            }
            let node = TreeNode::new(by_name.into_values().collect()).unwrap();
            let bytes = node.encode();
            let back = TreeNode::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &node);
            prop_assert_eq!(back.encode(), bytes);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = TreeNode::decode(&bytes);
        }
    }
}
