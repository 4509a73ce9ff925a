//! The signed envelope and its typestate: `Envelope<Unsigned>` can only be co-signed and signed;
//! only `Envelope<Signed>` can be serialised for storage or sending.

use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::RecordError;
use crate::canonical::{sha256, sha256_hex, to_canonical};
use crate::keys::{parse_signature, verify, StationKey};

/// Version of the envelope format written by this build.
pub const ENVELOPE_VERSION: u32 = 1;
/// `prev` of the first envelope of a station.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const OFFICER_DOMAIN: &[u8] = b"tasjil/envelope/officer/v1\0";
const STATION_DOMAIN: &[u8] = b"tasjil/envelope/station/v1\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrolmentKind {
    New,
    Renewal,
    Replacement,
    Correction,
}

impl EnrolmentKind {
    pub const ALL: [EnrolmentKind; 4] = [
        EnrolmentKind::New,
        EnrolmentKind::Renewal,
        EnrolmentKind::Replacement,
        EnrolmentKind::Correction,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EnrolmentKind::New => "new",
            EnrolmentKind::Renewal => "renewal",
            EnrolmentKind::Replacement => "replacement",
            EnrolmentKind::Correction => "correction",
        }
    }
}

impl std::str::FromStr for EnrolmentKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown enrolment kind {s:?} (new, renewal, replacement, correction)")
            })
    }
}

/// Capture times in Unix milliseconds, as the station's clock saw them (which may be off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureTimes {
    pub started_ms: i64,
    pub face_ms: i64,
    pub fingers_ms: i64,
    pub signature_ms: i64,
    pub finished_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerQuality {
    pub position: String,
    pub score: u8,
}

/// Quality of what was captured, without any biometric data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySummary {
    pub face: u8,
    pub face_attempts: u32,
    pub fingers: Vec<FingerQuality>,
    /// Positions recorded as exceptions (missing, injured, ...).
    pub finger_exceptions: Vec<String>,
    /// Captures kept below the threshold after the retries ran out.
    pub below_threshold: Vec<String>,
}

/// Content address of the sealed payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadRef {
    pub sha256: String,
    pub len: u64,
}

/// What the station and the officer sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeBody {
    pub v: u32,
    pub id: String,
    pub kind: EnrolmentKind,
    pub station: String,
    pub officer: String,
    pub seq: u64,
    pub prev: String,
    pub demographics_schema: String,
    pub captured: CaptureTimes,
    pub quality: QualitySummary,
    pub payload: PayloadRef,
    /// Made on a training or demonstration station (`tasjil init --simulation`), where simulated
    /// devices and badges are allowed: never a citizen's enrolment. Absent (false) otherwise, so
    /// the signed bytes of every other envelope are unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub simulation: bool,
    /// Version of the centre's signed roster the station held when the officer co-signed: the
    /// centre checks the co-signing badge against that version. Absent on a training station
    /// that holds no roster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl EnvelopeBody {
    fn check(&self) -> Result<(), RecordError> {
        let bad = |m: String| Err(RecordError::Schema(m));
        if self.v != ENVELOPE_VERSION {
            return bad(format!(
                "version {} is not supported (this build reads {ENVELOPE_VERSION})",
                self.v
            ));
        }
        if ulid::Ulid::from_string(&self.id).is_err() {
            return bad(format!("id {:?} is not a ULID", self.id));
        }
        if self.seq == 0 || self.seq >= 1 << 53 {
            return bad(format!("sequence {} is out of range", self.seq));
        }
        for (name, h) in [
            ("prev", &self.prev),
            ("payload.sha256", &self.payload.sha256),
        ] {
            if h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                return bad(format!("{name} is not a lower-case SHA-256 hex"));
            }
        }
        if self.station.is_empty() || self.officer.is_empty() {
            return bad("station and officer must be named".into());
        }
        Ok(())
    }

    /// The 32-byte digest an officer's card signs.
    pub fn digest(&self) -> Result<[u8; 32], RecordError> {
        Ok(sha256(&canonical(self)?))
    }
}

/// Hex fields must be lower-case and of the exact length: one value, one spelling, one hash.
fn check_hex(name: &str, h: &str, len: usize) -> Result<(), RecordError> {
    if h.len() != len || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(RecordError::Schema(format!(
            "{name} is not {len} lower-case hex digits"
        )));
    }
    Ok(())
}

