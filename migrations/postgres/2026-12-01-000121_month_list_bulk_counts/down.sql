DROP TRIGGER request_counts_insert ON requests;
DROP TRIGGER request_counts_delete ON requests;
DROP TRIGGER request_counts_update ON requests;
DROP FUNCTION request_counts_apply();

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

DROP INDEX request_points_point_idx;
DROP INDEX pycs_deployed_idx;
