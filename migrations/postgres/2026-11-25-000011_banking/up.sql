-- Bank linking and the transaction store.

-- The VietQR bank list (refreshed with `hubgate banks import FILE`).
CREATE TABLE banks (
    id BIGSERIAL PRIMARY KEY,
    bin TEXT NOT NULL UNIQUE,
    code TEXT NOT NULL,
    short_name TEXT NOT NULL,
    name TEXT NOT NULL,
    casso_code_name TEXT NOT NULL,
    official_api BOOLEAN NOT NULL
);

-- How a business reaches one bank: its method and its sealed secrets (client keys,
-- bank login, tokens), never shown again once saved.
CREATE TABLE bank_connections (
    id BIGSERIAL PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    bank_bin TEXT NOT NULL,
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    credentials_sealed TEXT,
    tokens_sealed TEXT,
    token_expires_at TIMESTAMP,
    oauth_state TEXT UNIQUE,
    external_ref TEXT,
    push_key TEXT UNIQUE,
    last_error TEXT,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX bank_connections_business_idx ON bank_connections (business_id);

ALTER TABLE bank_accounts ADD COLUMN connection_id BIGINT REFERENCES bank_connections (id);
ALTER TABLE bank_accounts ADD COLUMN bank_bin TEXT NOT NULL DEFAULT '';
-- The account's id at the bank or the agent.
ALTER TABLE bank_accounts ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
ALTER TABLE bank_accounts ADD COLUMN balance BIGINT;
ALTER TABLE bank_accounts ADD COLUMN sync_from TIMESTAMP;
ALTER TABLE bank_accounts ADD COLUMN sync_cursor TEXT;
ALTER TABLE bank_accounts ADD COLUMN last_sync_at TIMESTAMP;
ALTER TABLE bank_accounts ADD COLUMN next_sync_at TIMESTAMP;
-- Set when the bank (or the plan) asked us to wait: 'bank' or 'plan'.
ALTER TABLE bank_accounts ADD COLUMN rate_limited_until TIMESTAMP;
ALTER TABLE bank_accounts ADD COLUMN rate_limit_source TEXT;
ALTER TABLE bank_accounts ADD COLUMN last_error TEXT;
CREATE INDEX bank_accounts_due_idx ON bank_accounts (next_sync_at);

-- Transactions as the bank reports them; amount in whole đồng, negative = money out.
-- (account_id, bank_tx_id) is unique: a re-sync never stores one twice, and a row the
-- user deleted stays as a tombstone (deleted_at) so it never comes back.
CREATE TABLE transactions (
    id BIGSERIAL PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    account_id BIGINT NOT NULL REFERENCES bank_accounts (id),
    bank_tx_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    description TEXT NOT NULL,
    balance BIGINT,
    occurred_at TIMESTAMP NOT NULL,
    pending BOOLEAN NOT NULL,
    counter_account TEXT NOT NULL,
    counter_name TEXT NOT NULL,
    counter_bank_id TEXT NOT NULL,
    counter_bank_name TEXT NOT NULL,
    virtual_account TEXT NOT NULL,
    virtual_account_name TEXT NOT NULL,
    payment_channel TEXT NOT NULL,
    source TEXT NOT NULL,
    search_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP,
    UNIQUE (account_id, bank_tx_id)
);
CREATE INDEX transactions_business_time_idx ON transactions (business_id, occurred_at);
CREATE INDEX transactions_account_time_idx ON transactions (account_id, occurred_at);

-- "Tiếp tục trên điện thoại": a one-time, expiring link to the same linking step.
CREATE TABLE link_handoffs (
    id BIGSERIAL PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    bank_bin TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
