//! The restore link: how a station restored from a backup goes on delivering.
//!
//! A backup holds the chain up to some head `(n, h)`. Records the station made after the backup
//! may already be at the centre (sequence `n + 1` onwards); numbering new records from `n + 1`
//! again would make every one of them a fork there. So `tasjil restore` signs a link with the
//! station key that names the restored head (`from_seq`, `from_hash`) and takes a *new* place in
//! the chain, `seq`, far beyond anything the lost records could have reached: the time of the
//! restore in milliseconds (a van makes a few thousand records a year; the clock moves a million
//! times faster than that, and two restores from the same backup are never at the same
//! millisecond). Records made after the restore continue from the link (`seq + 1`, `prev` = the
//! link's hash), so the old branch — the records the centre holds and any still on a USB stick —
//! and the new one both verify: each element's predecessor is the element at `seq - 1`, an
//! envelope or a link.
//!
//! A link adds a branch; it never removes or replaces anything the centre holds. It is signed by
//! the station key only (no badge is needed to restore a van), recorded in the station's audit
//! chain, and listed by the centre.

use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::{RecordError, GENESIS};
use crate::canonical::{sha256, sha256_hex, to_canonical};
use crate::keys::{parse_signature, verify, StationKey};

/// Version of the restore-link format written by this build.
pub const RESTORE_VERSION: u32 = 1;
const RESTORE_DOMAIN: &[u8] = b"tasjil/restore/station/v1\0";
/// How far past the restored head a link goes at the least, when the clock is behind.
pub const MIN_RESTORE_JUMP: u64 = 1_000_000;

/// What the station signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    pub v: u32,
    pub station: String,
    /// Sequence and hash of the restored store's last chain element (`0` and [`GENESIS`] when it
    /// held none).
    pub from_seq: u64,
    pub from_hash: String,
    /// The link's own place in the chain; the next record takes `seq + 1`.
    pub seq: u64,
    pub restored_ms: i64,
    /// Why the station was restored, in the operator's words.
    pub reason: String,
}

impl RestoreBody {
    /// The place a link restored at `restored_ms` from head `from_seq` takes: the time, or at
    /// least [`MIN_RESTORE_JUMP`] past the head when the clock is behind the chain.
    pub fn place(from_seq: u64, restored_ms: i64) -> u64 {
        let by_clock = u64::try_from(restored_ms).unwrap_or(0);
        by_clock.max(from_seq + MIN_RESTORE_JUMP)
    }

    fn check(&self) -> Result<(), RecordError> {
        let bad = |m: String| Err(RecordError::Schema(m));
        if self.v != RESTORE_VERSION {
            return bad(format!(
                "restore link version {} is not supported (this build reads {RESTORE_VERSION})",
                self.v
            ));
        }
        if self.station.is_empty() || self.station.len() > 64 {
            return bad("restore link must name its station".into());
        }
        if self.seq <= self.from_seq || self.seq >= 1 << 53 {
            return bad(format!(
                "restore link place {} must come after the restored head {} and stay below 2^53",
                self.seq, self.from_seq
            ));
        }
        if self.from_seq == 0 && self.from_hash != GENESIS {
            return bad("a link from an empty chain must name the genesis hash".into());
        }
        if self.from_hash.len() != 64
            || !self
                .from_hash
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return bad("from_hash is not a lower-case SHA-256 hex".into());
        }
        if self.reason.trim().is_empty() || self.reason.len() > 500 {
            return bad("restore link reason must be 1 to 500 bytes".into());
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    body: RestoreBody,
    station_sig: String,
}

/// A restore link signed by its station.
#[derive(Clone, PartialEq, Eq)]
pub struct RestoreLink {
    body: RestoreBody,
    station_sig: String,
}

impl fmt::Debug for RestoreLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RestoreLink({} {} -> {})",
            self.body.station, self.body.from_seq, self.body.seq
        )
    }
}

fn message(body: &RestoreBody) -> Result<Vec<u8>, RecordError> {
    let canonical = to_canonical(body).map_err(|e| RecordError::Schema(e.to_string()))?;
    let mut m = RESTORE_DOMAIN.to_vec();
    m.extend_from_slice(&sha256(&canonical));
    Ok(m)
}

