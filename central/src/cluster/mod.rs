//! The cluster backend: the centre's metadata in PostgreSQL and its sealed payloads in an
//! S3-compatible object store, so any number of stateless `tasjil-central serve` nodes share one
//! centre.
//!
//! The same [`CentreBackend`] as the embedded store, and the same verification: every envelope
//! goes through [`crate::store::decide`] (parse, station signature, officer co-signature, roster,
//! duplicates, forks, chain link, payload hash) before it is stored. What the embedded store gets
//! from one writer connection, the cluster gets from PostgreSQL:
//!
//! - **Ingest** runs in one transaction per batch that first locks the station's row
//!   (`SELECT … FOR UPDATE`): two nodes receiving the same station's records take turns, so the
//!   chain head read is still the head at commit, and the same record arriving through two nodes
//!   at once is stored once (the second sees it and answers "already have"). An enrolment id is
//!   also locked (`pg_advisory_xact_lock`) while it is checked against other stations, so two
//!   stations reusing one id at once end with one record held, as in the embedded store.
//!   Primary keys `(station, seq)`, `(station, id)` and the unique envelope hash back this up.
//!   An envelope is acknowledged only after its transaction committed.
//! - **Payloads** are uploaded in chunks, each chunk an object `partial/<sha256>/<offset>`; the
//!   upload's offset is in PostgreSQL (`blob_uploads`, row-locked), so a resume on any node
//!   continues from it. When the last byte arrives the parts are read back, hashed, and the whole
//!   payload written to `blobs/<sha256>`; only once the object store confirmed that write is
//!   the payload recorded as complete (`blobs`) and acknowledged. An envelope's payload is read
//!   back from the object store and checked against the envelope before the envelope is stored.
//! - **Ledgers** (the station-day Automerge documents) are loaded, changed and saved inside a
//!   transaction holding the same station row lock, so a ledger sync and an ingest on two nodes
//!   never overwrite each other's changes.
//!
//! Blocking like the trait: each call runs its async work on the backend's own small runtime.

/// Run `$body` (a future using the pooled connection `$c`) on the backend's runtime, from a
/// blocking thread; the connection goes back to the pool afterwards.
macro_rules! on_client {
    ($store:expr, $c:ident => $body:expr) => {{
        let store = $store;
        store.rt.block_on(async {
            let mut client = store.pool.get().await?;
            let $c = &mut client;
            let out = $body.await;
            store.pool.put(client);
            out
        })
    }};
}

mod migrate;
pub(crate) mod pg;
pub mod s3;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use ed25519_dalek::VerifyingKey;
use tasjil_sync::keys::parse_verifying_key;
use tasjil_sync::ledger::{doc_name, Ledger, PeerState};
use tasjil_sync::record::{Envelope, Signed, GENESIS};
use tasjil_sync::roster::{Refusal, Role, Roster};
use tokio_postgres::Transaction;

use crate::store::decide::{self, ChainFacts, ChainVerdict, Neighbour};
use crate::store::{
    check_address, check_chunk, BlobState, Ingested, LedgerNote, LinkStored, RecordStatus, Stats,
};
use crate::{CentreBackend, CentreError};

pub use migrate::{migrate_embedded, MigrateReport};

/// A problem `verify` found: `(station, seq, what)`.
pub type VerifyProblem = (String, u64, String);

/// Where a cluster is: its database and its object store (credentials from the environment).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub database: String,
    pub blobs: String,
}

impl ClusterConfig {
    /// `--database` / `--blobs`, else `DATABASE_URL` / `BLOBS_URL`; `None` when neither names a
    /// cluster (the embedded store), an error when only one of the two is given.
    pub fn from_options(
        database: Option<String>,
        blobs: Option<String>,
    ) -> Result<Option<ClusterConfig>, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let database = database.or_else(|| env("DATABASE_URL"));
        let blobs = blobs.or_else(|| env("BLOBS_URL"));
        match (database, blobs) {
            (None, None) => Ok(None),
            (Some(database), Some(blobs)) => Ok(Some(ClusterConfig { database, blobs })),
            (Some(_), None) => Err("a cluster needs both a database and an object store: --blobs s3://BUCKET?endpoint=… (or BLOBS_URL) is missing".into()),
            (None, Some(_)) => Err("a cluster needs both a database and an object store: --database postgres://… (or DATABASE_URL) is missing".into()),
        }
    }
}

/// The open cluster backend. See the module docs.
pub struct ClusterStore {
    rt: tokio::runtime::Runtime,
    pool: pg::Pool,
    s3: s3::S3,
    /// This process's Automerge actor: fresh at every start, so no two nodes share one.
    actor: [u8; 16],
    signer: OnceLock<ed25519_dalek::SigningKey>,
    /// Roster versions already read (a version never changes once issued).
    rosters: Mutex<HashMap<u64, Arc<Roster>>>,
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterStore({} + {:?})", self.pool.place(), self.s3)
    }
}

fn s3_error(e: s3::S3Error) -> CentreError {
    CentreError::Io {
        path: "object store".into(),
        source: std::io::Error::other(e.0),
    }
}

fn blob_key(sha256: &str) -> String {
    format!("blobs/{}/{sha256}", &sha256[..2])
}

fn part_key(sha256: &str, offset: u64) -> String {
    format!("partial/{sha256}/{offset:012}")
}

