-- Centre key rotations (`tasjil-central keys rotate`): each the next centre.pub signed by the
-- key before it, kept for every station that has not taken it yet (sync, USB receipts).
CREATE TABLE key_rotations (
    version   INTEGER PRIMARY KEY CHECK (version > 0),
    rotation  BLOB NOT NULL,
    issued_ms INTEGER NOT NULL
) STRICT;
