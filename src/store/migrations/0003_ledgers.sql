-- The station's replicas of its per-day ledgers (Automerge documents: which envelopes exist,
-- supervisor approvals, the centre's statuses) and the Automerge sync state per peer and ledger.
CREATE TABLE ledgers (
    name TEXT PRIMARY KEY,
    doc  BLOB NOT NULL
) STRICT;

CREATE TABLE ledger_peers (
    peer  TEXT NOT NULL,
    name  TEXT NOT NULL REFERENCES ledgers (name),
    state BLOB NOT NULL,
    PRIMARY KEY (peer, name)
) STRICT;