/// A registered station's row, as ingest needs it.
struct StationRow {
    key: VerifyingKey,
    training: bool,
}

impl ClusterStore {
    /// Connect to the cluster, bring its schema up to date and check the bucket answers.
    pub fn open(config: &ClusterConfig) -> Result<ClusterStore, CentreError> {
        let s3 = s3::S3::from_url(&config.blobs).map_err(s3_error)?;
        let pool = pg::Pool::new(pg::config(&config.database)?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tasjil-cluster")
            .enable_all()
            .build()
            .map_err(|e| CentreError::Io {
                path: "cluster runtime".into(),
                source: e,
            })?;
        let store = ClusterStore {
            rt,
            pool,
            s3,
            actor: {
                use rand_core::RngCore;
                let mut a = [0u8; 16];
                rand_core::OsRng.fill_bytes(&mut a);
                a
            },
            signer: OnceLock::new(),
            rosters: Mutex::new(HashMap::new()),
        };
        store.run(|s, c| Box::pin(async move { pg::migrate(c, s.pool.place()).await }))?;
        store
            .rt
            .block_on(store.s3.check_bucket())
            .map_err(s3_error)?;
        Ok(store)
    }

    /// Sign verdicts written into ledgers with the centre's key (as the embedded store does).
    pub fn sign_verdicts_with(&self, key: ed25519_dalek::SigningKey) {
        let _ = self.signer.set(key);
    }

    /// Where the metadata lives (no password).
    pub fn describe(&self) -> String {
        format!("{} + {:?}", self.pool.place(), self.s3)
    }

    fn err(&self, e: tokio_postgres::Error) -> CentreError {
        pg::db_error(self.pool.place(), &e)
    }

    /// Run `f` with a pooled connection on the backend's runtime, from a blocking thread.
    fn run<T>(
        &self,
        f: impl for<'a> FnOnce(
            &'a ClusterStore,
            &'a mut tokio_postgres::Client,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, CentreError>> + Send + 'a>,
        >,
    ) -> Result<T, CentreError> {
        self.rt.block_on(async {
            let mut client = self.pool.get().await?;
            let out = f(self, &mut client).await;
            self.pool.put(client);
            out
        })
    }

    /// The station's row, locked for this transaction; `Err` when suspended or revoked.
    async fn station_locked(
        &self,
        tx: &Transaction<'_>,
        station: &str,
    ) -> Result<Option<StationRow>, CentreError> {
        let row = tx
            .query_opt(
                "SELECT public_key, state, state_reason, simulation FROM stations
                 WHERE id = $1 FOR UPDATE",
                &[&station],
            )
            .await
            .map_err(|e| self.err(e))?;
        self.station_row(station, row)
    }

    fn station_row(
        &self,
        station: &str,
        row: Option<tokio_postgres::Row>,
    ) -> Result<Option<StationRow>, CentreError> {
        let Some(row) = row else { return Ok(None) };
        let state: String = row.get(1);
        if state != "active" {
            return Err(CentreError::StationBarred {
                station: station.to_string(),
                state,
                reason: row.get(2),
            });
        }
        let key_hex: String = row.get(0);
        let key = parse_verifying_key(&key_hex).map_err(|e| CentreError::Damaged {
            path: self.pool.place().into(),
            detail: format!("registered key of station {station} is unreadable: {e}"),
        })?;
        Ok(Some(StationRow {
            key,
            training: row.get(3),
        }))
    }

    async fn station_any(
        &self,
        c: &tokio_postgres::Client,
        station: &str,
    ) -> Result<Option<StationRow>, CentreError> {
        let row = c
            .query_opt(
                "SELECT public_key, state, state_reason, simulation FROM stations WHERE id = $1",
                &[&station],
            )
            .await
            .map_err(|e| self.err(e))?;
        self.station_row(station, row)
    }

    /// The hash of the element (envelope or restore link) at `seq` of `station`'s chain.
    async fn at(
        &self,
        tx: &Transaction<'_>,
        station: &str,
        seq: i64,
    ) -> Result<Option<String>, CentreError> {
        if seq <= 0 {
            return Ok(Some(GENESIS.to_string()));
        }
        Ok(tx
            .query_opt(
                "SELECT hash FROM envelopes WHERE station = $1 AND seq = $2
                 UNION ALL SELECT hash FROM restore_links WHERE station = $1 AND seq = $2",
                &[&station, &seq],
            )
            .await
            .map_err(|e| self.err(e))?
            .map(|r| r.get(0)))
    }

    async fn head_in(
        &self,
        c: &tokio_postgres::Client,
        station: &str,
    ) -> Result<(u64, String), CentreError> {
        let row = c
            .query_opt(
                "SELECT seq, hash FROM (SELECT seq, hash FROM envelopes WHERE station = $1
                                        UNION ALL SELECT seq, hash FROM restore_links WHERE station = $1) h
                 ORDER BY seq DESC LIMIT 1",
                &[&station],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.map_or((0, GENESIS.to_string()), |r| {
            (r.get::<_, i64>(0) as u64, r.get(1))
        }))
    }

