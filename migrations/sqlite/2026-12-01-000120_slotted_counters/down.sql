ALTER TABLE businesses ADD COLUMN usage_month TEXT NOT NULL DEFAULT '';
ALTER TABLE businesses ADD COLUMN usage_count BIGINT NOT NULL DEFAULT 0;
UPDATE businesses SET
    usage_month = COALESCE((SELECT MAX(month) FROM business_usage WHERE business_id = businesses.id), ''),
    usage_count = COALESCE((SELECT SUM(n) FROM business_usage WHERE business_id = businesses.id
        AND month = (SELECT MAX(month) FROM business_usage WHERE business_id = businesses.id)), 0);
DROP TABLE business_usage;
CREATE TABLE transaction_days_merged (
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    day DATE NOT NULL,
    n BIGINT NOT NULL,
    money_in BIGINT NOT NULL DEFAULT 0,
    money_out BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (business_id, day)
);
INSERT INTO transaction_days_merged (business_id, day, n, money_in, money_out)
SELECT business_id, day, SUM(n), SUM(money_in), SUM(money_out) FROM transaction_days GROUP BY business_id, day;
DROP TABLE transaction_days;
ALTER TABLE transaction_days_merged RENAME TO transaction_days;
