-- Partners (the hub workflow extends this table), inbound mail kept raw first, parsed
-- messages, their attachments, conversation threads and the classification rules.
CREATE TABLE partners (
    id BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    mail_domains TEXT NOT NULL DEFAULT '',
    mail_addresses TEXT NOT NULL DEFAULT '',
    leader_confirmation_required BOOLEAN NOT NULL DEFAULT FALSE,
    leader_addresses TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE mail_blobs (
    id BIGSERIAL PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    raw BYTEA NOT NULL,
    size BIGINT NOT NULL,
    source TEXT NOT NULL,
    file_name TEXT,
    status TEXT NOT NULL,
    error TEXT,
    received_at TIMESTAMP NOT NULL,
    processed_at TIMESTAMP
);
CREATE INDEX mail_blobs_status_idx ON mail_blobs (status);

CREATE TABLE mail_threads (
    id BIGSERIAL PRIMARY KEY,
    partner_id BIGINT REFERENCES partners (id),
    subject TEXT NOT NULL,
    norm_subject TEXT NOT NULL,
    first_at TIMESTAMP NOT NULL,
    last_at TIMESTAMP NOT NULL,
    request_id BIGINT
);
CREATE INDEX mail_threads_subject_idx ON mail_threads (norm_subject, last_at);

CREATE TABLE mail_messages (
    id BIGSERIAL PRIMARY KEY,
    blob_id BIGINT NOT NULL UNIQUE REFERENCES mail_blobs (id),
    message_id TEXT,
    in_reply_to TEXT NOT NULL DEFAULT '',
    refs TEXT NOT NULL DEFAULT '',
    from_addr TEXT NOT NULL DEFAULT '',
    from_name TEXT NOT NULL DEFAULT '',
    to_addrs TEXT NOT NULL DEFAULT '',
    cc_addrs TEXT NOT NULL DEFAULT '',
    reply_to TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    sent_at TIMESTAMP,
    text_body TEXT NOT NULL DEFAULT '',
    html_body TEXT,
    forwarded_from TEXT,
    forwarded_name TEXT,
    partner_id BIGINT REFERENCES partners (id),
    kind TEXT NOT NULL,
    kind_reason TEXT NOT NULL DEFAULT '',
    thread_id BIGINT NOT NULL REFERENCES mail_threads (id),
    status TEXT NOT NULL,
    status_reason TEXT,
    suggestions TEXT NOT NULL DEFAULT '{}',
    notes TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX mail_messages_message_id_idx ON mail_messages (message_id);
CREATE INDEX mail_messages_thread_idx ON mail_messages (thread_id);
CREATE INDEX mail_messages_list_idx ON mail_messages (status, created_at);

CREATE TABLE mail_attachments (
    id BIGSERIAL PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES mail_messages (id),
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    content BYTEA,
    omitted_reason TEXT
);
CREATE INDEX mail_attachments_message_idx ON mail_attachments (message_id);

CREATE TABLE mail_rules (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    pattern TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL
);
