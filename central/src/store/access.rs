//! The access log: every opening of a citizen's sealed payload at the centre — by whom, when,
//! which record, why — as a hash chain of entries, each signed by the centre's Ed25519 key.
//!
//! An entry is canonical JSON (RFC 8785) of [`AccessEntry`], which names the previous entry's
//! hash; its hash is the SHA-256 of those bytes, and the signature is over that hash (domain
//! separated). [`CentreStore::log_access`] appends in a write transaction, so two processes never
//! fork the chain; [`CentreStore::verify_access_log`] re-checks all of it with the public key.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use tasjil_sync::record::GENESIS;
use tasjil_sync::{sha256_hex, to_canonical};

use super::{lock, CentreError, CentreStore, Problem};

const ACCESS_DOMAIN: &[u8] = b"tasjil/access-log/v1\0";

/// One opening of personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    pub seq: u64,
    pub at_ms: i64,
    /// The staff account, or the operating-system user for the command line.
    pub who: String,
    /// What was done: "open" (record page), "export-nist" (AFIS transaction written).
    pub action: String,
    pub station: String,
    pub record: String,
    pub reason: String,
    pub prev: String,
}

/// An entry as stored, with its hash and the centre's signature (for `access-log --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedAccess {
    #[serde(flatten)]
    pub entry: AccessEntry,
    pub hash: String,
    pub signature: String,
}

fn signing_message(hash: &str) -> Vec<u8> {
    let mut m = ACCESS_DOMAIN.to_vec();
    m.extend_from_slice(hash.as_bytes());
    m
}

/// What `access-log --verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLogReport {
    pub ok: bool,
    pub entries: u64,
    pub problems: Vec<Problem>,
}

impl CentreStore {
    /// Append one entry (signed with `key`) before the personal data is shown or written.
    #[allow(clippy::too_many_arguments)]
    pub fn log_access(
        &self,
        key: &SigningKey,
        who: &str,
        action: &str,
        station: &str,
        record: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<LoggedAccess, CentreError> {
        if reason.trim().is_empty() {
            return Err(CentreError::BadStaff(
                "every opening of a record needs a reason".into(),
            ));
        }
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let (seq, prev) = last.map_or((1, GENESIS.to_string()), |(s, h)| (s as u64 + 1, h));
        let entry = AccessEntry {
            seq,
            at_ms: now_ms,
            who: who.chars().take(128).collect(),
            action: action.into(),
            station: station.into(),
            record: record.into(),
            reason: reason.chars().take(500).collect(),
            prev,
        };
        let bytes = to_canonical(&entry).map_err(|e| CentreError::BadStaff(e.to_string()))?;
        let hash = sha256_hex(&bytes);
        let signature = hex::encode(key.sign(&signing_message(&hash)).to_bytes());
        tx.execute(
            "INSERT INTO access_log (seq, entry, hash, signature) VALUES (?1, ?2, ?3, ?4)",
            params![seq as i64, bytes, hash, signature],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        tracing::info!(seq, who, action, station, record, "personal data opened");
        Ok(LoggedAccess {
            entry,
            hash,
            signature,
        })
    }

    /// Every entry, oldest first, as stored (not checked: see [`Self::verify_access_log`]).
    pub fn access_log(&self) -> Result<Vec<LoggedAccess>, CentreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare("SELECT entry, hash, signature FROM access_log ORDER BY seq")
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (bytes, hash, signature) = row.map_err(|e| self.sql(e))?;
            let entry: AccessEntry =
                serde_json::from_slice(&bytes).map_err(|e| CentreError::Damaged {
                    path: self.db_path.clone(),
                    detail: format!("an access-log entry does not parse: {e}"),
                })?;
            out.push(LoggedAccess {
                entry,
                hash,
                signature,
            });
        }
        Ok(out)
    }

