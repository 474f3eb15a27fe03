-- migrate_v4.sql: schema version 3 -> 4 (issue 7: a join whose answer was lost can be retried).
-- Hub: the SHA-256 of the public key (DER SubjectPublicKeyInfo, hex) an invite was spent on.
-- A JOIN with a spent invite is admitted again only for that same key, while the invite has not
-- expired: the node whose CERT was lost on a bad link retries with the key it kept
-- (pki/join.key), and gets a certificate; anyone else holding the token still gets "already
-- used". NULL for invites spent before version 4.
ALTER TABLE sg_invites ADD COLUMN used_key TEXT CHECK (used_key IS NULL OR length(used_key) = 64);
