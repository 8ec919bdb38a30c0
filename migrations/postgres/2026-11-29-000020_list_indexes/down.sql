DROP INDEX requests_state_partner_idx;
DROP INDEX requests_waiting_idx;
DROP INDEX transactions_business_live_idx;
CREATE INDEX transactions_business_live_idx ON transactions (business_id, occurred_at) WHERE deleted_at IS NULL;
