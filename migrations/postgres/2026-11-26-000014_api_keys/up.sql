-- The Casso-compatible API's credentials. Keys are shown once; only a keyed hash
-- (HMAC-SHA256 under the app's secret) is kept, so a lookup is one indexed query.
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    name TEXT NOT NULL,
    -- The first characters, shown to recognise a key.
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_keys_business_idx ON api_keys (business_id);

-- Access tokens of Casso's v1 exchange (POST /v1/token {"code": <api key>}), 6 hours.
CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    api_key_id BIGINT NOT NULL REFERENCES api_keys (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
