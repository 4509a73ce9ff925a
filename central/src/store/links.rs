//! Restore links ([`tasjil_sync::RestoreLink`]): a restored station's signed statement that its
//! chain goes on from a new place. Stored here by sync (`/v1/chain`) and by bundle import; an
//! envelope's predecessor is the element at `seq - 1`, envelope or link ([`pred_in`]).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use tasjil_sync::{RestoreBody, RestoreLink, GENESIS};

use super::registry::station_key_in;
use super::{lock, CentreError, CentreStore};

/// What became of one restore link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LinkStored {
    Stored { seq: u64 },
    AlreadyHave { seq: u64 },
    Rejected { seq: Option<u64>, reason: String },
}

/// A stored restore link, for `list-restores` and the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreLinkRow {
    pub station: String,
    pub seq: u64,
    pub from_seq: u64,
    pub hash: String,
    pub reason: String,
    pub restored_ms: i64,
    pub received_ms: i64,
}

/// A restore link `station` sent, parsed and checked to be its own; else the refusal to report.
pub(crate) fn parse_link(station: &str, bytes: &[u8]) -> Result<RestoreLink, LinkStored> {
    let link = RestoreLink::from_bytes(bytes).map_err(|e| LinkStored::Rejected {
        seq: None,
        reason: e.to_string(),
    })?;
    let body = link.body();
    if body.station != station {
        return Err(LinkStored::Rejected {
            seq: Some(body.seq),
            reason: format!(
                "restore link of station {} sent by station {station}",
                body.station
            ),
        });
    }
    Ok(link)
}

/// The decision on a link whose signature verified (hash `hash`), from what the centre holds at
/// its starting point (`held_from`) and at its own place (`held_at`): `None` to store it.
pub(crate) fn judge_link(
    station: &str,
    body: &RestoreBody,
    hash: &str,
    held_from: Option<&str>,
    held_at: Option<&str>,
) -> Option<LinkStored> {
    let refuse = |reason: String| {
        Some(LinkStored::Rejected {
            seq: Some(body.seq),
            reason,
        })
    };
    if held_from.is_some_and(|held| held != body.from_hash) {
        return refuse(format!(
            "restore link starts from sequence {} of station {station}, where the centre holds another element",
            body.from_seq
        ));
    }
    match held_at {
        Some(held) if held == hash => Some(LinkStored::AlreadyHave { seq: body.seq }),
        Some(_) => refuse(format!(
            "chain fork: the centre already holds another element at sequence {} of station {station}",
            body.seq
        )),
        None => None,
    }
}

impl CentreStore {
    /// Verify and store a restore link sent by (or, from a bundle, signed by) `station`.
    pub fn store_restore_link(
        &self,
        station: &str,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<LinkStored, CentreError> {
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let outcome = self.store_link_in(&tx, station, bytes, now_ms)?;
        tx.commit().map_err(|e| self.sql(e))?;
        if let LinkStored::Stored { seq } = &outcome {
            tracing::info!(%station, seq, "restore link stored");
        }
        Ok(outcome)
    }

    /// [`Self::store_restore_link`] inside the caller's transaction.
    pub(super) fn store_link_in(
        &self,
        conn: &Connection,
        station: &str,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<LinkStored, CentreError> {
        let link = match parse_link(station, bytes) {
            Ok(link) => link,
            Err(refused) => return Ok(refused),
        };
        let body = link.body();
        let refuse = |reason: String| {
            Ok(LinkStored::Rejected {
                seq: Some(body.seq),
                reason,
            })
        };
        let Some(key) = station_key_in(conn, &self.db_path, station)? else {
            return refuse(format!(
                "unknown station {station}: it is not registered at the centre"
            ));
        };
        if let Err(e) = link.verify_signature(&key) {
            return refuse(format!("restore link: {e}"));
        }
        let hash = tasjil_sync::sha256_hex(bytes);
        let seq = i64::try_from(body.seq).unwrap_or(i64::MAX);
        let from = i64::try_from(body.from_seq).unwrap_or(i64::MAX);
        let held_from = at_in(conn, station, from).map_err(|e| self.sql(e))?;
        let held_at = at_in(conn, station, seq).map_err(|e| self.sql(e))?;
        if let Some(decided) = judge_link(
            station,
            body,
            &hash,
            held_from.as_deref(),
            held_at.as_deref(),
        ) {
            return Ok(decided);
        }
        conn.execute(
            "INSERT INTO restore_links
               (station, seq, hash, from_seq, from_hash, link, reason, restored_ms, received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                station,
                seq,
                hash,
                body.from_seq as i64,
                body.from_hash,
                bytes,
                body.reason,
                body.restored_ms,
                now_ms
            ],
        )
        .map_err(|e| self.sql(e))?;
        Ok(LinkStored::Stored { seq: body.seq })
    }

    /// Every restore link the centre holds, by station and place.
    pub fn restore_links(&self) -> Result<Vec<RestoreLinkRow>, CentreError> {
        let conn = lock(&self.conn);
        links_in(&conn, None).map_err(|e| self.sql(e))
    }
}

/// Restore links of `station` (or of every station), with their signed bytes.
pub(super) fn links_in(
    conn: &Connection,
    station: Option<&str>,
) -> rusqlite::Result<Vec<RestoreLinkRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT station, seq, from_seq, hash, reason, restored_ms, received_ms FROM restore_links
         WHERE ?1 IS NULL OR station = ?1 ORDER BY station, seq",
    )?;
    let rows = stmt.query_map([station], |r| {
        Ok(RestoreLinkRow {
            station: r.get(0)?,
            seq: r.get::<_, i64>(1)? as u64,
            from_seq: r.get::<_, i64>(2)? as u64,
            hash: r.get(3)?,
            reason: r.get(4)?,
            restored_ms: r.get(5)?,
            received_ms: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// The signed bytes of `station`'s link at `seq`, if any.
pub(super) fn link_bytes_in(
    conn: &Connection,
    station: &str,
    seq: i64,
) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT link FROM restore_links WHERE station = ?1 AND seq = ?2")?
        .query_row(params![station, seq], |r| r.get(0))
        .optional()
}

/// The hash of the element of `station`'s chain that an element at `seq` follows: the envelope
/// or restore link at `seq - 1`, [`GENESIS`] for the first, `None` when the centre holds nothing
/// there (yet).
pub(super) fn pred_in(
    conn: &Connection,
    station: &str,
    seq: i64,
) -> rusqlite::Result<Option<String>> {
    at_in(conn, station, seq - 1)
}

/// The hash of the envelope or restore link at `seq` of `station`'s chain ([`GENESIS`] at 0).
fn at_in(conn: &Connection, station: &str, seq: i64) -> rusqlite::Result<Option<String>> {
    if seq <= 0 {
        return Ok(Some(GENESIS.to_string()));
    }
    conn.prepare_cached(
        "SELECT hash FROM envelopes WHERE station = ?1 AND seq = ?2
         UNION ALL SELECT hash FROM restore_links WHERE station = ?1 AND seq = ?2",
    )?
    .query_row(params![station, seq], |r| r.get(0))
    .optional()
}
