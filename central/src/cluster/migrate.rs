//! `tasjil-central migrate`: copy an embedded centre into a cluster. Registry, roster versions and
//! revocations, key rotations and ledgers are copied as they are (rows already present are left
//! alone); every payload is hash-checked and stored in the object store, and every chain element
//! goes through the cluster's own checks — envelopes through ingest (signatures, chain, payload),
//! restore links through their verification — in the order the embedded centre received them. So
//! a record the cluster would refuse is reported, not copied, and running it again stores nothing
//! twice: what the cluster holds comes back "already have".

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::{CentreError, ClusterStore};
use crate::store::{Ingested, LinkStored};
use crate::CentreStore;

/// What one migration did.
#[derive(Debug, Default, Serialize)]
pub struct MigrateReport {
    pub stations: u64,
    pub roster_versions: u64,
    pub rotations: u64,
    pub ledgers: u64,
    pub payloads: u64,
    /// Envelopes stored now (verified or held, as the cluster decided).
    pub stored: u64,
    /// Envelopes the cluster already held.
    pub already_had: u64,
    pub restore_links: u64,
    /// `(station, seq, reason)` of every element the cluster refused.
    pub refused: Vec<(String, u64, String)>,
}

fn sql(path: &std::path::Path, e: rusqlite::Error) -> CentreError {
    CentreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

enum Element {
    Envelope { bytes: Vec<u8>, payload: String },
    Link { bytes: Vec<u8> },
}

/// Copy the embedded centre `from` into `to`. See the module docs.
pub fn migrate_embedded(
    from: &CentreStore,
    to: &ClusterStore,
) -> Result<MigrateReport, CentreError> {
    let path = from.db_path().to_path_buf();
    let db = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| sql(&path, e))?;
    let e = |e| sql(&path, e);
    let mut report = MigrateReport::default();

    type StationRow = (
        String,
        String,
        i64,
        String,
        Option<String>,
        Option<i64>,
        bool,
    );
    let stations: Vec<StationRow> = db
        .prepare("SELECT id, public_key, added_ms, state, state_reason, state_ms, simulation FROM stations")
        .map_err(e)?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let rosters: Vec<(i64, i64, String)> = db
        .prepare("SELECT version, issued_ms, document FROM roster_versions ORDER BY version")
        .map_err(e)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let revocations: Vec<(String, String, i64, String)> = db
        .prepare("SELECT badge, id, at_ms, reason FROM roster_revocations")
        .map_err(e)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let rotations: Vec<(i64, Vec<u8>, i64)> = db
        .prepare("SELECT version, rotation, issued_ms FROM key_rotations ORDER BY version")
        .map_err(e)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let ledgers: Vec<(String, String, Vec<u8>)> = db
        .prepare("SELECT name, station, doc FROM ledgers")
        .map_err(e)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let rejections: Vec<(String, String, String, i64)> = db
        .prepare("SELECT station, id, reason, at_ms FROM rejections ORDER BY at_ms")
        .map_err(e)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;

    let copied = to.run(|s, c| {
        Box::pin(async move {
            let err = |e| s.err(e);
            let tx = c.transaction().await.map_err(err)?;
            let mut n = (0u64, 0u64, 0u64, 0u64);
            for (id, key, added, state, reason, state_ms, sim) in &stations {
                n.0 += tx
                    .execute(
                        "INSERT INTO stations (id, public_key, added_ms, state, state_reason, state_ms, simulation)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                        &[id, key, added, state, reason, state_ms, sim],
                    )
                    .await
                    .map_err(err)?;
                let held: String = tx
                    .query_one("SELECT public_key FROM stations WHERE id = $1", &[id])
                    .await
                    .map_err(err)?
                    .get(0);
                if held != *key {
                    return Err(CentreError::StationKeyConflict { station: id.clone() });
                }
            }
            for (v, issued, doc) in &rosters {
                n.1 += tx
                    .execute(
                        "INSERT INTO roster_versions (version, issued_ms, document) VALUES ($1, $2, $3)
                         ON CONFLICT (version) DO NOTHING",
                        &[v, issued, doc],
                    )
                    .await
                    .map_err(err)?;
            }
            for (badge, id, at, reason) in &revocations {
                tx.execute(
                    "INSERT INTO roster_revocations (badge, id, at_ms, reason) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (badge) DO NOTHING",
                    &[badge, id, at, reason],
                )
                .await
                .map_err(err)?;
            }
            for (v, rotation, issued) in &rotations {
                n.2 += tx
                    .execute(
                        "INSERT INTO key_rotations (version, rotation, issued_ms) VALUES ($1, $2, $3)
                         ON CONFLICT (version) DO NOTHING",
                        &[v, rotation, issued],
                    )
                    .await
                    .map_err(err)?;
            }
            for (name, station, doc) in &ledgers {
                n.3 += tx
                    .execute(
                        "INSERT INTO ledgers (name, station, doc) VALUES ($1, $2, $3)
                         ON CONFLICT (name) DO NOTHING",
                        &[name, station, doc],
                    )
                    .await
                    .map_err(err)?;
            }
            for (station, id, reason, at) in &rejections {
                tx.execute(
                    "INSERT INTO rejections (station, id, reason, at_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (station, id, reason) DO NOTHING",
                    &[station, id, reason, at],
                )
                .await
                .map_err(err)?;
            }
            tx.commit().await.map_err(err)?;
            Ok(n)
        })
    })?;
    (
        report.stations,
        report.roster_versions,
        report.rotations,
        report.ledgers,
    ) = copied;

    // Chain elements in the order the embedded centre received them (each after its predecessor).
    let mut elements: Vec<(i64, String, i64, Element)> = db
        .prepare("SELECT received_ms, station, seq, envelope, payload_sha256 FROM envelopes")
        .map_err(e)?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                Element::Envelope {
                    bytes: r.get(3)?,
                    payload: r.get(4)?,
                },
            ))
        })
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let links: Vec<(i64, String, i64, Element)> = db
        .prepare("SELECT received_ms, station, seq, link FROM restore_links")
        .map_err(e)?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                Element::Link { bytes: r.get(3)? },
            ))
        })
        .map_err(e)?
        .collect::<Result<_, _>>()
        .map_err(e)?;
    elements.extend(links);
    elements.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));

    let now = crate::now_ms();
    for (received, station, seq, element) in elements {
        match element {
            Element::Envelope { bytes, payload } => {
                let sealed = from.read_blob(&payload)?;
                let stored = to.run(|s, c| {
                    Box::pin(async move { s.put_blob_whole(c, &payload, sealed).await.map(|()| 1) })
                })?;
                report.payloads += stored;
                let one: [&[u8]; 1] = [&bytes];
                let outcome = on_client!(to, c => to.ingest_async(c, &one, received))?.pop();
                match outcome {
                    Some(Ingested::Stored { .. } | Ingested::Held { .. }) => report.stored += 1,
                    Some(Ingested::AlreadyHave { .. }) => report.already_had += 1,
                    Some(Ingested::Rejected { reason, .. }) => {
                        report.refused.push((station, seq as u64, reason))
                    }
                    None => {}
                }
            }
            Element::Link { bytes } => {
                let st = station.clone();
                let outcome = to.run(|s, c| {
                    Box::pin(async move { s.store_link_async(c, &st, &bytes, now).await })
                })?;
                match outcome {
                    LinkStored::Stored { .. } => report.restore_links += 1,
                    LinkStored::AlreadyHave { .. } => {}
                    LinkStored::Rejected { reason, .. } => {
                        report.refused.push((station, seq as u64, reason))
                    }
                }
            }
        }
    }
    Ok(report)
}
