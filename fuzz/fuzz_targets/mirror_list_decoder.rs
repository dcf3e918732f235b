//! `MirrorList::decode` on arbitrary bytes (the payload of a mirror list object, read by
//! catch-up, `reindex` and `fsck`): accepted only in canonical form and only when every rule of
//! FORMAT.md §7e holds, so whatever decodes must encode back to the same bytes.
#![no_main]

use evstore::digest::blake3_of;
use evstore::format::mirror_list::{MirrorList, PUBLICATION_KINDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(list) = MirrorList::decode(data) else {
        return;
    };
    assert_eq!(list.encode(), data, "an accepted mirror list is not canonical");
    assert_eq!(list.id(), blake3_of(data));
    assert!(list.kb_root.starts_with('/'));
    assert!(PUBLICATION_KINDS.contains(&list.dedup.as_str()));
    assert!(!list.files.is_empty());
    for pair in list.files.windows(2) {
        assert!(pair[0].path.as_bytes() < pair[1].path.as_bytes());
    }
    for file in &list.files {
        assert!(PUBLICATION_KINDS.contains(&file.stored_as.as_str()));
        if file.stored_as == "copy" {
            assert_eq!(file.kb_path, format!("{}/{}", list.rel_path, file.path));
        }
    }
});