impl RestoreLink {
    /// Check `body` and sign it with the station key.
    pub fn sign(body: RestoreBody, key: &StationKey) -> Result<RestoreLink, RecordError> {
        body.check()?;
        let sig = key.sign(&message(&body)?);
        Ok(RestoreLink {
            body,
            station_sig: hex::encode(sig.to_bytes()),
        })
    }

    pub fn body(&self) -> &RestoreBody {
        &self.body
    }

    /// Canonical JSON bytes: what is stored, sent and hashed.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RecordError> {
        to_canonical(&Wire {
            body: self.body.clone(),
            station_sig: self.station_sig.clone(),
        })
        .map_err(|e| RecordError::Schema(e.to_string()))
    }

    /// Parse stored or received bytes: canonical form only, so one link has one hash.
    pub fn from_bytes(bytes: &[u8]) -> Result<RestoreLink, RecordError> {
        let wire: Wire = serde_json::from_slice(bytes)
            .map_err(|e| RecordError::Schema(format!("not a valid restore link: {e}")))?;
        wire.body.check()?;
        let link = RestoreLink {
            body: wire.body,
            station_sig: wire.station_sig,
        };
        if link.to_bytes()? != bytes {
            return Err(RecordError::Schema(
                "restore link bytes are not canonical JSON".into(),
            ));
        }
        Ok(link)
    }

    /// Hex SHA-256 of [`Self::to_bytes`]: what the first record after the restore holds as `prev`.
    pub fn hash(&self) -> Result<String, RecordError> {
        Ok(sha256_hex(&self.to_bytes()?))
    }

    /// Check the station signature.
    pub fn verify_signature(&self, station: &VerifyingKey) -> Result<(), RecordError> {
        let sig = parse_signature(&self.station_sig).map_err(|_| RecordError::Signature)?;
        if verify(station, &message(&self.body)?, &sig) {
            Ok(())
        } else {
            Err(RecordError::Signature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(from_seq: u64, seq: u64) -> RestoreBody {
        RestoreBody {
            v: RESTORE_VERSION,
            station: "VAN-1".into(),
            from_seq,
            from_hash: if from_seq == 0 {
                GENESIS.into()
            } else {
                "ab".repeat(32)
            },
            seq,
            restored_ms: 1_800_000_000_000,
            reason: "disk replaced".into(),
        }
    }

    #[test]
    fn a_link_round_trips_verifies_and_refuses_tampering() {
        let key = StationKey::generate();
        let link =
            RestoreLink::sign(body(5, RestoreBody::place(5, 1_800_000_000_000)), &key).unwrap();
        let bytes = link.to_bytes().unwrap();
        let back = RestoreLink::from_bytes(&bytes).unwrap();
        assert_eq!(back, link);
        back.verify_signature(&key.verifying_key()).unwrap();
        assert_eq!(back.hash().unwrap(), sha256_hex(&bytes));
        let other = StationKey::generate();
        assert_eq!(
            back.verify_signature(&other.verifying_key()),
            Err(RecordError::Signature)
        );
        let tampered = String::from_utf8(bytes)
            .unwrap()
            .replace("\"from_seq\":5", "\"from_seq\":6")
            .into_bytes();
        let t = RestoreLink::from_bytes(&tampered).unwrap();
        assert_eq!(
            t.verify_signature(&key.verifying_key()),
            Err(RecordError::Signature)
        );
    }

    #[test]
    fn a_link_must_move_forward_and_name_a_reason() {
        let key = StationKey::generate();
        assert!(RestoreLink::sign(body(5, 5), &key).is_err());
        let mut b = body(0, 10);
        b.reason = " ".into();
        assert!(RestoreLink::sign(b, &key).is_err());
        let mut b = body(0, 10);
        b.from_hash = "cd".repeat(32);
        assert!(RestoreLink::sign(b, &key).is_err());
        // A clock behind the chain still moves the link far past the head.
        assert_eq!(RestoreBody::place(7, 3), 7 + MIN_RESTORE_JUMP);
        assert_eq!(RestoreBody::place(7, 1_800_000_000_000), 1_800_000_000_000);
    }
}
