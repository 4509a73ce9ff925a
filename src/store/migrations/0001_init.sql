-- Tasjil station store, schema 1.
-- Sealed payloads live in this database (not as loose files): a payload, its envelope and the audit
-- entry that records them commit in one transaction, so a power cut leaves all three or none.

CREATE TABLE config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Badge public keys of officers and supervisors seen by this station.
CREATE TABLE officers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('officer', 'supervisor')),
    public_key    TEXT NOT NULL,
    registered_ms INTEGER NOT NULL
) STRICT;

-- Age-sealed payloads, addressed by the SHA-256 of the ciphertext.
CREATE TABLE payloads (
    sha256 TEXT PRIMARY KEY,
    len    INTEGER NOT NULL,
    sealed BLOB NOT NULL
) STRICT;

-- Signed envelopes (canonical JSON, exactly as signed). The other columns are an index over it
-- plus local, unsigned progress (approval, sending, the centre's answer); `verify` checks the
-- indexed columns against the signed bytes.
CREATE TABLE envelopes (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    hash            TEXT NOT NULL UNIQUE,
    officer         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    payload         TEXT NOT NULL REFERENCES payloads (sha256),
    envelope        BLOB NOT NULL,
    approved_ms     INTEGER,
    approved_by     TEXT,
    sent_ms         INTEGER,
    acknowledged_ms INTEGER,
    rejected_reason TEXT
) STRICT;

-- Hash-chained, station-signed log of every significant action.
CREATE TABLE audit (
    seq   INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    sig   TEXT NOT NULL
) STRICT;

-- Per-peer synchronisation state (opaque to the store).
CREATE TABLE sync_peers (
    peer         TEXT PRIMARY KEY,
    state        BLOB,
    last_sync_ms INTEGER,
    last_error   TEXT
) STRICT;
