-- Training and demonstration stations (`tasjil init --simulation`, registered with
-- `tasjil-central station add --simulation`): the only ones whose records may come from
-- simulated devices and badges. A record's `simulation` mark must match its station's.
ALTER TABLE stations ADD COLUMN simulation INTEGER NOT NULL DEFAULT 0 CHECK (simulation IN (0, 1));
