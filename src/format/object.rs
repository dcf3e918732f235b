//! The object file format: a 16-byte header followed by the payload, raw or as one zstd frame.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "EVSO"
//! 4       1     format version (1)
//! 5       1     kind: 1 blob, 2 tree node, 3 packet record, 4 attestation, 5 mirror list
//! 6       1     codec: 0 raw, 1 zstd (a single frame)
//! 7       1     reserved, 0
//! 8       8     length of the uncompressed payload, unsigned little-endian
//! 16      ...   payload
//! ```
//!
//! An object's id is the BLAKE3 of the uncompressed payload; the header is not hashed. Decoding
//! streams: it checks the header, decompresses, re-hashes, and fails if the length or the digest
//! differ from what the header and the id promise, or if any byte follows the payload.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::digest::{Blake3Digest, DualDigest, DualHasher};

/// The four magic bytes that open every object file.
pub const MAGIC: [u8; 4] = *b"EVSO";
/// The object format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The size of the header in bytes.
pub const HEADER_LEN: usize = 16;
/// The zstd level used for new objects.
pub const ZSTD_LEVEL: i32 = 3;

/// What an object holds. The kind lives in the header only; it is not part of the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// The bytes of a packet file.
    Blob,
    /// A CBOR-encoded Merkle tree node.
    Tree,
    /// A CBOR-encoded packet record.
    Record,
    /// A rerun attestation (compact JSON with sorted keys, see `docs/FORMAT.md`).
    Attestation,
    /// A CBOR-encoded mirror list: one recorded KB mirror, file by file
    /// ([`crate::format::mirror_list`]).
    MirrorList,
}

impl ObjectKind {
    /// The header byte for this kind.
    pub fn code(self) -> u8 {
        match self {
            ObjectKind::Blob => 1,
            ObjectKind::Tree => 2,
            ObjectKind::Record => 3,
            ObjectKind::Attestation => 4,
            ObjectKind::MirrorList => 5,
        }
    }

    /// The kind for a header byte.
    pub fn from_code(code: u8) -> Option<ObjectKind> {
        Some(match code {
            1 => ObjectKind::Blob,
            2 => ObjectKind::Tree,
            3 => ObjectKind::Record,
            4 => ObjectKind::Attestation,
            5 => ObjectKind::MirrorList,
            _ => return None,
        })
    }

    /// A lowercase name, as the catalog and JSON output use it.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Blob => "blob",
            ObjectKind::Tree => "tree",
            ObjectKind::Record => "record",
            ObjectKind::Attestation => "attestation",
            ObjectKind::MirrorList => "mirror-list",
        }
    }
}

/// How the payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// The payload bytes as they are.
    Raw,
    /// One zstd frame.
    Zstd,
}

/// A decoded object header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the object holds.
    pub kind: ObjectKind,
    /// How the payload is stored.
    pub codec: Codec,
    /// Length of the uncompressed payload.
    pub len: u64,
}

impl Header {
    /// The 16 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = FORMAT_VERSION;
        out[5] = self.kind.code();
        out[6] = match self.codec {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        };
        out[7] = 0;
        out[8..].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Parse 16 header bytes; the error is a reason sentence.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, String> {
        if bytes[..4] != MAGIC {
            return Err("bad magic (not an evstore object)".into());
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(format!("unsupported object format version {}", bytes[4]));
        }
        let kind = ObjectKind::from_code(bytes[5])
            .ok_or_else(|| format!("unknown object kind {}", bytes[5]))?;
        let codec = match bytes[6] {
            0 => Codec::Raw,
            1 => Codec::Zstd,
            other => return Err(format!("unknown codec {other}")),
        };
        if bytes[7] != 0 {
            return Err(format!("reserved header byte is {}, not 0", bytes[7]));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[8..]);
        Ok(Header {
            kind,
            codec,
            len: u64::from_le_bytes(len),
        })
    }
}

