//! RFC 7396 (JSON Merge Patch), as an object or as the base64 string the seed's Go server sends.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::Value;

use crate::protocol::members::{deserialize_from_json, serialize_to_json, FromJson, ToJson};

use super::{check_depth, DiffError, MAX_DEPTH};

/// An RFC 7396 merge patch as it travels in `mergePatch`.
///
/// Untagged: a JSON string is base64 of the merge patch's JSON text (the seed's Go server holds it
/// as `[]byte`, which `encoding/json` writes as padded standard base64; unpadded and URL-safe
/// base64 are accepted too). Any other JSON value is the merge patch itself.
///
/// A merge patch that is itself a JSON string (which would replace the whole document with that
/// string) can therefore only travel base64-encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum MergePatch {
    /// Base64 of the merge patch's JSON text.
    Base64(String),
    /// The merge patch as JSON.
    Json(Value),
}

impl FromJson for MergePatch {
    fn from_json(value: Value) -> Result<Self, crate::protocol::JsonError> {
        Ok(match value {
            Value::String(text) => MergePatch::Base64(text),
            value => MergePatch::Json(value),
        })
    }
}

/// The base64 text as a string, or the merge patch itself.
impl ToJson for MergePatch {
    fn to_json(&self) -> Value {
        match self {
            MergePatch::Base64(text) => text.to_json(),
            MergePatch::Json(value) => value.clone(),
        }
    }
}

deserialize_from_json!(MergePatch);
serialize_to_json!(MergePatch);

const INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, INDIFFERENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, INDIFFERENT);

impl MergePatch {
    /// Wraps `patch` as base64 of its JSON text, the way the seed's server sends it.
    pub fn encode_base64(patch: &Value) -> MergePatch {
        let text = serde_json::to_vec(patch).expect("a JSON value always serializes");
        MergePatch::Base64(base64::engine::general_purpose::STANDARD.encode(text))
    }

    /// The merge patch as JSON, decoding base64 when needed.
    pub fn to_value(&self) -> Result<Value, DiffError> {
        let value = match self {
            MergePatch::Json(value) => value.clone(),
            MergePatch::Base64(text) => {
                let bytes = STANDARD
                    .decode(text)
                    .or_else(|e| URL_SAFE.decode(text).map_err(|_| e))
                    .map_err(|e| DiffError::InvalidBase64(e.to_string()))?;
                // From text: the one JSON reader of the build (`from_slice` is a second).
                let text = String::from_utf8(bytes)
                    .map_err(|e| DiffError::InvalidMergePatch(e.to_string()))?;
                crate::protocol::parse_json(&text)
                    .map_err(|e| DiffError::InvalidMergePatch(e.to_string()))?
            }
        };
        check_depth(&value, MAX_DEPTH)?;
        Ok(value)
    }

    /// Apply the merge patch to a copy of `start` and return the result.
    pub fn apply(&self, start: &Value) -> Result<Value, DiffError> {
        let patch = self.to_value()?;
        let mut doc = start.clone();
        json_patch::merge(&mut doc, &patch);
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deserializes_strings_as_base64_and_anything_else_as_json() {
        let b: MergePatch = serde_json::from_value(json!("eyJhIjoxfQ==")).unwrap();
        assert_eq!(b, MergePatch::Base64("eyJhIjoxfQ==".into()));
        let j: MergePatch = serde_json::from_value(json!({"a": 1})).unwrap();
        assert_eq!(j, MergePatch::Json(json!({"a": 1})));
        let n: MergePatch = serde_json::from_value(json!(null)).unwrap();
        assert_eq!(n, MergePatch::Json(Value::Null));
        assert_eq!(serde_json::to_value(&b).unwrap(), json!("eyJhIjoxfQ=="));
        assert_eq!(serde_json::to_value(&j).unwrap(), json!({"a": 1}));
    }

    #[test]
    fn decodes_padded_unpadded_and_url_safe_base64() {
        // {"a":"??>"} encodes with both '+'/'/' (standard) and '-'/'_' (URL-safe) characters.
        let patch = json!({"a": "??>", "b": [1]});
        let text = serde_json::to_vec(&patch).unwrap();
        let std_padded = base64::engine::general_purpose::STANDARD.encode(&text);
        let std_unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&text);
        let url_padded = base64::engine::general_purpose::URL_SAFE.encode(&text);
        let url_unpadded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&text);
        assert_ne!(
            std_padded, url_padded,
            "the sample must exercise both alphabets"
        );
        assert_ne!(std_padded, std_unpadded, "the sample must need padding");
        for s in [std_padded, std_unpadded, url_padded, url_unpadded] {
            assert_eq!(
                MergePatch::Base64(s.clone()).to_value().unwrap(),
                patch,
                "{s}"
            );
        }
        assert_eq!(MergePatch::encode_base64(&patch).to_value().unwrap(), patch);
    }

    #[test]
    fn bad_base64_and_bad_json_are_distinct_errors() {
        let err = MergePatch::Base64("not base64!".into())
            .to_value()
            .unwrap_err();
        assert!(matches!(err, DiffError::InvalidBase64(_)), "{err:?}");
        // Mixed alphabets are refused.
        let err = MergePatch::Base64("ab+_".into()).to_value().unwrap_err();
        assert!(matches!(err, DiffError::InvalidBase64(_)), "{err:?}");
        let not_json = base64::engine::general_purpose::STANDARD.encode("{nope");
        let err = MergePatch::Base64(not_json).to_value().unwrap_err();
        assert!(matches!(err, DiffError::InvalidMergePatch(_)), "{err:?}");
    }

    #[test]
    fn applies_to_a_copy() {
        let start = json!({"a": 1, "b": {"c": 2, "d": 3}});
        let out = MergePatch::Json(json!({"a": null, "b": {"c": 9}, "e": [1]}))
            .apply(&start)
            .unwrap();
        assert_eq!(out, json!({"b": {"c": 9, "d": 3}, "e": [1]}));
        assert_eq!(start, json!({"a": 1, "b": {"c": 2, "d": 3}}));
        let out = MergePatch::encode_base64(&json!({"a": 2}))
            .apply(&start)
            .unwrap();
        assert_eq!(out["a"], json!(2));
    }
}
