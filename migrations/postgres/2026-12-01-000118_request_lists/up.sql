-- Requests per (state, partner), kept by a trigger in the same transaction as every
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

CREATE FUNCTION request_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE request_counts SET n = n - 1 WHERE state = OLD.state AND partner_id = OLD.partner_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO request_counts (state, partner_id, n) VALUES (NEW.state, NEW.partner_id, 1)
        ON CONFLICT (state, partner_id) DO UPDATE SET n = request_counts.n + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER request_counts_insert_delete AFTER INSERT OR DELETE ON requests
FOR EACH ROW EXECUTE FUNCTION request_counts_keep();
CREATE TRIGGER request_counts_update AFTER UPDATE OF state, partner_id ON requests
FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.partner_id IS DISTINCT FROM NEW.partner_id)
EXECUTE FUNCTION request_counts_keep();

-- A search finds merchants first, then their requests through this index, instead of
-- testing every request in waiting order against the matching merchants.
CREATE INDEX requests_merchant_idx ON requests (merchant_id);
