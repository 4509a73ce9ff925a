-- The console: issuance statuses set by central staff, the batches stations delivered (network
-- sync requests and USB imports), and the indexes that keep lists and counts fast at 1 M records.

-- The issuance status of a stored, verified record: NULL until an issuer sets one of
-- 'accepted' (accepted for production), 'issued' (card produced), 'reenrol' (re-enrol needed,
-- with a reason). The history is in issuance_events; this is the current one.
ALTER TABLE envelopes ADD COLUMN issuance TEXT
    CHECK (issuance IS NULL OR issuance IN ('accepted', 'issued', 'reenrol'));
ALTER TABLE envelopes ADD COLUMN issuance_reason TEXT;
ALTER TABLE envelopes ADD COLUMN issuance_ms INTEGER;

CREATE TABLE issuance_events (
    station TEXT NOT NULL,
    id      TEXT NOT NULL,
    status  TEXT NOT NULL CHECK (status IN ('accepted', 'issued', 'reenrol')),
    reason  TEXT,
    by      TEXT NOT NULL,
    at_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX issuance_events_by_record ON issuance_events (station, id);

-- One row per delivery: a network sync request (kind 'sync') or a USB bundle (kind 'usb').
CREATE TABLE batches (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL CHECK (kind IN ('sync', 'usb')),
    station   TEXT NOT NULL,
    at_ms     INTEGER NOT NULL,
    stored    INTEGER NOT NULL,
    already   INTEGER NOT NULL,
    rejected  INTEGER NOT NULL,
    -- JSON array of {"id", "reason"}, at most 50 (the counts are exact).
    reasons   TEXT NOT NULL,
    bundle_id TEXT
) STRICT;
CREATE INDEX batches_by_time ON batches (at_ms);
CREATE INDEX batches_by_station ON batches (station, at_ms);

-- The records list is read newest first by (received_ms, station, seq), with or without a
-- station; status filters read by their own column and time.
CREATE INDEX envelopes_by_received ON envelopes (received_ms, station, seq);
CREATE INDEX envelopes_by_station_received ON envelopes (station, received_ms, seq);
CREATE INDEX envelopes_by_status ON envelopes (status, received_ms);
CREATE INDEX envelopes_by_issuance ON envelopes (issuance, received_ms);
CREATE INDEX rejections_by_station ON rejections (station, at_ms);

-- Record counts per (station, status, issuance), kept by triggers in the same transaction as the
-- rows they count: the overview, `stats` and /metrics read a few rows here instead of counting a
-- million. `verify` checks them against a real count and rebuilds them if they disagree.
CREATE TABLE record_counts (
    station  TEXT NOT NULL,
    status   TEXT NOT NULL,
    issuance TEXT NOT NULL DEFAULT '',
    n        INTEGER NOT NULL,
    PRIMARY KEY (station, status, issuance)
) STRICT;
INSERT INTO record_counts (station, status, issuance, n)
    SELECT station, status, coalesce(issuance, ''), count(*) FROM envelopes GROUP BY 1, 2, 3;
CREATE TRIGGER envelopes_counted_in AFTER INSERT ON envelopes BEGIN
    INSERT INTO record_counts (station, status, issuance, n)
        VALUES (NEW.station, NEW.status, coalesce(NEW.issuance, ''), 1)
        ON CONFLICT (station, status, issuance) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER envelopes_counted_out AFTER DELETE ON envelopes BEGIN
    UPDATE record_counts SET n = n - 1
        WHERE station = OLD.station AND status = OLD.status
          AND issuance = coalesce(OLD.issuance, '');
END;
CREATE TRIGGER envelopes_counted_again AFTER UPDATE OF station, status, issuance ON envelopes BEGIN
    UPDATE record_counts SET n = n - 1
        WHERE station = OLD.station AND status = OLD.status
          AND issuance = coalesce(OLD.issuance, '');
    INSERT INTO record_counts (station, status, issuance, n)
        VALUES (NEW.station, NEW.status, coalesce(NEW.issuance, ''), 1)
        ON CONFLICT (station, status, issuance) DO UPDATE SET n = n + 1;
END;
