//! Rerun attestations as in-toto: the in-toto Statement v1 an attestation object stands for, and
//! the DSSE envelope that carries it (`docs/FORMAT.md` §7b-1).
//!
//! The statement is derived from the stored attestation, deterministically: its one subject is
//! the packet (`name` the attestation's `NAME@N`, else `packet`; `digest` `{"sha256":
//! expected_sha256}`, the packet_tree_sha256, which is the SHA-256 of the packet's
//! `HASH_MANIFEST.txt`), its `predicateType` is [`RERUN_PREDICATE_TYPE`], and its predicate is the
//! attestation's JSON itself (command, environment, runs, verdict, per-file differences). The
//! statement's bytes are compact JSON with every object's keys sorted, so the same attestation
//! always gives the same payload, and a signature made at `rerun --sign` time still verifies on
//! the payload `runs --export` writes later.
//!
//! The envelope is DSSE's JSON envelope: `payloadType` [`PAYLOAD_TYPE`], `payload` the statement
//! in standard base64, and `signatures`, each `{"keyid", "sig"}`: `sig` the standard base64 of an
//! Ed25519 signature over [`pae`] of the payload type and the payload bytes, `keyid` the signing
//! key's SHA-256 fingerprint as `ssh-keygen -l` prints it (`SHA256:…`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::digest::Sha256Digest;

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The in-toto Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";

/// The predicate type of an evstore rerun attestation.
pub const RERUN_PREDICATE_TYPE: &str = "https://evstore.dev/attestation/rerun/v1";

/// The largest envelope read (an attestation with a large per-file diff is a few MiB).
pub const MAX_ENVELOPE_BYTES: u64 = 64 << 20;

/// DSSE's pre-authentication encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`, LEN
/// the byte length in ASCII decimal. What a DSSE signature signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The in-toto statement's bytes for the attestation object's payload `attestation` (JSON).
///
/// # Errors
///
/// A reason fragment if the payload is not an attestation object's JSON (no `format`
/// `evstore/attestation/1`, or no 64-hex `expected_sha256`).
pub fn statement_of(attestation: &[u8]) -> Result<Vec<u8>, String> {
    let summary = crate::format::attestation::decode_summary(attestation)?;
    let predicate: Value =
        serde_json::from_slice(attestation).map_err(|err| format!("not JSON: {err}"))?;
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": summary.packet.as_deref().unwrap_or("packet"),
            "digest": { "sha256": summary.expected_sha256.to_hex() },
        }],
        "predicateType": RERUN_PREDICATE_TYPE,
        "predicate": predicate,
    });
    Ok(statement.to_string().into_bytes())
}

/// A DSSE envelope, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The payload's type: [`PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload, standard base64.
    pub payload: String,
    /// The signatures over [`pae`] of the type and the payload bytes.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The key's SHA-256 fingerprint (`SHA256:…`); DSSE makes it optional, evstore always
    /// writes it.
    #[serde(default)]
    pub keyid: String,
    /// The Ed25519 signature, standard base64.
    pub sig: String,
}

/// What a checked statement says (its subject and predicate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedStatement {
    /// The subject's name (`NAME@N`, or `packet`).
    pub subject_name: String,
    /// The subject's SHA-256: the packet_tree_sha256.
    pub subject_sha256: Sha256Digest,
    /// The predicate (the attestation's JSON).
    pub predicate: Value,
}

impl Envelope {
    /// The envelope of `statement`, with `signatures`.
    pub fn of(statement: &[u8], signatures: Vec<EnvelopeSignature>) -> Envelope {
        Envelope {
            payload_type: PAYLOAD_TYPE.to_string(),
            payload: base64::engine::general_purpose::STANDARD.encode(statement),
            signatures,
        }
    }

