-- Who opened which citizen's record, when and why (law 09-08): hash-chained, each entry signed
-- by the centre's Ed25519 key, append-only. The triggers stop ordinary updates and deletes; an
-- edit of the file itself is caught by `tasjil-central access-log --verify`.
CREATE TABLE access_log (
    seq       INTEGER PRIMARY KEY CHECK (seq > 0),
    entry     BLOB NOT NULL,
    hash      TEXT NOT NULL UNIQUE,
    signature TEXT NOT NULL
) STRICT;
CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
