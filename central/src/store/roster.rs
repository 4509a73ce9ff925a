//! The roster of field staff and the signed versions the centre issues from it
//! ([`tasjil_sync::roster`]). Every change (add, revoke) issues the next version, signed with the
//! centre's key, in the same transaction; every version is kept, so a record is checked against
//! the roster its station held when the officer co-signed it.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tasjil_sync::roster::{
    Refusal, Revocation, Role, Roster, RosterBody, RosterEntry, ROSTER_FORMAT,
};

use super::{lock, CentreError, CentreStore};

/// A station asking for the roster gets a freshly issued version when the latest is older than
/// this, so the roster's age at a van says how long ago it last heard from the centre.
pub const REISSUE_AFTER_MS: i64 = 24 * 3_600_000;

fn check_officer_id(id: &str) -> Result<(), CentreError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(CentreError::Roster(format!(
            "{:?} is not a valid officer id (1 to 64 letters, digits, '-', '_' or '.')",
            id.chars().take(80).collect::<String>()
        )))
    }
}

fn entries_in(conn: &Connection) -> rusqlite::Result<Vec<RosterEntry>> {
    let mut stmt = conn.prepare(
        "SELECT id, name, role, badge, stations, valid_from_ms, valid_until_ms, revoked_ms,
                revoked_reason
         FROM roster ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        let role: String = r.get(2)?;
        let stations: String = r.get(4)?;
        let revoked_ms: Option<i64> = r.get(7)?;
        let reason: Option<String> = r.get(8)?;
        Ok(RosterEntry {
            id: r.get(0)?,
            name: r.get(1)?,
            role: role.parse().unwrap_or(Role::Officer),
            badge: r.get(3)?,
            stations: serde_json::from_str(&stations).unwrap_or_default(),
            valid_from_ms: r.get(5)?,
            valid_until_ms: r.get(6)?,
            revoked: revoked_ms.map(|at_ms| Revocation {
                at_ms,
                reason: reason.unwrap_or_default(),
            }),
        })
    })?;
    rows.collect()
}

/// Station groups: name -> station ids.
fn groups_in(
    conn: &Connection,
) -> rusqlite::Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, station FROM station_groups ORDER BY name, station")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut groups = std::collections::BTreeMap::<String, Vec<String>>::new();
    for row in rows {
        let (name, station) = row?;
        groups.entry(name).or_default().push(station);
    }
    Ok(groups)
}

