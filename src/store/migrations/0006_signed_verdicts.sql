-- A record is acknowledged, and its payload may be purged, only on a verdict the centre signed.
-- ack_proof keeps that proof, checked again before any purge and by `tasjil verify`:
--   {"kind":"ledger","entry":{...}}   the centre's signed status entry from the station-day ledger
--   {"kind":"receipt","receipt":SHA}  a signed USB receipt (its bytes are kept in receipts.receipt)
--   'legacy'                          acknowledged before verdicts were signed: never purged now
ALTER TABLE envelopes ADD COLUMN ack_proof TEXT;
UPDATE envelopes SET ack_proof = 'legacy' WHERE acknowledged_ms IS NOT NULL;
ALTER TABLE receipts ADD COLUMN receipt BLOB;
