-- USB bundles: what was exported (so the supervisor sees what is on its way) and which receipts
-- came back (so a receipt imported twice is recognised).
ALTER TABLE envelopes ADD COLUMN exported_ms INTEGER;

CREATE TABLE exports (
    bundle_id       TEXT PRIMARY KEY,
    file            TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    first_seq       INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL,
    records         INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    supervisor      TEXT NOT NULL,
    created_ms      INTEGER NOT NULL
) STRICT;

CREATE TABLE receipts (
    receipt_sha256 TEXT PRIMARY KEY,
    bundle_id      TEXT NOT NULL,
    issued_ms      INTEGER NOT NULL,
    imported_ms    INTEGER NOT NULL,
    verified       INTEGER NOT NULL,
    rejected       INTEGER NOT NULL
) STRICT;
