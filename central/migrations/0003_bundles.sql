-- USB bundles imported: a bundle imported again is recognised (a replay changes nothing) and its
-- receipt can be written again from what the centre holds.
CREATE TABLE bundles (
    bundle_id       TEXT PRIMARY KEY,
    station         TEXT NOT NULL REFERENCES stations (id),
    manifest_sha256 TEXT NOT NULL UNIQUE,
    imported_ms     INTEGER NOT NULL,
    records         INTEGER NOT NULL,
    stored          INTEGER NOT NULL,
    rejected        INTEGER NOT NULL
) STRICT;