    async fn roster_version_in(
        &self,
        c: &tokio_postgres::Client,
        version: u64,
    ) -> Result<Option<Arc<Roster>>, CentreError> {
        if let Some(r) = self
            .rosters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&version)
        {
            return Ok(Some(r.clone()));
        }
        let v = i64::try_from(version).unwrap_or(i64::MAX);
        let Some(row) = c
            .query_opt(
                "SELECT document FROM roster_versions WHERE version = $1",
                &[&v],
            )
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(None);
        };
        let text: String = row.get(0);
        let roster: Roster = serde_json::from_str(&text).map_err(|e| {
            CentreError::Roster(format!("stored roster version {version} is damaged: {e}"))
        })?;
        let roster = Arc::new(roster);
        self.rosters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(version, roster.clone());
        Ok(Some(roster))
    }

    async fn roster_latest_in(
        &self,
        c: &tokio_postgres::Client,
    ) -> Result<Option<Arc<Roster>>, CentreError> {
        let v: Option<i64> = c
            .query_one("SELECT max(version) FROM roster_versions", &[])
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        match v {
            Some(v) => self.roster_version_in(c, v as u64).await,
            None => Ok(None),
        }
    }

    /// Why the roster the station held did not allow the badge that co-signed `candidate`
    /// (the embedded store's rule, against the cluster's roster versions and revocations).
    async fn roster_refusal(
        &self,
        c: &tokio_postgres::Client,
        candidate: &decide::Candidate,
        training: bool,
    ) -> Result<Option<String>, CentreError> {
        let body = candidate.env.body();
        let Some(cosig) = candidate.env.officer_signature() else {
            return Ok(None);
        };
        let Some(version) = body.roster else {
            return Ok((!training).then(|| {
                format!(
                    "the record names no roster version: station {} held no roster from the centre when officer {} co-signed it",
                    body.station, body.officer
                )
            }));
        };
        let Some(held) = self.roster_version_in(c, version).await? else {
            return Ok(Some(format!(
                "roster version {version} was never issued by this centre"
            )));
        };
        let at_ms = body.captured.finished_ms;
        if let Err(refusal) = held.allows(
            &body.officer,
            &cosig.key,
            &body.station,
            Role::Officer,
            at_ms,
        ) {
            return Ok(Some(refusal.to_string()));
        }
        let revoked = c
            .query_opt(
                "SELECT reason FROM roster_revocations WHERE badge = $1 AND at_ms <= $2",
                &[&cosig.key.to_ascii_lowercase(), &at_ms],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(revoked.map(|r| {
            Refusal::Revoked {
                id: body.officer.clone(),
                reason: r.get(0),
            }
            .to_string()
        }))
    }

    /// The whole payload `sha256` from the object store, when the cluster recorded it complete.
    async fn blob(
        &self,
        c: &tokio_postgres::Client,
        sha256: &str,
    ) -> Result<Option<Vec<u8>>, CentreError> {
        let known = c
            .query_opt("SELECT len FROM blobs WHERE sha256 = $1", &[&sha256])
            .await
            .map_err(|e| self.err(e))?;
        if known.is_none() {
            return Ok(None);
        }
        self.s3.get(&blob_key(sha256)).await.map_err(s3_error)
    }

    /// One envelope: the checks of [`decide`], then the insert when all pass.
    async fn decide_one(
        &self,
        tx: &Transaction<'_>,
        locked: &mut BTreeMap<String, Option<StationRow>>,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<Ingested, CentreError> {
        let candidate = match decide::parse(bytes) {
            Ok(c) => c,
            Err(refused) => return Ok(refused),
        };
        let body = candidate.env.body();
        if !locked.contains_key(&body.station) {
            let row = self.station_locked(tx, &body.station).await?;
            locked.insert(body.station.clone(), row);
        }
        let row = locked.get(&body.station).and_then(Option::as_ref);
        let seq = i64::try_from(body.seq).unwrap_or(i64::MAX);
        // The id is checked against every station: hold it while this transaction lasts.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&body.id])
            .await
            .map_err(|e| self.err(e))?;
        let neighbour = |r: tokio_postgres::Row| Neighbour {
            id: r.get(0),
            station: r.get(1),
            seq: r.get::<_, i64>(2) as u64,
            hash: r.get(3),
        };
        let neighbours = tx
            .query(
                "SELECT id, station, seq, hash FROM envelopes WHERE station = $2 AND (id = $1 OR seq = $3)
                 UNION ALL SELECT 'restore link', station, seq, hash FROM restore_links
                           WHERE station = $2 AND seq = $3",
                &[&body.id, &body.station, &seq],
            )
            .await
            .map_err(|e| self.err(e))?
            .into_iter()
            .map(neighbour)
            .collect();
        let id_elsewhere = tx
            .query_opt(
                "SELECT id, station, seq, hash FROM envelopes WHERE id = $1 AND station <> $2
                 ORDER BY received_ms LIMIT 1",
                &[&body.id, &body.station],
            )
            .await
            .map_err(|e| self.err(e))?
            .map(neighbour);
        let training = row.is_some_and(|r| r.training);
        let facts = ChainFacts {
            key: row.map(|r| r.key),
            neighbours,
            id_elsewhere,
            head: self.head_in(tx.client(), &body.station).await?,
            pred: self.at(tx, &body.station, seq - 1).await?,
            training,
            roster_refusal: self
                .roster_refusal(tx.client(), &candidate, training)
                .await?,
        };
        if let ChainVerdict::Done(outcome) = candidate.check_chain(&facts) {
            return Ok(outcome);
        }
        let sealed = self.blob(tx.client(), &body.payload.sha256).await?;
        let outcome = candidate.check_payload(sealed.as_deref(), &facts);
        let status = match &outcome {
            Ingested::Stored { .. } => "verified",
            Ingested::Held { .. } => "held",
            _ => return Ok(outcome),
        };
        if let Some(sealed) = &sealed {
            tx.execute(
                "INSERT INTO envelopes
                   (station, seq, id, hash, envelope, payload_sha256, payload_len, received_ms, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &body.station,
                    &seq,
                    &body.id,
                    &candidate.hash,
                    &bytes,
                    &body.payload.sha256,
                    &(sealed.len() as i64),
                    &now_ms,
                    &status,
                ],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        Ok(outcome)
    }

    async fn load_ledger(
        &self,
        c: &tokio_postgres::Client,
        station: &str,
        day: &str,
    ) -> Result<Ledger, CentreError> {
        let name = doc_name(station, day);
        let stored = c
            .query_opt("SELECT doc FROM ledgers WHERE name = $1", &[&name])
            .await
            .map_err(|e| self.err(e))?;
        match stored {
            Some(row) => {
                let bytes: Vec<u8> = row.get(0);
                Ledger::load(station, day, &self.actor, &bytes).map_err(|e| CentreError::Ledger {
                    name,
                    reason: e.to_string(),
                })
            }
            None => Ok(Ledger::new(station, day, &self.actor)),
        }
    }

    async fn save_ledger(
        &self,
        c: &tokio_postgres::Client,
        name: &str,
        station: &str,
        ledger: &mut Ledger,
    ) -> Result<(), CentreError> {
        c.execute(
            "INSERT INTO ledgers (name, station, doc) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
            &[&name, &station, &ledger.save()],
        )
        .await
        .map(drop)
        .map_err(|e| self.err(e))
    }

    /// The outcome as the centre's (signed) status in the station-day ledger.
    async fn note_in_ledger(
        &self,
        c: &tokio_postgres::Client,
        ledgers: &mut BTreeMap<String, (String, Ledger)>,
        envelope_bytes: &[u8],
        outcome: &Ingested,
        now_ms: i64,
    ) -> Result<(), CentreError> {
        let Some(note) = LedgerNote::of(envelope_bytes, outcome, now_ms) else {
            return Ok(());
        };
        if !ledgers.contains_key(&note.name) {
            let ledger = self.load_ledger(c, &note.station, &note.day).await?;
            ledgers.insert(note.name.clone(), (note.station.clone(), ledger));
        }
        let entry = match self.signer.get() {
            Some(key) => {
                note.entry
                    .clone()
                    .signed(key, &note.station, &note.id, &note.envelope_hash)
            }
            None => note.entry.clone(),
        };
        note.apply(ledgers, &entry)
    }

    async fn ingest_async(
        &self,
        c: &mut tokio_postgres::Client,
        envelopes: &[&[u8]],
        now_ms: i64,
    ) -> Result<Vec<Ingested>, CentreError> {
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        let mut locked = BTreeMap::new();
        let mut ledgers = BTreeMap::new();
        let mut outcomes = Vec::with_capacity(envelopes.len());
        for bytes in envelopes {
            let outcome = self.decide_one(&tx, &mut locked, bytes, now_ms).await?;
            // A ledger is changed only under its station's row lock.
            if let Some(station) = outcome_station(&outcome) {
                if !locked.contains_key(station) {
                    let row = self.station_locked(&tx, station).await.ok().flatten();
                    locked.insert(station.to_string(), row);
                }
            }
            self.note_in_ledger(tx.client(), &mut ledgers, bytes, &outcome, now_ms)
                .await?;
            if let Some((id, station, reason)) = outcome.refusal() {
                tx.execute(
                    "INSERT INTO rejections (id, station, reason, at_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (station, id, reason) DO UPDATE SET at_ms = excluded.at_ms",
                    &[id, station, reason, &now_ms],
                )
                .await
                .map_err(|e| self.err(e))?;
            }
            outcomes.push(outcome);
        }
        for (name, (station, mut ledger)) in ledgers {
            self.save_ledger(tx.client(), &name, &station, &mut ledger)
                .await?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(outcomes)
    }

    async fn put_chunk_async(
        &self,
        c: &mut tokio_postgres::Client,
        sha256: &str,
        offset: u64,
        total_len: u64,
        bytes: &[u8],
    ) -> Result<BlobState, CentreError> {
        if let Some(row) = c
            .query_opt("SELECT len FROM blobs WHERE sha256 = $1", &[&sha256])
            .await
            .map_err(|e| self.err(e))?
        {
            return Ok(BlobState::Complete {
                len: row.get::<_, i64>(0) as u64,
            });
        }
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO blob_uploads (sha256, total_len, have) VALUES ($1, $2, 0)
             ON CONFLICT (sha256) DO NOTHING",
            &[&sha256, &(total_len as i64)],
        )
        .await
        .map_err(|e| self.err(e))?;
        // Every node writing this payload takes turns on its upload row.
        let row = tx
            .query_one(
                "SELECT total_len, have FROM blob_uploads WHERE sha256 = $1 FOR UPDATE",
                &[&sha256],
            )
            .await
            .map_err(|e| self.err(e))?;
        // Another node may have completed it while this one waited.
        if let Some(row) = tx
            .query_opt("SELECT len FROM blobs WHERE sha256 = $1", &[&sha256])
            .await
            .map_err(|e| self.err(e))?
        {
            return Ok(BlobState::Complete {
                len: row.get::<_, i64>(0) as u64,
            });
        }
        let (stated, have) = (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
        if stated != total_len && have > total_len {
            // Begun by an upload that claimed a longer payload: start over.
            tx.execute("DELETE FROM blob_uploads WHERE sha256 = $1", &[&sha256])
                .await
                .map_err(|e| self.err(e))?;
            tx.commit().await.map_err(|e| self.err(e))?;
            return Err(CentreError::OffsetMismatch { have: 0 });
        }
        if offset > have {
            return Err(CentreError::OffsetMismatch { have });
        }
        let skip = usize::try_from(have - offset).unwrap_or(usize::MAX);
        let fresh = bytes.get(skip..).unwrap_or_default();
        if !fresh.is_empty() {
            // The object store confirms the part before the offset moves past it.
            self.s3
                .put(&part_key(sha256, have), fresh.to_vec())
                .await
                .map_err(s3_error)?;
            tx.execute(
                "INSERT INTO blob_parts (sha256, off, len) VALUES ($1, $2, $3)
                 ON CONFLICT (sha256, off) DO UPDATE SET len = excluded.len",
                &[&sha256, &(have as i64), &(fresh.len() as i64)],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        let have = have + fresh.len() as u64;
        tx.execute(
            "UPDATE blob_uploads SET have = $2, total_len = $3 WHERE sha256 = $1",
            &[&sha256, &(have as i64), &(total_len as i64)],
        )
        .await
        .map_err(|e| self.err(e))?;
        if have < total_len {
            tx.commit().await.map_err(|e| self.err(e))?;
            return Ok(BlobState::Partial { have });
        }
        // The last byte: read the parts back, check the whole against its address.
        let parts: Vec<(i64, i64)> = tx
            .query(
                "SELECT off, len FROM blob_parts WHERE sha256 = $1 ORDER BY off",
                &[&sha256],
            )
            .await
            .map_err(|e| self.err(e))?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut whole = Vec::with_capacity(total_len as usize);
        for (off, len) in &parts {
            let part = self
                .s3
                .get(&part_key(sha256, *off as u64))
                .await
                .map_err(s3_error)?
                .unwrap_or_default();
            if whole.len() as i64 != *off || part.len() as i64 != *len {
                whole.clear();
                break;
            }
            whole.extend_from_slice(&part);
        }
        let found = tasjil_sync::sha256_hex(&whole);
        if whole.len() as u64 != total_len || found != sha256 {
            tx.execute("DELETE FROM blob_uploads WHERE sha256 = $1", &[&sha256])
                .await
                .map_err(|e| self.err(e))?;
            tx.commit().await.map_err(|e| self.err(e))?;
            self.delete_parts(sha256, &parts).await;
            tracing::warn!(expected = sha256, %found, "uploaded payload does not match its address; discarded");
            return Err(CentreError::BlobHashMismatch {
                expected: sha256.to_string(),
                found,
            });
        }
        self.s3
            .put(&blob_key(sha256), whole)
            .await
            .map_err(s3_error)?;
        tx.execute(
            "INSERT INTO blobs (sha256, len, stored_ms) VALUES ($1, $2, $3)
             ON CONFLICT (sha256) DO NOTHING",
            &[&sha256, &(total_len as i64), &crate::now_ms()],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM blob_uploads WHERE sha256 = $1", &[&sha256])
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        self.delete_parts(sha256, &parts).await;
        tracing::debug!(sha256, len = total_len, "payload received");
        Ok(BlobState::Complete { len: total_len })
    }

    /// Best effort: the parts are not needed once the whole is stored (or discarded).
    async fn delete_parts(&self, sha256: &str, parts: &[(i64, i64)]) {
        for (off, _) in parts {
            if let Err(e) = self.s3.delete(&part_key(sha256, *off as u64)).await {
                tracing::debug!(error = %e, "partial upload object left behind");
            }
        }
    }

    /// Store a whole payload at once (migration): hash-checked, written, confirmed, recorded.
    pub(crate) async fn put_blob_whole(
        &self,
        c: &tokio_postgres::Client,
        sha256: &str,
        bytes: Vec<u8>,
    ) -> Result<(), CentreError> {
        check_address(sha256)?;
        let found = tasjil_sync::sha256_hex(&bytes);
        if found != sha256 {
            return Err(CentreError::BlobHashMismatch {
                expected: sha256.into(),
                found,
            });
        }
        let known = c
            .query_opt("SELECT 1 FROM blobs WHERE sha256 = $1", &[&sha256])
            .await
            .map_err(|e| self.err(e))?;
        if known.is_some() {
            return Ok(());
        }
        let len = bytes.len() as i64;
        self.s3
            .put(&blob_key(sha256), bytes)
            .await
            .map_err(s3_error)?;
        c.execute(
            "INSERT INTO blobs (sha256, len, stored_ms) VALUES ($1, $2, $3)
             ON CONFLICT (sha256) DO NOTHING",
            &[&sha256, &len, &crate::now_ms()],
        )
        .await
        .map(drop)
        .map_err(|e| self.err(e))
    }

    async fn store_link_async(
        &self,
        c: &mut tokio_postgres::Client,
        station: &str,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<LinkStored, CentreError> {
        let link = match crate::store::parse_link(station, bytes) {
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
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        let Some(row) = self.station_locked(&tx, station).await? else {
            return refuse(format!(
                "unknown station {station}: it is not registered at the centre"
            ));
        };
        if let Err(e) = link.verify_signature(&row.key) {
            return refuse(format!("restore link: {e}"));
        }
        let hash = tasjil_sync::sha256_hex(bytes);
        let seq = i64::try_from(body.seq).unwrap_or(i64::MAX);
        let from = i64::try_from(body.from_seq).unwrap_or(i64::MAX);
        let held_from = self.at(&tx, station, from).await?;
        let held_at = self.at(&tx, station, seq).await?;
        if let Some(decided) = crate::store::judge_link(
            station,
            body,
            &hash,
            held_from.as_deref(),
            held_at.as_deref(),
        ) {
            return Ok(decided);
        }
        tx.execute(
            "INSERT INTO restore_links
               (station, seq, hash, from_seq, from_hash, link, reason, restored_ms, received_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &station,
                &seq,
                &hash,
                &(body.from_seq as i64),
                &body.from_hash,
                &bytes,
                &body.reason,
                &body.restored_ms,
                &now_ms,
            ],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        tracing::info!(%station, seq, "restore link stored");
        Ok(LinkStored::Stored { seq: body.seq })
    }

    /// Register a station's key (as the embedded store's `add_station`): `true` when new, `false`
    /// when this exact key was registered; another key for a known station is refused.
    pub fn add_station(
        &self,
        public: &tasjil_sync::StationPublic,
        now_ms: i64,
    ) -> Result<bool, CentreError> {
        let key = public
            .verifying_key()
            .map_err(|reason| CentreError::BadStationKey {
                station: public.station.clone(),
                reason,
            })?;
        let ok = (1..=64).contains(&public.station.len())
            && public
                .station
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(CentreError::BadStationId(
                public.station.chars().take(80).collect(),
            ));
        }
        let key_hex = hex::encode(key.as_bytes());
        let station = public.station.clone();
        let simulation = public.simulation;
        self.run(move |s, c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "INSERT INTO stations (id, public_key, added_ms, simulation)
                         VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                        &[&station, &key_hex, &now_ms, &simulation],
                    )
                    .await
                    .map_err(|e| s.err(e))?;
                if n == 1 {
                    return Ok(true);
                }
                let known: String = c
                    .query_one("SELECT public_key FROM stations WHERE id = $1", &[&station])
                    .await
                    .map_err(|e| s.err(e))?
                    .get(0);
                if known == key_hex {
                    Ok(false)
                } else {
                    Err(CentreError::StationKeyConflict { station })
                }
            })
        })
    }

    /// Every registered station with its record count and last sequence number.
    pub fn stations(&self) -> Result<Vec<crate::store::StationInfo>, CentreError> {
        self.run(|s, c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT s.id, s.public_key, s.added_ms, count(e.seq), coalesce(max(e.seq), 0),
                                s.state, s.state_reason, s.simulation
                         FROM stations s LEFT JOIN envelopes e ON e.station = s.id
                         GROUP BY s.id ORDER BY s.id",
                        &[],
                    )
                    .await
                    .map_err(|e| s.err(e))?;
                Ok(rows
                    .into_iter()
                    .map(|r| crate::store::StationInfo {
                        id: r.get(0),
                        key_hex: r.get(1),
                        added_ms: r.get(2),
                        records: r.get::<_, i64>(3) as u64,
                        last_seq: r.get::<_, i64>(4) as u64,
                        state: r.get(5),
                        state_reason: r.get(6),
                        simulation: r.get(7),
                    })
                    .collect())
            })
        })
    }

    /// Every stored record, by station and sequence: `(station, seq, id, status, envelope
    /// hash, payload sha256)`.
    pub fn list(&self) -> Result<Vec<crate::store::CentreRecord>, CentreError> {
        self.run(|s, c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT id, station, seq, status, received_ms, payload_sha256, payload_len
                         FROM envelopes ORDER BY station, seq",
                        &[],
                    )
                    .await
                    .map_err(|e| s.err(e))?;
                Ok(rows
                    .into_iter()
                    .map(|r| crate::store::CentreRecord {
                        id: r.get(0),
                        station: r.get(1),
                        seq: r.get::<_, i64>(2) as u64,
                        status: r.get(3),
                        received_ms: r.get(4),
                        payload_sha256: r.get(5),
                        payload_len: r.get::<_, i64>(6) as u64,
                    })
                    .collect())
            })
        })
    }

    /// Check every stored envelope again — its station's signature, its chain link to the
    /// element before it, and its payload read back from the object store against the
    /// envelope — and return the problems found (`(station, seq, what)`), with the count checked.
    pub fn verify_full(&self) -> Result<(u64, Vec<VerifyProblem>), CentreError> {
        self.run(|s, c| {
            Box::pin(async move {
                let keys: HashMap<String, String> = c
                    .query("SELECT id, public_key FROM stations", &[])
                    .await
                    .map_err(|e| s.err(e))?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let rows = c
                    .query(
                        "SELECT station, seq, envelope, hash FROM envelopes ORDER BY station, seq",
                        &[],
                    )
                    .await
                    .map_err(|e| s.err(e))?;
                let links: HashMap<(String, i64), String> = c
                    .query("SELECT station, seq, hash FROM restore_links", &[])
                    .await
                    .map_err(|e| s.err(e))?
                    .into_iter()
                    .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                    .collect();
                let hashes: HashMap<(String, i64), String> = rows
                    .iter()
                    .map(|r| ((r.get(0), r.get(1)), r.get(3)))
                    .collect();
                let mut problems = Vec::new();
                for r in &rows {
                    let station: String = r.get(0);
                    let seq: i64 = r.get(1);
                    let bytes: Vec<u8> = r.get(2);
                    let mut problem =
                        |what: String| problems.push((station.clone(), seq as u64, what));
                    let env = match Envelope::<Signed>::from_bytes(&bytes) {
                        Ok(e) => e,
                        Err(e) => {
                            problem(format!("envelope unreadable: {e}"));
                            continue;
                        }
                    };
                    match keys.get(&station).map(|k| parse_verifying_key(k)) {
                        Some(Ok(key)) => {
                            if let Err(e) = env.verify_signature(&key) {
                                problem(e.to_string());
                            }
                        }
                        _ => problem("station key missing or unreadable".into()),
                    }
                    let pred = if seq == 1 {
                        Some(GENESIS.to_string())
                    } else {
                        hashes
                            .get(&(station.clone(), seq - 1))
                            .or_else(|| links.get(&(station.clone(), seq - 1)))
                            .cloned()
                    };
                    match pred {
                        Some(p) => {
                            if let Err(e) = env.verify_chain_link(seq as u64, &p) {
                                problem(e.to_string());
                            }
                        }
                        None => problem(format!("nothing held at sequence {}", seq - 1)),
                    }
                    match s.s3.get(&blob_key(&env.body().payload.sha256)).await {
                        Ok(Some(sealed)) => {
                            if let Err(e) = env.verify_payload(&sealed) {
                                problem(e.to_string());
                            }
                        }
                        Ok(None) => problem("payload missing from the object store".into()),
                        Err(e) => return Err(s3_error(e)),
                    }
                }
                Ok((rows.len() as u64, problems))
            })
        })
    }
}

