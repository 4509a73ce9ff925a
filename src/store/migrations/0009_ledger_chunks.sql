-- Ledgers saved incrementally: `ledgers.doc` is a whole saved document and `ledger_chunks` the
-- Automerge change chunks written after it, one per transaction, in order `n`; the document is
-- `doc` followed by its chunks. A writer that changes a ledger bumps `gen`, so a process that
-- keeps a ledger loaded knows whether its copy is still the stored one.
ALTER TABLE ledgers ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;

CREATE TABLE ledger_chunks (
    name  TEXT NOT NULL REFERENCES ledgers (name),
    n     INTEGER NOT NULL,
    chunk BLOB NOT NULL,
    PRIMARY KEY (name, n)
) STRICT;
