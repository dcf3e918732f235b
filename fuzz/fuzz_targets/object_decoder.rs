//! The object file decoder on arbitrary bytes, plus an encode/decode round trip.
//!
//! 1. `Header::decode` on the first 16 bytes never panics and re-encodes to them when accepted.
//! 2. `decode_to_vec(data, id)` never panics; on Ok the payload hashes to `id` and has the length
//!    the header says. The input is tried against two ids: the BLAKE3 of the empty payload, and
//!    the BLAKE3 of whatever `decode_object` streamed out before refusing (it does not retract
//!    output), so structurally valid objects reach the Ok path without a preimage.
//! 3. `encode_in_memory(kind, payload)` then `decode_to_vec` gives back the payload, kind and length.
#![no_main]

use evstore::digest::{blake3_of, Blake3Digest};
use evstore::format::object::{
    decode_object, decode_to_vec, encode_in_memory, Header, ObjectKind, HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

fn check_ok(data: &[u8], id: &Blake3Digest) -> Option<Vec<u8>> {
    let (header, payload) = decode_to_vec(data, id).ok()?;
    assert_eq!(
        blake3_of(&payload),
        *id,
        "accepted payload does not hash to its id"
    );
    assert_eq!(
        header.len,
        payload.len() as u64,
        "accepted payload length differs from header"
    );
    let mut header_bytes = [0u8; HEADER_LEN];
    header_bytes.copy_from_slice(&data[..HEADER_LEN]);
    assert_eq!(Header::decode(&header_bytes), Ok(header));
    Some(payload)
}

fuzz_target!(|data: &[u8]| {
    // 1. The header alone.
    if data.len() >= HEADER_LEN {
        let mut header_bytes = [0u8; HEADER_LEN];
        header_bytes.copy_from_slice(&data[..HEADER_LEN]);
        if let Ok(header) = Header::decode(&header_bytes) {
            assert_eq!(header.encode(), header_bytes, "header does not re-encode");
        }
    }

    // 2. The whole input as a stored object.
    let empty_id = blake3_of(b"");
    if let Some(payload) = check_ok(data, &empty_id) {
        assert!(payload.is_empty());
    }
    // Bound the work: the header may promise far more than the input holds (a zstd frame can
    // expand a few bytes into megabytes); decode_object stops at the header's length.
    let mut streamed = Vec::new();
    let first = decode_object(data, &empty_id, &mut streamed);
    if first.is_err() {
        let id = blake3_of(&streamed);
        if let Some(payload) = check_ok(data, &id) {
            assert_eq!(
                payload, streamed,
                "two decodes of one object gave different payloads"
            );
        }
    }

    // 3. Round trip of a payload built from the input.
    if let Some((&selector, payload)) = data.split_first() {
        let kind = ObjectKind::from_code(selector % 4 + 1).expect("codes 1..=4 are kinds");
        let stored = encode_in_memory(kind, payload).expect("encoding in memory cannot fail");
        let id = blake3_of(payload);
        let (header, back) = decode_to_vec(&stored, &id).expect("round trip refused");
        assert_eq!(back, payload, "round trip changed the payload");
        assert_eq!(header.kind, kind);
        assert_eq!(header.len, payload.len() as u64);
        // Any other id must be refused.
        let mut wrong = *id.as_bytes();
        wrong[0] ^= 1;
        assert!(
            decode_to_vec(&stored, &Blake3Digest(wrong)).is_err(),
            "wrong id accepted"
        );
    }
});
