-- Notification channels beyond webhooks: Zalo OA (owner + invited followers), e-mail
-- (per transaction or digest), Telegram. Each integration picks the message's fields.

-- Comma-separated fields of the message: amount,description,counter,balance,time,account.
ALTER TABLE integrations ADD COLUMN fields TEXT NOT NULL DEFAULT 'amount,description,counter,balance,time,account';
-- Channel settings as JSON (e-mail mode and digest minutes, the Zalo owner's name, ...).
ALTER TABLE integrations ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
-- The Zalo OA invitation code ("/invite: <code>"); unique while set.
ALTER TABLE integrations ADD COLUMN invite_code TEXT;
CREATE UNIQUE INDEX integrations_invite_code_idx ON integrations (invite_code);

-- Who an integration writes to: the Zalo owner and invited users, Telegram chats,
-- e-mail addresses. Status marks a recipient the channel refused (not following the
-- OA, no interaction in 7 days, bot blocked) so the owner sees it and nothing retries.
CREATE TABLE integration_recipients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    integration_id BIGINT NOT NULL REFERENCES integrations (id),
    -- owner | invited | chat | email
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- active | unreachable | removed
    status TEXT NOT NULL,
    status_note TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (integration_id, address)
);

-- hubgate's own Zalo OA tokens (one row). The refresh token is single-use: one node at a
-- time spends it (the lease), and the rotated one replaces it before the lease ends.
CREATE TABLE zalo_tokens (
    id BIGINT PRIMARY KEY,
    access_sealed TEXT NOT NULL,
    refresh_sealed TEXT NOT NULL,
    access_expires_at TIMESTAMP NOT NULL,
    generation BIGINT NOT NULL,
    -- A node refreshing holds this lease; the others wait for the new token.
    refreshing_until TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);

-- Every event the OA webhook received, raw, processed in order per sender by a job.
CREATE TABLE zalo_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_name TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    processed_at TIMESTAMP,
    outcome TEXT
);
CREATE INDEX zalo_events_sender_idx ON zalo_events (sender_id, id);

-- The OA's answers to those events, written with the event's outcome and sent in order
-- by the sender's event job.
CREATE TABLE zalo_replies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BIGINT NOT NULL REFERENCES zalo_events (id),
    -- The sender whose event caused it (its job sends it).
    sender_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    text TEXT NOT NULL,
    claimed_at TIMESTAMP,
    sent_at TIMESTAMP,
    error TEXT
);
CREATE INDEX zalo_replies_sender_idx ON zalo_replies (sender_id, id);
