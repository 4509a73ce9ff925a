-- A station can be suspended (for a while: a van in the workshop) or revoked (for good: a stolen
-- van). Either way it is refused at its next sync or bundle import; what it sent before stays.
ALTER TABLE stations ADD COLUMN state TEXT NOT NULL DEFAULT 'active'
    CHECK (state IN ('active', 'suspended', 'revoked'));
ALTER TABLE stations ADD COLUMN state_reason TEXT;
ALTER TABLE stations ADD COLUMN state_ms INTEGER;