/// Encode a payload held in memory, choosing raw storage when zstd saves less than 1/32.
pub fn encode_in_memory(kind: ObjectKind, payload: &[u8]) -> io::Result<Vec<u8>> {
    thread_local! {
        // One compression context per thread, reused: creating one costs more than compressing
        // a typical 4 KiB file.
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let compressed = if payload.len() >= 64 {
        Some(COMPRESSOR.with(|cell| -> io::Result<Vec<u8>> {
            let mut cell = cell.borrow_mut();
            let compressor = match cell.as_mut() {
                Some(compressor) => compressor,
                None => cell.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
            };
            compressor.compress(payload)
        })?)
    } else {
        None
    };
    let (codec, body) = match compressed {
        Some(c) if c.len() < payload.len() - payload.len() / 32 => (Codec::Zstd, c),
        _ => (Codec::Raw, payload.to_vec()),
    };
    let header = Header {
        kind,
        codec,
        len: payload.len() as u64,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Why a stored object could not be decoded. The message is a sentence fragment.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The object is damaged: bad header, bad frame, wrong length, wrong digest, trailing bytes.
    #[error("{0}")]
    Corrupt(String),
    /// Reading the object or writing the output failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What decoding found.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    /// The header.
    pub header: Header,
    /// Digests of the payload; the BLAKE3 equals the id (decoding checked it).
    pub digest: DualDigest,
}

const CHUNK: usize = 256 * 1024;

/// Decode a stored object from `stored`, writing the payload to `out` as it streams, and verify
/// it against `id`. Output already written is not retracted on failure: callers that must not
/// hand out bad bytes decode into [`io::sink`] first.
pub fn decode_object<R: Read, W: Write>(
    stored: R,
    id: &Blake3Digest,
    mut out: W,
) -> Result<Decoded, DecodeError> {
    let mut reader = BufReader::with_capacity(CHUNK, stored);
    let mut header_bytes = [0u8; HEADER_LEN];
    read_exact_or_corrupt(&mut reader, &mut header_bytes, "truncated header")?;
    let header = Header::decode(&header_bytes).map_err(DecodeError::Corrupt)?;
    let mut hasher = DualHasher::new();
    let mut buf = vec![0u8; CHUNK];
    let leftover = match header.codec {
        Codec::Raw => {
            copy_hashing(&mut reader, header.len, &mut hasher, &mut out, &mut buf)?;
            reader
        }
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(DecodeError::Io)?
                .single_frame();
            copy_hashing(&mut decoder, header.len, &mut hasher, &mut out, &mut buf)?;
            decoder.finish()
        }
    };
    let mut leftover = leftover;
    let rest = leftover.fill_buf()?;
    if !rest.is_empty() {
        return Err(DecodeError::Corrupt(
            "trailing bytes after the payload".into(),
        ));
    }
    let digest = hasher.finish();
    if digest.blake3 != *id {
        return Err(DecodeError::Corrupt(format!(
            "content hashes to {}, not to its id",
            digest.blake3
        )));
    }
    Ok(Decoded { header, digest })
}

fn read_exact_or_corrupt<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    what: &str,
) -> Result<(), DecodeError> {
    reader.read_exact(buf).map_err(|err| {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            DecodeError::Corrupt(what.into())
        } else {
            DecodeError::Io(err)
        }
    })
}

/// Copy exactly `len` bytes from `reader` (then expect its end), hashing them.
fn copy_hashing<R: Read, W: Write>(
    reader: &mut R,
    len: u64,
    hasher: &mut DualHasher,
    out: &mut W,
    buf: &mut [u8],
) -> Result<(), DecodeError> {
    let mut remaining = len;
    while remaining > 0 {
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let got = match reader.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(DecodeError::Corrupt(format!(
                    "payload is {} bytes, header says {len}",
                    len - remaining
                )))
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(corrupt_or_io(err)),
        };
        hasher.update(&buf[..got]);
        out.write_all(&buf[..got])?;
        remaining -= got as u64;
    }
    // The payload must end exactly here; reading on also consumes a zstd frame's epilogue.
    let mut probe = [0u8; 1];
    loop {
        match reader.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                return Err(DecodeError::Corrupt(format!(
                    "payload is longer than the {len} bytes the header says"
                )))
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(corrupt_or_io(err)),
        }
    }
}

/// zstd reports a damaged frame as an `io::Error` of kind `Other`; it is corruption, not I/O.
fn corrupt_or_io(err: io::Error) -> DecodeError {
    match err.kind() {
        io::ErrorKind::Other | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => {
            DecodeError::Corrupt(format!("damaged payload: {err}"))
        }
        _ => DecodeError::Io(err),
    }
}

/// Decode an object held in memory and return its payload (for small objects: nodes, records).
pub fn decode_to_vec(stored: &[u8], id: &Blake3Digest) -> Result<(Header, Vec<u8>), DecodeError> {
    let mut out = Vec::new();
    let decoded = decode_object(stored, id, &mut out)?;
    Ok((decoded.header, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::blake3_of;

    #[test]
    fn round_trip_raw_and_zstd() {
        for payload in [
            Vec::new(),
            b"short".to_vec(),
            "compressible text ".repeat(1000).into_bytes(),
        ] {
            let stored = encode_in_memory(ObjectKind::Blob, &payload).unwrap();
            let id = blake3_of(&payload);
            let (header, back) = decode_to_vec(&stored, &id).unwrap();
            assert_eq!(back, payload);
            assert_eq!(header.len, payload.len() as u64);
            let expected = if payload.len() > 1000 {
                Codec::Zstd
            } else {
                Codec::Raw
            };
            assert_eq!(header.codec, expected);
        }
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let payload = "evidence ".repeat(200).into_bytes();
        let id = blake3_of(&payload);
        let stored = encode_in_memory(ObjectKind::Blob, &payload).unwrap();
        for i in 0..stored.len() {
            let mut bad = stored.clone();
            bad[i] ^= 0x01;
            assert!(decode_to_vec(&bad, &id).is_err(), "flip at byte {i} passed");
        }
        for cut in 0..stored.len() {
            assert!(
                decode_to_vec(&stored[..cut], &id).is_err(),
                "cut at {cut} passed"
            );
        }
        let mut longer = stored.clone();
        longer.push(0);
        assert!(decode_to_vec(&longer, &id).is_err());
    }

    /// The object-file vector of docs/FORMAT.md section 8.
    #[test]
    fn format_md_blob_vector() {
        let stored = encode_in_memory(ObjectKind::Blob, b"hello\n").unwrap();
        assert_eq!(
            hex::encode(stored),
            "4556534f01010000060000000000000068656c6c6f0a"
        );
        assert_eq!(
            blake3_of(b"hello\n").to_hex(),
            "8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99"
        );
    }

    #[test]
    fn header_vector() {
        let header = Header {
            kind: ObjectKind::Tree,
            codec: Codec::Zstd,
            len: 0x0102,
        };
        assert_eq!(
            hex::encode(header.encode()),
            "4556534f010201000201000000000000"
        );
        assert_eq!(Header::decode(&header.encode()).unwrap(), header);
    }
}
