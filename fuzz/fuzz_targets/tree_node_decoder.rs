//! `TreeNode::decode` on arbitrary bytes: a node is accepted only in its canonical encoding, so
//! whatever decodes must encode back to the same bytes (one node, one id).
#![no_main]

use evstore::digest::blake3_of;
use evstore::format::tree::TreeNode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(node) = TreeNode::decode(data) else {
        return;
    };
    assert_eq!(
        node.encode(),
        data,
        "an accepted tree node is not canonical"
    );
    assert_eq!(node.id(), blake3_of(data));
    assert!(!node.entries().is_empty());
    // The decoded entries must pass the constructor's checks too.
    let again =
        TreeNode::new(node.entries().to_vec()).expect("TreeNode::new refused a decoded node");
    assert_eq!(again, node);
});
