//! `PacketRecord::decode` on arbitrary bytes: accepted only in canonical form, so whatever
//! decodes must encode back to the same bytes.
#![no_main]

use evstore::digest::blake3_of;
use evstore::packet_ref::check_packet_name;
use evstore::format::record::PacketRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = PacketRecord::decode(data) else {
        return;
    };
    assert_eq!(record.encode(), data, "an accepted record is not canonical");
    assert_eq!(record.id(), blake3_of(data));
    assert!(record.version >= 1);
    assert!(check_packet_name(&record.name).is_ok());
});
