-- Citizens, Open311 and money (issue 4). SQLite. Timestamps are INTEGER UTC milliseconds.

-- A citizen account (市民账号): a user of role citizen bound to the phone number it proved it
-- holds with a one-time code. Users of role citizen without a row here are anonymous.
CREATE TABLE citizen_accounts (
    user_id INTEGER PRIMARY KEY REFERENCES users(id),
    phone TEXT NOT NULL UNIQUE,
    -- cash | phone_credit | wechat
    payout_channel TEXT NOT NULL DEFAULT 'wechat',
    payout_account TEXT,
    created_at INTEGER NOT NULL
);

-- One-time sign-in codes; only a hash of the code is kept.
CREATE TABLE otp_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    phone TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    used_at INTEGER
);
CREATE INDEX otp_codes_phone ON otp_codes(phone, created_at);

-- Phone numbers that may not earn rewards: staff, the contractors' own people.
CREATE TABLE reward_exclusions (
    phone TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    note TEXT,
    created_at INTEGER NOT NULL
);

-- The citizen-facing categories (Open311 services): data is a citygrid_core::citizen::Service.
CREATE TABLE citizen_services (
    code TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

-- Open311 API clients; only a hash of the key is kept. Reports of a client are filed by its
-- own citizen-role user (anonymous unless the request also carries a citizen's token).
CREATE TABLE open311_clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

-- What an Open311 request carried beyond the case: contact data (never shown publicly),
-- attributes, media URL, and the token a client can look the request up by.
CREATE TABLE open311_requests (
    case_id INTEGER PRIMARY KEY REFERENCES cases(id),
    client_id INTEGER REFERENCES open311_clients(id),
    token TEXT NOT NULL UNIQUE,
    service_code TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The ledger (台账): every reward and deduction, immutable; corrections are new entries
-- reversing old ones. amount_fen is integer fen (分), positive = owed to the citizen (reward)
-- or owed by the contractor (deduction); a reversal carries the negated amount.
CREATE TABLE ledger_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    party_kind TEXT NOT NULL,
    party TEXT NOT NULL,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    set_root INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL,
    rule TEXT NOT NULL,
    reverses INTEGER UNIQUE REFERENCES ledger_entries(id),
    needs_approval INTEGER NOT NULL DEFAULT 0,
    month TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX ledger_case ON ledger_entries(case_id);
CREATE INDEX ledger_party ON ledger_entries(party_kind, party, month);
CREATE INDEX ledger_month ON ledger_entries(month, kind);
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;

-- The approval step of large rewards: one decision per entry.
CREATE TABLE ledger_approvals (
    entry_id INTEGER PRIMARY KEY REFERENCES ledger_entries(id),
    approved INTEGER NOT NULL,
    decided_by INTEGER NOT NULL REFERENCES users(id),
    decided_at INTEGER NOT NULL,
    note TEXT
);

-- Serialises ledger writers (one row; every reconciliation bumps it first).
CREATE TABLE ledger_lock (
    id INTEGER PRIMARY KEY,
    n INTEGER NOT NULL
);
INSERT INTO ledger_lock (id, n) VALUES (1, 0);

-- A monthly settlement run (月度结算): once written, the month is frozen.
CREATE TABLE settlements (
    month TEXT PRIMARY KEY,
    run_at INTEGER NOT NULL,
    run_by INTEGER REFERENCES users(id),
    data TEXT NOT NULL
);
-- Which entries a settlement paid or deducted: an entry is settled at most once.
CREATE TABLE settlement_lines (
    entry_id INTEGER PRIMARY KEY REFERENCES ledger_entries(id),
    month TEXT NOT NULL REFERENCES settlements(month),
    channel TEXT
);
CREATE INDEX settlement_lines_month ON settlement_lines(month);
-- The files of a run, kept byte for byte so a second run returns the same files.
CREATE TABLE settlement_files (
    month TEXT NOT NULL REFERENCES settlements(month),
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (month, name)
);
CREATE TRIGGER settlement_lines_no_update BEFORE UPDATE ON settlement_lines
BEGIN SELECT RAISE(ABORT, 'a settled month is frozen'); END;
CREATE TRIGGER settlement_lines_no_delete BEFORE DELETE ON settlement_lines
BEGIN SELECT RAISE(ABORT, 'a settled month is frozen'); END;
CREATE TRIGGER settlement_files_no_update BEFORE UPDATE ON settlement_files
BEGIN SELECT RAISE(ABORT, 'a settled month is frozen'); END;
CREATE TRIGGER settlement_files_no_delete BEFORE DELETE ON settlement_files
BEGIN SELECT RAISE(ABORT, 'a settled month is frozen'); END;
CREATE TRIGGER settlements_no_update BEFORE UPDATE ON settlements
BEGIN SELECT RAISE(ABORT, 'a settled month is frozen'); END;
CREATE TRIGGER settlements_no_delete BEFORE DELETE ON settlements
BEGIN SELECT RAISE(ABORT, 'a settled month is frozen'); END;

-- FixMyStreet-style updates posted by a client about a request (comments, photos).
CREATE TABLE open311_updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id INTEGER NOT NULL REFERENCES cases(id),
    client_id INTEGER REFERENCES open311_clients(id),
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX open311_updates_case ON open311_updates(case_id);
CREATE INDEX cases_updated ON cases(updated_at);

-- Merged reports (作废为重复) point at the case they duplicate; sets are walked by this column.
ALTER TABLE cases ADD COLUMN duplicate_of INTEGER;
UPDATE cases SET duplicate_of = json_extract(data, '$.duplicate_of') WHERE json_extract(data, '$.duplicate_of') IS NOT NULL;
CREATE INDEX cases_duplicate_of ON cases(duplicate_of) WHERE duplicate_of IS NOT NULL;
