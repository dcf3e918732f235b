//! `Manifest::parse_seal` on arbitrary bytes.
//!
//! The parser promises to accept a seal only if every line is exactly canonical, so whatever it
//! accepts must re-serialise to the very same bytes, and the manifest must be internally
//! consistent (strictly sorted, every path findable, no path both a file and a folder).
#![no_main]

use std::path::Path;

use evstore::format::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::parse_seal(data, Path::new("HASH_MANIFEST.txt")) else {
        return;
    };
    assert!(!manifest.is_empty(), "an accepted seal lists no file");
    assert_eq!(
        manifest.text().as_bytes(),
        data,
        "an accepted seal is not canonical"
    );
    let entries = manifest.entries();
    for pair in entries.windows(2) {
        assert!(pair[0].path < pair[1].path, "entries not strictly sorted");
    }
    for entry in entries {
        assert_eq!(manifest.get(&entry.path), Some(&entry.sha256));
        assert_ne!(entry.path, "HASH_MANIFEST.txt", "the seal lists itself");
        let mut prefix = entry.path.as_str();
        while let Some(cut) = prefix.rfind('/') {
            prefix = &prefix[..cut];
            assert!(
                manifest.get(prefix).is_none(),
                "{prefix:?} is both a file and a folder"
            );
        }
    }
    // Building the same manifest from its entries must agree with the strict parser.
    let rebuilt = Manifest::from_entries(entries.to_vec()).expect("from_entries refused a seal");
    assert_eq!(rebuilt, manifest);
});
