-- Live transactions per business and local day (Asia/Ho_Chi_Minh, UTC+7 since 1975),
-- kept in the same database transaction as each insert, replacement and deletion. The
-- API's totalRecords is a sum over the days asked, and a deep page starts from the day
-- that holds it, instead of counting and skipping up to a million index entries.
CREATE TABLE transaction_days (
    business_id BIGINT NOT NULL REFERENCES businesses (id),
    day DATE NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (business_id, day)
);
INSERT INTO transaction_days (business_id, day, n)
SELECT business_id, date(occurred_at, '+7 hours'), COUNT(*) FROM transactions WHERE deleted_at IS NULL GROUP BY business_id, date(occurred_at, '+7 hours');
