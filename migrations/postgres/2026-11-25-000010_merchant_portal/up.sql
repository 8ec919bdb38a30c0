-- The merchant side: merchant accounts beside staff ones, sign-in identities from
-- OpenID providers, single-use mailed links, plans, businesses and their members.

-- 'staff' accounts use the desk; 'merchant' accounts only their own businesses.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'staff';
-- E.164 (+84…); required for merchants ("điền Số điện thoại để hoàn tất").
ALTER TABLE users ADD COLUMN phone TEXT;
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMP;
UPDATE users SET email_verified_at = created_at WHERE kind = 'staff';

CREATE TABLE user_identities (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP NOT NULL,
    UNIQUE (provider, subject)
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

-- Mailed links (e-mail verification, password reset): only a keyed hash of the token
-- is stored; used_at makes each single-use.
CREATE TABLE account_tokens (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    purpose TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);

CREATE TABLE plans (
    id BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    monthly_tx_quota BIGINT NOT NULL,
    bank_account_limit BIGINT NOT NULL,
    sync_interval_minutes BIGINT NOT NULL,
    price_vnd BIGINT NOT NULL,
    is_free BOOLEAN NOT NULL,
    -- The plan a business tries for 14 days when it links its first bank account.
    is_trial BOOLEAN NOT NULL,
    position BIGINT NOT NULL
);
INSERT INTO plans (code, name, monthly_tx_quota, bank_account_limit, sync_interval_minutes, price_vnd, is_free, is_trial, position) VALUES
    ('FREE', 'Miễn phí', 100, 1, 60, 0, TRUE, FALSE, 1),
    ('STARTER', 'Khởi nghiệp', 2000, 3, 15, 199000, FALSE, FALSE, 2),
    ('BUSINESS', 'Doanh nghiệp', 20000, 10, 5, 499000, FALSE, TRUE, 3),
    ('PRO', 'Chuyên nghiệp', 200000, 50, 1, 1490000, FALSE, FALSE, 4);

CREATE TABLE businesses (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    website TEXT NOT NULL,
    -- Comma-separated feature codes chosen at creation (đồng bộ giao dịch, …).
    features TEXT NOT NULL,
    plan_id BIGINT NOT NULL REFERENCES plans (id),
    trial_plan_id BIGINT REFERENCES plans (id),
    trial_started_at TIMESTAMP,
    trial_ends_at TIMESTAMP,
    -- The hub desk's merchant this business is (sales see both sides).
    hub_merchant_id BIGINT UNIQUE REFERENCES merchants (id),
    -- Transactions counted against the plan in usage_month (YYYY-MM, local time).
    usage_month TEXT NOT NULL,
    usage_count BIGINT NOT NULL,
    search_key TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);

CREATE TABLE business_members (
    id BIGSERIAL PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (business_id, user_id)
);
CREATE INDEX business_members_user_idx ON business_members (user_id);

CREATE TABLE business_invitations (
    id BIGSERIAL PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    invited_by BIGINT NOT NULL REFERENCES users (id),
    expires_at TIMESTAMP NOT NULL,
    accepted_at TIMESTAMP,
    accepted_by BIGINT REFERENCES users (id),
    revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX business_invitations_business_idx ON business_invitations (business_id);

-- Bank accounts linked to a business (the linking methods and the sync come with the
-- bank-sync work); removed_at keeps a removed link's history.
CREATE TABLE bank_accounts (
    id BIGSERIAL PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    bank_code TEXT NOT NULL,
    bank_name TEXT NOT NULL,
    account_number TEXT NOT NULL,
    account_name TEXT NOT NULL,
    method TEXT NOT NULL,
    connect_status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    removed_at TIMESTAMP
);
CREATE INDEX bank_accounts_business_idx ON bank_accounts (business_id);

CREATE TABLE plan_requests (
    id BIGSERIAL PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    plan_id BIGINT NOT NULL REFERENCES plans (id),
    requested_by BIGINT NOT NULL REFERENCES users (id),
    note TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    handled_at TIMESTAMP,
    handled_by BIGINT REFERENCES users (id)
);
CREATE INDEX plan_requests_business_idx ON plan_requests (business_id);
