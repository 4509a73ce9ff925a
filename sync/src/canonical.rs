//! RFC 8785 canonical JSON and hashing helpers shared by everything that is signed or hashed.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Serialise `value` as RFC 8785 (JCS) canonical JSON: the only byte form that is ever signed or
/// hashed. Signed data keeps to integers below 2^53 and strings, never floats.
pub fn to_canonical<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json_canonicalizer::to_vec(value)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn keys_are_sorted_and_whitespace_is_gone() {
        let v = serde_json::json!({"b": 1, "a": [true, null, "x"], "c": {"z": 2, "y": "é"}});
        let out = to_canonical(&v).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"a":[true,null,"x"],"b":1,"c":{"y":"é","z":2}}"#
        );
    }

    proptest! {
        /// Canonical form does not depend on insertion order and survives a parse round trip.
        #[test]
        fn canonical_is_stable(entries in proptest::collection::vec(("[a-zA-Z0-9_\u{0600}-\u{06ff}]{0,8}", any::<i32>()), 0..20)) {
            let forward: BTreeMap<String, i32> = entries.iter().cloned().collect();
            let mut backwards = serde_json::Map::new();
            for (k, _) in entries.iter().rev() {
                backwards.insert(k.clone(), serde_json::Value::from(forward[k]));
            }
            let a = to_canonical(&forward).unwrap();
            let b = to_canonical(&backwards).unwrap();
            prop_assert_eq!(&a, &b);
            let reparsed: serde_json::Value = serde_json::from_slice(&a).unwrap();
            prop_assert_eq!(to_canonical(&reparsed).unwrap(), a);
        }
    }
}
