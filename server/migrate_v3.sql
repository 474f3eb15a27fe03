-- migrate_v3.sql: schema version 2 -> 3 (issue 6: headquarters reads the hub over the network).
-- Hub: API tokens. Only the SHA-256 of a token's secret is kept; id is public (it names the
-- token in lists and in revocation), the secret is shown once when the token is made.
CREATE TABLE sg_tokens (
    id           TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 8 AND id NOT GLOB '*[^0-9a-f]*'),
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role         TEXT NOT NULL CHECK ((role = 'viewer' OR role = 'admin')),
    secret_hash  TEXT NOT NULL CHECK (length(secret_hash) = 64),
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;
