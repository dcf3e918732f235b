//! A stored packet, read back and verified: its record object checked against the catalog row,
//! its tree walked from the stored nodes (each decoded strictly), and the walk's files checked to
//! hash to the recorded `packet_tree_sha256`. Every read path (show, manifest, cat, export, diff,
//! mirror, rerun) starts here, so a file list never comes from the catalog alone.
//!
//! [`walk_trees`] is the one walk over stored Merkle trees: of one tree (a read path) or two
//! together, skipping equal subtrees (the gate's packet diff); its nodes come from a loader, so
//! `fsck` can walk already-checked nodes and note missing ones instead of stopping.
//!
//! **Architecture Invariant:** a stored packet's file list comes from its stored tree, walked
//! here. This module reads the store and takes catalog rows ([`PacketRow`], plain data) as input;
//! it never queries the catalog.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::catalog::PacketRow;
use crate::digest::Blake3Digest;
use crate::error::{Error, Result};
use crate::format::object::ObjectKind;
use crate::format::record::PacketRecord;
use crate::format::tree::{manifest_of, FileMeta, HashedFile, TreeEntry, TreeNode, MAX_DEPTH};
use crate::store::Store;

/// Read a packet's record object and check it equals the catalog row.
pub fn verified_record(store: &Store, row: &PacketRow) -> Result<PacketRecord> {
    let what = format!(
        "packet record {} ({}@{})",
        row.record_id, row.record.name, row.record.version
    );
    let (kind, bytes) = store.read_small_object(&row.record_id)?;
    if kind != ObjectKind::Record {
        return Err(Error::corrupt(
            what,
            format!("object kind is {}, not record", kind.name()),
        ));
    }
    let record = PacketRecord::decode(&bytes).map_err(|reason| Error::corrupt(&what, reason))?;
    if record != row.record {
        return Err(Error::corrupt(
            what,
            "the record object and the catalog row disagree",
        ));
    }
    Ok(record)
}

/// A packet's files as its stored tree lists them, checked against the record.
pub fn verified_files(store: &Store, row: &PacketRow) -> Result<(PacketRecord, Vec<HashedFile>)> {
    let record = verified_record(store, row)?;
    let (files, _) = walk_tree(store, &record.tree)?;
    let manifest = manifest_of(&files)?;
    if manifest.packet_tree_sha256() != record.packet_tree_sha256 {
        return Err(Error::corrupt(
            format!("packet {}@{}", record.name, record.version),
            "its tree does not hash to the recorded packet_tree_sha256",
        ));
    }
    Ok((record, files))
}

/// Write one file's bytes to `out`, but only after checking the whole object once.
pub fn cat_file(store: &Store, file: &HashedFile, out: &mut dyn Write) -> Result<()> {
    store.read_object(&file.meta.blake3, io::sink())?;
    store.read_object(&file.meta.blake3, out)?;
    Ok(())
}

/// Read and strictly decode the node `id` from the store.
pub fn load_node(store: &Store, id: &Blake3Digest) -> Result<TreeNode> {
    let (_, bytes) = store.read_small_object(id)?;
    TreeNode::decode(&bytes).map_err(|reason| Error::corrupt(format!("tree node {id}"), reason))
}

/// Every file of the tree rooted at `root`, in path-byte order, with the ids of all nodes read.
/// Each node is read from the store and decoded strictly; a tree deeper than [`MAX_DEPTH`] is an
/// error.
pub fn walk_tree(
    store: &Store,
    root: &Blake3Digest,
) -> Result<(Vec<HashedFile>, Vec<Blake3Digest>)> {
    walk_subtree(store, root, "", 0)
}

