//! Pack files: many small objects in one file, so that archiving thousands of small files costs
//! one file creation instead of thousands.
//!
//! A pack is `<store>/packs/<hex>.pack`:
//!
//! ```text
//! "EVPACK1\n"                                  8 bytes
//! object bytes, back to back                   each exactly what a loose object file holds
//! index: one 48-byte entry per object, sorted by id:
//!     id (32 bytes, BLAKE3 of the payload) | offset (u64 LE) | length (u64 LE)
//! footer: entry count (u64 LE) | "EVPKEND\n"   16 bytes
//! ```
//!
//! `<hex>` is the BLAKE3 of the index and footer bytes, so a pack's name pins which object sits
//! where, and each object's own id pins its bytes. The entries, taken in offset order, tile the
//! bytes between the magic and the index exactly: no gap, no overlap, no empty entry. This module
//! is pure: it encodes and checks those bytes and knows nothing of files or stores.

use crate::digest::Blake3Digest;

/// The first 8 bytes of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"EVPACK1\n";
/// The last 8 bytes of every pack.
pub const PACK_END_MAGIC: &[u8; 8] = b"EVPKEND\n";
/// Bytes per index entry.
pub const INDEX_ENTRY_LEN: u64 = 48;
/// Bytes of the footer (entry count and end magic).
pub const FOOTER_LEN: u64 = 16;
/// The file name extension of a pack.
pub const PACK_EXTENSION: &str = "pack";

/// Where one object sits inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackEntry {
    /// The object id (BLAKE3 of its payload).
    pub id: Blake3Digest,
    /// Offset of the object's first byte from the start of the pack.
    pub offset: u64,
    /// The object's stored length in bytes.
    pub len: u64,
}

/// The index and footer of a pack holding `entries`, which it sorts by id. The caller has
/// written the objects at the offsets the entries give, right after [`PACK_MAGIC`].
pub fn encode_trailer(entries: &mut [PackEntry]) -> Vec<u8> {
    entries.sort_by_key(|e| e.id);
    let mut out = Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN as usize + 16);
    for entry in entries.iter() {
        out.extend_from_slice(entry.id.as_bytes());
        out.extend_from_slice(&entry.offset.to_le_bytes());
        out.extend_from_slice(&entry.len.to_le_bytes());
    }
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(PACK_END_MAGIC);
    out
}

/// The name of a pack whose index and footer are `trailer`.
pub fn pack_name(trailer: &[u8]) -> Blake3Digest {
    crate::digest::blake3_of(trailer)
}

/// Read the entry count from a pack's last 16 bytes and return where the index starts, for a
/// pack of `file_len` bytes. The message says what is wrong.
pub fn index_start(footer: &[u8; FOOTER_LEN as usize], file_len: u64) -> Result<u64, String> {
    if &footer[8..] != PACK_END_MAGIC {
        return Err("no pack footer (the file is truncated or is not a pack)".into());
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&footer[..8]);
    let count = u64::from_le_bytes(count);
    let index_len = count.checked_mul(INDEX_ENTRY_LEN);
    match index_len {
        Some(index_len)
            if index_len
                .checked_add(PACK_MAGIC.len() as u64 + FOOTER_LEN)
                .is_some_and(|needed| needed <= file_len) =>
        {
            Ok(file_len - FOOTER_LEN - index_len)
        }
        _ => Err(format!(
            "the footer claims {count} entries, more than the file can hold"
        )),
    }
}