    /// Re-check the whole chain with the centre's public key: each entry's bytes canonical and
    /// hashing to its stored hash, signed, numbered 1, 2, 3… and linked to its predecessor.
    pub fn verify_access_log(&self, keys: &[VerifyingKey]) -> Result<AccessLogReport, CentreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare("SELECT seq, entry, hash, signature FROM access_log ORDER BY seq")
            .map_err(|e| self.sql(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.sql(e))?;
        let (mut entries, mut expected_seq, mut prev) = (0u64, 1u64, GENESIS.to_string());
        let mut problems = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.sql(e))? {
            let seq: i64 = r.get(0).map_err(|e| self.sql(e))?;
            let bytes: Vec<u8> = r.get(1).map_err(|e| self.sql(e))?;
            let hash: String = r.get(2).map_err(|e| self.sql(e))?;
            let signature: String = r.get(3).map_err(|e| self.sql(e))?;
            entries += 1;
            let mut reasons = Vec::new();
            let computed = sha256_hex(&bytes);
            if computed != hash {
                reasons.push("entry bytes do not hash to the stored hash".to_string());
            }
            match serde_json::from_slice::<AccessEntry>(&bytes) {
                Err(e) => reasons.push(format!("entry does not parse: {e}")),
                Ok(entry) => {
                    if to_canonical(&entry).ok().as_deref() != Some(bytes.as_slice()) {
                        reasons.push("entry is not in canonical form".into());
                    }
                    if entry.seq != expected_seq || i64::try_from(entry.seq).ok() != Some(seq) {
                        reasons.push(format!(
                            "entry number {} where {expected_seq} was due",
                            entry.seq
                        ));
                    }
                    if entry.prev != prev {
                        reasons.push("entry does not link to the one before it".into());
                    }
                }
            }
            let signed = tasjil_sync::keys::parse_signature(&signature).is_ok_and(|s| {
                keys.iter()
                    .any(|k| k.verify_strict(&signing_message(&hash), &s).is_ok())
            });
            if !signed {
                reasons.push("centre signature does not verify".into());
            }
            if !reasons.is_empty() {
                problems.push(Problem {
                    id: format!("access-log entry {seq}"),
                    reason: reasons.join("; "),
                });
            }
            prev = computed;
            expected_seq = u64::try_from(seq).unwrap_or(0) + 1;
        }
        Ok(AccessLogReport {
            ok: problems.is_empty(),
            entries,
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_chains_signs_and_catches_one_changed_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = CentreStore::open(dir.path()).unwrap();
        let key = SigningKey::from_bytes(&[7u8; 32]);
        for i in 0..3 {
            store
                .log_access(
                    &key,
                    "amina",
                    "open",
                    "VAN-1",
                    &format!("R{i}"),
                    "card issuance",
                    1000 + i,
                )
                .unwrap();
        }
        assert!(store
            .log_access(&key, "amina", "open", "VAN-1", "R9", "  ", 2000)
            .is_err());
        let report = store.verify_access_log(&[key.verifying_key()]).unwrap();
        assert_eq!(
            (report.ok, report.entries),
            (true, 3),
            "{:?}",
            report.problems
        );
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(!store.verify_access_log(&[other]).unwrap().ok);
        let log = store.access_log().unwrap();
        assert_eq!(log[1].entry.prev, log[0].hash);
        assert_eq!(log[2].entry.reason, "card issuance");

        // Append-only for SQL; a raw edit of one byte is caught.
        let raw = rusqlite::Connection::open(dir.path().join("centre.db")).unwrap();
        assert!(raw
            .execute("DELETE FROM access_log WHERE seq = 2", [])
            .is_err());
        raw.execute_batch("DROP TRIGGER access_log_no_update")
            .unwrap();
        let mut bytes: Vec<u8> = raw
            .query_row("SELECT entry FROM access_log WHERE seq = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        let at = bytes.windows(2).position(|w| w == b"R1").unwrap() + 1;
        bytes[at] = b'7';
        raw.execute("UPDATE access_log SET entry = ?1 WHERE seq = 2", [&bytes])
            .unwrap();
        let report = store.verify_access_log(&[key.verifying_key()]).unwrap();
        assert!(!report.ok);
        assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
        assert_eq!(report.problems[0].id, "access-log entry 2");
        assert!(
            report.problems[1].reason.contains("does not link"),
            "{:?}",
            report.problems
        );
    }
}
