-- Tasjil centre store, schema 1.
-- Sealed payloads are NOT in this database: they are files under blobs/, named by the SHA-256 of
-- their bytes, written and fsynced before any envelope that names them is accepted.

-- Stations allowed to send, with the Ed25519 key (lower-case hex) their envelopes must verify with.
CREATE TABLE stations (
    id         TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    added_ms   INTEGER NOT NULL
) STRICT;

-- Accepted envelopes: canonical JSON exactly as signed. The other columns are an index over it
-- (checked against the signed bytes by `verify`) plus the centre's own progress (`status`,
-- 'verified' when stored; issuance states come later).
CREATE TABLE envelopes (
    station        TEXT NOT NULL REFERENCES stations (id),
    seq            INTEGER NOT NULL CHECK (seq > 0),
    id             TEXT NOT NULL UNIQUE,
    hash           TEXT NOT NULL UNIQUE,
    envelope       BLOB NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload_len    INTEGER NOT NULL,
    received_ms    INTEGER NOT NULL,
    status         TEXT NOT NULL,
    PRIMARY KEY (station, seq)
) STRICT;

-- Envelopes the centre refused, so the station can be told why. One row per distinct reason; a
-- later successful ingest of the same id supersedes them (they are kept as history).
CREATE TABLE rejections (
    id      TEXT NOT NULL,
    station TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at_ms   INTEGER NOT NULL,
    PRIMARY KEY (station, id, reason)
) STRICT;
