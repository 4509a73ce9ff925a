-- Restore links (tasjil restore): signed by the station key, each takes a place in the chain far
-- past the restored head, and the records made after the restore continue from it. `sent_ms` is
-- set once the centre has stored the link (sync); bundles carry every link.
CREATE TABLE restores (
    seq        INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    from_seq   INTEGER NOT NULL,
    link       BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    sent_ms    INTEGER
) STRICT;
