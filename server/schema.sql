-- schema.sql: the node's database, version 1. Embedded into sangamd at build time and applied
-- by store.c's migration step (PRAGMA user_version 0 -> 1). Later versions add migrations in
-- store.c; this file stays the description of version 1.
--
-- Table names and columns are a public interface: analysts query them with SQL. The CHECK,
-- NOT NULL and FOREIGN KEY constraints are the authority on what a valid record is, so that a
-- write from the sqlite3 shell is held to the same rules as one through the API. Lengths are in
-- bytes (length(CAST(x AS BLOB))), matching the C checks in proto/records.c. Enumerations are
-- written as OR chains, not IN lists: SQLite builds a temporary index for an IN list of three or
-- more values and, inside a CHECK, rebuilds it for every row (40% of an insert's cost).
--
-- The change-log triggers are not written here: store.c generates them from PRAGMA table_info
-- on every start, so they always cover every column of every replicated table.

CREATE TABLE sg_node (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    id       TEXT NOT NULL,            -- this node's region id (or 'hub')
    role     TEXT NOT NULL CHECK ((role = 'region' OR role = 'hub')),
    hlc      INTEGER NOT NULL DEFAULT 0, -- last hybrid logical clock value handed out
    applying TEXT                      -- no longer used: replication turns the capture triggers
                                       -- off on its own connection instead (store.h,
                                       -- sg_store_capture); kept because v1 databases have it
) STRICT;

-- Hub: replication state per region. last_seq is the cursor: every change of that region up to
-- it is applied, none after it; it moves in the same transaction as the changes.
CREATE TABLE sg_regions (
    region       TEXT PRIMARY KEY NOT NULL,
    last_seq     INTEGER NOT NULL DEFAULT 0,
    last_hlc     INTEGER NOT NULL DEFAULT 0, -- HLC of the last applied change (its data's age)
    applied      INTEGER NOT NULL DEFAULT 0, -- changes applied in total
    last_contact TEXT,                       -- last frame received, UTC
    last_error   TEXT,                       -- last refusal or protocol error, NULL when fine
    snapshot_seq INTEGER                     -- seq of a snapshot in progress, else NULL
) STRICT;

-- Hub: every change applied from a region, in the order applied (the audit trail that shows
-- each region's seqs arrived exactly once, with no gap). The rows themselves are in the record
-- tables; this keeps only identity, so applying costs one small insert per change.
CREATE TABLE sg_applied (
    id     INTEGER PRIMARY KEY,
    region TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    hlc    INTEGER NOT NULL,
    tbl    TEXT NOT NULL,
    pk     TEXT NOT NULL,
    op     TEXT NOT NULL
) STRICT;

-- Hub: changes refused with the reason, held for an operator to retry or discard.
CREATE TABLE sg_quarantine (
    id          INTEGER PRIMARY KEY,
    region      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    hlc         INTEGER NOT NULL,
    tbl         TEXT NOT NULL,
    pk          TEXT NOT NULL,
    op          TEXT NOT NULL,
    data        TEXT,                        -- JSON of the column values, as received
    reason      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'held' CHECK ((state = 'held' OR state = 'applied' OR
                                                     state = 'discarded')),
    UNIQUE (region, seq)
) STRICT;

-- Hub: ids received in a snapshot in progress, to delete what the snapshot no longer has.
CREATE TABLE sg_snapshot_seen (
    region TEXT NOT NULL,
    tbl    TEXT NOT NULL,
    pk     TEXT NOT NULL,
    PRIMARY KEY (region, tbl, pk)
) WITHOUT ROWID, STRICT;

-- Region: what the hub has acknowledged (pruning never removes an unacknowledged change).
CREATE TABLE sg_uplink (
    one          INTEGER PRIMARY KEY CHECK (one = 1),
    acked_seq    INTEGER NOT NULL DEFAULT 0,
    last_contact TEXT,
    last_error   TEXT
) STRICT;
INSERT INTO sg_uplink (one) VALUES (1);

-- The change log: one row per INSERT, UPDATE or DELETE of a replicated table, written by
-- triggers in the same transaction as the write. AUTOINCREMENT keeps seq strictly increasing
-- even after old entries are pruned.
CREATE TABLE sg_changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    hlc     INTEGER NOT NULL,
    origin  TEXT NOT NULL,
    tbl     TEXT NOT NULL,
    pk      TEXT NOT NULL,
    op      TEXT NOT NULL CHECK ((op = 'insert' OR op = 'update' OR op = 'delete')),
    data    TEXT CHECK ((op = 'delete') = (data IS NULL))  -- JSON object of the values set
) STRICT;

CREATE TABLE organisations (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    region      TEXT NOT NULL CHECK (length(region) BETWEEN 1 AND 63
                                     AND region NOT GLOB '*[^a-z0-9-]*' AND region NOT GLOB '-*'),
    name        TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 400),
    kind        TEXT NOT NULL CHECK ((kind = 'government' OR kind = 'financial' OR kind = 'academic' OR
                                      kind = 'training' OR kind = 'civil_society' OR
                                      kind = 'private' OR kind = 'other')),
    district    TEXT CHECK (length(CAST(district AS BLOB)) <= 200),
    contact     TEXT CHECK (length(CAST(contact AS BLOB)) <= 400),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE members (
    id              TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    region          TEXT NOT NULL CHECK (length(region) BETWEEN 1 AND 63
                                         AND region NOT GLOB '*[^a-z0-9-]*'
                                         AND region NOT GLOB '-*'),
    name            TEXT NOT NULL CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 400),
    kind            TEXT NOT NULL CHECK ((kind = 'entrepreneur' OR kind = 'representative' OR
                                          kind = 'staff')),
    gender          TEXT CHECK ((gender = 'female' OR gender = 'male' OR gender = 'other' OR
                                 gender = 'undisclosed')),
    birth_year      INTEGER CHECK (birth_year BETWEEN 1900 AND 2100),
    phone           TEXT CHECK (length(phone) <= 32 AND phone NOT GLOB '*[^0-9+() -]*'),
    village         TEXT CHECK (length(CAST(village AS BLOB)) <= 200),
    district        TEXT CHECK (length(CAST(district AS BLOB)) <= 200),
    sector          TEXT CHECK (length(CAST(sector AS BLOB)) <= 200),
    organisation_id TEXT REFERENCES organisations (id),
    joined_on       TEXT CHECK (joined_on IS date(joined_on)),
    status          TEXT NOT NULL DEFAULT 'active' CHECK ((status = 'active' OR
                                                           status = 'inactive')),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT representative_needs_organisation
        CHECK (kind <> 'representative' OR organisation_id IS NOT NULL)
) STRICT;
CREATE INDEX members_organisation ON members (organisation_id);
CREATE INDEX members_district ON members (district);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    region      TEXT NOT NULL CHECK (length(region) BETWEEN 1 AND 63
                                     AND region NOT GLOB '*[^a-z0-9-]*' AND region NOT GLOB '-*'),
    kind        TEXT NOT NULL CHECK ((kind = 'working_session' OR kind = 'launch' OR
                                      kind = 'training' OR kind = 'radio_show' OR kind = 'emailer' OR
                                      kind = 'whatsapp' OR kind = 'field_visit' OR kind = 'other')),
    title       TEXT NOT NULL CHECK (length(CAST(title AS BLOB)) BETWEEN 1 AND 600),
    held_on     TEXT NOT NULL CHECK (held_on IS date(held_on)),
    place       TEXT CHECK (length(CAST(place AS BLOB)) <= 400),
    summary     TEXT CHECK (length(CAST(summary AS BLOB)) <= 16000),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX sessions_held_on ON sessions (held_on);

CREATE TABLE attendance (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    region      TEXT NOT NULL CHECK (length(region) BETWEEN 1 AND 63
                                     AND region NOT GLOB '*[^a-z0-9-]*' AND region NOT GLOB '-*'),
    session_id  TEXT NOT NULL REFERENCES sessions (id),
    member_id   TEXT NOT NULL REFERENCES members (id),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (session_id, member_id)
) STRICT;
CREATE INDEX attendance_member ON attendance (member_id);

CREATE TABLE issues (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    region      TEXT NOT NULL CHECK (length(region) BETWEEN 1 AND 63
                                     AND region NOT GLOB '*[^a-z0-9-]*' AND region NOT GLOB '-*'),
    raised_by   TEXT NOT NULL REFERENCES members (id),
    session_id  TEXT REFERENCES sessions (id),
    category    TEXT NOT NULL CHECK ((category = 'finance' OR category = 'market' OR
                                      category = 'skills' OR category = 'infrastructure' OR
                                      category = 'awareness' OR category = 'regulation' OR
                                      category = 'technology' OR category = 'other')),
    title       TEXT NOT NULL CHECK (length(CAST(title AS BLOB)) BETWEEN 1 AND 600),
    description TEXT CHECK (length(CAST(description AS BLOB)) <= 16000),
    status      TEXT NOT NULL DEFAULT 'open'
                CHECK ((status = 'open' OR status = 'in_progress' OR status = 'resolved' OR
                        status = 'closed')),
    assigned_to TEXT REFERENCES organisations (id),
    opened_on   TEXT NOT NULL DEFAULT (date('now')) CHECK (opened_on IS date(opened_on)),
    resolved_on TEXT CHECK (resolved_on IS date(resolved_on)),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT resolved_date_needs_resolution
        CHECK (resolved_on IS NULL OR (status = 'resolved' OR status = 'closed')),
    CONSTRAINT resolved_after_opened CHECK (resolved_on IS NULL OR resolved_on >= opened_on)
) STRICT;
CREATE INDEX issues_raised_by ON issues (raised_by);
CREATE INDEX issues_session ON issues (session_id);       -- deleting a session checks these
CREATE INDEX issues_status ON issues (status);
CREATE INDEX issues_assigned_to ON issues (assigned_to);

CREATE TABLE issue_updates (
    id          TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
    region      TEXT NOT NULL CHECK (length(region) BETWEEN 1 AND 63
                                     AND region NOT GLOB '*[^a-z0-9-]*' AND region NOT GLOB '-*'),
    issue_id    TEXT NOT NULL REFERENCES issues (id),
    note        TEXT CHECK (length(CAST(note AS BLOB)) <= 16000),
    status_from TEXT CHECK ((status_from = 'open' OR status_from = 'in_progress' OR
                             status_from = 'resolved' OR status_from = 'closed')),
    status_to   TEXT CHECK ((status_to = 'open' OR status_to = 'in_progress' OR
                             status_to = 'resolved' OR status_to = 'closed')),
    assigned_to TEXT REFERENCES organisations (id),  -- new assignment made by this update
    author      TEXT NOT NULL CHECK (length(CAST(author AS BLOB)) BETWEEN 1 AND 200),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX issue_updates_issue ON issue_updates (issue_id);
CREATE INDEX issue_updates_assigned ON issue_updates (assigned_to); -- and an organisation
