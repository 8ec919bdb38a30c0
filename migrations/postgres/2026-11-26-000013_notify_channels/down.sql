DROP TABLE zalo_replies;
DROP TABLE zalo_events;
DROP TABLE zalo_tokens;
DROP TABLE integration_recipients;
DROP INDEX integrations_invite_code_idx;
ALTER TABLE integrations DROP COLUMN invite_code;
ALTER TABLE integrations DROP COLUMN settings;
ALTER TABLE integrations DROP COLUMN fields;
