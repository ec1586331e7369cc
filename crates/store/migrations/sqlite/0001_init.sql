-- citygrid schema, SQLite. Timestamps are INTEGER UTC milliseconds; JSON is TEXT.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE regions (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    level TEXT NOT NULL,
    parent TEXT REFERENCES regions(code),
    area_class TEXT NOT NULL DEFAULT 'A',
    geometry TEXT
);
CREATE INDEX regions_parent ON regions(parent);

CREATE TABLE departments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    parent_id INTEGER REFERENCES departments(id),
    tier INTEGER NOT NULL
);

CREATE TABLE classes (
    kind TEXT NOT NULL,
    code TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, code)
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    scope TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE photos (
    id TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    uploaded_by INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL
);

CREATE TABLE case_numbers (
    day TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);

CREATE TABLE cases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    number TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    class_code TEXT NOT NULL,
    urgency TEXT NOT NULL,
    grid_code TEXT NOT NULL,
    community_code TEXT NOT NULL,
    street_code TEXT NOT NULL,
    district_code TEXT NOT NULL,
    department_id INTEGER,
    reporter_id INTEGER,
    deadline INTEGER,
    case_deadline INTEGER,
    urged INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX cases_state ON cases(state, id);
CREATE INDEX cases_grid ON cases(grid_code, id);
CREATE INDEX cases_department ON cases(department_id, id);
CREATE INDEX cases_reporter ON cases(reporter_id, id);
CREATE INDEX cases_created ON cases(created_at);
CREATE INDEX cases_deadline ON cases(deadline);

-- The append-only case log: the triggers refuse any update or delete.
CREATE TABLE case_events (
    case_id INTEGER NOT NULL REFERENCES cases(id),
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor_id INTEGER,
    action TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);
CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events
BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;
CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events
BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;

CREATE TABLE idempotency (
    user_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    case_id INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- Raw insert baseline for `citygrid bench intake`: the same durability, none of the work.
CREATE TABLE bench_raw (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    data TEXT NOT NULL
);
