-- Station groups for the roster (`tasjil-central station group add|remove`): an entry's
-- `@NAME` covers every station of group NAME. Groups travel inside the signed roster, so a
-- change issues the next roster version.
CREATE TABLE station_groups (
    name     TEXT NOT NULL,
    station  TEXT NOT NULL,
    added_ms INTEGER NOT NULL,
    PRIMARY KEY (name, station)
) STRICT;
