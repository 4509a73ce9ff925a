-- What `tasjil-central verify` has already checked, so the next run checks only what is new plus
-- a rotating sample of the rest (`verify --full` checks everything and resets nothing).
-- Per station: the last element of the run of records from sequence 1 that all passed, and the
-- hash it had then (the next record must be built on that hash, whatever the row says now).
CREATE TABLE verify_marks (
    station TEXT PRIMARY KEY REFERENCES stations (id),
    seq     INTEGER NOT NULL CHECK (seq > 0),
    hash    TEXT NOT NULL
) STRICT;

-- Where the rotating sample of already-checked records resumes (an envelopes rowid), one row.
CREATE TABLE verify_sample (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    after_rowid INTEGER NOT NULL
) STRICT;
