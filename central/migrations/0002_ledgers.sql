-- The centre's replica of each station-day ledger (Automerge), which it writes statuses into.
CREATE TABLE ledgers (
    name    TEXT PRIMARY KEY,
    station TEXT NOT NULL,
    doc     BLOB NOT NULL
) STRICT;