fn canonical<T: Serialize>(v: &T) -> Result<Vec<u8>, RecordError> {
    to_canonical(v).map_err(|e| RecordError::Schema(e.to_string()))
}

/// The officer's co-signature: made by the badge over [`Envelope::officer_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoSignature {
    /// Hex Ed25519 public key of the badge's signing key.
    pub key: String,
    /// Hex Ed25519 signature.
    pub sig: String,
}

/// Typestate: not yet signed by the station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsigned;

/// Typestate: signed by the station (hex Ed25519 signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    station_sig: String,
}

/// An enrolment envelope in state `S`.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope<S> {
    body: EnvelopeBody,
    officer_sig: Option<CoSignature>,
    state: S,
}

impl<S> fmt::Debug for Envelope<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Envelope({} seq {})", self.body.id, self.body.seq)
    }
}

impl<S> Envelope<S> {
    pub fn body(&self) -> &EnvelopeBody {
        &self.body
    }
    pub fn officer_signature(&self) -> Option<&CoSignature> {
        self.officer_sig.as_ref()
    }
    /// The bytes an officer's badge signs (domain-separated body digest).
    pub fn officer_message(&self) -> Result<Vec<u8>, RecordError> {
        let mut m = OFFICER_DOMAIN.to_vec();
        m.extend_from_slice(&self.body.digest()?);
        Ok(m)
    }
    fn station_message(&self) -> Result<Vec<u8>, RecordError> {
        #[derive(Serialize)]
        struct ToSign<'a> {
            body: &'a EnvelopeBody,
            officer_sig: &'a Option<CoSignature>,
        }
        let mut m = STATION_DOMAIN.to_vec();
        m.extend_from_slice(&sha256(&canonical(&ToSign {
            body: &self.body,
            officer_sig: &self.officer_sig,
        })?));
        Ok(m)
    }
}

