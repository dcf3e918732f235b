//! A stored packet, read back and verified: its record object checked against the catalog row,
//! its tree walked from the stored nodes (each decoded strictly), and the walk's files checked to
//! hash to the recorded `packet_tree_sha256`. Every read path (show, manifest, cat, export, diff,
//! mirror, rerun) starts here, so a file list never comes from the catalog alone.

use std::io::{self, Write};

use crate::catalog::PacketRow;
use crate::digest::Blake3Digest;
use crate::error::{Error, Result};
use crate::format::object::ObjectKind;
use crate::format::record::PacketRecord;
use crate::format::tree::{manifest_of, HashedFile, TreeEntry, TreeNode, MAX_DEPTH};
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
pub fn walk_tree(
    store: &Store,
    root: &Blake3Digest,
) -> Result<(Vec<HashedFile>, Vec<Blake3Digest>)> {
    let mut files = Vec::new();
    let mut node_ids = Vec::new();
    walk_into(store, root, "", 0, &mut files, &mut node_ids)?;
    files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok((files, node_ids))
}

fn walk_into(
    store: &Store,
    id: &Blake3Digest,
    prefix: &str,
    depth: usize,
    files: &mut Vec<HashedFile>,
    node_ids: &mut Vec<Blake3Digest>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::corrupt(
            format!("tree node {id}"),
            format!("tree is deeper than {MAX_DEPTH} levels"),
        ));
    }
    node_ids.push(*id);
    let node = load_node(store, id)?;
    for entry in node.entries() {
        let path = if prefix.is_empty() {
            entry.name().to_string()
        } else {
            format!("{prefix}/{}", entry.name())
        };
        match entry {
            TreeEntry::File { meta, .. } => files.push(HashedFile {
                rel_path: path,
                meta: *meta,
            }),
            TreeEntry::Dir { tree, .. } => {
                walk_into(store, tree, &path, depth + 1, files, node_ids)?
            }
        }
    }
    Ok(())
}