/// Decode and check an index (the bytes from [`index_start`] up to the footer), for objects
/// that must tile `PACK_MAGIC.len()..index_start`. Returns the entries in id order.
pub fn decode_index(index: &[u8], index_start: u64) -> Result<Vec<PackEntry>, String> {
    if index.len() as u64 % INDEX_ENTRY_LEN != 0 {
        return Err("the index is not a whole number of entries".into());
    }
    let mut entries = Vec::with_capacity(index.len() / INDEX_ENTRY_LEN as usize);
    for chunk in index.chunks_exact(INDEX_ENTRY_LEN as usize) {
        let mut id = [0u8; 32];
        id.copy_from_slice(&chunk[..32]);
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&chunk[32..40]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&chunk[40..48]);
        entries.push(PackEntry {
            id: Blake3Digest(id),
            offset: u64::from_le_bytes(offset),
            len: u64::from_le_bytes(len),
        });
    }
    if entries.is_empty() {
        return Err("the pack holds no object".into());
    }
    for pair in entries.windows(2) {
        if pair[0].id.as_bytes() >= pair[1].id.as_bytes() {
            return Err(format!(
                "index entries out of order or repeated at object {}",
                pair[1].id
            ));
        }
    }
    let mut by_offset: Vec<&PackEntry> = entries.iter().collect();
    by_offset.sort_by_key(|e| e.offset);
    let mut expected = PACK_MAGIC.len() as u64;
    for entry in by_offset {
        if entry.offset != expected || entry.len == 0 {
            return Err(format!(
                "index entry for object {} (offset {}, length {}) does not follow the previous \
                 object at offset {expected}",
                entry.id, entry.offset, entry.len
            ));
        }
        expected = entry
            .offset
            .checked_add(entry.len)
            .ok_or_else(|| format!("index entry for object {} overflows", entry.id))?;
    }
    if expected != index_start {
        return Err(format!(
            "the objects end at offset {expected}, but the index starts at {index_start}"
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(fill: u8, offset: u64, len: u64) -> PackEntry {
        PackEntry {
            id: Blake3Digest([fill; 32]),
            offset,
            len,
        }
    }

    /// A whole pack of `objects` (id fill byte, bytes), as a writer lays it out.
    fn pack_of(objects: &[(u8, &[u8])]) -> (Vec<u8>, Vec<PackEntry>) {
        let mut bytes = PACK_MAGIC.to_vec();
        let mut entries = Vec::new();
        for (fill, object) in objects {
            entries.push(entry(*fill, bytes.len() as u64, object.len() as u64));
            bytes.extend_from_slice(object);
        }
        bytes.extend_from_slice(&encode_trailer(&mut entries));
        (bytes, entries)
    }

    fn decode(pack: &[u8]) -> Result<Vec<PackEntry>, String> {
        let mut footer = [0u8; 16];
        footer.copy_from_slice(&pack[pack.len() - 16..]);
        let start = index_start(&footer, pack.len() as u64)?;
        decode_index(&pack[start as usize..pack.len() - 16], start)
    }

    #[test]
    fn test_vector_two_objects() {
        let (pack, _) = pack_of(&[(0xbb, b"second"), (0xaa, b"first")]);
        // magic, "second" at 8, "first" at 14, then the index sorted by id: aa…, bb….
        assert_eq!(pack.len(), 8 + 11 + 2 * 48 + 16);
        let trailer = &pack[19..];
        assert_eq!(&trailer[..32], &[0xaa; 32]);
        assert_eq!(
            &trailer[32..48],
            &[14, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&trailer[48..80], &[0xbb; 32]);
        assert_eq!(
            &trailer[80..96],
            &[8, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&trailer[96..], b"\x02\0\0\0\0\0\0\0EVPKEND\n");
        assert_eq!(
            pack_name(trailer).to_hex(),
            "d1e24d2f79754529adfd9170134049cfcd6c1b66a5eb092bfb3d0d149a7bdd20",
            "see docs/FORMAT.md, packs"
        );
        let entries = decode(&pack).unwrap();
        assert_eq!(entries, vec![entry(0xaa, 14, 5), entry(0xbb, 8, 6)]);
    }

    #[test]
    fn a_truncated_pack_is_refused() {
        let (pack, _) = pack_of(&[(1, b"x")]);
        for cut in 1..pack.len() - 16 {
            let short = &pack[..pack.len() - cut];
            if short.len() < 16 {
                break;
            }
            assert!(decode(short).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn a_footer_claiming_too_many_entries_is_refused() {
        let mut footer = [0u8; 16];
        footer[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        footer[8..].copy_from_slice(PACK_END_MAGIC);
        let err = index_start(&footer, 1 << 40).unwrap_err();
        assert!(err.contains("more than the file can hold"), "{err}");
    }

    #[test]
    fn gaps_overlaps_and_disorder_are_refused() {
        let (pack, _) = pack_of(&[(1, b"abc"), (2, b"def")]);
        let start = pack.len() - 16 - 96;
        let index = pack[start..pack.len() - 16].to_vec();
        // Overlap: the second entry starts inside the first.
        let mut overlap = index.clone();
        overlap[48 + 32] = 9;
        assert!(decode_index(&overlap, start as u64).is_err());
        // Empty entry.
        let mut empty = index.clone();
        empty[40] = 0;
        assert!(decode_index(&empty, start as u64).is_err());
        // Disorder: swap the two ids.
        let mut swapped = index.clone();
        swapped[..32].copy_from_slice(&[2; 32]);
        swapped[48..80].copy_from_slice(&[1; 32]);
        let err = decode_index(&swapped, start as u64).unwrap_err();
        assert!(err.contains("out of order"), "{err}");
        // The objects must end where the index starts.
        assert!(decode_index(&index, start as u64 + 1).is_err());
        // No entries at all.
        assert!(decode_index(&[], 8).is_err());
    }

    proptest! {
        #[test]
        fn every_pack_a_writer_lays_out_decodes_to_its_entries(
            objects in proptest::collection::btree_map(any::<u8>(), proptest::collection::vec(any::<u8>(), 1..64), 1..20)
        ) {
            let list: Vec<(u8, &[u8])> = objects.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let (pack, mut entries) = pack_of(&list);
            entries.sort_by_key(|e| e.id);
            let decoded = decode(&pack).unwrap();
            prop_assert_eq!(&decoded, &entries);
            for e in decoded {
                let fill = e.id.as_bytes()[0];
                prop_assert_eq!(&pack[e.offset as usize..(e.offset + e.len) as usize], objects[&fill].as_slice());
            }
        }
    }
}