impl ClusterStore {
    async fn ledger_sync_async(
        &self,
        c: &mut tokio_postgres::Client,
        station: &str,
        day: &str,
        name: &str,
        message: Option<&[u8]>,
        peer: &mut PeerState,
    ) -> Result<Option<Vec<u8>>, CentreError> {
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        // The station's row lock: ingest of its records changes its ledgers too.
        if self.station_locked(&tx, station).await?.is_none() {
            return Err(CentreError::UnknownStation(station.to_string()));
        }
        let mut ledger = self.load_ledger(tx.client(), station, day).await?;
        let ledger_err = |e: tasjil_sync::ledger::LedgerError| CentreError::Ledger {
            name: name.to_string(),
            reason: e.to_string(),
        };
        if let Some(m) = message {
            ledger.receive_sync_message(peer, m).map_err(ledger_err)?;
        }
        let answer = ledger.generate_sync_message(peer);
        self.save_ledger(tx.client(), name, station, &mut ledger)
            .await?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(answer)
    }
}

fn outcome_station(outcome: &Ingested) -> Option<&str> {
    match outcome {
        Ingested::Stored { station, .. } | Ingested::Held { station, .. } => Some(station),
        Ingested::Rejected {
            station: Some(s), ..
        } => Some(s),
        _ => None,
    }
}

