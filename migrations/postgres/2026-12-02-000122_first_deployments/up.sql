-- Each (point, partner) connection's first deployment, kept by triggers in the same
-- transaction as every change of a PYC's deployment time. The month list reads a
-- month of it in go-live order from its index, instead of proving "no earlier PYC of
-- this partner deployed this point" against the whole history on every download
-- (reports::month_query). A request's points are linked when it opens, before it has
-- a PYC, so a PYC's deployment is the only change that can move a first deployment.
CREATE TABLE first_deployments (
    point_id BIGINT NOT NULL,
    partner_id BIGINT NOT NULL,
    pyc_id BIGINT NOT NULL,
    deployed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (point_id, partner_id)
);

-- The month in go-live order, as the workbook streams it.
CREATE INDEX first_deployments_month_idx ON first_deployments (deployed_at, pyc_id, point_id);

-- Works out again, from the whole history, the connections the PYCs of these requests
-- could be first of (their points, with their partner): a deployment moved later or
-- cleared hands its connection back to the next one. Set-based, so that a statement
-- deploying many PYCs (an import) costs one pass, not one plan per row.
CREATE FUNCTION first_deployments_redo(changed BIGINT[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(changed) = 0 THEN
        RETURN;
    END IF;
    DELETE FROM first_deployments f
    USING unnest(changed) AS c (id), requests r, request_points rp
    WHERE r.id = c.id AND rp.request_id = r.id
    AND f.point_id = rp.point_id AND f.partner_id = r.partner_id;

    INSERT INTO first_deployments (point_id, partner_id, pyc_id, deployed_at)
    SELECT DISTINCT ON (rp.point_id, r.partner_id) rp.point_id, r.partner_id, y.id, y.deployed_at
    FROM unnest(changed) AS c (id)
    JOIN requests me ON me.id = c.id
    JOIN request_points mine ON mine.request_id = me.id
    JOIN request_points rp ON rp.point_id = mine.point_id
    JOIN requests r ON r.id = rp.request_id AND r.partner_id = me.partner_id
    JOIN pycs y ON y.request_id = r.id
    WHERE y.deployed_at IS NOT NULL
    ORDER BY rp.point_id, r.partner_id, y.deployed_at, y.id
    -- Two deployments of one connection at once: the earlier one stays.
    ON CONFLICT (point_id, partner_id) DO UPDATE
    SET pyc_id = excluded.pyc_id, deployed_at = excluded.deployed_at
    WHERE excluded.deployed_at < first_deployments.deployed_at
    OR (excluded.deployed_at = first_deployments.deployed_at AND excluded.pyc_id < first_deployments.pyc_id);
END;
$$;

-- The deployments made before this migration.
SELECT first_deployments_redo(ARRAY(SELECT request_id FROM pycs WHERE deployed_at IS NOT NULL));

CREATE FUNCTION first_deployments_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM first_deployments_redo(ARRAY(SELECT request_id FROM new_pycs WHERE deployed_at IS NOT NULL));
    RETURN NULL;
END;
$$;

-- Statement triggers (a column list cannot go with transition tables): an update that
-- leaves every deployment time as it was does nothing more than this join.
CREATE FUNCTION first_deployments_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM first_deployments_redo(ARRAY(
        SELECT n.request_id FROM new_pycs n JOIN old_pycs o ON o.id = n.id
        WHERE o.deployed_at IS DISTINCT FROM n.deployed_at
    ));
    RETURN NULL;
END;
$$;

CREATE TRIGGER first_deployments_insert AFTER INSERT ON pycs
REFERENCING NEW TABLE AS new_pycs
FOR EACH STATEMENT EXECUTE FUNCTION first_deployments_inserted();
CREATE TRIGGER first_deployments_update AFTER UPDATE ON pycs
REFERENCING OLD TABLE AS old_pycs NEW TABLE AS new_pycs
FOR EACH STATEMENT EXECUTE FUNCTION first_deployments_updated();
