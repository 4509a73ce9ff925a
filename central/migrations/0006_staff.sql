-- Central staff accounts (the console's users; field staff are the roster, not here).
-- password_hash: argon2id PHC string. totp_secret: the RFC 6238 secret sealed with age to the
-- centre's own key (never plaintext at rest). totp_last_step: the last time step accepted, so a
-- code is good once. failures / locked_until_ms: lockout after repeated wrong passwords or codes.
CREATE TABLE staff (
    id              TEXT PRIMARY KEY,
    role            TEXT NOT NULL CHECK (role IN ('viewer', 'verifier', 'issuer', 'admin')),
    password_hash   TEXT NOT NULL,
    totp_secret     BLOB NOT NULL,
    totp_last_step  INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    disabled_ms     INTEGER,
    failures        INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NOT NULL DEFAULT 0
) STRICT;
