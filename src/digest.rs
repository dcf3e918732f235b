//! Digest newtypes and the single-pass dual hasher.
//!
//! evstore names content two ways: BLAKE3 (the store's object ids and the Merkle `tree` root) and
//! SHA-256 (interoperability with `sha256sum`: `HASH_MANIFEST.txt` and `packet_tree_sha256`).
//! [`Blake3Digest`] and [`Sha256Digest`] are distinct types so the two can never be confused. Both
//! print as 64 lowercase hex digits, parse only from exactly that form, and compare in constant
//! time. [`DualHasher`] feeds every byte to both algorithms in the same pass, so a file is read once.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;
use subtle::ConstantTimeEq;

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Eq, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Build from a byte slice that must be exactly 32 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; 32]>::try_from(bytes).ok().map($name)
            }

            /// Parse exactly 64 lowercase hex digits; anything else is `None`.
            pub fn parse_hex(text: &str) -> Option<Self> {
                if text.len() != 64 || !is_lower_hex(text) {
                    return None;
                }
                let mut out = [0u8; 32];
                hex::decode_to_slice(text, &mut out).ok()?;
                Some($name(out))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        // Equality compares all 32 bytes, so hashing all 32 bytes is consistent with it.
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, "({})"), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                $name::parse_hex(text).ok_or_else(|| {
                    format!(concat!("not a ", $label, " digest (64 lowercase hex digits): {:?}"), text)
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
    };
}

digest_type!(
    /// A BLAKE3-256 digest: an object id, a tree node id, or a packet's `tree` root.
    Blake3Digest,
    "blake3"
);
digest_type!(
    /// A SHA-256 digest: a file's interop hash or a packet's `packet_tree_sha256`.
    Sha256Digest,
    "sha256"
);

/// True if every character is a lowercase hex digit (`0-9a-f`).
pub fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// BLAKE3 of a byte slice.
pub fn blake3_of(bytes: &[u8]) -> Blake3Digest {
    Blake3Digest(*blake3::hash(bytes).as_bytes())
}

/// SHA-256 of a byte slice.
pub fn sha256_of(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest(sha2::Sha256::digest(bytes).into())
}

/// Both digests and the length of a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DualDigest {
    /// BLAKE3 of the bytes.
    pub blake3: Blake3Digest,
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
    /// Number of bytes hashed.
    pub len: u64,
}

/// Feeds the same bytes to BLAKE3 and SHA-256 in one pass.
#[derive(Clone, Default)]
pub struct DualHasher {
    blake3: blake3::Hasher,
    sha256: sha2::Sha256,
    len: u64,
}

impl DualHasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> DualHasher {
        DualHasher::default()
    }

    /// Hash more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.blake3.update(bytes);
        self.sha256.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if no byte was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Both digests of everything hashed.
    pub fn finish(self) -> DualDigest {
        DualDigest {
            blake3: Blake3Digest(*self.blake3.finalize().as_bytes()),
            sha256: Sha256Digest(self.sha256.finalize().into()),
            len: self.len,
        }
    }
}

/// Both digests of a byte slice.
pub fn dual_of(bytes: &[u8]) -> DualDigest {
    let mut hasher = DualHasher::new();
    hasher.update(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors_for_empty_input() {
        let digest = dual_of(b"");
        assert_eq!(
            digest.sha256.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest.blake3.to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_eq!(digest.len, 0);
    }

    #[test]
    fn split_updates_equal_one_update() {
        let mut hasher = DualHasher::new();
        hasher.update(b"hello ");
        hasher.update(b"world");
        assert_eq!(hasher.finish(), dual_of(b"hello world"));
    }

    #[test]
    fn hex_parsing_is_strict() {
        let hex = "ab".repeat(32);
        assert!(Sha256Digest::parse_hex(&hex).is_some());
        assert!(Sha256Digest::parse_hex(&hex.to_uppercase()).is_none());
        assert!(Sha256Digest::parse_hex(&hex[..62]).is_none());
        assert!(Sha256Digest::parse_hex(&format!("{hex}0")).is_none());
        assert!(Sha256Digest::parse_hex(&format!("g{}", &hex[1..])).is_none());
        let digest: Blake3Digest = hex.parse().unwrap();
        assert_eq!(digest.to_string(), hex);
    }
}
