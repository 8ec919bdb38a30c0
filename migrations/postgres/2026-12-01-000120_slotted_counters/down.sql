ALTER TABLE businesses ADD COLUMN usage_month TEXT NOT NULL DEFAULT '';
ALTER TABLE businesses ADD COLUMN usage_count BIGINT NOT NULL DEFAULT 0;
UPDATE businesses b SET usage_month = u.month, usage_count = u.n
FROM (SELECT business_id, month, SUM(n)::BIGINT AS n FROM business_usage GROUP BY business_id, month) u
WHERE u.business_id = b.id AND u.month = (SELECT MAX(month) FROM business_usage WHERE business_id = b.id);
DROP TABLE business_usage;
CREATE TABLE transaction_days_merged AS
SELECT business_id, day, SUM(n)::BIGINT AS n, SUM(money_in)::BIGINT AS money_in, SUM(money_out)::BIGINT AS money_out
FROM transaction_days GROUP BY business_id, day;
DELETE FROM transaction_days;
ALTER TABLE transaction_days DROP CONSTRAINT transaction_days_pkey;
ALTER TABLE transaction_days DROP COLUMN slot;
ALTER TABLE transaction_days ADD PRIMARY KEY (business_id, day);
INSERT INTO transaction_days (business_id, day, n, money_in, money_out) SELECT * FROM transaction_days_merged;
DROP TABLE transaction_days_merged;
