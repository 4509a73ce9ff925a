//! The registry of stations allowed to send, with the Ed25519 key each one's envelopes must
//! verify with.

use ed25519_dalek::VerifyingKey;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tasjil_sync::keys::parse_verifying_key;
use tasjil_sync::StationPublic;

use super::{lock, CentreError, CentreStore};

/// A registered station, for `tasjil-central station list` and the staff page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationInfo {
    pub id: String,
    pub key_hex: String,
    pub added_ms: i64,
    pub records: u64,
    pub last_seq: u64,
    /// "active", "suspended" or "revoked".
    pub state: String,
    pub state_reason: Option<String>,
    /// A training station (`station add --simulation`): only its training records are taken.
    #[serde(default)]
    pub simulation: bool,
}

/// What central staff can make of a registered station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StationState {
    Active,
    Suspended,
    Revoked,
}

impl StationState {
    fn as_str(self) -> &'static str {
        match self {
            StationState::Active => "active",
            StationState::Suspended => "suspended",
            StationState::Revoked => "revoked",
        }
    }
}

fn check_station_id(id: &str) -> Result<(), CentreError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CentreError::BadStationId(id.chars().take(80).collect()))
    }
}

impl CentreStore {
    /// Register a station's public key. Returns `true` when newly added, `false` when this exact
    /// station and key were already registered; a different key for a known station is refused.
    pub fn add_station(&self, public: &StationPublic, now_ms: i64) -> Result<bool, CentreError> {
        check_station_id(&public.station)?;
        let key = public
            .verifying_key()
            .map_err(|reason| CentreError::BadStationKey {
                station: public.station.clone(),
                reason,
            })?;
        let key_hex = hex::encode(key.as_bytes());
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let known: Option<String> = tx
            .query_row(
                "SELECT public_key FROM stations WHERE id = ?1",
                [&public.station],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        match known {
            Some(k) if k == key_hex => Ok(false),
            Some(_) => Err(CentreError::StationKeyConflict {
                station: public.station.clone(),
            }),
            None => {
                tx.execute(
                    "INSERT INTO stations (id, public_key, added_ms, simulation)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![public.station, key_hex, now_ms, public.simulation],
                )
                .map_err(|e| self.sql(e))?;
                tx.commit().map_err(|e| self.sql(e))?;
                tracing::info!(station = %public.station, "station registered");
                Ok(true)
            }
        }
    }

    /// Whether `station` is registered as a training station.
    /// Whether `station` is registered as a training station.
    pub fn is_training(&self, station: &str) -> Result<bool, CentreError> {
        let conn = lock(&self.conn);
        CentreStore::training_in(&conn, station).map_err(|e| self.sql(e))
    }

    pub(super) fn training_in(conn: &Connection, station: &str) -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT simulation FROM stations WHERE id = ?1",
            [station],
            |r| r.get(0),
        )
        .optional()
        .map(|v| v.unwrap_or(false))
    }

    /// The registered key of `station`, if any.
    pub fn station_key(&self, station: &str) -> Result<Option<VerifyingKey>, CentreError> {
        let conn = lock(&self.conn);
        station_key_in(&conn, &self.db_path, station)
    }

    /// Every registered station with its record count and last sequence number.
    pub fn stations(&self) -> Result<Vec<StationInfo>, CentreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare(
                "SELECT s.id, s.public_key, s.added_ms, count(e.seq), coalesce(max(e.seq), 0),
                        s.state, s.state_reason, s.simulation
                 FROM stations s LEFT JOIN envelopes e ON e.station = s.id
                 GROUP BY s.id ORDER BY s.id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StationInfo {
                    id: r.get(0)?,
                    key_hex: r.get(1)?,
                    added_ms: r.get(2)?,
                    records: r.get::<_, i64>(3)? as u64,
                    last_seq: r.get::<_, i64>(4)? as u64,
                    state: r.get(5)?,
                    state_reason: r.get(6)?,
                    simulation: r.get(7)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    /// Suspend, resume or revoke `station`. A revoked station stays revoked (resuming it is
    /// refused: a stolen van's key is never trusted again); records it sent before stay.
    /// Returns the state it was in.
    pub fn set_station_state(
        &self,
        station: &str,
        state: StationState,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<String, CentreError> {
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let (before, before_reason): (String, Option<String>) = tx
            .query_row(
                "SELECT state, state_reason FROM stations WHERE id = ?1",
                [station],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?
            .ok_or_else(|| CentreError::UnknownStation(station.to_string()))?;
        if before == "revoked" && state != StationState::Revoked {
            return Err(CentreError::StationBarred {
                station: station.to_string(),
                state: before,
                reason: before_reason,
            });
        }
        tx.execute(
            "UPDATE stations SET state = ?2, state_reason = ?3, state_ms = ?4 WHERE id = ?1",
            params![station, state.as_str(), reason, now_ms],
        )
        .map_err(|e| self.sql(e))?;
        tx.commit().map_err(|e| self.sql(e))?;
        tracing::warn!(station, from = %before, to = state.as_str(), ?reason, "station state changed");
        Ok(before)
    }
}

/// The registered key of `station`, which may send. A suspended or revoked station is refused
/// ([`CentreError::StationBarred`]). A key that no longer parses (it was checked when registered)
/// means the row is damaged: say so rather than treat the station as unknown.
pub(super) fn station_key_in(
    conn: &Connection,
    path: &Path,
    station: &str,
) -> Result<Option<VerifyingKey>, CentreError> {
    let row: Option<(String, String, Option<String>)> = conn
        .query_row(
            "SELECT public_key, state, state_reason FROM stations WHERE id = ?1",
            [station],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| CentreError::from_sqlite(path, e))?;
    if let Some((_, state, reason)) = &row {
        if state != "active" {
            return Err(CentreError::StationBarred {
                station: station.to_string(),
                state: state.clone(),
                reason: reason.clone(),
            });
        }
    }
    row.map(|(h, _, _)| {
        parse_verifying_key(&h).map_err(|e| CentreError::Damaged {
            path: path.to_path_buf(),
            detail: format!("registered key of station {station} is unreadable: {e}"),
        })
    })
    .transpose()
}