impl CentreBackend for ClusterStore {
    fn station_key(&self, station: &str) -> Result<Option<VerifyingKey>, CentreError> {
        let station = station.to_string();
        self.run(move |s, c| {
            Box::pin(async move { Ok(s.station_any(c, &station).await?.map(|r| r.key)) })
        })
    }

    fn blob_state(&self, sha256: &str) -> Result<BlobState, CentreError> {
        check_address(sha256)?;
        let sha256 = sha256.to_string();
        self.run(move |s, c| {
            Box::pin(async move {
                if let Some(r) = c
                    .query_opt("SELECT len FROM blobs WHERE sha256 = $1", &[&sha256])
                    .await
                    .map_err(|e| s.err(e))?
                {
                    return Ok(BlobState::Complete {
                        len: r.get::<_, i64>(0) as u64,
                    });
                }
                let partial = c
                    .query_opt(
                        "SELECT have FROM blob_uploads WHERE sha256 = $1",
                        &[&sha256],
                    )
                    .await
                    .map_err(|e| s.err(e))?;
                Ok(match partial {
                    Some(r) => BlobState::Partial {
                        have: r.get::<_, i64>(0) as u64,
                    },
                    None => BlobState::Absent,
                })
            })
        })
    }

    fn put_blob_chunk(
        &self,
        sha256: &str,
        offset: u64,
        total_len: u64,
        bytes: &[u8],
    ) -> Result<BlobState, CentreError> {
        check_chunk(sha256, offset, total_len, bytes.len())?;
        on_client!(self, c => self.put_chunk_async(c, sha256, offset, total_len, bytes))
    }

