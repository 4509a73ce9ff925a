-- Retention: once the centre has acknowledged a record and the retention period has passed, its
-- sealed payload is emptied to free the van's disk. The envelope and its hashes stay.
ALTER TABLE payloads ADD COLUMN purged_ms INTEGER;