/// [`walk_tree`] of the subtree `id` found at the packet path `prefix`, `depth` levels below its
/// packet's root (a folder that a packet diff did not descend into): its files are named by
/// their full packet paths, and the depth limit counts from the packet's root.
pub fn walk_subtree(
    store: &Store,
    id: &Blake3Digest,
    prefix: &str,
    depth: usize,
) -> Result<(Vec<HashedFile>, Vec<Blake3Digest>)> {
    let mut files = Vec::new();
    let mut node_ids = Vec::new();
    walk_trees_from(
        &mut |id| {
            node_ids.push(*id);
            load_node(store, id).map(|node| Some(Cow::Owned(node)))
        },
        Some(id),
        None,
        prefix,
        depth,
        &mut |visit| match visit {
            Visit::File {
                path,
                expected: Some(meta),
                ..
            } => {
                files.push(HashedFile {
                    rel_path: path.to_string(),
                    meta: *meta,
                });
                Ok(())
            }
            Visit::TooDeep { id, .. } => Err(Error::corrupt(
                format!("tree node {id}"),
                format!("tree is deeper than {MAX_DEPTH} levels"),
            )),
            _ => Ok(()),
        },
    )?;
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok((files, node_ids))
}

/// The error for a stored tree deeper than [`MAX_DEPTH`] below `path`.
pub fn too_deep(path: &str) -> Error {
    Error::corrupt(
        format!("tree below {path:?}"),
        format!("deeper than {MAX_DEPTH} levels"),
    )
}

/// What [`walk_trees`] meets, in path-byte order of each folder's names.
#[derive(Debug)]
pub enum Visit<'a> {
    /// A path where one tree or both hold a file (`None` on a side that holds none, or a folder).
    File {
        /// The packet path.
        path: &'a str,
        /// What the first tree holds there.
        expected: Option<&'a FileMeta>,
        /// What the second tree holds there.
        observed: Option<&'a FileMeta>,
    },
    /// Both trees hold the same node here: it was not read or descended into (its files are
    /// equal on both sides by construction). `path` is `""` for equal roots.
    EqualSubtree {
        /// The folder's packet path.
        path: &'a str,
        /// The node id both trees hold there.
        id: Blake3Digest,
        /// How many levels below the root it is (0 for the roots).
        depth: usize,
    },
    /// A folder deeper than [`MAX_DEPTH`]: not read or descended into. A read path stops with
    /// [`too_deep`]; a checker may note it and go on.
    TooDeep {
        /// The folder's packet path.
        path: &'a str,
        /// The node id of the first tree there, or of the second.
        id: Blake3Digest,
    },
}

/// Where [`walk_trees`] gets a node: `Ok(Some(node))`; `Ok(None)` to skip a node that cannot be
/// had (a checker that notes missing or corrupt nodes and goes on); an error stops the walk.
pub type NodeLoader<'n, 'l> = dyn FnMut(&Blake3Digest) -> Result<Option<Cow<'n, TreeNode>>> + 'l;

/// The one walk over stored Merkle trees: walk the trees rooted at `expected` and `observed`
/// (either may be `None`: a walk of one tree) together, name by name, descending only into
/// folders whose node ids differ, and tell `visit` every file path met, every equal subtree
/// skipped, and every folder too deep to read. `load` supplies the nodes: [`load_node`] for a
/// read path, already-checked nodes for `fsck`. The walk keeps an explicit stack (no recursion) of
/// at most [`MAX_DEPTH`] levels, each holding the names still to visit.
///
/// # Errors
///
/// What `load` or `visit` returns.
pub fn walk_trees<'n>(
    load: &mut NodeLoader<'n, '_>,
    expected: Option<&Blake3Digest>,
    observed: Option<&Blake3Digest>,
    visit: &mut dyn FnMut(Visit<'_>) -> Result<()>,
) -> Result<()> {
    walk_trees_from(load, expected, observed, "", 0, visit)
}

