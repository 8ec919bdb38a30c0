-- Requests per (state, partner), kept by triggers in the same transaction as every
-- insert, state change and deletion: the dashboard and the unfiltered list totals read
-- a few dozen rows here instead of counting every request on each page view.
CREATE TABLE request_counts (
    state TEXT NOT NULL,
    partner_id BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (state, partner_id)
);
INSERT INTO request_counts (state, partner_id, n)
SELECT state, partner_id, count(*) FROM requests GROUP BY state, partner_id;

CREATE TRIGGER request_counts_insert AFTER INSERT ON requests
BEGIN
    INSERT INTO request_counts (state, partner_id, n) VALUES (NEW.state, NEW.partner_id, 1)
    ON CONFLICT (state, partner_id) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER request_counts_update AFTER UPDATE OF state, partner_id ON requests
WHEN OLD.state IS NOT NEW.state OR OLD.partner_id IS NOT NEW.partner_id
BEGIN
    UPDATE request_counts SET n = n - 1 WHERE state = OLD.state AND partner_id = OLD.partner_id;
    INSERT INTO request_counts (state, partner_id, n) VALUES (NEW.state, NEW.partner_id, 1)
    ON CONFLICT (state, partner_id) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER request_counts_delete AFTER DELETE ON requests
BEGIN
    UPDATE request_counts SET n = n - 1 WHERE state = OLD.state AND partner_id = OLD.partner_id;
END;

-- A search finds merchants first, then their requests through this index, instead of
-- testing every request in waiting order against the matching merchants.
CREATE INDEX requests_merchant_idx ON requests (merchant_id);
