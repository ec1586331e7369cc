-- Street assessment, three-random draws, contract statements (issue 5). SQLite.
-- Timestamps are INTEGER UTC milliseconds; scores and points are REAL (display figures, never
-- money); money is computed from the ledger and the configuration, in integer fen.

-- Serialises assessment writers (one row; every write bumps it first), so that a publication
-- and an entry of the same month cannot interleave.
CREATE TABLE assessment_lock (
    id INTEGER PRIMARY KEY,
    n INTEGER NOT NULL
);
INSERT INTO assessment_lock (id, n) VALUES (1, 0);

-- A published month (月度考核结果发布): the ranking as published, frozen.
CREATE TABLE assessment_publications (
    month TEXT PRIMARY KEY,
    published_at INTEGER NOT NULL,
    published_by INTEGER REFERENCES users(id),
    data TEXT NOT NULL
);
CREATE TRIGGER assessment_publications_no_update BEFORE UPDATE ON assessment_publications
BEGIN SELECT RAISE(ABORT, 'a published assessment month is frozen'); END;
CREATE TRIGGER assessment_publications_no_delete BEFORE DELETE ON assessment_publications
BEGIN SELECT RAISE(ABORT, 'a published assessment month is frozen'); END;

-- Special-work assessments (专项工作考核): items with points, evidence photos (data JSON).
CREATE TABLE special_assessments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    month TEXT NOT NULL,
    street_code TEXT NOT NULL,
    title TEXT NOT NULL,
    points REAL NOT NULL,
    entered_by INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX special_assessments_month ON special_assessments(month, street_code);
CREATE TRIGGER special_assessments_frozen_insert BEFORE INSERT ON special_assessments
WHEN EXISTS (SELECT 1 FROM assessment_publications p WHERE p.month = NEW.month)
BEGIN SELECT RAISE(ABORT, 'a published assessment month is frozen'); END;
CREATE TRIGGER special_assessments_frozen_update BEFORE UPDATE ON special_assessments
WHEN EXISTS (SELECT 1 FROM assessment_publications p WHERE p.month IN (OLD.month, NEW.month))
BEGIN SELECT RAISE(ABORT, 'a published assessment month is frozen'); END;
CREATE TRIGGER special_assessments_frozen_delete BEFORE DELETE ON special_assessments
WHEN EXISTS (SELECT 1 FROM assessment_publications p WHERE p.month = OLD.month)
BEGIN SELECT RAISE(ABORT, 'a published assessment month is frozen'); END;

-- Three-random draws (三随机): the seed (hex, shown only once revealed), its SHA-256 (published
-- at once), the inputs snapshot and the places drawn from them. Immutable.
CREATE TABLE assessment_draws (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    month TEXT NOT NULL,
    seed TEXT NOT NULL,
    seed_hash TEXT NOT NULL,
    inputs TEXT NOT NULL,
    inputs_sha256 TEXT NOT NULL,
    places TEXT NOT NULL,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL
);
CREATE INDEX assessment_draws_month ON assessment_draws(month);
CREATE TRIGGER assessment_draws_no_update BEFORE UPDATE ON assessment_draws
BEGIN SELECT RAISE(ABORT, 'a draw is immutable'); END;
CREATE TRIGGER assessment_draws_no_delete BEFORE DELETE ON assessment_draws
BEGIN SELECT RAISE(ABORT, 'a draw is immutable'); END;

-- When a draw's seed was revealed (one row per draw, immutable).
CREATE TABLE assessment_reveals (
    draw_id INTEGER PRIMARY KEY REFERENCES assessment_draws(id),
    revealed_at INTEGER NOT NULL,
    revealed_by INTEGER REFERENCES users(id)
);
CREATE TRIGGER assessment_reveals_no_update BEFORE UPDATE ON assessment_reveals
BEGIN SELECT RAISE(ABORT, 'a reveal is immutable'); END;
CREATE TRIGGER assessment_reveals_no_delete BEFORE DELETE ON assessment_reveals
BEGIN SELECT RAISE(ABORT, 'a reveal is immutable'); END;

-- On-site findings (实地考核发现问题) at a drawn place; each became the case `case_id`.
CREATE TABLE assessment_findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    draw_id INTEGER NOT NULL REFERENCES assessment_draws(id),
    place_n INTEGER NOT NULL,
    month TEXT NOT NULL,
    street_code TEXT NOT NULL,
    grid_code TEXT NOT NULL,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    class_code TEXT NOT NULL,
    points REAL NOT NULL,
    lon REAL NOT NULL,
    lat REAL NOT NULL,
    found_by INTEGER NOT NULL REFERENCES users(id),
    found_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX assessment_findings_month ON assessment_findings(month, street_code);
CREATE INDEX assessment_findings_draw ON assessment_findings(draw_id, place_n);
CREATE TRIGGER assessment_findings_frozen_insert BEFORE INSERT ON assessment_findings
WHEN EXISTS (SELECT 1 FROM assessment_publications p WHERE p.month = NEW.month)
BEGIN SELECT RAISE(ABORT, 'a published assessment month is frozen'); END;
CREATE TRIGGER assessment_findings_no_update BEFORE UPDATE ON assessment_findings
BEGIN SELECT RAISE(ABORT, 'findings are immutable'); END;
CREATE TRIGGER assessment_findings_no_delete BEFORE DELETE ON assessment_findings
BEGIN SELECT RAISE(ABORT, 'findings are immutable'); END;

-- Events by time (the month's collector activity) use 0009's case_events_at (at, case_id).