/// Group names: like officer ids, without the `@`.
fn check_group_name(name: &str) -> Result<(), CentreError> {
    if name.is_empty()
        || name.len() > 40
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(CentreError::Roster(format!(
            "group name {name:?} must be 1-40 letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

impl CentreStore {
    /// Station groups as the roster carries them.
    pub fn station_groups(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, CentreError> {
        let conn = lock(&self.conn);
        groups_in(&conn).map_err(|e| self.sql(e))
    }

    /// Put `station` in group `name` (`add`) or take it out, and issue the next roster version
    /// (when there is a roster): a badge listed for `@name` follows at the vans' next roster.
    pub fn station_group_change(
        &self,
        name: &str,
        station: &str,
        add: bool,
        now_ms: i64,
    ) -> Result<Option<Roster>, CentreError> {
        check_group_name(name)?;
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let changed = if add {
            let known: bool = tx
                .query_row("SELECT count(*) FROM stations WHERE id = ?1", [station], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(|e| self.sql(e))?
                > 0;
            if !known {
                return Err(CentreError::UnknownStation(station.to_string()));
            }
            tx.execute(
                "INSERT OR IGNORE INTO station_groups (name, station, added_ms) VALUES (?1, ?2, ?3)",
                params![name, station, now_ms],
            )
        } else {
            tx.execute(
                "DELETE FROM station_groups WHERE name = ?1 AND station = ?2",
                params![name, station],
            )
        }
        .map_err(|e| self.sql(e))?;
        let has_roster: bool = tx
            .query_row("SELECT count(*) FROM roster_versions", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| self.sql(e))?
            > 0;
        let roster = if changed > 0 && has_roster && self.signer.get().is_some() {
            Some(self.issue_in(&tx, now_ms)?)
        } else {
            None
        };
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(roster)
    }

    fn roster_signer(&self) -> Result<&ed25519_dalek::SigningKey, CentreError> {
        self.signer.get().ok_or_else(|| {
            CentreError::Roster(
                "the centre's signing key is not loaded (centre.key): a roster cannot be issued"
                    .into(),
            )
        })
    }

    /// Issue the next roster version from the `roster` table, inside `tx`.
    fn issue_in(&self, tx: &Connection, now_ms: i64) -> Result<Roster, CentreError> {
        let key = self.roster_signer()?;
        let entries = entries_in(tx).map_err(|e| self.sql(e))?;
        let last: Option<i64> = tx
            .query_row("SELECT max(version) FROM roster_versions", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        let version = last.unwrap_or(0) as u64 + 1;
        let groups = groups_in(tx).map_err(|e| self.sql(e))?;
        let roster = Roster::sign(
            RosterBody {
                format: ROSTER_FORMAT.into(),
                version,
                issued_ms: now_ms,
                centre_key: hex::encode(key.verifying_key().as_bytes()),
                entries,
                groups,
            },
            key,
        );
        let text = String::from_utf8(roster.to_bytes())
            .map_err(|e| CentreError::Roster(format!("roster encoding: {e}")))?;
        tx.execute(
            "INSERT INTO roster_versions (version, issued_ms, document) VALUES (?1, ?2, ?3)",
            params![version as i64, now_ms, text],
        )
        .map_err(|e| self.sql(e))?;
        Ok(roster)
    }

    /// Put `entry` on the roster (or replace a revoked entry of the same id with a new badge) and
    /// issue the next version.
    pub fn roster_add(&self, entry: &RosterEntry, now_ms: i64) -> Result<Roster, CentreError> {
        check_officer_id(&entry.id)?;
        tasjil_sync::keys::parse_verifying_key(&entry.badge).map_err(|e| {
            CentreError::Roster(format!(
                "badge key of {}: {e} (64 hex digits, as `tasjil badge status --json` prints it)",
                entry.id
            ))
        })?;
        for s in &entry.stations {
            if let Some(group) = s.strip_prefix(tasjil_sync::roster::GROUP_PREFIX) {
                check_group_name(group)?;
            }
        }
        if entry.stations.is_empty() {
            return Err(CentreError::Roster(format!(
                "{}: name at least one station, or * for every station",
                entry.id
            )));
        }
        if entry
            .valid_until_ms
            .is_some_and(|u| u <= entry.valid_from_ms)
        {
            return Err(CentreError::Roster(format!(
                "{}: valid until must be after valid from",
                entry.id
            )));
        }
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let known: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT badge, revoked_ms FROM roster WHERE id = ?1",
                [&entry.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let badge_used: Option<String> = tx
            .query_row(
                "SELECT id FROM roster WHERE badge = ?1 AND id <> ?2",
                params![entry.badge.to_ascii_lowercase(), entry.id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        if let Some(other) = badge_used {
            return Err(CentreError::Roster(format!(
                "that badge key is already on the roster for {other}"
            )));
        }
        match known {
            Some((badge, None)) => {
                return Err(CentreError::Roster(format!(
                    "{} is already on the roster (badge {}…); revoke that badge first to issue a new one",
                    entry.id,
                    &badge[..16.min(badge.len())]
                )))
            }
            Some((badge, Some(_))) if badge.eq_ignore_ascii_case(&entry.badge) => {
                return Err(CentreError::Roster(format!(
                    "that badge of {} was revoked and stays revoked: personalise a new badge",
                    entry.id
                )))
            }
            _ => {}
        }
        let stations = serde_json::to_string(&entry.stations)
            .map_err(|e| CentreError::Roster(e.to_string()))?;
        tx.execute(
            "INSERT INTO roster (id, name, role, badge, stations, valid_from_ms, valid_until_ms, added_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role,
               badge = excluded.badge, stations = excluded.stations,
               valid_from_ms = excluded.valid_from_ms, valid_until_ms = excluded.valid_until_ms,
               revoked_ms = NULL, revoked_reason = NULL, added_ms = excluded.added_ms",
            params![
                entry.id,
                entry.name,
                entry.role.as_str(),
                entry.badge.to_ascii_lowercase(),
                stations,
                entry.valid_from_ms,
                entry.valid_until_ms,
                now_ms
            ],
        )
        .map_err(|e| self.sql(e))?;
        let roster = self.issue_in(&tx, now_ms)?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(roster)
    }

    /// Revoke the badge of officer `id` from `now_ms` on and issue the next version.
    pub fn roster_revoke(
        &self,
        id: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Roster, CentreError> {
        if reason.trim().is_empty() {
            return Err(CentreError::Roster(
                "say why the badge is revoked (--reason)".into(),
            ));
        }
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let n = tx
            .execute(
                "UPDATE roster SET revoked_ms = ?2, revoked_reason = ?3
                 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, now_ms, reason.trim()],
            )
            .map_err(|e| self.sql(e))?;
        if n == 1 {
            tx.execute(
                "INSERT OR IGNORE INTO roster_revocations (badge, id, at_ms, reason)
                 SELECT badge, id, ?2, ?3 FROM roster WHERE id = ?1",
                params![id, now_ms, reason.trim()],
            )
            .map_err(|e| self.sql(e))?;
        }
        if n == 0 {
            let known: bool = tx
                .query_row("SELECT count(*) FROM roster WHERE id = ?1", [id], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(|e| self.sql(e))?
                > 0;
            return Err(CentreError::Roster(if known {
                format!("{id} is already revoked")
            } else {
                format!("{id} is not on the roster")
            }));
        }
        let roster = self.issue_in(&tx, now_ms)?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(roster)
    }

    /// Every entry as the centre holds it now (revoked ones included).
    pub fn roster_entries(&self) -> Result<Vec<RosterEntry>, CentreError> {
        let conn = lock(&self.conn);
        entries_in(&conn).map_err(|e| self.sql(e))
    }

    /// The last version issued, `None` before the first.
    pub fn roster_latest(&self) -> Result<Option<Arc<Roster>>, CentreError> {
        let conn = lock(&self.conn);
        self.roster_latest_in(&conn)
    }

    fn roster_latest_in(&self, conn: &Connection) -> Result<Option<Arc<Roster>>, CentreError> {
        let v: Option<i64> = conn
            .query_row("SELECT max(version) FROM roster_versions", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        match v {
            Some(v) => self.roster_version_in(conn, v as u64),
            None => Ok(None),
        }
    }

    /// Roster `version` as it was issued.
    pub fn roster_version(&self, version: u64) -> Result<Option<Arc<Roster>>, CentreError> {
        let conn = lock(&self.conn);
        self.roster_version_in(&conn, version)
    }

    fn roster_version_in(
        &self,
        conn: &Connection,
        version: u64,
    ) -> Result<Option<Arc<Roster>>, CentreError> {
        if let Some(r) = lock(&self.rosters).get(&version) {
            return Ok(Some(r.clone()));
        }
        let text: Option<String> = conn
            .query_row(
                "SELECT document FROM roster_versions WHERE version = ?1",
                [i64::try_from(version).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some(text) = text else { return Ok(None) };
        let roster: Roster = serde_json::from_str(&text).map_err(|e| {
            CentreError::Roster(format!("stored roster version {version} is damaged: {e}"))
        })?;
        let roster = Arc::new(roster);
        lock(&self.rosters).insert(version, roster.clone());
        Ok(Some(roster))
    }

    /// Issue the next roster version now (same entries), signed with the key this store holds:
    /// after a key rotation, so that vans get a roster signed by the new key. `None` when there
    /// is no roster yet.
    pub fn roster_reissue(&self, now_ms: i64) -> Result<Option<Roster>, CentreError> {
        if self.roster_latest()?.is_none() {
            return Ok(None);
        }
        let mut conn = lock(&self.conn);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let r = self.issue_in(&tx, now_ms)?;
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(Some(r))
    }

    /// What a station holding version `held` should receive: the latest version when newer
    /// (issued afresh when older than [`REISSUE_AFTER_MS`] and the centre can sign).
    pub fn roster_for_station(
        &self,
        held: Option<u64>,
        now_ms: i64,
    ) -> Result<Option<Arc<Roster>>, CentreError> {
        let Some(mut latest) = self.roster_latest()? else {
            return Ok(None);
        };
        if now_ms - latest.roster.issued_ms > REISSUE_AFTER_MS && self.signer.get().is_some() {
            let mut conn = lock(&self.conn);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.sql(e))?;
            // Another node or process may have just reissued: only one fresh version a day.
            let issued: i64 = tx
                .query_row(
                    "SELECT issued_ms FROM roster_versions ORDER BY version DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| self.sql(e))?;
            if now_ms - issued > REISSUE_AFTER_MS {
                let r = self.issue_in(&tx, now_ms)?;
                tx.commit().map_err(|e| self.sql(e))?;
                latest = Arc::new(r);
            } else {
                drop(tx);
                drop(conn);
                latest = self.roster_latest()?.unwrap_or(latest);
            }
        }
        Ok((held < Some(latest.version())).then_some(latest))
    }

    /// Why the roster decides who may countersign a bundle from training station `station`,
    /// `None` when it does not (a training or demonstration van the roster has no part in, whose
    /// simulated badges register on first use). It decides when the bundle's records name a
    /// roster version (`named_roster`: the van held one and checked badges against it); when the
    /// roster lists staff for the station by name or through a group (not merely `*`); and when
    /// the countersigning badge `(id, key)` is on the roster or was ever revoked: a badge the
    /// centre knows is judged by its entry on every station.
    pub fn roster_governs_training(
        &self,
        station: &str,
        named_roster: Option<u64>,
        id: &str,
        key: &str,
    ) -> Result<Option<String>, CentreError> {
        if let Some(v) = named_roster {
            return Ok(Some(format!(
                "its records name roster version {v}, which station {station} held"
            )));
        }
        let conn = lock(&self.conn);
        let revoked: bool = conn
            .query_row(
                "SELECT count(*) FROM roster_revocations WHERE badge = ?1 OR id = ?2",
                params![key.to_ascii_lowercase(), id],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.sql(e))?
            > 0;
        if revoked {
            return Ok(Some(format!("badge {id} was revoked at the centre")));
        }
        let Some(latest) = self.roster_latest_in(&conn)? else {
            return Ok(None);
        };
        let roster = &latest.roster;
        if roster
            .entries
            .iter()
            .any(|e| e.id == id || e.badge.eq_ignore_ascii_case(key))
        {
            return Ok(Some(format!("badge {id} is on the roster")));
        }
        let named_here = roster.entries.iter().any(|e| {
            let mut named = e.clone();
            named
                .stations
                .retain(|s| s != tasjil_sync::roster::ALL_STATIONS);
            named.works_on(station, &roster.groups)
        });
        Ok(named_here.then(|| format!("the roster lists staff for station {station}")))
    }

    /// Whether the badge `(id, key)` could do `needs` on `station` at `at_ms` under roster
    /// `version` (the one the station held), with the centre's own later revocations applied.
    /// `Err` names why not, in words for the station and central staff.
    pub fn roster_allows(
        &self,
        version: Option<u64>,
        id: &str,
        key: &str,
        station: &str,
        needs: Role,
        at_ms: i64,
    ) -> Result<Result<(), String>, CentreError> {
        let conn = lock(&self.conn);
        self.roster_allows_in(&conn, version, id, key, station, needs, at_ms)
    }

    /// [`Self::roster_allows`] inside the caller's connection (an ingest transaction).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn roster_allows_in(
        &self,
        conn: &Connection,
        version: Option<u64>,
        id: &str,
        key: &str,
        station: &str,
        needs: Role,
        at_ms: i64,
    ) -> Result<Result<(), String>, CentreError> {
        let held = match version {
            Some(v) => match self.roster_version_in(conn, v)? {
                Some(r) => r,
                None => {
                    return Ok(Err(format!(
                        "roster version {v} was never issued by this centre"
                    )))
                }
            },
            None => match self.roster_latest_in(conn)? {
                Some(r) => r,
                None => return Ok(Err("the centre has issued no roster yet".into())),
            },
        };
        if let Err(refusal) = held.allows(id, key, station, needs, at_ms) {
            return Ok(Err(refusal.to_string()));
        }
        // A revocation the station had not heard of yet still counts from its time on.
        let revoked: Option<String> = conn
            .query_row(
                "SELECT reason FROM roster_revocations WHERE badge = ?1 AND at_ms <= ?2",
                params![key.to_ascii_lowercase(), at_ms],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        if let Some(reason) = revoked {
            return Ok(Err(Refusal::Revoked {
                id: id.to_string(),
                reason,
            }
            .to_string()));
        }
        Ok(Ok(()))
    }
}
