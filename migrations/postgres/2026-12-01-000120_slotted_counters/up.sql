-- Every store of a business wrote the same day row and the same usage counter, and
-- PostgreSQL holds a written row's lock until the commit: one business's stores
-- committed one after the other, each behind the previous one's WAL flush (about 90
-- pushes a second here). Each is now spread over a few rows (a store picks one, see
-- `banking::models::slot`), read back summed.
ALTER TABLE transaction_days ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE transaction_days DROP CONSTRAINT transaction_days_pkey;
ALTER TABLE transaction_days ADD PRIMARY KEY (business_id, day, slot);

CREATE TABLE business_usage (
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    month TEXT NOT NULL,
    slot SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (business_id, month, slot)
);
INSERT INTO business_usage (business_id, month, slot, n)
SELECT id, usage_month, 0, usage_count FROM businesses WHERE usage_count <> 0;
ALTER TABLE businesses DROP COLUMN usage_count;
ALTER TABLE businesses DROP COLUMN usage_month;
