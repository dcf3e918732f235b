//! The pack index reader (`pack::index_start` and `pack::decode_index`) on arbitrary bytes taken
//! as a whole pack file: whatever it accepts must be an index a writer could have produced for
//! those bytes, so encoding the entries again gives back the trailer byte for byte.
#![no_main]

use evstore::format::pack::{decode_index, encode_trailer, index_start, FOOTER_LEN, PACK_MAGIC};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < FOOTER_LEN as usize {
        return;
    }
    let mut footer = [0u8; FOOTER_LEN as usize];
    footer.copy_from_slice(&data[data.len() - FOOTER_LEN as usize..]);
    let Ok(start) = index_start(&footer, data.len() as u64) else {
        return;
    };
    assert!(start >= PACK_MAGIC.len() as u64 && start <= data.len() as u64 - FOOTER_LEN);
    let index = &data[start as usize..data.len() - FOOTER_LEN as usize];
    let Ok(entries) = decode_index(index, start) else {
        return;
    };
    // Strictly ascending ids; in offset order the entries tile 8..start exactly.
    assert!(entries.windows(2).all(|w| w[0].id < w[1].id));
    let mut by_offset = entries.clone();
    by_offset.sort_by_key(|e| e.offset);
    let mut at = PACK_MAGIC.len() as u64;
    for entry in &by_offset {
        assert_eq!(entry.offset, at);
        assert!(entry.len > 0);
        at += entry.len;
    }
    assert_eq!(at, start);
    let mut again = entries.clone();
    assert_eq!(encode_trailer(&mut again), &data[start as usize..]);
});
