-- hubgate as an OAuth 2 authorization server (authorization code + PKCE) for
-- third-party apps. Secrets, codes and tokens are kept only as keyed hashes, as API keys.
CREATE TABLE oauth_apps (
    id BIGSERIAL PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    website TEXT NOT NULL DEFAULT '',
    client_id TEXT NOT NULL UNIQUE,
    -- Empty for a public client (a phone or browser app), which proves itself by PKCE alone.
    secret_hash TEXT NOT NULL DEFAULT '',
    -- One exact URI per line.
    redirect_uris TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX oauth_apps_owner_idx ON oauth_apps (owner_id);

-- One consent: a user let an app reach one business with these scopes.
CREATE TABLE oauth_grants (
    id BIGSERIAL PRIMARY KEY,
    app_id BIGINT NOT NULL REFERENCES oauth_apps (id),
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    -- Space-separated: read, sync, webhooks.
    scopes TEXT NOT NULL,
    -- The live refresh token, and the one it replaced: presenting that one again means
    -- it leaked, and the grant is revoked.
    refresh_hash TEXT UNIQUE,
    previous_refresh_hash TEXT,
    refresh_expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX oauth_grants_business_idx ON oauth_grants (business_id);
CREATE INDEX oauth_grants_previous_idx ON oauth_grants (previous_refresh_hash);

-- Authorization codes: ten minutes, single use; a second use revokes what the first gave.
CREATE TABLE oauth_codes (
    id BIGSERIAL PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    app_id BIGINT NOT NULL REFERENCES oauth_apps (id),
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    redirect_uri TEXT NOT NULL,
    scopes TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    grant_id BIGINT REFERENCES oauth_grants (id)
);

-- Access tokens, one hour.
CREATE TABLE oauth_tokens (
    id BIGSERIAL PRIMARY KEY,
    grant_id BIGINT NOT NULL REFERENCES oauth_grants (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX oauth_tokens_grant_idx ON oauth_tokens (grant_id);
