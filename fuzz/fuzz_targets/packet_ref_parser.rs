//! `parse_packet_ref` and `check_packet_name` on arbitrary UTF-8: never panic, and what they
//! accept matches the documented grammar.
#![no_main]

use evstore::packet_ref::{
    check_packet_name, parse_packet_ref, PacketRef, MAX_NAME_LEN, MIN_PREFIX_LEN,
};
use libfuzzer_sys::fuzz_target;

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && text.as_bytes()[0].is_ascii_alphanumeric()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_prefix(text: &str) -> bool {
    (MIN_PREFIX_LEN..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(check_packet_name(text).is_ok(), is_name(text), "{text:?}");
    match parse_packet_ref(text) {
        Ok(PacketRef::Name { name, also_prefix }) => {
            assert_eq!(name, text);
            assert!(is_name(&name));
            assert_eq!(also_prefix, is_prefix(&name));
        }
        Ok(PacketRef::Version { name, version }) => {
            assert!(is_name(&name));
            assert!(version >= 1);
            assert_eq!(format!("{name}@{version}"), text, "version not canonical");
        }
        Ok(PacketRef::Prefix(prefix)) => {
            assert_eq!(prefix, text);
            assert!(is_prefix(&prefix));
        }
        Err(_) => {
            assert!(!is_name(text), "a valid name was refused: {text:?}");
        }
    }
});
