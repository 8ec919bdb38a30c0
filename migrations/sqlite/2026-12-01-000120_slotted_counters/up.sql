-- The day sums and the usage counter spread over a few rows a business, read back
-- summed (see the PostgreSQL migration: there concurrent stores of one business waited
-- for each other's commits on one row). SQLite has one writer at a time and always
-- writes slot 0; the tables are the same on both.
CREATE TABLE transaction_days_slotted (
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    day DATE NOT NULL,
    n BIGINT NOT NULL,
    money_in BIGINT NOT NULL DEFAULT 0,
    money_out BIGINT NOT NULL DEFAULT 0,
    -- Last, as ALTER TABLE … ADD COLUMN puts it on PostgreSQL: the columns stay in one order.
    slot SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (business_id, day, slot)
);
INSERT INTO transaction_days_slotted (business_id, day, n, money_in, money_out, slot)
SELECT business_id, day, n, money_in, money_out, 0 FROM transaction_days;
DROP TABLE transaction_days;
ALTER TABLE transaction_days_slotted RENAME TO transaction_days;

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
