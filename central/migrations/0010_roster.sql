-- The roster of field staff (officers and supervisors and their badge keys), distinct from the
-- console's staff accounts. Every change issues a new signed version; every version issued is
-- kept, so the centre can check a record against the roster the station held when it was made.
CREATE TABLE roster (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('officer', 'supervisor')),
    badge          TEXT NOT NULL,
    -- JSON array of station ids, or ["*"] for every station.
    stations       TEXT NOT NULL,
    valid_from_ms  INTEGER NOT NULL,
    valid_until_ms INTEGER,
    revoked_ms     INTEGER,
    revoked_reason TEXT,
    added_ms       INTEGER NOT NULL
) STRICT;

CREATE TABLE roster_versions (
    version   INTEGER PRIMARY KEY,
    issued_ms INTEGER NOT NULL,
    -- The signed roster file (canonical JSON), as stations receive it.
    document  TEXT NOT NULL
) STRICT;

-- Every badge ever revoked, kept when its officer is later given a new badge: a record co-signed
-- after the revocation is refused whatever roster version its station held.
CREATE TABLE roster_revocations (
    badge  TEXT PRIMARY KEY,
    id     TEXT NOT NULL,
    at_ms  INTEGER NOT NULL,
    reason TEXT NOT NULL
) STRICT;