/// [`walk_trees`] of folders found at the packet path `prefix`, `depth` levels below the root.
fn walk_trees_from<'n>(
    load: &mut NodeLoader<'n, '_>,
    expected: Option<&Blake3Digest>,
    observed: Option<&Blake3Digest>,
    prefix: &str,
    depth: usize,
    visit: &mut dyn FnMut(Visit<'_>) -> Result<()>,
) -> Result<()> {
    // An explicit stack of folders, not recursion: a tree 2048 levels deep (a path of 4096 bytes
    // with one-letter names) must not overflow a thread's stack.
    let mut stack: Vec<Level> = Vec::new();
    if let Some(level) = open_level(load, expected, observed, prefix.to_string(), depth, visit)? {
        stack.push(level);
    }
    while let Some(level) = stack.last_mut() {
        let Some(entry) = level.entries.next() else {
            stack.pop();
            continue;
        };
        let path = if level.prefix.is_empty() {
            entry.name
        } else {
            format!("{}/{}", level.prefix, entry.name)
        };
        let depth = level.depth + 1;
        if entry.file_a.is_some() || entry.file_b.is_some() {
            visit(Visit::File {
                path: &path,
                expected: entry.file_a.as_ref(),
                observed: entry.file_b.as_ref(),
            })?;
        }
        if entry.dir_a.is_some() || entry.dir_b.is_some() {
            let child = open_level(
                load,
                entry.dir_a.as_ref(),
                entry.dir_b.as_ref(),
                path,
                depth,
                visit,
            )?;
            if let Some(child) = child {
                stack.push(child);
            }
        }
    }
    Ok(())
}

/// One folder of the walk: its path, its depth, and the names of both trees still to visit.
struct Level {
    prefix: String,
    depth: usize,
    entries: std::vec::IntoIter<PairedEntry>,
}

/// What the two trees hold under one name of a folder.
struct PairedEntry {
    name: String,
    file_a: Option<FileMeta>,
    file_b: Option<FileMeta>,
    dir_a: Option<Blake3Digest>,
    dir_b: Option<Blake3Digest>,
}

/// Start the folder at `prefix`: equal nodes and folders too deep are told to `visit` and not
/// opened (`None`); otherwise both nodes are loaded and their names paired in byte order.
fn open_level<'n>(
    load: &mut NodeLoader<'n, '_>,
    expected: Option<&Blake3Digest>,
    observed: Option<&Blake3Digest>,
    prefix: String,
    depth: usize,
    visit: &mut dyn FnMut(Visit<'_>) -> Result<()>,
) -> Result<Option<Level>> {
    if let (Some(x), Some(y)) = (expected, observed) {
        if x == y {
            visit(Visit::EqualSubtree {
                path: &prefix,
                id: *x,
                depth,
            })?;
            return Ok(None);
        }
    }
    if depth > MAX_DEPTH {
        if let Some(id) = expected.or(observed) {
            visit(Visit::TooDeep {
                path: &prefix,
                id: *id,
            })?;
        }
        return Ok(None);
    }
    let node_a = match expected {
        Some(id) => load(id)?,
        None => None,
    };
    let node_b = match observed {
        Some(id) => load(id)?,
        None => None,
    };
    let mut names: BTreeMap<&str, (Option<&TreeEntry>, Option<&TreeEntry>)> = BTreeMap::new();
    for entry in node_a.iter().flat_map(|n| n.entries()) {
        names.entry(entry.name()).or_default().0 = Some(entry);
    }
    for entry in node_b.iter().flat_map(|n| n.entries()) {
        names.entry(entry.name()).or_default().1 = Some(entry);
    }
    let entries: Vec<PairedEntry> = names
        .into_iter()
        .map(|(name, (a, b))| PairedEntry {
            name: name.to_string(),
            file_a: file_of(a).copied(),
            file_b: file_of(b).copied(),
            dir_a: dir_of(a),
            dir_b: dir_of(b),
        })
        .collect();
    Ok(Some(Level {
        prefix,
        depth,
        entries: entries.into_iter(),
    }))
}

fn file_of(entry: Option<&TreeEntry>) -> Option<&FileMeta> {
    match entry {
        Some(TreeEntry::File { meta, .. }) => Some(meta),
        _ => None,
    }
}

fn dir_of(entry: Option<&TreeEntry>) -> Option<Blake3Digest> {
    match entry {
        Some(TreeEntry::Dir { tree, .. }) => Some(*tree),
        _ => None,
    }
}

/// Why [`walk_available`] did not read a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnreadNode {
    /// The node is not available (missing, unreadable, or not a tree node).
    Unavailable,
    /// The node lies deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// [`walk_trees`] of one tree for a checker (`fsck`, `reindex`): nodes come from `nodes`
