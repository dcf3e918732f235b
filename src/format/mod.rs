//! Every on-disk format, each with its encoder, its strict decoder and its test vectors
//! (docs/FORMAT.md has the byte-level description of each). Nothing here touches the file system:
//! a format turns values into bytes and bytes back into values, or says exactly why it cannot.

pub mod allowed_signers;
pub mod attestation;
pub mod cbor;
pub mod dsse;
pub mod event;
pub mod manifest;
pub mod merkle;
pub mod mirror_list;
pub mod note;
pub mod object;
pub mod pack;
pub mod record;
pub mod references;
pub mod tree;
