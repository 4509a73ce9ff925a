-- The centre's signed roster decides which badge may act here (no trust on first use). A badge
-- registered with `tasjil officer add --emergency REASON` is a local override, audited, for a
-- badge the roster does not list yet; it never overrides a revocation.
ALTER TABLE officers ADD COLUMN override_reason TEXT;
