-- Bank statements uploaded on an account's page (issue 19): the file kept as sent (it is
-- parsed again from here on confirm), and what its import did.
CREATE TABLE statement_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    account_id BIGINT NOT NULL REFERENCES bank_accounts (id),
    file_name TEXT NOT NULL,
    file BLOB NOT NULL,
    status TEXT NOT NULL,
    silent BOOLEAN NOT NULL DEFAULT FALSE,
    mapping TEXT,
    new_count BIGINT NOT NULL DEFAULT 0,
    known_count BIGINT NOT NULL DEFAULT 0,
    skipped TEXT,
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    imported_at TIMESTAMP
);
CREATE INDEX statement_imports_account ON statement_imports (account_id, id);

-- The confirmed column mapping per bank and header layout: the next file of the same
-- layout imports in one step.
CREATE TABLE statement_layouts (
    bank_code TEXT NOT NULL,
    signature TEXT NOT NULL,
    mapping TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (bank_code, signature)
);
