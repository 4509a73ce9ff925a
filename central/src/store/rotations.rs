//! Centre key rotations ([`tasjil_sync::rotation`]): kept so that every station, however long it
//! was away, can chain from the key set it holds to the current one.

use rusqlite::params;

use super::{lock, CentreError, CentreStore};

impl CentreStore {
    /// Keep rotation `version` (canonical bytes as signed). Keeping the same one again is
    /// harmless; another one at a version already kept is refused.
    pub fn record_rotation(
        &self,
        version: u64,
        rotation: &[u8],
        issued_ms: i64,
    ) -> Result<(), CentreError> {
        let conn = lock(&self.conn);
        let held: Option<Vec<u8>> = conn
            .query_row(
                "SELECT rotation FROM key_rotations WHERE version = ?1",
                [version as i64],
                |r| r.get(0),
            )
            .ok();
        match held {
            Some(bytes) if bytes == rotation => Ok(()),
            Some(_) => Err(CentreError::Migration(format!(
                "another key rotation to version {version} is already recorded"
            ))),
            None => conn
                .execute(
                    "INSERT INTO key_rotations (version, rotation, issued_ms) VALUES (?1, ?2, ?3)",
                    params![version as i64, rotation, issued_ms],
                )
                .map(|_| ())
                .map_err(|e| self.sql(e)),
        }
    }

    /// Every rotation after version `have`, in order.
    pub fn rotations_after(&self, have: u64) -> Result<Vec<Vec<u8>>, CentreError> {
        let conn = lock(&self.conn);
        let mut stmt = conn
            .prepare_cached(
                "SELECT rotation FROM key_rotations WHERE version > ?1 ORDER BY version",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([have as i64], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Vec<u8>>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }
}
