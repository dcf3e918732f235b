//! Packet names and the PACKET references users type.
//!
//! A PACKET argument is `NAME` (the latest version), `NAME@N`, or a hex prefix of at least 8
//! lowercase digits of a packet's `packet_tree_sha256` or `tree`. A name is 1 to 128 characters
//! from `A-Z a-z 0-9 . _ -`, starting with a letter or digit. A name made only of hex digits is
//! both a name and a prefix; the catalog resolves it and refuses it if the two disagree.

/// The longest packet name.
pub const MAX_NAME_LEN: usize = 128;
/// The shortest hex prefix accepted.
pub const MIN_PREFIX_LEN: usize = 8;

/// A parsed PACKET reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketRef {
    /// The latest version of a name, or (if the text is all hex) a digest prefix.
    Name {
        /// The name.
        name: String,
        /// True if the text could also be a digest prefix.
        also_prefix: bool,
    },
    /// A given version of a name.
    Version {
        /// The name.
        name: String,
        /// The version, from 1.
        version: u64,
    },
    /// A digest prefix that is not a valid name (it never is: every hex string is a name).
    Prefix(String),
}

/// Check a packet name; the error is a reason sentence.
pub fn check_packet_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "packet name must be 1 to {MAX_NAME_LEN} characters: {name:?}"
        ));
    }
    let first_ok = name.as_bytes()[0].is_ascii_alphanumeric();
    let all_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !first_ok || !all_ok {
        return Err(format!(
            "packet name {name:?} must use only A-Z a-z 0-9 . _ - and start with a letter or digit"
        ));
    }
    Ok(())
}

/// Check the name of a packet about to be created: a valid name that does not look like a hex
/// prefix (8 to 64 lowercase hex digits), since `NAME` would then also be read as a prefix of
/// other packets' hashes and become ambiguous. The error is a reason sentence.
pub fn check_new_packet_name(name: &str) -> Result<(), String> {
    check_packet_name(name)?;
    if looks_like_prefix(name) {
        return Err(format!(
            "packet name {name:?} is {} lowercase hex digits, so it would also be read as a hex \
             prefix of packets' hashes and could become ambiguous; choose a name with another \
             character, such as \"{name}-packet\"",
            name.len()
        ));
    }
    Ok(())
}

/// True if `text` is what a PACKET argument reads as a hex prefix: 8 to 64 lowercase hex digits.
fn looks_like_prefix(text: &str) -> bool {
    text.len() >= MIN_PREFIX_LEN && text.len() <= 64 && crate::digest::is_lower_hex(text)
}

/// Why a NAME that matched nothing was not read as a hex prefix, if it looks like one was meant
/// (all hex digits, but too short or not lowercase).
pub fn prefix_hint(text: &str) -> Option<String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) || looks_like_prefix(text) {
        return None;
    }
    if text.len() > 64 {
        return Some(format!(
            "a hex prefix is at most 64 digits; {text:?} has {}",
            text.len()
        ));
    }
    let mut reasons = Vec::new();
    if text.len() < MIN_PREFIX_LEN {
        reasons.push(format!("{text:?} has {}", text.len()));
    }
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        reasons.push(format!(
            "uppercase is not read as hex (try {:?})",
            text.to_ascii_lowercase()
        ));
    }
    Some(format!(
        "a hex prefix needs {MIN_PREFIX_LEN} to 64 lowercase hex digits: {}",
        reasons.join("; ")
    ))
}

/// Parse a PACKET reference; the error is a reason sentence.
pub fn parse_packet_ref(text: &str) -> Result<PacketRef, String> {
    if let Some((name, version)) = text.split_once('@') {
        check_packet_name(name)?;
        let valid_number = !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_digit())
            && !version.starts_with('0');
        let version = version
            .parse::<u64>()
            .ok()
            .filter(|_| valid_number)
            .ok_or_else(|| {
                format!("{text:?}: the version after '@' must be a whole number from 1")
            })?;
        return Ok(PacketRef::Version {
            name: name.to_string(),
            version,
        });
    }
    let is_prefix = looks_like_prefix(text);
    match check_packet_name(text) {
        Ok(()) => Ok(PacketRef::Name {
            name: text.to_string(),
            also_prefix: is_prefix,
        }),
        Err(_) if is_prefix => Ok(PacketRef::Prefix(text.to_string())),
        Err(reason) => Err(format!(
            "{reason} (a PACKET is NAME, NAME@N, or a hex prefix of 8 or more digits)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            parse_packet_ref("fix7-p0").unwrap(),
            PacketRef::Name {
                name: "fix7-p0".into(),
                also_prefix: false
            }
        );
        assert_eq!(
            parse_packet_ref("fix7@12").unwrap(),
            PacketRef::Version {
                name: "fix7".into(),
                version: 12
            }
        );
        assert_eq!(
            parse_packet_ref("2fa3d54e").unwrap(),
            PacketRef::Name {
                name: "2fa3d54e".into(),
                also_prefix: true
            }
        );
        for bad in [
            "", "a@", "a@0", "a@01", "a@-1", "a@x", "@1", "-a", "a/b", "a b", "a@1@2",
        ] {
            assert!(parse_packet_ref(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_packet_ref(&"a".repeat(129)).is_err());
        assert!(check_new_packet_name("2fa3d54e").is_err());
        assert!(check_new_packet_name(&"a".repeat(64)).is_err());
        for ok in ["2fa3d54", "2FA3D54E", "2fa3d54e-x", &"a".repeat(65)] {
            assert_eq!(check_new_packet_name(ok), Ok(()), "{ok:?}");
        }
        assert!(prefix_hint("2fa3d54").unwrap().contains("has 7"));
        assert!(prefix_hint("2FA3D54E").unwrap().contains("\"2fa3d54e\""));
        assert_eq!(prefix_hint("2fa3d54e"), None);
        assert_eq!(prefix_hint("report"), None);
        // Seven hex digits are a name, not a prefix.
        assert_eq!(
            parse_packet_ref("2fa3d54").unwrap(),
            PacketRef::Name {
                name: "2fa3d54".into(),
                also_prefix: false
            }
        );
    }
}
