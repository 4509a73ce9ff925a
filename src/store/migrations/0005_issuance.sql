-- Issuance statuses the centre set after verification, learnt from its ledger (sync or USB
-- receipt): 'accepted' (accepted for production), 'issued' (card produced), 'reenrol' (the
-- citizen must enrol again; the reason says why). The supervisor's call-back list.
ALTER TABLE envelopes ADD COLUMN issuance TEXT;
ALTER TABLE envelopes ADD COLUMN issuance_reason TEXT;
ALTER TABLE envelopes ADD COLUMN issuance_ms INTEGER;
