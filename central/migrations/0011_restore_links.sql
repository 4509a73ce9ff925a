-- Restore links of stations restored from a backup (`tasjil restore`): signed by the station,
-- each takes a place in its station's chain (never one an envelope holds) and records made after
-- the restore continue from it. An envelope's predecessor is whatever holds `seq - 1`: an envelope
-- or a link.
CREATE TABLE restore_links (
    station     TEXT NOT NULL REFERENCES stations (id),
    seq         INTEGER NOT NULL CHECK (seq > 0),
    hash        TEXT NOT NULL UNIQUE,
    from_seq    INTEGER NOT NULL,
    from_hash   TEXT NOT NULL,
    link        BLOB NOT NULL,
    reason      TEXT NOT NULL,
    restored_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (station, seq)
) STRICT;
