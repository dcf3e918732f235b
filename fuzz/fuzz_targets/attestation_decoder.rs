//! `format::attestation::decode_summary` on arbitrary bytes: never panics, and whatever it accepts
//! has a PASS/FAIL verdict and a summary consistent with the fields it was read from.
#![no_main]

use evstore::format::attestation::decode_summary;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(attestation) = decode_summary(data) else {
        return;
    };
    assert!(attestation.verdict == "PASS" || attestation.verdict == "FAIL");
    assert_eq!(
        attestation.summary["packet"].as_str(),
        attestation.packet.as_deref()
    );
    let observed = attestation.summary["observed"]
        .as_array()
        .expect("summary lists observed hashes");
    assert_eq!(
        attestation.summary["runs"].as_u64(),
        Some(observed.len() as u64)
    );
    assert_eq!(
        attestation.expected_sha256.to_hex().len(),
        64,
        "expected hash is 32 bytes"
    );
});
