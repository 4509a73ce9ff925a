//! The cluster's PostgreSQL side: the schema (migrations compiled in, applied once under an
//! advisory lock so that nodes starting together do not race), a small connection pool, and the
//! error wording.

use std::sync::Mutex;

use tokio_postgres::{Client, Config, NoTls};

use crate::CentreError;

/// The schema, one string per version, applied in order and recorded in `schema_version`.
/// The tables follow the embedded store's (central/migrations), in PostgreSQL's types, plus
/// the payload uploads that the embedded store keeps as files.
const MIGRATIONS: &[&str] = &[r"
CREATE TABLE stations (
    id           TEXT PRIMARY KEY,
    public_key   TEXT NOT NULL,
    added_ms     BIGINT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended', 'revoked')),
    state_reason TEXT,
    state_ms     BIGINT,
    simulation   BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE envelopes (
    station        TEXT NOT NULL REFERENCES stations (id),
    seq            BIGINT NOT NULL CHECK (seq > 0),
    id             TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE,
    envelope       BYTEA NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload_len    BIGINT NOT NULL,
    received_ms    BIGINT NOT NULL,
    status         TEXT NOT NULL,
    PRIMARY KEY (station, seq),
    UNIQUE (station, id)
);
CREATE INDEX envelopes_by_id ON envelopes (id);
CREATE TABLE rejections (
    station TEXT NOT NULL,
    id      TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at_ms   BIGINT NOT NULL,
    n       BIGSERIAL,
    PRIMARY KEY (station, id, reason)
);
CREATE TABLE restore_links (
    station     TEXT NOT NULL REFERENCES stations (id),
    seq         BIGINT NOT NULL CHECK (seq > 0),
    hash        TEXT NOT NULL UNIQUE,
    from_seq    BIGINT NOT NULL,
    from_hash   TEXT NOT NULL,
    link        BYTEA NOT NULL,
    reason      TEXT NOT NULL,
    restored_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (station, seq)
);
CREATE TABLE ledgers (
    name    TEXT PRIMARY KEY,
    station TEXT NOT NULL,
    doc     BYTEA NOT NULL
);
CREATE TABLE roster_versions (
    version   BIGINT PRIMARY KEY CHECK (version > 0),
    issued_ms BIGINT NOT NULL,
    document  TEXT NOT NULL
);
CREATE TABLE roster_revocations (
    badge  TEXT PRIMARY KEY,
    id     TEXT NOT NULL,
    at_ms  BIGINT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE key_rotations (
    version   BIGINT PRIMARY KEY CHECK (version > 0),
    rotation  BYTEA NOT NULL,
    issued_ms BIGINT NOT NULL
);
-- Payloads the object store holds whole under blobs/<sha256>, hash-checked before this row.
CREATE TABLE blobs (
    sha256    TEXT PRIMARY KEY,
    len       BIGINT NOT NULL,
    stored_ms BIGINT NOT NULL
);
-- Resumable uploads: each chunk is an object partial/<sha256>/<offset>, recorded here once the
-- object store confirmed it, so a resume on any node continues from `have`.
CREATE TABLE blob_uploads (
    sha256    TEXT PRIMARY KEY,
    total_len BIGINT NOT NULL,
    have      BIGINT NOT NULL
);
CREATE TABLE blob_parts (
    sha256 TEXT NOT NULL REFERENCES blob_uploads (sha256) ON DELETE CASCADE,
    off    BIGINT NOT NULL,
    len    BIGINT NOT NULL,
    PRIMARY KEY (sha256, off)
);
"];

/// Where the metadata lives, for messages (never the password).
pub(crate) fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{host}:{port}/{}",
        config.get_dbname().unwrap_or("")
    )
}

/// A database failure as a centre error (the server answers 503: the station retries).
pub(crate) fn db_error(place: &str, e: &tokio_postgres::Error) -> CentreError {
    let detail = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    };
    CentreError::Io {
        path: place.into(),
        source: std::io::Error::other(detail),
    }
}

/// Parse `url` and take the password from `PGPASSWORD` when the URL has none (so that it need
/// never be on a command line).
pub(crate) fn config(url: &str) -> Result<Config, CentreError> {
    let mut config: Config = url.parse().map_err(|e| CentreError::Io {
        path: "PostgreSQL address".into(),
        source: std::io::Error::other(format!(
            "{e}: expected postgres://USER[:PASSWORD]@HOST:PORT/DATABASE"
        )),
    })?;
    if config.get_password().is_none() {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            config.password(p);
        }
    }
    config.connect_timeout(std::time::Duration::from_secs(5));
    config.application_name("tasjil-central");
    Ok(config)
}

/// A few open connections, reused; a closed one (the server restarted) is dropped and a new
/// one opened on next use.
pub(crate) struct Pool {
    config: Config,
    place: String,
    idle: Mutex<Vec<Client>>,
}

impl Pool {
    pub(crate) fn new(config: Config) -> Pool {
        Pool {
            place: describe(&config),
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn place(&self) -> &str {
        &self.place
    }

    /// An open connection (call inside the cluster's runtime).
    pub(crate) async fn get(&self) -> Result<Client, CentreError> {
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            match idle {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| db_error(&self.place, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(client)
    }

    /// Give a connection back for reuse (dropped when closed, or when enough are idle).
    pub(crate) fn put(&self, c: Client) {
        if c.is_closed() {
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < 16 {
            idle.push(c);
        }
    }
}

/// Bring the schema up to date (idempotent; nodes starting at once take turns).
pub(crate) async fn migrate(client: &mut Client, place: &str) -> Result<(), CentreError> {
    let err = |e: tokio_postgres::Error| db_error(place, &e);
    let tx = client.transaction().await.map_err(err)?;
    // One lock number for the schema, taken by every node before it looks.
    tx.execute("SELECT pg_advisory_xact_lock(7407150017)", &[])
        .await
        .map_err(err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
        .await
        .map_err(err)?;
    let have: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await
        .map_err(err)?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if have > known {
        return Err(CentreError::Migration(format!(
            "the cluster database is at schema version {have}, newer than this tasjil-central knows ({known}): upgrade tasjil-central"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        tx.batch_execute(sql).await.map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(err)?;
    }
    tx.commit().await.map_err(err)
}
