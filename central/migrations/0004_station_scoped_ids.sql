-- Enrolment ids are unique per station, not across the centre: a station that puts another
-- station's id (printed in a citizen's receipt QR) into its own chain must not turn the rightful
-- station's record into a fork. A record whose id another station already used is stored (its
-- chain goes on) with status 'held' and the reason in `rejections`, for central staff to decide.
CREATE TABLE envelopes_v4 (
    station        TEXT NOT NULL REFERENCES stations (id),
    seq            INTEGER NOT NULL CHECK (seq > 0),
    id             TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE,
    envelope       BLOB NOT NULL,
    payload_sha256 TEXT NOT NULL,
    payload_len    INTEGER NOT NULL,
    received_ms    INTEGER NOT NULL,
    status         TEXT NOT NULL,
    PRIMARY KEY (station, seq),
    UNIQUE (station, id)
) STRICT;
INSERT INTO envelopes_v4 SELECT station, seq, id, hash, envelope, payload_sha256, payload_len,
    received_ms, status FROM envelopes;
DROP TABLE envelopes;
ALTER TABLE envelopes_v4 RENAME TO envelopes;
CREATE INDEX envelopes_by_id ON envelopes (id);
