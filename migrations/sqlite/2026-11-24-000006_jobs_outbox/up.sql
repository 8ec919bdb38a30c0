-- The durable job queue, its history, and the outgoing mail outbox.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- Kept after the job ends: a key (a scheduler tick, one mail) runs at most once.
    unique_key TEXT,
    run_at TIMESTAMP NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    locked_until TIMESTAMP,
    locked_by TEXT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    done_at TIMESTAMP,
    dead_at TIMESTAMP
);
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (unique_key);
CREATE INDEX jobs_ready_idx ON jobs (run_at) WHERE done_at IS NULL AND dead_at IS NULL;
CREATE INDEX jobs_kind_idx ON jobs (kind);

CREATE TABLE job_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    at TIMESTAMP NOT NULL,
    event TEXT NOT NULL,
    worker TEXT,
    message TEXT
);
CREATE INDEX job_events_job_idx ON job_events (job_id);

CREATE TABLE mail_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    from_addr TEXT NOT NULL,
    to_addrs TEXT NOT NULL,
    cc_addrs TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    in_reply_to TEXT,
    refs TEXT NOT NULL DEFAULT '',
    text_body TEXT NOT NULL,
    raw BLOB NOT NULL,
    attachment_names TEXT NOT NULL DEFAULT '',
    request_id BIGINT REFERENCES requests (id),
    attempts BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP
);
CREATE INDEX mail_outbox_created_idx ON mail_outbox (created_at);
CREATE INDEX mail_outbox_request_idx ON mail_outbox (request_id);
