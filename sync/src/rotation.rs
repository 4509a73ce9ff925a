//! A centre key rotation: the next `centre.pub` (new age recipient, new Ed25519 key, the earlier
//! keys listed as previous), signed by the key stations trust today.
//!
//! Versions go up by one and each rotation is signed by the set before it, so a station that
//! missed several takes them in order (`tasjil-central` delivers every one after the version a
//! station holds: at sync, in USB receipts, and as files for `tasjil keys import`). A station
//! never takes a set it cannot chain to the one it holds. After a rotation stations seal to the
//! new recipient only; the centre keeps the retired identities, so what was sealed before still
//! opens, and what the old signing key signed still verifies (`previous_ed25519`).
//!
//! The TLS certificate changes the same way, in two versions that keep the signing key:
//! `tasjil-central keys announce-tls` issues a set whose `tls_next_sha256` pins the next
//! certificate while the current one stays in service; vans that take it accept either. Once they
//! have, `tasjil-central keys switch-tls` issues a set whose `tls_cert_sha256` is the new pin and
//! whose `tls_next_sha256` is empty, and `serve` presents the new certificate from its restart.
//! A van that missed the announcement refuses the new certificate (it cannot tell it from an
//! impostor's) until it takes the rotations from a USB stick.

use serde::{Deserialize, Serialize};

use crate::canonical::{sha256, to_canonical};
use crate::keys::{parse_signature, verify, CentrePublic};

const ROTATION_FORMAT: &str = "tasjil-key-rotation-v1";
const ROTATION_DOMAIN: &[u8] = b"tasjil/centre/rotation/v1\0";

/// What the outgoing key signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationBody {
    pub format: String,
    pub issued_ms: i64,
    /// The new key set; its `version` is the signer's plus one.
    pub centre: CentrePublic,
}

/// A rotation as stored, sent and imported (canonical JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    pub body: RotationBody,
    /// Hex Ed25519 signature by the previous set's `ed25519`.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error("not a key rotation: {0}")]
    Format(String),
    #[error("key rotation to version {found} does not follow the version {held} this station holds (it needs {next} first)", next = held + 1)]
    OutOfOrder { held: u64, found: u64 },
    #[error("key rotation to version {0} is not signed by the centre key this station trusts")]
    Signature(u64),
}

fn message(body: &RotationBody) -> Result<Vec<u8>, RotationError> {
    let canonical = to_canonical(body).map_err(|e| RotationError::Format(e.to_string()))?;
    let mut m = ROTATION_DOMAIN.to_vec();
    m.extend_from_slice(&sha256(&canonical));
    Ok(m)
}

