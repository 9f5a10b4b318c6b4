//! Canonical JSON: the bytes TUF signs.
//!
//! TUF signs the OLPC canonical form of the `signed` object (sorted keys,
//! no insignificant whitespace, integers only), as python-tuf does. We
//! sign and verify those bytes, never the bytes a file happened to hold:
//! a verifier canonicalizes the `signed` value it received, unknown fields
//! included, so a field we do not model still counts in the signature.

use serde::Serialize;

/// Serializes `value` into OLPC canonical JSON.
///
/// # Errors
///
/// Fails on what canonical JSON cannot represent, such as a float.
pub fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut serializer)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::to_canonical;

    #[test]
    fn keys_are_sorted_and_whitespace_is_gone() {
        let value = serde_json::json!({"b": 1, "a": {"d": [1, 2], "c": "x"}});
        assert_eq!(to_canonical(&value).unwrap(), br#"{"a":{"c":"x","d":[1,2]},"b":1}"#);
    }

    #[test]
    fn floats_are_refused() {
        assert!(to_canonical(&serde_json::json!({"a": 1.5})).is_err());
    }
}