impl Envelope<Unsigned> {
    pub fn new(body: EnvelopeBody) -> Result<Self, RecordError> {
        body.check()?;
        Ok(Envelope {
            body,
            officer_sig: None,
            state: Unsigned,
        })
    }
    /// Attach the officer badge's signature over [`Envelope::officer_message`].
    pub fn with_officer_signature(mut self, cosig: CoSignature) -> Self {
        self.officer_sig = Some(cosig);
        self
    }
    /// Sign with the station key: the only way to get an `Envelope<Signed>`. The station signature
    /// covers the body and the officer co-signature, so neither can be stripped or swapped.
    pub fn sign(self, key: &StationKey) -> Result<Envelope<Signed>, RecordError> {
        let sig = key.sign(&self.station_message()?);
        Ok(Envelope {
            body: self.body,
            officer_sig: self.officer_sig,
            state: Signed {
                station_sig: hex::encode(sig.to_bytes()),
            },
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    body: EnvelopeBody,
    officer_sig: Option<CoSignature>,
    station_sig: String,
}

impl Envelope<Signed> {
    /// Canonical JSON bytes: what is stored, sent and hashed.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RecordError> {
        canonical(&Wire {
            body: self.body.clone(),
            officer_sig: self.officer_sig.clone(),
            station_sig: self.state.station_sig.clone(),
        })
    }

    /// Parse stored or received bytes. Rejects unknown fields, unsupported versions, and bytes that
    /// are not in canonical form (so one envelope has exactly one hash).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|e| RecordError::Schema(format!("not a valid envelope: {e}")))?;
        wire.body.check()?;
        check_hex("station_sig", &wire.station_sig, 128)?;
        if let Some(c) = &wire.officer_sig {
            check_hex("officer_sig.key", &c.key, 64)?;
            check_hex("officer_sig.sig", &c.sig, 128)?;
        }
        let env = Envelope {
            body: wire.body,
            officer_sig: wire.officer_sig,
            state: Signed {
                station_sig: wire.station_sig,
            },
        };
        if env.to_bytes()? != bytes {
            return Err(RecordError::Schema(
                "envelope bytes are not canonical JSON".into(),
            ));
        }
        Ok(env)
    }

    /// Hex SHA-256 of [`Self::to_bytes`]: what the next envelope's `prev` holds.
    pub fn hash(&self) -> Result<String, RecordError> {
        Ok(sha256_hex(&self.to_bytes()?))
    }

    /// Check the station signature.
    pub fn verify_signature(&self, station: &VerifyingKey) -> Result<(), RecordError> {
        let sig = parse_signature(&self.state.station_sig).map_err(|_| RecordError::Signature)?;
        if verify(station, &self.station_message()?, &sig) {
            Ok(())
        } else {
            Err(RecordError::Signature)
        }
    }

    /// Check the officer co-signature against the badge key registered for the officer.
    pub fn verify_officer(&self, badge: &VerifyingKey) -> Result<(), RecordError> {
        let cosig = self
            .officer_sig
            .as_ref()
            .ok_or(RecordError::OfficerSignatureMissing)?;
        if cosig.key != hex::encode(badge.as_bytes()) {
            return Err(RecordError::OfficerSignature);
        }
        let sig = parse_signature(&cosig.sig).map_err(|_| RecordError::OfficerSignature)?;
        if verify(badge, &self.officer_message()?, &sig) {
            Ok(())
        } else {
            Err(RecordError::OfficerSignature)
        }
    }

    /// Check that this envelope follows `previous` (or starts the chain when `None`).
    pub fn verify_chain(&self, previous: Option<&Envelope<Signed>>) -> Result<(), RecordError> {
        let (expected_seq, expected_prev) = match previous {
            None => (1, GENESIS.to_string()),
            Some(p) => (p.body.seq + 1, p.hash()?),
        };
        self.verify_chain_link(expected_seq, &expected_prev)
    }

    /// Like [`Self::verify_chain`] when only the previous sequence number and hash are known.
    pub fn verify_chain_link(
        &self,
        expected_seq: u64,
        expected_prev: &str,
    ) -> Result<(), RecordError> {
        if self.body.seq != expected_seq {
            return Err(RecordError::ChainGap {
                expected: expected_seq,
                found: self.body.seq,
            });
        }
        if self.body.prev != expected_prev {
            return Err(RecordError::ChainFork {
                seq: self.body.seq,
                expected: expected_prev.to_string(),
                found: self.body.prev.clone(),
            });
        }
        Ok(())
    }

    /// Check that `sealed` is the payload this envelope names.
    pub fn verify_payload(&self, sealed: &[u8]) -> Result<(), RecordError> {
        let found_len = sealed.len() as u64;
        if found_len != self.body.payload.len {
            return Err(RecordError::PayloadLength {
                expected: self.body.payload.len,
                found: found_len,
            });
        }
        let found = sha256_hex(sealed);
        if found != self.body.payload.sha256 {
            return Err(RecordError::PayloadHash {
                expected: self.body.payload.sha256.clone(),
                found,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn body(seq: u64, prev: &str) -> EnvelopeBody {
        EnvelopeBody {
            v: ENVELOPE_VERSION,
            id: ulid::Ulid::from_parts(1_700_000_000_000 + seq, seq as u128).to_string(),
            kind: EnrolmentKind::New,
            station: "VAN-07-A".into(),
            officer: "OFF-1".into(),
            seq,
            prev: prev.into(),
            demographics_schema: "cnie-v1".into(),
            captured: CaptureTimes {
                started_ms: 1,
                face_ms: 2,
                fingers_ms: 3,
                signature_ms: 4,
                finished_ms: 5,
            },
            quality: QualitySummary {
                face: 80,
                face_attempts: 1,
                fingers: vec![FingerQuality {
                    position: "right_thumb".into(),
                    score: 77,
                }],
                finger_exceptions: vec![],
                below_threshold: vec![],
            },
            payload: PayloadRef {
                sha256: sha256_hex(b"sealed"),
                len: 6,
            },
            simulation: false,
            roster: None,
        }
    }

    fn signed(
        seq: u64,
        prev: &str,
        station: &StationKey,
        officer: &StationKey,
    ) -> Envelope<Signed> {
        let env = Envelope::new(body(seq, prev)).unwrap();
        let sig = officer.sign(&env.officer_message().unwrap());
        env.with_officer_signature(CoSignature {
            key: officer.public_hex(),
            sig: hex::encode(sig.to_bytes()),
        })
        .sign(station)
        .unwrap()
    }

    #[test]
    fn signed_envelope_verifies_and_round_trips() {
        let station = StationKey::generate();
        let officer = StationKey::generate();
        let env = signed(1, GENESIS, &station, &officer);
        let bytes = env.to_bytes().unwrap();
        let back = Envelope::from_bytes(&bytes).unwrap();
        assert_eq!(back, env);
        back.verify_signature(&station.verifying_key()).unwrap();
        back.verify_officer(&officer.verifying_key()).unwrap();
        back.verify_chain(None).unwrap();
        back.verify_payload(b"sealed").unwrap();
    }

    #[test]
    fn each_failure_is_named() {
        let station = StationKey::generate();
        let officer = StationKey::generate();
        let first = signed(1, GENESIS, &station, &officer);
        let second = signed(2, &first.hash().unwrap(), &station, &officer);
        second.verify_chain(Some(&first)).unwrap();

        assert_eq!(
            second.verify_signature(&officer.verifying_key()),
            Err(RecordError::Signature)
        );
        assert_eq!(
            second.verify_officer(&station.verifying_key()),
            Err(RecordError::OfficerSignature)
        );
        let gap = signed(3, &first.hash().unwrap(), &station, &officer);
        assert!(matches!(
            gap.verify_chain(Some(&first)),
            Err(RecordError::ChainGap {
                expected: 2,
                found: 3
            })
        ));
        let fork = signed(2, GENESIS, &station, &officer);
        assert!(matches!(
            fork.verify_chain(Some(&first)),
            Err(RecordError::ChainFork { seq: 2, .. })
        ));
        assert!(matches!(
            first.verify_payload(b"sealeD"),
            Err(RecordError::PayloadHash { .. })
        ));
        assert!(matches!(
            first.verify_payload(b"seal"),
            Err(RecordError::PayloadLength { .. })
        ));

        let unsigned_officer = Envelope::new(body(1, GENESIS))
            .unwrap()
            .sign(&station)
            .unwrap();
        assert_eq!(
            unsigned_officer.verify_officer(&officer.verifying_key()),
            Err(RecordError::OfficerSignatureMissing)
        );
    }

    #[test]
    fn stripping_the_officer_signature_breaks_the_station_signature() {
        let station = StationKey::generate();
        let officer = StationKey::generate();
        let env = signed(1, GENESIS, &station, &officer);
        let mut wire: serde_json::Value = serde_json::from_slice(&env.to_bytes().unwrap()).unwrap();
        wire["officer_sig"] = serde_json::Value::Null;
        let stripped = Envelope::from_bytes(&to_canonical(&wire).unwrap()).unwrap();
        assert_eq!(
            stripped.verify_signature(&station.verifying_key()),
            Err(RecordError::Signature)
        );
    }

    #[test]
    fn schema_problems_are_rejected() {
        assert!(matches!(
            Envelope::new(body(0, GENESIS)),
            Err(RecordError::Schema(_))
        ));
        let mut b = body(1, GENESIS);
        b.v = 2;
        assert!(matches!(Envelope::new(b), Err(RecordError::Schema(_))));
        let mut b = body(1, GENESIS);
        b.id = "not-a-ulid".into();
        assert!(matches!(Envelope::new(b), Err(RecordError::Schema(_))));
        assert!(matches!(
            Envelope::from_bytes(b"{}"),
            Err(RecordError::Schema(_))
        ));
        let station = StationKey::generate();
        let env = Envelope::new(body(1, GENESIS))
            .unwrap()
            .sign(&station)
            .unwrap();
        let mut pretty = serde_json::to_vec_pretty(
            &serde_json::from_slice::<serde_json::Value>(&env.to_bytes().unwrap()).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            Envelope::from_bytes(&pretty),
            Err(RecordError::Schema(_))
        ));
        pretty.clear();
    }

    proptest! {
        /// Flipping any single byte of a signed envelope never yields an envelope that still
        /// verifies with the same hash.
        #[test]
        fn any_changed_byte_is_detected(index in any::<prop::sample::Index>(), bit in 0u8..8) {
            let station = StationKey::from_seed([7; 32]);
            let officer = StationKey::from_seed([9; 32]);
            let env = signed(1, GENESIS, &station, &officer);
            let mut bytes = env.to_bytes().unwrap();
            let i = index.index(bytes.len());
            bytes[i] ^= 1 << bit;
            if let Ok(parsed) = Envelope::from_bytes(&bytes) {
                let ok = parsed.verify_signature(&station.verifying_key()).is_ok()
                    && parsed.verify_officer(&officer.verifying_key()).is_ok();
                prop_assert!(!ok, "tampered envelope still verifies");
            }
        }
    }
}
