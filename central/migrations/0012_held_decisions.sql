-- What central staff decided about a held record (a co-signing badge the roster did not allow, or
-- an enrolment id another station used): released (held -> verified) or rejected
-- (held -> rejected), by whom, when and why. One decision per record, final: a record leaves
-- 'held' once. Append-only like the access log; the verdict itself goes into the record's
-- station-day ledger signed by the centre's key, in the same transaction.
CREATE TABLE held_decisions (
    station     TEXT NOT NULL,
    id          TEXT NOT NULL,
    decision    TEXT NOT NULL CHECK (decision IN ('release', 'reject')),
    reason      TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    -- Why the record was held, as the rejections table said at the time of the decision.
    held_reason TEXT,
    by          TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    PRIMARY KEY (station, id)
) STRICT;
CREATE INDEX held_decisions_by_time ON held_decisions (station, at_ms);
CREATE TRIGGER held_decisions_no_update BEFORE UPDATE ON held_decisions
BEGIN SELECT RAISE(ABORT, 'held decisions are append-only'); END;
CREATE TRIGGER held_decisions_no_delete BEFORE DELETE ON held_decisions
BEGIN SELECT RAISE(ABORT, 'held decisions are append-only'); END;
