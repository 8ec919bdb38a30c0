-- Reconciliations against a partner's statement, and the column mapping per partner.
CREATE TABLE reconciliations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    month TEXT NOT NULL,
    file_name TEXT NOT NULL,
    file BLOB NOT NULL,
    mapping TEXT,
    result TEXT,
    matched BIGINT NOT NULL DEFAULT 0,
    only_ours BIGINT NOT NULL DEFAULT 0,
    only_theirs BIGINT NOT NULL DEFAULT 0,
    differing BIGINT NOT NULL DEFAULT 0,
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    run_at TIMESTAMP
);

CREATE TABLE recon_mappings (
    partner_id BIGINT PRIMARY KEY REFERENCES partners (id),
    mapping TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
