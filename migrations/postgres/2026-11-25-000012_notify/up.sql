-- Notifications on new transactions (Kho ứng dụng): integrations, one delivery per
-- (transaction, integration, recipient), and each attempt's log.

CREATE TABLE integrations (
    id BIGSERIAL PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    channel TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    -- casso_legacy | casso_v2 | standard
    format TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    income_only BOOLEAN NOT NULL,
    -- Comma-separated bank account ids; empty = every account of the business.
    account_ids TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    failing_since TIMESTAMP,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX integrations_business_idx ON integrations (business_id);

CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    integration_id BIGINT NOT NULL REFERENCES integrations (id),
    transaction_id BIGINT NOT NULL REFERENCES transactions (id),
    recipient TEXT NOT NULL,
    -- pending | delivered | dead | held
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    UNIQUE (integration_id, transaction_id, recipient)
);
CREATE INDEX deliveries_integration_idx ON deliveries (integration_id, created_at);

CREATE TABLE delivery_attempts (
    id BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
    at TIMESTAMP NOT NULL,
    attempt BIGINT NOT NULL,
    status_code BIGINT,
    duration_ms BIGINT NOT NULL,
    excerpt TEXT NOT NULL,
    error TEXT
);
CREATE INDEX delivery_attempts_delivery_idx ON delivery_attempts (delivery_id);