/// (already read and checked), and a node it does not have, or one too deep, is listed with why
/// and skipped, never an error, so the walk goes on. Returns the files reached, in path-byte
/// order, and the nodes not read.
pub fn walk_available<'n>(
    nodes: impl Fn(&Blake3Digest) -> Option<&'n TreeNode>,
    root: &Blake3Digest,
) -> (Vec<HashedFile>, Vec<(Blake3Digest, UnreadNode)>) {
    let unread = std::cell::RefCell::new(Vec::new());
    let mut files = Vec::new();
    let walked = walk_trees(
        &mut |id| {
            let node = nodes(id);
            if node.is_none() {
                unread.borrow_mut().push((*id, UnreadNode::Unavailable));
            }
            Ok(node.map(Cow::Borrowed))
        },
        Some(root),
        None,
        &mut |visit| {
            match visit {
                Visit::File {
                    path,
                    expected: Some(meta),
                    ..
                } => files.push(HashedFile {
                    rel_path: path.to_string(),
                    meta: *meta,
                }),
                Visit::TooDeep { id, .. } => unread.borrow_mut().push((id, UnreadNode::TooDeep)),
                _ => {}
            }
            Ok(())
        },
    );
    // Neither closure returns an error, so neither can the walk.
    debug_assert!(walked.is_ok());
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    (files, unread.into_inner())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::format::tree::build_tree;

    fn file(path: &str, content: &str) -> HashedFile {
        crate::format::tree::test_file(path, content.as_bytes(), false)
    }

    /// Build the tree of `files` and add its nodes to `nodes`; returns the root id.
    fn tree(files: &[HashedFile], nodes: &mut HashMap<Blake3Digest, TreeNode>) -> Blake3Digest {
        let built = build_tree(files).unwrap();
        for (id, bytes) in &built.nodes {
            nodes.insert(*id, TreeNode::decode(bytes).unwrap());
        }
        built.root
    }

    #[test]
    fn a_pair_walk_skips_equal_subtrees_without_reading_them_and_meets_every_other_path() {
        let mut nodes = HashMap::new();
        let same = [file("same/x.txt", "x\n"), file("same/deep/y.txt", "y\n")];
        let a = tree(
            &[
                same[1].clone(),
                same[0].clone(),
                file("top.txt", "a\n"),
                file("was-file", "f\n"),
            ],
            &mut nodes,
        );
        let b = tree(
            &[
                same[1].clone(),
                same[0].clone(),
                file("top.txt", "b\n"),
                file("was-file/now-inside", "g\n"),
            ],
            &mut nodes,
        );
        let same_id = tree(
            &[file("x.txt", "x\n"), file("deep/y.txt", "y\n")],
            &mut HashMap::new(),
        );
        let mut read = Vec::new();
        let mut met = Vec::new();
        walk_trees(
            &mut |id| {
                read.push(*id);
                Ok(nodes.get(id).map(Cow::Borrowed))
            },
            Some(&a),
            Some(&b),
            &mut |visit| {
                met.push(match visit {
                    Visit::File {
                        path,
                        expected,
                        observed,
                    } => format!("file {path} {} {}", expected.is_some(), observed.is_some()),
                    Visit::EqualSubtree { path, id, depth } => {
                        assert_eq!(id, same_id);
                        format!("equal {path} {depth}")
                    }
                    Visit::TooDeep { path, .. } => format!("too deep {path}"),
                });
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            met,
            [
                "equal same 1",
                "file top.txt true true",
                "file was-file true false",
                "file was-file/now-inside false true",
            ]
        );
        assert!(!read.contains(&same_id), "an equal subtree was read");
    }

    #[test]
    fn a_tolerant_walk_lists_what_it_reaches_and_the_nodes_it_could_not_read() {
        let mut nodes = HashMap::new();
        let root = tree(
            &[
                file("a.txt", "a\n"),
                file("sub/b.txt", "b\n"),
                file("z.txt", "z\n"),
            ],
            &mut nodes,
        );
        let sub = tree(&[file("b.txt", "b\n")], &mut HashMap::new());
        nodes.remove(&sub);
        let (files, unread) = walk_available(|id| nodes.get(id), &root);
        let paths: Vec<&str> = files.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "z.txt"]);
        assert_eq!(unread, [(sub, UnreadNode::Unavailable)]);
    }
}
