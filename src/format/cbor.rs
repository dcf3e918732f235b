//! Strict, deterministic CBOR for tree nodes and packet records.
//!
//! evstore's structured objects are CBOR arrays (never maps), built and read as
//! [`serde_cbor::Value`]. serde_cbor writes definite lengths and the shortest integer forms, so an
//! encoding is a pure function of the value. [`decode_canonical`] accepts bytes only if encoding
//! the decoded value gives back exactly the same bytes: any other spelling of the same value
//! (indefinite lengths, long integer forms, tags, floats) is refused, so one value has one id.
//!
//! **Architecture Invariant:** this is the only module that names `serde_cbor`. The formats built
//! on CBOR (tree nodes, packet records) use [`Value`] and the helpers here, so the CBOR library
//! can be replaced in one file.

/// The CBOR value type every CBOR format is built from and read as (serde_cbor's, re-exported so
/// that no other module names the library).
pub use serde_cbor::Value;

use crate::digest::{Blake3Digest, Sha256Digest};

/// Encode a value. Encoding a `Value` into a `Vec` cannot fail for the values evstore builds.
pub fn encode(value: &Value) -> Vec<u8> {
    serde_cbor::to_vec(value).unwrap_or_default()
}

/// Decode bytes that must be the canonical encoding of a value; the error is a reason fragment.
pub fn decode_canonical(bytes: &[u8]) -> Result<Value, String> {
    let value: Value = serde_cbor::from_slice(bytes).map_err(|e| format!("not CBOR: {e}"))?;
    if encode(&value) != bytes {
        return Err("not the canonical CBOR encoding of its value".into());
    }
    Ok(value)
}

/// Read helpers over a decoded array, each naming the field in its error.
pub struct Fields<'a> {
    what: &'static str,
    items: &'a [Value],
}

impl<'a> Fields<'a> {
    /// Expect `value` to be an array opening with the text `tag`, then integer `version`, holding
    /// exactly `len` items in all.
    pub fn open(
        value: &'a Value,
        what: &'static str,
        tag: &str,
        version: u64,
        len: usize,
    ) -> Result<Fields<'a>, String> {
        let Value::Array(items) = value else {
            return Err(format!("{what} is not a CBOR array"));
        };
        if items.len() != len {
            return Err(format!("{what} has {} fields, expected {len}", items.len()));
        }
        let fields = Fields { what, items };
        if fields.text(0, "tag")? != tag {
            return Err(format!("{what} does not start with the tag {tag:?}"));
        }
        let found = fields.uint(1, "version")?;
        if found != version {
            return Err(format!("{what} has unsupported version {found}"));
        }
        Ok(fields)
    }

    /// Like [`Fields::open`] for a format with several versions: `versions` pairs each
    /// version this reader accepts with its field count. Returns the fields and the version.
    pub fn open_versioned(
        value: &'a Value,
        what: &'static str,
        tag: &str,
        versions: &[(u64, usize)],
    ) -> Result<(Fields<'a>, u64), String> {
        let Value::Array(items) = value else {
            return Err(format!("{what} is not a CBOR array"));
        };
        let fields = Fields { what, items };
        if fields.text(0, "tag")? != tag {
            return Err(format!("{what} does not start with the tag {tag:?}"));
        }
        let found = fields.uint(1, "version")?;
        let Some(&(_, len)) = versions.iter().find(|(version, _)| *version == found) else {
            return Err(format!("{what} has unsupported version {found}"));
        };
        if items.len() != len {
            return Err(format!(
                "{what} version {found} has {} fields, expected {len}",
                items.len()
            ));
        }
        Ok((fields, found))
    }

    /// Wrap an array without a tag (used for tree entries).
    pub fn plain(value: &'a Value, what: &'static str) -> Result<Fields<'a>, String> {
        let Value::Array(items) = value else {
            return Err(format!("{what} is not a CBOR array"));
        };
        Ok(Fields { what, items })
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if there is no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn get(&self, index: usize, name: &str) -> Result<&'a Value, String> {
        self.items
            .get(index)
            .ok_or_else(|| format!("{}: field {name} is missing", self.what))
    }

    fn wrong(&self, name: &str, expected: &str) -> String {
        format!("{}: field {name} is not {expected}", self.what)
    }

    /// A text field.
    pub fn text(&self, index: usize, name: &str) -> Result<&'a str, String> {
        match self.get(index, name)? {
            Value::Text(t) => Ok(t),
            _ => Err(self.wrong(name, "text")),
        }
    }

    /// A text field that may be null.
    pub fn optional_text(&self, index: usize, name: &str) -> Result<Option<&'a str>, String> {
        match self.get(index, name)? {
            Value::Text(t) => Ok(Some(t)),
            Value::Null => Ok(None),
            _ => Err(self.wrong(name, "text or null")),
        }
    }

    /// An unsigned integer field.
    pub fn uint(&self, index: usize, name: &str) -> Result<u64, String> {
        match self.get(index, name)? {
            Value::Integer(i) => {
                u64::try_from(*i).map_err(|_| self.wrong(name, "an unsigned integer"))
            }
            _ => Err(self.wrong(name, "an unsigned integer")),
        }
    }

    /// A signed integer field.
    pub fn int(&self, index: usize, name: &str) -> Result<i64, String> {
        match self.get(index, name)? {
            Value::Integer(i) => {
                i64::try_from(*i).map_err(|_| self.wrong(name, "a 64-bit integer"))
            }
            _ => Err(self.wrong(name, "an integer")),
        }
    }

    /// A boolean field.
    pub fn boolean(&self, index: usize, name: &str) -> Result<bool, String> {
        match self.get(index, name)? {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.wrong(name, "a boolean")),
        }
    }

    /// A 32-byte BLAKE3 digest field.
    pub fn blake3(&self, index: usize, name: &str) -> Result<Blake3Digest, String> {
        match self.get(index, name)? {
            Value::Bytes(b) => {
                Blake3Digest::from_slice(b).ok_or_else(|| self.wrong(name, "32 bytes"))
            }
            _ => Err(self.wrong(name, "a byte string")),
        }
    }

    /// A 32-byte SHA-256 digest field.
    pub fn sha256(&self, index: usize, name: &str) -> Result<Sha256Digest, String> {
        match self.get(index, name)? {
            Value::Bytes(b) => {
                Sha256Digest::from_slice(b).ok_or_else(|| self.wrong(name, "32 bytes"))
            }
            _ => Err(self.wrong(name, "a byte string")),
        }
    }

    /// An array field.
    pub fn array(&self, index: usize, name: &str) -> Result<&'a [Value], String> {
        match self.get(index, name)? {
            Value::Array(a) => Ok(a),
            _ => Err(self.wrong(name, "an array")),
        }
    }

    /// The raw value of a field.
    pub fn value(&self, index: usize, name: &str) -> Result<&'a Value, String> {
        self.get(index, name)
    }
}

/// A text value.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// An unsigned integer value.
pub fn uint(n: u64) -> Value {
    Value::Integer(i128::from(n))
}

/// A signed integer value.
pub fn int(n: i64) -> Value {
    Value::Integer(i128::from(n))
}

/// A byte string value.
pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// A boolean value.
pub fn boolean(b: bool) -> Value {
    Value::Bool(b)
}

/// An array value.
pub fn array(items: Vec<Value>) -> Value {
    Value::Array(items)
}

/// A text-or-null value.
pub fn optional_text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, text)
}
