-- migrate_v2.sql: schema version 1 -> 2, applied by store.c's migration step in the same
-- transaction as any earlier step (a database created fresh runs schema.sql, then this).
-- Version 2 makes the hub the coalition's certificate authority (issue 5): invites, the
-- certificates it issued, and revocation. The tables exist on regions too, empty.

-- Hub: one-time invites. The secret itself is never stored, only its SHA-256, so a copy of the
-- database cannot be used to join. An invite is spent by setting used_at, once.
CREATE TABLE sg_invites (
    id          INTEGER PRIMARY KEY,
    region      TEXT NOT NULL CHECK (length(region) BETWEEN 1 AND 63
                                     AND region NOT GLOB '*[^a-z0-9-]*' AND region NOT GLOB '-*'
                                     AND region <> 'hub'),
    secret_hash TEXT NOT NULL UNIQUE CHECK (length(secret_hash) = 64),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    used_serial TEXT
) STRICT;

-- Hub: every certificate it issued, by serial (hex), with why.
CREATE TABLE sg_certs (
    serial     TEXT PRIMARY KEY NOT NULL,
    region     TEXT NOT NULL,
    not_after  TEXT NOT NULL,
    issued_at  TEXT NOT NULL,
    reason     TEXT NOT NULL CHECK ((reason = 'join' OR reason = 'renew')),
    revoked_at TEXT
) STRICT;
CREATE INDEX sg_certs_region ON sg_certs (region);

-- Hub: a revoked region is refused at every connection; its data stays, marked by this.
ALTER TABLE sg_regions ADD COLUMN revoked_at TEXT;