    /// Parse an envelope strictly: DSSE's three fields and no other, `payloadType`
    /// [`PAYLOAD_TYPE`], a payload in standard base64.
    ///
    /// # Errors
    ///
    /// A reason fragment naming what is off.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, String> {
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|err| format!("not a DSSE envelope: {err}"))?;
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(format!(
                "payloadType is {:?}, not {PAYLOAD_TYPE:?}",
                envelope.payload_type
            ));
        }
        envelope.payload_bytes()?;
        Ok(envelope)
    }

    /// The payload's bytes.
    ///
    /// # Errors
    ///
    /// A reason fragment if the payload is not standard base64.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|err| format!("the payload is not standard base64: {err}"))
    }

    /// The bytes a signature of this envelope signs: [`pae`] of the type and the payload.
    ///
    /// # Errors
    ///
    /// As [`Envelope::payload_bytes`].
    pub fn signed_bytes(&self) -> Result<Vec<u8>, String> {
        Ok(pae(&self.payload_type, &self.payload_bytes()?))
    }

    /// The payload read as an evstore rerun statement: `_type` [`STATEMENT_TYPE`],
    /// `predicateType` [`RERUN_PREDICATE_TYPE`], one subject with a 64-hex `sha256` digest, and
    /// a predicate that is an attestation.
    ///
    /// # Errors
    ///
    /// A reason fragment naming what is off.
    pub fn statement(&self) -> Result<CheckedStatement, String> {
        let payload = self.payload_bytes()?;
        let value: Value = serde_json::from_slice(&payload)
            .map_err(|err| format!("the payload is not JSON: {err}"))?;
        if value["_type"] != STATEMENT_TYPE {
            return Err(format!("the payload's _type is not {STATEMENT_TYPE:?}"));
        }
        if value["predicateType"] != RERUN_PREDICATE_TYPE {
            return Err(format!(
                "the payload's predicateType is not {RERUN_PREDICATE_TYPE:?}"
            ));
        }
        let subjects = value["subject"].as_array().ok_or("no subject list")?;
        let [subject] = subjects.as_slice() else {
            return Err(format!(
                "{} subjects; an evstore rerun statement has one",
                subjects.len()
            ));
        };
        let subject_name = subject["name"]
            .as_str()
            .ok_or("the subject has no name")?
            .to_string();
        let subject_sha256 = subject["digest"]["sha256"]
            .as_str()
            .and_then(Sha256Digest::parse_hex)
            .ok_or("the subject's digest has no sha256 of 64 lowercase hex digits")?;
        let predicate = value["predicate"].clone();
        let predicate_bytes = predicate.to_string().into_bytes();
        let summary = crate::format::attestation::decode_summary(&predicate_bytes)
            .map_err(|reason| format!("the predicate is not an evstore attestation: {reason}"))?;
        if summary.expected_sha256 != subject_sha256 {
            return Err("the subject's sha256 is not the predicate's expected_sha256".to_string());
        }
        // Exactly the statement evstore derives from that predicate, byte for byte: no duplicate
        // key (which parsers resolve differently), no extra field, no other escape or spacing,
        // and a subject named as the predicate names its packet.
        if statement_of(&predicate_bytes)? != payload {
            return Err(
                "the payload is not the canonical statement of its predicate (compact JSON, keys \
                 sorted, each once, the subject as the predicate names it): evstore never signs \
                 such a payload"
                    .to_string(),
            );
        }
        Ok(CheckedStatement {
            subject_name,
            subject_sha256,
            predicate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_dsse_v1s_encoding() {
        // The example of the DSSE protocol description.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    fn attestation() -> Vec<u8> {
        let sha = "a".repeat(64);
        format!(
            "{{\"command\":[\"make\"],\"expected_sha256\":\"{sha}\",\"format\":\"evstore/attestation/1\",\
             \"packet\":\"p@1\",\"runs\":[{{\"observed_sha256\":\"{sha}\"}}],\"time_unix_nanos\":5,\
             \"verdict\":\"PASS\"}}"
        )
        .into_bytes()
    }

    #[test]
    fn a_statement_round_trips_through_an_envelope() {
        let statement = statement_of(&attestation()).unwrap();
        assert_eq!(statement, statement_of(&attestation()).unwrap());
        let text = String::from_utf8(statement.clone()).unwrap();
        assert!(text.starts_with("{\"_type\":\"https://in-toto.io/Statement/v1\",\"predicate\":{"));
        let envelope = Envelope::of(&statement, Vec::new());
        let json = serde_json::to_vec(&envelope).unwrap();
        let back = Envelope::parse(&json).unwrap();
        assert_eq!(back, envelope);
        let checked = back.statement().unwrap();
        assert_eq!(checked.subject_name, "p@1");
        assert_eq!(checked.subject_sha256.to_hex(), "a".repeat(64));
        assert_eq!(checked.predicate["verdict"], "PASS");
    }

    #[test]
    fn envelopes_and_statements_are_read_strictly() {
        let statement = statement_of(&attestation()).unwrap();
        let good = serde_json::to_value(Envelope::of(&statement, Vec::new())).unwrap();
        let mut extra = good.clone();
        extra["x"] = json!(1);
        assert!(Envelope::parse(extra.to_string().as_bytes()).is_err());
        let mut other_type = good.clone();
        other_type["payloadType"] = json!("text/plain");
        assert!(Envelope::parse(other_type.to_string().as_bytes())
            .unwrap_err()
            .contains("payloadType"));
        let mut bad_base64 = good.clone();
        bad_base64["payload"] = json!("not base64!");
        assert!(Envelope::parse(bad_base64.to_string().as_bytes()).is_err());
        let mut wrong_subject: Value = serde_json::from_slice(&statement).unwrap();
        wrong_subject["subject"][0]["digest"]["sha256"] = json!("b".repeat(64));
        let envelope = Envelope::of(wrong_subject.to_string().as_bytes(), Vec::new());
        assert!(envelope
            .statement()
            .unwrap_err()
            .contains("expected_sha256"));
    }
}
