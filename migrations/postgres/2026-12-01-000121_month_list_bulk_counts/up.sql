-- The month list of connected points: the PYCs deployed in a month, and for each of
-- its points the earlier deployments of the same point (reports::MONTH_FROM).
CREATE INDEX pycs_deployed_idx ON pycs (deployed_at);
CREATE INDEX request_points_point_idx ON request_points (point_id, request_id);

-- request_counts per statement, not per row. Each row's trigger updated one of a few
-- counter rows, and within one transaction every update adds a row version the next
-- must walk past: inserting 100,000 requests in one statement took 50 s. Now a
-- statement applies its net change per (state, partner) once, from its transition
-- tables. (SQLite updates in place; its row triggers stay.)
DROP TRIGGER request_counts_insert_delete ON requests;
DROP TRIGGER request_counts_update ON requests;
DROP FUNCTION request_counts_keep();

CREATE FUNCTION request_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO request_counts (state, partner_id, n)
        SELECT state, partner_id, count(*) FROM new_rows GROUP BY state, partner_id
        ON CONFLICT (state, partner_id) DO UPDATE SET n = request_counts.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE request_counts c SET n = c.n - d.k
        FROM (SELECT state, partner_id, count(*) AS k FROM old_rows GROUP BY state, partner_id) d
        WHERE c.state = d.state AND c.partner_id = d.partner_id;
    ELSE
        INSERT INTO request_counts (state, partner_id, n)
        SELECT state, partner_id, sum(k) FROM (
            SELECT state, partner_id, 1 AS k FROM new_rows
            UNION ALL
            SELECT state, partner_id, -1 AS k FROM old_rows
        ) d
        GROUP BY state, partner_id
        HAVING sum(k) <> 0
        ON CONFLICT (state, partner_id) DO UPDATE SET n = request_counts.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER request_counts_insert AFTER INSERT ON requests
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION request_counts_apply();
CREATE TRIGGER request_counts_delete AFTER DELETE ON requests
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION request_counts_apply();
CREATE TRIGGER request_counts_update AFTER UPDATE ON requests
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION request_counts_apply();
