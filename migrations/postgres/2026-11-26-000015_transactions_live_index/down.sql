DROP INDEX transactions_business_live_idx;
CREATE INDEX transactions_business_time_idx ON transactions (business_id, occurred_at);