impl KeyRotation {
    /// Sign `next` (whose version must be the current set's plus one) with the outgoing key.
    pub fn sign(
        next: CentrePublic,
        issued_ms: i64,
        outgoing: &ed25519_dalek::SigningKey,
    ) -> Result<KeyRotation, RotationError> {
        use ed25519_dalek::Signer;
        let body = RotationBody {
            format: ROTATION_FORMAT.into(),
            issued_ms,
            centre: next,
        };
        let sig = outgoing.sign(&message(&body)?);
        Ok(KeyRotation {
            body,
            signature: hex::encode(sig.to_bytes()),
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, RotationError> {
        to_canonical(self).map_err(|e| RotationError::Format(e.to_string()))
    }

    /// Parse, and check the new set is well formed (its keys parse).
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyRotation, RotationError> {
        let r: KeyRotation =
            serde_json::from_slice(bytes).map_err(|e| RotationError::Format(e.to_string()))?;
        if r.body.format != ROTATION_FORMAT {
            return Err(RotationError::Format(format!(
                "format {:?}, expected {ROTATION_FORMAT}",
                r.body.format
            )));
        }
        let text = serde_json::to_string(&r.body.centre)
            .map_err(|e| RotationError::Format(e.to_string()))?;
        CentrePublic::parse(&text).map_err(RotationError::Format)?;
        Ok(r)
    }

    /// The new set, when this rotation follows `held` and its current key signed it.
    pub fn next_after(&self, held: &CentrePublic) -> Result<CentrePublic, RotationError> {
        let found = self.body.centre.version;
        if found != held.version + 1 {
            return Err(RotationError::OutOfOrder {
                held: held.version,
                found,
            });
        }
        let key = crate::keys::parse_verifying_key(&held.ed25519)
            .map_err(|_| RotationError::Signature(found))?;
        let sig = parse_signature(&self.signature).map_err(|_| RotationError::Signature(found))?;
        if !verify(&key, &message(&self.body)?, &sig) {
            return Err(RotationError::Signature(found));
        }
        Ok(self.body.centre.clone())
    }
}

/// Apply `rotations` (any order, any already held) to `held`: the newest set they chain to.
/// Returns the set and how many rotations were taken; the first one that does not chain (a bad
/// signature) is an error, versions at or below `held` are skipped.
pub fn apply(
    held: &CentrePublic,
    rotations: &[KeyRotation],
) -> Result<(CentrePublic, usize), RotationError> {
    let mut sorted: Vec<&KeyRotation> = rotations
        .iter()
        .filter(|r| r.body.centre.version > held.version)
        .collect();
    sorted.sort_by_key(|r| r.body.centre.version);
    let mut current = held.clone();
    let mut taken = 0;
    for r in sorted {
        current = r.next_after(&current)?;
        taken += 1;
    }
    Ok((current, taken))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CentreKeys;

    /// The set after a rotation of `keys` (what `tasjil-central keys rotate` writes).
    fn next(keys: &CentreKeys, held: &CentrePublic) -> (CentreKeys, CentrePublic, KeyRotation) {
        let old_signing = keys.signing.clone();
        let new = CentreKeys {
            identity: keys.identity.clone(),
            signing: keys.signing.clone(),
            retired: keys.retired.clone(),
        }
        .rotated();
        let mut public = new.public();
        public.version = held.version + 1;
        public.tls_cert_sha256.clone_from(&held.tls_cert_sha256);
        public.tls_next_sha256.clone_from(&held.tls_next_sha256);
        let r = KeyRotation::sign(public.clone(), 1, &old_signing).unwrap();
        (new, public, r)
    }

    #[test]
    fn a_tls_pin_is_announced_then_switched_under_the_same_key() {
        let keys = CentreKeys::generate();
        let mut p0 = keys.public();
        p0.tls_cert_sha256 = Some("aa".repeat(32));
        // Announce: same keys, the next pin added.
        let mut p1 = p0.clone();
        p1.version = 1;
        p1.tls_next_sha256 = vec!["bb".repeat(32)];
        let r1 = KeyRotation::sign(p1.clone(), 1, &keys.signing).unwrap();
        // Switch: the next pin becomes current, the old one is dropped.
        let mut p2 = p1.clone();
        p2.version = 2;
        p2.tls_cert_sha256 = Some("bb".repeat(32));
        p2.tls_next_sha256.clear();
        let r2 = KeyRotation::sign(p2.clone(), 2, &keys.signing).unwrap();
        let (got, _) = apply(&p0, std::slice::from_ref(&r1)).unwrap();
        assert_eq!(got.tls_pins(), vec!["aa".repeat(32), "bb".repeat(32)]);
        let (got, taken) = apply(&p0, &[r2.clone(), r1]).unwrap();
        assert_eq!((got.tls_pins(), taken), (vec!["bb".repeat(32)], 2));
        assert_eq!(
            got.verifying_keys().len(),
            1,
            "the signing key did not change"
        );
        // A pin slipped into a signed announcement breaks its signature.
        let mut forged = r2;
        forged.body.centre.tls_cert_sha256 = Some("cc".repeat(32));
        assert!(matches!(
            apply(&p1, &[forged]),
            Err(RotationError::Signature(2))
        ));
    }

    #[test]
    fn rotations_chain_in_order_and_nothing_else_is_taken() {
        let k0 = CentreKeys::generate();
        let p0 = k0.public();
        let (k1, p1, r1) = next(&k0, &p0);
        let (k2, p2, r2) = next(&k1, &p1);
        // Round trip through bytes.
        let r1 = KeyRotation::from_bytes(&r1.to_bytes().unwrap()).unwrap();
        // A station that missed both takes them in order, whatever order they come in.
        let (got, taken) = apply(&p0, &[r2.clone(), r1.clone()]).unwrap();
        assert_eq!((got.clone(), taken), (p2.clone(), 2));
        assert_eq!(got.verifying_keys().len(), 3, "the old keys stay trusted");
        assert_eq!(got.previous_ed25519.len(), 2);
        // Only the second: out of order.
        assert!(matches!(
            apply(&p0, std::slice::from_ref(&r2)),
            Err(RotationError::OutOfOrder { held: 0, found: 2 })
        ));
        // Already held: nothing to take.
        assert_eq!(apply(&p2, &[r1.clone(), r2.clone()]).unwrap().1, 0);
        // Signed by a key the station does not trust.
        let stranger = CentreKeys::generate();
        let forged = KeyRotation::sign(p1.clone(), 1, &stranger.signing).unwrap();
        assert!(matches!(
            apply(&p0, &[forged]),
            Err(RotationError::Signature(1))
        ));
        // A changed byte in the new set breaks the signature.
        let mut tampered = r1.clone();
        tampered.body.centre.age_recipients = p0.age_recipients.clone();
        assert!(matches!(
            apply(&p0, &[tampered]),
            Err(RotationError::Signature(1))
        ));
        // The retired identities still open what was sealed to them.
        assert_eq!(k2.identities().len(), 3);
        assert_eq!(k2.identities()[2].to_public(), k0.identity.to_public());
    }
}