    fn ingest_batch(&self, envelopes: &[&[u8]], now_ms: i64) -> Result<Vec<Ingested>, CentreError> {
        let outcomes = on_client!(self, c => self.ingest_async(c, envelopes, now_ms))?;
        for outcome in &outcomes {
            match outcome {
                Ingested::Stored { id, station, seq } => {
                    tracing::info!(%id, %station, seq, "envelope stored")
                }
                Ingested::AlreadyHave { id } => tracing::debug!(%id, "envelope already stored"),
                Ingested::Held {
                    id,
                    station,
                    seq,
                    reason,
                } => tracing::warn!(%id, %station, seq, %reason, "envelope stored but held"),
                Ingested::Rejected {
                    id,
                    station,
                    reason,
                } => tracing::warn!(?id, ?station, %reason, "envelope refused"),
            }
        }
        Ok(outcomes)
    }

    fn head(&self, station: &str) -> Result<(u64, String), CentreError> {
        let station = station.to_string();
        self.run(move |s, c| {
            Box::pin(async move {
                if s.station_any(c, &station).await?.is_none() {
                    return Err(CentreError::UnknownStation(station));
                }
                s.head_in(c, &station).await
            })
        })
    }

    fn statuses(&self, station: &str, ids: &[String]) -> Result<Vec<RecordStatus>, CentreError> {
        let station = station.to_string();
        let ids = ids.to_vec();
        self.run(move |s, c| {
            Box::pin(async move {
                if s.station_any(c, &station).await?.is_none() {
                    return Err(CentreError::UnknownStation(station));
                }
                let stored: HashMap<String, String> = c
                    .query(
                        "SELECT id, status FROM envelopes WHERE station = $1 AND id = ANY($2)",
                        &[&station, &ids],
                    )
                    .await
                    .map_err(|e| s.err(e))?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let refused: HashMap<String, String> = c
                    .query(
                        "SELECT DISTINCT ON (id) id, reason FROM rejections
                         WHERE station = $1 AND id = ANY($2) ORDER BY id, at_ms DESC, n DESC",
                        &[&station, &ids],
                    )
                    .await
                    .map_err(|e| s.err(e))?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                Ok(ids
                    .iter()
                    .map(|id| match stored.get(id) {
                        Some(st) if st == "held" || st == "rejected" => RecordStatus {
                            id: id.clone(),
                            status: "rejected".into(),
                            reason: refused.get(id).cloned(),
                        },
                        Some(st) => RecordStatus {
                            id: id.clone(),
                            status: st.clone(),
                            reason: None,
                        },
                        None => RecordStatus {
                            id: id.clone(),
                            status: if refused.contains_key(id) {
                                "rejected"
                            } else {
                                "unknown"
                            }
                            .into(),
                            reason: refused.get(id).cloned(),
                        },
                    })
                    .collect())
            })
        })
    }

    fn ledger_sync(
        &self,
        station: &str,
        name: &str,
        message: Option<&[u8]>,
        peer: &mut PeerState,
    ) -> Result<Option<Vec<u8>>, CentreError> {
        let Some((owner, day)) = tasjil_sync::ledger::split_name(name) else {
            return Err(CentreError::Ledger {
                name: name.into(),
                reason: "not a ledger name".into(),
            });
        };
        if owner != station {
            return Err(CentreError::Ledger {
                name: name.into(),
                reason: format!("belongs to station {owner}, not {station}"),
            });
        }
        on_client!(self, c => self.ledger_sync_async(c, station, day, name, message, peer))
    }

    fn stats(&self) -> Result<Stats, CentreError> {
        self.run(|s, c| {
            Box::pin(async move {
                let r = c
                    .query_one(
                        "SELECT (SELECT count(*) FROM stations),
                                (SELECT count(*) FROM envelopes),
                                (SELECT count(*) FROM envelopes WHERE status = 'verified'),
                                (SELECT count(*) FROM (
                                    SELECT DISTINCT r.station, r.id FROM rejections r
                                    WHERE NOT EXISTS (SELECT 1 FROM envelopes e
                                                      WHERE e.id = r.id AND e.station = r.station)) x)
                                + (SELECT count(*) FROM envelopes WHERE status = 'rejected')",
                        &[],
                    )
                    .await
                    .map_err(|e| s.err(e))?;
                Ok(Stats {
                    stations: r.get::<_, i64>(0) as u64,
                    records: r.get::<_, i64>(1) as u64,
                    verified: r.get::<_, i64>(2) as u64,
                    rejected: r.get::<_, i64>(3) as u64,
                })
            })
        })
    }

    fn roster_for_station(
        &self,
        held: Option<u64>,
        _now_ms: i64,
    ) -> Result<Option<Arc<Roster>>, CentreError> {
        let latest = self.run(|s, c| Box::pin(async move { s.roster_latest_in(c).await }))?;
        Ok(latest.filter(|l| held < Some(l.version())))
    }

    fn rotations_after(&self, have: u64) -> Result<Vec<Vec<u8>>, CentreError> {
        let have = i64::try_from(have).unwrap_or(i64::MAX);
        self.run(move |s, c| {
            Box::pin(async move {
                Ok(c.query(
                    "SELECT rotation FROM key_rotations WHERE version > $1 ORDER BY version",
                    &[&have],
                )
                .await
                .map_err(|e| s.err(e))?
                .into_iter()
                .map(|r| r.get(0))
                .collect())
            })
        })
    }

    fn store_restore_link(
        &self,
        station: &str,
        link: &[u8],
        now_ms: i64,
    ) -> Result<LinkStored, CentreError> {
        on_client!(self, c => self.store_link_async(c, station, link, now_ms))
    }
}
